//! Money in fen (1 yuan = 100 fen).

use std::fmt;
use std::iter::Sum;
use std::ops::Add;

use thiserror::Error;

/// Largest accepted amount in yuan, either sign.
const MAX_YUAN: i64 = 100_000_000;
/// Largest accepted amount in fen, either sign.
const MAX_FEN: i64 = MAX_YUAN * 100;

/// Why an amount was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MoneyError {
    /// Nothing but whitespace.
    #[error("amount is empty; write it in yuan, e.g. 12.50 (or -3.20 for a refund)")]
    Empty,
    /// A currency sign or unit (`¥`, `元`, `RMB` …).
    #[error(
        "{input} is not a valid amount: write the number in yuan without a currency sign, e.g. 12.50"
    )]
    CurrencySign { input: String },
    /// A comma: thousands separator or decimal comma.
    #[error(
        "{input} is not a valid amount: use a dot for decimals and no thousands separators, e.g. 1234.50"
    )]
    Comma { input: String },
    /// A decimal point with no digit before it (`.5`).
    #[error("{input} is not a valid amount: put a 0 before the decimal point, e.g. 0.50")]
    NoIntegerPart { input: String },
    /// A decimal point with no digit after it (`5.`).
    #[error(
        "{input} is not a valid amount: remove the trailing dot or add the fen, e.g. 5 or 5.00"
    )]
    TrailingDot { input: String },
    /// Three or more decimal places.
    #[error(
        "{input}: amount has {places} decimal places; at most 2 (fen) are allowed (round it to the fen)"
    )]
    TooManyDecimals { input: String, places: usize },
    /// Anything else that is not a plain decimal number (`1e3`, `NaN`, `12-5` …).
    #[error(
        "{input} is not a valid amount: write digits with an optional dot and up to 2 decimals, e.g. 12.50 (or -3.20 for a refund)"
    )]
    NotANumber { input: String },
    /// More than 100,000,000 yuan either way.
    #[error(
        "{input} is too large: amounts must be within ±100000000 yuan (is it in fen instead of yuan?)"
    )]
    TooLarge { input: String },
}

/// An amount of money in fen. Negative amounts are refunds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Money(i64);

impl Money {
    /// Parse an amount in yuan: `12`, `12.5`, `12.50`, `-3.20`, `0.05`.
    pub fn parse_yuan(input: &str) -> Result<Money, MoneyError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(MoneyError::Empty);
        }
        let shown = || super::shown(s);
        let upper = s.to_uppercase();
        if s.contains(['¥', '￥', '元', '$'])
            || upper.contains("RMB")
            || upper.contains("CNY")
            || upper.contains("YUAN")
        {
            return Err(MoneyError::CurrencySign { input: shown() });
        }
        if s.contains([',', '，']) {
            return Err(MoneyError::Comma { input: shown() });
        }
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (body, None),
        };
        let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int) || !frac.is_none_or(all_digits) {
            return Err(MoneyError::NotANumber { input: shown() });
        }
        if int.is_empty() {
            return Err(match frac {
                Some(f) if !f.is_empty() => MoneyError::NoIntegerPart { input: shown() },
                _ => MoneyError::NotANumber { input: shown() },
            });
        }
        let frac = frac.unwrap_or("00");
        let fen_part: i64 = match frac.as_bytes() {
            [] => return Err(MoneyError::TrailingDot { input: shown() }),
            [a] => i64::from(a - b'0') * 10,
            [a, b] => i64::from(a - b'0') * 10 + i64::from(b - b'0'),
            more => {
                return Err(MoneyError::TooManyDecimals {
                    input: shown(),
                    places: more.len(),
                });
            }
        };
        let mut yuan: i64 = 0;
        for b in int.bytes() {
            yuan = yuan * 10 + i64::from(b - b'0');
            if yuan > MAX_YUAN {
                return Err(MoneyError::TooLarge { input: shown() });
            }
        }
        let fen = yuan * 100 + fen_part;
        if fen > MAX_FEN {
            return Err(MoneyError::TooLarge { input: shown() });
        }
        Ok(Money(if negative { -fen } else { fen }))
    }

    /// From a number of fen (e.g. read back from the database).
    pub fn from_fen(fen: i64) -> Money {
        Money(fen)
    }

    /// The amount in fen.
    pub fn fen(&self) -> i64 {
        self.0
    }
}

/// `12.50`, `-0.05`: yuan with two decimals, no currency sign.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

/// Saturates at the `i64` limits instead of overflowing.
impl Add for Money {
    type Output = Money;

    fn add(self, rhs: Money) -> Money {
        Money(self.0.saturating_add(rhs.0))
    }
}

/// Saturates at the `i64` limits instead of overflowing.
impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::default(), Add::add)
    }
}

impl<'a> Sum<&'a Money> for Money {
    fn sum<I: Iterator<Item = &'a Money>>(iter: I) -> Money {
        iter.copied().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fen(s: &str) -> i64 {
        Money::parse_yuan(s)
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .fen()
    }

    #[test]
    fn valid_amounts() {
        assert_eq!(fen("12"), 1200);
        assert_eq!(fen("12.5"), 1250);
        assert_eq!(fen("12.50"), 1250);
        assert_eq!(fen("12.05"), 1205);
        assert_eq!(fen("0.05"), 5);
        assert_eq!(fen("0.5"), 50);
        assert_eq!(fen("0"), 0);
        assert_eq!(fen("0.00"), 0);
        assert_eq!(fen("007.10"), 710);
        assert_eq!(fen("  88.88 "), 8888);
    }

    #[test]
    fn negatives() {
        assert_eq!(fen("-3.20"), -320);
        assert_eq!(fen("-0.05"), -5);
        assert_eq!(fen("-0"), 0);
        assert_eq!(fen("-100000000"), -MAX_FEN);
    }

    #[test]
    fn limits() {
        assert_eq!(fen("100000000"), MAX_FEN);
        assert_eq!(fen("100000000.00"), MAX_FEN);
        for s in [
            "100000000.01",
            "-100000000.01",
            "100000001",
            "999999999999999999999999999999",
            "-9223372036854775808",
            &"9".repeat(1000),
        ] {
            assert!(
                matches!(Money::parse_yuan(s), Err(MoneyError::TooLarge { .. })),
                "{s}"
            );
        }
        assert!(
            Money::parse_yuan("100000001")
                .unwrap_err()
                .to_string()
                .contains("within ±100000000 yuan")
        );
    }

    #[test]
    fn three_decimals_rejected() {
        let e = Money::parse_yuan("12.505").unwrap_err();
        assert_eq!(
            e,
            MoneyError::TooManyDecimals {
                input: "\"12.505\"".into(),
                places: 3
            }
        );
        assert!(
            e.to_string()
                .contains("amount has 3 decimal places; at most 2 (fen) are allowed")
        );
        assert!(matches!(
            Money::parse_yuan("0.0001"),
            Err(MoneyError::TooManyDecimals { places: 4, .. })
        ));
        assert!(matches!(
            Money::parse_yuan("-1.000"),
            Err(MoneyError::TooManyDecimals { places: 3, .. })
        ));
    }

    #[test]
    fn dot_placement() {
        assert!(matches!(
            Money::parse_yuan(".5"),
            Err(MoneyError::NoIntegerPart { .. })
        ));
        assert!(matches!(
            Money::parse_yuan("-.5"),
            Err(MoneyError::NoIntegerPart { .. })
        ));
        assert!(matches!(
            Money::parse_yuan("5."),
            Err(MoneyError::TrailingDot { .. })
        ));
        assert!(matches!(
            Money::parse_yuan("."),
            Err(MoneyError::NotANumber { .. })
        ));
        assert!(matches!(
            Money::parse_yuan("1.2.3"),
            Err(MoneyError::NotANumber { .. })
        ));
    }

    #[test]
    fn currency_and_commas() {
        for s in ["¥12", "￥12.50", "12元", "RMB 12", "12 cny", "$5"] {
            assert!(
                matches!(Money::parse_yuan(s), Err(MoneyError::CurrencySign { .. })),
                "{s}"
            );
        }
        for s in ["12,50", "1,234.50", "12，50"] {
            assert!(
                matches!(Money::parse_yuan(s), Err(MoneyError::Comma { .. })),
                "{s}"
            );
        }
    }

    #[test]
    fn not_numbers() {
        for s in [
            "1e3", "NaN", "nan", "inf", "-", "--5", "+5", "12 50", "0x10", "１２", "十二", "5-",
            "- 5", "12.5a",
        ] {
            assert!(
                matches!(Money::parse_yuan(s), Err(MoneyError::NotANumber { .. })),
                "{s}: {:?}",
                Money::parse_yuan(s)
            );
        }
        assert_eq!(Money::parse_yuan("").unwrap_err(), MoneyError::Empty);
        assert_eq!(Money::parse_yuan("   ").unwrap_err(), MoneyError::Empty);
        assert_eq!(
            Money::parse_yuan("1e3").unwrap_err().to_string(),
            "\"1e3\" is not a valid amount: write digits with an optional dot and up to 2 decimals, e.g. 12.50 (or -3.20 for a refund)"
        );
    }

    #[test]
    fn display() {
        assert_eq!(Money::from_fen(1250).to_string(), "12.50");
        assert_eq!(Money::from_fen(5).to_string(), "0.05");
        assert_eq!(Money::from_fen(-5).to_string(), "-0.05");
        assert_eq!(Money::from_fen(-320).to_string(), "-3.20");
        assert_eq!(Money::from_fen(0).to_string(), "0.00");
        assert_eq!(Money::from_fen(100).to_string(), "1.00");
        assert_eq!(
            Money::from_fen(i64::MIN).to_string(),
            "-92233720368547758.08"
        );
        assert_eq!(
            Money::from_fen(i64::MAX).to_string(),
            "92233720368547758.07"
        );
    }

    #[test]
    fn display_round_trips() {
        for s in ["12.50", "-0.05", "0.00", "100000000.00", "-3.20", "7.07"] {
            assert_eq!(Money::parse_yuan(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn add_sum_ord_default() {
        let a = Money::from_fen(1250);
        let b = Money::from_fen(-320);
        assert_eq!((a + b).fen(), 930);
        assert_eq!(
            vec![a, b, Money::from_fen(5)].into_iter().sum::<Money>(),
            Money::from_fen(935)
        );
        assert_eq!([a, b].iter().sum::<Money>(), Money::from_fen(930));
        assert_eq!(
            Vec::<Money>::new().into_iter().sum::<Money>(),
            Money::default()
        );
        assert_eq!(Money::default().fen(), 0);
        assert!(b < a);
        assert_eq!(
            (Money::from_fen(i64::MAX) + Money::from_fen(1)).fen(),
            i64::MAX
        );
        assert_eq!(
            (Money::from_fen(i64::MIN) + Money::from_fen(-1)).fen(),
            i64::MIN
        );
    }
}

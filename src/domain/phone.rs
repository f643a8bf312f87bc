//! Phone numbers, normalised to E.164 (`+8613800138000`).

use std::fmt;

use thiserror::Error;

/// Why a phone number was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PhoneError {
    /// Nothing but whitespace and separators.
    #[error(
        "phone number is empty; write a mobile number such as 13800138000, or leave the cell blank"
    )]
    Empty,
    /// Something other than digits, separators and a leading `+`.
    #[error(
        "{input} is not a phone number: it contains {ch:?}; write digits only, optionally with a leading + (e.g. 13800138000 or +65 8123 4567)"
    )]
    NotDigits { input: String, ch: char },
    /// Fewer than 11 national digits for a mainland mobile.
    #[error(
        "{input} is too short for a mainland mobile: it has {digits} digits, 11 are needed (e.g. 13800138000)"
    )]
    TooShort { input: String, digits: usize },
    /// More than 11 national digits for a mainland mobile.
    #[error(
        "{input} is too long for a mainland mobile: it has {digits} digits, 11 are needed (e.g. 13800138000); write a foreign number as +<country code> <number>"
    )]
    TooLong { input: String, digits: usize },
    /// A mainland landline (national number starting with 0).
    #[error(
        "{input} looks like a landline; marketing SMS needs a mobile number (11 digits starting 13-19, e.g. 13800138000)"
    )]
    Landline { input: String },
    /// 11 digits that do not start with a mobile prefix (`13`-`19`).
    #[error(
        "{input} is not a mainland mobile: mobile numbers start with 13-19, not {prefix} (check the number)"
    )]
    NotMobilePrefix { input: String, prefix: String },
    /// A non-Chinese number with too few or too many digits.
    #[error(
        "{input} is not a valid international number: it has {digits} digits after the +, 8-15 are needed (e.g. +65 8123 4567)"
    )]
    InternationalLength { input: String, digits: usize },
    /// A `+` (or `00`) followed by `0`: country codes never start with 0.
    #[error(
        "{input} is not a valid international number: country codes never start with 0 (write +<country code> <number>, e.g. +65 8123 4567)"
    )]
    BadCountryCode { input: String },
}

/// Length of a mainland mobile number without the country code.
const MAINLAND_DIGITS: usize = 11;

/// A phone number in E.164 form, e.g. `+8613800138000`.
///
/// `+86` numbers are always mainland mobiles (`1[3-9]` and 9 more digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

impl Phone {
    /// Parse and normalise user input such as `138 0013 8000`, `+86 138-0013-8000`,
    /// `008613800138000` or `+65 8123 4567`.
    pub fn parse(input: &str) -> Result<Phone, PhoneError> {
        let shown = || super::shown_masked(input.trim());
        let compact: String = input
            .chars()
            .filter(|&c| !(c.is_whitespace() || matches!(c, '-' | '(' | ')' | '.')))
            .collect();
        if compact.is_empty() {
            return Err(PhoneError::Empty);
        }
        let (plus, digits) = if let Some(rest) = compact.strip_prefix('+') {
            (true, rest)
        } else if let Some(rest) = compact.strip_prefix("00") {
            (true, rest)
        } else {
            (false, compact.as_str())
        };
        if let Some(ch) = digits.chars().find(|c| !c.is_ascii_digit()) {
            return Err(PhoneError::NotDigits { input: shown(), ch });
        }
        if plus {
            if let Some(national) = digits.strip_prefix("86") {
                return mainland(national, shown);
            }
            if digits.starts_with('0') {
                return Err(PhoneError::BadCountryCode { input: shown() });
            }
            if !(8..=15).contains(&digits.len()) {
                return Err(PhoneError::InternationalLength {
                    input: shown(),
                    digits: digits.len(),
                });
            }
            return Ok(Phone(format!("+{digits}")));
        }
        let national = match digits.strip_prefix("86") {
            Some(rest) if digits.len() > MAINLAND_DIGITS => rest,
            _ => digits,
        };
        mainland(national, shown)
    }

    /// For values read back from our own database: not checked again.
    pub fn from_trusted(value: String) -> Phone {
        Phone(value)
    }

    /// The E.164 form, e.g. `+8613800138000`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `+86` (mainland China) numbers.
    pub fn is_mainland(&self) -> bool {
        self.0.starts_with("+86")
    }

    /// For logs and screens: `+86138****8000`; other countries `+****4567`.
    pub fn masked(&self) -> String {
        if let Some(national) = self.0.strip_prefix("+86") {
            let chars: Vec<char> = national.chars().collect();
            if chars.len() >= 7 {
                let head: String = chars.iter().take(3).collect();
                let tail: String = chars.iter().skip(chars.len() - 4).collect();
                return format!("+86{head}****{tail}");
            }
            return "+86****".to_owned();
        }
        let chars: Vec<char> = self.0.trim_start_matches('+').chars().collect();
        if chars.len() >= 8 {
            let tail: String = chars.iter().skip(chars.len() - 4).collect();
            format!("+****{tail}")
        } else {
            "+****".to_owned()
        }
    }
}

/// Check a mainland national number (country code already removed; ASCII digits only).
fn mainland(national: &str, shown: impl Fn() -> String) -> Result<Phone, PhoneError> {
    if national.starts_with('0') {
        return Err(PhoneError::Landline { input: shown() });
    }
    let digits = national.len();
    if digits < MAINLAND_DIGITS {
        return Err(PhoneError::TooShort {
            input: shown(),
            digits,
        });
    }
    if digits > MAINLAND_DIGITS {
        return Err(PhoneError::TooLong {
            input: shown(),
            digits,
        });
    }
    let b = national.as_bytes();
    if b.first() != Some(&b'1') || !matches!(b.get(1), Some(b'3'..=b'9')) {
        return Err(PhoneError::NotMobilePrefix {
            input: shown(),
            prefix: national.chars().take(2).collect(),
        });
    }
    Ok(Phone(format!("+86{national}")))
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        Phone::parse(s)
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .as_str()
            .to_owned()
    }

    #[test]
    fn mainland_forms_normalise() {
        for s in [
            "13800138000",
            "138 0013 8000",
            "138-0013-8000",
            "(138) 0013.8000",
            "+86 138-0013-8000",
            "+8613800138000",
            "008613800138000",
            "0086 138 0013 8000",
            "8613800138000",
            "86 138 0013 8000",
            "  13800138000\t",
            "138\u{3000}0013\u{3000}8000",
        ] {
            assert_eq!(ok(s), "+8613800138000", "{s:?}");
        }
        for prefix in 3..=9 {
            let s = format!("1{prefix}012345678");
            assert_eq!(ok(&s), format!("+86{s}"));
        }
    }

    #[test]
    fn international_numbers() {
        assert_eq!(ok("+65 8123 4567"), "+6581234567");
        assert_eq!(ok("0065 8123 4567"), "+6581234567");
        assert_eq!(ok("+1 (415) 555-2671"), "+14155552671");
        assert_eq!(ok("+44 20 7946 0958"), "+442079460958");
        assert_eq!(ok("+12345678"), "+12345678");
        assert_eq!(ok("+123456789012345"), "+123456789012345");
        assert!(matches!(
            Phone::parse("+1234567").unwrap_err(),
            PhoneError::InternationalLength { digits: 7, .. }
        ));
        assert!(matches!(
            Phone::parse("+1234567890123456").unwrap_err(),
            PhoneError::InternationalLength { digits: 16, .. }
        ));
        assert!(matches!(
            Phone::parse("+0123456789").unwrap_err(),
            PhoneError::BadCountryCode { .. }
        ));
        assert!(matches!(
            Phone::parse("000123456789").unwrap_err(),
            PhoneError::BadCountryCode { .. }
        ));
        assert!(matches!(
            Phone::parse("+").unwrap_err(),
            PhoneError::InternationalLength { digits: 0, .. }
        ));
    }

    #[test]
    fn empty() {
        for s in ["", "   ", " - ( ) . "] {
            assert_eq!(Phone::parse(s).unwrap_err(), PhoneError::Empty, "{s:?}");
        }
        assert!(
            PhoneError::Empty
                .to_string()
                .contains("leave the cell blank")
        );
    }

    #[test]
    fn not_digits() {
        for (s, ch) in [
            ("138abc38000", 'a'),
            ("１３８００１３８０００", '１'),
            ("138+00138000", '+'),
            ("手机13800138000", '手'),
            ("+86 138/0013/8000", '/'),
            ("++8613800138000", '+'),
        ] {
            match Phone::parse(s) {
                Err(PhoneError::NotDigits { ch: c, .. }) => assert_eq!(c, ch, "{s:?}"),
                other => panic!("{s:?}: {other:?}"),
            }
        }
        let msg = Phone::parse("138abc").unwrap_err().to_string();
        assert!(msg.contains("\"13**bc\""), "{msg}");
        assert!(msg.contains("digits only"), "{msg}");
    }

    #[test]
    fn landlines_rejected() {
        for s in [
            "010-12345678",
            "0755 1234 5678",
            "+86 010 1234 5678",
            "86 010 1234 5678",
            "0086 021 1234 5678",
        ] {
            let e = Phone::parse(s).unwrap_err();
            assert!(matches!(e, PhoneError::Landline { .. }), "{s:?}: {e:?}");
            assert!(e.to_string().contains("marketing SMS needs a mobile"));
        }
    }

    #[test]
    fn bad_mobile_prefix() {
        let e = Phone::parse("12345678901").unwrap_err();
        assert_eq!(
            e,
            PhoneError::NotMobilePrefix {
                input: "\"123*****901\"".into(),
                prefix: "12".into()
            }
        );
        assert!(e.to_string().contains("start with 13-19, not 12"));
        assert!(matches!(
            Phone::parse("+86 11012345678").unwrap_err(),
            PhoneError::NotMobilePrefix { .. }
        ));
        assert!(matches!(
            Phone::parse("23800138000").unwrap_err(),
            PhoneError::NotMobilePrefix { .. }
        ));
    }

    #[test]
    fn wrong_length_for_mainland() {
        assert!(matches!(
            Phone::parse("1380013800").unwrap_err(),
            PhoneError::TooShort { digits: 10, .. }
        ));
        assert!(matches!(
            Phone::parse("+86 1380013800").unwrap_err(),
            PhoneError::TooShort { digits: 10, .. }
        ));
        assert!(matches!(
            Phone::parse("138001380001").unwrap_err(),
            PhoneError::TooLong { digits: 12, .. }
        ));
        assert!(matches!(
            Phone::parse("+86 138001380001").unwrap_err(),
            PhoneError::TooLong { digits: 12, .. }
        ));
        assert!(matches!(
            Phone::parse("86138001380001").unwrap_err(),
            PhoneError::TooLong { digits: 12, .. }
        ));
        assert!(matches!(
            Phone::parse("+86").unwrap_err(),
            PhoneError::TooShort { digits: 0, .. }
        ));
        let e = Phone::parse("123").unwrap_err();
        assert!(e.to_string().contains("too short for a mainland mobile"));
        let huge = "1".repeat(500);
        assert!(matches!(
            Phone::parse(&huge).unwrap_err(),
            PhoneError::TooLong { digits: 500, .. }
        ));
    }

    #[test]
    fn is_mainland_and_display() {
        let p = Phone::parse("13800138000").unwrap();
        assert!(p.is_mainland());
        assert_eq!(p.to_string(), "+8613800138000");
        assert!(!Phone::parse("+65 8123 4567").unwrap().is_mainland());
    }

    #[test]
    fn masking() {
        assert_eq!(
            Phone::parse("13800138000").unwrap().masked(),
            "+86138****8000"
        );
        assert_eq!(Phone::parse("+65 8123 4567").unwrap().masked(), "+****4567");
        assert_eq!(Phone::from_trusted("+86".into()).masked(), "+86****");
        assert_eq!(Phone::from_trusted("+123".into()).masked(), "+****");
        assert_eq!(Phone::from_trusted("".into()).masked(), "+****");
        assert_eq!(
            Phone::from_trusted("+86一二三四五六七八".into()).masked(),
            "+86一二三****五六七八"
        );
    }

    #[test]
    fn from_trusted_round_trips() {
        let p = Phone::from_trusted("+8613800138000".into());
        assert_eq!(p, Phone::parse("138 0013 8000").unwrap());
    }
}

//! Birthdays: month and day, with an optional year.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use thiserror::Error;

const MIN_YEAR: i32 = 1900;
const MAX_YEAR: i32 = 2100;

/// Why a birthday was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BirthdayError {
    /// Not `MM-DD` or `YYYY-MM-DD`.
    #[error(
        "{input} is not a valid birthday: write MM-DD or YYYY-MM-DD with digits and dashes, e.g. 03-07 or 1990-03-07"
    )]
    BadShape { input: String },
    /// Year outside 1900-2100.
    #[error(
        "{input} is not a valid birthday: year must be 1900-2100 (write YYYY-MM-DD, or MM-DD if the year is unknown)"
    )]
    YearOutOfRange { input: String, year: i32 },
    /// Month outside 1-12.
    #[error("{input} is not a valid birthday: month must be 01-12 (write MM-DD or YYYY-MM-DD)")]
    MonthOutOfRange { input: String, month: u32 },
    /// Day outside the days of that month.
    #[error(
        "{input} is not a valid birthday: day must be 01-{max:02} for month {month:02} (write MM-DD or YYYY-MM-DD)"
    )]
    DayOutOfRange {
        input: String,
        month: u32,
        day: u32,
        max: u32,
    },
    /// February 29 with a year that is not a leap year.
    #[error(
        "{input} is not a valid birthday: {year} is not a leap year, so February has only 28 days (check the year, or write 02-29 without it)"
    )]
    NotLeapYear { input: String, year: i32 },
}

/// A birthday: month and day, and the year if known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Birthday {
    month: u8,
    day: u8,
    year: Option<i32>,
}

fn is_leap(year: i32) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

/// Days in `month` (1-12); February has 29 when the year is unknown.
fn days_in_month(month: u32, year: Option<i32>) -> u32 {
    match month {
        2 => match year {
            Some(y) if !is_leap(y) => 28,
            _ => 29,
        },
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parse 1..=max_len ASCII digits.
fn number(part: &str, max_len: usize) -> Option<u32> {
    if part.is_empty() || part.len() > max_len || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Check the parts; `input` is already quoted for messages.
fn validate(
    input: impl Fn() -> String,
    year: Option<i32>,
    month: u32,
    day: u32,
) -> Result<Birthday, BirthdayError> {
    if let Some(y) = year
        && !(MIN_YEAR..=MAX_YEAR).contains(&y)
    {
        return Err(BirthdayError::YearOutOfRange {
            input: input(),
            year: y,
        });
    }
    if !(1..=12).contains(&month) {
        return Err(BirthdayError::MonthOutOfRange {
            input: input(),
            month,
        });
    }
    let max = days_in_month(month, year);
    if let Some(y) = year
        && month == 2
        && day == 29
        && max == 28
    {
        return Err(BirthdayError::NotLeapYear {
            input: input(),
            year: y,
        });
    }
    if !(1..=max).contains(&day) {
        return Err(BirthdayError::DayOutOfRange {
            input: input(),
            month,
            day,
            max,
        });
    }
    // month <= 12 and day <= 31 were checked above, so both fit in u8.
    Ok(Birthday {
        month: u8::try_from(month).unwrap_or(1),
        day: u8::try_from(day).unwrap_or(1),
        year,
    })
}

impl Birthday {
    /// Parse `MM-DD` or `YYYY-MM-DD` (single-digit month or day allowed, e.g. `3-7`).
    pub fn parse(input: &str) -> Result<Birthday, BirthdayError> {
        let s = input.trim();
        let shown = || super::shown(s);
        let bad = || BirthdayError::BadShape { input: shown() };
        let parts: Vec<&str> = s.split('-').collect();
        let (year, month, day) = match parts.as_slice() {
            [m, d] => (None, *m, *d),
            [y, m, d] => {
                if y.len() != 4 {
                    return Err(bad());
                }
                let year = number(y, 4).ok_or_else(bad)?;
                (Some(i32::try_from(year).map_err(|_| bad())?), *m, *d)
            }
            _ => return Err(bad()),
        };
        let month = number(month, 2).ok_or_else(bad)?;
        let day = number(day, 2).ok_or_else(bad)?;
        validate(shown, year, month, day)
    }

    /// Build from numbers, with the same checks as [`Birthday::parse`].
    pub fn new(month: u8, day: u8, year: Option<i32>) -> Result<Birthday, BirthdayError> {
        let shown = || match year {
            Some(y) => format!("\"{y:04}-{month:02}-{day:02}\""),
            None => format!("\"{month:02}-{day:02}\""),
        };
        validate(shown, year, u32::from(month), u32::from(day))
    }

    /// Month, 1-12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// Day of the month, 1-31.
    pub fn day(&self) -> u8 {
        self.day
    }

    /// Year of birth, if known.
    pub fn year(&self) -> Option<i32> {
        self.year
    }

    /// The date of the birthday in `year`; Feb 29 falls on Feb 28 in common years.
    /// Years beyond what `chrono` supports are clamped to its range.
    pub fn celebrated_on(&self, year: i32) -> NaiveDate {
        let y = year.clamp(NaiveDate::MIN.year(), NaiveDate::MAX.year());
        let (m, d) = (u32::from(self.month), u32::from(self.day));
        NaiveDate::from_ymd_opt(y, m, d)
            .or_else(|| NaiveDate::from_ymd_opt(y, m, 28))
            .unwrap_or(NaiveDate::MIN)
    }
}

impl fmt::Display for Birthday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(y) = self.year {
            write!(f, "{y:04}-")?;
        }
        write!(f, "{:02}-{:02}", self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn parses_month_day() {
        let b = Birthday::parse("03-07").unwrap();
        assert_eq!((b.month(), b.day(), b.year()), (3, 7, None));
        assert_eq!(b.to_string(), "03-07");
        assert_eq!(Birthday::parse(" 3-7 ").unwrap(), b);
        assert_eq!(Birthday::parse("12-31").unwrap().to_string(), "12-31");
        assert_eq!(Birthday::parse("1-1").unwrap().to_string(), "01-01");
    }

    #[test]
    fn parses_full_date() {
        let b = Birthday::parse("1990-02-28").unwrap();
        assert_eq!((b.month(), b.day(), b.year()), (2, 28, Some(1990)));
        assert_eq!(b.to_string(), "1990-02-28");
        assert_eq!(
            Birthday::parse("1990-3-7").unwrap().to_string(),
            "1990-03-07"
        );
        assert!(Birthday::parse("1900-01-01").is_ok());
        assert!(Birthday::parse("2100-12-31").is_ok());
    }

    #[test]
    fn bad_shapes() {
        for s in [
            "",
            "  ",
            "0307",
            "03/07",
            "03-07-1990",
            "90-03-07",
            "01990-03-07",
            "1990-03",
            "1990--03-07",
            "-03-07",
            "03-",
            "-07",
            "003-07",
            "03-007",
            "+3-07",
            "三月-七日",
            "０３-０７",
            "1990-03-07T00:00",
            "a-b",
            "1990-03-07-01",
        ] {
            assert!(
                matches!(Birthday::parse(s), Err(BirthdayError::BadShape { .. })),
                "{s:?}: {:?}",
                Birthday::parse(s)
            );
        }
        assert_eq!(
            Birthday::parse("0307").unwrap_err().to_string(),
            "\"0307\" is not a valid birthday: write MM-DD or YYYY-MM-DD with digits and dashes, e.g. 03-07 or 1990-03-07"
        );
    }

    #[test]
    fn month_out_of_range() {
        let e = Birthday::parse("13-45").unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"13-45\" is not a valid birthday: month must be 01-12 (write MM-DD or YYYY-MM-DD)"
        );
        assert!(matches!(
            Birthday::parse("00-10").unwrap_err(),
            BirthdayError::MonthOutOfRange { month: 0, .. }
        ));
        assert!(matches!(
            Birthday::parse("1990-13-01").unwrap_err(),
            BirthdayError::MonthOutOfRange { month: 13, .. }
        ));
    }

    #[test]
    fn day_out_of_range() {
        for (s, max) in [
            ("04-31", 30),
            ("01-32", 31),
            ("02-30", 29),
            ("1990-02-30", 28),
            ("2000-02-30", 29),
            ("06-00", 30),
            ("12-99", 31),
        ] {
            match Birthday::parse(s) {
                Err(BirthdayError::DayOutOfRange { max: m, .. }) => assert_eq!(m, max, "{s}"),
                other => panic!("{s}: {other:?}"),
            }
        }
        assert_eq!(
            Birthday::parse("04-31").unwrap_err().to_string(),
            "\"04-31\" is not a valid birthday: day must be 01-30 for month 04 (write MM-DD or YYYY-MM-DD)"
        );
    }

    #[test]
    fn year_out_of_range() {
        for s in ["1899-12-31", "2101-01-01", "0000-01-01", "9999-01-01"] {
            assert!(
                matches!(
                    Birthday::parse(s),
                    Err(BirthdayError::YearOutOfRange { .. })
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn feb_29() {
        assert_eq!(Birthday::parse("02-29").unwrap().to_string(), "02-29");
        assert_eq!(
            Birthday::parse("2000-02-29").unwrap().to_string(),
            "2000-02-29"
        );
        assert!(Birthday::parse("1996-02-29").is_ok());
        for (s, y) in [
            ("1990-02-29", 1990),
            ("1900-02-29", 1900),
            ("2100-02-29", 2100),
        ] {
            let e = Birthday::parse(s).unwrap_err();
            assert_eq!(
                e,
                BirthdayError::NotLeapYear {
                    input: format!("{s:?}"),
                    year: y
                }
            );
            assert!(e.to_string().contains("is not a leap year"));
        }
    }

    #[test]
    fn new_checks_like_parse() {
        assert_eq!(
            Birthday::new(2, 29, None).unwrap(),
            Birthday::parse("02-29").unwrap()
        );
        assert_eq!(
            Birthday::new(3, 7, Some(1990)).unwrap().to_string(),
            "1990-03-07"
        );
        assert_eq!(
            Birthday::new(13, 1, None).unwrap_err().to_string(),
            "\"13-01\" is not a valid birthday: month must be 01-12 (write MM-DD or YYYY-MM-DD)"
        );
        assert!(matches!(
            Birthday::new(2, 29, Some(2027)),
            Err(BirthdayError::NotLeapYear { year: 2027, .. })
        ));
        assert!(matches!(
            Birthday::new(1, 0, None),
            Err(BirthdayError::DayOutOfRange { .. })
        ));
        assert!(matches!(
            Birthday::new(255, 255, Some(i32::MIN)),
            Err(BirthdayError::YearOutOfRange { .. })
        ));
        assert!(matches!(
            Birthday::new(0, 1, None),
            Err(BirthdayError::MonthOutOfRange { .. })
        ));
    }

    #[test]
    fn celebrated_on() {
        let leap = Birthday::parse("02-29").unwrap();
        assert_eq!(leap.celebrated_on(2027), date(2027, 2, 28));
        assert_eq!(leap.celebrated_on(2028), date(2028, 2, 29));
        assert_eq!(leap.celebrated_on(2100), date(2100, 2, 28));
        assert_eq!(leap.celebrated_on(2000), date(2000, 2, 29));
        let b = Birthday::parse("1990-12-31").unwrap();
        assert_eq!(b.celebrated_on(2026), date(2026, 12, 31));
        assert_eq!(
            Birthday::parse("01-01").unwrap().celebrated_on(2026),
            date(2026, 1, 1)
        );
    }

    #[test]
    fn celebrated_on_extreme_years_does_not_panic() {
        let b = Birthday::parse("02-29").unwrap();
        let hi = b.celebrated_on(i32::MAX);
        assert_eq!(hi.year(), NaiveDate::MAX.year());
        let lo = b.celebrated_on(i32::MIN);
        assert_eq!(lo.year(), NaiveDate::MIN.year());
        let _ = Birthday::parse("12-31").unwrap().celebrated_on(i32::MAX);
        let _ = Birthday::parse("01-01").unwrap().celebrated_on(i32::MIN);
    }

    #[test]
    fn ordering_and_copy() {
        let a = Birthday::parse("01-15").unwrap();
        let b = a;
        assert_eq!(a, b);
        assert!(Birthday::parse("01-15").unwrap() < Birthday::parse("02-01").unwrap());
    }
}

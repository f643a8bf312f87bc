//! Attribute values as evaluation sees them, and how they are shown.

use std::collections::HashMap;

use chrono::{Days, NaiveDate};

use super::catalog::{Attr, AttrType};
use crate::domain::Money;

/// One customer's value of one attribute.
///
/// Money is in fen, Days a number of days, Date a day number (days since
/// 1970-01-01 in the store's local calendar); all three are `Int`. Enum and
/// Text attributes are `Text`; `tags` is `Tags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// No value (e.g. `recency_days` before the first order).
    Null,
    /// A whole number, amount in fen, number of days or day number.
    Int(i64),
    /// Text or a category.
    Text(String),
    /// The customer's tags.
    Tags(Vec<String>),
}

impl Value {
    /// Tags as stored in the database (`vip;spicy`): split on `;`, trimmed, empties dropped.
    pub fn tags_from_db(stored: &str) -> Value {
        Value::Tags(
            stored
                .split(';')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// `Int` or `Null`.
    pub fn from_opt_int(value: Option<i64>) -> Value {
        value.map_or(Value::Null, Value::Int)
    }

    /// `Text` or `Null`.
    pub fn from_opt_text(value: Option<&str>) -> Value {
        value.map_or(Value::Null, |s| Value::Text(s.to_owned()))
    }
}

/// Where evaluation reads a customer's attributes from.
pub trait AttrLookup {
    /// The value of `attr` for this customer (`Value::Null` when it has none).
    fn get(&self, attr: Attr) -> Value;
}

/// A map; attributes missing from it are `Null`.
impl AttrLookup for HashMap<Attr, Value> {
    fn get(&self, attr: Attr) -> Value {
        HashMap::get(self, &attr).cloned().unwrap_or(Value::Null)
    }
}

/// Any `Fn(Attr) -> Value`.
impl<F: Fn(Attr) -> Value> AttrLookup for F {
    fn get(&self, attr: Attr) -> Value {
        self(attr)
    }
}

/// The first day of the day-number calendar.
fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

/// Days since 1970-01-01 (negative before).
pub fn day_number(date: NaiveDate) -> i64 {
    date.signed_duration_since(epoch()).num_days()
}

/// The date of a day number, if representable.
pub fn date_of_day_number(day: i64) -> Option<NaiveDate> {
    let days = Days::new(day.unsigned_abs());
    if day >= 0 {
        epoch().checked_add_days(days)
    } else {
        epoch().checked_sub_days(days)
    }
}

/// An `Int` in the attribute's unit: `12`, `¥99.50`, `30 days`, `2024-03-15`.
pub(crate) fn show_int(attr: Attr, n: i64) -> String {
    match attr.ty() {
        AttrType::Money => {
            if n < 0 {
                format!("-¥{}", Money::from_fen(n.saturating_neg()))
            } else {
                format!("¥{}", Money::from_fen(n))
            }
        }
        AttrType::Days if n.abs() == 1 => format!("{n} day"),
        AttrType::Days => format!("{n} days"),
        AttrType::Date => date_of_day_number(n).map_or(n.to_string(), |d| d.to_string()),
        _ => n.to_string(),
    }
}

/// A customer's actual value, for `explain`.
pub(crate) fn show_value(attr: Attr, value: &Value) -> String {
    match value {
        Value::Null => "none".to_owned(),
        Value::Int(n) => show_int(attr, *n),
        Value::Text(s) => s.clone(),
        Value::Tags(tags) if tags.is_empty() => "no tags".to_owned(),
        Value::Tags(tags) => tags.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_round_trip() {
        for day in [-1000, -1, 0, 1, 19782, 20000, 2_000_000] {
            let date = date_of_day_number(day).unwrap();
            assert_eq!(day_number(date), day);
        }
        assert_eq!(date_of_day_number(19782).unwrap().to_string(), "2024-02-29");
        assert_eq!(date_of_day_number(i64::MAX), None);
    }

    #[test]
    fn shown_in_units() {
        assert_eq!(show_int(Attr::TotalSpent, 12350), "¥123.50");
        assert_eq!(show_int(Attr::TotalSpent, -320), "-¥3.20");
        assert_eq!(show_int(Attr::RecencyDays, 45), "45 days");
        assert_eq!(show_int(Attr::DaysToBirthday, 1), "1 day");
        assert_eq!(show_int(Attr::FirstOrderAt, 19782), "2024-02-29");
        assert_eq!(show_int(Attr::OrderCount, 12), "12");
        assert_eq!(show_value(Attr::Store, &Value::Null), "none");
        assert_eq!(show_value(Attr::Tags, &Value::Tags(vec![])), "no tags");
        assert_eq!(
            show_value(Attr::Tags, &Value::tags_from_db(" vip;;spicy ")),
            "vip, spicy"
        );
    }
}

//! Turning raw rows into domain values: customers and orders.

use std::collections::HashMap;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::RowError;
use super::source::{RawRow, Schema};
use crate::domain::{
    Birthday, Consent, Customer, CustomerId, Email, Money, Order, OrderId, Phone, StoreCode,
    StoreInfo, Tags, WeChatOpenId,
};

/// Customer files.
pub static CUSTOMERS: Schema = Schema {
    kind: "customers",
    columns: &[
        "id",
        "name",
        "phone",
        "email",
        "wechat_openid",
        "birthday",
        "store",
        "tags",
        "sms_opt_in",
        "email_opt_in",
        "wechat_opt_in",
        "joined_at",
    ],
    required: &["id"],
};

/// Order files.
pub static ORDERS: Schema = Schema {
    kind: "orders",
    columns: &[
        "id",
        "customer_id",
        "store",
        "amount",
        "ordered_at",
        "coupon_code",
    ],
    required: &["id", "customer_id", "store", "amount", "ordered_at"],
};

/// Longest accepted customer name, in characters.
const MAX_NAME_CHARS: usize = 64;
/// Longest accepted coupon code.
const MAX_COUPON_CHARS: usize = 64;

/// What parsing needs to know: the stores and the default zone.
#[derive(Debug, Clone)]
pub struct ParseContext {
    pub stores: HashMap<String, StoreInfo>,
    pub default_tz: Tz,
}

impl ParseContext {
    /// Build from the store list.
    pub fn new(stores: Vec<StoreInfo>, default_tz: Tz) -> Self {
        Self {
            stores: stores
                .into_iter()
                .map(|s| (s.code.as_str().to_owned(), s))
                .collect(),
            default_tz,
        }
    }

    fn store(&self, code: &str) -> Result<&StoreInfo, String> {
        let code = StoreCode::parse(code).map_err(|e| e.to_string())?;
        self.stores.get(code.as_str()).ok_or_else(|| {
            let mut known: Vec<&str> = self.stores.keys().map(String::as_str).collect();
            known.sort_unstable();
            if known.is_empty() {
                format!(
                    "unknown store {:?}: no stores are defined yet; add it under [stores.{}] in outreach.toml",
                    code.as_str(),
                    code.as_str()
                )
            } else {
                format!(
                    "unknown store {:?} (known: {}); add it under [stores.{}] in outreach.toml",
                    code.as_str(),
                    known.join(", "),
                    code.as_str()
                )
            }
        })
    }
}

/// Error builder for one row.
struct RowCtx<'a> {
    row: &'a RawRow,
    schema: &'static Schema,
    columns: &'a [Option<usize>],
}

impl RowCtx<'_> {
    fn err(&self, idx: usize, reason: impl Into<String>) -> RowError {
        RowError {
            line: self.row.line,
            column: self.columns.get(idx).copied().flatten(),
            field: Some(self.schema.columns[idx]),
            reason: reason.into(),
        }
    }

    fn required(&self, idx: usize) -> Result<&str, RowError> {
        self.row
            .get(idx)
            .ok_or_else(|| self.err(idx, format!("{} is required", self.schema.columns[idx])))
    }

    fn optional<T, E: std::fmt::Display>(
        &self,
        idx: usize,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, RowError> {
        self.row
            .get(idx)
            .map(|v| parse(v).map_err(|e| self.err(idx, e.to_string())))
            .transpose()
    }
}

/// Parse a timestamp: RFC 3339 with offset, or `YYYY-MM-DD HH:MM:SS`
/// (also with `T`, or minutes only) in `tz`, or a bare date (midnight in `tz`).
pub fn parse_instant(text: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or_else(|| {
            format!(
                "{text:?} is not a time: write RFC 3339 (2026-03-01T07:45:00+08:00) or \"YYYY-MM-DD HH:MM:SS\" in the store's time zone"
            )
        })?;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        // Clocks went back: the wall time happened twice; take the first.
        LocalResult::Ambiguous(first, _) => Ok(first.with_timezone(&Utc)),
        LocalResult::None => Err(format!(
            "{text:?} does not exist in {} (the clocks skipped it); give the time with its UTC offset",
            tz.name()
        )),
    }
}

fn parse_name(s: &str) -> Result<String, String> {
    if s.chars().count() > MAX_NAME_CHARS {
        return Err(format!("name is longer than {MAX_NAME_CHARS} characters"));
    }
    if s.chars().any(char::is_control) {
        return Err("name contains control characters".into());
    }
    Ok(s.to_owned())
}

/// A customer row.
pub fn customer(
    row: &RawRow,
    columns: &[Option<usize>],
    ctx: &ParseContext,
) -> Result<Customer, RowError> {
    let r = RowCtx {
        row,
        schema: &CUSTOMERS,
        columns,
    };
    let id = CustomerId::parse(r.required(0)?).map_err(|e| r.err(0, e.to_string()))?;
    let store = r.optional(6, |s| ctx.store(s).map(|info| info.code.clone()))?;
    let tz = store
        .as_ref()
        .and_then(|s| ctx.stores.get(s.as_str()))
        .map_or(ctx.default_tz, |s| s.timezone);
    let consent = |idx| -> Result<Consent, RowError> {
        Ok(r.optional(idx, Consent::parse)?.unwrap_or_default())
    };
    Ok(Customer {
        id,
        name: r.optional(1, parse_name)?,
        phone: r.optional(2, Phone::parse)?,
        email: r.optional(3, Email::parse)?,
        wechat_openid: r.optional(4, WeChatOpenId::parse)?,
        birthday: r.optional(5, Birthday::parse)?,
        store,
        tags: r.optional(7, Tags::parse)?.unwrap_or_default(),
        sms_opt_in: consent(8)?,
        email_opt_in: consent(9)?,
        wechat_opt_in: consent(10)?,
        joined_at: r.optional(11, |s| parse_instant(s, tz))?,
    })
}

/// An order row.
pub fn order(
    row: &RawRow,
    columns: &[Option<usize>],
    ctx: &ParseContext,
) -> Result<Order, RowError> {
    let r = RowCtx {
        row,
        schema: &ORDERS,
        columns,
    };
    let id = OrderId::parse(r.required(0)?).map_err(|e| r.err(0, e.to_string()))?;
    let customer_id = CustomerId::parse(r.required(1)?).map_err(|e| r.err(1, e.to_string()))?;
    let store = ctx.store(r.required(2)?).map_err(|e| r.err(2, e))?;
    let amount = Money::parse_yuan(r.required(3)?).map_err(|e| r.err(3, e.to_string()))?;
    let ordered_at = parse_instant(r.required(4)?, store.timezone).map_err(|e| r.err(4, e))?;
    let coupon_code = r.optional(5, |s| {
        if s.chars().count() > MAX_COUPON_CHARS
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            Err(format!(
                "{s:?} is not a coupon code (at most {MAX_COUPON_CHARS} characters, no spaces)"
            ))
        } else {
            Ok(s.to_owned())
        }
    })?;
    Ok(Order {
        id,
        customer_id,
        store: store.code.clone(),
        amount,
        ordered_at,
        local_time: Order::local_time_in(ordered_at, store.timezone),
        coupon_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_in_store_zones() {
        let sh = chrono_tz::Asia::Shanghai;
        let t = parse_instant("2026-03-01 07:45:00", sh).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-02-28T23:45:00+00:00");
        let t = parse_instant("2026-03-01T07:45:00+08:00", chrono_tz::UTC).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-02-28T23:45:00+00:00");
        assert_eq!(
            parse_instant("2026-03-01", sh).unwrap().to_rfc3339(),
            "2026-02-28T16:00:00+00:00"
        );
        // Sydney: 2026-10-04 02:30 does not exist (DST starts), 2026-04-05 02:30 happens twice.
        let syd = chrono_tz::Australia::Sydney;
        assert!(
            parse_instant("2026-10-04 02:30:00", syd)
                .unwrap_err()
                .contains("does not exist")
        );
        assert_eq!(
            parse_instant("2026-04-05 02:30:00", syd)
                .unwrap()
                .to_rfc3339(),
            "2026-04-04T15:30:00+00:00"
        );
        assert!(
            parse_instant("yesterday", sh)
                .unwrap_err()
                .contains("RFC 3339")
        );
    }
}

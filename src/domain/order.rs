//! An order placed at a store.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{CustomerId, Money, OrderId, StoreCode};

/// One order: who, where, how much and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// The chain's own order id.
    pub id: OrderId,
    /// Who ordered.
    pub customer_id: CustomerId,
    /// Where.
    pub store: StoreCode,
    /// How much; negative for refunds.
    pub amount: Money,
    /// When, as an instant.
    pub ordered_at: DateTime<Utc>,
    /// wall-clock time in the store's zone (for local dates and dayparts)
    pub local_time: NaiveDateTime,
    /// Coupon redeemed with the order, if any.
    pub coupon_code: Option<String>,
}

impl Order {
    /// The wall-clock time of `ordered_at` in the store's zone `tz`.
    pub fn local_time_in(ordered_at: DateTime<Utc>, tz: chrono_tz::Tz) -> NaiveDateTime {
        ordered_at.with_timezone(&tz).naive_local()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    fn naive(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    #[test]
    fn local_time_shanghai() {
        let at = Utc.with_ymd_and_hms(2026, 2, 28, 23, 45, 0).unwrap();
        assert_eq!(
            Order::local_time_in(at, chrono_tz::Asia::Shanghai),
            naive(2026, 3, 1, 7, 45)
        );
    }

    #[test]
    fn local_time_utc_and_dst_zone() {
        let at = Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap();
        assert_eq!(
            Order::local_time_in(at, chrono_tz::UTC),
            naive(2026, 7, 1, 12, 0)
        );
        // Summer time in Sydney is in January (UTC+11), winter in July (UTC+10).
        assert_eq!(
            Order::local_time_in(at, chrono_tz::Australia::Sydney),
            naive(2026, 7, 1, 22, 0)
        );
        let jan = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        assert_eq!(
            Order::local_time_in(jan, chrono_tz::Australia::Sydney),
            naive(2026, 1, 1, 23, 0)
        );
    }

    #[test]
    fn order_holds_values() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 4, 30, 0).unwrap();
        let o = Order {
            id: OrderId::parse("O-1").unwrap(),
            customer_id: CustomerId::parse("C1").unwrap(),
            store: StoreCode::parse("SH-002").unwrap(),
            amount: Money::parse_yuan("-3.20").unwrap(),
            ordered_at: at,
            local_time: Order::local_time_in(at, chrono_tz::Asia::Shanghai),
            coupon_code: Some("SPRING10".into()),
        };
        assert_eq!(o.local_time, naive(2026, 3, 1, 12, 30));
        assert_eq!(o.amount.to_string(), "-3.20");
        assert_eq!(o.clone(), o);
    }
}

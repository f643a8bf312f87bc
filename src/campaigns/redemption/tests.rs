use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::{CouponFacts, Refusal, before_discount_fen, decide, refusal};
use crate::domain::{CustomerId, Money, Order, OrderId, StoreCode};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn coupon(code: &str, kind: &str, value: i64, min_spend_fen: i64) -> CouponFacts {
    CouponFacts {
        code: code.to_owned(),
        customer_id: "C1".to_owned(),
        kind: kind.to_owned(),
        value,
        min_spend_fen,
        issued_at: t("2027-03-01T02:00:00Z"),
        expires_at: t("2027-03-14T16:00:00Z"),
        voided_at: None,
        redeemed_order_id: None,
        redeemed_at: None,
    }
}

fn order(id: &str, customer: &str, fen: i64, at: &str, code: &str) -> Order {
    let ordered_at = t(at);
    Order {
        id: OrderId::from_trusted(id.to_owned()),
        customer_id: CustomerId::from_trusted(customer.to_owned()),
        store: StoreCode::from_trusted("SH-001".to_owned()),
        amount: Money::from_fen(fen),
        ordered_at,
        local_time: ordered_at.naive_utc() + Duration::hours(8),
        coupon_code: Some(code.to_owned()),
    }
}

#[test]
fn a_valid_order_redeems_and_each_rule_refuses_with_its_reason() {
    let c = coupon("BDAYX", "amount_off", 1000, 3000);
    let ok = order("O1", "C1", 2000, "2027-03-05T01:00:00Z", "BDAYX");
    assert_eq!(refusal(&ok, &c), None, "¥20 paid + ¥10 off reaches ¥30");

    let low = order("O2", "C1", 1999, "2027-03-05T01:00:00Z", "BDAYX");
    assert_eq!(
        refusal(&low, &c),
        Some(Refusal::BelowMinSpend {
            before_discount_fen: 2999,
            min_spend_fen: 3000
        })
    );
    let other = order("O3", "C2", 5000, "2027-03-05T01:00:00Z", "BDAYX");
    assert_eq!(
        refusal(&other, &c),
        Some(Refusal::OtherCustomer {
            owner: "C1".to_owned()
        })
    );
    let early = order("O4", "C1", 5000, "2027-03-01T01:59:59Z", "BDAYX");
    assert!(matches!(
        refusal(&early, &c),
        Some(Refusal::NotYetIssued { .. })
    ));
    let last_moment = order("O5", "C1", 5000, "2027-03-14T15:59:59Z", "BDAYX");
    assert_eq!(refusal(&last_moment, &c), None);
    let late = order("O6", "C1", 5000, "2027-03-14T16:00:00Z", "BDAYX");
    assert!(matches!(refusal(&late, &c), Some(Refusal::Expired { .. })));

    let voided = CouponFacts {
        voided_at: Some(t("2027-03-01T03:00:00Z")),
        ..c.clone()
    };
    assert_eq!(refusal(&ok, &voided), Some(Refusal::Withdrawn));
    let used = CouponFacts {
        redeemed_order_id: Some("O0".to_owned()),
        redeemed_at: Some(t("2027-03-02T04:30:00Z")),
        ..c
    };
    let why = refusal(&ok, &used).unwrap();
    assert_eq!(
        why.describe("BDAYX", Duration::hours(8)),
        "coupon BDAYX was already redeemed by order O0 at 2027-03-02 12:30; a coupon redeems once"
    );
}

#[test]
fn the_minimum_spend_is_checked_before_the_discount() {
    let pct = coupon("P", "percent_off", 20, 5000);
    // ¥40 paid at 20 % off was ¥50 before.
    assert_eq!(before_discount_fen(&pct, 4000), 5000);
    // Rounded up to the fen: ¥39.99 / 0.8 = ¥49.9875 → ¥49.99.
    assert_eq!(before_discount_fen(&pct, 3999), 4999);
    let item = coupon("F", "free_item", 0, 1500);
    assert_eq!(before_discount_fen(&item, 1500), 1500);
    let amount = coupon("A", "amount_off", 500, 0);
    assert_eq!(before_discount_fen(&amount, 100), 600);
}

#[test]
fn within_a_batch_the_earliest_order_wins_and_the_rest_are_told_why() {
    let c = coupon("WBX", "percent_off", 20, 0);
    let coupons = HashMap::from([(c.code.clone(), c)]);
    let late = order("O9", "C1", 3000, "2027-03-06T01:00:00Z", "WBX");
    let early = order("O7", "C1", 3000, "2027-03-05T01:00:00Z", "WBX");
    let foreign = order("O8", "C1", 3000, "2027-03-05T01:00:00Z", "SHOP-OWN");
    let mut refund = order("O6", "C1", -3000, "2027-03-05T02:00:00Z", "WBX");
    refund.amount = Money::from_fen(-3000);
    let batch = [(0, &late), (1, &early), (2, &foreign), (3, &refund)];
    let d = decide(&batch, &coupons);
    assert_eq!(d.claim, vec![(1, "WBX".to_owned())]);
    assert_eq!(d.foreign, 1);
    assert_eq!(d.held, 0);
    assert_eq!(d.refused.len(), 1, "{d:?}");
    assert_eq!(d.refused[0].0, 0);
    assert_eq!(
        d.refused[0].2,
        Refusal::AlreadyRedeemed {
            order_id: "O7".to_owned(),
            at: Some(t("2027-03-05T01:00:00Z"))
        }
    );
}

#[test]
fn re_importing_the_redeeming_order_is_quiet() {
    let mut c = coupon("WBX", "percent_off", 20, 0);
    c.redeemed_order_id = Some("O7".to_owned());
    let coupons = HashMap::from([(c.code.clone(), c)]);
    let again = order("O7", "C1", 3000, "2027-03-05T01:00:00Z", "WBX");
    let d = decide(&[(0, &again)], &coupons);
    assert_eq!((d.claim.len(), d.held, d.refused.len()), (0, 1, 0));
}

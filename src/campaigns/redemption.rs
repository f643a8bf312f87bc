//! Coupon redemption at order import: an order whose `coupon_code` names an
//! issued coupon redeems it, once. Which order may redeem which coupon is
//! decided here, from the coupon's row as the store read it; the store then
//! claims each coupon with a guarded update (`redeemed_order_id IS NULL`), so
//! two imports racing for one code cannot both win.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use crate::domain::{Money, Order};

/// An issued coupon as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponFacts {
    pub code: String,
    pub customer_id: String,
    /// `amount_off`, `percent_off` or `free_item`.
    pub kind: String,
    /// Fen for `amount_off`, percent for `percent_off`.
    pub value: i64,
    pub min_spend_fen: i64,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub voided_at: Option<DateTime<Utc>>,
    pub redeemed_order_id: Option<String>,
    pub redeemed_at: Option<DateTime<Utc>>,
}

/// Why an order's coupon code did not redeem its coupon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its message lost its place to a higher-priority campaign.
    Withdrawn,
    AlreadyRedeemed {
        order_id: String,
        /// `None` when another writer claimed it meanwhile.
        at: Option<DateTime<Utc>>,
    },
    OtherCustomer {
        owner: String,
    },
    NotYetIssued {
        issued_at: DateTime<Utc>,
    },
    Expired {
        expires_at: DateTime<Utc>,
    },
    BelowMinSpend {
        /// The order's amount before the coupon's discount.
        before_discount_fen: i64,
        min_spend_fen: i64,
    },
}

impl Refusal {
    /// The sentence for the import report; instants are shown in the
    /// order's local time (`offset` = local minus UTC).
    pub fn describe(&self, code: &str, offset: Duration) -> String {
        let local = |t: &DateTime<Utc>| (t.naive_utc() + offset).format("%Y-%m-%d %H:%M");
        match self {
            Refusal::Withdrawn => format!(
                "coupon {code} was withdrawn (its message gave way to a higher-priority campaign under the frequency cap); not redeemed"
            ),
            Refusal::AlreadyRedeemed { order_id, at } => match at {
                Some(at) => format!(
                    "coupon {code} was already redeemed by order {order_id} at {}; a coupon redeems once",
                    local(at)
                ),
                None => format!(
                    "coupon {code} was already redeemed by order {order_id}; a coupon redeems once"
                ),
            },
            Refusal::OtherCustomer { owner } => format!(
                "coupon {code} was issued to customer {owner}, not to this order's customer; not redeemed"
            ),
            Refusal::NotYetIssued { issued_at } => format!(
                "coupon {code} was issued at {}, after this order was placed; not redeemed",
                local(issued_at)
            ),
            Refusal::Expired { expires_at } => format!(
                "coupon {code} expired at {}, before this order was placed; not redeemed",
                local(expires_at)
            ),
            Refusal::BelowMinSpend {
                before_discount_fen,
                min_spend_fen,
            } => format!(
                "coupon {code} needs a spend of at least ¥{}, this order comes to ¥{} before the discount; not redeemed",
                Money::from_fen(*min_spend_fen),
                Money::from_fen(*before_discount_fen)
            ),
        }
    }
}

/// The order's amount before the coupon: `amount` is what the customer
/// paid, so an amount-off coupon's value is added back and a percent-off
/// coupon's share is divided out (rounded up to the fen).
pub fn before_discount_fen(coupon: &CouponFacts, paid_fen: i64) -> i64 {
    match coupon.kind.as_str() {
        "amount_off" => paid_fen.saturating_add(coupon.value),
        "percent_off" if (1..100).contains(&coupon.value) => {
            let keep = 100 - coupon.value;
            (paid_fen.saturating_mul(100) + keep - 1) / keep
        }
        _ => paid_fen,
    }
}

/// Why `order` may not redeem `coupon`, or `None` when it may. The most
/// telling reason first: withdrawn, someone else's, used, not valid at the
/// order's time, below the minimum spend.
pub fn refusal(order: &Order, coupon: &CouponFacts) -> Option<Refusal> {
    if coupon.voided_at.is_some() {
        return Some(Refusal::Withdrawn);
    }
    if coupon.customer_id != order.customer_id.as_str() {
        return Some(Refusal::OtherCustomer {
            owner: coupon.customer_id.clone(),
        });
    }
    if let Some(by) = &coupon.redeemed_order_id
        && by != order.id.as_str()
    {
        return Some(Refusal::AlreadyRedeemed {
            order_id: by.clone(),
            at: coupon.redeemed_at,
        });
    }
    if order.ordered_at < coupon.issued_at {
        return Some(Refusal::NotYetIssued {
            issued_at: coupon.issued_at,
        });
    }
    if order.ordered_at >= coupon.expires_at {
        return Some(Refusal::Expired {
            expires_at: coupon.expires_at,
        });
    }
    let before = before_discount_fen(coupon, order.amount.fen());
    if before < coupon.min_spend_fen {
        return Some(Refusal::BelowMinSpend {
            before_discount_fen: before,
            min_spend_fen: coupon.min_spend_fen,
        });
    }
    None
}

/// What to do with a batch's coupon codes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decisions {
    /// (index into the batch, code): claim the coupon for that order.
    pub claim: Vec<(usize, String)>,
    /// Orders that already hold their coupon (a re-import).
    pub held: u64,
    /// Codes that match no issued coupon (the shop's own promotions).
    pub foreign: u64,
    /// (index into the batch, code, why).
    pub refused: Vec<(usize, String, Refusal)>,
}

/// Decide every order of `orders` (index into the batch, order) that carries
/// a code, given the coupons those codes name. Within a batch the earliest
/// order (then the smallest id) gets a coupon named twice; across batches the
/// first imported (the importer sends all of a customer's orders through one
/// writer, in file order). Refunds (negative amounts) never redeem.
pub fn decide(orders: &[(usize, &Order)], coupons: &HashMap<String, CouponFacts>) -> Decisions {
    let mut with_code: Vec<&(usize, &Order)> = orders
        .iter()
        .filter(|(_, o)| o.coupon_code.is_some() && o.amount.fen() >= 0)
        .collect();
    with_code
        .sort_by(|a, b| (a.1.ordered_at, a.1.id.as_str()).cmp(&(b.1.ordered_at, b.1.id.as_str())));
    let mut out = Decisions::default();
    let mut taken: HashMap<&str, &Order> = HashMap::new();
    for (index, order) in with_code {
        let code = order.coupon_code.as_deref().unwrap_or_default();
        let Some(coupon) = coupons.get(code) else {
            out.foreign += 1;
            continue;
        };
        if coupon.redeemed_order_id.as_deref() == Some(order.id.as_str()) {
            out.held += 1;
            continue;
        }
        if let Some(why) = refusal(order, coupon) {
            out.refused.push((*index, code.to_owned(), why));
            continue;
        }
        if let Some(winner) = taken.get(code) {
            out.refused.push((
                *index,
                code.to_owned(),
                Refusal::AlreadyRedeemed {
                    order_id: winner.id.as_str().to_owned(),
                    at: Some(winner.ordered_at),
                },
            ));
            continue;
        }
        taken.insert(&coupon.code, order);
        out.claim.push((*index, code.to_owned()));
    }
    out
}

/// The orders of `batch` at the indexes `valid` that carry a code.
pub fn coded_orders<'a>(batch: &'a [Order], valid: &[usize]) -> Vec<(usize, &'a Order)> {
    valid
        .iter()
        .filter_map(|&i| batch.get(i).map(|o| (i, o)))
        .filter(|(_, o)| o.coupon_code.is_some())
        .collect()
}

/// A refused code as the import report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponNote {
    /// Index of the order in its batch (the importer turns it into a line).
    pub index: usize,
    pub message: String,
}

/// What a batch's codes did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RedemptionOutcome {
    /// Coupons this batch redeemed.
    pub redeemed: u64,
    /// Orders that already held their coupon.
    pub held: u64,
    /// Codes that match no issued coupon.
    pub foreign: u64,
    pub refused: Vec<CouponNote>,
}

impl RedemptionOutcome {
    /// What `d` settled without the database (nothing claimed yet).
    pub fn decided(batch: &[Order], d: &Decisions) -> Self {
        let mut out = RedemptionOutcome {
            held: d.held,
            foreign: d.foreign,
            ..RedemptionOutcome::default()
        };
        for (i, code, why) in &d.refused {
            out.refuse(batch, *i, code, why);
        }
        out
    }

    /// Record a refusal of the order at `index` of `batch`.
    pub fn refuse(&mut self, batch: &[Order], index: usize, code: &str, why: &Refusal) {
        let offset = batch
            .get(index)
            .map(|o| o.local_time - o.ordered_at.naive_utc())
            .unwrap_or_default();
        self.refused.push(CouponNote {
            index,
            message: why.describe(code, offset),
        });
    }
}

#[cfg(test)]
mod tests;

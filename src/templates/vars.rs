//! The variables a template may use: the [`RenderContext`] the campaign
//! planner fills for each message, the catalogue the checker holds templates
//! to, and sample values for check-time renders and previews.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::domain::Money;

/// Every variable a template may print, as written in a template.
pub const VARIABLES: &[&str] = &[
    "customer.id",
    "customer.name",
    "customer.surname",
    "customer.store",
    "customer.birthday",
    "customer.order_count",
    "customer.total_spent",
    "customer.lifecycle",
    "customer.value_tier",
    "customer.days_to_birthday",
    "customer.tags",
    "coupon.code",
    "coupon.kind",
    "coupon.value",
    "coupon.value_text",
    "coupon.item",
    "coupon.min_spend",
    "coupon.expires_on",
    "coupon.expires_on_text",
    "coupon.valid_days",
    "shop.code",
    "shop.name",
    "shop.signature",
    "campaign.id",
    "campaign.name",
    "unsubscribe_url",
];

/// Variables that hold a list (iterate them with `{{#each}}`).
pub(super) const LISTS: &[&str] = &["customer.tags"];

/// Names that hold a group of variables (`{{#if coupon}}`, `{{#with shop}}`).
pub(super) const GROUPS: &[&str] = &["customer", "coupon", "shop", "campaign"];

/// What the templates of one message are rendered against.
///
/// `coupon` is `None` when the campaign issues no coupon; it is then `null`
/// in the template context, so `{{#if coupon}}…{{/if}}` is false.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderContext {
    pub customer: CustomerVars,
    pub coupon: Option<CouponVars>,
    pub shop: ShopVars,
    pub campaign: CampaignVars,
    /// The signed one-click unsubscribe link (`GET /u/{token}`).
    pub unsubscribe_url: String,
}

/// `customer.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerVars {
    pub id: String,
    pub name: String,
    /// The first character of the name ("王" for "王小明"); see [`surname_of`].
    pub surname: String,
    /// The customer's home store code.
    pub store: String,
    /// "MM-DD", or "" when unknown.
    pub birthday: String,
    pub order_count: u64,
    /// Yuan, no currency sign: "386.50" (see [`yuan_text`]).
    pub total_spent: String,
    /// new | active | at_risk | lapsed | churned
    pub lifecycle: String,
    /// vip | core | regular
    pub value_tier: String,
    /// Days until the next birthday; `None` (prints as nothing) when unknown.
    pub days_to_birthday: Option<i64>,
    pub tags: Vec<String>,
}

/// `coupon.*`, present only when the campaign issues a coupon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CouponVars {
    pub code: String,
    /// amount_off | percent_off | free_item
    pub kind: String,
    /// The campaign's `coupon.value` (yuan off, percent off, or 0 for free_item).
    pub value: f64,
    /// "10元代金券", "8.5折券", "免费豆浆券" (see [`coupon_value_text`]).
    pub value_text: String,
    /// The free item (free_item only; "" otherwise).
    pub item: String,
    /// Yuan, "0" when there is no minimum (see [`yuan_text`]).
    pub min_spend: String,
    /// "2026-12-07"
    pub expires_on: String,
    /// "12月7日" (see [`date_text`]).
    pub expires_on_text: String,
    pub valid_days: u32,
}

/// `shop.*`: the customer's store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShopVars {
    pub code: String,
    pub name: String,
    /// The SMS signature (sign name), without 【】.
    pub signature: String,
}

/// `campaign.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignVars {
    pub id: String,
    pub name: String,
}

impl RenderContext {
    /// Realistic sample values, for check-time renders and previews. With
    /// `has_coupon` false, `coupon` is `None`.
    pub fn sample(has_coupon: bool) -> RenderContext {
        RenderContext {
            customer: CustomerVars {
                id: "C10023".into(),
                name: "王小明".into(),
                surname: "王".into(),
                store: "SH-001".into(),
                birthday: "12-07".into(),
                order_count: 12,
                total_spent: "386.50".into(),
                lifecycle: "active".into(),
                value_tier: "vip".into(),
                days_to_birthday: Some(3),
                tags: vec!["早餐常客".into(), "豆浆控".into()],
            },
            coupon: has_coupon.then(|| CouponVars {
                code: "BDAY7K3M9Q".into(),
                kind: "amount_off".into(),
                value: 10.0,
                value_text: "10元代金券".into(),
                item: String::new(),
                min_spend: "30".into(),
                expires_on: "2026-12-21".into(),
                expires_on_text: "12月21日".into(),
                valid_days: 14,
            }),
            shop: ShopVars {
                code: "SH-001".into(),
                name: "老街豆浆人民广场店".into(),
                signature: "老街豆浆".into(),
            },
            campaign: CampaignVars {
                id: "birthday-treat".into(),
                name: "生日礼券".into(),
            },
            unsubscribe_url: "https://shop.example.com/u/6f1c2a9e".into(),
        }
    }
}

/// The first character of a name, for `customer.surname` ("王小明" → "王").
pub fn surname_of(name: &str) -> String {
    name.trim()
        .chars()
        .next()
        .map(String::from)
        .unwrap_or_default()
}

/// Yuan without a currency sign, whole amounts without decimals: "30",
/// "123.50".
pub fn yuan_text(amount: Money) -> String {
    let text = amount.to_string();
    match text.strip_suffix(".00") {
        Some(whole) => whole.to_owned(),
        None => text,
    }
}

/// "12月7日"
pub fn date_text(date: NaiveDate) -> String {
    format!("{}月{}日", date.month(), date.day())
}

/// How a coupon reads in a message: `amount_off` 10 → "10元代金券",
/// `percent_off` 15 → "8.5折券", `free_item` "豆浆" → "免费豆浆券".
pub fn coupon_value_text(kind: &str, value: f64, item: &str) -> String {
    match kind {
        "amount_off" => format!("{}元代金券", number_text(value)),
        "percent_off" => {
            let zhe = (100.0 - value) / 10.0;
            format!("{}折券", number_text((zhe * 10.0).round() / 10.0))
        }
        "free_item" if item.trim().is_empty() => "免费兑换券".to_owned(),
        "free_item" => format!("免费{}券", item.trim()),
        _ => format!("{}优惠券", number_text(value)),
    }
}

/// 10.0 → "10", 8.5 → "8.5", 7.25 → "7.25".
fn number_text(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The catalogue variable closest to a misspelt one, if any is close.
pub(super) fn suggest(name: &str) -> Option<&'static str> {
    let lower = name.to_lowercase();
    let by_distance = VARIABLES
        .iter()
        .map(|v| (strsim::damerau_levenshtein(&lower, v), *v))
        .filter(|(d, v)| *d <= (v.len() / 5).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v);
    if by_distance.is_some() {
        return by_distance;
    }
    // `unsubscribe` → `unsubscribe_url`
    if lower.chars().count() >= 4 {
        let mut containing = VARIABLES.iter().filter(|v| v.contains(lower.as_str()));
        if let (Some(only), None) = (containing.next(), containing.next()) {
            return Some(only);
        }
    }
    // `name` → `customer.name`; `code` → `coupon.code` … when one group has it.
    let last = lower.rsplit(['.', '_']).next().unwrap_or(&lower);
    let mut same_leaf = VARIABLES
        .iter()
        .filter(|v| v.rsplit('.').next() == Some(last));
    match (same_leaf.next(), same_leaf.next()) {
        (Some(only), None) => Some(only),
        (Some(first), Some(_)) if lower == last => Some(first),
        _ => None,
    }
}

/// The helper names a template may use (Handlebars built-ins).
pub(super) const HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or",
    "not", "len",
];

/// The allowed helper closest to a misspelt one.
pub(super) fn suggest_helper(name: &str) -> Option<&'static str> {
    let lower = name.to_lowercase();
    HELPERS
        .iter()
        .map(|h| (strsim::damerau_levenshtein(&lower, h), *h))
        .filter(|(d, h)| *d <= (h.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, h)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&name, v, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }

    #[test]
    fn catalogue_matches_the_context_type() {
        let json = serde_json::to_value(RenderContext::sample(true)).unwrap();
        let mut found = Vec::new();
        leaves("", &json, &mut found);
        found.sort();
        let mut listed: Vec<String> = VARIABLES.iter().map(|s| (*s).to_owned()).collect();
        listed.sort();
        assert_eq!(found, listed);
        let json = serde_json::to_value(RenderContext::sample(false)).unwrap();
        assert_eq!(json["coupon"], serde_json::Value::Null);
    }

    #[test]
    fn value_texts() {
        assert_eq!(coupon_value_text("amount_off", 10.0, ""), "10元代金券");
        assert_eq!(coupon_value_text("amount_off", 7.5, ""), "7.5元代金券");
        assert_eq!(coupon_value_text("percent_off", 15.0, ""), "8.5折券");
        assert_eq!(coupon_value_text("percent_off", 20.0, ""), "8折券");
        assert_eq!(coupon_value_text("free_item", 0.0, "豆浆"), "免费豆浆券");
        assert_eq!(
            date_text(NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()),
            "12月7日"
        );
        assert_eq!(yuan_text(Money::from_fen(3000)), "30");
        assert_eq!(yuan_text(Money::from_fen(12350)), "123.50");
        assert_eq!(surname_of(" 王小明"), "王");
        assert_eq!(surname_of(""), "");
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("customer.nmae"), Some("customer.name"));
        assert_eq!(suggest("coupon.expire_on"), Some("coupon.expires_on"));
        assert_eq!(suggest("customer_name"), Some("customer.name"));
        assert_eq!(suggest("unsubscribe"), Some("unsubscribe_url"));
        assert_eq!(suggest("name"), Some("customer.name"));
        assert_eq!(suggest("zzz.qqq"), None);
        assert_eq!(suggest_helper("iff"), Some("if"));
        assert_eq!(suggest_helper("eachh"), Some("each"));
        assert_eq!(suggest_helper("format_date"), None);
    }
}

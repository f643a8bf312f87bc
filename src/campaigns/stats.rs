//! Each campaign's figures: its messages by status (and the reasons of the
//! suppressed ones), the coupons it issued, how many were redeemed, and the
//! revenue of the orders that redeemed them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::Money;

/// One campaign's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CampaignStats {
    pub campaign_id: String,
    /// Messages by status (`queued`, `deferred`, `sent`, …).
    pub messages: BTreeMap<String, u64>,
    /// Suppressed messages by reason.
    pub suppressed: BTreeMap<String, u64>,
    /// Coupons issued and still valid to redeem or redeemed (voided ones
    /// are not counted).
    pub coupons_issued: u64,
    /// Coupons withdrawn because their message gave way under the cap.
    pub coupons_voided: u64,
    pub coupons_redeemed: u64,
    /// Redeemed / issued, 0 when nothing was issued.
    pub redemption_rate: f64,
    /// Sum of the amounts of the orders that redeemed a coupon, in fen.
    pub revenue_fen: i64,
}

impl CampaignStats {
    /// Messages of `status`.
    pub fn count(&self, status: &str) -> u64 {
        self.messages.get(status).copied().unwrap_or(0)
    }

    pub fn revenue(&self) -> Money {
        Money::from_fen(self.revenue_fen)
    }
}

/// Assembles [`CampaignStats`] from the store's grouped rows.
#[derive(Debug, Default)]
pub struct StatsBuilder {
    by_id: BTreeMap<String, CampaignStats>,
}

impl StatsBuilder {
    fn entry(&mut self, campaign_id: &str) -> &mut CampaignStats {
        self.by_id
            .entry(campaign_id.to_owned())
            .or_insert_with(|| CampaignStats {
                campaign_id: campaign_id.to_owned(),
                ..CampaignStats::default()
            })
    }

    /// `n` messages of `campaign_id` with `status` (and `reason`).
    pub fn messages(&mut self, campaign_id: &str, status: &str, reason: Option<&str>, n: i64) {
        let n = u64::try_from(n).unwrap_or(0);
        let s = self.entry(campaign_id);
        *s.messages.entry(status.to_owned()).or_default() += n;
        if status == "suppressed" {
            let reason = reason.unwrap_or("unknown");
            *s.suppressed.entry(reason.to_owned()).or_default() += n;
        }
    }

    /// The coupon figures of `campaign_id`.
    pub fn coupons(
        &mut self,
        campaign_id: &str,
        issued: i64,
        voided: i64,
        redeemed: i64,
        revenue_fen: i64,
    ) {
        let s = self.entry(campaign_id);
        s.coupons_issued = u64::try_from(issued).unwrap_or(0);
        s.coupons_voided = u64::try_from(voided).unwrap_or(0);
        s.coupons_redeemed = u64::try_from(redeemed).unwrap_or(0);
        s.revenue_fen = revenue_fen;
    }

    /// Every campaign seen, by id.
    pub fn finish(self) -> Vec<CampaignStats> {
        self.by_id
            .into_values()
            .map(|mut s| {
                s.redemption_rate = if s.coupons_issued == 0 {
                    0.0
                } else {
                    s.coupons_redeemed as f64 / s.coupons_issued as f64
                };
                s
            })
            .collect()
    }
}

/// The campaign-id parameter: the id, or NULL for every campaign.
fn campaign_param(postgres: bool) -> &'static str {
    if postgres { "$1::text" } else { "?1" }
}

/// Grouped messages: campaign_id, status, reason, n. One parameter: the
/// campaign id or NULL for all.
pub fn messages_sql(postgres: bool) -> String {
    let p = campaign_param(postgres);
    format!(
        "SELECT campaign_id, status, reason, count(*) AS n FROM messages \
         WHERE ({p} IS NULL OR campaign_id = {p}) GROUP BY campaign_id, status, reason"
    )
}

/// Coupon figures per campaign: campaign_id, issued, voided, redeemed,
/// revenue (fen). One parameter, as [`messages_sql`].
pub fn coupons_sql(postgres: bool) -> String {
    let p = campaign_param(postgres);
    format!(
        "SELECT c.campaign_id, \
                count(*) FILTER (WHERE c.voided_at IS NULL) AS issued, \
                count(*) FILTER (WHERE c.voided_at IS NOT NULL) AS voided, \
                count(c.redeemed_order_id) AS redeemed, \
                CAST(COALESCE(sum(o.amount_fen), 0) AS BIGINT) AS revenue \
         FROM coupons c LEFT JOIN orders o ON o.id = c.redeemed_order_id \
         WHERE ({p} IS NULL OR c.campaign_id = {p}) GROUP BY c.campaign_id"
    )
}

#[cfg(test)]
mod tests {
    use super::StatsBuilder;

    #[test]
    fn figures_are_gathered_per_campaign_and_the_rate_is_of_issued_coupons() {
        let mut b = StatsBuilder::default();
        b.messages("bday", "queued", None, 3);
        b.messages("bday", "suppressed", Some("no_consent"), 2);
        b.messages("bday", "suppressed", Some("capped"), 1);
        b.coupons("bday", 4, 1, 1, 3_550);
        b.messages("vip", "sent", None, 5);
        let s = b.finish();
        assert_eq!(s.len(), 2);
        let bday = &s[0];
        assert_eq!(bday.count("queued"), 3);
        assert_eq!(bday.count("suppressed"), 3);
        assert_eq!(bday.suppressed["no_consent"], 2);
        assert_eq!(bday.coupons_issued, 4);
        assert!((bday.redemption_rate - 0.25).abs() < 1e-9);
        assert_eq!(bday.revenue().to_string(), "35.50");
        assert_eq!(s[1].redemption_rate, 0.0);
    }
}

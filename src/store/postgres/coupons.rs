//! Coupons on PostgreSQL: redemption inside an order batch's transaction,
//! and each campaign's figures.

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use super::PgStore;
use crate::campaigns::redemption::{CouponFacts, RedemptionOutcome, coded_orders, decide, refusal};
use crate::campaigns::stats::{CampaignStats, StatsBuilder, coupons_sql, messages_sql};
use crate::domain::Order;
use crate::store::StoreError;

fn facts(r: &PgRow) -> Result<CouponFacts, StoreError> {
    Ok(CouponFacts {
        code: r.try_get("code")?,
        customer_id: r.try_get("customer_id")?,
        kind: r.try_get("kind")?,
        value: r.try_get("value")?,
        min_spend_fen: r.try_get("min_spend_fen")?,
        issued_at: r.try_get("issued_at")?,
        expires_at: r.try_get("expires_at")?,
        voided_at: r.try_get("voided_at")?,
        redeemed_order_id: r.try_get("redeemed_order_id")?,
        redeemed_at: r.try_get("redeemed_at")?,
    })
}

async fn read_facts(
    conn: &mut PgConnection,
    codes: &[String],
) -> Result<HashMap<String, CouponFacts>, StoreError> {
    let rows = sqlx::query(
        r#"SELECT code, customer_id, kind, value::bigint AS value, min_spend_fen, issued_at,
                  expires_at, voided_at, redeemed_order_id, redeemed_at
           FROM coupons WHERE code = ANY($1)"#,
    )
    .bind(codes)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| facts(r).map(|f| (f.code.clone(), f)))
        .collect()
}

/// Redeem the coupons the batch's valid orders (`valid`: indexes into
/// `batch`) name. The upsert has already released the coupons of orders
/// whose code changed.
pub(super) async fn redeem(
    conn: &mut PgConnection,
    batch: &[Order],
    valid: &[usize],
) -> Result<RedemptionOutcome, StoreError> {
    let orders = coded_orders(batch, valid);
    if orders.is_empty() {
        return Ok(RedemptionOutcome::default());
    }
    let codes: Vec<String> = orders
        .iter()
        .filter_map(|(_, o)| o.coupon_code.clone())
        .collect();
    let coupons = read_facts(conn, &codes).await?;
    let d = decide(&orders, &coupons);
    let mut out = RedemptionOutcome::decided(batch, &d);
    if d.claim.is_empty() {
        return Ok(out);
    }
    let claimed: Vec<String> = sqlx::query_scalar(
        r#"UPDATE coupons AS c SET redeemed_order_id = u.order_id, redeemed_at = u.at
           FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(code, order_id, at)
           WHERE c.code = u.code AND c.redeemed_order_id IS NULL AND c.voided_at IS NULL
           RETURNING c.code"#,
    )
    .bind(d.claim.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>())
    .bind(
        d.claim
            .iter()
            .map(|(i, _)| batch[*i].id.as_str().to_owned())
            .collect::<Vec<_>>(),
    )
    .bind(
        d.claim
            .iter()
            .map(|(i, _)| batch[*i].ordered_at)
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *conn)
    .await?;
    out.redeemed = claimed.len() as u64;
    if claimed.len() < d.claim.len() {
        // Claimed by another writer since they were read.
        let lost: Vec<&(usize, String)> = d
            .claim
            .iter()
            .filter(|(_, c)| !claimed.contains(c))
            .collect();
        let codes: Vec<String> = lost.iter().map(|(_, c)| c.clone()).collect();
        let current = read_facts(conn, &codes).await?;
        for (i, code) in lost {
            if let Some(why) = current.get(code).and_then(|c| refusal(&batch[*i], c)) {
                out.refuse(batch, *i, code, &why);
            }
        }
    }
    Ok(out)
}

impl PgStore {
    pub(super) async fn read_stats(
        &self,
        campaign_id: Option<&str>,
    ) -> Result<Vec<CampaignStats>, StoreError> {
        let mut b = StatsBuilder::default();
        let rows = sqlx::query(AssertSqlSafe(messages_sql(true)))
            .bind(campaign_id)
            .fetch_all(&self.pool)
            .await?;
        for r in &rows {
            b.messages(
                r.try_get("campaign_id")?,
                r.try_get("status")?,
                r.try_get("reason")?,
                r.try_get("n")?,
            );
        }
        let rows = sqlx::query(AssertSqlSafe(coupons_sql(true)))
            .bind(campaign_id)
            .fetch_all(&self.pool)
            .await?;
        for r in &rows {
            b.coupons(
                r.try_get("campaign_id")?,
                r.try_get("issued")?,
                r.try_get("voided")?,
                r.try_get("redeemed")?,
                r.try_get("revenue")?,
            );
        }
        Ok(b.finish())
    }
}

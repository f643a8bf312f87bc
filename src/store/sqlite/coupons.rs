//! Coupons on SQLite: redemption inside an order batch's transaction, and
//! each campaign's figures.

use std::collections::HashMap;

use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row, SqliteConnection};

use super::{SqliteStore, from_ms, json_array, ms};
use crate::campaigns::redemption::{CouponFacts, RedemptionOutcome, coded_orders, decide, refusal};
use crate::campaigns::stats::{CampaignStats, StatsBuilder, coupons_sql, messages_sql};
use crate::domain::Order;
use crate::store::StoreError;

fn facts(r: &SqliteRow) -> Result<CouponFacts, StoreError> {
    let opt = |col: &str| -> Result<_, StoreError> {
        r.try_get::<Option<i64>, _>(col)?
            .map(|v| from_ms("coupons", v))
            .transpose()
    };
    Ok(CouponFacts {
        code: r.try_get("code")?,
        customer_id: r.try_get("customer_id")?,
        kind: r.try_get("kind")?,
        value: r.try_get("value")?,
        min_spend_fen: r.try_get("min_spend_fen")?,
        issued_at: from_ms("coupons", r.try_get("issued_at")?)?,
        expires_at: from_ms("coupons", r.try_get("expires_at")?)?,
        voided_at: opt("voided_at")?,
        redeemed_order_id: r.try_get("redeemed_order_id")?,
        redeemed_at: opt("redeemed_at")?,
    })
}

async fn read_facts(
    conn: &mut SqliteConnection,
    codes: &[&str],
) -> Result<HashMap<String, CouponFacts>, StoreError> {
    let rows = sqlx::query(
        r#"SELECT code, customer_id, kind, value, min_spend_fen, issued_at, expires_at, voided_at,
                  redeemed_order_id, redeemed_at
           FROM coupons WHERE code IN (SELECT value FROM json_each(?1))"#,
    )
    .bind(json_array(codes.iter().copied()))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| facts(r).map(|f| (f.code.clone(), f)))
        .collect()
}

/// Release the coupons of re-imported orders whose code changed, then
/// redeem the coupons the batch's valid orders (`valid`: indexes into
/// `batch`) name. `previous` holds each re-imported order's former code.
pub(super) async fn redeem(
    conn: &mut SqliteConnection,
    batch: &[Order],
    valid: &[usize],
    previous: &HashMap<String, String>,
) -> Result<RedemptionOutcome, StoreError> {
    for &i in valid {
        let o = &batch[i];
        if let Some(old) = previous.get(o.id.as_str())
            && o.coupon_code.as_deref() != Some(old.as_str())
        {
            sqlx::query(
                "UPDATE coupons SET redeemed_order_id = NULL, redeemed_at = NULL \
                 WHERE code = ?1 AND redeemed_order_id = ?2",
            )
            .bind(old)
            .bind(o.id.as_str())
            .execute(&mut *conn)
            .await?;
        }
    }
    let orders = coded_orders(batch, valid);
    if orders.is_empty() {
        return Ok(RedemptionOutcome::default());
    }
    let codes: Vec<&str> = orders
        .iter()
        .filter_map(|(_, o)| o.coupon_code.as_deref())
        .collect();
    let coupons = read_facts(conn, &codes).await?;
    let d = decide(&orders, &coupons);
    let mut out = RedemptionOutcome::decided(batch, &d);
    for (i, code) in &d.claim {
        let o = &batch[*i];
        let claimed = sqlx::query(
            "UPDATE coupons SET redeemed_order_id = ?1, redeemed_at = ?2 \
             WHERE code = ?3 AND redeemed_order_id IS NULL AND voided_at IS NULL",
        )
        .bind(o.id.as_str())
        .bind(ms(o.ordered_at))
        .bind(code)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if claimed == 1 {
            out.redeemed += 1;
        } else {
            // Claimed by another writer since it was read.
            let current = read_facts(conn, &[code.as_str()]).await?;
            if let Some(why) = current.get(code).and_then(|c| refusal(o, c)) {
                out.refuse(batch, *i, code, &why);
            }
        }
    }
    Ok(out)
}

impl SqliteStore {
    pub(super) async fn read_stats(
        &self,
        campaign_id: Option<&str>,
    ) -> Result<Vec<CampaignStats>, StoreError> {
        let mut b = StatsBuilder::default();
        let rows = sqlx::query(AssertSqlSafe(messages_sql(false)))
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
        let rows = sqlx::query(AssertSqlSafe(coupons_sql(false)))
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

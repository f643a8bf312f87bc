//! The send log on SQLite: pages (see `send_log_sql`), audited retries in
//! one `BEGIN IMMEDIATE` transaction, and the queue's depth from indexes.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row};

use super::{SqliteStore, from_ms, ms};
use crate::campaigns::outbox::MessageStatus;
use crate::store::StoreError;
use crate::store::send_log::{
    CouponBlock, LogCursor, QueueDepth, RetryOutcome, SendLogPage, SendLogQuery, SendLogRow,
    retry_detail,
};
use crate::store::send_log_sql::{self, Dialect, Param};

impl SqliteStore {
    pub(super) async fn read_send_log(&self, q: &SendLogQuery) -> Result<SendLogPage, StoreError> {
        let (sql, params) = send_log_sql::page(Dialect::Sqlite, q);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for p in params {
            query = match p {
                Param::Text(s) => query.bind(s),
                Param::Int(n) => query.bind(n),
                // A cursor carries microseconds; SQLite keeps milliseconds.
                Param::Time(t) => query.bind(t.timestamp_micros().div_euclid(1000)),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut rows = rows.iter().map(row).collect::<Result<Vec<_>, _>>()?;
        let size = q.page_size() as usize;
        let next = if rows.len() > size {
            rows.truncate(size);
            rows.last().map(LogCursor::after)
        } else {
            None
        };
        Ok(SendLogPage { rows, next })
    }

    pub(super) async fn retry(
        &self,
        id: i64,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let Some(m) = sqlx::query(
            "SELECT m.status, m.reason, m.detail, m.attempts, c.code, c.voided_at, c.expires_at,
                    c.redeemed_order_id
             FROM messages m LEFT JOIN coupons c ON c.message_id = m.id
             WHERE m.id = ?1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(RetryOutcome::NotFound);
        };
        let status = status_of(&m)?;
        if !matches!(status, MessageStatus::Failed | MessageStatus::Dead) {
            return Ok(RetryOutcome::NotRetryable { status });
        }
        if let Some(code) = m.try_get::<Option<String>, _>("code")? {
            let block = if m.try_get::<Option<i64>, _>("voided_at")?.is_some() {
                Some(CouponBlock::Voided)
            } else if m
                .try_get::<Option<String>, _>("redeemed_order_id")?
                .is_some()
            {
                Some(CouponBlock::Redeemed)
            } else if m.try_get::<i64, _>("expires_at")? <= ms(now) {
                Some(CouponBlock::Expired)
            } else {
                None
            };
            if let Some(why) = block {
                return Ok(RetryOutcome::CouponUnusable { code, why });
            }
        }
        let reason: Option<String> = m.try_get("reason")?;
        let detail: Option<String> = m.try_get("detail")?;
        let attempts: i64 = m.try_get("attempts")?;
        sqlx::query(
            "UPDATE messages SET status = 'queued', reason = NULL, detail = ?1,
                next_attempt_at = ?2, lease_until = NULL, claim_token = NULL, provider = NULL,
                provider_message_id = NULL, sent_at = NULL, attempts_before_retry = attempts,
                updated_at = ?2
             WHERE id = ?3",
        )
        .bind(retry_detail(actor, status, reason.as_deref()))
        .bind(ms(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO message_retries (message_id, actor, at, previous_status, previous_reason,
                previous_detail, previous_attempts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(id)
        .bind(actor)
        .bind(ms(now))
        .bind(status.as_str())
        .bind(&reason)
        .bind(&detail)
        .bind(attempts)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RetryOutcome::Retried {
            previous_status: status,
            previous_reason: reason,
        })
    }

    pub(super) async fn read_queue_depth(
        &self,
        now: DateTime<Utc>,
    ) -> Result<QueueDepth, StoreError> {
        // Both read indexes only: `messages_by_status` for the counts per
        // status, the partial `messages_due` for what is due.
        let mut depth = QueueDepth::default();
        let rows = sqlx::query(
            "SELECT status, count(*) AS n FROM messages
             WHERE status IN ('queued', 'deferred', 'sending') GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            let n = u64::try_from(r.try_get::<i64, _>("n")?).unwrap_or(0);
            match r.try_get::<String, _>("status")?.as_str() {
                "queued" => depth.queued = n,
                "deferred" => depth.deferred = n,
                _ => depth.sending = n,
            }
        }
        let due: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages
             WHERE status IN ('queued', 'deferred') AND next_attempt_at <= ?1",
        )
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await?;
        depth.due = u64::try_from(due).unwrap_or(0);
        Ok(depth)
    }
}

fn status_of(r: &SqliteRow) -> Result<MessageStatus, StoreError> {
    let s: String = r.try_get("status")?;
    MessageStatus::parse(&s).ok_or_else(|| StoreError::Corrupt {
        table: "messages",
        reason: format!("unknown status {s:?}"),
    })
}

fn row(r: &SqliteRow) -> Result<SendLogRow, StoreError> {
    let at = |col: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        r.try_get::<Option<i64>, _>(col)?
            .map(|v| from_ms("messages", v))
            .transpose()
    };
    let channel: Option<String> = r.try_get("channel")?;
    Ok(SendLogRow {
        id: r.try_get("id")?,
        campaign_id: r.try_get("campaign_id")?,
        customer_id: r.try_get("customer_id")?,
        occurrence: r.try_get("occurrence")?,
        channel: channel
            .map(|c| {
                c.parse().map_err(|e: String| StoreError::Corrupt {
                    table: "messages",
                    reason: e,
                })
            })
            .transpose()?,
        provider: r.try_get("provider")?,
        address: r.try_get("address")?,
        status: status_of(r)?,
        reason: r.try_get("reason")?,
        detail: r.try_get("detail")?,
        attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(0),
        provider_message_id: r.try_get("provider_message_id")?,
        coupon_code: r.try_get("coupon_code")?,
        created_at: from_ms("messages", r.try_get("created_at")?)?,
        sent_at: at("sent_at")?,
        next_attempt_at: at("next_attempt_at")?,
        updated_at: from_ms("messages", r.try_get("updated_at")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Channel;

    /// SQLite's plan of every combination of filters the CLI and the API can
    /// send: one index range read in order (no sort, no table scan).
    #[tokio::test]
    async fn every_filter_combination_reads_one_index_in_order() {
        let (_dir, store) = SqliteStore::temporary(1).await;
        let at = DateTime::from_timestamp_millis(1_795_000_000_000).unwrap();
        for mask in 0u32..128 {
            for status in [MessageStatus::Dead, MessageStatus::Sent] {
                let q = SendLogQuery {
                    campaign: (mask & 1 != 0).then(|| "winback".to_owned()),
                    channel: (mask & 2 != 0).then_some(Channel::Email),
                    status: (mask & 4 != 0).then_some(status),
                    customer: (mask & 8 != 0).then(|| "C1".to_owned()),
                    since: (mask & 16 != 0).then_some(at),
                    until: (mask & 32 != 0).then_some(at),
                    before: (mask & 64 != 0).then_some(LogCursor {
                        created_at: at,
                        id: 9,
                    }),
                    limit: 50,
                };
                let (sql, params) = send_log_sql::page(Dialect::Sqlite, &q);
                let mut query = sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
                for p in params {
                    query = match p {
                        Param::Text(s) => query.bind(s),
                        Param::Int(n) => query.bind(n),
                        Param::Time(t) => query.bind(t.timestamp_millis()),
                    };
                }
                let plan: Vec<String> = query
                    .fetch_all(&store.pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>("detail"))
                    .collect();
                let plan = plan.join("; ");
                let index = if q.customer.is_some() {
                    "messages_by_customer"
                } else if q.status == Some(MessageStatus::Dead) {
                    "messages_by_status"
                } else if q.campaign.is_some() {
                    "messages_by_campaign"
                } else if q.status.is_some() {
                    "messages_by_status"
                } else if q.channel.is_some() {
                    "messages_by_channel"
                } else {
                    "messages_by_created"
                };
                assert!(
                    plan.starts_with("SEARCH messages USING INDEX ")
                        || plan.starts_with("SCAN messages USING INDEX "),
                    "{q:?}: {plan}"
                );
                assert!(plan.contains(index), "{q:?}: {plan}");
                assert!(!plan.contains("TEMP B-TREE"), "{q:?}: {plan}");
            }
        }
    }
}

//! The send log on PostgreSQL: pages (see `send_log_sql`), audited retries
//! under a row lock, and the queue's depth from indexes.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};

use super::PgStore;
use crate::campaigns::outbox::MessageStatus;
use crate::store::StoreError;
use crate::store::send_log::{
    CouponBlock, LogCursor, QueueDepth, RetryOutcome, SendLogPage, SendLogQuery, SendLogRow,
    retry_detail,
};
use crate::store::send_log_sql::{self, Dialect, Param};

impl PgStore {
    pub(super) async fn read_send_log(&self, q: &SendLogQuery) -> Result<SendLogPage, StoreError> {
        let (sql, params) = send_log_sql::page(Dialect::Postgres, q);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for p in params {
            query = match p {
                Param::Text(s) => query.bind(s),
                Param::Int(n) => query.bind(n),
                Param::Time(t) => query.bind(t),
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
        let mut tx = self.pool.begin().await?;
        // The row lock keeps a concurrent retry, claim or receipt out until
        // this one has committed.
        let Some(m) = sqlx::query(
            "SELECT m.status, m.reason, m.detail, m.attempts, c.code, c.voided_at, c.expires_at,
                    c.redeemed_order_id
             FROM messages m LEFT JOIN coupons c ON c.message_id = m.id
             WHERE m.id = $1
             FOR UPDATE OF m",
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
            let block = if m
                .try_get::<Option<DateTime<Utc>>, _>("voided_at")?
                .is_some()
            {
                Some(CouponBlock::Voided)
            } else if m
                .try_get::<Option<String>, _>("redeemed_order_id")?
                .is_some()
            {
                Some(CouponBlock::Redeemed)
            } else if m.try_get::<DateTime<Utc>, _>("expires_at")? <= now {
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
        let attempts: i32 = m.try_get("attempts")?;
        sqlx::query(
            "UPDATE messages SET status = 'queued', reason = NULL, detail = $1,
                next_attempt_at = $2, lease_until = NULL, claim_token = NULL, provider = NULL,
                provider_message_id = NULL, sent_at = NULL, attempts_before_retry = attempts,
                updated_at = $2
             WHERE id = $3",
        )
        .bind(retry_detail(actor, status, reason.as_deref()))
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO message_retries (message_id, actor, at, previous_status, previous_reason,
                previous_detail, previous_attempts)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(actor)
        .bind(now)
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
        // Index-only where the visibility map allows: `messages_by_status`
        // for the counts per status, the partial `messages_due` for what is due.
        let r = sqlx::query(
            "SELECT
                (SELECT count(*) FROM messages WHERE status = 'queued') AS queued,
                (SELECT count(*) FROM messages WHERE status = 'deferred') AS deferred,
                (SELECT count(*) FROM messages WHERE status = 'sending') AS sending,
                (SELECT count(*) FROM messages
                  WHERE status IN ('queued', 'deferred') AND next_attempt_at <= $1) AS due",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let n = |col: &str| -> Result<u64, StoreError> {
            Ok(u64::try_from(r.try_get::<i64, _>(col)?).unwrap_or(0))
        };
        Ok(QueueDepth {
            queued: n("queued")?,
            deferred: n("deferred")?,
            due: n("due")?,
            sending: n("sending")?,
        })
    }
}

fn status_of(r: &PgRow) -> Result<MessageStatus, StoreError> {
    let s: String = r.try_get("status")?;
    MessageStatus::parse(&s).ok_or_else(|| StoreError::Corrupt {
        table: "messages",
        reason: format!("unknown status {s:?}"),
    })
}

fn row(r: &PgRow) -> Result<SendLogRow, StoreError> {
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
        attempts: u32::try_from(r.try_get::<i32, _>("attempts")?).unwrap_or(0),
        provider_message_id: r.try_get("provider_message_id")?,
        coupon_code: r.try_get("coupon_code")?,
        created_at: r.try_get("created_at")?,
        sent_at: r.try_get("sent_at")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

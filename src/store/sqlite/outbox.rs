//! The outbox on SQLite: claims are one short `BEGIN IMMEDIATE` transaction
//! (pick due ids, suppress the opted-out, mark the rest `sending` under a
//! lease token); settlements and receipts are guarded updates. No
//! transaction is open while a provider is called.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};

use super::{SqliteStore, from_ms, ms};
use crate::dispatch::claim::{
    AttemptLog, Claim, ClaimedMessage, MessageDetail, OPTED_OUT_DETAIL, OptOutOutcome,
    ReceiptCounts, RetryLog, SettleCounts, Settlement, receipt_detail,
};
use crate::dispatch::provider::{Receipt, ReceiptKey};
use crate::store::{Channel, OptOut, StoreError, blocked_assignments, opt_out_of};

impl SqliteStore {
    pub(super) async fn claim(&self, c: &Claim) -> Result<Vec<ClaimedMessage>, StoreError> {
        let limit = i64::try_from(c.limit.max(1)).unwrap_or(500);
        let now = ms(c.now);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Leases that ran out first (a crashed worker's messages), then the due queue.
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE status = 'sending' AND lease_until < ?1
             ORDER BY lease_until LIMIT ?2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let room = limit - i64::try_from(ids.len()).unwrap_or(0);
        if room > 0 {
            let due: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM messages WHERE status IN ('queued', 'deferred')
                   AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2",
            )
            .bind(now)
            .bind(room)
            .fetch_all(&mut *tx)
            .await?;
            ids.extend(due);
        }
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let picked = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        suppress_opted_out(&mut tx, &picked, now).await?;
        let rows = sqlx::query(
            "UPDATE messages SET status = 'sending', lease_until = ?1, claim_token = ?2, updated_at = ?3
             WHERE id IN (SELECT value FROM json_each(?4))
               AND status IN ('queued', 'deferred', 'sending')
             RETURNING id",
        )
        .bind(ms(c.lease_until))
        .bind(&c.token)
        .bind(now)
        .bind(&picked)
        .fetch_all(&mut *tx)
        .await?;
        let claimed: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        let claimed = serde_json::to_string(&claimed).unwrap_or_else(|_| "[]".into());
        let rows = sqlx::query(
            "SELECT m.id, m.dedupe_key, m.campaign_id, m.customer_id, m.channel, m.provider,
                    m.address, m.payload, m.attempts, m.attempts_before_retry, m.reason, m.coupon_code,
                    c.store_code, s.name AS store_name, s.sms_signature, s.timezone
             FROM messages m
             JOIN customers c ON c.id = m.customer_id
             LEFT JOIN stores s ON s.code = c.store_code
             WHERE m.id IN (SELECT value FROM json_each(?1))
             ORDER BY m.id",
        )
        .bind(&claimed)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(claimed_message).collect()
    }

    /// A batch is settled in three set-based statements over a JSON array
    /// (the outcomes, the attempts, the rare suppressions) instead of two or
    /// three statements per message: the worker settles thousands a second.
    pub(super) async fn settle(&self, batch: &[Settlement]) -> Result<SettleCounts, StoreError> {
        let mut counts = SettleCounts::default();
        if batch.is_empty() {
            return Ok(counts);
        }
        let rows: Vec<serde_json::Value> = batch
            .iter()
            .map(|s| {
                let a = s.attempt.as_ref();
                serde_json::json!({
                    "id": s.message_id,
                    "token": s.token,
                    "status": s.status.as_str(),
                    "reason": s.reason,
                    "detail": s.detail,
                    "provider": s.provider,
                    "pmid": s.provider_message_id,
                    "next": s.next_attempt_at.map(ms),
                    "attempts": s.attempts,
                    "at": ms(s.at),
                    "a_num": a.map(|a| a.number),
                    "a_provider": a.map(|a| a.provider.as_str()),
                    "a_outcome": a.map(|a| a.outcome),
                    "a_code": a.and_then(|a| a.provider_code.as_deref()),
                    "a_detail": a.and_then(|a| a.detail.as_deref()),
                })
            })
            .collect();
        let json = serde_json::Value::Array(rows).to_string();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let settled = sqlx::query(
            "UPDATE messages SET status = j.status, reason = j.reason, detail = j.detail,
                provider = COALESCE(j.provider, messages.provider),
                provider_message_id = COALESCE(j.pmid, messages.provider_message_id),
                next_attempt_at = j.next, attempts = j.attempts,
                sent_at = CASE WHEN j.status = 'sent' THEN j.at ELSE messages.sent_at END,
                lease_until = NULL, claim_token = NULL, updated_at = j.at
             FROM (SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.token') AS token,
                          json_extract(value, '$.status') AS status, json_extract(value, '$.reason') AS reason,
                          json_extract(value, '$.detail') AS detail, json_extract(value, '$.provider') AS provider,
                          json_extract(value, '$.pmid') AS pmid, json_extract(value, '$.next') AS next,
                          json_extract(value, '$.attempts') AS attempts, json_extract(value, '$.at') AS at
                   FROM json_each(?1)) AS j
             -- `+status` keeps the planner from the status index: each row of
             -- the batch finds its message by id instead of every `sending`
             -- message being matched against the whole batch.
             WHERE messages.id = j.id AND +messages.status = 'sending' AND messages.claim_token = j.token",
        )
        .bind(&json)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        counts.settled = settled;
        counts.lease_lost = (batch.len() as u64).saturating_sub(settled);
        if batch.iter().any(|s| s.attempt.is_some()) {
            sqlx::query(
                "INSERT INTO message_attempts (message_id, attempt, provider, at, outcome, provider_code, detail)
                 SELECT json_extract(value, '$.id'), json_extract(value, '$.a_num'),
                        json_extract(value, '$.a_provider'), json_extract(value, '$.at'),
                        json_extract(value, '$.a_outcome'), json_extract(value, '$.a_code'),
                        json_extract(value, '$.a_detail')
                 FROM json_each(?1) WHERE json_extract(value, '$.a_num') IS NOT NULL
                 ON CONFLICT (message_id, attempt) DO NOTHING",
            )
            .bind(&json)
            .execute(&mut *tx)
            .await?;
        }
        for s in batch {
            if let Some(x) = &s.suppress {
                sqlx::query(
                    "INSERT INTO opt_outs (channel, address, source, created_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (channel, address) DO NOTHING",
                )
                .bind(x.channel.as_str())
                .bind(&x.address)
                .bind(&x.source)
                .bind(ms(s.at))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(counts)
    }

    pub(super) async fn receipts(
        &self,
        receipts: &[Receipt],
        now: DateTime<Utc>,
    ) -> Result<ReceiptCounts, StoreError> {
        let mut counts = ReceiptCounts::default();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for r in receipts {
            let (by_id, id, pid) = match &r.key {
                ReceiptKey::MessageId(id) => (1_i64, *id, String::new()),
                ReceiptKey::ProviderMessageId(p) => (0, 0, p.clone()),
            };
            let done = sqlx::query(
                "UPDATE messages SET status = CASE WHEN ?1 THEN 'delivered' ELSE 'failed' END,
                    reason = CASE WHEN ?1 THEN NULL ELSE ?2 END, detail = ?3,
                    sent_at = COALESCE(sent_at, ?4), lease_until = NULL, claim_token = NULL,
                    next_attempt_at = NULL, updated_at = ?5
                 WHERE ((?6 = 1 AND id = ?7) OR (?6 = 0 AND provider_message_id = ?8))
                   AND provider = ?9
                   AND (status IN ('sent', 'sending')
                        OR (status = 'deferred' AND reason = 'outcome_unknown'))",
            )
            .bind(r.delivered)
            .bind(&r.code)
            .bind(receipt_detail(r))
            .bind(ms(r.at.unwrap_or(now)))
            .bind(ms(now))
            .bind(by_id)
            .bind(id)
            .bind(&pid)
            .bind(&r.provider)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 && !r.delivered && r.suppress_address {
                sqlx::query(
                    "INSERT INTO opt_outs (channel, address, source, created_at)
                     SELECT channel, address, ?1, ?2 FROM messages
                     WHERE ((?3 = 1 AND id = ?4) OR (?3 = 0 AND provider_message_id = ?5))
                       AND provider = ?6 AND channel IS NOT NULL AND address IS NOT NULL
                     ON CONFLICT (channel, address) DO NOTHING",
                )
                .bind(format!("receipt:{}:{}", r.provider, r.code))
                .bind(ms(now))
                .bind(by_id)
                .bind(id)
                .bind(&pid)
                .bind(&r.provider)
                .execute(&mut *tx)
                .await?;
            }
            match (done.rows_affected() > 0, r.delivered) {
                (false, _) => counts.unmatched += 1,
                (true, true) => counts.delivered += 1,
                (true, false) => counts.failed += 1,
            }
        }
        tx.commit().await?;
        Ok(counts)
    }

    pub(super) async fn detail(&self, id: i64) -> Result<Option<MessageDetail>, StoreError> {
        let Some(r) = sqlx::query(
            "SELECT id, campaign_id, customer_id, occurrence, channel, provider, address, status,
                    reason, detail, attempts, provider_message_id, coupon_code, next_attempt_at,
                    created_at, sent_at, updated_at
             FROM messages WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let history = sqlx::query(
            "SELECT attempt, provider, at, outcome, provider_code, detail
             FROM message_attempts WHERE message_id = ?1 ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|a| {
            Ok(AttemptLog {
                attempt: u32::try_from(a.try_get::<i64, _>("attempt")?).unwrap_or(0),
                provider: a.try_get("provider")?,
                at: from_ms("message_attempts", a.try_get("at")?)?,
                outcome: a.try_get("outcome")?,
                provider_code: a.try_get("provider_code")?,
                detail: a.try_get("detail")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let retries = sqlx::query(
            "SELECT actor, at, previous_status, previous_reason, previous_detail, previous_attempts
             FROM message_retries WHERE message_id = ?1 ORDER BY at, id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|a| {
            Ok(RetryLog {
                actor: a.try_get("actor")?,
                at: from_ms("message_retries", a.try_get("at")?)?,
                previous_status: a.try_get("previous_status")?,
                previous_reason: a.try_get("previous_reason")?,
                previous_detail: a.try_get("previous_detail")?,
                previous_attempts: u32::try_from(a.try_get::<i64, _>("previous_attempts")?)
                    .unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let at = |col: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
            r.try_get::<Option<i64>, _>(col)?
                .map(|v| from_ms("messages", v))
                .transpose()
        };
        Ok(Some(MessageDetail {
            id: r.try_get("id")?,
            campaign_id: r.try_get("campaign_id")?,
            customer_id: r.try_get("customer_id")?,
            occurrence: r.try_get("occurrence")?,
            channel: r.try_get("channel")?,
            provider: r.try_get("provider")?,
            address: r.try_get("address")?,
            status: r.try_get("status")?,
            reason: r.try_get("reason")?,
            detail: r.try_get("detail")?,
            attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(0),
            provider_message_id: r.try_get("provider_message_id")?,
            coupon_code: r.try_get("coupon_code")?,
            next_attempt_at: at("next_attempt_at")?,
            created_at: from_ms("messages", r.try_get("created_at")?)?,
            sent_at: at("sent_at")?,
            updated_at: from_ms("messages", r.try_get("updated_at")?)?,
            history,
            retries,
        }))
    }

    pub(super) async fn opt_out(&self, o: &OptOut) -> Result<OptOutOutcome, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let recorded = sqlx::query(
            "INSERT INTO opt_outs (channel, address, source, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (channel, address) DO NOTHING",
        )
        .bind(o.channel.as_str())
        .bind(&o.address)
        .bind(&o.source)
        .bind(ms(o.at))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM messages
             WHERE status IN ('queued', 'deferred') AND channel = ?1 AND address = ?2",
        )
        .bind(o.channel.as_str())
        .bind(&o.address)
        .fetch_all(&mut *tx)
        .await?;
        let picked = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        let suppressed = suppress_opted_out(&mut tx, &picked, ms(o.at)).await?;
        tx.commit().await?;
        Ok(OptOutOutcome {
            recorded,
            suppressed,
        })
    }
}

/// Of the messages `picked` (a JSON array of ids), suppress those whose
/// address opted out, and withdraw their coupons.
async fn suppress_opted_out(
    tx: &mut Transaction<'_, Sqlite>,
    picked: &str,
    now: i64,
) -> Result<u64, StoreError> {
    // Built once: this runs in every claim.
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE messages SET status = 'suppressed', {assign},
                lease_until = NULL, claim_token = NULL, next_attempt_at = NULL, updated_at = ?2
             WHERE id IN (SELECT value FROM json_each(?3))
               AND status IN ('queued', 'deferred', 'sending')
               AND EXISTS (SELECT 1 {listed})
             RETURNING id",
            assign = blocked_assignments("messages", "?1"),
            listed = opt_out_of("messages"),
        )
    });
    let gone: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(SQL.as_str()))
        .bind(OPTED_OUT_DETAIL)
        .bind(now)
        .bind(picked)
        .fetch_all(&mut **tx)
        .await?;
    if !gone.is_empty() {
        sqlx::query(
            "UPDATE coupons SET voided_at = ?1
             WHERE message_id IN (SELECT value FROM json_each(?2))
               AND redeemed_order_id IS NULL AND voided_at IS NULL",
        )
        .bind(now)
        .bind(serde_json::to_string(&gone).unwrap_or_else(|_| "[]".into()))
        .execute(&mut **tx)
        .await?;
    }
    Ok(gone.len() as u64)
}

fn claimed_message(r: &SqliteRow) -> Result<ClaimedMessage, StoreError> {
    let channel: Option<String> = r.try_get("channel")?;
    let channel = channel
        .as_deref()
        .and_then(|c| c.parse::<Channel>().ok())
        .ok_or_else(|| StoreError::Corrupt {
            table: "messages",
            reason: format!(
                "queued message {} has no valid channel",
                r.try_get::<i64, _>("id").unwrap_or_default()
            ),
        })?;
    Ok(ClaimedMessage {
        id: r.try_get("id")?,
        dedupe_key: r.try_get("dedupe_key")?,
        campaign_id: r.try_get("campaign_id")?,
        customer_id: r.try_get("customer_id")?,
        channel,
        provider: r.try_get("provider")?,
        address: r
            .try_get::<Option<String>, _>("address")?
            .unwrap_or_default(),
        payload: r.try_get("payload")?,
        attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(0),
        attempts_before_retry: u32::try_from(r.try_get::<i64, _>("attempts_before_retry")?)
            .unwrap_or(0),
        reason: r.try_get("reason")?,
        coupon_code: r.try_get("coupon_code")?,
        store_code: r.try_get("store_code")?,
        store_name: r.try_get("store_name")?,
        sms_signature: r.try_get("sms_signature")?,
        timezone: r.try_get("timezone")?,
    })
}

//! The outbox on PostgreSQL: a claim is one statement (`FOR UPDATE SKIP
//! LOCKED`, so several workers never take the same message); settlements
//! are one guarded `UPDATE … FROM unnest(…)` per batch. No transaction is
//! open while a provider is called.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Postgres, Row, Transaction};

use super::PgStore;
use crate::dispatch::claim::{
    AttemptLog, Claim, ClaimedMessage, MessageDetail, OPTED_OUT_DETAIL, OptOutOutcome,
    ReceiptCounts, RetryLog, SettleCounts, Settlement, receipt_detail,
};
use crate::dispatch::provider::{Receipt, ReceiptKey};
use crate::store::{Channel, OptOut, StoreError, blocked_assignments, opt_out_of};

impl PgStore {
    pub(super) async fn claim(&self, c: &Claim) -> Result<Vec<ClaimedMessage>, StoreError> {
        let limit = i64::try_from(c.limit.max(1)).unwrap_or(500);
        let mut tx = self.pool.begin().await?;
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE status = 'sending' AND lease_until < $1
             ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(c.now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let room = limit - i64::try_from(ids.len()).unwrap_or(0);
        if room > 0 {
            let due: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM messages WHERE status IN ('queued', 'deferred')
                   AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2
                 FOR UPDATE SKIP LOCKED",
            )
            .bind(c.now)
            .bind(room)
            .fetch_all(&mut *tx)
            .await?;
            ids.extend(due);
        }
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        suppress_opted_out(&mut tx, &ids, c.now).await?;
        let rows = sqlx::query(
            "WITH claimed AS (
                UPDATE messages SET status = 'sending', lease_until = $1, claim_token = $2, updated_at = $3
                WHERE id = ANY($4) AND status IN ('queued', 'deferred', 'sending')
                RETURNING id, dedupe_key, campaign_id, customer_id, channel, provider, address,
                          payload::text AS payload, attempts, attempts_before_retry, reason,
                          coupon_code)
             SELECT m.*, cu.store_code, s.name AS store_name, s.sms_signature, s.timezone
             FROM claimed m
             JOIN customers cu ON cu.id = m.customer_id
             LEFT JOIN stores s ON s.code = cu.store_code
             ORDER BY m.id",
        )
        .bind(c.lease_until)
        .bind(&c.token)
        .bind(c.now)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(claimed_message).collect()
    }

    pub(super) async fn settle(&self, batch: &[Settlement]) -> Result<SettleCounts, StoreError> {
        if batch.is_empty() {
            return Ok(SettleCounts::default());
        }
        let col = |f: &dyn Fn(&Settlement) -> Option<String>| -> Vec<Option<String>> {
            batch.iter().map(f).collect()
        };
        let ids: Vec<i64> = batch.iter().map(|s| s.message_id).collect();
        let tokens = col(&|s| Some(s.token.clone()));
        let statuses = col(&|s| Some(s.status.as_str().to_owned()));
        let reasons = col(&|s| s.reason.clone());
        let details = col(&|s| s.detail.clone());
        let providers = col(&|s| s.provider.clone());
        let pids = col(&|s| s.provider_message_id.clone());
        let nexts: Vec<Option<DateTime<Utc>>> = batch.iter().map(|s| s.next_attempt_at).collect();
        let attempts: Vec<i32> = batch
            .iter()
            .map(|s| i32::try_from(s.attempts).unwrap_or(i32::MAX))
            .collect();
        let ats: Vec<DateTime<Utc>> = batch.iter().map(|s| s.at).collect();
        let mut tx = self.pool.begin().await?;
        let settled = sqlx::query(
            "UPDATE messages m SET status = v.status, reason = v.reason, detail = v.detail,
                provider = COALESCE(v.provider, m.provider),
                provider_message_id = COALESCE(v.pid, m.provider_message_id),
                next_attempt_at = v.next, attempts = v.attempts,
                sent_at = CASE WHEN v.status = 'sent' THEN v.at ELSE m.sent_at END,
                lease_until = NULL, claim_token = NULL, updated_at = v.at
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::timestamptz[], $9::int[], $10::timestamptz[])
                  AS v(id, token, status, reason, detail, provider, pid, next, attempts, at)
             WHERE m.id = v.id AND m.status = 'sending' AND m.claim_token = v.token",
        )
        .bind(&ids)
        .bind(&tokens)
        .bind(&statuses)
        .bind(&reasons)
        .bind(&details)
        .bind(&providers)
        .bind(&pids)
        .bind(&nexts)
        .bind(&attempts)
        .bind(&ats)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let with_attempt: Vec<&Settlement> = batch.iter().filter(|s| s.attempt.is_some()).collect();
        if !with_attempt.is_empty() {
            let a = |f: &dyn Fn(&Settlement) -> Option<String>| -> Vec<Option<String>> {
                with_attempt.iter().map(|s| f(s)).collect()
            };
            let ids: Vec<i64> = with_attempt.iter().map(|s| s.message_id).collect();
            let numbers: Vec<i32> = with_attempt
                .iter()
                .map(|s| {
                    s.attempt
                        .as_ref()
                        .map_or(0, |x| i32::try_from(x.number).unwrap_or(i32::MAX))
                })
                .collect();
            let ats: Vec<DateTime<Utc>> = with_attempt.iter().map(|s| s.at).collect();
            sqlx::query(
                "INSERT INTO message_attempts (message_id, attempt, provider, at, outcome, provider_code, detail)
                 SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::timestamptz[],
                                      $5::text[], $6::text[], $7::text[])
                 ON CONFLICT (message_id, attempt) DO NOTHING",
            )
            .bind(&ids)
            .bind(&numbers)
            .bind(a(&|s| s.attempt.as_ref().map(|x| x.provider.clone())))
            .bind(&ats)
            .bind(a(&|s| s.attempt.as_ref().map(|x| x.outcome.to_owned())))
            .bind(a(&|s| s.attempt.as_ref().and_then(|x| x.provider_code.clone())))
            .bind(a(&|s| s.attempt.as_ref().and_then(|x| x.detail.clone())))
            .execute(&mut *tx)
            .await?;
        }
        for s in batch {
            if let Some(x) = &s.suppress {
                sqlx::query(
                    "INSERT INTO opt_outs (channel, address, source, created_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (channel, address) DO NOTHING",
                )
                .bind(x.channel.as_str())
                .bind(&x.address)
                .bind(&x.source)
                .bind(s.at)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(SettleCounts {
            settled,
            lease_lost: batch.len() as u64 - settled,
        })
    }

    pub(super) async fn receipts(
        &self,
        receipts: &[Receipt],
        now: DateTime<Utc>,
    ) -> Result<ReceiptCounts, StoreError> {
        let mut counts = ReceiptCounts::default();
        let mut tx = self.pool.begin().await?;
        for r in receipts {
            let (by_id, id, pid) = match &r.key {
                ReceiptKey::MessageId(id) => (true, *id, String::new()),
                ReceiptKey::ProviderMessageId(p) => (false, 0, p.clone()),
            };
            let done = sqlx::query(
                "UPDATE messages SET status = CASE WHEN $1 THEN 'delivered' ELSE 'failed' END,
                    reason = CASE WHEN $1 THEN NULL ELSE $2 END, detail = $3,
                    sent_at = COALESCE(sent_at, $4), lease_until = NULL, claim_token = NULL,
                    next_attempt_at = NULL, updated_at = $5
                 WHERE (($6 AND id = $7) OR (NOT $6 AND provider_message_id = $8))
                   AND provider = $9
                   AND (status IN ('sent', 'sending')
                        OR (status = 'deferred' AND reason = 'outcome_unknown'))",
            )
            .bind(r.delivered)
            .bind(&r.code)
            .bind(receipt_detail(r))
            .bind(r.at.unwrap_or(now))
            .bind(now)
            .bind(by_id)
            .bind(id)
            .bind(&pid)
            .bind(&r.provider)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 && !r.delivered && r.suppress_address {
                sqlx::query(
                    "INSERT INTO opt_outs (channel, address, source, created_at)
                     SELECT channel, address, $1, $2 FROM messages
                     WHERE (($3 AND id = $4) OR (NOT $3 AND provider_message_id = $5))
                       AND provider = $6 AND channel IS NOT NULL AND address IS NOT NULL
                     ON CONFLICT (channel, address) DO NOTHING",
                )
                .bind(format!("receipt:{}:{}", r.provider, r.code))
                .bind(now)
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
             FROM messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let history = sqlx::query(
            "SELECT attempt, provider, at, outcome, provider_code, detail
             FROM message_attempts WHERE message_id = $1 ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|a| {
            Ok(AttemptLog {
                attempt: u32::try_from(a.try_get::<i32, _>("attempt")?).unwrap_or(0),
                provider: a.try_get("provider")?,
                at: a.try_get("at")?,
                outcome: a.try_get("outcome")?,
                provider_code: a.try_get("provider_code")?,
                detail: a.try_get("detail")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let retries = sqlx::query(
            "SELECT actor, at, previous_status, previous_reason, previous_detail, previous_attempts
             FROM message_retries WHERE message_id = $1 ORDER BY at, id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|a| {
            Ok(RetryLog {
                actor: a.try_get("actor")?,
                at: a.try_get("at")?,
                previous_status: a.try_get("previous_status")?,
                previous_reason: a.try_get("previous_reason")?,
                previous_detail: a.try_get("previous_detail")?,
                previous_attempts: u32::try_from(a.try_get::<i32, _>("previous_attempts")?)
                    .unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
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
            attempts: u32::try_from(r.try_get::<i32, _>("attempts")?).unwrap_or(0),
            provider_message_id: r.try_get("provider_message_id")?,
            coupon_code: r.try_get("coupon_code")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
            created_at: r.try_get("created_at")?,
            sent_at: r.try_get("sent_at")?,
            updated_at: r.try_get("updated_at")?,
            history,
            retries,
        }))
    }

    pub(super) async fn opt_out(&self, o: &OptOut) -> Result<OptOutOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let recorded = sqlx::query(
            "INSERT INTO opt_outs (channel, address, source, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (channel, address) DO NOTHING",
        )
        .bind(o.channel.as_str())
        .bind(&o.address)
        .bind(&o.source)
        .bind(o.at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE status IN ('queued', 'deferred')
               AND channel = $1 AND address = $2 FOR UPDATE",
        )
        .bind(o.channel.as_str())
        .bind(&o.address)
        .fetch_all(&mut *tx)
        .await?;
        let suppressed = suppress_opted_out(&mut tx, &ids, o.at).await?;
        tx.commit().await?;
        Ok(OptOutOutcome {
            recorded,
            suppressed,
        })
    }
}

/// Of the messages `ids`, suppress those whose address opted out, and
/// withdraw their coupons.
async fn suppress_opted_out(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    // Built once: this runs in every claim.
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH gone AS (
                UPDATE messages m SET status = 'suppressed', {assign},
                    lease_until = NULL, claim_token = NULL, next_attempt_at = NULL, updated_at = $2
                WHERE m.id = ANY($3) AND m.status IN ('queued', 'deferred', 'sending')
                  AND EXISTS (SELECT 1 {listed})
                RETURNING m.id),
             voided AS (
                UPDATE coupons SET voided_at = $2
                WHERE message_id IN (SELECT id FROM gone) AND redeemed_order_id IS NULL AND voided_at IS NULL)
             SELECT count(*) FROM gone",
            assign = blocked_assignments("m", "$1"),
            listed = opt_out_of("m"),
        )
    });
    let gone = sqlx::query(AssertSqlSafe(SQL.as_str()))
        .bind(OPTED_OUT_DETAIL)
        .bind(now)
        .bind(ids)
        .fetch_one(&mut **tx)
        .await?;
    Ok(u64::try_from(gone.try_get::<i64, _>(0)?).unwrap_or(0))
}

fn claimed_message(r: &PgRow) -> Result<ClaimedMessage, StoreError> {
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
        attempts: u32::try_from(r.try_get::<i32, _>("attempts")?).unwrap_or(0),
        attempts_before_retry: u32::try_from(r.try_get::<i32, _>("attempts_before_retry")?)
            .unwrap_or(0),
        reason: r.try_get("reason")?,
        coupon_code: r.try_get("coupon_code")?,
        store_code: r.try_get("store_code")?,
        store_name: r.try_get("store_name")?,
        sms_signature: r.try_get("sms_signature")?,
        timezone: r.try_get("timezone")?,
    })
}

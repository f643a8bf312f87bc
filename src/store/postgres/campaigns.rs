//! A campaign run on PostgreSQL: candidates found set-based into a temporary
//! table, then read back a page at a time; each page's messages and coupons
//! are written in one short transaction with `unnest` arrays.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Connection, Postgres, Row};
use tokio::sync::Mutex;

use super::segments::{load_calendar, next_bound};
use super::{PgStore, probe_by_key};
use crate::campaigns::outbox::{
    Blocked, Candidate, CandidateQuery, CandidateSink, CouponRow, MessageRow, PageWrite,
    PlannedMessage, RunRecord, Selector, WriteTotals,
};
use crate::expr::{BindParams, Dialect, SqlParam};
use crate::store::campaign_pages::{
    FindCandidates, PageReader, PageWriter, Search, SharedConn, Writes, page_writers,
    run_connections, run_pages,
};
use crate::store::{StoreError, campaigns_sql};

type Conn = PoolConnection<Postgres>;

/// Writers of a run's pages, each on its own connection. Writing a page
/// (messages, coupons and their indexes) costs the server more than reading
/// the next one, so with one writer the reader and the planner waited for
/// it; two keep both cores of a small server busy.
const WRITERS: usize = 2;

impl PgStore {
    pub(super) async fn plan_run(
        &self,
        q: &CandidateQuery,
        sink: &mut dyn CandidateSink,
        write: bool,
    ) -> Result<WriteTotals, StoreError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SET jit = off").execute(&mut *conn).await?;
        load_calendar(&mut conn, &q.days, &q.birthdays).await?;
        load_due(&mut conn, q).await?;
        let mut pages = Pages {
            conn: Arc::new(Mutex::new(conn)),
            sql: campaigns_sql::page(Dialect::Postgres),
            after: String::new(),
            cap_since: q.cap_since.timestamp_millis(),
            limit: i64::try_from(q.batch_size.max(1)).unwrap_or(1000),
            priority: i64::from(q.priority),
            search: Search::new(
                campaigns_sql::select_candidates(q, Dialect::Postgres),
                q.batch_size,
            ),
        };
        pages.fill().await?;
        let writing = run_connections(
            &self.pool,
            &pages.conn,
            pages.search.pages_to_write(write),
            WRITERS,
        )
        .await?;
        let writers = page_writers(write, writing, q);
        let mut totals = WriteTotals::default();
        let pages = run_pages(pages, writers, sink, &mut totals).await?;
        totals.candidates = pages.search.found;
        let mut conn = pages.conn.lock().await;
        for sql in ["TRUNCATE camp_cand", "TRUNCATE camp_due"] {
            sqlx::query(sql).execute(&mut **conn).await?;
        }
        Ok(totals)
    }

    pub(super) async fn last_run(
        &self,
        campaign_id: &str,
        before: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT max(scheduled_for) FROM campaign_runs WHERE campaign_id = $1 AND scheduled_for < $2 AND outcome = 'ok'",
        )
        .bind(campaign_id)
        .bind(before)
        .fetch_one(&self.pool)
        .await?)
    }

    pub(super) async fn record_run(
        &self,
        campaign_id: &str,
        scheduled_for: DateTime<Utc>,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        record: &RunRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO campaign_runs (campaign_id, scheduled_for, started_at, finished_at, outcome, planned, suppressed, detail)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
               ON CONFLICT (campaign_id, scheduled_for) DO UPDATE SET started_at = excluded.started_at,
                 finished_at = excluded.finished_at, outcome = excluded.outcome,
                 planned = campaign_runs.planned + excluded.planned,
                 suppressed = campaign_runs.suppressed + excluded.suppressed, detail = excluded.detail"#,
        )
        .bind(campaign_id)
        .bind(scheduled_for)
        .bind(started_at)
        .bind(finished_at)
        .bind(&record.outcome)
        .bind(i32::try_from(record.planned).unwrap_or(i32::MAX))
        .bind(i32::try_from(record.suppressed).unwrap_or(i32::MAX))
        .bind(&record.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Fill `camp_due` with the trigger's due rows, and empty `camp_cand`.
async fn load_due(conn: &mut Conn, q: &CandidateQuery) -> Result<(), StoreError> {
    for sql in [
        "CREATE TEMP TABLE IF NOT EXISTS camp_due (store_key TEXT COLLATE \"C\" NOT NULL, month INTEGER, day INTEGER, \
         occurrence TEXT, due_at BIGINT, last_max BIGINT, last_min BIGINT)",
        "CREATE TEMP TABLE IF NOT EXISTS camp_cand (customer_id TEXT COLLATE \"C\" PRIMARY KEY, \
         occurrence TEXT NOT NULL, due_at BIGINT NOT NULL)",
        "TRUNCATE camp_due",
        "TRUNCATE camp_cand",
    ] {
        sqlx::query(sql).execute(&mut **conn).await?;
    }
    match &q.selector {
        Selector::Birthday(rows) => {
            sqlx::query(
                "INSERT INTO camp_due (store_key, month, day, occurrence, due_at) \
                 SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::text[], $5::bigint[])",
            )
            .bind(rows.iter().map(|r| r.store_key.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| i32::from(r.month)).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| i32::from(r.day)).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.occurrence.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.due_at.timestamp_millis())
                    .collect::<Vec<_>>(),
            )
            .execute(&mut **conn)
            .await?;
        }
        Selector::Lapsed(rows) => {
            for r in rows {
                sqlx::query(
                    "INSERT INTO camp_due (store_key, last_max, last_min) VALUES ($1, $2, $3)",
                )
                .bind(&r.store_key)
                .bind(r.last_day_max)
                .bind(r.last_day_min)
                .execute(&mut **conn)
                .await?;
            }
        }
        Selector::Broadcast(rows) => {
            for r in rows {
                sqlx::query(
                    "INSERT INTO camp_due (store_key, occurrence, due_at) VALUES ($1, $2, $3)",
                )
                .bind(&r.store_key)
                .bind(&r.occurrence)
                .bind(r.due_at.timestamp_millis())
                .execute(&mut **conn)
                .await?;
            }
        }
        Selector::SegmentEntered { .. } => {}
    }
    sqlx::query("ANALYZE camp_due").execute(&mut **conn).await?;
    Ok(())
}

/// How a page is read, besides key look-ups ([`probe_by_key`]): while its
/// statistics still count `messages` empty (a new database, or during its
/// first large run) PostgreSQL read that table by a sequential scan per
/// candidate (one page took 9.5 s). The page's subqueries leave it one index
/// for each lookup (see `campaigns_sql::page`).
const NO_SEQSCAN: &str = "SET LOCAL enable_seqscan = off";

/// The run's candidates a page at a time, from the connection that holds
/// `camp_cand`.
struct Pages {
    conn: SharedConn<Postgres>,
    sql: String,
    /// The last customer id read.
    after: String,
    cap_since: i64,
    limit: i64,
    priority: i64,
    /// The candidate search, kept a page ahead of the reads.
    search: Search,
}

impl Pages {
    /// Find candidates until a page's worth is waiting (or none are left).
    async fn fill(&mut self) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().await;
        self.search.fill(&mut *conn).await
    }
}

impl FindCandidates for Conn {
    async fn next_bound(&mut self, lo: &str, size: usize) -> Result<Option<String>, StoreError> {
        next_bound(self, "customers", lo, size).await
    }

    async fn find(
        &mut self,
        sql: &str,
        params: &[SqlParam],
        lo: &str,
        hi: &str,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(AssertSqlSafe(sql.to_owned()))
            .bind_params(params)
            .bind(lo)
            .bind(hi)
            .execute(&mut **self)
            .await?
            .rows_affected())
    }
}

impl PageReader for Pages {
    async fn next_page(&mut self) -> Result<Option<Vec<Candidate>>, StoreError> {
        self.fill().await?;
        let mut conn = self.conn.lock().await;
        let mut tx = conn.begin().await?;
        probe_by_key(&mut tx).await?;
        sqlx::query(NO_SEQSCAN).execute(&mut *tx).await?;
        let rows = sqlx::query(AssertSqlSafe(self.sql.clone()))
            .bind(self.cap_since)
            .bind(&self.after)
            .bind(self.limit)
            .bind(self.cap_since)
            .bind(self.priority)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        drop(conn);
        self.search.read(rows.len());
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        self.after = last.try_get("customer_id")?;
        rows.iter()
            .map(candidate)
            .collect::<Result<_, _>>()
            .map(Some)
    }
}

impl PageWriter for Writes<Postgres> {
    async fn write_page(&mut self, planned: &[PlannedMessage]) -> Result<PageWrite, StoreError> {
        let mut conn = self.conn.lock().await;
        write_page(&mut conn, &self.query, planned).await
    }
}

fn candidate(r: &PgRow) -> Result<Candidate, StoreError> {
    let small = |col: &str| -> Result<Option<u8>, StoreError> {
        Ok(r.try_get::<Option<i64>, _>(col)?
            .and_then(|v| u8::try_from(v).ok()))
    };
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let due: i64 = r.try_get("due_at")?;
    Ok(Candidate {
        customer_id: r.try_get("customer_id")?,
        occurrence: r.try_get("occurrence")?,
        due_at: DateTime::from_timestamp_millis(due).ok_or_else(|| StoreError::Corrupt {
            table: "camp_cand",
            reason: format!("timestamp {due} out of range"),
        })?,
        name: r.try_get("name")?,
        phone: r.try_get("phone")?,
        email: r.try_get("email")?,
        wechat_openid: r.try_get("wechat_openid")?,
        sms_opt_in: r.try_get("sms_opt_in")?,
        email_opt_in: r.try_get("email_opt_in")?,
        wechat_opt_in: r.try_get("wechat_opt_in")?,
        store_key: r.try_get("store_key")?,
        store_name: r.try_get("store_name")?,
        sms_signature: r.try_get("sms_signature")?,
        birth_month: small("birth_month")?,
        birth_day: small("birth_day")?,
        tags: r.try_get("tags")?,
        order_count: r.try_get("order_count")?,
        total_spent_fen: r.try_get("total_spent_fen")?,
        lifecycle: nonempty(r.try_get("lifecycle")?),
        value_tier: nonempty(r.try_get("value_tier")?),
        days_to_birthday: r.try_get("days_to_birthday")?,
        sms_blocked: Blocked::from_code(r.try_get("sms_blocked")?),
        email_blocked: Blocked::from_code(r.try_get("email_blocked")?),
        wechat_blocked: Blocked::from_code(r.try_get("wechat_blocked")?),
        recent_messages: r.try_get("recent_messages")?,
        rival: rival(r)?,
    })
}

fn rival(r: &PgRow) -> Result<Option<crate::campaigns::outbox::Rival>, StoreError> {
    Ok(campaigns_sql::rival(
        r.try_get("rival_id")?,
        r.try_get("rival_campaign")?,
        r.try_get("rival_priority")?,
        r.try_get("rival_created_at")?,
    ))
}

/// Write a page's messages (those whose dedupe key is new) and the coupons of
/// the messages written, in one transaction; a message that replaces a
/// lower-priority one under the cap suppresses it and voids its coupon.
async fn write_page(
    conn: &mut Conn,
    q: &CandidateQuery,
    planned: &[PlannedMessage],
) -> Result<PageWrite, StoreError> {
    let col = |f: &dyn Fn(&PlannedMessage) -> Option<String>| -> Vec<Option<String>> {
        planned.iter().map(f).collect()
    };
    let keys: Vec<String> = planned
        .iter()
        .map(|m| m.dedupe_key(&q.campaign_id))
        .collect();
    let mut tx = conn.begin().await?;
    let rows = sqlx::query(
        r#"INSERT INTO messages (dedupe_key, campaign_id, customer_id, occurrence, channel, address,
               status, reason, detail, next_attempt_at, coupon_code, payload, priority, created_at, updated_at)
           SELECT k, $2, cu, oc, ch, ad, st, re, de, na, cc, pl::jsonb, $13, $14, $14
           FROM unnest($1::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                       $9::text[], $10::timestamptz[], $11::text[], $12::text[])
                AS u(k, cu, oc, ch, ad, st, re, de, na, cc, pl)
           ON CONFLICT (dedupe_key) DO NOTHING
           RETURNING id, dedupe_key"#,
    )
    .bind(&keys)
    .bind(&q.campaign_id)
    .bind(planned.iter().map(|m| m.customer_id.clone()).collect::<Vec<_>>())
    .bind(planned.iter().map(|m| m.occurrence.clone()).collect::<Vec<_>>())
    .bind(col(&|m| m.channel.map(|c| c.as_str().to_owned())))
    .bind(col(&|m| m.address.clone()))
    .bind(planned.iter().map(|m| m.status.as_str().to_owned()).collect::<Vec<_>>())
    .bind(col(&|m| m.reason.map(|r| r.as_str().to_owned())))
    .bind(col(&|m| m.detail.clone()))
    .bind(planned.iter().map(|m| m.next_attempt_at).collect::<Vec<_>>())
    .bind(col(&|m| m.coupon.as_ref().map(|c| c.code.clone())))
    .bind(col(&|m| m.payload.clone()))
    .bind(q.priority)
    .bind(q.now)
    .fetch_all(&mut *tx)
    .await?;
    let ids: std::collections::HashMap<String, i64> = rows
        .iter()
        .map(|r| Ok((r.try_get::<String, _>(1)?, r.try_get::<i64, _>(0)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let written = ids.len() as u64;
    let now_ms = q.now.timestamp_millis();
    let mut lost = std::collections::HashSet::new();
    let mut preempted = 0;
    for (key, m) in keys.iter().zip(planned) {
        let (Some(p), Some(id)) = (&m.preempts, ids.get(key)) else {
            continue;
        };
        let replaced = sqlx::query(AssertSqlSafe(campaigns_sql::preempt(Dialect::Postgres)))
            .bind(&p.detail)
            .bind(now_ms)
            .bind(p.message_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if replaced == 1 {
            sqlx::query(AssertSqlSafe(campaigns_sql::void_coupon(Dialect::Postgres)))
                .bind(now_ms)
                .bind(p.message_id)
                .execute(&mut *tx)
                .await?;
            preempted += 1;
        } else {
            sqlx::query(AssertSqlSafe(campaigns_sql::capped_after_all(
                Dialect::Postgres,
            )))
            .bind(&p.fallback_detail)
            .bind(*id)
            .execute(&mut *tx)
            .await?;
            lost.insert(*id);
        }
    }
    let with_coupon: Vec<(i64, &PlannedMessage)> = keys
        .iter()
        .zip(planned)
        .filter(|(_, m)| m.coupon.is_some())
        .filter_map(|(key, m)| ids.get(key).map(|id| (*id, m)))
        .filter(|(id, _)| !lost.contains(id))
        .collect();
    if !with_coupon.is_empty() {
        let c = |m: &PlannedMessage| m.coupon.clone().expect("filtered on coupon");
        sqlx::query(
            r#"INSERT INTO coupons (code, campaign_id, customer_id, message_id, kind, value, item,
                   min_spend_fen, issued_at, expires_at)
               SELECT co, $2, cu, mi, ki, va, it, ms, $10, ex
               FROM unnest($1::text[], $3::text[], $4::bigint[], $5::text[], $6::int[], $7::text[],
                           $8::bigint[], $9::timestamptz[]) AS u(co, cu, mi, ki, va, it, ms, ex)"#,
        )
        .bind(
            with_coupon
                .iter()
                .map(|(_, m)| c(m).code)
                .collect::<Vec<_>>(),
        )
        .bind(&q.campaign_id)
        .bind(
            with_coupon
                .iter()
                .map(|(_, m)| m.customer_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(with_coupon.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(
            with_coupon
                .iter()
                .map(|(_, m)| c(m).kind.to_owned())
                .collect::<Vec<_>>(),
        )
        .bind(
            with_coupon
                .iter()
                .map(|(_, m)| i32::try_from(c(m).value).unwrap_or(i32::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(
            with_coupon
                .iter()
                .map(|(_, m)| c(m).item)
                .collect::<Vec<_>>(),
        )
        .bind(
            with_coupon
                .iter()
                .map(|(_, m)| c(m).min_spend_fen)
                .collect::<Vec<_>>(),
        )
        .bind(
            with_coupon
                .iter()
                .map(|(_, m)| c(m).expires_at)
                .collect::<Vec<_>>(),
        )
        .bind(q.now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(PageWrite {
        messages: written,
        coupons: with_coupon.len() as u64,
        preempted,
    })
}

impl PgStore {
    pub(super) async fn read_messages(
        &self,
        campaign_id: Option<&str>,
        customer_id: Option<&str>,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let rows = sqlx::query(
            r#"SELECT id, campaign_id, customer_id, occurrence, channel, address, status, reason, detail,
                   coupon_code, next_attempt_at, created_at, payload::text AS payload
               FROM messages WHERE ($1::text IS NULL OR campaign_id = $1) AND ($2::text IS NULL OR customer_id = $2)
               ORDER BY id"#,
        )
        .bind(campaign_id)
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MessageRow {
                    id: r.try_get("id")?,
                    campaign_id: r.try_get("campaign_id")?,
                    customer_id: r.try_get("customer_id")?,
                    occurrence: r.try_get("occurrence")?,
                    channel: r.try_get("channel")?,
                    address: r.try_get("address")?,
                    status: r.try_get("status")?,
                    reason: r.try_get("reason")?,
                    detail: r.try_get("detail")?,
                    coupon_code: r.try_get("coupon_code")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    created_at: r.try_get("created_at")?,
                    payload: r.try_get("payload")?,
                })
            })
            .collect()
    }

    pub(super) async fn read_coupons(
        &self,
        campaign_id: &str,
    ) -> Result<Vec<CouponRow>, StoreError> {
        let rows = sqlx::query(
            r#"SELECT code, campaign_id, customer_id, message_id, kind, value::bigint AS value, min_spend_fen,
                   expires_at, redeemed_order_id, redeemed_at, voided_at
               FROM coupons WHERE campaign_id = $1 ORDER BY code"#,
        )
        .bind(campaign_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CouponRow {
                    code: r.try_get("code")?,
                    campaign_id: r.try_get("campaign_id")?,
                    customer_id: r.try_get("customer_id")?,
                    message_id: r.try_get("message_id")?,
                    kind: r.try_get("kind")?,
                    value: r.try_get("value")?,
                    min_spend_fen: r.try_get("min_spend_fen")?,
                    expires_at: r.try_get("expires_at")?,
                    redeemed_order_id: r.try_get("redeemed_order_id")?,
                    redeemed_at: r.try_get("redeemed_at")?,
                    voided_at: r.try_get("voided_at")?,
                })
            })
            .collect()
    }
}

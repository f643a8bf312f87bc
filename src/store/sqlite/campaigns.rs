//! A campaign run on SQLite: candidates found set-based into a temporary
//! table, then read back a page at a time; each page's messages and coupons
//! are written in one short `BEGIN IMMEDIATE` transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Connection, QueryBuilder, Row, Sqlite};
use tokio::sync::Mutex;

use super::segments::{load_calendar, next_bound};
use super::{SqliteStore, from_ms, ms};
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

type Conn = PoolConnection<Sqlite>;

/// Writers of a run's pages: SQLite commits one write transaction at a time.
const WRITERS: usize = 1;

/// Messages per multi-row INSERT (15 columns each).
const MESSAGE_ROWS_PER_STATEMENT: usize = 200;

impl SqliteStore {
    pub(super) async fn plan_run(
        &self,
        q: &CandidateQuery,
        sink: &mut dyn CandidateSink,
        write: bool,
    ) -> Result<WriteTotals, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_calendar(&mut conn, &q.days, &q.birthdays).await?;
        load_due(&mut conn, q).await?;
        let mut pages = Pages {
            conn: Arc::new(Mutex::new(conn)),
            sql: campaigns_sql::page(Dialect::Sqlite),
            after: String::new(),
            cap_since: ms(q.cap_since),
            limit: i64::try_from(q.batch_size.max(1)).unwrap_or(1000),
            priority: i64::from(q.priority),
            search: Search::new(
                campaigns_sql::select_candidates(q, Dialect::Sqlite),
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
        for sql in ["DELETE FROM camp_cand", "DELETE FROM camp_due"] {
            sqlx::query(sql).execute(&mut **conn).await?;
        }
        Ok(totals)
    }

    pub(super) async fn last_run(
        &self,
        campaign_id: &str,
        before: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT max(scheduled_for) FROM campaign_runs WHERE campaign_id = ? AND scheduled_for < ? AND outcome = 'ok'",
        )
        .bind(campaign_id)
        .bind(ms(before))
        .fetch_one(&self.pool)
        .await?;
        v.map(|v| from_ms("campaign_runs", v)).transpose()
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
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (campaign_id, scheduled_for) DO UPDATE SET started_at = excluded.started_at,
                 finished_at = excluded.finished_at, outcome = excluded.outcome,
                 planned = campaign_runs.planned + excluded.planned,
                 suppressed = campaign_runs.suppressed + excluded.suppressed, detail = excluded.detail"#,
        )
        .bind(campaign_id)
        .bind(ms(scheduled_for))
        .bind(ms(started_at))
        .bind(ms(finished_at))
        .bind(&record.outcome)
        .bind(i64::try_from(record.planned).unwrap_or(i64::MAX))
        .bind(i64::try_from(record.suppressed).unwrap_or(i64::MAX))
        .bind(&record.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Fill `camp_due` with the trigger's due rows, and empty `camp_cand`.
async fn load_due(conn: &mut Conn, q: &CandidateQuery) -> Result<(), StoreError> {
    for sql in [
        "CREATE TEMP TABLE IF NOT EXISTS camp_due (store_key TEXT NOT NULL, month INTEGER, day INTEGER, \
         occurrence TEXT, due_at INTEGER, last_max INTEGER, last_min INTEGER)",
        "CREATE TEMP TABLE IF NOT EXISTS camp_cand (customer_id TEXT PRIMARY KEY, occurrence TEXT NOT NULL, \
         due_at INTEGER NOT NULL) WITHOUT ROWID",
        "DELETE FROM camp_due",
        "DELETE FROM camp_cand",
    ] {
        sqlx::query(sql).execute(&mut **conn).await?;
    }
    let mut tx = conn.begin().await?;
    match &q.selector {
        Selector::Birthday(rows) => {
            for r in rows {
                sqlx::query("INSERT INTO camp_due (store_key, month, day, occurrence, due_at) VALUES (?, ?, ?, ?, ?)")
                    .bind(&r.store_key)
                    .bind(i64::from(r.month))
                    .bind(i64::from(r.day))
                    .bind(&r.occurrence)
                    .bind(ms(r.due_at))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Selector::Lapsed(rows) => {
            for r in rows {
                sqlx::query(
                    "INSERT INTO camp_due (store_key, last_max, last_min) VALUES (?, ?, ?)",
                )
                .bind(&r.store_key)
                .bind(r.last_day_max)
                .bind(r.last_day_min)
                .execute(&mut *tx)
                .await?;
            }
        }
        Selector::Broadcast(rows) => {
            for r in rows {
                sqlx::query(
                    "INSERT INTO camp_due (store_key, occurrence, due_at) VALUES (?, ?, ?)",
                )
                .bind(&r.store_key)
                .bind(&r.occurrence)
                .bind(ms(r.due_at))
                .execute(&mut *tx)
                .await?;
            }
        }
        Selector::SegmentEntered { .. } => {}
    }
    tx.commit().await?;
    Ok(())
}

/// The run's candidates a page at a time, from the connection that holds
/// `camp_cand`.
struct Pages {
    conn: SharedConn<Sqlite>,
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
        let rows = sqlx::query(AssertSqlSafe(self.sql.clone()))
            .bind(self.cap_since)
            .bind(&self.after)
            .bind(self.limit)
            .bind(self.cap_since)
            .bind(self.priority)
            .fetch_all(&mut **conn)
            .await?;
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

impl PageWriter for Writes<Sqlite> {
    async fn write_page(&mut self, planned: &[PlannedMessage]) -> Result<PageWrite, StoreError> {
        let mut conn = self.conn.lock().await;
        write_page(&mut conn, &self.query, planned).await
    }
}

fn candidate(r: &SqliteRow) -> Result<Candidate, StoreError> {
    let flag = |col: &str| -> Result<Option<bool>, StoreError> {
        Ok(r.try_get::<Option<i64>, _>(col)?.map(|v| v != 0))
    };
    let small = |col: &str| -> Result<Option<u8>, StoreError> {
        Ok(r.try_get::<Option<i64>, _>(col)?
            .and_then(|v| u8::try_from(v).ok()))
    };
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    Ok(Candidate {
        customer_id: r.try_get("customer_id")?,
        occurrence: r.try_get("occurrence")?,
        due_at: from_ms("camp_cand", r.try_get("due_at")?)?,
        name: r.try_get("name")?,
        phone: r.try_get("phone")?,
        email: r.try_get("email")?,
        wechat_openid: r.try_get("wechat_openid")?,
        sms_opt_in: flag("sms_opt_in")?,
        email_opt_in: flag("email_opt_in")?,
        wechat_opt_in: flag("wechat_opt_in")?,
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

fn rival(r: &SqliteRow) -> Result<Option<crate::campaigns::outbox::Rival>, StoreError> {
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
    let now = ms(q.now);
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let keyed: Vec<(String, &PlannedMessage)> = planned
        .iter()
        .map(|m| (m.dedupe_key(&q.campaign_id), m))
        .collect();
    let mut written: Vec<(i64, &PlannedMessage)> = Vec::with_capacity(planned.len());
    for chunk in keyed.chunks(MESSAGE_ROWS_PER_STATEMENT) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO messages (dedupe_key, campaign_id, customer_id, occurrence, channel, address, \
             status, reason, detail, next_attempt_at, coupon_code, payload, priority, created_at, updated_at) ",
        );
        qb.push_values(chunk, |mut b, (key, m)| {
            b.push_bind(key)
                .push_bind(&q.campaign_id)
                .push_bind(&m.customer_id)
                .push_bind(&m.occurrence)
                .push_bind(m.channel.map(|c| c.as_str()))
                .push_bind(&m.address)
                .push_bind(m.status.as_str())
                .push_bind(m.reason.map(|r| r.as_str()))
                .push_bind(&m.detail)
                .push_bind(m.next_attempt_at.map(ms))
                .push_bind(m.coupon.as_ref().map(|c| c.code.as_str()))
                .push_bind(&m.payload)
                .push_bind(i64::from(q.priority))
                .push_bind(now)
                .push_bind(now);
        });
        qb.push(" ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key");
        let rows = qb.build().fetch_all(&mut *tx).await?;
        let ids: std::collections::HashMap<String, i64> = rows
            .iter()
            .map(|r| Ok((r.try_get::<String, _>(1)?, r.try_get::<i64, _>(0)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        for (key, m) in chunk {
            if let Some(id) = ids.get(key) {
                written.push((*id, *m));
            }
        }
    }
    let mut lost = std::collections::HashSet::new();
    let mut preempted = 0;
    for (id, m) in &written {
        let Some(p) = &m.preempts else { continue };
        let replaced = sqlx::query(AssertSqlSafe(campaigns_sql::preempt(Dialect::Sqlite)))
            .bind(&p.detail)
            .bind(now)
            .bind(p.message_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if replaced == 1 {
            sqlx::query(AssertSqlSafe(campaigns_sql::void_coupon(Dialect::Sqlite)))
                .bind(now)
                .bind(p.message_id)
                .execute(&mut *tx)
                .await?;
            preempted += 1;
        } else {
            sqlx::query(AssertSqlSafe(campaigns_sql::capped_after_all(
                Dialect::Sqlite,
            )))
            .bind(&p.fallback_detail)
            .bind(*id)
            .execute(&mut *tx)
            .await?;
            lost.insert(*id);
        }
    }
    let with_coupon: Vec<(i64, &PlannedMessage)> = written
        .iter()
        .filter(|(id, m)| m.coupon.is_some() && !lost.contains(id))
        .copied()
        .collect();
    for chunk in with_coupon.chunks(MESSAGE_ROWS_PER_STATEMENT) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO coupons (code, campaign_id, customer_id, message_id, kind, value, item, \
             min_spend_fen, issued_at, expires_at) ",
        );
        qb.push_values(chunk, |mut b, (id, m)| {
            let c = m.coupon.as_ref().expect("filtered on coupon");
            b.push_bind(&c.code)
                .push_bind(&q.campaign_id)
                .push_bind(&m.customer_id)
                .push_bind(*id)
                .push_bind(c.kind)
                .push_bind(c.value)
                .push_bind(&c.item)
                .push_bind(c.min_spend_fen)
                .push_bind(now)
                .push_bind(ms(c.expires_at));
        });
        qb.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(PageWrite {
        messages: written.len() as u64,
        coupons: with_coupon.len() as u64,
        preempted,
    })
}

impl SqliteStore {
    pub(super) async fn read_messages(
        &self,
        campaign_id: Option<&str>,
        customer_id: Option<&str>,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let rows = sqlx::query(
            r#"SELECT id, campaign_id, customer_id, occurrence, channel, address, status, reason, detail,
                   coupon_code, next_attempt_at, created_at, payload
               FROM messages WHERE (?1 IS NULL OR campaign_id = ?1) AND (?2 IS NULL OR customer_id = ?2)
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
                    next_attempt_at: r
                        .try_get::<Option<i64>, _>("next_attempt_at")?
                        .map(|v| from_ms("messages", v))
                        .transpose()?,
                    created_at: from_ms("messages", r.try_get("created_at")?)?,
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
            r#"SELECT code, campaign_id, customer_id, message_id, kind, value, min_spend_fen, expires_at,
                   redeemed_order_id, redeemed_at, voided_at
               FROM coupons WHERE campaign_id = ? ORDER BY code"#,
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
                    expires_at: from_ms("coupons", r.try_get("expires_at")?)?,
                    redeemed_order_id: r.try_get("redeemed_order_id")?,
                    redeemed_at: r
                        .try_get::<Option<i64>, _>("redeemed_at")?
                        .map(|v| from_ms("coupons", v))
                        .transpose()?,
                    voided_at: r
                        .try_get::<Option<i64>, _>("voided_at")?
                        .map(|v| from_ms("coupons", v))
                        .transpose()?,
                })
            })
            .collect()
    }
}

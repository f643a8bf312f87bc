//! [`Store`] on PostgreSQL. Imports stream each batch with `COPY` into a
//! temporary staging table and upsert from it in one statement, so a batch is
//! one round trip of data and one transaction.

mod campaigns;
mod coupons;
mod outbox;
mod segments;
mod send_log;
mod ticks;

use crate::store::ticks::{HousekeepingReport, JobRun, Retention, TickClaim, TickFinish};
use std::fmt::Write as _;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, Row};

use super::{
    Backend, Channel, Counts, OptOut, OrderBatchOutcome, QueueDepth, RetryOutcome, SendLogPage,
    SendLogQuery, Store, StoreError, UpsertCounts, counts_from, minute_of_day, stored_tz,
};
use crate::campaigns::outbox::{
    CandidateQuery, CandidateSink, CouponRow, MessageRow, RunRecord, WriteTotals,
};
use crate::campaigns::stats::CampaignStats;
use crate::dispatch::claim::{
    Claim, ClaimedMessage, MessageDetail, OptOutOutcome, ReceiptCounts, SettleCounts, Settlement,
};
use crate::dispatch::provider::Receipt;
use crate::domain::{
    Birthday, Consent, Customer, CustomerId, Email, Money, Order, OrderId, Phone, StoreCode,
    StoreInfo, Tags, WeChatOpenId,
};
use crate::segments::{CustomerProfile, SegmentOutcome, SegmentPlan, SegmentSize};

/// PostgreSQL-backed store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connect and migrate.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(StoreError::Connect)?;
        Self::open_with(options, max_connections).await
    }

    /// Connect with explicit options and migrate.
    pub async fn open_with(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let options = options
            .log_statements(log::LevelFilter::Debug)
            .log_slow_statements(log::LevelFilter::Warn, std::time::Duration::from_secs(30));
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(StoreError::migrate)?;
        Ok(Self { pool })
    }

    /// The connection pool (for tests and tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// For the rest of the transaction, join by looking keys up in indexes:
/// hash and merge joins off. For statements that match a few thousand rows
/// (an import batch, a page of candidates, an incremental batch of
/// customers) against a table of millions: PostgreSQL costs the random reads
/// of those look-ups as if from disk, or has no statistics for the small
/// side (a staging or temporary table), and otherwise reads and hashes the
/// whole large table every time (an import batch, 140 of a 490 ms segments
/// batch, 60 of a 200 ms campaign page).
pub(super) async fn probe_by_key(conn: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    sqlx::raw_sql("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
        .execute(conn)
        .await?;
    Ok(())
}

/// Appends one field in COPY text format: `\N` for NULL, backslash escapes.
fn copy_field(buf: &mut String, v: Option<&str>) {
    match v {
        None => buf.push_str("\\N"),
        Some(s) => {
            for ch in s.chars() {
                match ch {
                    '\\' => buf.push_str("\\\\"),
                    '\t' => buf.push_str("\\t"),
                    '\n' => buf.push_str("\\n"),
                    '\r' => buf.push_str("\\r"),
                    c => buf.push(c),
                }
            }
        }
    }
}

/// A UTC instant as `YYYY-MM-DD HH:MM:SS.ffffff+00` (written by hand: chrono's
/// format strings are re-parsed on every call and showed up in import profiles).
fn copy_ts(buf: &mut String, t: Option<DateTime<Utc>>) {
    use chrono::{Datelike, Timelike};
    match t {
        None => buf.push_str("\\N"),
        Some(t) => {
            let _ = write!(
                buf,
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.timestamp_subsec_micros()
            );
        }
    }
}

/// A date as `YYYY-MM-DD`.
fn copy_date(buf: &mut String, d: chrono::NaiveDate) {
    use chrono::Datelike;
    let _ = write!(buf, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
}

fn copy_bool(buf: &mut String, v: Option<bool>) {
    buf.push_str(match v {
        None => "\\N",
        Some(true) => "t",
        Some(false) => "f",
    });
}

fn copy_num(buf: &mut String, v: Option<i64>) {
    match v {
        None => buf.push_str("\\N"),
        Some(n) => {
            let _ = write!(buf, "{n}");
        }
    }
}

const STAGE_CUSTOMERS: &str = r#"CREATE TEMP TABLE IF NOT EXISTS stage_customers (
    id TEXT COLLATE "C", name TEXT, phone TEXT, email TEXT, wechat_openid TEXT,
    birth_month INT, birth_day INT, birth_year INT, store_code TEXT COLLATE "C", tags TEXT,
    sms_opt_in BOOLEAN, email_opt_in BOOLEAN, wechat_opt_in BOOLEAN, joined_at TIMESTAMPTZ
) ON COMMIT DELETE ROWS"#;

const STAGE_ORDERS: &str = r#"CREATE TEMP TABLE IF NOT EXISTS stage_orders (
    idx INT, id TEXT COLLATE "C", customer_id TEXT COLLATE "C", store_code TEXT COLLATE "C",
    amount_fen BIGINT, ordered_at TIMESTAMPTZ, local_date DATE, local_minute SMALLINT,
    coupon_code TEXT
) ON COMMIT DELETE ROWS"#;

fn customer_from_row(row: &PgRow) -> Result<Customer, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        table: "customers",
        reason,
    };
    let birthday = match (
        row.try_get::<Option<i32>, _>("birth_month")?,
        row.try_get::<Option<i32>, _>("birth_day")?,
    ) {
        (Some(m), Some(d)) => Some(
            Birthday::new(
                u8::try_from(m).map_err(|e| corrupt(e.to_string()))?,
                u8::try_from(d).map_err(|e| corrupt(e.to_string()))?,
                row.try_get::<Option<i32>, _>("birth_year")?,
            )
            .map_err(|e| corrupt(e.to_string()))?,
        ),
        _ => None,
    };
    Ok(Customer {
        id: CustomerId::from_trusted(row.try_get("id")?),
        name: row.try_get("name")?,
        phone: row
            .try_get::<Option<String>, _>("phone")?
            .map(Phone::from_trusted),
        email: row
            .try_get::<Option<String>, _>("email")?
            .map(Email::from_trusted),
        wechat_openid: row
            .try_get::<Option<String>, _>("wechat_openid")?
            .map(WeChatOpenId::from_trusted),
        birthday,
        store: row
            .try_get::<Option<String>, _>("store_code")?
            .map(StoreCode::from_trusted),
        tags: Tags::from_db(row.try_get::<&str, _>("tags")?),
        sms_opt_in: Consent::from_db(row.try_get("sms_opt_in")?),
        email_opt_in: Consent::from_db(row.try_get("email_opt_in")?),
        wechat_opt_in: Consent::from_db(row.try_get("wechat_opt_in")?),
        joined_at: row.try_get("joined_at")?,
    })
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    /// Index maintenance on the server is the bottleneck of an import, and one
    /// connection uses one server core: write on as many connections as cores.
    fn write_lanes(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        cores
            .clamp(1, 4)
            .min(self.pool.options().get_max_connections().max(1) as usize)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn upsert_stores(
        &self,
        stores: &[StoreInfo],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for s in stores {
            sqlx::query(
                r#"INSERT INTO stores (code, name, sms_signature, timezone, updated_at)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name,
                       sms_signature = EXCLUDED.sms_signature, timezone = EXCLUDED.timezone,
                       updated_at = EXCLUDED.updated_at
                   WHERE (stores.name, stores.sms_signature, stores.timezone)
                         IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.sms_signature, EXCLUDED.timezone)"#,
            )
            .bind(s.code.as_str())
            .bind(&s.name)
            .bind(&s.sms_signature)
            .bind(s.timezone.name())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn stores(&self) -> Result<Vec<StoreInfo>, StoreError> {
        let rows =
            sqlx::query("SELECT code, name, sms_signature, timezone FROM stores ORDER BY code")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let tz: String = r.try_get("timezone")?;
                Ok(StoreInfo {
                    code: StoreCode::from_trusted(r.try_get("code")?),
                    name: r.try_get("name")?,
                    sms_signature: r.try_get("sms_signature")?,
                    timezone: stored_tz(&tz)?,
                })
            })
            .collect()
    }

    async fn upsert_customers(
        &self,
        batch: &[Customer],
        now: DateTime<Utc>,
    ) -> Result<UpsertCounts, StoreError> {
        if batch.is_empty() {
            return Ok(UpsertCounts::default());
        }
        let mut buf = String::with_capacity(batch.len() * 160);
        for c in batch {
            copy_field(&mut buf, Some(c.id.as_str()));
            buf.push('\t');
            copy_field(&mut buf, c.name.as_deref());
            buf.push('\t');
            copy_field(&mut buf, c.phone.as_ref().map(|p| p.as_str()));
            buf.push('\t');
            copy_field(&mut buf, c.email.as_ref().map(|e| e.as_str()));
            buf.push('\t');
            copy_field(&mut buf, c.wechat_openid.as_ref().map(|w| w.as_str()));
            buf.push('\t');
            copy_num(&mut buf, c.birthday.map(|b| i64::from(b.month())));
            buf.push('\t');
            copy_num(&mut buf, c.birthday.map(|b| i64::from(b.day())));
            buf.push('\t');
            copy_num(&mut buf, c.birthday.and_then(|b| b.year()).map(i64::from));
            buf.push('\t');
            copy_field(&mut buf, c.store.as_ref().map(|s| s.as_str()));
            buf.push('\t');
            copy_field(&mut buf, Some(&c.tags.to_db()));
            buf.push('\t');
            copy_bool(&mut buf, c.sms_opt_in.to_db());
            buf.push('\t');
            copy_bool(&mut buf, c.email_opt_in.to_db());
            buf.push('\t');
            copy_bool(&mut buf, c.wechat_opt_in.to_db());
            buf.push('\t');
            copy_ts(&mut buf, c.joined_at);
            buf.push('\n');
        }
        let mut conn = self.pool.acquire().await?;
        sqlx::query(STAGE_CUSTOMERS).execute(&mut *conn).await?;
        let mut tx = conn.begin().await?;
        let mut copy = tx.copy_in_raw("COPY stage_customers FROM STDIN").await?;
        copy.send(buf.into_bytes()).await?;
        copy.finish().await?;
        let row = sqlx::query(
            r#"WITH up AS (
                 INSERT INTO customers (id, name, phone, email, wechat_openid, birth_month,
                     birth_day, birth_year, store_code, tags, sms_opt_in, email_opt_in,
                     wechat_opt_in, joined_at, created_at, updated_at)
                 SELECT id, name, phone, email, wechat_openid, birth_month, birth_day,
                     birth_year, store_code, tags, sms_opt_in, email_opt_in, wechat_opt_in,
                     joined_at, $1, $1
                 FROM stage_customers
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, phone = EXCLUDED.phone,
                     email = EXCLUDED.email, wechat_openid = EXCLUDED.wechat_openid,
                     birth_month = EXCLUDED.birth_month, birth_day = EXCLUDED.birth_day,
                     birth_year = EXCLUDED.birth_year, store_code = EXCLUDED.store_code,
                     tags = EXCLUDED.tags, sms_opt_in = EXCLUDED.sms_opt_in,
                     email_opt_in = EXCLUDED.email_opt_in, wechat_opt_in = EXCLUDED.wechat_opt_in,
                     joined_at = EXCLUDED.joined_at, updated_at = EXCLUDED.updated_at
                 WHERE (customers.name, customers.phone, customers.email, customers.wechat_openid,
                        customers.birth_month, customers.birth_day, customers.birth_year,
                        customers.store_code, customers.tags, customers.sms_opt_in,
                        customers.email_opt_in, customers.wechat_opt_in, customers.joined_at)
                   IS DISTINCT FROM
                       (EXCLUDED.name, EXCLUDED.phone, EXCLUDED.email, EXCLUDED.wechat_openid,
                        EXCLUDED.birth_month, EXCLUDED.birth_day, EXCLUDED.birth_year,
                        EXCLUDED.store_code, EXCLUDED.tags, EXCLUDED.sms_opt_in,
                        EXCLUDED.email_opt_in, EXCLUDED.wechat_opt_in, EXCLUDED.joined_at)
                 RETURNING (xmax = 0) AS inserted)
               SELECT count(*) FILTER (WHERE inserted) AS inserted,
                      count(*) FILTER (WHERE NOT inserted) AS updated
               FROM up"#,
        )
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let inserted: i64 = row.try_get("inserted")?;
        let updated: i64 = row.try_get("updated")?;
        let existing = batch.len() as i64 - inserted;
        Ok(counts_from(
            batch.len(),
            existing,
            (inserted + updated) as u64,
        ))
    }

    async fn upsert_orders(
        &self,
        batch: &[Order],
        now: DateTime<Utc>,
    ) -> Result<OrderBatchOutcome, StoreError> {
        if batch.is_empty() {
            return Ok(OrderBatchOutcome::default());
        }
        let mut buf = String::with_capacity(batch.len() * 120);
        for (i, o) in batch.iter().enumerate() {
            let _ = write!(buf, "{i}\t");
            copy_field(&mut buf, Some(o.id.as_str()));
            buf.push('\t');
            copy_field(&mut buf, Some(o.customer_id.as_str()));
            buf.push('\t');
            copy_field(&mut buf, Some(o.store.as_str()));
            buf.push('\t');
            copy_num(&mut buf, Some(o.amount.fen()));
            buf.push('\t');
            copy_ts(&mut buf, Some(o.ordered_at));
            buf.push('\t');
            copy_date(&mut buf, o.local_time.date());
            buf.push('\t');
            copy_num(&mut buf, Some(i64::from(minute_of_day(o))));
            buf.push('\t');
            copy_field(&mut buf, o.coupon_code.as_deref());
            buf.push('\n');
        }
        let mut conn = self.pool.acquire().await?;
        sqlx::query(STAGE_ORDERS).execute(&mut *conn).await?;
        let mut tx = conn.begin().await?;
        let mut copy = tx.copy_in_raw("COPY stage_orders FROM STDIN").await?;
        copy.send(buf.into_bytes()).await?;
        copy.finish().await?;
        // The staging table has no statistics.
        probe_by_key(&mut tx).await?;
        // The batch's distinct customers are probed, not its rows: a file
        // lists a customer's orders together, so a batch of 20,000 orders
        // names about 2,000 customers (4 ms instead of 21). Nearly always
        // none is unknown and nothing is deleted.
        let missing: Vec<String> = sqlx::query_scalar(
            r#"SELECT d.customer_id FROM (SELECT DISTINCT customer_id FROM stage_orders) AS d
               WHERE NOT EXISTS (SELECT 1 FROM customers AS c WHERE c.id = d.customer_id)"#,
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut unknown: Vec<i32> = if missing.is_empty() {
            Vec::new()
        } else {
            sqlx::query_scalar(
                "DELETE FROM stage_orders WHERE customer_id = ANY($1::text[]) RETURNING idx",
            )
            .bind(&missing)
            .fetch_all(&mut *tx)
            .await?
        };
        unknown.sort_unstable();
        let row = sqlx::query(
            r#"WITH up AS (
                 INSERT INTO orders (id, customer_id, store_code, amount_fen, ordered_at,
                     local_date, local_minute, coupon_code, created_at, updated_at)
                 SELECT s.id, s.customer_id, s.store_code, s.amount_fen, s.ordered_at,
                     s.local_date, s.local_minute, s.coupon_code, $1, $1
                 FROM stage_orders AS s
                 ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id,
                     store_code = EXCLUDED.store_code, amount_fen = EXCLUDED.amount_fen,
                     ordered_at = EXCLUDED.ordered_at, local_date = EXCLUDED.local_date,
                     local_minute = EXCLUDED.local_minute, coupon_code = EXCLUDED.coupon_code,
                     updated_at = EXCLUDED.updated_at
                 WHERE (orders.customer_id, orders.store_code, orders.amount_fen,
                        orders.ordered_at, orders.local_date, orders.local_minute,
                        orders.coupon_code)
                   IS DISTINCT FROM
                       (EXCLUDED.customer_id, EXCLUDED.store_code, EXCLUDED.amount_fen,
                        EXCLUDED.ordered_at, EXCLUDED.local_date, EXCLUDED.local_minute,
                        EXCLUDED.coupon_code)
                 RETURNING id, coupon_code, (xmax = 0) AS inserted),
               -- Every part of the statement sees the orders as they were, so
               -- this finds re-imported orders whose code changed and
               -- releases the coupon each had redeemed.
               changed AS (
                 SELECT o.id, o.coupon_code AS old_code
                 FROM up JOIN orders AS o ON o.id = up.id
                 WHERE NOT up.inserted AND o.coupon_code IS NOT NULL
                   AND o.coupon_code IS DISTINCT FROM up.coupon_code),
               released AS (
                 UPDATE coupons AS c SET redeemed_order_id = NULL, redeemed_at = NULL
                 FROM changed
                 WHERE c.code = changed.old_code AND c.redeemed_order_id = changed.id
                 RETURNING c.code)
               SELECT count(*) FILTER (WHERE inserted) AS inserted,
                      count(*) FILTER (WHERE NOT inserted) AS updated
               FROM up"#,
        )
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let valid_idx: Vec<usize> = (0..batch.len())
            .filter(|i| {
                i32::try_from(*i)
                    .map(|i| unknown.binary_search(&i).is_err())
                    .unwrap_or(true)
            })
            .collect();
        let coupons = coupons::redeem(&mut tx, batch, &valid_idx).await?;
        tx.commit().await?;
        let inserted: i64 = row.try_get("inserted")?;
        let updated: i64 = row.try_get("updated")?;
        let valid = batch.len() - unknown.len();
        let existing = valid as i64 - inserted;
        Ok(OrderBatchOutcome {
            counts: counts_from(valid, existing, (inserted + updated) as u64),
            unknown_customers: unknown
                .into_iter()
                .filter_map(|i| usize::try_from(i).ok())
                .collect(),
            coupons,
        })
    }

    async fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        let row = sqlx::query("SELECT * FROM customers WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(customer_from_row).transpose()
    }

    async fn orders_of(&self, id: &CustomerId) -> Result<Vec<Order>, StoreError> {
        let rows = sqlx::query(
            r#"SELECT o.id, o.customer_id, o.store_code, o.amount_fen, o.ordered_at,
                      o.coupon_code, s.timezone
               FROM orders AS o JOIN stores AS s ON s.code = o.store_code
               WHERE o.customer_id = $1 ORDER BY o.ordered_at, o.id"#,
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let tz: String = r.try_get("timezone")?;
                let tz = stored_tz(&tz)?;
                let ordered_at: DateTime<Utc> = r.try_get("ordered_at")?;
                Ok(Order {
                    id: OrderId::from_trusted(r.try_get("id")?),
                    customer_id: CustomerId::from_trusted(r.try_get("customer_id")?),
                    store: StoreCode::from_trusted(r.try_get("store_code")?),
                    amount: Money::from_fen(r.try_get("amount_fen")?),
                    ordered_at,
                    local_time: Order::local_time_in(ordered_at, tz),
                    coupon_code: r.try_get("coupon_code")?,
                })
            })
            .collect()
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        let row = sqlx::query(
            r#"SELECT (SELECT count(*) FROM stores) AS stores,
                      (SELECT count(*) FROM customers) AS customers,
                      (SELECT count(*) FROM orders) AS orders"#,
        )
        .fetch_one(&self.pool)
        .await?;
        let get = |c: &str| -> Result<u64, StoreError> {
            Ok(u64::try_from(row.try_get::<i64, _>(c)?).unwrap_or(0))
        };
        Ok(Counts {
            stores: get("stores")?,
            customers: get("customers")?,
            orders: get("orders")?,
        })
    }

    async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_opt_out(&self, o: &OptOut) -> Result<OptOutOutcome, StoreError> {
        self.opt_out(o).await
    }

    async fn message_detail(&self, id: i64) -> Result<Option<MessageDetail>, StoreError> {
        self.detail(id).await
    }

    async fn claim_messages(&self, claim: &Claim) -> Result<Vec<ClaimedMessage>, StoreError> {
        self.claim(claim).await
    }

    async fn settle_messages(&self, batch: &[Settlement]) -> Result<SettleCounts, StoreError> {
        self.settle(batch).await
    }

    async fn apply_receipts(
        &self,
        receipts: &[Receipt],
        now: DateTime<Utc>,
    ) -> Result<ReceiptCounts, StoreError> {
        self.receipts(receipts, now).await
    }

    async fn is_opted_out(&self, channel: Channel, address: &str) -> Result<bool, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM opt_outs WHERE channel = $1 AND address = $2")
                .bind(channel.as_str())
                .bind(address)
                .fetch_one(&self.pool)
                .await?;
        Ok(n > 0)
    }

    async fn recompute_segments(&self, plan: &SegmentPlan) -> Result<SegmentOutcome, StoreError> {
        self.run_segments(plan).await
    }

    async fn segment_sizes(&self) -> Result<Vec<SegmentSize>, StoreError> {
        self.sizes().await
    }

    async fn customer_profile(
        &self,
        id: &CustomerId,
        plan: &SegmentPlan,
    ) -> Result<Option<CustomerProfile>, StoreError> {
        self.profile(id, plan).await
    }

    async fn run_campaign(
        &self,
        query: &CandidateQuery,
        sink: &mut dyn CandidateSink,
        write: bool,
    ) -> Result<WriteTotals, StoreError> {
        self.plan_run(query, sink, write).await
    }

    async fn last_campaign_run(
        &self,
        campaign_id: &str,
        before: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.last_run(campaign_id, before).await
    }

    async fn record_campaign_run(
        &self,
        campaign_id: &str,
        scheduled_for: DateTime<Utc>,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        record: &RunRecord,
    ) -> Result<(), StoreError> {
        self.record_run(campaign_id, scheduled_for, started_at, finished_at, record)
            .await
    }

    async fn messages_for(
        &self,
        campaign_id: Option<&str>,
        customer_id: Option<&str>,
    ) -> Result<Vec<MessageRow>, StoreError> {
        self.read_messages(campaign_id, customer_id).await
    }

    async fn coupons_for(&self, campaign_id: &str) -> Result<Vec<CouponRow>, StoreError> {
        self.read_coupons(campaign_id).await
    }

    async fn campaign_stats(
        &self,
        campaign_id: Option<&str>,
    ) -> Result<Vec<CampaignStats>, StoreError> {
        self.read_stats(campaign_id).await
    }

    async fn send_log(&self, q: &SendLogQuery) -> Result<SendLogPage, StoreError> {
        self.read_send_log(q).await
    }

    async fn retry_message(
        &self,
        id: i64,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, StoreError> {
        self.retry(id, actor, now).await
    }

    async fn queue_depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError> {
        self.read_queue_depth(now).await
    }

    async fn claim_tick(&self, claim: &TickClaim<'_>) -> Result<Option<i64>, StoreError> {
        self.tick_claim(claim).await
    }

    async fn renew_tick(
        &self,
        job: &str,
        scheduled_for: DateTime<Utc>,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.tick_renew(job, scheduled_for, worker, lease_until)
            .await
    }

    async fn finish_tick(&self, finish: &TickFinish<'_>) -> Result<bool, StoreError> {
        self.tick_finish(finish).await
    }

    async fn skip_tick(
        &self,
        job: &str,
        scheduled_for: DateTime<Utc>,
        worker: &str,
        now: DateTime<Utc>,
        detail: &str,
    ) -> Result<bool, StoreError> {
        self.tick_skip(job, scheduled_for, worker, now, detail)
            .await
    }

    async fn last_tick(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.tick_last(job).await
    }

    async fn job_runs(&self, job: Option<&str>, limit: u32) -> Result<Vec<JobRun>, StoreError> {
        self.runs(job, limit).await
    }

    async fn latest_job_runs(&self) -> Result<Vec<JobRun>, StoreError> {
        self.latest_runs().await
    }

    async fn housekeeping(
        &self,
        now: DateTime<Utc>,
        retention: &Retention,
    ) -> Result<HousekeepingReport, StoreError> {
        self.housekeep(now, retention).await
    }
}

//! [`Store`] on SQLite: WAL journal, one writer at a time (`BEGIN IMMEDIATE`),
//! prepared multi-row upserts inside one transaction per batch.

mod campaigns;
mod candidates;
mod checkpoints;
mod coupons;
mod figures;
mod functions;
mod histogram;
mod local_day;
mod outbox;
mod segments;
mod send_log;
mod ticks;

use crate::store::ticks::{HousekeepingReport, JobRun, Retention, RunLease, TickClaim, TickFinish};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, ConnectOptions, Row};

use super::{
    Backend, Channel, Counts, LoadedTable, OptOut, OrderBatchOutcome, QueueDepth, RetryOutcome,
    SendLogPage, SendLogQuery, Store, StoreError, UpsertCounts, counts_from, minute_of_day,
    stored_tz,
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
    Birthday, Consent, Customer, CustomerId, Email, Order, OrderId, Phone, StoreCode, StoreInfo,
    Tags, WeChatOpenId,
};
use crate::segments::{CustomerProfile, SegmentOutcome, SegmentPlan, SegmentSize};

/// Rows per multi-row `INSERT` statement. Fixed so the statement is prepared once per connection.
const ROWS_PER_STATEMENT: usize = 256;

/// SQLite-backed store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (creating the file and its folder if missing) and migrate.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::Connect)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-65536")
            .log_statements(log::LevelFilter::Debug)
            .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(30));
        let path = options.get_filename();
        if let Some(dir) = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Connect(sqlx::Error::Io(e)))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    let mut handle = conn.lock_handle().await?;
                    let db = handle.as_raw_handle().as_ptr();
                    // SAFETY: the locked handle is open, and sqlx's worker
                    // thread makes no call on it while it is locked.
                    unsafe {
                        figures::register(db)
                            .and_then(|()| histogram::register(db))
                            .and_then(|()| candidates::register(db))
                            .and_then(|()| local_day::register(db))
                    }
                    .map_err(|rc| {
                        sqlx::Error::Configuration(
                            format!("registering the segment functions failed (SQLite code {rc})")
                                .into(),
                        )
                    })
                })
            })
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(StoreError::migrate)?;
        Ok(Self { pool })
    }

    /// The connection pool (for tests and tools).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A migrated store in a file of a new temporary directory, with at
    /// most `max_connections`; the directory goes when it is dropped.
    #[cfg(test)]
    pub(crate) async fn temporary(max_connections: u32) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("outreach.db").display());
        let store = SqliteStore::open(&url, max_connections)
            .await
            .expect("temporary store");
        (dir, store)
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(table: &'static str, v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(v).ok_or_else(|| StoreError::Corrupt {
        table,
        reason: format!("timestamp {v} out of range"),
    })
}

fn days_since_epoch(d: NaiveDate) -> i64 {
    d.signed_duration_since(NaiveDate::default()).num_days()
}

/// Builds `INSERT … VALUES (…),(…) ON CONFLICT …` for `rows` rows of `cols`
/// columns each, the last two of every row being the shared timestamp.
///
/// Parameters are anonymous `?`: sqlx looks up each parameter's name when
/// binding, which is linear per parameter for numbered `?NNN` parameters and
/// so quadratic for a statement with thousands of them.
fn multi_row_sql(head: &str, cols: usize, rows: usize, tail: &str) -> String {
    let mut row = String::with_capacity(cols * 2 + 8);
    row.push('(');
    for c in 0..cols + 2 {
        row.push_str(if c == 0 { "?" } else { ",?" });
    }
    row.push(')');
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * (row.len() + 1));
    sql.push_str(head);
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push_str(&row);
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

const CUSTOMER_COLS: usize = 14;
const CUSTOMER_HEAD: &str = "INSERT INTO customers (id, name, phone, email, wechat_openid, \
    birth_month, birth_day, birth_year, store_code, tags, sms_opt_in, email_opt_in, \
    wechat_opt_in, joined_at, created_at, updated_at) VALUES ";
const CUSTOMER_TAIL: &str = "ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
    phone = excluded.phone, email = excluded.email, wechat_openid = excluded.wechat_openid, \
    birth_month = excluded.birth_month, birth_day = excluded.birth_day, \
    birth_year = excluded.birth_year, store_code = excluded.store_code, tags = excluded.tags, \
    sms_opt_in = excluded.sms_opt_in, email_opt_in = excluded.email_opt_in, \
    wechat_opt_in = excluded.wechat_opt_in, joined_at = excluded.joined_at, \
    updated_at = excluded.updated_at \
    WHERE customers.name IS NOT excluded.name OR customers.phone IS NOT excluded.phone \
    OR customers.email IS NOT excluded.email OR customers.wechat_openid IS NOT excluded.wechat_openid \
    OR customers.birth_month IS NOT excluded.birth_month OR customers.birth_day IS NOT excluded.birth_day \
    OR customers.birth_year IS NOT excluded.birth_year OR customers.store_code IS NOT excluded.store_code \
    OR customers.tags IS NOT excluded.tags OR customers.sms_opt_in IS NOT excluded.sms_opt_in \
    OR customers.email_opt_in IS NOT excluded.email_opt_in \
    OR customers.wechat_opt_in IS NOT excluded.wechat_opt_in \
    OR customers.joined_at IS NOT excluded.joined_at";

const ORDER_COLS: usize = 8;
const ORDER_HEAD: &str = "INSERT INTO orders (id, customer_id, store_code, amount_fen, \
    ordered_at, local_date, local_minute, coupon_code, created_at, updated_at) VALUES ";
const ORDER_TAIL: &str = "ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, \
    store_code = excluded.store_code, amount_fen = excluded.amount_fen, \
    ordered_at = excluded.ordered_at, local_date = excluded.local_date, \
    local_minute = excluded.local_minute, coupon_code = excluded.coupon_code, \
    updated_at = excluded.updated_at \
    WHERE orders.customer_id IS NOT excluded.customer_id OR orders.store_code IS NOT excluded.store_code \
    OR orders.amount_fen IS NOT excluded.amount_fen OR orders.ordered_at IS NOT excluded.ordered_at \
    OR orders.local_date IS NOT excluded.local_date OR orders.local_minute IS NOT excluded.local_minute \
    OR orders.coupon_code IS NOT excluded.coupon_code";

fn full_customer_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        multi_row_sql(
            CUSTOMER_HEAD,
            CUSTOMER_COLS,
            ROWS_PER_STATEMENT,
            CUSTOMER_TAIL,
        )
    })
}

fn full_order_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| multi_row_sql(ORDER_HEAD, ORDER_COLS, ROWS_PER_STATEMENT, ORDER_TAIL))
}

/// Mark customers for the next incremental segments run (see the segments
/// migration: inserts are marked here, updates and deletes by triggers).
async fn mark_dirty<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    ids: impl Iterator<Item = &'a str>,
) -> Result<(), StoreError> {
    let distinct: std::collections::BTreeSet<&str> = ids.collect();
    sqlx::query(
        "INSERT INTO segment_dirty (customer_id) SELECT value FROM json_each(?1) WHERE true \
         ON CONFLICT DO NOTHING",
    )
    .bind(json_array(distinct.into_iter()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn json_array<'a>(items: impl Iterator<Item = &'a str>) -> String {
    serde_json::to_string(&items.collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

fn customer_from_row(row: &SqliteRow) -> Result<Customer, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        table: "customers",
        reason,
    };
    let birthday = match (
        row.try_get::<Option<i64>, _>("birth_month")?,
        row.try_get::<Option<i64>, _>("birth_day")?,
    ) {
        (Some(m), Some(d)) => Some(
            Birthday::new(
                u8::try_from(m).map_err(|e| corrupt(e.to_string()))?,
                u8::try_from(d).map_err(|e| corrupt(e.to_string()))?,
                row.try_get::<Option<i64>, _>("birth_year")?
                    .map(|y| i32::try_from(y).map_err(|e| corrupt(e.to_string())))
                    .transpose()?,
            )
            .map_err(|e| corrupt(e.to_string()))?,
        ),
        _ => None,
    };
    let consent = |col: &str| -> Result<Consent, StoreError> {
        Ok(Consent::from_db(
            row.try_get::<Option<i64>, _>(col)?.map(|v| v != 0),
        ))
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
        sms_opt_in: consent("sms_opt_in")?,
        email_opt_in: consent("email_opt_in")?,
        wechat_opt_in: consent("wechat_opt_in")?,
        joined_at: row
            .try_get::<Option<i64>, _>("joined_at")?
            .map(|v| from_ms("customers", v))
            .transpose()?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    /// SQLite has one writer at a time.
    fn write_lanes(&self) -> usize {
        1
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for s in stores {
            sqlx::query(
                r#"INSERT INTO stores (code, name, sms_signature, timezone, updated_at)
                   VALUES (?1, ?2, ?3, ?4, ?5)
                   ON CONFLICT (code) DO UPDATE SET name = excluded.name,
                       sms_signature = excluded.sms_signature, timezone = excluded.timezone,
                       updated_at = excluded.updated_at
                   WHERE stores.name IS NOT excluded.name
                      OR stores.sms_signature IS NOT excluded.sms_signature
                      OR stores.timezone IS NOT excluded.timezone"#,
            )
            .bind(s.code.as_str())
            .bind(&s.name)
            .bind(&s.sms_signature)
            .bind(s.timezone.name())
            .bind(ms(now))
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM customers WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_array(batch.iter().map(|c| c.id.as_str())))
        .fetch_one(&mut *tx)
        .await?;
        let mut affected = 0u64;
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            let sql = if chunk.len() == ROWS_PER_STATEMENT {
                AssertSqlSafe(full_customer_sql().to_owned())
            } else {
                AssertSqlSafe(multi_row_sql(
                    CUSTOMER_HEAD,
                    CUSTOMER_COLS,
                    chunk.len(),
                    CUSTOMER_TAIL,
                ))
            };
            let mut q = sqlx::query(sql);
            for c in chunk {
                q = q
                    .bind(c.id.as_str())
                    .bind(c.name.as_deref())
                    .bind(c.phone.as_ref().map(|p| p.as_str()))
                    .bind(c.email.as_ref().map(|e| e.as_str()))
                    .bind(c.wechat_openid.as_ref().map(|w| w.as_str()))
                    .bind(c.birthday.map(|b| i64::from(b.month())))
                    .bind(c.birthday.map(|b| i64::from(b.day())))
                    .bind(c.birthday.and_then(|b| b.year()))
                    .bind(c.store.as_ref().map(|s| s.as_str()))
                    .bind(c.tags.to_db())
                    .bind(c.sms_opt_in.to_db())
                    .bind(c.email_opt_in.to_db())
                    .bind(c.wechat_opt_in.to_db())
                    .bind(c.joined_at.map(ms))
                    .bind(ms(now))
                    .bind(ms(now));
            }
            affected += q.execute(&mut *tx).await?.rows_affected();
        }
        mark_dirty(&mut tx, batch.iter().map(|c| c.id.as_str())).await?;
        tx.commit().await?;
        Ok(counts_from(batch.len(), existing, affected))
    }

    /// SQLite has no visibility map, and its plans are written for it
    /// without statistics (`ANALYZE` would change them): nothing to do.
    async fn after_bulk_load(&self, _: LoadedTable, _: u64) -> Result<(), StoreError> {
        Ok(())
    }

    async fn upsert_orders(
        &self,
        batch: &[Order],
        now: DateTime<Utc>,
    ) -> Result<OrderBatchOutcome, StoreError> {
        if batch.is_empty() {
            return Ok(OrderBatchOutcome::default());
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // json_each's key is the array index: the position of the order in the batch.
        let unknown: Vec<i64> = sqlx::query_scalar(
            r#"SELECT j.key FROM json_each(?1) AS j
               WHERE NOT EXISTS (SELECT 1 FROM customers AS c WHERE c.id = j.value)"#,
        )
        .bind(json_array(batch.iter().map(|o| o.customer_id.as_str())))
        .fetch_all(&mut *tx)
        .await?;
        let unknown_customers: Vec<usize> = unknown
            .into_iter()
            .filter_map(|i| usize::try_from(i).ok())
            .collect();
        let valid: Vec<&Order> = if unknown_customers.is_empty() {
            batch.iter().collect()
        } else {
            let mut skip = unknown_customers.iter().copied().peekable();
            batch
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    if skip.peek() == Some(i) {
                        skip.next();
                        false
                    } else {
                        true
                    }
                })
                .map(|(_, o)| o)
                .collect()
        };
        // How many exist already, and the codes they carried (a changed code
        // releases the coupon the order had redeemed).
        let row = sqlx::query(
            r#"SELECT count(*) AS existing,
                      json_group_array(json_array(id, coupon_code))
                          FILTER (WHERE coupon_code IS NOT NULL) AS codes
               FROM orders WHERE id IN (SELECT value FROM json_each(?1))"#,
        )
        .bind(json_array(valid.iter().map(|o| o.id.as_str())))
        .fetch_one(&mut *tx)
        .await?;
        let existing: i64 = row.try_get("existing")?;
        let previous: HashMap<String, String> =
            serde_json::from_str::<Vec<(String, String)>>(row.try_get("codes")?)
                .map_err(|e| StoreError::Corrupt {
                    table: "orders",
                    reason: format!("coupon codes: {e}"),
                })?
                .into_iter()
                .collect();
        let mut affected = 0u64;
        for chunk in valid.chunks(ROWS_PER_STATEMENT) {
            let sql = if chunk.len() == ROWS_PER_STATEMENT {
                AssertSqlSafe(full_order_sql().to_owned())
            } else {
                AssertSqlSafe(multi_row_sql(
                    ORDER_HEAD,
                    ORDER_COLS,
                    chunk.len(),
                    ORDER_TAIL,
                ))
            };
            let mut q = sqlx::query(sql);
            for o in chunk {
                q = q
                    .bind(o.id.as_str())
                    .bind(o.customer_id.as_str())
                    .bind(o.store.as_str())
                    .bind(o.amount.fen())
                    .bind(ms(o.ordered_at))
                    .bind(days_since_epoch(o.local_time.date()))
                    .bind(i64::from(minute_of_day(o)))
                    .bind(o.coupon_code.as_deref())
                    .bind(ms(now))
                    .bind(ms(now));
            }
            affected += q.execute(&mut *tx).await?.rows_affected();
        }
        let valid_idx: Vec<usize> = (0..batch.len())
            .filter(|i| unknown_customers.binary_search(i).is_err())
            .collect();
        let coupons = coupons::redeem(&mut tx, batch, &valid_idx, &previous).await?;
        mark_dirty(&mut tx, valid.iter().map(|o| o.customer_id.as_str())).await?;
        tx.commit().await?;
        Ok(OrderBatchOutcome {
            counts: counts_from(valid.len(), existing, affected),
            unknown_customers,
            coupons,
        })
    }

    async fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        let row = sqlx::query("SELECT * FROM customers WHERE id = ?1")
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
               WHERE o.customer_id = ?1 ORDER BY o.ordered_at, o.id"#,
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let tz: String = r.try_get("timezone")?;
                let tz = stored_tz(&tz)?;
                let ordered_at = from_ms("orders", r.try_get("ordered_at")?)?;
                Ok(Order {
                    id: OrderId::from_trusted(r.try_get("id")?),
                    customer_id: CustomerId::from_trusted(r.try_get("customer_id")?),
                    store: StoreCode::from_trusted(r.try_get("store_code")?),
                    amount: crate::domain::Money::from_fen(r.try_get("amount_fen")?),
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
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
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
            sqlx::query_scalar("SELECT count(*) FROM opt_outs WHERE channel = ?1 AND address = ?2")
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

    async fn take_run_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<RunLease>, StoreError> {
        self.run_lease_take(name, holder, now, until).await
    }

    async fn renew_run_lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.run_lease_renew(name, holder, until).await
    }

    async fn release_run_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.run_lease_release(name, holder).await
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

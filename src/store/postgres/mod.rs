//! [`Store`] on PostgreSQL. Imports stream each batch with a binary `COPY`,
//! straight into the table when its rows are new, else into a temporary
//! staging table to upsert from (see `import`): a batch is one round trip of
//! data and one transaction.

mod campaigns;
mod copy_binary;
mod coupons;
mod import;
mod outbox;
mod segments;
mod send_log;
mod ticks;

use crate::store::ticks::{HousekeepingReport, JobRun, Retention, RunLease, TickClaim, TickFinish};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Row};

use super::{
    Backend, Channel, Counts, LoadedTable, OptOut, OrderBatchOutcome, QueueDepth, RetryOutcome,
    SendLogPage, SendLogQuery, Store, StoreError, UpsertCounts, stored_tz,
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
    /// Whether an import batch tries a plain `COPY` first (see `import`).
    copy_first: std::sync::Arc<import::CopyFirst>,
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
        Ok(Self {
            pool,
            copy_first: Default::default(),
        })
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
        self.import_customers(batch, now).await
    }

    async fn upsert_orders(
        &self,
        batch: &[Order],
        now: DateTime<Utc>,
    ) -> Result<OrderBatchOutcome, StoreError> {
        self.import_orders(batch, now).await
    }

    async fn after_bulk_load(&self, table: LoadedTable, inserted: u64) -> Result<(), StoreError> {
        self.vacuum_after_load(table, inserted).await
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

//! Persistence. One [`Store`] trait, implemented for SQLite ([`SqliteStore`])
//! and PostgreSQL ([`PgStore`]), each with its own migrations under
//! `migrations/<backend>/`, applied when the store is opened.

mod campaign_pages;
mod campaigns_sql;
mod postgres;
mod segments_sql;
pub mod send_log;
mod send_log_sql;
mod sqlite;
pub mod ticks;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::campaigns::outbox::{
    CandidateQuery, CandidateSink, CouponRow, MessageRow, RunRecord, WriteTotals,
};
use crate::campaigns::redemption::RedemptionOutcome;
use crate::campaigns::stats::CampaignStats;
use crate::dispatch::claim::{
    Claim, ClaimedMessage, MessageDetail, OptOutOutcome, ReceiptCounts, SettleCounts, Settlement,
};
use crate::dispatch::provider::Receipt;
use crate::domain::{Customer, CustomerId, Order, StoreInfo};
use crate::segments::{CustomerProfile, SegmentOutcome, SegmentPlan, SegmentSize};

pub use postgres::PgStore;
pub use send_log::{
    CouponBlock, CursorError, LogCursor, QueueDepth, RetryOutcome, SendLogPage, SendLogQuery,
    SendLogRow,
};
pub use sqlite::SqliteStore;

/// Errors of the store. Variants say what the caller can do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no backend we speak.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// The database could not be reached or opened.
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("cannot migrate the database schema: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The database was migrated by a newer outreach than this binary.
    #[error(
        "the database schema is newer than this binary (migration {0} was applied by a newer outreach): run that version or a later one"
    )]
    SchemaNewer(i64),
    /// A value read back from the database is not what we wrote.
    #[error("corrupt row in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<crate::segments::thresholds::ThresholdError> for StoreError {
    fn from(e: crate::segments::thresholds::ThresholdError) -> Self {
        StoreError::Corrupt {
            table: "segment_histogram",
            reason: e.to_string(),
        }
    }
}

impl StoreError {
    /// A migration error, with a schema newer than the binary told apart.
    pub(crate) fn migrate(e: sqlx::migrate::MigrateError) -> StoreError {
        match e {
            sqlx::migrate::MigrateError::VersionMissing(v) => StoreError::SchemaNewer(v),
            other => StoreError::Migrate(other),
        }
    }
}

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// A table that imports load in bulk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadedTable {
    Customers,
    Orders,
}

impl LoadedTable {
    /// The table's name in both schemas.
    pub fn name(self) -> &'static str {
        match self {
            LoadedTable::Customers => "customers",
            LoadedTable::Orders => "orders",
        }
    }
}

/// What an upsert of a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct UpsertCounts {
    /// Rows that did not exist before.
    pub inserted: u64,
    /// Rows that existed and changed.
    pub updated: u64,
    /// Rows that existed and were identical.
    pub unchanged: u64,
}

impl std::ops::AddAssign for UpsertCounts {
    fn add_assign(&mut self, o: Self) {
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
    }
}

/// What an upsert of a batch of orders did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OrderBatchOutcome {
    pub counts: UpsertCounts,
    /// Indexes (into the batch) of orders whose customer does not exist; not written.
    pub unknown_customers: Vec<usize>,
    /// What the orders' coupon codes redeemed or why they did not.
    pub coupons: RedemptionOutcome,
}

/// Row counts of the main tables.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub stores: u64,
    pub customers: u64,
    pub orders: u64,
}

/// A channel a customer can opt out of.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Email,
    Wechat,
}

impl Channel {
    /// Lower-case name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Wechat => "wechat",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sms" => Ok(Channel::Sms),
            "email" => Ok(Channel::Email),
            "wechat" => Ok(Channel::Wechat),
            other => Err(format!(
                "unknown channel {other:?} (expected sms, email or wechat)"
            )),
        }
    }
}

/// An opt-out: after it, nothing goes to `address` on `channel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOut {
    pub channel: Channel,
    /// Normalised address (E.164 phone, e-mail, OpenID).
    pub address: String,
    /// Where it came from (`cli`, `http`, `sms-reply`, `unsubscribe-link`, …).
    pub source: String,
    pub at: DateTime<Utc>,
}

/// True (in SQL, over an `opt_outs` row `o`) when the entry was written by
/// a provider's permanent failure or a failed receipt rather than by the
/// person: those sources are `provider:…` and `receipt:…`.
pub(crate) const UNDELIVERABLE_SQL: &str =
    "(o.source LIKE 'provider:%' OR o.source LIKE 'receipt:%')";

/// `FROM opt_outs o WHERE …`: the suppression entry of `table`'s row (its
/// channel and address).
pub(crate) fn opt_out_of(table: &str) -> String {
    format!("FROM opt_outs o WHERE o.channel = {table}.channel AND o.address = {table}.address")
}

/// The `reason = …, detail = …` assignments that suppress a row of `table`
/// whose address is listed: `undeliverable` with the provider's code when a
/// provider or a receipt listed it, else `opted_out` with `opted_out_detail`
/// (a bind parameter). Both backends build their statement from this once.
pub(crate) fn blocked_assignments(table: &str, opted_out_detail: &str) -> String {
    let listed = opt_out_of(table);
    format!(
        "reason = (SELECT CASE WHEN {UNDELIVERABLE_SQL} THEN 'undeliverable' ELSE 'opted_out' END {listed}),
         detail = (SELECT CASE WHEN {UNDELIVERABLE_SQL}
                   THEN 'a provider reported the address undeliverable (' || o.source || '); it is on the suppression list and the coupon is withdrawn'
                   ELSE {opted_out_detail} END {listed})"
    )
}

/// The persistence interface. Every method is one unit of work: it either
/// commits completely or not at all.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// How many batches may be written at once (separate connections). A
    /// batch's rows never share an id with another lane's, so order per id holds.
    fn write_lanes(&self) -> usize;

    /// Cheap round trip, for health checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Insert or update stores by code.
    async fn upsert_stores(
        &self,
        stores: &[StoreInfo],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// All stores, by code.
    async fn stores(&self) -> Result<Vec<StoreInfo>, StoreError>;

    /// Insert or update customers by id, in one transaction. Ids in `batch`
    /// must be distinct and every `store` must exist.
    async fn upsert_customers(
        &self,
        batch: &[Customer],
        now: DateTime<Utc>,
    ) -> Result<UpsertCounts, StoreError>;

    /// Insert or update orders by id, in one transaction. Ids in `batch` must
    /// be distinct and every `store` must exist. Orders of unknown customers
    /// are left out and reported.
    async fn upsert_orders(
        &self,
        batch: &[Order],
        now: DateTime<Utc>,
    ) -> Result<OrderBatchOutcome, StoreError>;

    /// After a bulk load that inserted `inserted` rows into `table` (a file
    /// import, the demo shop), do the upkeep a server's autovacuum would do
    /// after so many new rows, when it is due: statistics for the planner,
    /// and pages marked all-visible so that indexes are read without the
    /// table.
    async fn after_bulk_load(&self, table: LoadedTable, inserted: u64) -> Result<(), StoreError>;

    /// One customer.
    async fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError>;

    /// A customer's orders, oldest first.
    async fn orders_of(&self, id: &CustomerId) -> Result<Vec<Order>, StoreError>;

    /// Row counts.
    async fn counts(&self) -> Result<Counts, StoreError>;

    /// Read a metadata value.
    async fn meta(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Set a metadata value (insert or replace).
    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Record an opt-out. Returns `false` when it was already recorded.
    async fn record_opt_out(&self, opt_out: &OptOut) -> Result<OptOutOutcome, StoreError>;

    /// Whether `address` has opted out of `channel`.
    async fn is_opted_out(&self, channel: Channel, address: &str) -> Result<bool, StoreError>;

    /// Run the segments job as planned: recompute attributes, score
    /// thresholds, stages, tiers and custom segment membership, recording
    /// every change.
    async fn recompute_segments(&self, plan: &SegmentPlan) -> Result<SegmentOutcome, StoreError>;

    /// The size of every segment as last computed: lifecycle stages, value
    /// tiers, then custom segments.
    async fn segment_sizes(&self) -> Result<Vec<SegmentSize>, StoreError>;

    /// One customer's attributes (with date-dependent ones as of the plan's
    /// day), custom segments and recent transitions; `None` when the customer
    /// is unknown or the segments job has not seen them yet.
    async fn customer_profile(
        &self,
        id: &CustomerId,
        plan: &SegmentPlan,
    ) -> Result<Option<CustomerProfile>, StoreError>;

    /// Find a campaign run's candidates (due, in the audience, not yet
    /// messaged for the occurrence) and hand them to `sink` a page at a time.
    /// With `write`, store what it plans: messages whose dedupe key is new,
    /// each with its coupon, one short transaction per page.
    async fn run_campaign(
        &self,
        query: &CandidateQuery,
        sink: &mut dyn CandidateSink,
        write: bool,
    ) -> Result<WriteTotals, StoreError>;

    /// When the campaign last ran successfully before `before`.
    async fn last_campaign_run(
        &self,
        campaign_id: &str,
        before: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Record a campaign run (re-running a tick adds to its counts).
    async fn record_campaign_run(
        &self,
        campaign_id: &str,
        scheduled_for: DateTime<Utc>,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        record: &RunRecord,
    ) -> Result<(), StoreError>;

    /// Send-log rows, oldest first, of a campaign and/or a customer.
    async fn messages_for(
        &self,
        campaign_id: Option<&str>,
        customer_id: Option<&str>,
    ) -> Result<Vec<MessageRow>, StoreError>;

    /// Claim up to `claim.limit` messages that are due (or whose lease ran
    /// out) for sending under `claim.token`. Messages whose address has
    /// opted out are suppressed instead, with their coupons withdrawn.
    async fn claim_messages(&self, claim: &Claim) -> Result<Vec<ClaimedMessage>, StoreError>;

    /// Settle claimed messages after their provider calls, in one
    /// transaction; a message no longer held by the settlement's token is
    /// left alone.
    async fn settle_messages(&self, batch: &[Settlement]) -> Result<SettleCounts, StoreError>;

    /// Apply delivery receipts: `sent` messages become `delivered` or `failed`.
    async fn apply_receipts(
        &self,
        receipts: &[Receipt],
        now: DateTime<Utc>,
    ) -> Result<ReceiptCounts, StoreError>;

    /// One message with its provider calls, oldest first.
    async fn message_detail(&self, id: i64) -> Result<Option<MessageDetail>, StoreError>;

    /// The coupons a campaign issued, by code.
    async fn coupons_for(&self, campaign_id: &str) -> Result<Vec<CouponRow>, StoreError>;

    /// Each campaign's figures (one campaign, or every campaign that has
    /// messages), by id.
    async fn campaign_stats(
        &self,
        campaign_id: Option<&str>,
    ) -> Result<Vec<CampaignStats>, StoreError>;

    /// A page of the send log, newest first (by `created_at`, then id),
    /// filtered by `q`; `next` reads the following page.
    async fn send_log(&self, q: &SendLogQuery) -> Result<SendLogPage, StoreError>;

    /// Put a `failed` or `dead` message back in the queue, due at `now`, with
    /// a fresh budget of attempts, and audit it (who, when, what it was) in
    /// the same transaction. Any other status, an unknown id, or a coupon that
    /// can no longer be used is an outcome, not an error.
    async fn retry_message(
        &self,
        id: i64,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, StoreError>;

    /// How many messages are queued, deferred, due at `now`, and sending.
    async fn queue_depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError>;

    /// Claim a job tick: insert its row, or take it over when the process
    /// that held it let its lease run out. Returns the attempt number when
    /// this caller is to run the tick, `None` when another has it or it is done.
    async fn claim_tick(&self, claim: &ticks::TickClaim<'_>) -> Result<Option<i64>, StoreError>;

    /// Extend the lease of a tick this worker runs; `false` when it no
    /// longer holds it.
    async fn renew_tick(
        &self,
        job: &str,
        scheduled_for: DateTime<Utc>,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Record the end of a tick this worker runs; `false` when it no longer
    /// holds it (another process took it over).
    async fn finish_tick(&self, finish: &ticks::TickFinish<'_>) -> Result<bool, StoreError>;

    /// Record a tick that will not run (missed beyond its catch-up); `false`
    /// when the tick already has a row.
    async fn skip_tick(
        &self,
        job: &str,
        scheduled_for: DateTime<Utc>,
        worker: &str,
        now: DateTime<Utc>,
        detail: &str,
    ) -> Result<bool, StoreError>;

    /// Take the run lease `name` for `holder` until `until`, unless another
    /// holder's lease lasts past `now`: then that lease is returned and
    /// nothing changes.
    async fn take_run_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<ticks::RunLease>, StoreError>;

    /// Extend a run lease `holder` holds; `false` when it no longer holds it.
    async fn renew_run_lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Give up a run lease `holder` holds (nothing if it does not).
    async fn release_run_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// The latest tick recorded for `job` (run, running or skipped).
    async fn last_tick(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Job runs, newest first (of one job, or of all).
    async fn job_runs(
        &self,
        job: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ticks::JobRun>, StoreError>;

    /// The latest tick of every job, by job.
    async fn latest_job_runs(&self) -> Result<Vec<ticks::JobRun>, StoreError>;

    /// Housekeeping: clear old attempt details and job runs, close abandoned
    /// ticks, in short transactions.
    async fn housekeeping(
        &self,
        now: DateTime<Utc>,
        retention: &ticks::Retention,
    ) -> Result<ticks::HousekeepingReport, StoreError>;
}

/// A shared, dynamically dispatched store.
pub type SharedStore = Arc<dyn Store>;

/// Open the store named by `url`, creating and migrating it as needed.
pub async fn open(url: &SecretString, max_connections: u32) -> Result<SharedStore, StoreError> {
    let raw = url.expose_secret();
    if raw.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(raw, max_connections).await?))
    } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::open(raw, max_connections).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(raw)))
    }
}

/// A URL with any password replaced by `***`, safe to print.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A store's time zone as read back from the `stores` table.
pub(crate) fn stored_tz(name: &str) -> Result<chrono_tz::Tz, StoreError> {
    name.parse().map_err(|_| StoreError::Corrupt {
        table: "stores",
        reason: format!("unknown time zone {name:?}"),
    })
}

/// Minute of the store-local day.
pub(crate) fn minute_of_day(o: &Order) -> u16 {
    use chrono::Timelike;
    let t = o.local_time.time();
    u16::try_from(t.hour() * 60 + t.minute()).unwrap_or(0)
}

/// Inserted / updated / unchanged from the batch size, how many ids already
/// existed and how many rows the upsert touched (inserts plus real updates).
pub(crate) fn counts_from(batch: usize, existing: i64, affected: u64) -> UpsertCounts {
    let batch = batch as u64;
    let existing = u64::try_from(existing).unwrap_or(0).min(batch);
    let inserted = batch - existing;
    let updated = affected.saturating_sub(inserted).min(existing);
    UpsertCounts {
        inserted,
        updated,
        unchanged: existing - updated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("sqlite://data/o.db"), "sqlite://data/o.db");
    }

    #[test]
    fn upsert_counts_add_up() {
        // 10 rows, 4 existed, the upsert touched 6 new + 1 changed.
        assert_eq!(
            counts_from(10, 4, 7),
            UpsertCounts {
                inserted: 6,
                updated: 1,
                unchanged: 3
            }
        );
        assert_eq!(
            counts_from(3, 0, 3),
            UpsertCounts {
                inserted: 3,
                updated: 0,
                unchanged: 0
            }
        );
        assert_eq!(
            counts_from(3, 3, 0),
            UpsertCounts {
                inserted: 0,
                updated: 0,
                unchanged: 3
            }
        );
    }

    #[test]
    fn channels_parse() {
        assert_eq!("SMS".parse::<Channel>(), Ok(Channel::Sms));
        assert!(
            "fax"
                .parse::<Channel>()
                .unwrap_err()
                .contains("sms, email or wechat")
        );
    }
}

//! `outreach import customers|orders FILE`: streaming, batched upserts.
//!
//! A parser thread reads the file row by row and hands batches over a small
//! bounded channel to the writer, so memory does not grow with the file. Each
//! batch is one transaction. A bad row is reported with its line, column and
//! reason and skipped; every good row is written.

mod csv_line;
pub mod rows;
pub mod source;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::campaigns::redemption::RedemptionOutcome;
use crate::domain::{Customer, Order};
use crate::store::{LoadedTable, SharedStore, Store, StoreError, UpsertCounts};
pub use rows::ParseContext;
use source::{RowSource, Schema};

/// What is being imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportKind {
    Customers,
    Orders,
}

/// Errors that stop an import (exit code 2). Bad rows are not errors: they are [`RowError`]s.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: unknown file type: name it .csv or .jsonl (JSON Lines)", .0.display())]
    UnknownFormat(PathBuf),
    #[error("cannot open {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read error: {0}")]
    Read(#[source] std::io::Error),
    #[error("{}: line 1: {reason}", .path.display())]
    Header { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file reader or a writer lane panicked (a bug).
    #[error("an import worker stopped unexpectedly")]
    WorkerPanicked,
}

impl ImportError {
    fn header(path: &Path, reason: impl Into<String>) -> Self {
        ImportError::Header {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// One rejected row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: u64,
    /// 1-based column (CSV) or character position, when known.
    pub column: Option<usize>,
    /// The field the problem is in, when known.
    pub field: Option<&'static str>,
    pub reason: String,
}

impl RowError {
    /// `file:line[:col]: [field: ]reason`
    pub fn display_in(&self, file: &str) -> String {
        let mut s = format!("{file}:{}", self.line);
        if let Some(c) = self.column {
            s.push_str(&format!(":{c}"));
        }
        s.push_str(": ");
        if let Some(f) = self.field {
            s.push_str(f);
            s.push_str(": ");
        }
        s.push_str(&self.reason);
        s
    }
}

/// Options of one import run.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub batch_size: usize,
    /// Show a progress bar (only when stderr is a terminal).
    pub progress: bool,
    /// Print each rejected row to stderr as it is found.
    pub print_rejects: bool,
}

/// How many rejected rows the summary keeps (all of them are printed).
const KEPT_REJECTS: usize = 1000;

/// The result of an import.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub file: String,
    pub kind: ImportKind,
    /// Data rows read (blank lines and the header not counted).
    pub rows: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows that appeared again later in the same file: the later one wins.
    pub superseded: u64,
    pub rejected: u64,
    /// Columns or keys that are not ours and were ignored.
    pub ignored_columns: Vec<String>,
    /// The first rejected rows (all are printed to stderr).
    pub errors: Vec<RowError>,
    /// What the orders' coupon codes did.
    pub coupons: CouponTally,
    /// The first orders whose coupon code was refused (all are printed to
    /// stderr); the orders themselves were imported.
    pub coupon_refusals: Vec<RowError>,
    pub seconds: f64,
}

/// Coupon codes seen in an orders import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CouponTally {
    /// Coupons redeemed by this import.
    pub redeemed: u64,
    /// Orders that had redeemed their coupon already (a re-import).
    pub already_held: u64,
    /// Codes that match no coupon issued here (the shop's own promotions).
    pub not_ours: u64,
    /// Codes refused: used before, expired, another customer's, …
    pub refused: u64,
}

impl std::ops::AddAssign for CouponTally {
    fn add_assign(&mut self, o: CouponTally) {
        self.redeemed += o.redeemed;
        self.already_held += o.already_held;
        self.not_ours += o.not_ours;
        self.refused += o.refused;
    }
}

impl ImportReport {
    /// Rows that changed the database (inserted or updated).
    pub fn stored_rows(&self) -> u64 {
        self.inserted + self.updated
    }

    /// Rows written or confirmed.
    pub fn imported(&self) -> u64 {
        self.inserted + self.updated + self.unchanged
    }

    /// Exit code of the contract: 0 all rows imported, 1 some rejected.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.rejected > 0)
    }

    /// The human summary line.
    pub fn summary(&self) -> String {
        let rate = if self.seconds > 0.0 {
            self.rows as f64 / self.seconds
        } else {
            0.0
        };
        let mut s = format!(
            "{}: {} rows read, {} imported ({} new, {} updated, {} unchanged), {} rejected in {:.1} s ({:.0} rows/s)",
            self.file,
            self.rows,
            self.imported(),
            self.inserted,
            self.updated,
            self.unchanged,
            self.rejected,
            self.seconds,
            rate
        );
        if self.superseded > 0 {
            s.push_str(&format!(
                "; {} rows repeated an id seen earlier in the file (the later row was kept)",
                self.superseded
            ));
        }
        let c = &self.coupons;
        if c.redeemed + c.already_held + c.not_ours + c.refused > 0 {
            s.push_str(&format!(
                "; coupons: {} redeemed, {} refused, {} already redeemed by the same order, {} codes not issued here",
                c.redeemed, c.refused, c.already_held, c.not_ours
            ));
        }
        if !self.ignored_columns.is_empty() {
            s.push_str(&format!(
                "; ignored columns: {}",
                self.ignored_columns.join(", ")
            ));
        }
        s
    }
}

/// A batch handed from the parser to the writer.
struct Batch<T> {
    items: Vec<T>,
    lines: Vec<u64>,
}

/// What the store did with a batch.
#[derive(Debug, Default)]
struct Written {
    counts: UpsertCounts,
    /// Indexes of rows the database refused.
    refused: Vec<usize>,
    coupons: RedemptionOutcome,
}

/// What a lane reports besides the counts: a rejected row, or an order
/// whose coupon code was refused (the order itself was imported).
enum Note {
    Reject(RowError),
    Coupon(RowError),
}

/// A type that can be upserted in batches.
trait Importable: Send + Sync + Sized + 'static {
    fn id(&self) -> &str;
    /// What picks the writer lane: rows with the same key are written in
    /// file order by one lane.
    fn lane_key(&self) -> &str;
    fn parse(
        row: &source::RawRow,
        cols: &[Option<usize>],
        ctx: &ParseContext,
    ) -> Result<Self, RowError>;
    /// Upsert a batch.
    fn upsert(
        store: &SharedStore,
        batch: &[Self],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;
    /// Why the database refused row `self`.
    fn refusal(&self) -> RowError;
}

impl Importable for Customer {
    fn id(&self) -> &str {
        self.id.as_str()
    }
    fn lane_key(&self) -> &str {
        self.id.as_str()
    }
    fn parse(
        row: &source::RawRow,
        cols: &[Option<usize>],
        ctx: &ParseContext,
    ) -> Result<Self, RowError> {
        rows::customer(row, cols, ctx)
    }
    async fn upsert(
        store: &SharedStore,
        batch: &[Self],
        now: DateTime<Utc>,
    ) -> Result<Written, StoreError> {
        Ok(Written {
            counts: store.upsert_customers(batch, now).await?,
            ..Written::default()
        })
    }
    fn refusal(&self) -> RowError {
        RowError {
            line: 0,
            column: None,
            field: Some("id"),
            reason: "refused by the database".into(),
        }
    }
}

impl Importable for Order {
    fn id(&self) -> &str {
        self.id.as_str()
    }
    /// All of a customer's orders go through one lane, so that the orders
    /// that carry one of the customer's coupon codes are redeemed in file
    /// order, whatever the number of lanes.
    fn lane_key(&self) -> &str {
        self.customer_id.as_str()
    }
    fn parse(
        row: &source::RawRow,
        cols: &[Option<usize>],
        ctx: &ParseContext,
    ) -> Result<Self, RowError> {
        rows::order(row, cols, ctx)
    }
    async fn upsert(
        store: &SharedStore,
        batch: &[Self],
        now: DateTime<Utc>,
    ) -> Result<Written, StoreError> {
        let outcome = store.upsert_orders(batch, now).await?;
        Ok(Written {
            counts: outcome.counts,
            refused: outcome.unknown_customers,
            coupons: outcome.coupons,
        })
    }
    fn refusal(&self) -> RowError {
        RowError {
            line: 0,
            column: None,
            field: Some("customer_id"),
            reason: format!(
                "unknown customer {:?}: import the customer before their orders",
                self.customer_id.as_str()
            ),
        }
    }
}

/// Collects rejected rows: prints them and keeps the first few.
struct Rejects {
    file: String,
    print: bool,
    bar: Option<ProgressBar>,
    count: u64,
    kept: Vec<RowError>,
    coupons: Vec<RowError>,
}

impl Rejects {
    fn add(&mut self, note: Note) {
        let (e, kept) = match note {
            Note::Reject(e) => {
                self.count += 1;
                (e, &mut self.kept)
            }
            Note::Coupon(e) => (e, &mut self.coupons),
        };
        if self.print {
            let line = e.display_in(&self.file);
            match &self.bar {
                Some(bar) => bar.suspend(|| eprintln!("{line}")),
                None => eprintln!("{line}"),
            }
        }
        if kept.len() < KEPT_REJECTS {
            kept.push(e);
        }
    }
}

/// Import `path` into `store`.
#[tracing::instrument(name = "import", skip_all, fields(kind = ?kind, file = %path.display()))]
pub async fn import_file(
    store: SharedStore,
    kind: ImportKind,
    path: &Path,
    ctx: ParseContext,
    options: &ImportOptions,
    now: DateTime<Utc>,
) -> Result<ImportReport, ImportError> {
    match kind {
        ImportKind::Customers => {
            run::<Customer>(store, kind, &rows::CUSTOMERS, path, ctx, options, now).await
        }
        ImportKind::Orders => {
            run::<Order>(store, kind, &rows::ORDERS, path, ctx, options, now).await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run<T: Importable>(
    store: SharedStore,
    kind: ImportKind,
    schema: &'static Schema,
    path: &Path,
    ctx: ParseContext,
    options: &ImportOptions,
    now: DateTime<Utc>,
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let file_name = path.display().to_string();
    let mut source = RowSource::open(path, schema)?;
    let total_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = (options.progress && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(total_bytes);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} ({eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(format!("importing {}", table_of(kind).name()));
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let progress = source.progress();
    let columns = source.column_numbers();
    let batch_size = options.batch_size;

    // One lane per concurrent writer; a row's lane is a hash of its lane key
    // (a customer's id, also for orders), so every row with the same id goes
    // through the same lane, in file order — an order moved to another
    // customer within one file is the exception: its two rows race.
    let lanes = store.write_lanes().max(1);
    let mut lane_txs = Vec::with_capacity(lanes);
    let mut lane_tasks = Vec::with_capacity(lanes);
    let (reject_tx, mut reject_rx) = mpsc::unbounded_channel::<Note>();
    // Written batches go back to the parser, which empties and refills them:
    // their rows are freed by the thread that allocated them (glibc frees
    // across threads slowly, and showed up as a third of an import's CPU),
    // and their vectors keep their capacity.
    let (spent_tx, spent_rx) = std::sync::mpsc::channel::<Batch<T>>();
    for _ in 0..lanes {
        // One batch waiting per lane is enough: the parser fills one much faster
        // than a lane writes one, and every batch held costs memory.
        let (tx, mut rx) = mpsc::channel::<Batch<T>>(1);
        lane_txs.push(tx);
        let store = store.clone();
        let rejects = reject_tx.clone();
        let bar = bar.clone();
        let progress = progress.clone();
        let spent = spent_tx.clone();
        lane_tasks.push(tokio::spawn(async move {
            let mut counts = UpsertCounts::default();
            let mut coupons = CouponTally::default();
            while let Some(batch) = rx.recv().await {
                let (c, k) = write_batch(&store, &batch, now, &rejects).await?;
                counts += c;
                coupons += k;
                let _ = spent.send(batch);
                if let Some(bar) = &bar {
                    bar.set_position(progress.load(Ordering::Relaxed));
                }
            }
            Ok::<_, StoreError>((counts, coupons))
        }));
    }
    drop(spent_tx);
    let parser_rejects = reject_tx;
    let parser = std::thread::spawn(move || -> Result<(RowSource, u64, u64), ImportError> {
        let mut rows = 0u64;
        let mut superseded = 0u64;
        // Emptied batches, ready to refill.
        let mut free: Vec<Batch<T>> = Vec::new();
        let mut new_batch = || {
            // Empty every written batch now, not when it is refilled: its
            // rows would otherwise stay in memory until then.
            free.extend(spent_rx.try_iter().map(|mut spent| {
                spent.items.clear();
                spent.lines.clear();
                spent
            }));
            free.pop().unwrap_or_else(|| Batch {
                items: Vec::with_capacity(batch_size),
                lines: Vec::with_capacity(batch_size),
            })
        };
        let mut batches: Vec<Batch<T>> = (0..lanes).map(|_| new_batch()).collect();
        // Each lane's ids in its current batch, as indexes into the batch.
        use std::hash::BuildHasher;
        let ids = hashbrown::DefaultHashBuilder::default();
        let mut seen: Vec<hashbrown::HashTable<usize>> = (0..lanes)
            .map(|_| hashbrown::HashTable::with_capacity(batch_size))
            .collect();
        while let Some(row) = source.next_row()? {
            rows += 1;
            let parsed = row.and_then(|r| T::parse(r, &columns, &ctx).map(|v| (r.line, v)));
            let (line, item) = match parsed {
                Ok(ok) => ok,
                Err(e) => {
                    if parser_rejects.send(Note::Reject(e)).is_err() {
                        break;
                    }
                    continue;
                }
            };
            let lane = lane_of(item.lane_key(), lanes);
            let batch = &mut batches[lane];
            // The same id twice in one batch: the later row replaces the earlier.
            let hash = ids.hash_one(item.id());
            let items = &batch.items;
            match seen[lane].find(hash, |&at| items[at].id() == item.id()) {
                Some(&at) => {
                    batch.items[at] = item;
                    batch.lines[at] = line;
                    superseded += 1;
                }
                None => {
                    seen[lane]
                        .insert_unique(hash, batch.items.len(), |&at| ids.hash_one(items[at].id()));
                    batch.items.push(item);
                    batch.lines.push(line);
                }
            }
            if batch.items.len() >= batch_size {
                seen[lane].clear();
                let full = std::mem::replace(batch, new_batch());
                if lane_txs[lane].blocking_send(full).is_err() {
                    break;
                }
            }
        }
        for (batch, tx) in batches.into_iter().zip(&lane_txs) {
            if !batch.items.is_empty() {
                let _ = tx.blocking_send(batch);
            }
        }
        Ok((source, rows, superseded))
    });

    let mut rejects = Rejects {
        file: file_name.clone(),
        print: options.print_rejects,
        bar: bar.clone(),
        count: 0,
        kept: Vec::new(),
        coupons: Vec::new(),
    };
    // Every sender (the parser and the lanes) gone: everything is written.
    while let Some(e) = reject_rx.recv().await {
        rejects.add(e);
    }
    let mut counts = UpsertCounts::default();
    let mut coupons = CouponTally::default();
    let mut write_error = None;
    for task in lane_tasks {
        match task.await {
            Ok(Ok((c, k))) => {
                counts += c;
                coupons += k;
            }
            Ok(Err(e)) => write_error = write_error.or(Some(ImportError::Store(e))),
            Err(_) => write_error = write_error.or(Some(ImportError::WorkerPanicked)),
        }
    }
    let joined = tokio::task::spawn_blocking(move || parser.join())
        .await
        .map_err(|_| ImportError::WorkerPanicked)?
        .map_err(|_| ImportError::WorkerPanicked)?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some(e) = write_error {
        return Err(e);
    }
    let (source, rows, superseded) = joined?;
    after_load(store.as_ref(), table_of(kind), counts.inserted).await;
    let mut errors = rejects.kept;
    errors.sort_by_key(|e| e.line);
    let mut coupon_refusals = rejects.coupons;
    coupon_refusals.sort_by_key(|e| e.line);
    Ok(ImportReport {
        file: file_name,
        kind,
        rows,
        inserted: counts.inserted,
        updated: counts.updated,
        unchanged: counts.unchanged,
        superseded,
        rejected: rejects.count,
        ignored_columns: source.ignored_columns,
        errors,
        coupons,
        coupon_refusals,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn table_of(kind: ImportKind) -> LoadedTable {
    match kind {
        ImportKind::Customers => LoadedTable::Customers,
        ImportKind::Orders => LoadedTable::Orders,
    }
}

/// The store's upkeep after a load (see [`Store::after_bulk_load`]). Its
/// failure is only a warning: every row is stored already.
async fn after_load(store: &dyn Store, table: LoadedTable, inserted: u64) {
    if let Err(e) = store.after_bulk_load(table, inserted).await {
        tracing::warn!(
            table = table.name(),
            error = %e,
            "the load is stored, but its upkeep (VACUUM ANALYZE) failed; autovacuum will do it in time"
        );
    }
}

/// Writes one batch; rows the database refuses (orders of unknown customers)
/// become rejects, refused coupon codes become notes.
async fn write_batch<T: Importable>(
    store: &SharedStore,
    batch: &Batch<T>,
    now: DateTime<Utc>,
    rejects: &mpsc::UnboundedSender<Note>,
) -> Result<(UpsertCounts, CouponTally), StoreError> {
    let written = T::upsert(store, &batch.items, now).await?;
    for idx in written.refused {
        if let (Some(item), Some(&line)) = (batch.items.get(idx), batch.lines.get(idx)) {
            let _ = rejects.send(Note::Reject(RowError {
                line,
                ..item.refusal()
            }));
        }
    }
    let c = written.coupons;
    let tally = CouponTally {
        redeemed: c.redeemed,
        already_held: c.held,
        not_ours: c.foreign,
        refused: c.refused.len() as u64,
    };
    for note in c.refused {
        if let Some(&line) = batch.lines.get(note.index) {
            let _ = rejects.send(Note::Coupon(RowError {
                line,
                column: None,
                field: Some("coupon_code"),
                reason: note.message,
            }));
        }
    }
    Ok((written.counts, tally))
}

/// The lane of an id: a stable hash, so one id always takes the same lane.
fn lane_of(id: &str, lanes: usize) -> usize {
    if lanes <= 1 {
        return 0;
    }
    // FNV-1a: cheap and stable across runs.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % lanes as u64) as usize
}

/// One rejected item of a request to the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemError {
    /// 0-based position in the request.
    pub index: usize,
    /// The field the problem is in, when known.
    pub field: Option<&'static str>,
    pub reason: String,
}

impl ItemError {
    fn at(index: usize, e: RowError) -> ItemError {
        ItemError {
            index,
            field: e.field,
            reason: e.reason,
        }
    }
}

/// What importing the items of one request did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ItemsReport {
    /// Items in the request.
    pub received: usize,
    /// Items written or confirmed (new, updated or unchanged).
    pub accepted: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Items whose id came again later in the request: the later one won.
    pub superseded: u64,
    /// Items rejected, with why.
    pub errors: Vec<ItemError>,
    /// What the orders' coupon codes did.
    pub coupons: CouponTally,
    /// Orders imported whose coupon code was refused.
    pub coupon_refusals: Vec<ItemError>,
    /// Fields that are not ours and were ignored.
    pub ignored_fields: Vec<String>,
}

/// Import JSON objects (the HTTP API's `POST /api/customers` and
/// `/api/orders`): each is checked exactly as a JSON Lines row of a file,
/// the good ones are upserted in one transaction, the bad ones reported by
/// position. Within one request a later item with the same id wins.
pub async fn import_items(
    store: &SharedStore,
    kind: ImportKind,
    items: Vec<serde_json::Value>,
    ctx: &ParseContext,
    now: DateTime<Utc>,
) -> Result<ItemsReport, StoreError> {
    match kind {
        ImportKind::Customers => {
            items_of::<Customer>(store, &rows::CUSTOMERS, items, ctx, now).await
        }
        ImportKind::Orders => items_of::<Order>(store, &rows::ORDERS, items, ctx, now).await,
    }
}

async fn items_of<T: Importable>(
    store: &SharedStore,
    schema: &'static Schema,
    items: Vec<serde_json::Value>,
    ctx: &ParseContext,
    now: DateTime<Utc>,
) -> Result<ItemsReport, StoreError> {
    let mut report = ItemsReport {
        received: items.len(),
        ..ItemsReport::default()
    };
    let no_columns = vec![None; schema.columns.len()];
    let mut batch: Vec<T> = Vec::with_capacity(items.len());
    let mut indexes: Vec<usize> = Vec::with_capacity(items.len());
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let line = index as u64 + 1;
        let parsed = source::json_object_row(schema, line, item, &mut report.ignored_fields)
            .and_then(|row| T::parse(&row, &no_columns, ctx));
        match parsed {
            Err(e) => report.errors.push(ItemError::at(index, e)),
            Ok(item) => match seen.get(item.id()) {
                Some(&at) => {
                    batch[at] = item;
                    indexes[at] = index;
                    report.superseded += 1;
                }
                None => {
                    seen.insert(item.id().to_owned(), batch.len());
                    batch.push(item);
                    indexes.push(index);
                }
            },
        }
    }
    if !batch.is_empty() {
        let written = T::upsert(store, &batch, now).await?;
        for at in written.refused {
            if let (Some(item), Some(&index)) = (batch.get(at), indexes.get(at)) {
                report.errors.push(ItemError::at(index, item.refusal()));
            }
        }
        report.inserted = written.counts.inserted;
        report.updated = written.counts.updated;
        report.unchanged = written.counts.unchanged;
        let c = written.coupons;
        report.coupons = CouponTally {
            redeemed: c.redeemed,
            already_held: c.held,
            not_ours: c.foreign,
            refused: c.refused.len() as u64,
        };
        for note in c.refused {
            if let Some(&index) = indexes.get(note.index) {
                report.coupon_refusals.push(ItemError {
                    index,
                    field: Some("coupon_code"),
                    reason: note.message,
                });
            }
        }
    }
    report.accepted = report.inserted + report.updated + report.unchanged;
    report.errors.sort_by_key(|e| e.index);
    Ok(report)
}

/// Write generated records (the demo shop) through the same batched upserts.
pub async fn write_records(
    store: &SharedStore,
    records: impl Iterator<Item = (Customer, Vec<Order>)>,
    batch_size: usize,
    now: DateTime<Utc>,
    mut on_progress: impl FnMut(u64, u64),
) -> Result<(u64, u64), StoreError> {
    let mut customers = Vec::with_capacity(batch_size);
    let mut orders = Vec::with_capacity(batch_size * 2);
    let (mut nc, mut no) = (0u64, 0u64);
    let mut inserted = (0u64, 0u64);
    let mut records = records.peekable();
    while let Some((c, os)) = records.next() {
        customers.push(c);
        orders.extend(os);
        let last = records.peek().is_none();
        if last || customers.len() >= batch_size || orders.len() >= batch_size {
            nc += customers.len() as u64;
            no += orders.len() as u64;
            inserted.0 += store.upsert_customers(&customers, now).await?.inserted;
            inserted.1 += store.upsert_orders(&orders, now).await?.counts.inserted;
            customers.clear();
            orders.clear();
            on_progress(nc, no);
        }
    }
    after_load(store.as_ref(), LoadedTable::Customers, inserted.0).await;
    after_load(store.as_ref(), LoadedTable::Orders, inserted.1).await;
    Ok((nc, no))
}

#[cfg(test)]
mod tests {
    use super::lane_of;

    #[test]
    fn an_id_always_takes_the_same_lane_and_lanes_are_used() {
        for lanes in 1..=4 {
            let mut used = vec![0u32; lanes];
            for i in 0..1_000 {
                let id = format!("O{i:07}");
                let lane = lane_of(&id, lanes);
                assert_eq!(lane, lane_of(&id, lanes), "stable");
                used[lane] += 1;
            }
            // Roughly even: every lane gets at least a fifth of its share.
            assert!(
                used.iter().all(|&n| n as usize * lanes * 5 >= 1_000),
                "{used:?}"
            );
        }
        // Fixed values: the hash must not change between versions or runs.
        assert_eq!(lane_of("C0000001", 2), lane_of("C0000001", 2));
        assert_eq!(lane_of("", 3), (0xcbf2_9ce4_8422_2325u64 % 3) as usize);
    }
}

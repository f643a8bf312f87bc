//! The page loop of a campaign run, shared by both backends.
//!
//! Three things happen at once: a task reads the next page of candidates,
//! the planner decides the current page, and other tasks write the pages
//! planned before it. Each page is still written in one transaction of its
//! own (a coupon in the transaction of its message), and only the writes
//! hold one; the reads run outside any. Pages are disjoint sets of
//! customers, so two writers never touch the same customer's rows.
//!
//! The reader and each writer have a connection of their own when the pool
//! allows, and share one (taking turns) otherwise. SQLite writes one
//! transaction at a time whatever the number of connections, so it has one
//! writer; PostgreSQL has two, because a page's write costs the server more
//! than reading and planning the next one.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use sqlx::Database;
use sqlx::pool::{Pool, PoolConnection};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use super::{StoreError, campaigns_sql};
use crate::campaigns::outbox::{
    Candidate, CandidateQuery, CandidateSink, PageWrite, PlannedMessage, WriteTotals,
};
use crate::expr::SqlParam;

/// Attempts at a page whose random coupon codes collided with existing ones.
const CODE_ATTEMPTS: usize = 3;
/// Pages read ahead of the planner.
const READ_AHEAD: usize = 1;

/// A pooled connection the reader and the writers of a run may share.
pub(crate) type SharedConn<DB> = Arc<Mutex<PoolConnection<DB>>>;

/// The candidate search on a backend's connection.
pub(crate) trait FindCandidates: Send {
    /// The upper bound of the next `size` customer ids after `lo`, or
    /// `None` after the last customer.
    fn next_bound(
        &mut self,
        lo: &str,
        size: usize,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Run the candidate search `sql` (its `params`, then `lo` and `hi`),
    /// which adds the candidates among customers `(lo, hi]` to the run's
    /// candidates; returns how many were added.
    fn find(
        &mut self,
        sql: &str,
        params: &[SqlParam],
        lo: &str,
        hi: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// A run's candidate search, a chunk of customers at a time
/// (`campaigns_sql::candidate_chunk`), kept a page ahead of the reader.
#[derive(Debug)]
pub(crate) struct Search {
    /// The statement and its parameters, without the chunk's bounds
    /// (`campaigns_sql::select_candidates`).
    sql: String,
    params: Vec<SqlParam>,
    /// Customers per chunk, and candidates per page.
    chunk: usize,
    page: u64,
    /// The last customer id searched.
    lo: String,
    /// Every customer has been searched.
    done: bool,
    /// Candidates found so far.
    pub found: u64,
    /// Candidates found and not yet read.
    unread: u64,
}

impl Search {
    pub fn new((sql, params): (String, Vec<SqlParam>), batch_size: usize) -> Self {
        Self {
            sql,
            params,
            chunk: campaigns_sql::candidate_chunk(batch_size),
            page: batch_size.max(1) as u64,
            lo: String::new(),
            done: false,
            found: 0,
            unread: 0,
        }
    }

    /// Search until a page's worth of candidates is waiting to be read, or
    /// every customer has been searched.
    pub async fn fill(&mut self, conn: &mut impl FindCandidates) -> Result<(), StoreError> {
        while !self.done && self.unread < self.page {
            match conn.next_bound(&self.lo, self.chunk).await? {
                None => self.done = true,
                Some(hi) => {
                    let n = conn.find(&self.sql, &self.params, &self.lo, &hi).await?;
                    self.found += n;
                    self.unread += n;
                    self.lo = hi;
                }
            }
        }
        Ok(())
    }

    /// `n` candidates were read.
    pub fn read(&mut self, n: usize) {
        self.unread = self.unread.saturating_sub(n as u64);
    }

    /// The pages the run will write, as far as known: exact once every
    /// customer has been searched, else "more than one".
    pub fn pages_to_write(&self, write: bool) -> u64 {
        match (write, self.done) {
            (false, _) => 0,
            (true, true) => self.found.div_ceil(self.page),
            (true, false) => u64::MAX,
        }
    }
}

/// The connections of up to `writers` writers for a run whose reader has
/// `reader` (which holds the run's temporary tables): more from the pool when
/// the run has more than one page to write (a run of one page has nothing
/// to overlap, and a new connection costs more than it would save). The
/// first extra connection is waited for; further ones are taken only if the
/// pool has them idle, so a busy daemon is never held up by them. Without an
/// extra connection the one writer shares the reader's.
pub(crate) async fn run_connections<DB: Database>(
    pool: &Pool<DB>,
    reader: &SharedConn<DB>,
    pages_to_write: u64,
    writers: usize,
) -> Result<Vec<SharedConn<DB>>, StoreError> {
    let max = pool.options().get_max_connections() as usize;
    let wanted = if pages_to_write > 1 {
        writers
            .min(usize::try_from(pages_to_write).unwrap_or(usize::MAX))
            .min(max.saturating_sub(1))
    } else {
        0
    };
    let mut conns = Vec::with_capacity(wanted.max(1));
    for i in 0..wanted {
        let conn = if i == 0 {
            Some(pool.acquire().await?)
        } else {
            pool.try_acquire()
        };
        match conn {
            Some(c) => conns.push(Arc::new(Mutex::new(c))),
            None => break,
        }
    }
    if conns.is_empty() {
        conns.push(Arc::clone(reader));
    }
    Ok(conns)
}

/// A writer of a run's pages: its connection and the run's query. Each
/// backend writes a page its own way (`PageWriter`).
pub(crate) struct Writes<DB: Database> {
    pub conn: SharedConn<DB>,
    pub query: Arc<CandidateQuery>,
}

/// The run's writers, one per connection: none for a preview.
pub(crate) fn page_writers<DB: Database>(
    write: bool,
    conns: Vec<SharedConn<DB>>,
    q: &CandidateQuery,
) -> Vec<Writes<DB>> {
    if !write {
        return Vec::new();
    }
    let query = Arc::new(q.clone());
    conns
        .into_iter()
        .map(|conn| Writes {
            conn,
            query: Arc::clone(&query),
        })
        .collect()
}

/// Reads a run's candidates a page at a time.
pub(crate) trait PageReader: Send + 'static {
    /// The next page, or `None` after the last.
    fn next_page(
        &mut self,
    ) -> impl Future<Output = Result<Option<Vec<Candidate>>, StoreError>> + Send;
}

/// Writes a planned page in one transaction.
pub(crate) trait PageWriter: Send + 'static {
    fn write_page(
        &mut self,
        planned: &[PlannedMessage],
    ) -> impl Future<Output = Result<PageWrite, StoreError>> + Send;
}

fn code_collided(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(sqlx::Error::Database(d)) if d.is_unique_violation())
}

/// Wait for a task, passing its panic on.
async fn join<T>(task: JoinHandle<T>) -> T {
    match task.await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

type Written<W> = (W, usize, Result<PageWrite, StoreError>);

/// A page being written: the task and the candidates it was planned from.
struct InFlight<W> {
    task: JoinHandle<Written<W>>,
    page: Vec<Candidate>,
}

fn start<W: PageWriter>(
    mut writer: W,
    planned: Vec<PlannedMessage>,
    page: Vec<Candidate>,
) -> InFlight<W> {
    let task = tokio::spawn(async move {
        let r = writer.write_page(&planned).await;
        (writer, planned.len(), r)
    });
    InFlight { task, page }
}

/// Wait for a page's write and count it; a page whose coupon codes collided
/// with issued ones is planned again (new codes) and rewritten.
async fn settle<W: PageWriter>(
    f: InFlight<W>,
    sink: &mut dyn CandidateSink,
    totals: &mut WriteTotals,
) -> Result<W, StoreError> {
    let (mut writer, mut planned, mut result) = join(f.task).await;
    let mut attempt = 1;
    loop {
        match result {
            Ok(w) => {
                totals.add(&w, planned);
                return Ok(writer);
            }
            Err(e) if code_collided(&e) && attempt < CODE_ATTEMPTS => {
                tracing::warn!(
                    "a coupon code collided with an issued one; planning the page again"
                );
                attempt += 1;
                let again = sink.plan(&f.page);
                planned = again.len();
                result = writer.write_page(&again).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Read, plan and (with writers) write every page, overlapping the three;
/// returns the reader once every page is written. Pages are written by the
/// next idle writer; when none is idle, the oldest write is waited for.
pub(crate) async fn run_pages<R: PageReader, W: PageWriter>(
    reader: R,
    writers: Vec<W>,
    sink: &mut dyn CandidateSink,
    totals: &mut WriteTotals,
) -> Result<R, StoreError> {
    let (tx, mut rx) = mpsc::channel(READ_AHEAD);
    let reading = tokio::spawn(async move {
        let mut reader = reader;
        loop {
            let page = reader.next_page().await;
            let more = matches!(page, Ok(Some(_)));
            if tx.send(page).await.is_err() || !more {
                return reader;
            }
        }
    });
    let writing = !writers.is_empty();
    let mut idle = writers;
    let mut busy: VecDeque<InFlight<W>> = VecDeque::new();
    let mut outcome = Ok(());
    while let Some(next) = rx.recv().await {
        let page = match next {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        // Planned while earlier pages are written and the next one read.
        let planned = sink.plan(&page);
        if !writing {
            continue;
        }
        if idle.is_empty()
            && let Some(f) = busy.pop_front()
        {
            match settle(f, sink, totals).await {
                Ok(w) => idle.push(w),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if let Some(w) = idle.pop() {
            busy.push_back(start(w, planned, page));
        }
    }
    while let Some(f) = busy.pop_front() {
        let r = settle(f, sink, totals).await;
        if outcome.is_ok() {
            outcome = r.map(drop);
        }
    }
    drop(rx);
    let reader = join(reading).await;
    outcome.map(|()| reader)
}

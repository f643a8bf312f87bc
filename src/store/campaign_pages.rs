//! The page loop of a campaign run, shared by both backends.
//!
//! Three things happen at once: a task reads the next page of candidates,
//! the planner decides the current page, and another task writes the page
//! planned before it. Each page is still written in one transaction of its
//! own (a coupon in the transaction of its message), and only the write
//! holds one; the reads run outside any. The reader and the writer each have
//! a connection when the pool allows two, and share one (taking turns)
//! otherwise.

use std::future::Future;
use std::sync::Arc;

use sqlx::Database;
use sqlx::pool::{Pool, PoolConnection};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use super::StoreError;
use crate::campaigns::outbox::{Candidate, CandidateSink, PageWrite, PlannedMessage, WriteTotals};

/// Attempts at a page whose random coupon codes collided with existing ones.
const CODE_ATTEMPTS: usize = 3;
/// Pages read ahead of the planner.
const READ_AHEAD: usize = 1;

/// A pooled connection the reader and the writer of a run may share.
pub(crate) type SharedConn<DB> = Arc<Mutex<PoolConnection<DB>>>;

/// The reader's connection (`first`, which holds the run's temporary
/// tables) and the writer's: a second one from the pool when the run has
/// more than one page to write and the pool allows two, else the same (a
/// run of one page has nothing to overlap, and a new connection costs more
/// than it would save).
pub(crate) async fn run_connections<DB: Database>(
    pool: &Pool<DB>,
    first: PoolConnection<DB>,
    pages_to_write: u64,
) -> Result<(SharedConn<DB>, SharedConn<DB>), StoreError> {
    let reader = Arc::new(Mutex::new(first));
    let writer = if pages_to_write > 1 && pool.options().get_max_connections() >= 2 {
        Arc::new(Mutex::new(pool.acquire().await?))
    } else {
        Arc::clone(&reader)
    };
    Ok((reader, writer))
}

/// The pages a run writes: none for a preview.
pub(crate) fn pages_to_write(write: bool, candidates: u64, batch_size: usize) -> u64 {
    if write {
        candidates.div_ceil(batch_size.max(1) as u64)
    } else {
        0
    }
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

/// Read, plan and (with a writer) write every page, overlapping the three;
/// returns the reader once every page is written.
pub(crate) async fn run_pages<R: PageReader, W: PageWriter>(
    reader: R,
    writer: Option<W>,
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
    let mut idle = writer;
    let mut busy: Option<InFlight<W>> = None;
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
        // Planned while the previous page is written and the next one read.
        let planned = sink.plan(&page);
        if let Some(f) = busy.take() {
            match settle(f, sink, totals).await {
                Ok(w) => idle = Some(w),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if let Some(w) = idle.take() {
            busy = Some(start(w, planned, page));
        }
    }
    if let Some(f) = busy.take() {
        let last = settle(f, sink, totals).await;
        if outcome.is_ok() {
            outcome = last.map(drop);
        }
    }
    drop(rx);
    let reader = join(reading).await;
    outcome.map(|()| reader)
}

//! Checkpoints taken beside a long write job, on a connection of their own.
//!
//! In WAL mode each commit appends the pages it changed to the `-wal` file;
//! a checkpoint copies them into the database file (with an `fsync` before
//! and after). By default the connection that commits takes the checkpoint
//! itself, once the WAL holds 1,000 pages, inside its `COMMIT`. A segments
//! run writes tens of thousands of scattered pages in a few seconds, and on
//! a million customers those checkpoints were a third of an incremental
//! run, all on the run's one thread.
//!
//! While the run goes on, a [`Checkpointer`] takes passive checkpoints on a
//! second connection, every [`PERIOD`]: the copying happens on another core
//! while the run computes its next batch. A passive checkpoint never waits
//! for a lock and never blocks the writer; it copies what no reader still
//! needs, and SQLite starts the WAL from the beginning again once all of it
//! is copied. The run's connection keeps a checkpoint of its own only as a
//! backstop ([`RUN_AUTOCHECKPOINT_PAGES`]), so the WAL stays bounded if the
//! second connection falls behind. The commits are as durable as before:
//! which connection copies them changes nothing in what SQLite writes.

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, SqlitePool};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::store::StoreError;

/// How often the second connection looks for committed pages to copy.
pub(super) const PERIOD: Duration = Duration::from_millis(25);

/// The run's own connection checkpoints only once the WAL holds this many
/// pages (64 MiB of 4 KiB pages): the background one normally copies them
/// long before.
pub(super) const RUN_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// What the background connection did, for the run's debug log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct CheckpointStats {
    /// Checkpoints taken.
    pub checkpoints: u64,
    /// Pages in the WAL at the last checkpoint, and how many of them had
    /// been copied into the database file once it ended (SQLite's own
    /// figures: the WAL starts again from its beginning once all of it is
    /// copied, so they are not totals over the run).
    pub wal_pages: i64,
    pub copied: i64,
}

/// Passive checkpoints on a connection of their own until [`stop`]ped (or
/// dropped).
///
/// [`stop`]: Checkpointer::stop
#[derive(Debug)]
pub(super) struct Checkpointer {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<CheckpointStats, sqlx::Error>>>,
}

impl Checkpointer {
    /// Open a second connection to the pool's database and start.
    pub async fn start(pool: &SqlitePool) -> Result<Checkpointer, StoreError> {
        let options: SqliteConnectOptions = (*pool.connect_options())
            .clone()
            .log_statements(log::LevelFilter::Trace);
        let mut conn = SqliteConnection::connect_with(&options).await?;
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut stats = CheckpointStats::default();
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let outcome = loop {
                tokio::select! {
                    _ = &mut stopped => break Ok(stats),
                    _ = tick.tick() => {}
                }
                // (busy, pages in the WAL, pages copied); -1s when the
                // database is not in WAL mode.
                match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&mut conn)
                    .await
                {
                    Ok((_, wal_pages, copied)) => {
                        stats.checkpoints += 1;
                        (stats.wal_pages, stats.copied) = (wal_pages, copied);
                    }
                    Err(e) => break Err(e),
                }
            };
            let _ = conn.close().await;
            outcome
        });
        Ok(Checkpointer {
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Stop after the checkpoint under way, if any; what was done. A
    /// failed checkpoint is reported here, not as the run's error: the
    /// run's commits stand, and the next commit or the last connection to
    /// close copies them.
    pub async fn stop(mut self) -> Option<CheckpointStats> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take()?;
        match task.await {
            Ok(Ok(stats)) => Some(stats),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "background checkpoints stopped");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "background checkpoints ended abnormally");
                None
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // The run failed or was cancelled: the task ends at its next tick
        // and closes its connection.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteJournalMode, SqlitePoolOptions};
    use std::str::FromStr;

    /// Pages committed by a connection that never checkpoints reach the
    /// database file, copied by the checkpointer's own connection, while
    /// the writer holds the pool's only connection.
    #[tokio::test]
    async fn commits_reach_the_database_file_while_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.db");
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let mut writer = pool.acquire().await.unwrap();
        for sql in [
            "PRAGMA wal_autocheckpoint = 0",
            "CREATE TABLE t (x BLOB NOT NULL)",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO t SELECT randomblob(1000) FROM n",
        ] {
            sqlx::query(sql).execute(&mut *writer).await.unwrap();
        }
        let file_len = || std::fs::metadata(&path).unwrap().len();
        // Two megabytes committed, all of them in the WAL.
        assert!(file_len() < 100_000, "{} bytes already copied", file_len());
        let checkpointer = Checkpointer::start(&pool).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while file_len() < 2_000_000 && std::time::Instant::now() < deadline {
            tokio::time::sleep(PERIOD).await;
        }
        assert!(
            file_len() >= 2_000_000,
            "the database file has {} bytes",
            file_len()
        );
        // The writer goes on meanwhile, and is never refused.
        sqlx::query("INSERT INTO t SELECT randomblob(1000) FROM t LIMIT 100")
            .execute(&mut *writer)
            .await
            .unwrap();
        let stats = checkpointer.stop().await.expect("checkpoints ran");
        assert!(stats.checkpoints >= 1);
        assert!(stats.copied <= stats.wal_pages, "{stats:?}");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(&mut *writer)
            .await
            .unwrap();
        assert_eq!(n, 2100);
    }
}

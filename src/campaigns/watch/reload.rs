//! One reload: read the folders, merge, log what changed, publish.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use super::WatchError;
use super::merge::{Change, merge};
use super::scan::{Digests, scan};
use super::state::Snapshot;
use crate::store::SharedStore;

/// Where readers get the campaigns in force. Cheap to clone; every clone
/// sees every reload.
#[derive(Debug, Clone)]
pub struct CampaignRegistry {
    rx: watch::Receiver<Arc<Snapshot>>,
}

impl CampaignRegistry {
    /// The current snapshot: consistent, and unchanged while it is held.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.rx.borrow().clone()
    }

    /// A receiver that is told of every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.rx.clone()
    }
}

/// What asks for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadKind {
    /// The first load: always read.
    Start,
    /// The folder watcher saw a change.
    Event,
    /// The periodic rescan: read when a file changed, and while some file
    /// has errors (a store or segment added to the database may fix it).
    Rescan,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No file changed; nothing was loaded.
    Unchanged,
    /// No file changed, the folders were read again because some file has
    /// errors, and nothing differs from the snapshot in force.
    Same,
    /// A new snapshot was published.
    Published { generation: u64 },
}

/// The writer side of a [`CampaignRegistry`]: reloads the folders into it.
pub struct Reloader {
    store: SharedStore,
    campaigns_dir: PathBuf,
    templates_dir: PathBuf,
    tx: watch::Sender<Arc<Snapshot>>,
    /// The digests of the last merged load.
    last: Option<Digests>,
}

impl Reloader {
    /// An empty registry (generation 0) and its reloader.
    pub fn new(
        store: SharedStore,
        campaigns_dir: PathBuf,
        templates_dir: PathBuf,
    ) -> (Reloader, CampaignRegistry) {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let reloader = Reloader {
            store,
            campaigns_dir,
            templates_dir,
            tx,
            last: None,
        };
        (reloader, CampaignRegistry { rx })
    }

    /// Reload once. Files are read and templates compiled on the blocking
    /// pool. On an error the snapshot in force stays.
    pub async fn reload(&mut self, kind: ReloadKind) -> Result<Outcome, WatchError> {
        let dirs = (self.campaigns_dir.clone(), self.templates_dir.clone());
        let digests =
            tokio::task::spawn_blocking(move || Digests::of_folders(&[&dirs.0, &dirs.1])).await?;
        let old = self.tx.borrow().clone();
        let unchanged = self.last.as_ref() == Some(&digests);
        let wanted = match kind {
            ReloadKind::Start => true,
            ReloadKind::Event => !unchanged,
            ReloadKind::Rescan => !unchanged || !old.errors.is_empty(),
        };
        if !wanted {
            return Ok(Outcome::Unchanged);
        }
        let store = self.store.clone();
        let (campaigns_dir, templates_dir) =
            (self.campaigns_dir.clone(), self.templates_dir.clone());
        let handle = tokio::runtime::Handle::current();
        let for_scan = digests.clone();
        let scanned = tokio::task::spawn_blocking(move || {
            handle.block_on(scan(&*store, &campaigns_dir, &templates_dir, for_scan))
        })
        .await??;
        let (next, changes) = merge(&old, scanned);
        self.last = Some(digests);
        for change in &changes {
            log(change);
        }
        // A rescan forced by errors that finds nothing new publishes nothing;
        // any changed file does (segments.yaml may change no campaign).
        if unchanged && changes.is_empty() && next.errors == old.errors && kind != ReloadKind::Start
        {
            return Ok(Outcome::Same);
        }
        let generation = next.generation;
        self.tx.send_replace(Arc::new(next));
        tracing::debug!(generation, ?kind, "campaigns snapshot published");
        Ok(Outcome::Published { generation })
    }
}

/// One log line per change: changes at info, errors at warn.
fn log(change: &Change) {
    match change {
        Change::Started { id, file } => {
            tracing::info!(campaign = %id, file = %file.display(), "campaign started");
        }
        Change::Reloaded { id, file, cause } => tracing::info!(
            campaign = %id,
            file = %file.display(),
            cause = %cause.describe(),
            "campaign reloaded"
        ),
        Change::Recovered { id, file } => tracing::info!(
            campaign = %id,
            file = %file.display(),
            "campaign file passes again; its last good version is current"
        ),
        Change::KeptLastGood { id, file } => tracing::warn!(
            campaign = %id,
            file = %file.display(),
            "campaign file has errors; the last good version keeps running"
        ),
        Change::Stopped { id, file, reason } => tracing::info!(
            campaign = %id,
            file = %file.display(),
            reason = reason.describe(),
            "campaign stopped"
        ),
        Change::Error(e) => tracing::warn!("{e}"),
        Change::Fixed(file) => {
            tracing::info!(file = %file.display(), "file has no more errors");
        }
    }
}

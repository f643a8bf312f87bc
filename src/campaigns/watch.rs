//! Hot reload: the daemon watches the campaigns and templates folders and
//! keeps the campaigns in force in a [`CampaignRegistry`].
//!
//! A saved change takes effect within a second or so (file events are
//! debounced; the folders are also read every 30 s, for events that get
//! lost). Every reload checks everything, as `outreach campaigns check`
//! does, then merges (see [`merge`](merge::merge) for the rules): a file
//! that passes replaces its campaign; a broken file is reported and its
//! campaign's last good version, with the templates it was checked against,
//! keeps running; a deleted file stops its campaign; other campaigns are
//! untouched. Readers take an `Arc<Snapshot>` and never see half a reload.

mod folder;
mod merge;
mod reload;
mod scan;
mod state;

use std::path::PathBuf;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use folder::WatchOptions;
pub use merge::{Change, ReloadCause, StopReason, merge};
pub use reload::{CampaignRegistry, Outcome, ReloadKind, Reloader};
pub use scan::{Digests, Scan, is_watched, scan};
pub use state::{ActiveCampaign, Snapshot};

use crate::store::{SharedStore, StoreError};

/// Why a reload did not happen (the campaigns in force stay).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot read the stores from the database: {0}")]
    Store(#[from] StoreError),
    #[error("the reload task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Load the folders once (errors are logged), then watch them until
/// `shutdown`. The first load has happened when this returns.
pub async fn start(
    store: SharedStore,
    campaigns_dir: PathBuf,
    templates_dir: PathBuf,
    options: WatchOptions,
    shutdown: CancellationToken,
) -> (CampaignRegistry, JoinHandle<()>) {
    let watcher =
        folder::Watcher::listen(vec![campaigns_dir.clone(), templates_dir.clone()], &options);
    let (mut reloader, registry) = Reloader::new(store, campaigns_dir, templates_dir);
    if let Err(e) = reloader.reload(ReloadKind::Start).await {
        tracing::warn!(
            error = %e,
            "cannot load the campaigns; no campaign runs until a reload succeeds"
        );
    }
    let task = tokio::spawn(watcher.run(reloader, shutdown));
    (registry, task)
}

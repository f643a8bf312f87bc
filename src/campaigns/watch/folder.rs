//! Watching the folders: file events, debounced so an editor's save is one
//! reload, and a periodic rescan for the events inotify drops and the
//! network mounts that send none.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::reload::{ReloadKind, Reloader};
use super::scan::is_watched;

/// How the folders are watched.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Events closer together than this are one reload.
    pub debounce: Duration,
    /// How often the folders are read even without events.
    pub rescan_every: Duration,
    /// Listen to file events (off: rescans only).
    pub file_events: bool,
}

impl Default for WatchOptions {
    fn default() -> WatchOptions {
        WatchOptions {
            debounce: Duration::from_millis(400),
            rescan_every: Duration::from_secs(30),
            file_events: true,
        }
    }
}

/// The folders' file events, listened to from [`Watcher::listen`] on, and
/// the rescan timer.
pub struct Watcher {
    events: Option<Events>,
    rx: mpsc::UnboundedReceiver<()>,
    rescan_every: Duration,
}

impl Watcher {
    /// Start listening to `dirs` (before the first load, so that no change
    /// falls between the load and the watch).
    pub fn listen(dirs: Vec<PathBuf>, options: &WatchOptions) -> Watcher {
        let (tx, rx) = mpsc::unbounded_channel::<()>();
        let events = if options.file_events {
            Events::start(dirs, options, tx)
        } else {
            drop(tx);
            None
        };
        Watcher {
            events,
            rx,
            rescan_every: options.rescan_every,
        }
    }

    /// Reload on file events and on every rescan until `shutdown`.
    pub async fn run(self, mut reloader: Reloader, shutdown: CancellationToken) {
        let Watcher {
            mut events,
            mut rx,
            rescan_every,
        } = self;
        let mut rescan = tokio::time::interval_at(Instant::now() + rescan_every, rescan_every);
        rescan.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let kind = tokio::select! {
                () = shutdown.cancelled() => break,
                Some(()) = rx.recv() => {
                    while rx.try_recv().is_ok() {}
                    ReloadKind::Event
                }
                _ = rescan.tick() => {
                    if let Some(events) = events.as_mut() {
                        events.arm();
                    }
                    ReloadKind::Rescan
                }
            };
            if let Err(e) = reloader.reload(kind).await {
                tracing::warn!(
                    error = %e,
                    "cannot reload the campaigns; the campaigns in force keep running, retrying at the next change or rescan"
                );
            }
        }
        if let Some(events) = events {
            events.debouncer.stop_nonblocking();
        }
        tracing::debug!("campaign folder watcher stopped");
    }
}

/// Whether a folder is being watched, as last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Armed {
    Unknown,
    Yes,
    No,
}

struct Events {
    debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    dirs: Vec<(PathBuf, Armed)>,
    rescan_every: Duration,
}

impl Events {
    fn start(
        dirs: Vec<PathBuf>,
        options: &WatchOptions,
        tx: mpsc::UnboundedSender<()>,
    ) -> Option<Events> {
        let watched = dirs.clone();
        let handler = move |result: DebounceEventResult| {
            let reload = match result {
                Ok(events) => events.iter().any(|e| is_relevant(&e.event, &watched)),
                Err(errors) => {
                    for e in errors {
                        tracing::warn!(error = %e, "file watcher error; reloading");
                    }
                    true
                }
            };
            if reload {
                // The receiver is gone only when the watcher stops.
                let _ = tx.send(());
            }
        };
        match new_debouncer(options.debounce, None, handler) {
            Ok(debouncer) => {
                let mut events = Events {
                    debouncer,
                    dirs: dirs.into_iter().map(|d| (d, Armed::Unknown)).collect(),
                    rescan_every: options.rescan_every,
                };
                events.arm();
                Some(events)
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "file events are not available; the folders are read every {:?} instead",
                    options.rescan_every
                );
                None
            }
        }
    }

    /// (Re)watch each folder: one that was deleted and created again, or
    /// replaced by a symlink swap, or that did not exist yet, is watched from
    /// now on. The rescan that follows catches what happened in between.
    fn arm(&mut self) {
        for (dir, armed) in &mut self.dirs {
            if *armed == Armed::Yes {
                let _ = self.debouncer.unwatch(&*dir);
            }
            match self.debouncer.watch(&*dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    if *armed != Armed::Yes {
                        tracing::info!(folder = %dir.display(), "watching for changes");
                    }
                    *armed = Armed::Yes;
                }
                Err(e) => {
                    if *armed != Armed::No {
                        tracing::warn!(
                            folder = %dir.display(),
                            error = %e,
                            "cannot watch the folder; checking for it every {:?}",
                            self.rescan_every
                        );
                    }
                    *armed = Armed::No;
                }
            }
        }
    }
}

/// A change to a watched file, or to a watched folder itself. Opening or
/// reading a file is not a change (the reload itself reads them all).
fn is_relevant(event: &notify::Event, dirs: &[PathBuf]) -> bool {
    let change = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    change
        && event
            .paths
            .iter()
            .any(|p| is_watched(p) || dirs.iter().any(|d| d.as_path() == Path::new(p)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RenameMode};

    fn event(kind: EventKind, paths: &[&str]) -> notify::Event {
        let mut e = notify::Event::new(kind);
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        e
    }

    #[test]
    fn which_events_reload() {
        let dirs = [PathBuf::from("campaigns"), PathBuf::from("templates")];
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        let yes = [
            event(EventKind::Create(CreateKind::File), &["campaigns/a.yaml"]),
            event(rename, &["campaigns/a.yaml.tmp", "campaigns/a.yaml"]),
            event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                &["templates/a.sms.yaml"],
            ),
            event(
                EventKind::Remove(notify::event::RemoveKind::Folder),
                &["campaigns"],
            ),
        ];
        for e in &yes {
            assert!(is_relevant(e, &dirs), "{e:?}");
        }
        let no = [
            event(
                EventKind::Create(CreateKind::File),
                &["campaigns/a.yaml.tmp"],
            ),
            event(
                EventKind::Create(CreateKind::File),
                &["campaigns/.a.yaml.swp"],
            ),
            event(EventKind::Modify(ModifyKind::Any), &["templates/README.md"]),
            event(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                &["campaigns/a.yaml"],
            ),
        ];
        for e in &no {
            assert!(!is_relevant(e, &dirs), "{e:?}");
        }
    }
}

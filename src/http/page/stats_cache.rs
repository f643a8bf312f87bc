//! Campaign figures for the page, computed in the background and kept for
//! a while: `Store::campaign_stats` groups every message of every campaign,
//! which on a send log of millions of rows takes seconds, so the page never
//! waits for it once a first answer exists (a stale answer is shown while a
//! fresh one is computed).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::campaigns::stats::CampaignStats;
use crate::store::SharedStore;

/// How long figures are shown at least before a refresh is started.
pub const FRESH_FOR: Duration = Duration::from_secs(30);

/// How long figures that took `took` to compute are shown before the next
/// refresh: at least [`FRESH_FOR`], and ten times as long as they took, so
/// that on a large send log (a full count of ten million messages takes
/// seconds) the page never keeps the database counting more than a tenth of
/// the time; at most ten minutes.
pub fn fresh_for(took: Duration) -> Duration {
    (took * 10).clamp(FRESH_FOR, Duration::from_secs(600))
}

/// The figures as last computed.
#[derive(Debug, Clone)]
pub struct Figures {
    /// The clock's time when they were read.
    pub as_of: DateTime<Utc>,
    pub stats: Arc<Vec<CampaignStats>>,
    /// How long they are shown before a refresh ([`fresh_for`]).
    pub fresh_for: Duration,
}

/// What the page gets.
#[derive(Debug, Clone)]
pub enum StatsAnswer {
    Ready(Figures),
    /// The first computation has not finished within the wait.
    Pending,
    /// The last computation failed and there is nothing older.
    Failed(String),
}

#[derive(Debug, Default)]
struct State {
    figures: Option<(Instant, Figures)>,
    error: Option<String>,
    refreshing: bool,
}

/// Figures shared by the page's requests.
#[derive(Debug)]
pub struct StatsCache {
    state: Mutex<State>,
    done: watch::Sender<u64>,
}

impl Default for StatsCache {
    fn default() -> Self {
        StatsCache {
            state: Mutex::new(State::default()),
            done: watch::channel(0).0,
        }
    }
}

impl StatsCache {
    /// The figures: fresh ones at once; stale ones at once while a refresh
    /// runs; none yet: wait up to `wait` for the first.
    pub async fn get(
        self: &Arc<Self>,
        store: &SharedStore,
        now: DateTime<Utc>,
        wait: Duration,
    ) -> StatsAnswer {
        let mut done = self.done.subscribe();
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = st
                .figures
                .as_ref()
                .is_some_and(|(at, f)| at.elapsed() < f.fresh_for);
            if !fresh && !st.refreshing {
                st.refreshing = true;
                self.refresh(store.clone(), now);
            }
            if let Some((_, f)) = &st.figures {
                return StatsAnswer::Ready(f.clone());
            }
        }
        let _ = tokio::time::timeout(wait, done.changed()).await;
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match (&st.figures, &st.error) {
            (Some((_, f)), _) => StatsAnswer::Ready(f.clone()),
            (None, Some(e)) if !st.refreshing => StatsAnswer::Failed(e.clone()),
            _ => StatsAnswer::Pending,
        }
    }

    fn refresh(self: &Arc<Self>, store: SharedStore, now: DateTime<Utc>) {
        let me = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = store.campaign_stats(None).await;
            let took = started.elapsed();
            {
                let mut st = me.state.lock().unwrap_or_else(|p| p.into_inner());
                st.refreshing = false;
                match result {
                    Ok(stats) => {
                        st.error = None;
                        st.figures = Some((
                            Instant::now(),
                            Figures {
                                as_of: now,
                                stats: Arc::new(stats),
                                fresh_for: fresh_for(took),
                            },
                        ));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "campaign figures could not be read");
                        st.error = Some(e.to_string());
                    }
                }
            }
            me.done.send_modify(|n| *n += 1);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_figures_are_refreshed_less_often() {
        assert_eq!(fresh_for(Duration::from_millis(20)), FRESH_FOR);
        assert_eq!(fresh_for(Duration::from_secs(15)), Duration::from_secs(150));
        assert_eq!(
            fresh_for(Duration::from_secs(300)),
            Duration::from_secs(600)
        );
    }
}

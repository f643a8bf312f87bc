//! Prometheus metrics: one recorder per process, every metric described
//! (help text and unit), the dispatcher's per-provider counters kept as
//! handles so the hot path is an atomic add, and the gauges that are read
//! at scrape time (queue depth, campaign files, uptime).
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `outreach_messages_total` | counter | `channel`, `provider`, `status` |
//! | `outreach_send_seconds` | histogram | `provider` |
//! | `outreach_receipts_total` | counter | `provider`, `outcome` |
//! | `outreach_settlements_lost_total` | counter | |
//! | `outreach_page_retries_total` | counter | `outcome` |
//! | `outreach_queue_messages` | gauge | `state` |
//! | `outreach_campaigns_in_force` | gauge | |
//! | `outreach_campaign_file_errors` | gauge | |
//! | `outreach_uptime_seconds` | gauge | |
//! | `outreach_build_info` | gauge | `version` |
//! | `outreach_job_duration_seconds` | histogram | `job` |
//! | `outreach_job_runs_total` | counter | `job`, `outcome` |

use std::sync::OnceLock;

use metrics::{Counter, Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::campaigns::outbox::MessageStatus;
use crate::store::Channel;

/// Messages settled by the outbox worker, by the status they were left in.
pub const MESSAGES_TOTAL: &str = "outreach_messages_total";
/// Latency of provider calls (one observation per call, batch or single).
pub const SEND_SECONDS: &str = "outreach_send_seconds";
/// Delivery receipts applied.
pub const RECEIPTS_TOTAL: &str = "outreach_receipts_total";
/// Settlements refused because another worker had taken the message over.
pub const SETTLEMENTS_LOST_TOTAL: &str = "outreach_settlements_lost_total";
/// Retries asked for on the ops page.
pub const PAGE_RETRIES_TOTAL: &str = "outreach_page_retries_total";
/// Messages waiting in the outbox, by state.
pub const QUEUE_MESSAGES: &str = "outreach_queue_messages";
/// Campaigns in force.
pub const CAMPAIGNS_IN_FORCE: &str = "outreach_campaigns_in_force";
/// Current errors in campaign, template and segment files.
pub const CAMPAIGN_FILE_ERRORS: &str = "outreach_campaign_file_errors";
/// Seconds since the daemon started.
pub const UPTIME_SECONDS: &str = "outreach_uptime_seconds";
/// Always 1; the label carries the version.
pub const BUILD_INFO: &str = "outreach_build_info";
/// Duration of scheduled job runs (recorded by the scheduler).
pub const JOB_DURATION_SECONDS: &str = "outreach_job_duration_seconds";
/// Scheduled job runs by outcome (recorded by the scheduler).
pub const JOB_RUNS_TOTAL: &str = "outreach_job_runs_total";

/// Upper bounds of the provider-call histogram, in seconds.
const SEND_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the job-duration histogram, in seconds.
const JOB_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the Prometheus recorder for this process (the first call does it;
/// later calls return the same handle). Returns `None` when another
/// recorder was installed first: metrics are then not exported, and nothing
/// panics.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(SEND_SECONDS.to_owned()), SEND_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(JOB_DURATION_SECONDS.to_owned()),
                        JOB_BUCKETS,
                    )
                })
                .and_then(PrometheusBuilder::install_recorder);
            match built {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics are not exported: the recorder could not be installed");
                    None
                }
            }
        })
        .as_ref()
}

/// The installed recorder's handle, if [`install`] succeeded.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE.get().and_then(Option::as_ref)
}

/// Drop idle histogram samples now and then; the scrape also does it.
pub async fn run_upkeep(shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Some(h) = handle() {
                    h.run_upkeep();
                }
            }
        }
    }
}

fn describe() {
    metrics::describe_counter!(
        MESSAGES_TOTAL,
        Unit::Count,
        "Messages settled by the outbox worker, by channel, provider and the status they were left in (sent, failed, dead, deferred, queued when put back at shutdown)"
    );
    metrics::describe_histogram!(
        SEND_SECONDS,
        Unit::Seconds,
        "Latency of provider calls, by provider (a batch call is one observation)"
    );
    metrics::describe_counter!(
        RECEIPTS_TOTAL,
        Unit::Count,
        "Delivery receipts pushed by providers, by provider and outcome (delivered, failed, unmatched)"
    );
    metrics::describe_counter!(
        SETTLEMENTS_LOST_TOTAL,
        Unit::Count,
        "Send outcomes not recorded because the message's lease had passed to another worker"
    );
    metrics::describe_counter!(
        PAGE_RETRIES_TOTAL,
        Unit::Count,
        "Retries asked for on the ops page, by outcome"
    );
    metrics::describe_gauge!(
        QUEUE_MESSAGES,
        Unit::Count,
        "Messages in the outbox at scrape time, by state (queued, deferred, due, sending)"
    );
    metrics::describe_gauge!(
        CAMPAIGNS_IN_FORCE,
        Unit::Count,
        "Campaigns in force (loaded from their files)"
    );
    metrics::describe_gauge!(
        CAMPAIGN_FILE_ERRORS,
        Unit::Count,
        "Current errors in campaign, template and segment files"
    );
    metrics::describe_gauge!(
        UPTIME_SECONDS,
        Unit::Seconds,
        "Seconds since the HTTP server started"
    );
    metrics::describe_gauge!(
        BUILD_INFO,
        Unit::Count,
        "Always 1; the version label names the build"
    );
    metrics::describe_histogram!(
        JOB_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of scheduled job runs, by job"
    );
    metrics::describe_counter!(
        JOB_RUNS_TOTAL,
        Unit::Count,
        "Scheduled job runs, by job and outcome"
    );
}

/// One provider's counters, registered once: counting a settled message is
/// then an atomic add, with no label built per message.
#[derive(Debug)]
pub struct ProviderMeters {
    by_status: [Counter; MessageStatus::ALL.len()],
    send_seconds: Histogram,
}

impl ProviderMeters {
    /// Register the counters of `provider` on `channel` with the recorder
    /// installed now (no-ops when none is).
    pub fn new(channel: Channel, provider: &str) -> ProviderMeters {
        let by_status = MessageStatus::ALL.map(|status| {
            metrics::counter!(
                MESSAGES_TOTAL,
                "channel" => channel.as_str(),
                "provider" => provider.to_owned(),
                "status" => status.as_str()
            )
        });
        ProviderMeters {
            by_status,
            send_seconds: metrics::histogram!(SEND_SECONDS, "provider" => provider.to_owned()),
        }
    }

    /// Meters that count nothing (no recorder is installed).
    pub fn noop() -> &'static ProviderMeters {
        static NOOP: OnceLock<ProviderMeters> = OnceLock::new();
        NOOP.get_or_init(|| ProviderMeters {
            by_status: MessageStatus::ALL.map(|_| Counter::noop()),
            send_seconds: Histogram::noop(),
        })
    }

    /// Count `n` messages left in `status`.
    pub fn settled(&self, status: MessageStatus, n: u64) {
        if n > 0 {
            self.by_status[status_index(status)].increment(n);
        }
    }

    /// One provider call took `seconds`.
    pub fn call_took(&self, seconds: f64) {
        self.send_seconds.record(seconds);
    }
}

/// Per-status tallies of one batch of settlements.
#[derive(Debug, Default, Clone, Copy)]
pub struct StatusTally([u64; MessageStatus::ALL.len()]);

impl StatusTally {
    pub fn add(&mut self, status: MessageStatus) {
        self.0[status_index(status)] += 1;
    }

    /// Add the tallies to `meters`.
    pub fn record(&self, meters: &ProviderMeters) {
        for (status, n) in MessageStatus::ALL.iter().zip(self.0) {
            meters.settled(*status, n);
        }
    }

    /// Add the tallies of messages no provider took (`provider="none"`).
    pub fn record_without_provider(&self, channel: Channel) {
        for (status, n) in MessageStatus::ALL.iter().zip(self.0) {
            if n > 0 {
                metrics::counter!(
                    MESSAGES_TOTAL,
                    "channel" => channel.as_str(),
                    "provider" => "none",
                    "status" => status.as_str()
                )
                .increment(n);
            }
        }
    }
}

fn status_index(status: MessageStatus) -> usize {
    MessageStatus::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or(0)
}

/// Receipts of one push.
pub fn receipts_applied(provider: &str, delivered: u64, failed: u64, unmatched: u64) {
    for (outcome, n) in [
        ("delivered", delivered),
        ("failed", failed),
        ("unmatched", unmatched),
    ] {
        if n > 0 {
            metrics::counter!(RECEIPTS_TOTAL, "provider" => provider.to_owned(), "outcome" => outcome)
                .increment(n);
        }
    }
}

/// Settlements refused because the lease was lost.
pub fn settlements_lost(n: u64) {
    if n > 0 {
        metrics::counter!(SETTLEMENTS_LOST_TOTAL).increment(n);
    }
}

/// A retry asked for on the ops page.
pub fn page_retry(outcome: &'static str) {
    metrics::counter!(PAGE_RETRIES_TOTAL, "outcome" => outcome).increment(1);
}

/// The values read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct ScrapeGauges {
    /// `(state, messages)`; empty when the queue could not be read.
    pub queue: Vec<(&'static str, u64)>,
    pub campaigns_in_force: u64,
    pub campaign_file_errors: u64,
    pub uptime_seconds: f64,
}

/// Set the scrape-time gauges and render the text exposition format
/// (version 0.0.4). `None` when no recorder is installed here.
pub fn render(gauges: &ScrapeGauges) -> Option<String> {
    let handle = handle()?;
    for (state, n) in &gauges.queue {
        metrics::gauge!(QUEUE_MESSAGES, "state" => *state).set(*n as f64);
    }
    metrics::gauge!(CAMPAIGNS_IN_FORCE).set(gauges.campaigns_in_force as f64);
    metrics::gauge!(CAMPAIGN_FILE_ERRORS).set(gauges.campaign_file_errors as f64);
    metrics::gauge!(UPTIME_SECONDS).set(gauges.uptime_seconds);
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    handle.run_upkeep();
    Some(handle.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installing_twice_gives_the_same_recorder_and_counts_reach_the_text() {
        let a = install().expect("installed") as *const PrometheusHandle;
        let b = install().expect("installed") as *const PrometheusHandle;
        assert_eq!(a, b);
        let meters = ProviderMeters::new(Channel::Sms, "unit-test-provider");
        let mut tally = StatusTally::default();
        tally.add(MessageStatus::Sent);
        tally.add(MessageStatus::Sent);
        tally.add(MessageStatus::Dead);
        tally.record(&meters);
        meters.call_took(0.02);
        let text = render(&ScrapeGauges {
            queue: vec![("queued", 3)],
            campaigns_in_force: 2,
            campaign_file_errors: 1,
            uptime_seconds: 5.0,
        })
        .unwrap();
        assert!(
            text.contains(
                r#"outreach_messages_total{channel="sms",provider="unit-test-provider",status="sent"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"outreach_messages_total{channel="sms",provider="unit-test-provider",status="dead"} 1"#
            ),
            "{text}"
        );
        // A true histogram (buckets), not a summary.
        assert!(
            text.contains(
                r#"outreach_send_seconds_bucket{provider="unit-test-provider",le="0.025"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"outreach_queue_messages{state="queued"} 3"#),
            "{text}"
        );
        assert!(text.contains("outreach_campaign_file_errors 1"), "{text}");
        assert!(text.contains("# HELP outreach_messages_total"), "{text}");
        assert!(
            text.contains("# TYPE outreach_send_seconds histogram"),
            "{text}"
        );
    }

    #[test]
    fn every_status_has_a_counter_slot() {
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::ALL[status_index(s)], s);
        }
    }
}

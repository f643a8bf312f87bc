//! The outbox worker: claims due messages under a lease, sends them through
//! their channel's providers within each provider's concurrency and rate
//! limits, and settles every outcome in the send log. Claims and
//! settlements are short transactions; none is open during a provider call.
//! A worker that dies leaves its messages leased; when the lease runs out
//! another claim takes them again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::campaigns::SendWindow;
use crate::campaigns::outbox::MessageStatus;
use crate::campaigns::watch::CampaignRegistry;
use crate::clock::SharedClock;
use crate::dispatch::claim::{Claim, ClaimedMessage, Settlement};
use crate::dispatch::outcome::{ChainPosition, Context, Policy, reason};
use crate::dispatch::provider::Outgoing;
use crate::dispatch::routes::{Routes, Slot};
use crate::dispatch::settings::DispatchSettings;
use crate::domain::{Email, Phone, WeChatOpenId};
use crate::metrics::StatusTally;
use crate::store::{Channel, SharedStore, StoreError};
use crate::templates::Rendered;
use crate::unsubscribe::LinkSigner;

/// Settlements written per transaction.
const SETTLE_BATCH: usize = 256;

/// Why the worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("the send log could not be read or written: {0}")]
    Store(#[from] StoreError),
    #[error("a send task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The send window of each campaign's messages.
pub trait WindowLookup: Send + Sync + std::fmt::Debug {
    fn window(&self, campaign_id: &str) -> SendWindow;
}

/// The same window for every campaign.
#[derive(Debug, Clone, Copy)]
pub struct FixedWindow(pub SendWindow);

impl WindowLookup for FixedWindow {
    fn window(&self, _campaign_id: &str) -> SendWindow {
        self.0
    }
}

/// Each campaign's own window from the campaigns in force, else the default.
#[derive(Debug, Clone)]
pub struct CampaignWindows {
    pub registry: CampaignRegistry,
    pub default: SendWindow,
}

impl WindowLookup for CampaignWindows {
    fn window(&self, campaign_id: &str) -> SendWindow {
        self.registry
            .snapshot()
            .campaign(campaign_id)
            .and_then(|c| c.campaign.send_window)
            .unwrap_or(self.default)
    }
}

/// What a worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DispatchReport {
    pub claimed: u64,
    pub sent: u64,
    pub failed: u64,
    pub dead: u64,
    /// Waiting for a retry after a transient failure.
    pub retrying: u64,
    pub rate_limited: u64,
    /// Sent without a known outcome: waiting for a receipt.
    pub outcome_unknown: u64,
    /// Handed to the channel's next provider.
    pub failed_over: u64,
    /// Claimed outside their send window: put back until it opens.
    pub outside_window: u64,
    /// Put back unsent at shutdown.
    pub released: u64,
    /// Settlements refused because the lease had passed to another claim.
    pub lease_lost: u64,
}

impl DispatchReport {
    fn count(&mut self, s: &Settlement) {
        let reason = s.reason.as_deref();
        match s.status {
            MessageStatus::Sent => self.sent += 1,
            MessageStatus::Failed => self.failed += 1,
            MessageStatus::Dead => self.dead += 1,
            MessageStatus::Queued => self.released += 1,
            MessageStatus::Deferred => match reason {
                Some(reason::RATE_LIMITED) => self.rate_limited += 1,
                Some(reason::OUTCOME_UNKNOWN) => self.outcome_unknown += 1,
                Some(reason::FAILOVER) => self.failed_over += 1,
                Some(reason::SEND_WINDOW) => self.outside_window += 1,
                _ => self.retrying += 1,
            },
            _ => {}
        }
    }
}

/// Everything the worker needs.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    store: SharedStore,
    clock: SharedClock,
    routes: Arc<Routes>,
    windows: Arc<dyn WindowLookup>,
    links: Option<Arc<LinkSigner>>,
    settings: DispatchSettings,
    policy: Policy,
    default_tz: Tz,
}

impl Dispatcher {
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        routes: Arc<Routes>,
        windows: Arc<dyn WindowLookup>,
        settings: DispatchSettings,
        default_tz: Tz,
    ) -> Dispatcher {
        let policy = Policy {
            max_attempts: settings.max_attempts.max(1),
            backoff_base: Duration::from_secs(settings.backoff_base_seconds),
            backoff_max: Duration::from_secs(settings.backoff_max_seconds),
            rate_pause: Duration::from_secs(60),
            reconcile_wait: Duration::from_secs(settings.reconcile_seconds),
        };
        Dispatcher {
            store,
            clock,
            routes,
            windows,
            links: None,
            settings,
            policy,
            default_tz,
        }
    }

    /// Sign e-mail unsubscribe links with `links`.
    pub fn with_links(mut self, links: Arc<LinkSigner>) -> Dispatcher {
        self.links = Some(links);
        self
    }

    /// Send everything due now, then return (`run --once`, tests).
    pub async fn drain(&self) -> Result<DispatchReport, DispatchError> {
        self.pump(&CancellationToken::new(), true).await
    }

    /// Send as messages come due until `shutdown`; then stop claiming, let
    /// the sends under way finish (those still waiting for a connection are
    /// put back), settle them and return.
    ///
    /// A database error does not stop the worker: it is logged and the
    /// worker starts again after a pause; messages it had claimed come back
    /// when their lease runs out.
    pub async fn run(&self, shutdown: CancellationToken) -> DispatchReport {
        loop {
            match self.pump(&shutdown, false).await {
                Ok(report) => return report,
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        "dispatch interrupted; resuming in 5 s (messages it held come back when their lease runs out)"
                    );
                    tokio::select! {
                        _ = shutdown.cancelled() => return DispatchReport::default(),
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
            }
        }
    }

    async fn pump(
        &self,
        shutdown: &CancellationToken,
        stop_when_idle: bool,
    ) -> Result<DispatchReport, DispatchError> {
        let mut report = DispatchReport::default();
        let mut tasks: JoinSet<Vec<Settlement>> = JoinSet::new();
        let mut pending: Vec<Settlement> = Vec::new();
        let batch = self.settings.claim_batch.max(1);
        let high_water = batch * 2;
        let mut in_flight = 0usize;
        let mut idle = false;
        // Settlements since the last claim: they may have made messages due
        // at once (a failover), so an empty claim before them proves nothing.
        let mut settled_since_claim = false;
        // Sent something since the worker last went idle.
        let mut worked = false;
        loop {
            if !shutdown.is_cancelled() && !idle && in_flight < high_water {
                let token = uuid::Uuid::new_v4().to_string();
                let now = self.clock.now();
                let claimed = self
                    .store
                    .claim_messages(&Claim {
                        now,
                        lease_until: now + self.settings.lease(),
                        limit: batch,
                        token: token.clone(),
                    })
                    .await?;
                report.claimed += claimed.len() as u64;
                idle = claimed.is_empty();
                worked |= !idle;
                settled_since_claim = false;
                for job in self.prepare(claimed, &token, &mut pending) {
                    in_flight += job.items.len();
                    let shutdown = shutdown.clone();
                    tasks.spawn(job.run(shutdown));
                }
                if pending.len() >= SETTLE_BATCH {
                    self.flush(&mut pending, &mut report).await?;
                }
                continue;
            }
            if tasks.is_empty() {
                settled_since_claim |= !pending.is_empty();
                self.flush(&mut pending, &mut report).await?;
                if idle && settled_since_claim {
                    idle = false;
                    continue;
                }
                if shutdown.is_cancelled() || (stop_when_idle && idle) {
                    return Ok(report);
                }
                if idle {
                    if std::mem::take(&mut worked) {
                        crate::memory::release_freed();
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_millis(self.settings.idle_poll_ms)) => {}
                    }
                    idle = false;
                }
                continue;
            }
            if let Some(done) = tasks.join_next().await {
                let settled = done?;
                in_flight = in_flight.saturating_sub(settled.len());
                pending.extend(settled);
                if pending.len() >= SETTLE_BATCH {
                    settled_since_claim = true;
                    self.flush(&mut pending, &mut report).await?;
                }
            }
        }
    }

    async fn flush(
        &self,
        pending: &mut Vec<Settlement>,
        report: &mut DispatchReport,
    ) -> Result<(), DispatchError> {
        if pending.is_empty() {
            return Ok(());
        }
        let counts = self.store.settle_messages(pending).await?;
        report.lease_lost += counts.lease_lost;
        crate::metrics::settlements_lost(counts.lease_lost);
        if counts.lease_lost > 0 {
            tracing::warn!(
                lost = counts.lease_lost,
                "some messages were taken over by another worker after their lease ran out; their outcome here was not recorded"
            );
        }
        for s in pending.iter() {
            report.count(s);
        }
        pending.clear();
        Ok(())
    }

    /// Turn claimed messages into send jobs (one per provider call). Those
    /// that cannot go now are settled into `pending` at once.
    fn prepare(
        &self,
        claimed: Vec<ClaimedMessage>,
        token: &str,
        pending: &mut Vec<Settlement>,
    ) -> Vec<Job> {
        let now = self.clock.now();
        let mut groups: BTreeMap<(Channel, usize), Vec<Item>> = BTreeMap::new();
        // Messages settled before any provider call, for the metrics: by
        // the slot in charge, or by channel when it has no provider.
        let mut early: BTreeMap<(Channel, Option<usize>), StatusTally> = BTreeMap::new();
        for m in claimed {
            let tz = m
                .timezone
                .as_deref()
                .and_then(|z| z.parse::<Tz>().ok())
                .unwrap_or(self.default_tz);
            let window = self.windows.window(&m.campaign_id);
            let chain = self.routes.chain(m.channel);
            let index = m
                .provider
                .as_deref()
                .and_then(|p| chain.iter().position(|s| s.name() == p))
                .unwrap_or(0);
            let ctx = |m| self.context(m, token, now, tz, window, chain, index);
            let slot_key = (m.channel, (index < chain.len()).then_some(index));
            if let Some(open) = window.next_open(tz, now) {
                let detail = format!(
                    "claimed outside the send window {} ({}); waits until {}",
                    window.describe(),
                    tz.name(),
                    open.with_timezone(&tz).format("%Y-%m-%d %H:%M")
                );
                let s = ctx(&m).wait(reason::SEND_WINDOW, open, detail);
                early.entry(slot_key).or_default().add(s.status);
                pending.push(s);
                continue;
            }
            let rendered = match m.payload.as_deref().map(serde_json::from_str::<Rendered>) {
                Some(Ok(r)) if r.channel() == m.channel => r,
                other => {
                    let why = match other {
                        None => "the message has no rendered content".to_owned(),
                        Some(Err(e)) => format!("the rendered content cannot be read: {e}"),
                        Some(Ok(r)) => format!(
                            "the rendered content is for {}, the message is {}",
                            r.channel(),
                            m.channel
                        ),
                    };
                    let s = ctx(&m).fail(reason::BAD_PAYLOAD, why);
                    early.entry(slot_key).or_default().add(s.status);
                    pending.push(s);
                    continue;
                }
            };
            if chain.is_empty() {
                let at = now + chrono::Duration::minutes(5);
                let detail = format!("no provider is set up for {}", m.channel);
                let s = ctx(&m).wait(reason::NO_PROVIDER, at, detail);
                early.entry(slot_key).or_default().add(s.status);
                pending.push(s);
                continue;
            }
            let unsubscribe_url = match m.channel {
                Channel::Email => self.links.as_ref().map(|l| l.url(m.channel, &m.address)),
                _ => None,
            };
            let outgoing = Outgoing {
                message_id: m.id,
                dedupe_key: m.dedupe_key.clone(),
                address: m.address.clone(),
                sign_name: m.sms_signature.clone(),
                store_name: m.store_name.clone(),
                unsubscribe_url,
                rendered,
                attempt: m.attempts + 1,
            };
            groups.entry((m.channel, index)).or_default().push(Item {
                message: m,
                outgoing,
                tz,
                window,
            });
        }
        for ((channel, index), tally) in early {
            match index {
                Some(i) => tally.record(self.routes.chain(channel)[i].meters()),
                None => tally.record_without_provider(channel),
            }
        }
        let mut jobs = Vec::new();
        for ((channel, index), items) in groups {
            let chain = self.routes.chain(channel);
            let names: Vec<String> = chain.iter().map(|s| s.name().to_owned()).collect();
            let slot = chain[index].clone();
            let size = slot.provider.max_batch().max(1);
            let mut items = items.into_iter().peekable();
            while items.peek().is_some() {
                let chunk: Vec<Item> = items.by_ref().take(size).collect();
                jobs.push(Job {
                    slot: slot.clone(),
                    chain: names.clone(),
                    index,
                    items: chunk,
                    token: token.to_owned(),
                    policy: self.policy,
                    clock: self.clock.clone(),
                });
            }
        }
        jobs
    }
}

impl Dispatcher {
    #[allow(clippy::too_many_arguments)]
    fn context<'a>(
        &'a self,
        message: &'a ClaimedMessage,
        token: &'a str,
        now: chrono::DateTime<chrono::Utc>,
        tz: Tz,
        window: SendWindow,
        chain: &'a [Arc<Slot>],
        index: usize,
    ) -> Context<'a> {
        Context {
            message,
            token,
            now,
            tz,
            window,
            policy: &self.policy,
            chain: ChainPosition::at(&chain.iter().map(|s| s.name()).collect::<Vec<_>>(), index),
            jitter: 0.0,
        }
    }
}

/// One message ready for its provider.
struct Item {
    message: ClaimedMessage,
    outgoing: Outgoing,
    tz: Tz,
    window: SendWindow,
}

/// One provider call (one message, or a batch).
struct Job {
    slot: Arc<Slot>,
    chain: Vec<String>,
    index: usize,
    items: Vec<Item>,
    token: String,
    policy: Policy,
    clock: SharedClock,
}

impl Job {
    async fn run(self, shutdown: CancellationToken) -> Vec<Settlement> {
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => None,
            p = self.slot.ready(self.items.len()) => p,
        };
        let Some(permit) = permit else {
            self.slot
                .meters()
                .settled(MessageStatus::Queued, self.items.len() as u64);
            return self.items.iter().map(|i| self.ctx(i).release()).collect();
        };
        let started = std::time::Instant::now();
        let results = if let [one] = self.items.as_slice() {
            let span = delivery_span(&one.message, self.slot.name());
            vec![
                self.slot
                    .provider
                    .send(&one.outgoing)
                    .instrument(span)
                    .await,
            ]
        } else {
            let outs: Vec<Outgoing> = self.items.iter().map(|i| i.outgoing.clone()).collect();
            let span = tracing::info_span!(
                "delivery_batch",
                provider = self.slot.name(),
                size = outs.len()
            );
            self.slot.provider.send_batch(&outs).instrument(span).await
        };
        drop(permit);
        let meters = self.slot.meters();
        meters.call_took(started.elapsed().as_secs_f64());
        let mut tally = StatusTally::default();
        let settled = self
            .items
            .iter()
            .zip(results)
            .map(|(item, result)| {
                let mut ctx = self.ctx(item);
                ctx.now = self.clock.now();
                ctx.jitter = rand::random::<f64>();
                let s = ctx.settle(&result);
                log_outcome(&item.message, self.slot.name(), &s);
                tally.add(s.status);
                s
            })
            .collect();
        tally.record(meters);
        settled
    }

    fn ctx<'a>(&'a self, item: &'a Item) -> Context<'a> {
        Context {
            message: &item.message,
            token: &self.token,
            now: self.clock.now(),
            tz: item.tz,
            window: item.window,
            policy: &self.policy,
            chain: ChainPosition::at(
                &self.chain.iter().map(String::as_str).collect::<Vec<_>>(),
                self.index,
            ),
            jitter: 0.0,
        }
    }
}

fn masked(m: &ClaimedMessage) -> String {
    let a = m.address.clone();
    match m.channel {
        Channel::Sms => Phone::from_trusted(a).masked(),
        Channel::Email => Email::from_trusted(a).masked(),
        Channel::Wechat => WeChatOpenId::from_trusted(a).masked(),
    }
}

fn delivery_span(m: &ClaimedMessage, provider: &str) -> tracing::Span {
    tracing::info_span!(
        "delivery",
        message_id = m.id,
        campaign = %m.campaign_id,
        channel = %m.channel,
        provider,
        to = %masked(m),
        attempt = m.attempts + 1,
    )
}

fn log_outcome(m: &ClaimedMessage, provider: &str, s: &Settlement) {
    let status = s.status.as_str();
    let code = s.attempt.as_ref().and_then(|a| a.provider_code.as_deref());
    match s.status {
        MessageStatus::Sent => tracing::debug!(message_id = m.id, provider, status, "sent"),
        MessageStatus::Failed | MessageStatus::Dead => tracing::warn!(
            message_id = m.id,
            campaign = %m.campaign_id,
            provider,
            to = %masked(m),
            status,
            code,
            reason = s.reason.as_deref(),
            "not sent"
        ),
        _ => tracing::info!(
            message_id = m.id,
            provider,
            status,
            code,
            reason = s.reason.as_deref(),
            next = ?s.next_attempt_at,
            "will try again"
        ),
    }
}

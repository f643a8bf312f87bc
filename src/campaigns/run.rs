//! One run of a campaign at a time `now`: find who is due (the store does it
//! set-based), decide for each candidate the channel, coupon, rendered
//! message and status, and write it all exactly once. A preview does the same
//! without writing.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use tracing::Instrument;

use super::code::new_code;
use super::outbox::{
    AudienceQuery, BirthdayDue, Blocked, BroadcastDue, Candidate, CandidateQuery, CandidateSink,
    LapseRange, MemberTest, MessageStatus, NewCoupon, PlannedMessage, Preemption, Reason, Rival,
    RunRecord, Selector, WriteTotals,
};
use super::spec::{Campaign, SegmentRef, SendWindow, Trigger};
use crate::domain::{Birthday, Email, Money, Phone, StoreInfo, WeChatOpenId};
use crate::segments::plan::{StoreDay, birthday_calendar, start_of_day};
use crate::segments::rules::SegmentRules;
use crate::store::{Channel, Store, StoreError};
use crate::templates::{
    CampaignVars, CouponVars, CustomerVars, RenderContext, Rendered, ShopVars, TemplateSet,
    date_text, surname_of, yuan_text,
};
use crate::unsubscribe::LinkSigner;

/// How far back a run looks for birthdays and broadcasts it has missed.
pub const MAX_LOOKBACK_DAYS: i64 = 30;

/// The rules every campaign follows (from `[campaigns]` in the config).
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub default_tz: Tz,
    pub default_window: SendWindow,
    /// At most `.0` marketing messages per customer per `.1` days.
    pub cap: Option<(u32, u32)>,
    pub batch_size: usize,
}

/// Write the plan, or only look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Write,
    /// Keep up to `samples` rendered messages; with `customer`, only theirs.
    Preview {
        samples: usize,
        customer: Option<String>,
    },
}

/// One planned message as a preview shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub customer_id: String,
    pub occurrence: String,
    pub channel: Option<Channel>,
    /// Masked.
    pub address: Option<String>,
    pub status: MessageStatus,
    pub reason: Option<Reason>,
    pub detail: Option<String>,
    pub coupon_code: Option<String>,
    pub rendered: Option<Rendered>,
}

/// What a run did (or, previewed, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub campaign_id: String,
    pub now: Option<DateTime<Utc>>,
    pub trigger: String,
    /// Customers due and in the audience, not yet messaged for the occurrence.
    pub candidates: u64,
    pub queued: u64,
    pub deferred: u64,
    /// Suppressed messages by reason.
    pub suppressed: BTreeMap<&'static str, u64>,
    pub coupons: u64,
    /// Rows written (0 in a preview).
    pub written: u64,
    /// Planned rows another run had already written.
    pub already: u64,
    /// Lower-priority messages of the same day this run replaced under the
    /// frequency cap (suppressed as `capped`, their coupons voided).
    pub preempted: u64,
    pub samples: Vec<Sample>,
    pub seconds: f64,
}

impl RunReport {
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed.values().sum()
    }
}

/// Why a run could not happen.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("campaign {0} is disabled (enabled: false in its file)")]
    Disabled(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the planner knows of each store key ('' = customers without a store).
#[derive(Debug, Clone)]
struct StoreFacts {
    tz: Tz,
    name: String,
    signature: String,
}

fn store_facts(stores: &[StoreInfo], default_tz: Tz) -> HashMap<String, StoreFacts> {
    let mut m: HashMap<String, StoreFacts> = stores
        .iter()
        .map(|s| {
            (
                s.code.as_str().to_owned(),
                StoreFacts {
                    tz: s.timezone,
                    name: s.name.clone(),
                    signature: s.sms_signature.clone(),
                },
            )
        })
        .collect();
    m.insert(
        String::new(),
        StoreFacts {
            tz: default_tz,
            name: String::new(),
            signature: String::new(),
        },
    );
    m
}

fn member_test(r: &SegmentRef) -> MemberTest {
    match r {
        SegmentRef::Stage(s) => MemberTest::Stage((*s).to_owned()),
        SegmentRef::Tier(t) => MemberTest::Tier((*t).to_owned()),
        SegmentRef::Custom(c) => MemberTest::Custom(c.clone()),
    }
}

/// The instant a local date-time happens in `tz` (the first valid minute
/// after it, in a DST gap).
pub(crate) fn local_instant(tz: Tz, naive: chrono::NaiveDateTime) -> DateTime<Utc> {
    let mut probe = naive;
    for _ in 0..180 {
        if let Some(dt) = tz.from_local_datetime(&probe).earliest() {
            return dt.with_timezone(&Utc);
        }
        probe += Duration::minutes(1);
    }
    Utc.from_utc_datetime(&naive)
}

/// The candidate query of a campaign run at `now`.
fn candidate_query(
    campaign: &Campaign,
    facts: &HashMap<String, StoreFacts>,
    settings: &RunSettings,
    now: DateTime<Utc>,
    last_run: Option<DateTime<Utc>>,
) -> CandidateQuery {
    let rules = SegmentRules::default();
    let mut keys: Vec<&String> = facts.keys().collect();
    keys.sort();
    let days: Vec<StoreDay> = keys
        .iter()
        .map(|k| StoreDay::at(k, facts[*k].tz, now, &rules))
        .collect();
    let birthdays = birthday_calendar(days.iter().map(|d| d.today));
    let zone = |key: &str| campaign.timezone.unwrap_or(facts[key].tz);
    // The first local day a run looks at: the day of the last run (ticks on
    // it may have been missed since), at most MAX_LOOKBACK_DAYS back.
    let first_day = |tz: Tz| -> NaiveDate {
        let today = now.with_timezone(&tz).date_naive();
        match last_run {
            Some(t) => t
                .with_timezone(&tz)
                .date_naive()
                .max(today - Duration::days(MAX_LOOKBACK_DAYS))
                .min(today),
            None => today,
        }
    };
    // When a day's message was due: the campaign's first tick that day.
    let due_on = |tz: Tz, day: NaiveDate| -> DateTime<Utc> {
        let start = start_of_day(tz, day);
        let next_day = start_of_day(tz, day + Duration::days(1));
        campaign
            .schedule
            .as_ref()
            .and_then(|s| s.next_after(tz, start - Duration::milliseconds(1)))
            .filter(|t| *t < next_day)
            .unwrap_or(start)
            .min(now)
    };
    let selector = match &campaign.trigger {
        Trigger::Birthday { days_before } => {
            let mut rows = Vec::new();
            for key in &keys {
                let tz = zone(key);
                let today = now.with_timezone(&tz).date_naive();
                let mut send_day = first_day(tz);
                while send_day <= today {
                    let celebrated = send_day + Duration::days(i64::from(*days_before));
                    for month in 1..=12u8 {
                        for day in 1..=31u8 {
                            let Ok(b) = Birthday::new(month, day, None) else {
                                continue;
                            };
                            if b.celebrated_on(celebrated.year()) == celebrated {
                                rows.push(BirthdayDue {
                                    store_key: (*key).clone(),
                                    month,
                                    day,
                                    occurrence: format!("birthday:{}", celebrated.year()),
                                    due_at: due_on(tz, send_day),
                                });
                            }
                        }
                    }
                    send_day += Duration::days(1);
                }
            }
            Selector::Birthday(rows)
        }
        Trigger::Lapsed {
            inactive_days,
            max_inactive_days,
        } => Selector::Lapsed(
            days.iter()
                .map(|d| LapseRange {
                    store_key: d.store_key.clone(),
                    last_day_max: d.today - i64::from(*inactive_days),
                    last_day_min: max_inactive_days.map(|m| d.today - i64::from(m)),
                })
                .collect(),
        ),
        Trigger::SegmentEntered { segment } => Selector::SegmentEntered {
            key: segment.transition_key(),
            member: member_test(segment),
            since: last_run
                .unwrap_or(now - campaign.catch_up)
                .max(now - Duration::days(MAX_LOOKBACK_DAYS)),
            until: now,
        },
        Trigger::Broadcast { at, absolute } => Selector::Broadcast(
            keys.iter()
                .filter_map(|key| {
                    let tz = zone(key);
                    let (due, local) = match at {
                        Some(at) => (absolute.unwrap_or_else(|| local_instant(tz, *at)), *at),
                        None => {
                            // A recurring broadcast: the latest tick, when it
                            // is new since the last run (or, for a campaign
                            // that never ran, within its catch-up).
                            let tick = campaign.schedule.as_ref()?.last_at_or_before(tz, now)?;
                            let fresh = match last_run {
                                Some(l) => tick > l,
                                None => now - tick <= campaign.catch_up,
                            };
                            if !fresh {
                                return None;
                            }
                            (tick, tick.with_timezone(&tz).naive_local())
                        }
                    };
                    (due <= now && now - due <= Duration::days(MAX_LOOKBACK_DAYS)).then(|| {
                        BroadcastDue {
                            store_key: (*key).clone(),
                            occurrence: format!("broadcast:{}", local.format("%Y-%m-%dT%H:%M")),
                            due_at: due,
                        }
                    })
                })
                .collect(),
        ),
    };
    CandidateQuery {
        campaign_id: campaign.id.as_str().to_owned(),
        now,
        days,
        birthdays,
        selector,
        audience: AudienceQuery {
            stores: campaign
                .audience
                .stores
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            include: campaign.audience.segments.iter().map(member_test).collect(),
            exclude: campaign
                .audience
                .exclude_segments
                .iter()
                .map(member_test)
                .collect(),
            filter: campaign.audience.filter.clone(),
        },
        cap_since: match settings.cap {
            Some((_, days)) => now - Duration::days(i64::from(days)),
            None => now,
        },
        batch_size: settings.batch_size,
        priority: campaign.priority,
    }
}

/// Decides each candidate's message.
struct Planner<'a> {
    campaign: &'a Campaign,
    templates: &'a TemplateSet,
    facts: HashMap<String, StoreFacts>,
    settings: &'a RunSettings,
    links: &'a LinkSigner,
    now: DateTime<Utc>,
    mode: &'a Mode,
    report: RunReport,
}

/// One channel's verdict for a customer.
enum Verdict {
    Use(String),
    Not(Reason),
}

impl Planner<'_> {
    fn channel_verdict(&self, c: &Candidate, ch: Channel) -> Verdict {
        let (address, consent, blocked) = match ch {
            Channel::Sms => (&c.phone, c.sms_opt_in, c.sms_blocked),
            Channel::Email => (&c.email, c.email_opt_in, c.email_blocked),
            Channel::Wechat => (&c.wechat_openid, c.wechat_opt_in, c.wechat_blocked),
        };
        let Some(address) = address.as_deref().filter(|a| !a.is_empty()) else {
            return Verdict::Not(Reason::NoAddress);
        };
        let valid = match ch {
            Channel::Sms => Phone::parse(address).is_ok(),
            Channel::Email => Email::parse(address).is_ok(),
            Channel::Wechat => WeChatOpenId::parse(address).is_ok(),
        };
        if !valid {
            return Verdict::Not(Reason::InvalidAddress);
        }
        match blocked {
            Blocked::No => {}
            Blocked::OptedOut => return Verdict::Not(Reason::OptedOut),
            Blocked::Undeliverable => return Verdict::Not(Reason::Undeliverable),
        }
        if consent != Some(true) {
            return Verdict::Not(Reason::NoConsent);
        }
        Verdict::Use(address.to_owned())
    }

    fn suppressed(
        &self,
        c: &Candidate,
        channel: Option<Channel>,
        address: Option<String>,
        reason: Reason,
        detail: String,
    ) -> PlannedMessage {
        PlannedMessage {
            customer_id: c.customer_id.clone(),
            occurrence: c.occurrence.clone(),
            channel,
            address,
            status: MessageStatus::Suppressed,
            reason: Some(reason),
            detail: Some(detail),
            next_attempt_at: None,
            payload: None,
            coupon: None,
            preempts: None,
        }
    }

    fn context(
        &self,
        c: &Candidate,
        coupon: Option<&NewCoupon>,
        ch: Channel,
        address: &str,
    ) -> RenderContext {
        let facts = &self.facts[&c.store_key];
        let spec = self.campaign.coupon.as_ref();
        RenderContext {
            customer: CustomerVars {
                id: c.customer_id.clone(),
                name: c.name.clone().unwrap_or_default(),
                surname: surname_of(c.name.as_deref().unwrap_or_default()),
                store: c.store_key.clone(),
                birthday: match (c.birth_month, c.birth_day) {
                    (Some(m), Some(d)) => format!("{m:02}-{d:02}"),
                    _ => String::new(),
                },
                order_count: u64::try_from(c.order_count).unwrap_or(0),
                total_spent: yuan_text(Money::from_fen(c.total_spent_fen)),
                lifecycle: c.lifecycle.clone().unwrap_or_default(),
                value_tier: c.value_tier.clone().unwrap_or_default(),
                days_to_birthday: c.days_to_birthday,
                tags: c
                    .tags
                    .split(';')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            },
            coupon: match (coupon, spec) {
                (Some(k), Some(s)) => {
                    let last = (k.expires_at - Duration::milliseconds(1))
                        .with_timezone(&facts.tz)
                        .date_naive();
                    Some(CouponVars {
                        code: k.code.clone(),
                        kind: s.kind.as_str().to_owned(),
                        value: s.display_value(),
                        value_text: s.value_text(),
                        item: s.item.clone().unwrap_or_default(),
                        min_spend: yuan_text(Money::from_fen(s.min_spend_fen)),
                        expires_on: last.format("%Y-%m-%d").to_string(),
                        expires_on_text: date_text(last),
                        valid_days: s.valid_days,
                    })
                }
                _ => None,
            },
            shop: ShopVars {
                code: c.store_key.clone(),
                name: c.store_name.clone().unwrap_or_else(|| facts.name.clone()),
                signature: c
                    .sms_signature
                    .clone()
                    .unwrap_or_else(|| facts.signature.clone()),
            },
            campaign: CampaignVars {
                id: self.campaign.id.as_str().to_owned(),
                name: self.campaign.name.clone(),
            },
            unsubscribe_url: self.links.url(ch, address),
        }
    }

    /// Under a full cap, the customer's message this campaign may take the
    /// place of: one of a lower-priority campaign, created the same local
    /// day, not yet sent, and whose removal makes room.
    fn replaceable<'c>(&self, c: &'c Candidate, max: i64, tz: Tz) -> Option<&'c Rival> {
        let rival = c.rival.as_ref()?;
        let today = self.now.with_timezone(&tz).date_naive();
        (c.recent_messages == max
            && rival.priority < self.campaign.priority
            && rival.created_at.with_timezone(&tz).date_naive() == today)
            .then_some(rival)
    }

    fn decide(&self, c: &Candidate) -> (PlannedMessage, Option<Rendered>) {
        let facts = &self.facts[&c.store_key];
        let tz = self.campaign.timezone.unwrap_or(facts.tz);
        let late = self.now - c.due_at;
        if late > self.campaign.catch_up {
            let detail = format!(
                "due {} ({} h earlier); catch_up allows {} h",
                c.due_at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"),
                late.num_hours(),
                self.campaign.catch_up.num_hours()
            );
            return (
                self.suppressed(c, None, None, Reason::TooLate, detail),
                None,
            );
        }
        let mut refusals = Vec::new();
        let mut chosen = None;
        for ch in &self.campaign.channels {
            match self.channel_verdict(c, *ch) {
                Verdict::Use(address) => {
                    chosen = Some((*ch, address));
                    break;
                }
                Verdict::Not(r) => refusals.push((*ch, r)),
            }
        }
        let Some((ch, address)) = chosen else {
            // The most telling reason: an explicit "no" beats a missing address.
            let rank = |r: Reason| match r {
                Reason::OptedOut => 0,
                Reason::NoConsent => 1,
                Reason::InvalidAddress => 2,
                _ => 3,
            };
            let reason = refusals
                .iter()
                .map(|(_, r)| *r)
                .min_by_key(|r| rank(*r))
                .unwrap_or(Reason::NoAddress);
            let detail = refusals
                .iter()
                .map(|(ch, r)| format!("{ch}: {}", r.as_str()))
                .collect::<Vec<_>>()
                .join("; ");
            return (self.suppressed(c, None, None, reason, detail), None);
        };
        let mut preempts = None;
        if let Some((max, days)) = self.settings.cap
            && c.recent_messages >= i64::from(max)
        {
            let detail = format!(
                "{} marketing message(s) in the last {days} day(s); the cap is {max}",
                c.recent_messages
            );
            match self.replaceable(c, i64::from(max), facts.tz) {
                Some(rival) => {
                    preempts = Some(Preemption {
                        message_id: rival.message_id,
                        detail: format!(
                            "replaced by campaign {} (priority {} over {}): {detail}",
                            self.campaign.id, self.campaign.priority, rival.priority
                        ),
                        fallback_detail: format!(
                            "{detail}; the message of campaign {} it would have replaced had already left",
                            rival.campaign_id
                        ),
                    });
                }
                None => {
                    return (
                        self.suppressed(c, Some(ch), Some(address), Reason::Capped, detail),
                        None,
                    );
                }
            }
        }
        let coupon = self.campaign.coupon.as_ref().map(|s| {
            let issued = self.now.with_timezone(&facts.tz).date_naive();
            NewCoupon {
                code: new_code(&s.code_prefix),
                kind: s.kind.as_str(),
                value: s.value,
                item: s.item.clone(),
                min_spend_fen: s.min_spend_fen,
                // Valid through the end of the last local day.
                expires_at: start_of_day(
                    facts.tz,
                    issued + Duration::days(i64::from(s.valid_days)),
                ),
            }
        });
        let ctx = self.context(c, coupon.as_ref(), ch, &address);
        let rendered = match self.templates.render(&self.campaign.template, ch, &ctx) {
            Ok(r) => r,
            Err(e) => {
                return (
                    self.suppressed(
                        c,
                        Some(ch),
                        Some(address),
                        Reason::TemplateError,
                        e.to_string(),
                    ),
                    None,
                );
            }
        };
        let window = self
            .campaign
            .send_window
            .unwrap_or(self.settings.default_window);
        let (status, reason, next, detail) = match window.next_open(tz, self.now) {
            None => (MessageStatus::Queued, None, self.now, None),
            Some(open) => (
                MessageStatus::Deferred,
                Some(Reason::SendWindow),
                open,
                Some(format!(
                    "outside the send window {} ({}); waits until {}",
                    window.describe(),
                    tz.name(),
                    open.with_timezone(&tz).format("%Y-%m-%d %H:%M")
                )),
            ),
        };
        let payload = serde_json::to_string(&rendered).ok();
        (
            PlannedMessage {
                customer_id: c.customer_id.clone(),
                occurrence: c.occurrence.clone(),
                channel: Some(ch),
                address: Some(address),
                status,
                reason,
                detail,
                next_attempt_at: Some(next),
                payload,
                coupon,
                preempts,
            },
            Some(rendered),
        )
    }
}

fn mask(ch: Option<Channel>, address: Option<&str>) -> Option<String> {
    let a = address?;
    Some(match ch {
        Some(Channel::Sms) => Phone::from_trusted(a.to_owned()).masked(),
        Some(Channel::Email) => Email::from_trusted(a.to_owned()).masked(),
        _ => WeChatOpenId::from_trusted(a.to_owned()).masked(),
    })
}

impl CandidateSink for Planner<'_> {
    fn plan(&mut self, batch: &[Candidate]) -> Vec<PlannedMessage> {
        let mut out = Vec::with_capacity(batch.len());
        for c in batch {
            let (m, rendered) = self.decide(c);
            match m.status {
                MessageStatus::Queued => self.report.queued += 1,
                MessageStatus::Deferred => self.report.deferred += 1,
                _ => {
                    if let Some(r) = m.reason {
                        *self.report.suppressed.entry(r.as_str()).or_default() += 1;
                    }
                }
            }
            if m.coupon.is_some() {
                self.report.coupons += 1;
            }
            if let Mode::Preview { samples, customer } = self.mode {
                let wanted = match customer {
                    Some(id) => *id == c.customer_id,
                    None => self.report.samples.len() < *samples,
                };
                if wanted {
                    self.report.samples.push(Sample {
                        customer_id: m.customer_id.clone(),
                        occurrence: m.occurrence.clone(),
                        channel: m.channel,
                        address: mask(m.channel, m.address.as_deref()),
                        status: m.status,
                        reason: m.reason,
                        detail: m.detail.clone(),
                        coupon_code: m.coupon.as_ref().map(|k| k.code.clone()),
                        rendered,
                    });
                }
            }
            out.push(m);
        }
        out
    }
}

/// Everything a run needs besides the store.
pub struct RunInputs<'a> {
    pub campaign: &'a Campaign,
    pub templates: &'a TemplateSet,
    pub stores: &'a [StoreInfo],
    pub settings: &'a RunSettings,
    pub links: &'a LinkSigner,
}

/// Run (or preview) `campaign` at `now`. A written run is recorded in the
/// campaign's run log under `now`.
pub async fn run(
    store: &dyn Store,
    inputs: &RunInputs<'_>,
    now: DateTime<Utc>,
    mode: Mode,
) -> Result<RunReport, RunError> {
    let campaign = inputs.campaign;
    if !campaign.enabled && mode == Mode::Write {
        return Err(RunError::Disabled(campaign.id.to_string()));
    }
    let span =
        tracing::info_span!("campaign_run", campaign = %campaign.id, now = %now.to_rfc3339());
    async move {
        let started = std::time::Instant::now();
        let last_run = store.last_campaign_run(campaign.id.as_str(), now).await?;
        let facts = store_facts(inputs.stores, inputs.settings.default_tz);
        let query = candidate_query(campaign, &facts, inputs.settings, now, last_run);
        let mut planner = Planner {
            campaign,
            templates: inputs.templates,
            facts,
            settings: inputs.settings,
            links: inputs.links,
            now,
            mode: &mode,
            report: RunReport {
                campaign_id: campaign.id.to_string(),
                now: Some(now),
                trigger: campaign.trigger.kind().to_owned(),
                ..RunReport::default()
            },
        };
        let write = mode == Mode::Write;
        let totals: WriteTotals = store.run_campaign(&query, &mut planner, write).await?;
        let mut report = planner.report;
        report.candidates = totals.candidates;
        report.written = totals.written;
        report.already = totals.already;
        report.preempted = totals.preempted;
        if write {
            report.coupons = totals.coupons;
        }
        report.seconds = started.elapsed().as_secs_f64();
        if write {
            let record = RunRecord {
                outcome: "ok".to_owned(),
                planned: report.queued + report.deferred,
                suppressed: report.suppressed_total(),
                detail: serde_json::json!({
                    "candidates": report.candidates,
                    "written": report.written,
                    "already": report.already,
                    "preempted": report.preempted,
                    "coupons": report.coupons,
                    "suppressed": report.suppressed,
                })
                .to_string(),
            };
            store
                .record_campaign_run(
                    campaign.id.as_str(),
                    now,
                    now,
                    now + Duration::from_std(started.elapsed()).unwrap_or_default(),
                    &record,
                )
                .await?;
        }
        tracing::info!(
            candidates = report.candidates,
            queued = report.queued,
            deferred = report.deferred,
            suppressed = report.suppressed_total(),
            coupons = report.coupons,
            already = report.already,
            preempted = report.preempted,
            seconds = report.seconds,
            "campaign run"
        );
        Ok(report)
    }
    .instrument(span)
    .await
}

//! The ops page (`GET /` and the pages it links to), server-rendered HTML
//! in Chinese and English, usable without JavaScript:
//!
//! - `/`: the send log with filters (campaign, channel, status, customer,
//!   date range), newest first, paged by keyset cursor ("older →"); every
//!   message that was not sent says why, in words and with its code;
//! - `/messages/{id}`: one message with its provider calls, and a Retry
//!   button for failed and dead ones (`POST /messages/{id}/retry`);
//! - `/campaigns`: the campaigns in force with their schedule in words,
//!   next run and figures;
//! - `/jobs`: health, recent job runs and the campaign files' errors.
//!
//! Every page reads only indexed, bounded queries except the campaign
//! figures, which group the whole send log and are therefore computed in the
//! background and cached (see [`stats_cache`]).

pub mod cron_words;
pub mod i18n;
pub mod reasons;
mod stats_cache;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Path, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use self::i18n::{Lang, fill};
use self::stats_cache::{StatsAnswer, StatsCache};
use self::view::{
    AttemptView, CampaignsPage, CardView, Chrome, ErrorView, Figures, FilterView, GoneView,
    JobsPage, LogPage, MessagePage, MessageView, Opt, ReasonCount, ReasonView, RowView, RunView,
    render,
};
use super::AppState;
use super::auth::{Access, Gate, Session, same_origin, urlencode};
use crate::campaigns::outbox::MessageStatus;
use crate::campaigns::spec::{Campaign, CouponKind, CouponSpec, Trigger};
use crate::campaigns::stats::CampaignStats;
use crate::domain::Money;
use crate::store::send_log::{mask_address, parse_time_bound};
use crate::store::ticks::JobRun;
use crate::store::{Channel, CouponBlock, LogCursor, QueueDepth, RetryOutcome, SendLogQuery};

/// Rows of the send log per page.
pub const PAGE_ROWS: u32 = 50;
/// The most rows a page may ask for with `limit=`.
const MAX_PAGE_ROWS: u32 = 200;

/// What the page needs besides [`AppState`]: made once per server.
#[derive(Debug)]
pub struct PageContext {
    /// The zone times are shown in, and campaigns without one run in.
    pub default_tz: Tz,
    /// How long the campaigns page waits for the first figures.
    pub stats_wait: Duration,
    stats: Arc<StatsCache>,
}

impl PageContext {
    pub fn new(default_tz: Tz) -> PageContext {
        PageContext {
            default_tz,
            stats_wait: Duration::from_millis(150),
            stats: Arc::new(StatsCache::default()),
        }
    }
}

type Ctx = Extension<Arc<PageContext>>;
type GateExt = Extension<Arc<Gate>>;

fn local(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn status_word(lang: Lang, s: MessageStatus) -> &'static str {
    let t = lang.text();
    match s {
        MessageStatus::Queued => t.status_queued,
        MessageStatus::Deferred => t.status_deferred,
        MessageStatus::Sending => t.status_sending,
        MessageStatus::Sent => t.status_sent,
        MessageStatus::Delivered => t.status_delivered,
        MessageStatus::Failed => t.status_failed,
        MessageStatus::Dead => t.status_dead,
        MessageStatus::Suppressed => t.status_suppressed,
    }
}

fn channel_word(lang: Lang, c: Channel) -> &'static str {
    let t = lang.text();
    match c {
        Channel::Sms => t.channel_sms,
        Channel::Email => t.channel_email,
        Channel::Wechat => t.channel_wechat,
    }
}

fn reason_view(code: Option<&str>, provider: Option<&str>, lang: Lang) -> Option<ReasonView> {
    code.filter(|c| !c.is_empty()).map(|c| ReasonView {
        code: c.to_owned(),
        words: reasons::explain(c, provider, lang),
    })
}

fn queue_text(lang: Lang, q: &QueueDepth) -> String {
    let t = lang.text();
    [
        (t.queue_queued, q.queued),
        (t.queue_deferred, q.deferred),
        (t.queue_due, q.due),
        (t.queue_sending, q.sending),
    ]
    .iter()
    .map(|(tpl, n)| fill(tpl, &[("n", &n.to_string())]))
    .collect::<Vec<_>>()
    .join(" · ")
}

async fn queue(state: &AppState, lang: Lang) -> Option<String> {
    Some(match state.store.queue_depth(state.clock.now()).await {
        Ok(q) => queue_text(lang, &q),
        Err(e) => {
            tracing::warn!(error = %e, "the queue depth could not be read");
            lang.text().queue_unknown.to_owned()
        }
    })
}

/// The page's frame for `access`.
fn chrome(
    state: &AppState,
    ctx: &PageContext,
    lang: Lang,
    active: &'static str,
    switch_href: String,
    access: &Access,
) -> Chrome {
    let errors = state.campaigns.snapshot().all_errors().count();
    let mut c =
        Chrome::new(lang, active, switch_href, ctx.default_tz.name()).with_file_errors(errors);
    if let Access::Session(s) = access {
        c.can_logout = true;
        if !s.login.is_empty() {
            c.signed_in = Some(fill(lang.text().signed_in_as, &[("login", &s.login)]));
        }
    }
    c
}

// ---------------------------------------------------------------- send log

/// The send log's query string.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct LogParams {
    pub campaign: Option<String>,
    pub channel: Option<String>,
    pub status: Option<String>,
    pub customer: Option<String>,
    /// `YYYY-MM-DD` (in the page's zone) or RFC 3339.
    pub since: Option<String>,
    /// `YYYY-MM-DD` (inclusive) or RFC 3339 (exclusive).
    pub until: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    pub lang: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The start of `day` in `tz` (the first valid instant of a day a DST
/// change starts at midnight).
fn day_start(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    (0..180)
        .find_map(|m| {
            tz.from_local_datetime(&(midnight + chrono::Duration::minutes(m)))
                .earliest()
        })
        .map_or_else(
            || Utc.from_utc_datetime(&midnight),
            |t| t.with_timezone(&Utc),
        )
}

/// `YYYY-MM-DD` or an RFC 3339 instant; a date is its start in `tz`, or
/// the start of the next day when `end_of_day`.
fn parse_instant(
    field: &str,
    value: &str,
    tz: Tz,
    now: DateTime<Utc>,
    end_of_day: bool,
) -> Result<DateTime<Utc>, String> {
    if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let day = if end_of_day {
            day.succ_opt()
                .ok_or_else(|| format!("{field}: {value:?} is too far in the future"))?
        } else {
            day
        };
        return Ok(day_start(day, tz));
    }
    // What `logs` and the API take: a duration back from now, or a time.
    parse_time_bound(value, now).map_err(|_| {
        format!(
            "{field}: {value:?} is not a date; write a day as 2026-03-10, a duration back from now as 1h or 7d, or an RFC 3339 time"
        )
    })
}

impl LogParams {
    /// The store query these parameters ask for, or what is wrong with them.
    pub fn query(&self, tz: Tz, now: DateTime<Utc>) -> Result<SendLogQuery, String> {
        let channel = non_empty(&self.channel)
            .map(|c| c.parse::<Channel>().map_err(|e| format!("channel: {e}")))
            .transpose()?;
        let status = non_empty(&self.status)
            .map(|s| {
                MessageStatus::parse(s).ok_or_else(|| {
                    format!(
                        "status: {s:?} is not a status; use one of {}",
                        MessageStatus::ALL.map(|m| m.as_str()).join(", ")
                    )
                })
            })
            .transpose()?;
        let since = non_empty(&self.since)
            .map(|s| parse_instant("since", s, tz, now, false))
            .transpose()?;
        let until = non_empty(&self.until)
            .map(|s| parse_instant("until", s, tz, now, true))
            .transpose()?;
        if let (Some(a), Some(b)) = (since, until)
            && a >= b
        {
            return Err("since: the start is not before the end".to_owned());
        }
        let before = non_empty(&self.cursor)
            .map(|c| c.parse::<LogCursor>().map_err(|e| format!("cursor: {e}")))
            .transpose()?;
        Ok(SendLogQuery {
            campaign: non_empty(&self.campaign).map(str::to_owned),
            channel,
            status,
            customer: non_empty(&self.customer).map(str::to_owned),
            since,
            until,
            before,
            limit: self.limit.unwrap_or(PAGE_ROWS).clamp(1, MAX_PAGE_ROWS),
        })
    }

    /// `/?…` with these filters, in `lang`, at `cursor`.
    fn href(&self, lang: Lang, cursor: Option<&str>) -> String {
        let mut q = vec![format!("lang={}", lang.code())];
        for (k, v) in [
            ("campaign", &self.campaign),
            ("channel", &self.channel),
            ("status", &self.status),
            ("customer", &self.customer),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = non_empty(v) {
                q.push(format!("{k}={}", urlencode(v)));
            }
        }
        if let Some(l) = self.limit {
            q.push(format!("limit={l}"));
        }
        if let Some(c) = cursor {
            q.push(format!("cursor={}", urlencode(c)));
        }
        format!("/?{}", q.join("&"))
    }

    /// Only this campaign (or customer), in `lang`.
    fn only(lang: Lang, key: &str, value: &str) -> String {
        format!("/?lang={}&{key}={}", lang.code(), urlencode(value))
    }
}

/// `GET /`
pub async fn send_log(
    State(state): State<AppState>,
    Extension(ctx): Ctx,
    Extension(access): Extension<Access>,
    Query(params): Query<LogParams>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::pick(params.lang.as_deref(), &headers);
    let tz = ctx.default_tz;
    let cursor = non_empty(&params.cursor);
    let chrome = chrome(
        &state,
        &ctx,
        lang,
        "log",
        params.href(lang.other(), cursor),
        &access,
    );
    let t = lang.text();
    let mut page = LogPage {
        chrome,
        queue: queue(&state, lang).await,
        filters: FilterView {
            campaign: non_empty(&params.campaign).unwrap_or("").to_owned(),
            customer: non_empty(&params.customer).unwrap_or("").to_owned(),
            since: non_empty(&params.since).unwrap_or("").to_owned(),
            until: non_empty(&params.until).unwrap_or("").to_owned(),
        },
        campaign_ids: state
            .campaigns
            .snapshot()
            .campaigns
            .keys()
            .map(|id| id.to_string())
            .collect(),
        channels: [Channel::Sms, Channel::Email, Channel::Wechat]
            .into_iter()
            .map(|c| Opt {
                value: c.as_str(),
                label: channel_word(lang, c),
                selected: non_empty(&params.channel) == Some(c.as_str()),
            })
            .collect(),
        statuses: MessageStatus::ALL
            .into_iter()
            .map(|s| Opt {
                value: s.as_str(),
                label: status_word(lang, s),
                selected: non_empty(&params.status) == Some(s.as_str()),
            })
            .collect(),
        error: None,
        rows: Vec::new(),
        newest_href: cursor.map(|_| params.href(lang, None)),
        older_href: None,
    };
    let query = match params.query(tz, state.clock.now()) {
        Ok(q) => q,
        Err(e) => {
            page.error = Some(fill(t.bad_filter, &[("error", &e)]));
            return (StatusCode::BAD_REQUEST, Html(render(&page))).into_response();
        }
    };
    match state.store.send_log(&query).await {
        Ok(result) => {
            page.older_href = result.next.map(|c| params.href(lang, Some(&c.to_string())));
            page.rows = result
                .rows
                .into_iter()
                .map(|r| {
                    let provider = r.provider.clone();
                    RowView {
                        id: r.id,
                        href: format!("/messages/{}?lang={}", r.id, lang.code()),
                        time: local(r.created_at, tz),
                        campaign_href: LogParams::only(lang, "campaign", &r.campaign_id),
                        campaign: r.campaign_id,
                        customer_href: LogParams::only(lang, "customer", &r.customer_id),
                        customer: r.customer_id,
                        channel: r
                            .channel
                            .map_or_else(String::new, |c| channel_word(lang, c).to_owned()),
                        provider: provider.clone().unwrap_or_default(),
                        address: r
                            .address
                            .as_deref()
                            .map(|a| mask_address(r.channel, a))
                            .unwrap_or_default(),
                        status: r.status.as_str(),
                        status_word: status_word(lang, r.status),
                        reason: reason_view(r.reason.as_deref(), provider.as_deref(), lang),
                        attempts: r.attempts,
                        coupon: r.coupon_code.unwrap_or_default(),
                    }
                })
                .collect();
            Html(render(&page)).into_response()
        }
        Err(e) => {
            page.error = Some(fill(t.log_unavailable, &[("error", &e.to_string())]));
            (StatusCode::SERVICE_UNAVAILABLE, Html(render(&page))).into_response()
        }
    }
}

// ----------------------------------------------------------- one message

/// `/messages/{id}` query.
#[derive(Debug, Default, Deserialize)]
pub struct MessageParams {
    pub lang: Option<String>,
    /// What the retry did (after `POST …/retry`).
    pub retry: Option<String>,
    pub status: Option<String>,
    pub code: Option<String>,
}

/// The session that protects the page's forms: the signed-in one, the one
/// the browser already has, or a new anonymous one (returned to be set).
fn form_session(
    gate: &Gate,
    access: &Access,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> (Option<Session>, Option<String>) {
    match access {
        Access::Session(s) => (Some(s.clone()), None),
        Access::Bearer | Access::Denied => (None, None),
        Access::Open => match gate.session(headers, now) {
            Some(s) => (Some(s), None),
            None => {
                let (value, s) = gate.issue("", true, now);
                let cookie = gate.set_cookie(&value, now, s.expires);
                (Some(s), Some(cookie))
            }
        },
    }
}

fn retry_notice(lang: Lang, p: &MessageParams) -> Option<String> {
    let t = lang.text();
    let refused = |why: String| fill(t.retry_refused, &[("why", &why)]);
    Some(match p.retry.as_deref()? {
        "done" => t.retry_done.to_owned(),
        "forbidden" => t.retry_forbidden.to_owned(),
        "not_found" => refused(t.retry_not_found.to_owned()),
        "not_retryable" => {
            let status = p
                .status
                .as_deref()
                .and_then(MessageStatus::parse)
                .map_or("?", |s| status_word(lang, s));
            refused(fill(t.retry_not_retryable, &[("status", status)]))
        }
        why @ ("voided" | "expired" | "redeemed") => {
            let word = match why {
                "voided" => t.coupon_voided,
                "expired" => t.coupon_expired,
                _ => t.coupon_redeemed,
            };
            refused(fill(
                t.retry_coupon_blocked,
                &[("code", p.code.as_deref().unwrap_or("")), ("why", word)],
            ))
        }
        _ => return None,
    })
}

/// `GET /messages/{id}`
pub async fn message(
    State(state): State<AppState>,
    Extension(ctx): Ctx,
    Extension(gate): GateExt,
    Extension(access): Extension<Access>,
    Path(id): Path<i64>,
    Query(params): Query<MessageParams>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::pick(params.lang.as_deref(), &headers);
    let now = state.clock.now();
    let (session, set_cookie) = form_session(&gate, &access, &headers, now);
    let detail = state.store.message_detail(id).await;
    let resp = message_page(
        &state,
        &ctx,
        &gate,
        &access,
        lang,
        id,
        detail,
        retry_notice(lang, &params),
        session.as_ref(),
    );
    with_cookie(resp, set_cookie)
}

fn with_cookie(mut resp: Response, cookie: Option<String>) -> Response {
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    resp
}

#[allow(clippy::too_many_arguments)]
fn message_page(
    state: &AppState,
    ctx: &PageContext,
    gate: &Gate,
    access: &Access,
    lang: Lang,
    id: i64,
    detail: Result<Option<crate::dispatch::claim::MessageDetail>, crate::store::StoreError>,
    notice: Option<String>,
    session: Option<&Session>,
) -> Response {
    let t = lang.text();
    let tz = ctx.default_tz;
    let switch = format!("/messages/{id}?lang={}", lang.other().code());
    let mut page = MessagePage {
        chrome: chrome(state, ctx, lang, "log", switch, access),
        heading: fill(t.message_heading, &[("id", &id.to_string())]),
        back_href: format!("/?lang={}", lang.code()),
        notice,
        message: None,
        form_token: session.map(|s| gate.form_token(s)).unwrap_or_default(),
    };
    match detail {
        Ok(Some(m)) => {
            let channel = m.channel.as_deref().and_then(|c| c.parse::<Channel>().ok());
            let status = MessageStatus::parse(&m.status).unwrap_or(MessageStatus::Queued);
            page.message = Some(MessageView {
                id: m.id,
                status: status.as_str(),
                status_word: status_word(lang, status),
                reason: reason_view(m.reason.as_deref(), m.provider.as_deref(), lang),
                detail: m.detail.clone(),
                campaign_href: LogParams::only(lang, "campaign", &m.campaign_id),
                campaign: m.campaign_id.clone(),
                customer_href: LogParams::only(lang, "customer", &m.customer_id),
                customer: m.customer_id.clone(),
                channel: channel.map_or_else(String::new, |c| channel_word(lang, c).to_owned()),
                provider: m.provider.clone().unwrap_or_default(),
                address: m
                    .address
                    .as_deref()
                    .map(|a| mask_address(channel, a))
                    .unwrap_or_default(),
                attempts: m.attempts,
                coupon: m.coupon_code.clone().unwrap_or_default(),
                provider_message_id: m.provider_message_id.clone().unwrap_or_default(),
                next_attempt: m.next_attempt_at.map(|t| local(t, tz)).unwrap_or_default(),
                sent_at: m.sent_at.map(|t| local(t, tz)).unwrap_or_default(),
                retryable: matches!(status, MessageStatus::Failed | MessageStatus::Dead),
                history: m
                    .history
                    .iter()
                    .map(|a| AttemptView {
                        attempt: a.attempt,
                        at: local(a.at, tz),
                        provider: a.provider.clone(),
                        outcome: a.outcome.clone(),
                        code: a.provider_code.clone().unwrap_or_default(),
                        detail: a.detail.clone().unwrap_or_default(),
                    })
                    .collect(),
            });
            Html(render(&page)).into_response()
        }
        Ok(None) => {
            page.notice = Some(fill(t.message_missing, &[("id", &id.to_string())]));
            (StatusCode::NOT_FOUND, Html(render(&page))).into_response()
        }
        Err(e) => {
            page.notice = Some(fill(t.log_unavailable, &[("error", &e.to_string())]));
            (StatusCode::SERVICE_UNAVAILABLE, Html(render(&page))).into_response()
        }
    }
}

/// Body of `POST /messages/{id}/retry`.
#[derive(Debug, Deserialize)]
pub struct RetryForm {
    #[serde(default)]
    pub form_token: String,
    pub lang: Option<String>,
}

/// `POST /messages/{id}/retry`: a failed or dead message back in the queue.
pub async fn retry(
    State(state): State<AppState>,
    Extension(ctx): Ctx,
    Extension(gate): GateExt,
    Extension(access): Extension<Access>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Form(form): Form<RetryForm>,
) -> Response {
    let lang = Lang::pick(form.lang.as_deref(), &headers);
    let now = state.clock.now();
    let back = |q: &str| {
        Redirect::to(&format!("/messages/{id}?lang={}&retry={q}", lang.code())).into_response()
    };
    // A browser's form needs its session's token (SameSite=Strict keeps
    // the cookie off other sites' requests; the token keeps other sites'
    // forms out even where a browser ignores SameSite). A bearer request
    // comes from a program, which no other site can make a browser send.
    let session = match &access {
        Access::Bearer => None,
        Access::Session(s) => Some(s.clone()),
        Access::Open | Access::Denied => gate.session(&headers, now),
    };
    let allowed = same_origin(&headers)
        && match (&access, &session) {
            (Access::Bearer, _) => true,
            (_, Some(s)) => gate.form_token_matches(s, &form.form_token),
            (_, None) => false,
        };
    if !allowed {
        crate::metrics::page_retry("forbidden");
        tracing::warn!(
            message_id = id,
            "ops page: a retry without a valid form token"
        );
        return back("forbidden");
    }
    let actor = access.actor(session.as_ref());
    match state.store.retry_message(id, &actor, now).await {
        Ok(outcome) => {
            tracing::info!(message_id = id, %actor, %outcome, "ops page: retry");
            match outcome {
                RetryOutcome::Retried { .. } => {
                    crate::metrics::page_retry("retried");
                    back("done")
                }
                RetryOutcome::NotFound => {
                    crate::metrics::page_retry("refused");
                    back("not_found")
                }
                RetryOutcome::NotRetryable { status } => {
                    crate::metrics::page_retry("refused");
                    back(&format!("not_retryable&status={}", status.as_str()))
                }
                RetryOutcome::CouponUnusable { code, why } => {
                    crate::metrics::page_retry("refused");
                    let why = match why {
                        CouponBlock::Voided => "voided",
                        CouponBlock::Expired => "expired",
                        CouponBlock::Redeemed => "redeemed",
                    };
                    back(&format!("{why}&code={}", urlencode(&code)))
                }
            }
        }
        Err(e) => {
            crate::metrics::page_retry("error");
            tracing::error!(message_id = id, error = %e, "ops page: a retry could not be recorded");
            let notice = fill(lang.text().retry_failed, &[("error", &e.to_string())]);
            let detail = state.store.message_detail(id).await;
            let mut resp = message_page(
                &state,
                &ctx,
                &gate,
                &access,
                lang,
                id,
                detail,
                Some(notice),
                session.as_ref(),
            );
            *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            resp
        }
    }
}

// -------------------------------------------------------------- campaigns

/// `?lang=` of the pages that take nothing else.
#[derive(Debug, Default, Deserialize)]
pub struct LangParam {
    pub lang: Option<String>,
}

fn trigger_words(lang: Lang, c: &Campaign, tz: Tz) -> String {
    let t = lang.text();
    match &c.trigger {
        Trigger::Birthday { days_before: 0 } => t.trigger_birthday_today.to_owned(),
        Trigger::Birthday { days_before } => {
            fill(t.trigger_birthday, &[("n", &days_before.to_string())])
        }
        Trigger::Lapsed {
            inactive_days,
            max_inactive_days: None,
        } => fill(t.trigger_lapsed, &[("n", &inactive_days.to_string())]),
        Trigger::Lapsed {
            inactive_days,
            max_inactive_days: Some(max),
        } => fill(
            t.trigger_lapsed_max,
            &[("n", &inactive_days.to_string()), ("max", &max.to_string())],
        ),
        Trigger::SegmentEntered { segment } => {
            fill(t.trigger_segment, &[("segment", segment.name())])
        }
        Trigger::Broadcast { at, absolute } => match (absolute, at) {
            (Some(instant), _) => fill(
                t.trigger_broadcast_at,
                &[("at", &format!("{} {}", local(*instant, tz), tz.name()))],
            ),
            (None, Some(naive)) => fill(
                t.trigger_broadcast_at,
                &[("at", &naive.format("%Y-%m-%d %H:%M").to_string())],
            ),
            (None, None) => t.trigger_broadcast.to_owned(),
        },
    }
}

fn coupon_words(lang: Lang, coupon: Option<&CouponSpec>) -> String {
    let t = lang.text();
    let Some(c) = coupon else {
        return t.no_coupon.to_owned();
    };
    let mut parts = vec![match c.kind {
        CouponKind::AmountOff => fill(
            t.coupon_amount_off,
            &[("value", &Money::from_fen(c.value).to_string())],
        ),
        CouponKind::PercentOff => fill(t.coupon_percent_off, &[("value", &c.value.to_string())]),
        CouponKind::FreeItem => fill(
            t.coupon_free_item,
            &[("value", c.item.as_deref().unwrap_or(""))],
        ),
    }];
    if c.min_spend_fen > 0 {
        parts.push(fill(
            t.coupon_min_spend,
            &[("min", &Money::from_fen(c.min_spend_fen).to_string())],
        ));
    }
    parts.push(fill(
        t.coupon_valid_days,
        &[("n", &c.valid_days.to_string())],
    ));
    parts.join(match lang {
        Lang::Zh => "，",
        Lang::En => ", ",
    })
}

/// The next run of `c` after `now`, in its zone.
fn next_run(lang: Lang, c: &Campaign, tz: Tz, now: DateTime<Utc>) -> String {
    let at = match (&c.schedule, &c.trigger) {
        (Some(s), _) => s.next_after(tz, now),
        (None, Trigger::Broadcast { absolute, at }) => absolute
            .or_else(|| {
                at.and_then(|n| tz.from_local_datetime(&n).earliest())
                    .map(|t| t.with_timezone(&Utc))
            })
            .filter(|t| *t > now),
        (None, _) => None,
    };
    match at {
        Some(at) if c.enabled => format!(
            "{} {}",
            at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            tz.name()
        ),
        _ => lang.text().no_next_run.to_owned(),
    }
}

fn figures(lang: Lang, s: &CampaignStats) -> Figures {
    let n = |v: u64| v.to_string();
    Figures {
        issued: n(s.coupons_issued),
        sent: n(s.count("sent") + s.count("delivered")),
        delivered: n(s.count("delivered")),
        failed: n(s.count("failed") + s.count("dead")),
        suppressed: n(s.count("suppressed")),
        waiting: n(s.count("queued") + s.count("deferred") + s.count("sending")),
        redeemed: n(s.coupons_redeemed),
        rate: format!("{:.1}%", s.redemption_rate * 100.0),
        revenue: format!("¥{}", s.revenue()),
        by_reason: s
            .suppressed
            .iter()
            .map(|(code, count)| ReasonCount {
                code: code.clone(),
                words: reasons::explain(code, None, lang),
                n: count.to_string(),
            })
            .collect(),
    }
}

/// `GET /campaigns`
pub async fn campaigns(
    State(state): State<AppState>,
    Extension(ctx): Ctx,
    Extension(access): Extension<Access>,
    Query(params): Query<LangParam>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::pick(params.lang.as_deref(), &headers);
    let t = lang.text();
    let now = state.clock.now();
    let snapshot = state.campaigns.snapshot();
    let answer = ctx.stats.get(&state.store, now, ctx.stats_wait).await;
    let (stats, stats_note) = match &answer {
        StatsAnswer::Ready(f) => (
            Some(f.stats.clone()),
            fill(
                t.stats_as_of,
                &[
                    ("at", &local(f.as_of, ctx.default_tz)),
                    ("secs", &f.fresh_for.as_secs().to_string()),
                ],
            ),
        ),
        StatsAnswer::Pending => (None, t.stats_pending.to_owned()),
        StatsAnswer::Failed(e) => (None, fill(t.stats_unavailable, &[("error", e)])),
    };
    let stats_of = |id: &str| {
        stats
            .as_ref()
            .and_then(|all| all.iter().find(|s| s.campaign_id == id))
    };
    let cards = snapshot
        .campaigns
        .values()
        .map(|active| {
            let c = &active.campaign;
            let id = c.id.to_string();
            let tz = c.timezone.unwrap_or(ctx.default_tz);
            let mut warnings = Vec::new();
            if snapshot.stale.contains(&c.id) {
                warnings.push(t.campaign_stale.to_owned());
            }
            if !c.enabled {
                warnings.push(t.campaign_disabled.to_owned());
            }
            CardView {
                name: c.name.clone(),
                warnings,
                trigger: trigger_words(lang, c, tz),
                schedule: c.schedule.as_ref().map_or_else(
                    || "—".to_owned(),
                    |s| cron_words::describe(s.source(), tz.name(), lang),
                ),
                next_run: next_run(lang, c, tz, now),
                channels: c
                    .channels
                    .iter()
                    .map(|ch| channel_word(lang, *ch))
                    .collect::<Vec<_>>()
                    .join(" → "),
                priority: c.priority,
                coupon: coupon_words(lang, c.coupon.as_ref()),
                file: c.path.display().to_string(),
                figures: stats_of(&id).map(|s| figures(lang, s)).or_else(|| {
                    stats
                        .is_some()
                        .then(|| figures(lang, &CampaignStats::default()))
                }),
                log_href: LogParams::only(lang, "campaign", &id),
                id,
            }
        })
        .collect();
    let gone = stats
        .as_ref()
        .map(|all| {
            all.iter()
                .filter(|s| snapshot.campaign(&s.campaign_id).is_none())
                .map(|s| GoneView {
                    id: s.campaign_id.clone(),
                    figures: Some(figures(lang, s)),
                    log_href: LogParams::only(lang, "campaign", &s.campaign_id),
                })
                .collect()
        })
        .unwrap_or_default();
    let switch = format!("/campaigns?lang={}", lang.other().code());
    Html(render(&CampaignsPage {
        chrome: chrome(&state, &ctx, lang, "campaigns", switch, &access),
        stats_note,
        stats_pending: matches!(answer, StatsAnswer::Pending),
        cards,
        gone,
    }))
    .into_response()
}

// ------------------------------------------------------------ jobs, files

fn duration_words(lang: Lang, d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (days, hours, mins, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match lang {
        Lang::Zh if days > 0 => format!("{days} 天 {hours} 小时"),
        Lang::Zh if hours > 0 => format!("{hours} 小时 {mins} 分"),
        Lang::Zh => format!("{mins} 分 {s} 秒"),
        Lang::En if days > 0 => format!("{days} d {hours} h"),
        Lang::En if hours > 0 => format!("{hours} h {mins} min"),
        Lang::En => format!("{mins} min {s} s"),
    }
}

/// `GET /jobs`
pub async fn jobs(
    State(state): State<AppState>,
    Extension(ctx): Ctx,
    Extension(access): Extension<Access>,
    Query(params): Query<LangParam>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::pick(params.lang.as_deref(), &headers);
    let tz = ctx.default_tz;
    let now = state.clock.now();
    let snapshot = state.campaigns.snapshot();
    let errors = snapshot
        .errors
        .values()
        .flatten()
        .map(|e| ErrorView {
            file: e.file.display().to_string(),
            line: if e.line == 0 {
                String::new()
            } else {
                e.line.to_string()
            },
            column: if e.column == 0 {
                String::new()
            } else {
                e.column.to_string()
            },
            message: e.message.clone(),
        })
        .collect();
    let database = match state.store.ping().await {
        Ok(()) => state.store.backend().to_string(),
        Err(e) => format!("{}: {e}", state.store.backend()),
    };
    let t = lang.text();
    let (runs, runs_error) = match state.store.job_runs(None, RECENT_RUNS).await {
        Ok(runs) => (runs.iter().map(|r| run_view(lang, tz, r)).collect(), None),
        Err(e) => (
            Vec::new(),
            Some(fill(t.runs_unavailable, &[("error", &e.to_string())])),
        ),
    };
    let scheduler = match &state.scheduler {
        None => t.scheduler_absent.to_owned(),
        Some(s) if s.alive(now) => match s.last_pass() {
            Some(at) => fill(t.scheduler_alive, &[("at", &local(at, tz))]),
            None => t.scheduler_starting.to_owned(),
        },
        Some(s) => fill(
            t.scheduler_stalled,
            &[(
                "at",
                &s.last_pass()
                    .map_or_else(|| "—".to_owned(), |at| local(at, tz)),
            )],
        ),
    };
    let switch = format!("/jobs?lang={}", lang.other().code());
    Html(render(&JobsPage {
        chrome: chrome(&state, &ctx, lang, "jobs", switch, &access),
        uptime: duration_words(lang, now - state.started_at),
        started: local(state.started_at, tz),
        database,
        scheduler,
        queue: queue(&state, lang).await,
        runs,
        runs_error,
        errors,
    }))
    .into_response()
}

/// A run's detail for people: the JSON counts the jobs record as
/// `key value` pairs (nested objects flattened to `key.sub`), anything
/// else as it is.
fn detail_words(detail: &str) -> String {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::String(s) => out.push(format!("{prefix} {s}")),
            other => out.push(format!("{prefix} {other}")),
        }
    }
    match serde_json::from_str::<serde_json::Value>(detail) {
        Ok(v @ serde_json::Value::Object(_)) => {
            let mut out = Vec::new();
            walk("", &v, &mut out);
            out.join(", ")
        }
        _ => detail.to_owned(),
    }
}

/// Job runs shown on `/jobs`.
const RECENT_RUNS: u32 = 30;

fn run_view(lang: Lang, tz: Tz, r: &JobRun) -> RunView {
    let t = lang.text();
    let secs = r
        .finished_at
        .map(|f| (f - r.started_at).num_milliseconds().max(0) as f64 / 1000.0);
    RunView {
        job: r.job.clone(),
        scheduled_for: local(r.scheduled_for, tz),
        started: local(r.started_at, tz),
        finished: r.finished_at.map(|f| local(f, tz)).unwrap_or_default(),
        duration: secs.map_or_else(String::new, |s| format!("{s:.1} s")),
        outcome: match r.outcome.as_deref() {
            None | Some("") => t.run_unfinished.to_owned(),
            Some("ok") => t.run_ok.to_owned(),
            Some("failed") => t.run_failed.to_owned(),
            Some("skipped") => t.run_skipped.to_owned(),
            Some(other) => other.to_owned(),
        },
        outcome_code: r.outcome.clone().unwrap_or_default(),
        detail: r.detail.as_deref().map(detail_words).unwrap_or_default(),
        claimed_by: if r.attempt > 1 {
            fill(
                t.run_taken_over,
                &[("by", &r.claimed_by), ("n", &r.attempt.to_string())],
            )
        } else {
            r.claimed_by.clone()
        },
    }
}

// ----------------------------------------------------------------- metrics

/// `GET /metrics`: the Prometheus text format (0.0.4).
pub async fn metrics(State(state): State<AppState>) -> Response {
    let snapshot = state.campaigns.snapshot();
    let now = state.clock.now();
    let queue = match state.store.queue_depth(now).await {
        Ok(q) => vec![
            ("queued", q.queued),
            ("deferred", q.deferred),
            ("due", q.due),
            ("sending", q.sending),
        ],
        Err(e) => {
            tracing::warn!(error = %e, "the queue depth could not be read for /metrics");
            Vec::new()
        }
    };
    let gauges = crate::metrics::ScrapeGauges {
        queue,
        campaigns_in_force: snapshot.campaigns.len() as u64,
        campaign_file_errors: snapshot.all_errors().count() as u64,
        uptime_seconds: (now - state.started_at).num_milliseconds().max(0) as f64 / 1000.0,
    };
    match crate::metrics::render(&gauges) {
        Some(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": "metrics are not recorded in this process"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SH: Tz = chrono_tz::Asia::Shanghai;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T12:00:00+08:00")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn durations_and_times_are_taken_as_by_logs_and_the_api() {
        let p = LogParams {
            since: Some("30d".into()),
            until: Some("2026-11-24T10:00:00+08:00".into()),
            ..LogParams::default()
        };
        let q = p.query(SH, now()).unwrap();
        assert_eq!(
            q.since.unwrap(),
            DateTime::parse_from_rfc3339("2026-10-25T12:00:00+08:00").unwrap()
        );
        assert_eq!(
            q.until.unwrap(),
            DateTime::parse_from_rfc3339("2026-11-24T10:00:00+08:00").unwrap()
        );
    }

    #[test]
    fn dates_are_local_days_and_until_is_inclusive() {
        let p = LogParams {
            since: Some("2026-03-10".into()),
            until: Some("2026-03-10".into()),
            ..LogParams::default()
        };
        let q = p.query(SH, now()).unwrap();
        assert_eq!(
            q.since.unwrap(),
            DateTime::parse_from_rfc3339("2026-03-10T00:00:00+08:00").unwrap()
        );
        assert_eq!(
            q.until.unwrap(),
            DateTime::parse_from_rfc3339("2026-03-11T00:00:00+08:00").unwrap()
        );
        assert_eq!(q.limit, PAGE_ROWS);
    }

    #[test]
    fn bad_filters_say_which_and_why() {
        let bad = |p: LogParams| p.query(SH, now()).unwrap_err();
        let e = bad(LogParams {
            status: Some("sendt".into()),
            ..LogParams::default()
        });
        assert!(e.starts_with("status: \"sendt\" is not a status"), "{e}");
        let e = bad(LogParams {
            since: Some("10/03/2026".into()),
            ..LogParams::default()
        });
        assert!(e.starts_with("since:"), "{e}");
        let e = bad(LogParams {
            channel: Some("fax".into()),
            ..LogParams::default()
        });
        assert!(e.starts_with("channel:"), "{e}");
        let e = bad(LogParams {
            cursor: Some("abc".into()),
            ..LogParams::default()
        });
        assert!(e.starts_with("cursor:"), "{e}");
        let e = bad(LogParams {
            since: Some("2026-03-11".into()),
            until: Some("2026-03-10".into()),
            ..LogParams::default()
        });
        assert!(e.contains("not before"), "{e}");
    }

    #[test]
    fn empty_fields_are_no_filter_and_links_keep_the_filters() {
        let p = LogParams {
            campaign: Some(" ".into()),
            status: Some("suppressed".into()),
            customer: Some("C 1".into()),
            ..LogParams::default()
        };
        let q = p.query(SH, now()).unwrap();
        assert_eq!(q.campaign, None);
        assert_eq!(q.status, Some(MessageStatus::Suppressed));
        assert_eq!(
            p.href(Lang::En, Some("5-7")),
            "/?lang=en&status=suppressed&customer=C%201&cursor=5%2D7"
        );
    }

    #[test]
    fn run_details_in_words() {
        assert_eq!(
            detail_words(r#"{"written":3,"suppressed":{"no_consent":2},"mode":"full"}"#),
            "mode full, suppressed.no_consent 2, written 3"
        );
        assert_eq!(
            detail_words("the database went away"),
            "the database went away"
        );
    }

    #[test]
    fn durations_in_words() {
        assert_eq!(
            duration_words(Lang::En, chrono::Duration::seconds(3 * 3600 + 125)),
            "3 h 2 min"
        );
        assert_eq!(
            duration_words(Lang::Zh, chrono::Duration::seconds(90)),
            "1 分 30 秒"
        );
    }
}

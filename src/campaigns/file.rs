//! One campaign file (`campaigns/NAME.yaml`): parsed, then checked against
//! the stores, segments and templates that exist. Every problem is reported
//! with `file:line:col` and what to write instead.

use std::path::Path;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::code::check_prefix;
use super::schedule::Schedule;
use super::spec::{
    Audience, Campaign, CampaignId, CouponKind, CouponSpec, SegmentRef, SendWindow, Trigger,
    parse_duration,
};
use crate::domain::StoreCode;
use crate::expr::{CheckContext, Expr, suggest};
use crate::segments::rules::{STAGES, TIERS};
use crate::store::Channel;
use crate::templates::TemplateSet;
use crate::yaml_file::{FileError, YamlSource, parse_hhmm};

/// What a campaign file is checked against.
pub struct CheckEnv<'a> {
    /// Store codes the database knows.
    pub stores: Vec<String>,
    /// Custom segment names of `segments.yaml`.
    pub custom_segments: Vec<String>,
    pub templates: &'a TemplateSet,
}

impl CheckEnv<'_> {
    fn expr_context(&self) -> CheckContext {
        CheckContext {
            stores: Some(self.stores.clone()),
        }
    }

    fn segment_names(&self) -> Vec<&str> {
        STAGES
            .iter()
            .chain(TIERS.iter())
            .copied()
            .chain(self.custom_segments.iter().map(String::as_str))
            .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCampaign {
    id: Option<Spanned<String>>,
    name: Option<String>,
    enabled: Option<bool>,
    schedule: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    trigger: Spanned<RawTrigger>,
    audience: Option<RawAudience>,
    coupon: Option<Spanned<RawCoupon>>,
    channels: Spanned<Vec<Spanned<String>>>,
    template: Spanned<String>,
    send_window: Option<Spanned<RawWindow>>,
    priority: Option<i32>,
    catch_up: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    days_before: Option<Spanned<i64>>,
    inactive_days: Option<Spanned<i64>>,
    max_inactive_days: Option<Spanned<i64>>,
    segment: Option<Spanned<String>>,
    at: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudience {
    segments: Option<Vec<Spanned<String>>>,
    exclude_segments: Option<Vec<Spanned<String>>>,
    stores: Option<Vec<Spanned<String>>>,
    #[serde(rename = "where")]
    filter: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoupon {
    kind: Spanned<String>,
    value: Option<Spanned<f64>>,
    item: Option<Spanned<String>>,
    min_spend: Option<Spanned<f64>>,
    valid_days: Option<Spanned<i64>>,
    code_prefix: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    start: Spanned<String>,
    end: Spanned<String>,
}

const TRIGGERS: [&str; 4] = ["birthday", "lapsed", "segment_entered", "broadcast"];
const COUPON_KINDS: [&str; 3] = ["amount_off", "percent_off", "free_item"];
const CHANNELS: [&str; 3] = ["sms", "email", "wechat"];
/// Catch-up when the file gives none.
pub const DEFAULT_CATCH_UP_DAYS: i64 = 1;
/// Coupon validity when the file gives none.
pub const DEFAULT_VALID_DAYS: u32 = 14;

fn with_suggestion(word: &str, candidates: &[&str]) -> String {
    match suggest(word, candidates.iter().copied()) {
        Some(s) => format!("did you mean {s:?}? Valid: {}", candidates.join(", ")),
        None => format!("valid: {}", candidates.join(", ")),
    }
}

/// Parse and check a campaign file.
pub fn check_source(source: &YamlSource, env: &CheckEnv<'_>) -> Result<Campaign, Vec<FileError>> {
    if source.text.trim().is_empty() {
        return Err(vec![source.error_at_line(
            0,
            0,
            "the file is empty; a campaign needs at least trigger, channels and template (see campaigns/README.md)",
        )]);
    }
    let raw: RawCampaign = source.parse().map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let campaign = raw.check(source, env, &mut errors);
    match campaign {
        Some(c) if errors.is_empty() => Ok(c),
        _ => Err(errors),
    }
}

/// Read and check `path`.
pub fn check_file(path: &Path, env: &CheckEnv<'_>) -> Result<Campaign, Vec<FileError>> {
    let source = YamlSource::read(path).map_err(|e| vec![e])?;
    check_source(&source, env)
}

/// Whole yuan (up to two decimals) as fen.
fn yuan_to_fen(v: f64) -> Option<i64> {
    let fen = (v * 100.0).round();
    ((v * 100.0 - fen).abs() < 1e-6 && fen.abs() < 1e12).then_some(fen as i64)
}

/// `2026-12-24T10:00:00`, `2026-12-24 10:00` (local) or RFC 3339 (absolute).
fn parse_at(s: &str) -> Result<(NaiveDateTime, Option<DateTime<Utc>>), String> {
    let t = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok((dt.naive_local(), Some(dt.with_timezone(&Utc))));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok((dt, None));
        }
    }
    Err(format!(
        "at {s:?} is not a time; write the store's local time as 2026-12-24T10:00:00 (or with an offset, 2026-12-24T10:00:00+08:00)"
    ))
}

fn days(
    source: &YamlSource,
    field: &str,
    v: &Spanned<i64>,
    min: i64,
    max: i64,
    errors: &mut Vec<FileError>,
) -> Option<u32> {
    if v.value < min || v.value > max {
        errors.push(source.error_at(
            v.referenced,
            format!(
                "{field} must be a whole number from {min} to {max}, not {}",
                v.value
            ),
        ));
        return None;
    }
    u32::try_from(v.value).ok()
}

impl RawCampaign {
    fn check(
        self,
        source: &YamlSource,
        env: &CheckEnv<'_>,
        errors: &mut Vec<FileError>,
    ) -> Option<Campaign> {
        let stem = source
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let id = match &self.id {
            Some(id) => CampaignId::parse(&id.value)
                .map_err(|e| errors.push(source.error_at(id.referenced, e)))
                .ok(),
            None => CampaignId::parse(&stem)
                .map_err(|e| {
                    errors.push(source.error_at_line(
                        1,
                        1,
                        format!("{e}; the file name is the id when `id:` is missing, so rename the file or add `id:`"),
                    ))
                })
                .ok(),
        };
        let timezone = self.timezone.as_ref().and_then(|tz| {
            tz.value
                .parse::<chrono_tz::Tz>()
                .map_err(|_| {
                    let names: Vec<&str> =
                        chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect();
                    let hint = match suggest(&tz.value, names.iter().copied()) {
                        Some(s) => format!("did you mean {s:?}?"),
                        None => "use an IANA name such as Asia/Shanghai".to_owned(),
                    };
                    errors.push(source.error_at(
                        tz.referenced,
                        format!("unknown time zone {:?}; {hint}", tz.value),
                    ))
                })
                .ok()
        });
        let trigger = self.check_trigger(source, env, errors);
        let schedule = match &self.schedule {
            Some(s) => Schedule::parse(&s.value)
                .map_err(|e| errors.push(source.error_at(s.referenced, format!("schedule {e}"))))
                .ok(),
            None => {
                if !matches!(trigger, Some(Trigger::Broadcast { .. }) | None) {
                    errors.push(source.error_at_line(
                        1,
                        1,
                        "schedule is missing: write when the campaign runs, e.g. schedule: \"0 10 * * *\" (10:00 every day)",
                    ));
                }
                None
            }
        };
        let audience = self.check_audience(source, env, errors);
        let coupon = self.check_coupon(source, id.as_ref(), errors);
        let channels = self.check_channels(source, errors);
        let template = self.template.value.trim().to_owned();
        let names = env.templates.names();
        let loaded = names.contains(&template);
        if template.is_empty() {
            errors.push(source.error_at(
                self.template.referenced,
                "template is empty; name the files under templates/, e.g. template: birthday for templates/birthday.sms.yaml",
            ));
        } else if !loaded
            && let Some(broken) = channels
                .iter()
                .find_map(|ch| env.templates.path_of(&template, *ch))
        {
            errors.push(source.error_at(
                self.template.referenced,
                format!(
                    "template {template} could not be loaded: {} has errors (reported at that file); fix them and check again",
                    broken.display()
                ),
            ));
        } else if !loaded {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let hint = match suggest(&template, refs.iter().copied()) {
                Some(s) => format!("did you mean template: {s}?"),
                None if refs.is_empty() => "the templates folder has none yet".to_owned(),
                None => format!("templates: {}", refs.join(", ")),
            };
            errors.push(source.error_at(
                self.template.referenced,
                format!(
                    "template {template} does not exist (no {}/{template}.sms.yaml, .email.yaml or .wechat.yaml); {hint}",
                    env.templates.dir().display()
                ),
            ));
        } else {
            for ch in &channels {
                if env.templates.has(&template, *ch) {
                    let used_by = format!(" (used by {})", source.path.display());
                    errors.extend(
                        env.templates
                            .check(&template, *ch, self.coupon.is_some())
                            .into_iter()
                            .map(|mut e| {
                                e.message.push_str(&used_by);
                                e
                            }),
                    );
                } else if let Some(broken) = env.templates.path_of(&template, *ch) {
                    errors.push(source.error_at(
                        self.template.referenced,
                        format!(
                            "channel {ch} needs {}, which has errors (reported at that file); fix them, or remove {ch} from channels",
                            broken.display()
                        ),
                    ));
                } else {
                    errors.push(source.error_at(
                        self.template.referenced,
                        format!(
                            "channel {ch} needs the template file {}, which does not exist (create it, or remove {ch} from channels)",
                            env.templates.dir().join(format!("{template}.{ch}.yaml")).display()
                        ),
                    ));
                }
            }
        }
        let send_window = self.send_window.as_ref().and_then(|w| {
            let start = parse_hhmm(&w.value.start.value);
            let end = parse_hhmm(&w.value.end.value);
            for (v, t) in [(&w.value.start, start), (&w.value.end, end)] {
                if t.is_none() {
                    errors.push(source.error_at(
                        v.referenced,
                        format!("{:?} is not a time of day; write HH:MM, e.g. \"09:00\"", v.value),
                    ));
                }
            }
            let (start, end) = (start?, end?);
            if start >= end {
                errors.push(source.error_at(
                    w.referenced,
                    format!(
                        "send_window starts at {} and ends at {}: the start must come first (windows do not cross midnight)",
                        start.format("%H:%M"),
                        end.format("%H:%M")
                    ),
                ));
                return None;
            }
            Some(SendWindow { start, end })
        });
        let catch_up = match &self.catch_up {
            Some(c) => parse_duration(&c.value)
                .map_err(|e| errors.push(source.error_at(c.referenced, format!("catch_up: {e}"))))
                .ok(),
            None => Some(chrono::Duration::days(DEFAULT_CATCH_UP_DAYS)),
        };
        Some(Campaign {
            id: id?,
            name: self.name.clone().unwrap_or_else(|| stem.clone()),
            enabled: self.enabled.unwrap_or(true),
            schedule,
            timezone,
            trigger: trigger?,
            audience: audience?,
            coupon: match (&self.coupon, coupon) {
                (Some(_), None) => return None,
                (_, c) => c,
            },
            channels,
            template,
            send_window,
            priority: self.priority.unwrap_or(0),
            catch_up: catch_up?,
            path: source.path.clone(),
        })
    }

    fn check_trigger(
        &self,
        source: &YamlSource,
        env: &CheckEnv<'_>,
        errors: &mut Vec<FileError>,
    ) -> Option<Trigger> {
        let t = &self.trigger.value;
        let kind = t.kind.value.trim();
        // Which fields belong to which trigger type.
        let fields: [(&str, bool, &[&str]); 5] = [
            ("days_before", t.days_before.is_some(), &["birthday"]),
            ("inactive_days", t.inactive_days.is_some(), &["lapsed"]),
            (
                "max_inactive_days",
                t.max_inactive_days.is_some(),
                &["lapsed"],
            ),
            ("segment", t.segment.is_some(), &["segment_entered"]),
            ("at", t.at.is_some(), &["broadcast"]),
        ];
        if !TRIGGERS.contains(&kind) {
            errors.push(source.error_at(
                t.kind.referenced,
                format!(
                    "unknown trigger type {kind:?}; {}",
                    with_suggestion(kind, &TRIGGERS)
                ),
            ));
            return None;
        }
        let mut ok = true;
        for (field, present, types) in fields {
            if present && !types.contains(&kind) {
                errors.push(source.error_at(
                    self.trigger.referenced,
                    format!(
                        "trigger field {field} belongs to a {} trigger, not {kind}",
                        types.join(" or ")
                    ),
                ));
                ok = false;
            }
        }
        let missing = |field: &str, example: &str| {
            source.error_at(
                self.trigger.referenced,
                format!("a {kind} trigger needs {field}, e.g. {field}: {example}"),
            )
        };
        let trigger = match kind {
            "birthday" => {
                let days_before = match &t.days_before {
                    Some(v) => days(source, "days_before", v, 0, 60, errors)?,
                    None => 0,
                };
                Trigger::Birthday { days_before }
            }
            "lapsed" => {
                let Some(v) = &t.inactive_days else {
                    errors.push(missing("inactive_days", "30"));
                    return None;
                };
                let inactive_days = days(source, "inactive_days", v, 1, 3650, errors)?;
                let max_inactive_days = match &t.max_inactive_days {
                    Some(m) => {
                        let max = days(source, "max_inactive_days", m, 1, 3650, errors)?;
                        if max < inactive_days {
                            errors.push(source.error_at(
                                m.referenced,
                                format!(
                                    "max_inactive_days ({max}) is less than inactive_days ({inactive_days}): nobody would ever qualify"
                                ),
                            ));
                            return None;
                        }
                        Some(max)
                    }
                    None => None,
                };
                Trigger::Lapsed {
                    inactive_days,
                    max_inactive_days,
                }
            }
            "segment_entered" => {
                let Some(s) = &t.segment else {
                    errors.push(missing("segment", "at_risk"));
                    return None;
                };
                let segment = resolve_segment(source, env, s, errors)?;
                Trigger::SegmentEntered { segment }
            }
            _ => {
                let Some(at) = &t.at else {
                    if self.schedule.is_none() {
                        errors.push(source.error_at(
                            self.trigger.referenced,
                            "a broadcast needs at (one send, e.g. at: 2026-12-24T10:00:00) or a schedule (one send per tick, e.g. schedule: \"0 10 8 * *\" for the 8th of every month)",
                        ));
                        return None;
                    }
                    return ok.then_some(Trigger::Broadcast {
                        at: None,
                        absolute: None,
                    });
                };
                match parse_at(&at.value) {
                    Ok((at, absolute)) => Trigger::Broadcast {
                        at: Some(at),
                        absolute,
                    },
                    Err(e) => {
                        errors.push(source.error_at(at.referenced, e));
                        return None;
                    }
                }
            }
        };
        ok.then_some(trigger)
    }

    fn check_audience(
        &self,
        source: &YamlSource,
        env: &CheckEnv<'_>,
        errors: &mut Vec<FileError>,
    ) -> Option<Audience> {
        let Some(raw) = &self.audience else {
            return Some(Audience::default());
        };
        let before = errors.len();
        let mut audience = Audience::default();
        for s in raw.segments.iter().flatten() {
            if let Some(r) = resolve_segment(source, env, s, errors) {
                audience.segments.push(r);
            }
        }
        for s in raw.exclude_segments.iter().flatten() {
            if let Some(r) = resolve_segment(source, env, s, errors) {
                if audience.segments.contains(&r) {
                    errors.push(source.error_at(
                        s.referenced,
                        format!(
                            "segment {} is both included and excluded; nobody of it would be reached",
                            r.name()
                        ),
                    ));
                }
                audience.exclude_segments.push(r);
            }
        }
        for s in raw.stores.iter().flatten() {
            let known: Vec<&str> = env.stores.iter().map(String::as_str).collect();
            match StoreCode::parse(&s.value) {
                Ok(code) if known.contains(&code.as_str()) => audience.stores.push(code),
                _ => errors.push(source.error_at(
                    s.referenced,
                    format!(
                        "unknown store {:?}; {}",
                        s.value,
                        if known.is_empty() {
                            "no stores are known yet (import customers or list stores in outreach.toml)".to_owned()
                        } else {
                            with_suggestion(&s.value, &known)
                        }
                    ),
                )),
            }
        }
        if let Some(w) = &raw.filter {
            match Expr::parse(&w.value, &env.expr_context()) {
                Ok(e) => audience.filter = Some(e),
                Err(e) => {
                    let (line, column) = source.column_in_scalar(w, e.column());
                    errors.push(source.error_at_line(
                        line,
                        column,
                        match e.hint() {
                            Some(hint) => format!("where: {}; {hint}", e.message()),
                            None => format!("where: {}", e.message()),
                        },
                    ));
                }
            }
        }
        (errors.len() == before).then_some(audience)
    }

    fn check_coupon(
        &self,
        source: &YamlSource,
        id: Option<&CampaignId>,
        errors: &mut Vec<FileError>,
    ) -> Option<CouponSpec> {
        let c = &self.coupon.as_ref()?.value;
        let at = self.coupon.as_ref()?.referenced;
        let before = errors.len();
        let kind = match c.kind.value.trim() {
            "amount_off" => CouponKind::AmountOff,
            "percent_off" => CouponKind::PercentOff,
            "free_item" => CouponKind::FreeItem,
            other => {
                errors.push(source.error_at(
                    c.kind.referenced,
                    format!(
                        "unknown coupon kind {other:?}; {}",
                        with_suggestion(other, &COUPON_KINDS)
                    ),
                ));
                return None;
            }
        };
        let value = match (kind, &c.value) {
            (CouponKind::FreeItem, None) => 0,
            (_, None) => {
                errors.push(source.error_at(
                    at,
                    match kind {
                        CouponKind::AmountOff => "an amount_off coupon needs value: the yuan off, e.g. value: 10",
                        _ => "a percent_off coupon needs value: the percent off, e.g. value: 15 (8.5折)",
                    },
                ));
                0
            }
            (_, Some(v)) if v.value < 0.0 || v.value.is_nan() => {
                errors.push(source.error_at(
                    v.referenced,
                    format!("coupon value {} is negative; write the discount as a positive number, e.g. value: 10", v.value),
                ));
                0
            }
            (CouponKind::AmountOff, Some(v)) => match yuan_to_fen(v.value) {
                Some(f) if f > 0 => f,
                _ => {
                    errors.push(source.error_at(
                        v.referenced,
                        format!("coupon value {} must be yuan above 0 with at most two decimals, e.g. 10 or 8.8", v.value),
                    ));
                    0
                }
            },
            (CouponKind::PercentOff, Some(v)) => {
                if v.value.fract() != 0.0 || !(1.0..=99.0).contains(&v.value) {
                    errors.push(source.error_at(
                        v.referenced,
                        format!("percent_off value {} must be a whole percent from 1 to 99 (15 means 15% off, 8.5折)", v.value),
                    ));
                }
                v.value as i64
            }
            (CouponKind::FreeItem, Some(v)) => yuan_to_fen(v.value).unwrap_or(0),
        };
        let item = c.item.as_ref().map(|i| i.value.trim().to_owned());
        match (kind, &item) {
            (CouponKind::FreeItem, None) => errors.push(source.error_at(
                at,
                "a free_item coupon needs item: what is free, e.g. item: 豆浆",
            )),
            (CouponKind::FreeItem, Some(i)) if i.is_empty() || i.chars().count() > 10 => errors
                .push(source.error_at(
                    c.item.as_ref().map_or(at, |i| i.referenced),
                    "item must be 1 to 10 characters, e.g. item: 豆浆",
                )),
            (CouponKind::FreeItem, Some(_)) => {}
            (_, Some(_)) => errors.push(source.error_at(
                c.item.as_ref().map_or(at, |i| i.referenced),
                "item belongs to a free_item coupon only",
            )),
            (_, None) => {}
        }
        let min_spend_fen = match &c.min_spend {
            Some(m) => match yuan_to_fen(m.value).filter(|f| *f >= 0) {
                Some(f) => f,
                None => {
                    errors.push(source.error_at(
                        m.referenced,
                        format!(
                            "min_spend {} must be yuan, 0 or more, with at most two decimals",
                            m.value
                        ),
                    ));
                    0
                }
            },
            None => 0,
        };
        if kind == CouponKind::AmountOff && min_spend_fen > 0 && value > min_spend_fen {
            errors.push(source.error_at(
                at,
                "the coupon's value is more than its min_spend: the shop would pay the customer",
            ));
        }
        let valid_days = match &c.valid_days {
            Some(v) => days(source, "valid_days", v, 1, 366, errors).unwrap_or(0),
            None => DEFAULT_VALID_DAYS,
        };
        let code_prefix = match &c.code_prefix {
            Some(p) => {
                if let Err(e) = check_prefix(&p.value) {
                    errors.push(source.error_at(p.referenced, e));
                }
                p.value.clone()
            }
            None => default_prefix(id),
        };
        (errors.len() == before).then_some(CouponSpec {
            kind,
            value,
            item,
            min_spend_fen,
            valid_days,
            code_prefix,
        })
    }

    fn check_channels(&self, source: &YamlSource, errors: &mut Vec<FileError>) -> Vec<Channel> {
        let mut out: Vec<Channel> = Vec::new();
        if self.channels.value.is_empty() {
            errors.push(source.error_at(
                self.channels.referenced,
                "channels is empty; list them in order of preference, e.g. channels: [wechat, sms, email]",
            ));
        }
        for c in &self.channels.value {
            match c.value.parse::<Channel>() {
                Ok(ch) if out.contains(&ch) => errors
                    .push(source.error_at(c.referenced, format!("channel {ch} is listed twice"))),
                Ok(ch) => out.push(ch),
                Err(_) => errors.push(source.error_at(
                    c.referenced,
                    format!(
                        "unknown channel {:?}; {}",
                        c.value,
                        with_suggestion(&c.value, &CHANNELS)
                    ),
                )),
            }
        }
        out
    }
}

/// `birthday-treat` → `BIRTHDAY`: the id's first letters and digits.
fn default_prefix(id: Option<&CampaignId>) -> String {
    let p: String = id
        .map(|i| i.as_str())
        .unwrap_or("")
        .chars()
        .take_while(|c| *c != '-' && *c != '_')
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .take(8)
        .collect();
    if p.is_empty() { "CPN".to_owned() } else { p }
}

fn resolve_segment(
    source: &YamlSource,
    env: &CheckEnv<'_>,
    s: &Spanned<String>,
    errors: &mut Vec<FileError>,
) -> Option<SegmentRef> {
    let name = s.value.trim();
    match SegmentRef::resolve(name, &env.custom_segments) {
        Some(r) => Some(r),
        None => {
            let names = env.segment_names();
            errors.push(source.error_at(
                s.referenced,
                format!(
                    "unknown segment {name:?}; {} (custom segments are defined in campaigns/segments.yaml)",
                    with_suggestion(name, &names)
                ),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests;

//! `outreach logs`: the send log, newest first, a page at a time, as a
//! table, JSON Lines or CSV; `outreach logs ID` shows one message with every
//! provider call and retry. Addresses are masked unless `--reveal`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::open_store_to_read;
use crate::campaigns::outbox::MessageStatus;
use crate::campaigns::spec::CampaignId;
use crate::cli::{LogsArgs, LogsFormat};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::dispatch::claim::MessageDetail;
use crate::domain::CustomerId;
use crate::store::send_log::{parse_status, parse_time_bound};
use crate::store::{Channel, LogCursor, SendLogQuery, SendLogRow};

/// `outreach logs [ID]`
pub async fn logs(
    settings: &Settings,
    clock: SharedClock,
    args: &LogsArgs,
    config: Option<&Path>,
) -> Result<u8> {
    if let Some(id) = args.message_id() {
        return show(settings, args, id).await;
    }
    let query = query_of(args, clock.now())?;
    let store = open_store_to_read(settings).await?;
    let page = store.send_log(&query).await?;
    let rows: Vec<SendLogRow> = page
        .rows
        .into_iter()
        .map(|r| if args.reveal { r } else { r.masked() })
        .collect();
    let mut out = std::io::stdout().lock();
    match args.format {
        LogsFormat::Table => write_table(&mut out, &rows, settings.default_tz())?,
        LogsFormat::Json => {
            for r in &rows {
                serde_json::to_writer(&mut out, r)?;
                out.write_all(b"\n")?;
            }
        }
        LogsFormat::Csv => write_csv(&mut out, &rows)?,
    }
    out.flush()?;
    if let Some(next) = page.next {
        eprintln!("more: {}", next_command(args, &query, next, config));
    }
    Ok(0)
}

/// The filters of `args` as a store query, or one sentence naming the bad one.
pub fn query_of(args: &LogsArgs, now: DateTime<Utc>) -> Result<SendLogQuery> {
    let campaign = args
        .campaign
        .as_deref()
        .map(|c| CampaignId::parse(c.trim()).map(|c| c.as_str().to_owned()))
        .transpose()
        .map_err(|e| anyhow!("--campaign: {e}"))?;
    let channel = args
        .channel
        .as_deref()
        .map(str::parse::<Channel>)
        .transpose()
        .map_err(|e| anyhow!("--channel: {e}"))?;
    let status = args
        .status
        .as_deref()
        .map(parse_status)
        .transpose()
        .map_err(|e| anyhow!("--status: {e}"))?;
    let customer = args
        .customer
        .as_deref()
        .map(|c| CustomerId::parse(c.trim()).map(|c| c.as_str().to_owned()))
        .transpose()
        .map_err(|e| anyhow!("--customer: {e}"))?;
    let since = args
        .since
        .as_deref()
        .map(|t| parse_time_bound(t, now))
        .transpose()
        .map_err(|e| anyhow!("--since: {e}"))?;
    let until = args
        .until
        .as_deref()
        .map(|t| parse_time_bound(t, now))
        .transpose()
        .map_err(|e| anyhow!("--until: {e}"))?;
    let before = args
        .before
        .as_deref()
        .map(str::parse::<LogCursor>)
        .transpose()
        .map_err(|e| anyhow!("--before: {e}"))?;
    Ok(SendLogQuery {
        campaign,
        channel,
        status,
        customer,
        since,
        until,
        before,
        limit: args.limit,
    })
}

/// The command that reads the next page: the same filters (times made
/// absolute, so the page does not move with the clock) and `--before`.
fn next_command(
    args: &LogsArgs,
    q: &SendLogQuery,
    next: LogCursor,
    config: Option<&Path>,
) -> String {
    let mut words: Vec<String> = vec!["outreach".into()];
    if let Some(c) = config {
        words.push("--config".into());
        words.push(c.display().to_string());
    }
    words.push("logs".into());
    let mut flag = |name: &str, value: String| {
        words.push(format!("--{name}"));
        words.push(value);
    };
    if let Some(c) = &q.campaign {
        flag("campaign", c.clone());
    }
    if let Some(c) = q.channel {
        flag("channel", c.as_str().to_owned());
    }
    if let Some(s) = q.status {
        flag("status", s.as_str().to_owned());
    }
    if let Some(c) = &q.customer {
        flag("customer", c.clone());
    }
    if let Some(t) = q.since {
        flag("since", t.to_rfc3339());
    }
    if let Some(t) = q.until {
        flag("until", t.to_rfc3339());
    }
    if args.limit != crate::store::send_log::DEFAULT_LIMIT {
        flag("limit", args.limit.to_string());
    }
    match args.format {
        LogsFormat::Table => {}
        LogsFormat::Json => flag("format", "json".into()),
        LogsFormat::Csv => flag("format", "csv".into()),
    }
    flag("before", next.to_string());
    if args.reveal {
        words.push("--reveal".into());
    }
    words
        .iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `w` quoted for a POSIX shell when it needs to be.
fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/+@=,".contains(c));
    if plain {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Why a message has not (yet) gone out, in a few words; `-` once it has.
pub fn why(r: &SendLogRow, tz: Tz) -> String {
    let reason = r.reason.as_deref();
    match r.status {
        MessageStatus::Sent | MessageStatus::Delivered => "-".into(),
        MessageStatus::Sending => format!(
            "being sent{}",
            r.provider
                .as_deref()
                .map(|p| format!(" via {p}"))
                .unwrap_or_default()
        ),
        MessageStatus::Queued | MessageStatus::Deferred => {
            let when = r
                .next_attempt_at
                .map(|t| format!("due {}", local(t, tz)))
                .unwrap_or_else(|| "not scheduled".into());
            match reason {
                Some(reason) => format!("{reason}, {when}"),
                None => when,
            }
        }
        MessageStatus::Failed | MessageStatus::Dead | MessageStatus::Suppressed => reason
            .map(str::to_owned)
            .or_else(|| r.detail.clone())
            .unwrap_or_else(|| "no reason recorded".into()),
    }
}

fn write_table(out: &mut impl Write, rows: &[SendLogRow], tz: Tz) -> Result<()> {
    if rows.is_empty() {
        writeln!(out, "no messages match")?;
        return Ok(());
    }
    let header = [
        "ID".to_owned(),
        format!("CREATED ({})", tz.name()),
        "CAMPAIGN".into(),
        "CUSTOMER".into(),
        "CHANNEL".into(),
        "PROVIDER".into(),
        "ADDRESS".into(),
        "STATUS".into(),
        "TRIES".into(),
        "COUPON".into(),
        "WHY NOT SENT".into(),
    ];
    let dash = || "-".to_owned();
    let lines: Vec<[String; 11]> = rows
        .iter()
        .map(|r| {
            [
                r.id.to_string(),
                local(r.created_at, tz),
                r.campaign_id.clone(),
                r.customer_id.clone(),
                r.channel
                    .map(|c| c.as_str().to_owned())
                    .unwrap_or_else(dash),
                r.provider.clone().unwrap_or_else(dash),
                r.address.clone().unwrap_or_else(dash),
                r.status.as_str().to_owned(),
                r.attempts.to_string(),
                r.coupon_code.clone().unwrap_or_else(dash),
                why(r, tz),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for l in &lines {
        for (w, cell) in widths.iter_mut().zip(l) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for l in std::iter::once(&header).chain(&lines) {
        let mut line = String::new();
        for (i, (cell, w)) in l.iter().zip(widths).enumerate() {
            if i + 1 == l.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Columns of `--format csv`.
const CSV_HEADER: [&str; 17] = [
    "id",
    "created_at",
    "campaign_id",
    "customer_id",
    "occurrence",
    "channel",
    "provider",
    "address",
    "status",
    "reason",
    "detail",
    "attempts",
    "provider_message_id",
    "coupon_code",
    "sent_at",
    "next_attempt_at",
    "updated_at",
];

fn write_csv(out: &mut impl Write, rows: &[SendLogRow]) -> Result<()> {
    csv_record(out, CSV_HEADER.iter().map(|h| h.to_string()))?;
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for r in rows {
        csv_record(
            out,
            [
                r.id.to_string(),
                r.created_at.to_rfc3339(),
                r.campaign_id.clone(),
                r.customer_id.clone(),
                r.occurrence.clone(),
                r.channel.map(|c| c.as_str().to_owned()).unwrap_or_default(),
                r.provider.clone().unwrap_or_default(),
                r.address.clone().unwrap_or_default(),
                r.status.as_str().to_owned(),
                r.reason.clone().unwrap_or_default(),
                r.detail.clone().unwrap_or_default(),
                r.attempts.to_string(),
                r.provider_message_id.clone().unwrap_or_default(),
                r.coupon_code.clone().unwrap_or_default(),
                time(r.sent_at),
                time(r.next_attempt_at),
                r.updated_at.to_rfc3339(),
            ],
        )?;
    }
    Ok(())
}

/// A cell a spreadsheet would run as a formula (it starts with `=`, `+`, `-`,
/// `@`, a tab or a CR) gets a leading apostrophe, which spreadsheets show as
/// text: customer ids and provider texts come from outside, and a phone
/// number's `+` alone makes Excel compute the cell. `--format json` is the
/// format for programs and keeps every value as it is.
fn spreadsheet_safe(field: String) -> String {
    if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{field}")
    } else {
        field
    }
}

/// One RFC 4180 record: fields with a comma, quote, CR or LF are quoted,
/// inner quotes doubled; lines end in CRLF. Formula-like cells are
/// neutralised ([`spreadsheet_safe`]).
fn csv_record(out: &mut impl Write, fields: impl IntoIterator<Item = String>) -> Result<()> {
    let mut line = String::new();
    for (i, f) in fields.into_iter().enumerate() {
        let f = spreadsheet_safe(f);
        if i > 0 {
            line.push(',');
        }
        if f.contains([',', '"', '\r', '\n']) {
            line.push('"');
            line.push_str(&f.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(&f);
        }
    }
    line.push_str("\r\n");
    out.write_all(line.as_bytes())?;
    Ok(())
}

/// `outreach logs ID`
async fn show(settings: &Settings, args: &LogsArgs, id: i64) -> Result<u8> {
    if args.format == LogsFormat::Csv {
        bail!("--format csv lists messages; show one message with --format table or json");
    }
    let store = open_store_to_read(settings).await?;
    let m = store
        .message_detail(id)
        .await?
        .with_context(|| format!("no message has id {id}"))?;
    let m = if args.reveal { m } else { m.masked() };
    let mut out = std::io::stdout().lock();
    match args.format {
        LogsFormat::Json => {
            serde_json::to_writer(&mut out, &m)?;
            out.write_all(b"\n")?;
        }
        _ => write_detail(&mut out, &m, settings.default_tz())?,
    }
    out.flush()?;
    Ok(0)
}

fn write_detail(out: &mut impl Write, m: &MessageDetail, tz: Tz) -> Result<()> {
    let dash = "-";
    let at = |t: Option<DateTime<Utc>>| t.map(|t| local(t, tz)).unwrap_or_else(|| dash.into());
    writeln!(
        out,
        "message {}: campaign {}, customer {}, occurrence {}",
        m.id, m.campaign_id, m.customer_id, m.occurrence
    )?;
    let status = match &m.reason {
        Some(r) => format!("{} ({r})", m.status),
        None => m.status.clone(),
    };
    let fields = [
        ("status", status),
        ("detail", m.detail.clone().unwrap_or_else(|| dash.into())),
        ("channel", m.channel.clone().unwrap_or_else(|| dash.into())),
        (
            "provider",
            m.provider.clone().unwrap_or_else(|| dash.into()),
        ),
        ("address", m.address.clone().unwrap_or_else(|| dash.into())),
        (
            "coupon",
            m.coupon_code.clone().unwrap_or_else(|| dash.into()),
        ),
        (
            "provider id",
            m.provider_message_id.clone().unwrap_or_else(|| dash.into()),
        ),
        (
            "created",
            format!("{} ({})", local(m.created_at, tz), tz.name()),
        ),
        ("next attempt", at(m.next_attempt_at)),
        ("sent", at(m.sent_at)),
        ("updated", local(m.updated_at, tz)),
        ("attempts", m.attempts.to_string()),
    ];
    for (k, v) in fields {
        writeln!(out, "  {k:<13}{v}")?;
    }
    if m.history.is_empty() {
        writeln!(out, "no provider calls yet")?;
    } else {
        writeln!(out, "provider calls:")?;
        for a in &m.history {
            let mut line = format!(
                "  #{:<3} {}  {:<8} {:<13}",
                a.attempt,
                local(a.at, tz),
                a.provider,
                a.outcome
            );
            if let Some(code) = &a.provider_code {
                line.push_str(&format!(" {code}"));
            }
            if let Some(d) = &a.detail {
                line.push_str(&format!(": {d}"));
            }
            writeln!(out, "{}", line.trim_end())?;
        }
    }
    for r in &m.retries {
        let was = match &r.previous_reason {
            Some(reason) => format!("{} ({reason})", r.previous_status),
            None => r.previous_status.clone(),
        };
        writeln!(
            out,
            "retried {} by {}: it was {was} after {} call(s)",
            local(r.at, tz),
            r.actor,
            r.previous_attempts
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_cells_are_shown_as_text() {
        let mut out = Vec::new();
        csv_record(
            &mut out,
            [
                "=HYPERLINK(\"http://x\")".to_owned(),
                "+86138****0002".to_owned(),
                "-1".to_owned(),
                "@SUM(A1)".to_owned(),
                "C0001".to_owned(),
                "a,b".to_owned(),
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"'=HYPERLINK(\"\"http://x\"\")\",'+86138****0002,'-1,'@SUM(A1),C0001,\"a,b\"\r\n"
        );
    }

    #[test]
    fn csv_fields_are_quoted_as_rfc_4180_says() {
        let mut out = Vec::new();
        csv_record(
            &mut out,
            [
                "plain".to_owned(),
                "a,b".into(),
                "say \"hi\"".into(),
                "two\nlines".into(),
                String::new(),
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\r\n"
        );
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("--before"), "--before");
        assert_eq!(
            shell_word("2026-11-24T08:00:00+00:00"),
            "2026-11-24T08:00:00+00:00"
        );
        assert_eq!(shell_word("my config.toml"), "'my config.toml'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}

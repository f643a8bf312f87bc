//! `outreach campaigns check`, `outreach campaigns preview ID` and
//! `outreach jobs run campaign:ID`.

use anyhow::{Context, Result};
use serde_json::json;

use super::open_store;
use crate::campaigns::run::{self, Mode, RunInputs, RunReport, RunSettings};
use crate::campaigns::stats::CampaignStats;
use crate::campaigns::{Campaign, Loaded, Trigger, load};
use crate::cli::{
    CampaignsCheckArgs, CampaignsPreviewArgs, CampaignsStatsArgs, JobRunArgs, OutputFormat,
};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::store::Store;
use crate::templates::Rendered;
use crate::unsubscribe::LinkSigner;

/// What the configuration says every run follows.
pub fn run_settings(settings: &Settings) -> Result<RunSettings> {
    Ok(settings.run_settings()?)
}

/// A trigger in words.
pub fn describe_trigger(c: &Campaign) -> String {
    match &c.trigger {
        Trigger::Birthday { days_before: 0 } => "on the birthday".to_owned(),
        Trigger::Birthday { days_before } => format!("{days_before} day(s) before the birthday"),
        Trigger::Lapsed {
            inactive_days,
            max_inactive_days: Some(m),
        } => format!("no order for {inactive_days}–{m} days (once per lapse)"),
        Trigger::Lapsed { inactive_days, .. } => {
            format!("no order for {inactive_days}+ days (once per lapse)")
        }
        Trigger::SegmentEntered { segment } => format!("on entering {}", segment.name()),
        Trigger::Broadcast { at: Some(at), .. } => {
            format!("once, at {}", at.format("%Y-%m-%d %H:%M"))
        }
        Trigger::Broadcast { at: None, .. } => "every scheduled time".to_owned(),
    }
}

/// `outreach campaigns check [DIR]`; exit 1 on any error.
pub async fn check(
    settings: &Settings,
    clock: SharedClock,
    args: &CampaignsCheckArgs,
) -> Result<u8> {
    let store = open_store(settings, &clock).await?;
    let dir = args.dir.as_deref().unwrap_or(&settings.campaigns_dir);
    if !dir.is_dir() {
        anyhow::bail!("the campaigns folder {} does not exist", dir.display());
    }
    let loaded = load(store.as_ref(), dir, &settings.templates_dir).await?;
    match args.format {
        OutputFormat::Json => {
            let campaigns: Vec<_> = loaded
                .campaigns
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id.as_str(),
                        "name": c.name,
                        "file": c.path,
                        "enabled": c.enabled,
                        "trigger": c.trigger.kind(),
                        "trigger_text": describe_trigger(c),
                        "schedule": c.schedule.as_ref().map(|s| s.source()),
                        "schedule_text": c.schedule.as_ref().map(|s| s.describe()),
                        "channels": c.channels,
                        "template": c.template,
                        "priority": c.priority,
                    })
                })
                .collect();
            println!(
                "{}",
                json!({
                    "ok": loaded.errors.is_empty(),
                    "files": loaded.files,
                    "campaigns": campaigns,
                    "errors": loaded.errors,
                })
            );
        }
        OutputFormat::Table => {
            for e in &loaded.errors {
                println!("{e}");
            }
            for c in &loaded.campaigns {
                println!(
                    "ok  {:<14} {}  [{}]  {}{}",
                    c.id.as_str(),
                    c.name,
                    describe_trigger(c),
                    c.schedule
                        .as_ref()
                        .map(|s| format!("{} ({})", s.source(), s.describe()))
                        .unwrap_or_else(|| "no schedule".to_owned()),
                    if c.enabled { "" } else { "  (disabled)" }
                );
            }
            println!(
                "{} campaign file(s): {} ok, {} error(s) in {} file(s)",
                loaded.files.len(),
                loaded.campaigns.len(),
                loaded.errors.len(),
                loaded.failed_files().len()
            );
        }
    }
    Ok(if loaded.errors.is_empty() { 0 } else { 1 })
}

/// Load everything and find campaign `id`; its file's errors are printed on
/// stderr when it (or anything it depends on) is broken.
async fn load_campaign(store: &dyn Store, settings: &Settings, id: &str) -> Result<Option<Loaded>> {
    let loaded = load(store, &settings.campaigns_dir, &settings.templates_dir).await?;
    if loaded.campaign(id).is_some() {
        return Ok(Some(loaded));
    }
    // The campaign's own file (named after its id), and the templates it
    // uses, whose errors say "(used by campaigns/ID.yaml)".
    let used_by = [".yaml", ".yml"].map(|ext| {
        format!(
            "(used by {})",
            settings.campaigns_dir.join(format!("{id}{ext}")).display()
        )
    });
    let own: Vec<_> = loaded
        .errors
        .iter()
        .filter(|e| {
            e.file
                .file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| s == id)
                || used_by.iter().any(|u| e.message.ends_with(u.as_str()))
        })
        .collect();
    if own.is_empty() {
        let known: Vec<&str> = loaded.campaigns.iter().map(|c| c.id.as_str()).collect();
        let failed = loaded.failed_files().len();
        eprintln!(
            "error: no campaign {id:?} in {}; campaigns: {}{}",
            settings.campaigns_dir.display(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
            if failed > 0 {
                format!(
                    " ({failed} file(s) have errors and may define it: see `outreach campaigns check`)"
                )
            } else {
                String::new()
            }
        );
    } else {
        for e in own {
            eprintln!("{e}");
        }
        eprintln!("error: campaign {id} has errors; fix them (see `outreach campaigns check`)");
    }
    Ok(None)
}

async fn run_with(
    settings: &Settings,
    store: &dyn Store,
    loaded: &Loaded,
    id: &str,
    now: chrono::DateTime<chrono::Utc>,
    mode: Mode,
) -> Result<RunReport> {
    let campaign = loaded.campaign(id).context("campaign vanished")?;
    let stores = store.stores().await?;
    let links = LinkSigner::from_settings(
        settings.http.link_secret.as_ref(),
        &settings.http.public_url,
        store,
    )
    .await?;
    let run_settings = run_settings(settings)?;
    let inputs = RunInputs {
        campaign,
        templates: &loaded.templates,
        stores: &stores,
        settings: &run_settings,
        links: &links,
    };
    Ok(run::run(store, &inputs, now, mode).await?)
}

fn print_report(report: &RunReport, preview: bool) {
    println!(
        "campaign {} ({}) at {}{}",
        report.campaign_id,
        report.trigger,
        report.now.map(|t| t.to_rfc3339()).unwrap_or_default(),
        if preview {
            " — preview, nothing written"
        } else {
            ""
        }
    );
    println!(
        "  candidates (due, in the audience, not yet messaged): {}",
        report.candidates
    );
    println!("  queued: {}", report.queued);
    println!("  deferred (outside the send window): {}", report.deferred);
    if report.suppressed.is_empty() {
        println!("  suppressed: 0");
    } else {
        let parts: Vec<String> = report
            .suppressed
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        println!(
            "  suppressed: {} ({})",
            report.suppressed_total(),
            parts.join(", ")
        );
    }
    println!("  coupons: {}", report.coupons);
    if !preview {
        println!(
            "  rows written: {} (already there: {})",
            report.written, report.already
        );
        if report.preempted > 0 {
            println!(
                "  replaced under the cap: {} lower-priority message(s) of today (now suppressed: capped, coupons voided)",
                report.preempted
            );
        }
    }
    for s in &report.samples {
        println!(
            "\n  {} → {} {} [{}{}]{}",
            s.customer_id,
            s.channel.map(|c| c.as_str()).unwrap_or("-"),
            s.address.as_deref().unwrap_or(""),
            s.status.as_str(),
            s.reason
                .map(|r| format!(": {}", r.as_str()))
                .unwrap_or_default(),
            s.coupon_code
                .as_deref()
                .map(|c| format!(" coupon {c}"))
                .unwrap_or_default()
        );
        if let Some(d) = &s.detail {
            println!("    {d}");
        }
        match &s.rendered {
            Some(Rendered::Sms { text, .. }) => println!("    {text}"),
            Some(Rendered::Email { subject, text, .. }) => {
                println!("    Subject: {subject}");
                for line in text.lines() {
                    println!("    {line}");
                }
            }
            Some(Rendered::Wechat {
                template_id, data, ..
            }) => {
                println!("    template {template_id}");
                for (k, v) in data {
                    println!("    {k}: {v}");
                }
            }
            None => {}
        }
    }
}

/// `outreach campaigns preview ID`.
pub async fn preview(
    settings: &Settings,
    clock: SharedClock,
    args: &CampaignsPreviewArgs,
) -> Result<u8> {
    let store = open_store(settings, &clock).await?;
    let Some(loaded) = load_campaign(store.as_ref(), settings, &args.id).await? else {
        return Ok(1);
    };
    let mode = Mode::Preview {
        samples: args.samples,
        customer: args.customer.clone(),
    };
    let report = run_with(
        settings,
        store.as_ref(),
        &loaded,
        &args.id,
        clock.now(),
        mode,
    )
    .await?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
        OutputFormat::Table => {
            print_report(&report, true);
            if let Some(cid) = &args.customer
                && report.samples.is_empty()
            {
                println!(
                    "\n  {cid} is not among the candidates: not due at this time, outside the audience, or already messaged for this occurrence"
                );
            }
        }
    }
    Ok(0)
}

/// `outreach campaigns stats [ID]`.
pub async fn stats(
    settings: &Settings,
    clock: SharedClock,
    args: &CampaignsStatsArgs,
) -> Result<u8> {
    let store = open_store(settings, &clock).await?;
    let stats = store.campaign_stats(args.id.as_deref()).await?;
    if let (Some(id), true) = (&args.id, stats.is_empty()) {
        anyhow::bail!(
            "campaign {id} has no messages yet (run it with `outreach jobs run campaign:{id}`)"
        );
    }
    match args.format {
        OutputFormat::Json => {
            for s in &stats {
                println!("{}", serde_json::to_string(s)?);
            }
        }
        OutputFormat::Table => print_stats(&stats),
    }
    Ok(0)
}

fn print_stats(stats: &[CampaignStats]) {
    if stats.is_empty() {
        println!("no campaign has messages yet");
        return;
    }
    println!(
        "{:<20} {:>8} {:>8} {:>8} {:>9} {:>7} {:>6} {:>10} {:>8} {:>8} {:>6} {:>12}",
        "campaign",
        "queued",
        "deferred",
        "sent",
        "delivered",
        "failed",
        "dead",
        "suppressed",
        "coupons",
        "redeemed",
        "rate",
        "revenue ¥"
    );
    for s in stats {
        println!(
            "{:<20} {:>8} {:>8} {:>8} {:>9} {:>7} {:>6} {:>10} {:>8} {:>8} {:>5.1}% {:>12}",
            s.campaign_id,
            s.count("queued"),
            s.count("deferred"),
            s.count("sent") + s.count("sending"),
            s.count("delivered"),
            s.count("failed"),
            s.count("dead"),
            s.count("suppressed"),
            s.coupons_issued,
            s.coupons_redeemed,
            s.redemption_rate * 100.0,
            s.revenue().to_string(),
        );
    }
    for s in stats
        .iter()
        .filter(|s| !s.suppressed.is_empty() || s.coupons_voided > 0)
    {
        let mut parts: Vec<String> = s
            .suppressed
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        if s.coupons_voided > 0 {
            parts.push(format!("coupons voided under the cap {}", s.coupons_voided));
        }
        println!("  {}: suppressed: {}", s.campaign_id, parts.join(", "));
    }
}

/// `outreach jobs run campaign:ID`.
pub async fn run_job(
    settings: &Settings,
    clock: SharedClock,
    id: &str,
    args: &JobRunArgs,
) -> Result<u8> {
    let store = open_store(settings, &clock).await?;
    let Some(loaded) = load_campaign(store.as_ref(), settings, id).await? else {
        return Ok(1);
    };
    let report = run_with(
        settings,
        store.as_ref(),
        &loaded,
        id,
        clock.now(),
        Mode::Write,
    )
    .await
    .with_context(|| format!("campaign {id} did not run"))?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
        OutputFormat::Table => print_report(&report, false),
    }
    Ok(0)
}

//! `outreach jobs run segments` and `outreach segments`.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;

use super::open_store;
use crate::cli::{JobRunArgs, OutputFormat, SegmentsArgs};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::domain::{CustomerId, Money};
use crate::segments::attributes::{CustomerAttributes, SegmentKind};
use crate::segments::{RecomputeMode, explain, job};

/// `outreach jobs run JOB`; returns the exit code.
pub async fn jobs_run(settings: &Settings, clock: SharedClock, args: &JobRunArgs) -> Result<u8> {
    match args.job.as_str() {
        "segments" => {}
        other if other.starts_with("campaign:") => {
            return super::campaigns::run_job(settings, clock, &other["campaign:".len()..], args)
                .await;
        }
        other => bail!("unknown job {other:?}; known jobs: segments, campaign:ID"),
    }
    let store = open_store(settings, &clock).await?;
    let request = if args.rebuild {
        job::Request::Rebuild
    } else if args.incremental {
        job::Request::Mode(RecomputeMode::Incremental)
    } else {
        job::Request::Mode(RecomputeMode::Full)
    };
    let report = match job::run(
        store.as_ref(),
        &settings.campaigns_dir,
        settings.default_tz(),
        clock.now(),
        request,
    )
    .await
    {
        Ok(r) => r,
        Err(job::JobError::File { errors, .. }) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "error: the segments job did not run: fix the {} error(s) above",
                errors.len()
            );
            return Ok(1);
        }
        Err(e) => return Err(e).context("the segments job failed"),
    };
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
        OutputFormat::Table => {
            println!(
                "segments: {} recompute in {:.2} s{}",
                report.mode,
                report.seconds,
                report
                    .full_reason
                    .as_deref()
                    .map(|r| format!(" (incremental not possible: {r})"))
                    .unwrap_or_default()
            );
            println!(
                "  customers recomputed from orders: {}\n  attribute rows changed: {}\n  transitions recorded: {}",
                report.outcome.recomputed, report.outcome.changed, report.outcome.transitions
            );
        }
    }
    Ok(0)
}

/// `outreach segments [--customer CID]`; returns the exit code.
pub async fn segments(settings: &Settings, clock: SharedClock, args: &SegmentsArgs) -> Result<u8> {
    let store = open_store(settings, &clock).await?;
    let Some(state) = job::previous_state(store.as_ref()).await? else {
        eprintln!(
            "error: no segments have been computed yet; run `outreach jobs run segments` first"
        );
        return Ok(1);
    };
    let file = match job::load_file(store.as_ref(), &settings.campaigns_dir).await {
        Ok(f) => f,
        Err(job::JobError::File { errors, .. }) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("error: fix the {} error(s) above", errors.len());
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    let plan = job::plan(
        store.as_ref(),
        &file,
        settings.default_tz(),
        clock.now(),
        RecomputeMode::Full,
    )
    .await?;
    if let Some(cid) = &args.customer {
        let id = CustomerId::parse(cid).map_err(|e| anyhow::anyhow!("--customer: {e}"))?;
        let Some(profile) = store.customer_profile(&id, &plan).await? else {
            let known = store.customer(&id).await?.is_some();
            if known {
                eprintln!(
                    "error: customer {cid} was added after the last segments run; run `outreach jobs run segments`"
                );
            } else {
                eprintln!("error: no customer with id {cid}");
            }
            return Ok(1);
        };
        let reasons = explain::reasons(&profile.attributes, &file, &plan);
        let tz = plan
            .day_of(profile.attributes.store.as_deref().unwrap_or(""))
            .tz;
        match args.format {
            OutputFormat::Json => println!(
                "{}",
                json!({
                    "customer": profile.attributes,
                    "scores": explain::scores(&profile.attributes),
                    "segments": reasons,
                    "memberships": profile.memberships,
                    "transitions": profile.transitions,
                    "computed_by_run_at": state.finished_at,
                })
            ),
            OutputFormat::Table => print_profile(&profile, &reasons, tz, state.finished_at),
        }
        return Ok(0);
    }
    let sizes = store.segment_sizes().await?;
    let total: u64 = sizes
        .iter()
        .filter(|s| s.kind == SegmentKind::Lifecycle)
        .map(|s| s.customers)
        .sum();
    // Custom segments defined but empty are listed too.
    let mut sizes = sizes;
    for s in &file.custom {
        if !sizes.iter().any(|x| x.segment == s.name) {
            sizes.push(crate::segments::SegmentSize {
                segment: s.name.clone(),
                kind: SegmentKind::Custom,
                customers: 0,
            });
        }
    }
    match args.format {
        OutputFormat::Json => println!(
            "{}",
            json!({ "customers": total, "computed_at": state.finished_at, "segments": sizes })
        ),
        OutputFormat::Table => {
            println!(
                "{total} customers, segments as of {}",
                state
                    .finished_at
                    .with_timezone(&settings.default_tz())
                    .format("%Y-%m-%d %H:%M %:z")
            );
            println!(
                "{:<28} {:<10} {:>10} {:>7}",
                "segment", "kind", "customers", "share"
            );
            for s in &sizes {
                let kind = match s.kind {
                    SegmentKind::Lifecycle => "lifecycle",
                    SegmentKind::Tier => "tier",
                    SegmentKind::Custom => "custom",
                };
                let share = if total == 0 {
                    0.0
                } else {
                    s.customers as f64 * 100.0 / total as f64
                };
                println!(
                    "{:<28} {:<10} {:>10} {:>6.1}%",
                    s.segment, kind, s.customers, share
                );
            }
        }
    }
    Ok(0)
}

fn print_profile(
    profile: &crate::segments::CustomerProfile,
    reasons: &[explain::Reason],
    tz: Tz,
    run_at: DateTime<Utc>,
) {
    let a: &CustomerAttributes = &profile.attributes;
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    let opt_local = |t: Option<DateTime<Utc>>| t.map_or("none".to_owned(), local);
    let yuan = |f: i64| format!("¥{}", Money::from_fen(f));
    println!(
        "customer {} · store {} · tags {}",
        a.customer_id,
        a.store.as_deref().unwrap_or("none"),
        if a.tags.is_empty() {
            "none".to_owned()
        } else {
            a.tags.join(";")
        }
    );
    println!(
        "figures from the segments run at {} (times in {})\n",
        local(run_at),
        tz.name()
    );
    let rows: Vec<(&str, String)> = vec![
        ("lifecycle", a.lifecycle.clone()),
        ("value_tier", a.value_tier.clone()),
        (
            "recency_days",
            a.recency_days.map_or("none".into(), |d| d.to_string()),
        ),
        ("order_count", a.order_count.to_string()),
        ("total_spent", yuan(a.total_spent_fen)),
        (
            "avg_order_value",
            a.avg_order_value_fen.map_or("none".into(), yuan),
        ),
        ("order_count_90d", a.order_count_90d.to_string()),
        ("spent_90d", yuan(a.spent_90d_fen)),
        ("spent_365d", yuan(a.spent_365d_fen)),
        ("first_order_at", opt_local(a.first_order_at)),
        ("last_order_at", opt_local(a.last_order_at)),
        (
            "favorite_daypart",
            a.favorite_daypart.clone().unwrap_or_else(|| "none".into()),
        ),
        (
            "r_score f_score m_score",
            match (a.r_score, a.f_score, a.m_score) {
                (Some(r), Some(f), Some(m)) => format!("{r} {f} {m}"),
                _ => "none".into(),
            },
        ),
        ("rfm", a.rfm.clone().unwrap_or_else(|| "none".into())),
        (
            "days_to_birthday",
            a.days_to_birthday.map_or("none".into(), |d| d.to_string()),
        ),
        ("joined", local(a.joined_at)),
    ];
    println!("attributes");
    for (k, v) in rows {
        println!("  {k:<24} {v}");
    }
    println!("  {:<24} {}", "scores", explain::scores(a));
    println!("\nsegments");
    for r in reasons {
        println!(
            "  {} {:<24} {}",
            if r.member { "in " } else { "not" },
            r.segment,
            r.why
        );
    }
    println!("\nrecent transitions");
    if profile.transitions.is_empty() {
        println!("  none");
    }
    for t in &profile.transitions {
        println!("  {}  {:<7} {}", local(t.at), t.change, t.segment);
    }
}

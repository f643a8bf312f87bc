//! What each subcommand does. `anyhow` lives here, at the edge.

pub mod campaigns;
pub mod logs;
pub mod segments;

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::cli::{DemoArgs, ExportFormat, ImportArgs, OptoutArgs, OutputFormat, RunArgs};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::demo::{self, Generator};
use crate::domain::{Email, Phone, StoreInfo, WeChatOpenId};
use crate::import::{self, ImportOptions, ParseContext};
use crate::store::{self, Channel, OptOut, SharedStore};

/// The demo shop's fixed seed: every default demo is the same shop.
pub const DEMO_SEED: u64 = 20_261_123;

/// Metadata key set once the demo shop has been seeded.
const DEMO_SEEDED: &str = "demo_seeded";

/// Open the configured store and register the stores of the configuration.
pub async fn open_store(settings: &Settings, clock: &SharedClock) -> Result<SharedStore> {
    let store = store::open(&settings.database.url, settings.database.max_connections)
        .await
        .context("cannot start")?;
    let configured = settings.store_infos()?;
    if !configured.is_empty() {
        store.upsert_stores(&configured, clock.now()).await?;
    }
    Ok(store)
}

/// Open the store to read, on a single connection, for a command that asks
/// one thing at a time (`logs`). It does not register the configured stores:
/// that is a write, and a read must not wait for a busy daemon's writer. With
/// a larger pool the first query after the migration check may open a second
/// connection before the first has been returned, and on PostgreSQL every
/// connection costs a TCP and often a TLS handshake.
pub async fn open_store_to_read(settings: &Settings) -> Result<SharedStore> {
    store::open(&settings.database.url, 1)
        .await
        .context("cannot start")
}

/// `outreach run`
pub async fn run(settings: &Settings, clock: SharedClock) -> Result<()> {
    let store = open_store(settings, &clock).await?;
    crate::daemon::run(settings, store, clock).await?;
    Ok(())
}

/// `outreach run --once`; returns the exit code (1 when a job failed).
pub async fn run_once(settings: &Settings, clock: SharedClock, args: &RunArgs) -> Result<u8> {
    let store = open_store(settings, &clock).await?;
    let report = crate::daemon::once(settings, store, clock).await?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
        OutputFormat::Table => print_once(&report),
    }
    Ok(report.exit_code())
}

fn print_once(r: &crate::daemon::OnceReport) {
    println!("outreach run --once at {}", r.now.to_rfc3339());
    println!(
        "  campaigns in force: {}{}",
        r.campaigns_in_force,
        if r.campaign_file_errors > 0 {
            format!(
                " ({} campaign-file error(s): see `outreach campaigns check`)",
                r.campaign_file_errors
            )
        } else {
            String::new()
        }
    );
    if r.jobs.ticks.is_empty() {
        println!("  jobs: none due");
    } else {
        println!("  jobs:");
        let width = r.jobs.ticks.iter().map(|t| t.job.len()).max().unwrap_or(0);
        for t in &r.jobs.ticks {
            println!(
                "    {:<width$}  {}  {:<7}  {:>6.2} s  {}{}",
                t.job,
                t.scheduled_for.to_rfc3339(),
                t.outcome.as_str(),
                t.seconds,
                t.summary,
                if t.folded > 0 {
                    format!(" (covers {} missed earlier tick(s))", t.folded)
                } else {
                    String::new()
                },
            );
        }
    }
    if r.jobs.taken_elsewhere > 0 {
        println!("  ticks run by another process: {}", r.jobs.taken_elsewhere);
    }
    if r.jobs.waiting_for_segments > 0 {
        println!(
            "  campaign ticks waiting for the segments run of another process: {}",
            r.jobs.waiting_for_segments
        );
    }
    let d = &r.dispatch;
    println!(
        "  dispatch: claimed {}, sent {}, failed {}, dead {}, retrying {}, rate-limited {}, awaiting receipt {}, failed over {}, outside send window {}",
        d.claimed,
        d.sent,
        d.failed,
        d.dead,
        d.retrying,
        d.rate_limited,
        d.outcome_unknown,
        d.failed_over,
        d.outside_window
    );
}

/// `outreach import KIND FILE`; returns the exit code (0 or 1).
pub async fn import(settings: &Settings, clock: SharedClock, args: &ImportArgs) -> Result<u8> {
    // Fail on an unreadable file before touching the database.
    import::source::FileFormat::from_path(&args.file)?;
    std::fs::File::open(&args.file).map_err(|source| import::ImportError::Open {
        path: args.file.clone(),
        source,
    })?;
    let store = open_store(settings, &clock).await?;
    let ctx = ParseContext::new(store.stores().await?, settings.default_tz());
    let options = ImportOptions {
        batch_size: settings.import.batch_size,
        progress: !args.no_progress,
        print_rejects: true,
    };
    let report = import::import_file(
        store.clone(),
        args.kind,
        &args.file,
        ctx,
        &options,
        clock.now(),
    )
    .await?;
    request_segments(settings, &store, &clock, report.stored_rows()).await?;
    match args.format {
        OutputFormat::Table => println!("{}", report.summary()),
        OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
    }
    Ok(report.exit_code())
}

/// A large import asks the daemon for a segments run (it runs within a
/// watchdog period, as an incremental recompute).
async fn request_segments(
    settings: &Settings,
    store: &SharedStore,
    clock: &SharedClock,
    rows: u64,
) -> Result<()> {
    let threshold = settings.scheduler.segments_after_import_rows;
    if threshold > 0 && rows >= threshold {
        store
            .set_meta(
                crate::scheduler::SEGMENTS_REQUESTED,
                &clock.now().to_rfc3339(),
            )
            .await?;
        tracing::info!(
            rows,
            "a segments run is requested; a running daemon starts it within a minute"
        );
    }
    Ok(())
}

/// `outreach demo`
pub async fn demo(settings: &Settings, clock: SharedClock, args: &DemoArgs) -> Result<()> {
    let stores = demo_stores(settings)?;
    let now = clock.now();
    if let Some(dir) = &args.export {
        return export_demo(dir, args, stores, now);
    }
    let store = open_store(settings, &clock).await?;
    if let Some(seeded) = store.meta(DEMO_SEEDED).await? {
        let counts = store.counts().await?;
        tracing::info!(
            customers = counts.customers,
            orders = counts.orders,
            seeded = %seeded,
            "the demo shop is already in the database; not seeding again"
        );
    } else {
        seed(&store, settings, args, stores, now).await?;
    }
    if args.seed_only {
        return Ok(());
    }
    crate::daemon::run(settings, store, clock).await?;
    Ok(())
}

fn demo_stores(settings: &Settings) -> Result<Vec<StoreInfo>> {
    let mut stores = demo::demo_stores();
    // A store configured in outreach.toml wins over the demo's of the same code.
    for s in settings.store_infos()? {
        stores.retain(|d| d.code != s.code);
        stores.push(s);
    }
    Ok(stores)
}

async fn seed(
    store: &SharedStore,
    settings: &Settings,
    args: &DemoArgs,
    stores: Vec<StoreInfo>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    store.upsert_stores(&stores, now).await?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(args.customers);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} seeding the demo shop [{bar:30}] {pos}/{len} customers {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let started = std::time::Instant::now();
    let generator = Generator::new(args.seed, args.customers, now, stores);
    let (customers, orders) =
        import::write_records(store, generator, settings.import.batch_size, now, |c, o| {
            if let Some(bar) = &bar {
                bar.set_position(c);
                bar.set_message(format!("{o} orders"));
            }
        })
        .await?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let marker = json!({ "seed": args.seed, "customers": customers, "orders": orders, "at": now.to_rfc3339() });
    store.set_meta(DEMO_SEEDED, &marker.to_string()).await?;
    tracing::info!(
        customers,
        orders,
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        "seeded the demo shop"
    );
    Ok(())
}

fn export_demo(
    dir: &Path,
    args: &DemoArgs,
    stores: Vec<StoreInfo>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut toml = String::from(
        "# Stores of the demo shop: use with --config to import the exported files.\n",
    );
    for s in &stores {
        toml.push_str(&format!(
            "\n[stores.{}]\nname = {:?}\nsms_signature = {:?}\ntimezone = {:?}\n",
            s.code.as_str(),
            s.name,
            s.sms_signature,
            s.timezone.name()
        ));
    }
    std::fs::write(dir.join("stores.toml"), toml)
        .with_context(|| format!("cannot write {}", dir.join("stores.toml").display()))?;
    let generator = Generator::new(args.seed, args.customers, now, stores.clone());
    let (customers, orders) = match args.export_format {
        ExportFormat::Csv => demo::write_csv_with_stores(generator, dir, &stores),
        ExportFormat::Jsonl => demo::write_jsonl_with_stores(generator, dir, &stores),
    }
    .with_context(|| format!("cannot write the demo files into {}", dir.display()))?;
    println!(
        "wrote {customers} customers and {orders} orders into {} (stores in stores.toml)",
        dir.display()
    );
    Ok(())
}

/// `outreach optout CHANNEL ADDRESS`
pub async fn optout(settings: &Settings, clock: SharedClock, args: &OptoutArgs) -> Result<()> {
    let (address, masked) = match args.channel {
        Channel::Sms => {
            let p = Phone::parse(&args.address)?;
            (p.as_str().to_owned(), p.masked())
        }
        Channel::Email => {
            let e = Email::parse(&args.address)?;
            (e.as_str().to_owned(), e.masked())
        }
        Channel::Wechat => {
            let w = WeChatOpenId::parse(&args.address)?;
            (w.as_str().to_owned(), w.masked())
        }
    };
    let store = open_store(settings, &clock).await?;
    let done = store
        .record_opt_out(&OptOut {
            channel: args.channel,
            address,
            source: "cli".into(),
            at: clock.now(),
        })
        .await?;
    if done.recorded {
        println!("opted out: no more {} messages to {masked}", args.channel);
    } else {
        println!("{masked} had already opted out of {}", args.channel);
    }
    if done.suppressed > 0 {
        println!(
            "{} unsent message(s) to {masked} are now suppressed (opted_out) and their coupons withdrawn",
            done.suppressed
        );
    }
    Ok(())
}

//! What each subcommand does. `anyhow` lives here, at the edge.

pub mod campaigns;
pub mod segments;

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::cli::{DemoArgs, ExportFormat, ImportArgs, OptoutArgs, OutputFormat};
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

/// `outreach run`
pub async fn run(settings: &Settings, clock: SharedClock) -> Result<()> {
    let store = open_store(settings, &clock).await?;
    crate::daemon::run(settings, store, clock).await?;
    Ok(())
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
    let report =
        import::import_file(store, args.kind, &args.file, ctx, &options, clock.now()).await?;
    match args.format {
        OutputFormat::Table => println!("{}", report.summary()),
        OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
    }
    Ok(report.exit_code())
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

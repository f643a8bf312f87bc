//! The daemon (`outreach run`): the scheduler, the campaign folder watcher,
//! the outbox worker and the ops HTTP server, until SIGINT/SIGTERM; and
//! `outreach run --once`: every due tick once, then the outbox drained.

use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use serde::Serialize;

use crate::campaigns::watch::{self, CampaignRegistry, ReloadKind, Reloader, WatchOptions};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::dispatch::routes::{RouteError, Routes};
use crate::dispatch::worker::{CampaignWindows, DispatchError, DispatchReport, Dispatcher};
use crate::http::{self, AppState};
use crate::scheduler::{Executor, PassReport, Scheduler};
use crate::store::SharedStore;
use crate::store::ticks::Retention;
use crate::unsubscribe::LinkSigner;

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "http.token is required when http.addr ({0}) is not a loopback address: set it in outreach.toml or OUTREACH_HTTP__TOKEN"
    )]
    TokenRequired(std::net::SocketAddr),
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error("providers: {0}")]
    Routes(#[from] RouteError),
    #[error("cannot read the unsubscribe-link key: {0}")]
    Links(#[from] crate::store::StoreError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("scheduler: {0}")]
    Scheduler(String),
    #[error("the scheduler could not look at its jobs: {0}")]
    Pass(#[from] crate::scheduler::ticker::PassError),
    #[error("dispatch: {0}")]
    Dispatch(#[from] DispatchError),
}

/// What `outreach run --once` did.
#[derive(Debug, Clone, Serialize)]
pub struct OnceReport {
    pub now: chrono::DateTime<chrono::Utc>,
    /// Ticks run or skipped.
    pub jobs: PassReport,
    /// What the outbox drain did.
    pub dispatch: DispatchReport,
    /// Campaign-file errors found while loading (the files' last good
    /// versions, if any, ran).
    pub campaign_file_errors: usize,
    pub campaigns_in_force: usize,
}

impl OnceReport {
    /// 0 when every job ran, 1 when one failed.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.jobs.failed() > 0)
    }
}

/// The dispatcher of this process.
fn dispatcher(
    settings: &Settings,
    store: &SharedStore,
    clock: &SharedClock,
    routes: Arc<Routes>,
    registry: &CampaignRegistry,
    links: Arc<LinkSigner>,
) -> Dispatcher {
    Dispatcher::new(
        store.clone(),
        clock.clone(),
        routes,
        Arc::new(CampaignWindows {
            registry: registry.clone(),
            default: settings
                .send_window()
                .unwrap_or_else(|_| crate::campaigns::SendWindow::default_hours()),
        }),
        settings.dispatch.clone(),
        settings.default_tz(),
    )
    .with_links(links)
}

/// The scheduler of this process.
fn scheduler(
    settings: &Settings,
    store: &SharedStore,
    clock: &SharedClock,
    registry: &CampaignRegistry,
    links: Arc<LinkSigner>,
) -> Result<Scheduler, DaemonError> {
    let executor = Executor {
        store: store.clone(),
        campaigns_dir: settings.campaigns_dir.clone(),
        default_tz: settings.default_tz(),
        run_settings: settings.run_settings()?,
        links,
        retention: Retention {
            attempt_detail_days: settings.retention.attempt_detail_days,
            job_runs_days: settings.retention.job_runs_days,
        },
    };
    Scheduler::new(
        store.clone(),
        clock.clone(),
        registry.clone(),
        executor,
        settings.scheduler.clone(),
    )
    .map_err(DaemonError::Scheduler)
}

async fn links(settings: &Settings, store: &SharedStore) -> Result<Arc<LinkSigner>, DaemonError> {
    Ok(Arc::new(
        LinkSigner::from_settings(
            settings.http.link_secret.as_ref(),
            &settings.http.public_url,
            store.as_ref(),
        )
        .await?,
    ))
}

/// `outreach run --once`: load the campaigns, run every tick due at the
/// clock's now once (in this process, or already by another), drain the
/// outbox, report.
pub async fn once(
    settings: &Settings,
    store: SharedStore,
    clock: SharedClock,
) -> Result<OnceReport, DaemonError> {
    let routes = Arc::new(Routes::from_settings(settings, &clock)?);
    let links = links(settings, &store).await?;
    let (mut reloader, registry) = Reloader::new(
        store.clone(),
        settings.campaigns_dir.clone(),
        settings.templates_dir.clone(),
    );
    if let Err(e) = reloader.reload(ReloadKind::Start).await {
        tracing::warn!(error = %e, "cannot load the campaigns; no campaign runs");
    }
    let (in_force, errors) = {
        let loaded = registry.snapshot();
        (loaded.campaigns.len(), loaded.all_errors().count())
    };
    let scheduler = scheduler(settings, &store, &clock, &registry, links.clone())?;
    let jobs = scheduler.jobs().await?;
    let pass = scheduler.pass(&jobs, &CancellationToken::new()).await?;
    let dispatch = dispatcher(settings, &store, &clock, routes, &registry, links)
        .drain()
        .await?;
    Ok(OnceReport {
        now: clock.now(),
        jobs: pass,
        dispatch,
        campaign_file_errors: errors,
        campaigns_in_force: in_force,
    })
}

/// Run until a shutdown signal.
pub async fn run(
    settings: &Settings,
    store: SharedStore,
    clock: SharedClock,
) -> Result<(), DaemonError> {
    let addr = settings.http.addr;
    if !addr.ip().is_loopback() && settings.http.token.is_none() {
        return Err(DaemonError::TokenRequired(addr));
    }
    crate::metrics::install();
    let routes = Arc::new(Routes::from_settings(settings, &clock)?);
    let links = links(settings, &store).await?;
    let listener = http::bind(addr).await?;
    let local = listener.local_addr().map_err(http::HttpError::Serve)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signals(shutdown.clone()));
    tokio::spawn(crate::metrics::run_upkeep(shutdown.clone()));
    let (campaigns, watcher) = watch::start(
        store.clone(),
        settings.campaigns_dir.clone(),
        settings.templates_dir.clone(),
        WatchOptions::default(),
        shutdown.clone(),
    )
    .await;
    let (in_force, errors) = {
        let loaded = campaigns.snapshot();
        (loaded.campaigns.len(), loaded.all_errors().count())
    };
    let dispatcher = dispatcher(
        settings,
        &store,
        &clock,
        routes.clone(),
        &campaigns,
        links.clone(),
    );
    let scheduler = Arc::new(scheduler(
        settings,
        &store,
        &clock,
        &campaigns,
        links.clone(),
    )?);
    let status = scheduler.status();
    let worker = scheduler.worker().to_owned();
    let scheduling = tokio::spawn(scheduler.run(shutdown.clone()));
    let dispatch = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { dispatcher.run(shutdown).await }
    });
    let state = AppState {
        store: store.clone(),
        clock: clock.clone(),
        started_at: clock.now(),
        campaigns,
        links,
        token: settings.http.token.clone(),
        hooks: Arc::new(http::HookSecrets::from_settings(settings)),
        scheduler: Some(status),
        default_tz: settings.default_tz(),
    };
    tracing::info!(
        http = %format!("http://{local}"),
        backend = %store.backend(),
        campaigns = in_force,
        errors,
        campaigns_dir = %settings.campaigns_dir.display(),
        templates_dir = %settings.templates_dir.display(),
        providers = %routes.describe(),
        worker = %worker,
        "outreach is running; health at /healthz. Jobs run on their schedules (segments, each campaign, housekeeping), campaign and template files are reloaded on save, and due messages are sent. Stop with Ctrl-C."
    );
    let served = http::serve(listener, state, shutdown.clone()).await;
    shutdown.cancel();
    if let Err(e) = scheduling.await {
        tracing::error!(error = %e, "the scheduler task failed");
    }
    if let Err(e) = watcher.await {
        tracing::warn!(error = %e, "the campaign folder watcher failed");
    }
    match dispatch.await {
        Ok(report) => tracing::info!(
            sent = report.sent,
            released = report.released,
            "the dispatcher stopped"
        ),
        Err(e) => tracing::error!(error = %e, "the dispatcher task failed"),
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// First SIGINT/SIGTERM: cancel `token` (drain and exit 0). Second: exit at once.
async fn wait_for_signals(token: CancellationToken) {
    let mut count = 0;
    loop {
        shutdown_signal().await;
        count += 1;
        if count == 1 {
            tracing::info!("shutting down (send the signal again to exit at once)");
            token.cancel();
        } else {
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

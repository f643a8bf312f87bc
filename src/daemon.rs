//! The daemon (`outreach run`): the ops HTTP server, the campaign folder
//! watcher and the outbox worker, until SIGINT/SIGTERM. The scheduler joins
//! them with the next issue.

use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use crate::campaigns::watch::{self, WatchOptions};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::dispatch::routes::{RouteError, Routes};
use crate::dispatch::worker::{CampaignWindows, Dispatcher};
use crate::http::{self, AppState};
use crate::store::SharedStore;
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
    let routes = Arc::new(Routes::from_settings(settings, &clock)?);
    let links = LinkSigner::from_settings(
        settings.http.link_secret.as_ref(),
        &settings.http.public_url,
        store.as_ref(),
    )
    .await?;
    let links = Arc::new(links);
    let listener = http::bind(addr).await?;
    let local = listener.local_addr().map_err(http::HttpError::Serve)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signals(shutdown.clone()));
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
    let dispatcher = Dispatcher::new(
        store.clone(),
        clock.clone(),
        routes.clone(),
        Arc::new(CampaignWindows {
            registry: campaigns.clone(),
            default: settings
                .send_window()
                .unwrap_or_else(|_| crate::campaigns::SendWindow::default_hours()),
        }),
        settings.dispatch.clone(),
        settings.default_tz(),
    )
    .with_links(links.clone());
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
    };
    tracing::info!(
        http = %format!("http://{local}"),
        backend = %store.backend(),
        campaigns = in_force,
        errors,
        campaigns_dir = %settings.campaigns_dir.display(),
        templates_dir = %settings.templates_dir.display(),
        providers = %routes.describe(),
        "outreach is running; health at /healthz. Campaign and template files are watched and reloaded on save, and due messages are sent. The scheduler is not part of this build yet, so campaigns run only through `outreach jobs run`. Stop with Ctrl-C."
    );
    let served = http::serve(listener, state, shutdown.clone()).await;
    shutdown.cancel();
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

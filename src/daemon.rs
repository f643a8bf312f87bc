//! The daemon (`outreach run`): the ops HTTP server and the campaign folder
//! watcher, until SIGINT/SIGTERM. The scheduler and the dispatcher join it as
//! they are built.

use tokio_util::sync::CancellationToken;

use crate::campaigns::watch::{self, WatchOptions};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::http::{self, AppState};
use crate::store::SharedStore;

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "http.token is required when http.addr ({0}) is not a loopback address: set it in outreach.toml or OUTREACH_HTTP__TOKEN"
    )]
    TokenRequired(std::net::SocketAddr),
    #[error(transparent)]
    Http(#[from] http::HttpError),
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
    let state = AppState {
        store: store.clone(),
        clock: clock.clone(),
        started_at: clock.now(),
        campaigns,
    };
    tracing::info!(
        http = %format!("http://{local}"),
        backend = %store.backend(),
        campaigns = in_force,
        errors,
        campaigns_dir = %settings.campaigns_dir.display(),
        templates_dir = %settings.templates_dir.display(),
        "outreach is running; health at /healthz. Campaign and template files are watched and reloaded on save; the scheduler and dispatch are not part of this build yet, so no campaign runs on its own. Stop with Ctrl-C."
    );
    let served = http::serve(listener, state, shutdown.clone()).await;
    shutdown.cancel();
    if let Err(e) = watcher.await {
        tracing::warn!(error = %e, "the campaign folder watcher failed");
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

//! The ops HTTP server: `/healthz`, one-click unsubscribe links (`/u/{token}`),
//! providers' pushes (`/hooks/…`), the JSON API (send log, retries,
//! campaigns, customers and orders, opt-outs, jobs), `/metrics` and the ops
//! page (`/`, with `/login`). Who may read what: see [`auth`].

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod api;
pub mod auth;
mod hooks;
mod jobs;
pub mod page;
mod unsubscribe;

use std::sync::Arc;

use secrecy::SecretString;

use crate::campaigns::watch::CampaignRegistry;
use crate::clock::SharedClock;
use crate::store::SharedStore;
use crate::unsubscribe::LinkSigner;

/// Errors of the HTTP server.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: SharedStore,
    pub clock: SharedClock,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The campaigns in force and the files' errors.
    pub campaigns: CampaignRegistry,
    /// Verifies unsubscribe links.
    pub links: Arc<LinkSigner>,
    /// Bearer token of the API, when configured.
    pub token: Option<SecretString>,
    /// Secrets that authenticate providers' pushes.
    pub hooks: Arc<HookSecrets>,
    /// The scheduler's heartbeat (`None` where no scheduler runs).
    pub scheduler: Option<Arc<crate::scheduler::SchedulerStatus>>,
    /// The configuration's `timezone`: for times without an offset in
    /// customers posted to the API whose store names none.
    pub default_tz: chrono_tz::Tz,
}

/// What authenticates providers' receipt and reply pushes.
#[derive(Debug, Clone, Default)]
pub struct HookSecrets {
    /// Path token of the unsigned pushes (Aliyun, Tencent).
    pub path_token: Option<SecretString>,
    /// `[providers.wechat] callback_token`.
    pub wechat_token: Option<SecretString>,
    /// `[providers.twilio] auth_token`.
    pub twilio_auth_token: Option<SecretString>,
    /// The public base URL Twilio signs requests to.
    pub public_url: String,
}

impl HookSecrets {
    pub fn from_settings(s: &crate::config::Settings) -> HookSecrets {
        HookSecrets {
            path_token: s.http.hooks_token.clone(),
            wechat_token: s
                .providers
                .wechat
                .as_ref()
                .and_then(|w| w.callback_token.clone()),
            twilio_auth_token: s.providers.twilio.as_ref().map(|t| t.auth_token.clone()),
            public_url: s.http.public_url.clone(),
        }
    }
}

/// The router of a server listening on `listener` (whether it is loopback
/// decides who may in without the token; see [`auth`]).
pub fn router(state: AppState, listener: SocketAddr) -> Router {
    let gate = Arc::new(auth::Gate::new(
        state.token.as_ref(),
        listener,
        &state.hooks.public_url,
    ));
    let page_context = Arc::new(page::PageContext::new(state.default_tz));
    let api = Router::new()
        .route("/api/optouts", post(api::opt_out))
        .route("/metrics", get(page::metrics))
        .route("/api/jobs", get(jobs::list))
        .route("/api/messages", get(api::messages::list))
        .route("/api/messages/{id}", get(api::messages::show))
        .route("/api/messages/{id}/retry", post(api::messages::retry))
        .route("/api/campaigns", get(api::campaigns::list))
        .route("/api/customers", post(api::ingest::customers))
        .route("/api/orders", post(api::ingest::orders))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::require_token,
        ));
    let pages = Router::new()
        .route("/", get(page::send_log))
        .route("/messages/{id}", get(page::message))
        .route("/messages/{id}/retry", post(page::retry))
        .route("/campaigns", get(page::campaigns))
        .route("/jobs", get(page::jobs))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_page_login,
        ));
    Router::new()
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .merge(pages)
        .route("/healthz", get(healthz))
        .route(
            "/u/{token}",
            get(unsubscribe::confirm).post(unsubscribe::unsubscribe),
        )
        .route("/hooks/{token}/{provider}/{kind}", post(hooks::unsigned))
        .route(
            "/hooks/wechat",
            get(hooks::wechat_check).post(hooks::wechat_event),
        )
        .route("/hooks/twilio/{kind}", post(hooks::twilio))
        .merge(api)
        .layer(axum::Extension(gate))
        .layer(axum::Extension(page_context))
        .with_state(state)
}

/// `GET /healthz`: 200 when the database answers and the scheduler is
/// alive, 503 otherwise; with the latest tick of every job.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let now = state.clock.now();
    let db = state.store.ping().await;
    let scheduler = state.scheduler.as_ref().map(|s| {
        json!({
            "alive": s.alive(now),
            "last_pass": s.last_pass().map(|t| t.to_rfc3339()),
            "busy_since": s.busy_since().map(|t| t.to_rfc3339()),
        })
    });
    let scheduler_ok = state.scheduler.as_ref().is_none_or(|s| s.alive(now));
    let jobs = match &db {
        Ok(()) => state.store.latest_job_runs().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let jobs: Vec<_> = jobs
        .iter()
        .map(|r| {
            json!({
                "job": r.job,
                "scheduled_for": r.scheduled_for.to_rfc3339(),
                "outcome": r.outcome.as_deref().unwrap_or("running"),
                "finished_at": r.finished_at.map(|t| t.to_rfc3339()),
            })
        })
        .collect();
    let ok = db.is_ok() && scheduler_ok;
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "database": {
            "backend": state.store.backend().to_string(),
            "ok": db.is_ok(),
            "error": db.err().map(|e| e.to_string()),
        },
        "scheduler": scheduler,
        "jobs": jobs,
        "started_at": state.started_at.to_rfc3339(),
        "now": now.to_rfc3339(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Bind `addr` (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serve until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<(), HttpError> {
    let local = listener.local_addr().map_err(HttpError::Serve)?;
    crate::metrics::install();
    axum::serve(listener, router(state, local))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(HttpError::Serve)
}

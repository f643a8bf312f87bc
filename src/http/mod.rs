//! The ops HTTP server: `/healthz`, one-click unsubscribe links (`/u/{token}`)
//! and the JSON API. The ops page and metrics join it with the scheduler.

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
mod hooks;
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

/// The router.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/optouts", post(api::opt_out))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::require_token,
        ));
    Router::new()
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
        .with_state(state)
}

/// `GET /healthz`: 200 when the database answers, 503 otherwise.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let db = state.store.ping().await;
    let body = json!({
        "status": if db.is_ok() { "ok" } else { "unavailable" },
        "database": {
            "backend": state.store.backend().to_string(),
            "ok": db.is_ok(),
            "error": db.err().map(|e| e.to_string()),
        },
        "started_at": state.started_at.to_rfc3339(),
        "now": state.clock.now().to_rfc3339(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if body["database"]["ok"] == true {
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
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(HttpError::Serve)
}

//! `POST /api/customers` and `POST /api/orders`: a JSON object, or an array
//! of them, with the fields and checks of the import files (the importer's
//! own parsing, see [`crate::import::import_items`]). Good items are stored
//! even when others are rejected. The answer says how many were accepted and
//! why each rejected one was, by its position:
//!
//! - 200: every item was accepted;
//! - 207: some were accepted, `errors` lists the others;
//! - 422: none was accepted (or the body is not a JSON object or array).
//!
//! An order whose `coupon_code` matches an issued coupon redeems it, as an
//! import does; a refused code does not reject the order (`coupon_refusals`).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{bad, error, unavailable};
use crate::http::AppState;
use crate::import::{ImportKind, ParseContext, import_items};

/// The most items one request may carry (the body is also limited to 2 MB).
pub const MAX_ITEMS: usize = 10_000;

/// `POST /api/customers`
pub async fn customers(
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    ingest(state, ImportKind::Customers, body).await
}

/// `POST /api/orders`
pub async fn orders(
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    ingest(state, ImportKind::Orders, body).await
}

async fn ingest(
    state: AppState,
    kind: ImportKind,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let items = match body {
        Ok(Json(Value::Array(items))) => items,
        Ok(Json(one @ Value::Object(_))) => vec![one],
        Ok(Json(_)) => return bad("the body must be a JSON object or an array of objects".into()),
        Err(e) => {
            return error(
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                },
                format!("the body: {}", e.body_text()),
            );
        }
    };
    if items.is_empty() {
        return bad("the body holds no items".into());
    }
    if items.len() > MAX_ITEMS {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} items in one request; send at most {MAX_ITEMS} per request",
                items.len()
            ),
        );
    }
    let stores = match state.store.stores().await {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    let ctx = ParseContext::new(stores, state.default_tz);
    let report = match import_items(&state.store, kind, items, &ctx, state.clock.now()).await {
        Ok(r) => r,
        Err(e) => return unavailable(&e),
    };
    let status = if report.errors.is_empty() {
        StatusCode::OK
    } else if report.accepted > 0 {
        StatusCode::MULTI_STATUS
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, Json(report)).into_response()
}

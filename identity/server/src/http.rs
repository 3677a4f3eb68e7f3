//! The router: every route, the body limits and the request timeout. `POST /v1/decisions`
//! has its own limit (`decisions::MAX_DECISIONS_BODY_BYTES`).

use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use std::time::Duration;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Largest accepted request body (64 KiB): enrollment and forms are far smaller.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest admin request body (4 MiB): policy files with thousands of rules.
pub(crate) const MAX_ADMIN_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Requests that take longer are answered 408; the feed is a stream and sets no body timeout.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// All routes with their shared state.
pub(crate) fn router(state: AppState) -> Router {
    let public = Router::new()
        .merge(crate::feed::router())
        .merge(own_routes())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    let admin = crate::admin::router()
        .layer(RequestBodyLimitLayer::new(MAX_ADMIN_BODY_BYTES))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_ADMIN_BODY_BYTES));
    Router::new()
        .merge(public)
        .merge(crate::decisions::router())
        .merge(admin)
        .with_state(state)
}

fn own_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/.well-known/jwks.json", get(jwks))
        .merge(crate::local_idp::router())
        .merge(crate::rp::router())
        .merge(crate::oauth::router())
        .merge(crate::enroll::router())
        .merge(crate::tokens::router())
        .merge(crate::access::router())
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
}

async fn jwks(State(state): State<AppState>) -> Json<identity_claims::Jwks> {
    Json(state.keys().jwks)
}

async fn healthz() -> &'static str {
    "ok"
}

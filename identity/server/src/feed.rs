//! `GET /v1/feed`: the config feed to edges (NDJSON snapshot, deltas, heartbeats).

use crate::state::AppState;
use axum::Router;

/// The feed route.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
}

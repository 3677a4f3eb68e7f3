//! `POST /admin/v1/users/{id}/sync`: re-read a user's groups from the upstream provider now
//! (`crate::group_sync`). `{id}` is a user id or an e-mail naming one user.

use super::api::Admin;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/admin/v1/users/{id}/sync", post(sync_user))
}

/// Answers `{"user_id", "before", "after", "grants": [report…]}`: `before` and `after` are the
/// user's groups around the whole sync; a report per login with a refresh token (its
/// `result`: `updated`, `unchanged`, `revoked` after `invalid_grant`, or `failed` with `error`).
async fn sync_user(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (user, reports) = crate::group_sync::sync_user(&state, id).await?;
    let before = reports
        .first()
        .map(|r| r.before.clone())
        .unwrap_or_default();
    let after = reports.last().map(|r| r.after.clone()).unwrap_or_default();
    Ok(Json(json!({
        "user_id": user,
        "before": before,
        "after": after,
        "grants": reports,
    })))
}

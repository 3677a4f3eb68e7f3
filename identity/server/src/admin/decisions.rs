//! `GET /admin/v1/decisions`: the access decisions edges reported (`POST /v1/decisions`),
//! newest first, with filters and cursor paging. See the route table in `admin/mod.rs`.

use super::api::{query, Admin};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use identity_claims::DecisionOutcome;
use identity_store::{DecisionCursor, DecisionQuery, DeviceId, UserId, MAX_DECISION_PAGE};
use serde::Deserialize;
use serde_json::{json, Value};

/// Page size without `limit`.
const DEFAULT_LIMIT: u32 = 100;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/admin/v1/decisions", get(decisions))
}

#[derive(Deserialize)]
struct DecisionParams {
    user: Option<String>,
    email: Option<String>,
    device: Option<String>,
    decision: Option<String>,
    application: Option<String>,
    reference: Option<String>,
    /// Unix seconds, inclusive.
    since: Option<u64>,
    /// Unix seconds, exclusive.
    until: Option<u64>,
    /// The previous page's `next_cursor`.
    before: Option<String>,
    limit: Option<u32>,
}

async fn decisions(
    State(state): State<AppState>,
    _: Admin,
    params: Result<Query<DecisionParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = query(params)?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_DECISION_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_DECISION_PAGE}"
        )));
    }
    let decision = given(p.decision)
        .map(|d| d.parse::<DecisionOutcome>())
        .transpose()
        .map_err(|_| ApiError::bad_request("decision must be `allow` or `deny`"))?;
    let before = given(p.before)
        .map(|c| c.parse::<DecisionCursor>())
        .transpose()
        .map_err(|_| {
            ApiError::bad_request("before must be a `next_cursor` from an earlier page")
        })?;
    let query = DecisionQuery {
        user_id: given(p.user).map(UserId::new),
        email: given(p.email),
        device_id: given(p.device).map(DeviceId::new),
        decision,
        application: given(p.application),
        reference: given(p.reference).map(|r| r.to_ascii_lowercase()),
        since_ms: p.since.map(|s| s.saturating_mul(1000)),
        until_ms: p.until.map(|s| s.saturating_mul(1000)),
        before,
        limit,
    };
    let found = state.db(move |store| Ok(store.decisions(&query)?)).await?;
    let next_cursor = (found.len() == limit as usize)
        .then(|| found.last().map(|d| d.cursor().to_string()))
        .flatten();
    Ok(Json(
        json!({ "decisions": found, "next_cursor": next_cursor }),
    ))
}

/// An empty query value is no filter (`?email=` from a form).
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

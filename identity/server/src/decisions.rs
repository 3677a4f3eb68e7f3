//! `POST /v1/decisions` (edge service token): access decisions an edge made, in batches of at
//! most [`MAX_BATCH_RECORDS`] (1,000), stored for the admin API (`GET /admin/v1/decisions`).
//!
//! The body is an [`identity_claims::DecisionBatch`]; unknown fields are ignored, and the
//! batch is rejected whole (nothing stored) when one record breaks a bound, naming it:
//! 400 `records[3].source_ip: not an IP address`. More than 1,000 records,
//! or a body over [`MAX_DECISIONS_BODY_BYTES`], is 413. The answer is `{"stored": n}`.
//!
//! Retention: at most once per [`PRUNE_INTERVAL_MS`], an ingest call first deletes the
//! decisions older than `decision_retention_days`, in steps of [`PRUNE_STEP`] rows, each its
//! own transaction so other writers are not held up.

use crate::auth::EdgeAuth;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use identity_claims::decisions::DecisionError;
use identity_claims::DecisionBatch;
use serde_json::{json, Value};

#[cfg(doc)]
use identity_claims::decisions::MAX_BATCH_RECORDS;

/// Largest `POST /v1/decisions` body (1 MiB). The public 64 KiB would hold only ~150 records;
/// a typical record is 300–500 bytes of JSON, so a full batch of 1,000 fits with room, and the
/// edge's uploader keeps its batches under 512 KiB. A batch of records at their maximal field
/// lengths (~2.5 KB each) must be split by the sender.
pub(crate) const MAX_DECISIONS_BODY_BYTES: usize = 1024 * 1024;
/// How often (at most) ingest runs a retention pass.
const PRUNE_INTERVAL_MS: u64 = 60_000;
/// Rows deleted per retention transaction.
const PRUNE_STEP: u32 = 10_000;
const DAY_MS: u64 = 24 * 3600 * 1000;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/decisions", post(ingest))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_DECISIONS_BODY_BYTES,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            MAX_DECISIONS_BODY_BYTES,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            crate::http::REQUEST_TIMEOUT,
        ))
}

async fn ingest(
    State(state): State<AppState>,
    EdgeAuth(token): EdgeAuth,
    body: Result<Json<DecisionBatch>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let batch = match body {
        Ok(Json(batch)) => batch,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(too_large(format!(
                "the body exceeds {MAX_DECISIONS_BODY_BYTES} bytes: send smaller batches"
            )))
        }
        Err(e) => return Err(ApiError::bad_request(e.body_text())),
    };
    batch.validate().map_err(|e| match e {
        DecisionError::TooManyRecords(_) => too_large(e.to_string()),
        DecisionError::Record { .. } => ApiError::bad_request(e.to_string()),
    })?;
    let now_ms = crate::flows::unix_now_ms();
    if state.take_decision_prune(now_ms, PRUNE_INTERVAL_MS) {
        let days = u64::from(state.config().decision_retention_days);
        prune(&state, now_ms.saturating_sub(days.saturating_mul(DAY_MS))).await;
    }
    let token_id = token.id.clone();
    let stored = state
        .db(move |store| Ok(store.insert_decisions(&token_id, &batch.records, now_ms)?))
        .await?;
    tracing::debug!(token = %token.id, stored, "decisions stored");
    Ok(Json(json!({ "stored": stored })))
}

/// Deletes decisions older than `before_ms`; failures are logged (the next pass retries).
async fn prune(state: &AppState, before_ms: u64) {
    let mut total = 0u64;
    loop {
        let step = state
            .db(move |store| Ok(store.prune_decisions(before_ms, PRUNE_STEP)?))
            .await;
        match step {
            Ok(deleted) => {
                total = total.saturating_add(deleted);
                if deleted < u64::from(PRUNE_STEP) {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!("decision retention pass failed: {e}");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(deleted = total, "old access decisions deleted");
    }
}

fn too_large(description: String) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        description,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_batch_of_typical_records_fits_the_body_limit() {
        let record = identity_claims::DecisionRecord {
            at_ms: 1_767_600_000_123,
            edge: "fra1-edge".into(),
            reference: Some("00c0ffee00c0ffee".into()),
            decision: identity_claims::DecisionOutcome::Deny,
            kind: identity_claims::DecisionKind::Http,
            source_ip: "fd7a:6768:0:0:0:0:0:1234".into(),
            device_id: Some(format!("dev_{}", "0".repeat(32))),
            user_id: Some(format!("usr_{}", "0".repeat(32))),
            email: Some("firstname.lastname@corp.example.com".into()),
            destination: "wiki.corp.example.com/some/longer/path/to/a/page".into(),
            application: Some("wiki".into()),
            policy: Some("engineering".into()),
            reason: "no policy allows this request".into(),
        };
        let batch = DecisionBatch {
            records: vec![record; identity_claims::decisions::MAX_BATCH_RECORDS],
        };
        let size = serde_json::to_vec(&batch).unwrap().len();
        assert!(size < MAX_DECISIONS_BODY_BYTES / 2, "{size}");
    }
}

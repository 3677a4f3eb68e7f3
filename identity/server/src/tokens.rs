//! Short-lived tokens identity signs for the data plane:
//!
//! - `POST /v1/assertions` (edge service token): an application assertion for a device's user,
//!   `aud` = the application, which the edge attaches to requests it forwards to the origin.
//!   Body `{"audience": "<application>", "device_id": "dev_…"}`.
//! - `POST /v1/connector-credential` (connector service token): the connector's tunnel
//!   credential, `aud` = [`EDGE_AUDIENCE`], which edges verify against the JWKS in the feed.
//!
//! Both read the current store state, so a revoked device, disabled user or revoked connector
//! gets no token. Edges cache assertions per (device, application) for their lifetime.

use crate::auth::{common_claims, ConnectorAuth, EdgeAuth};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use identity_claims::{AppAssertion, ConnectorCredential, UserFacts};
use identity_store::DeviceId;
use serde::Deserialize;

/// Lifetime of an application assertion and of a connector credential (seconds).
pub(crate) const ASSERTION_LIFETIME_SECS: u64 = 300;
pub(crate) const CONNECTOR_CREDENTIAL_LIFETIME_SECS: u64 = 3600;
/// `aud` of connector credentials: every edge of the deployment.
pub(crate) const EDGE_AUDIENCE: &str = "gatehouse-edge";
/// Longest application name accepted as an audience.
const MAX_AUDIENCE_LEN: usize = 256;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/assertions", post(assertion))
        .route("/v1/connector-credential", post(connector_credential))
}

#[derive(Deserialize)]
struct AssertionRequest {
    audience: String,
    device_id: String,
}

async fn assertion(
    State(state): State<AppState>,
    EdgeAuth(_edge): EdgeAuth,
    body: Result<Json<AssertionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if request.audience.is_empty()
        || request.audience.len() > MAX_AUDIENCE_LEN
        || request.audience.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "audience must be 1 to {MAX_AUDIENCE_LEN} printable characters"
        )));
    }
    let id = DeviceId::new(request.device_id);
    let record = state
        .db(move |store| Ok(store.read(|r| r.device_record(&id))?))
        .await?
        .filter(|r| r.device.revoked_at.is_none() && !r.user.disabled)
        .ok_or_else(|| ApiError::not_found("no such enrolled device"))?;
    let now = crate::flows::unix_now();
    let (login_method, auth_time) = crate::feed::login_facts(&record);
    let claims = AppAssertion {
        common: common_claims(
            &state,
            record.user.id.as_str(),
            &request.audience,
            ASSERTION_LIFETIME_SECS,
            now,
        ),
        user: UserFacts {
            email: record.user.email.clone().unwrap_or_default(),
            groups: record.groups.clone(),
            idp: record.user.idp.clone(),
            login_method,
            auth_time,
        },
        device_id: Some(record.device.id.as_str().to_owned()),
        posture: Some(crate::feed::claims_posture(&record.device.posture)),
    };
    let token = identity_claims::sign(&claims, &state.keys().signing);
    Ok(token_response(token, ASSERTION_LIFETIME_SECS))
}

async fn connector_credential(
    State(state): State<AppState>,
    ConnectorAuth(token): ConnectorAuth,
) -> Result<Response, ApiError> {
    let credential = token.id.clone();
    let connector = state
        .db(move |store| Ok(store.connector_by_credential(&credential)?))
        .await?
        .filter(|c| !c.revoked())
        .ok_or_else(|| ApiError::unauthorized("the connector was revoked"))?;
    let now = crate::flows::unix_now();
    let claims = ConnectorCredential {
        common: common_claims(
            &state,
            connector.id.as_str(),
            EDGE_AUDIENCE,
            CONNECTOR_CREDENTIAL_LIFETIME_SECS,
            now,
        ),
        connector_id: connector.id.as_str().to_owned(),
        // One tunnel per connector: stable across renewals, so the `TunnelID` of the
        // connector's credentials file (its connector id) matches every credential.
        tunnel_id: connector.id.as_str().to_owned(),
    };
    let jwt = identity_claims::sign(&claims, &state.keys().signing);
    Ok(token_response(jwt, CONNECTOR_CREDENTIAL_LIFETIME_SECS))
}

fn token_response(token: String, expires_in: u64) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({ "token": token, "expires_in": expires_in })),
    )
        .into_response()
}

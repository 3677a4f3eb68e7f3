//! Short-lived tokens identity signs for the data plane:
//!
//! - `POST /v1/assertions` (edge service token): an application assertion for a device's user,
//!   `aud` = the application, which the edge attaches to requests it forwards to the origin.
//!   Body `{"audience": "<application>", "device_id": "dev_…"}`, or for clientless (browser)
//!   access `{"audience", "session_id": "<sid of the access session>"}`: exactly one of the
//!   two (400 otherwise). A session assertion has no `device_id` and no `posture`; its user
//!   facts come from the session and the user's current record.
//! - `POST /v1/connector-credential` (connector service token): the connector's tunnel
//!   credential, `aud` = [`EDGE_AUDIENCE`], which edges verify against the JWKS in the feed.
//!
//! Both read the current store state, so a revoked device or session, an expired session, a
//! disabled user or a revoked connector gets no token (404 for an unknown or dead device or
//! session). Edges cache assertions per (device, application) for their lifetime.

use crate::auth::{common_claims, ConnectorAuth, EdgeAuth};
use crate::error::ApiError;
use crate::keys::to_claims_time;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use identity_claims::{AppAssertion, ConnectorCredential, UserFacts};
use identity_store::{DeviceId, SessionId, StoreError};
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
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
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
    let now = crate::flows::unix_now();
    let claims = match (request.device_id, request.session_id) {
        (Some(device_id), None) => {
            device_assertion(&state, device_id, &request.audience, now).await?
        }
        (None, Some(session_id)) => {
            session_assertion(&state, session_id, &request.audience, now).await?
        }
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::bad_request(
                "give exactly one of device_id and session_id",
            ))
        }
    };
    let token = identity_claims::sign(&claims, &state.keys().signing);
    Ok(token_response(token, ASSERTION_LIFETIME_SECS))
}

/// The assertion for an enrolled device's user, with the device's posture.
async fn device_assertion(
    state: &AppState,
    device_id: String,
    audience: &str,
    now: u64,
) -> Result<AppAssertion, ApiError> {
    let id = DeviceId::new(device_id);
    let record = state
        .db(move |store| Ok(store.read(|r| r.device_record(&id))?))
        .await?
        .filter(|r| r.device.revoked_at.is_none() && !r.user.disabled)
        .ok_or_else(|| ApiError::not_found("no such enrolled device"))?;
    let (login_method, auth_time) = crate::feed::login_facts(&record);
    Ok(AppAssertion {
        common: common_claims(
            state,
            record.user.id.as_str(),
            audience,
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
    })
}

/// The assertion for the user of a live session (clientless access): no device, no posture.
async fn session_assertion(
    state: &AppState,
    session_id: String,
    audience: &str,
    now: u64,
) -> Result<AppAssertion, ApiError> {
    let id = SessionId::new(session_id);
    let at = crate::keys::to_store_time(now);
    let found = state
        .db(move |store| {
            Ok(store.read(|r| {
                let Some(session) = r.session(&id)? else {
                    return Ok::<_, StoreError>(None);
                };
                let Some(user) = r.user(&session.user_id)? else {
                    return Ok(None);
                };
                let groups = r.groups_of(&user.id)?;
                Ok(Some((session, user, groups)))
            })?)
        })
        .await?
        .filter(|(session, user, _)| {
            session.revoked_at.is_none() && session.expires_at.0 > at.0 && !user.disabled
        });
    let (session, user, groups) =
        found.ok_or_else(|| ApiError::not_found("no such live session"))?;
    Ok(AppAssertion {
        common: common_claims(
            state,
            user.id.as_str(),
            audience,
            ASSERTION_LIFETIME_SECS,
            now,
        ),
        user: UserFacts {
            email: user.email.clone().unwrap_or_default(),
            groups,
            idp: session.idp.clone(),
            login_method: session.login_method.clone(),
            auth_time: to_claims_time(session.auth_time),
        },
        device_id: None,
        posture: None,
    })
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

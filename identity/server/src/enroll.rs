//! Device enrollment (`POST /v1/enroll`, a user-session token) and the device profile
//! (`GET /v1/profile`, a device token): the device's WireGuard key and posture in, tunnel
//! addresses (from `identity_core::alloc`), edges, routes and DNS out.

use crate::auth::{self, DeviceAuth, UserAuth};
use crate::config::Config;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use identity_core::alloc::AddressPool;
use identity_store::{
    AuditAction, AuditOutcome, DeviceId, NewAuditEvent, NewDevice, NewSession, Posture, SessionId,
    UserId,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Longest accepted posture fact.
const MAX_FACT_LEN: usize = 256;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/enroll", post(enroll))
        .route("/v1/profile", get(profile))
}

/// The request body; unknown fields are ignored (newer clients may send more facts).
#[derive(Deserialize)]
struct EnrollRequest {
    public_key: String,
    #[serde(default)]
    posture: PostureIn,
}

#[derive(Deserialize, Default)]
struct PostureIn {
    #[serde(default)]
    os: String,
    #[serde(default)]
    os_version: String,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    client_version: String,
}

/// What a device needs to bring its tunnel up.
#[derive(Serialize)]
pub(crate) struct Profile {
    addresses: Vec<IpNet>,
    edges: Vec<crate::config::EdgeEntry>,
    routes: Vec<String>,
    dns: Vec<String>,
}

impl Profile {
    fn new(config: &Config, addresses: Vec<IpNet>) -> Self {
        Self {
            addresses,
            edges: config.edges.clone(),
            routes: config.routes.clone(),
            dns: config.dns.clone(),
        }
    }
}

/// A standard-base64 X25519 public key that is not of small order (a small-order key makes
/// every shared secret predictable).
fn parse_public_key(text: &str) -> Result<[u8; 32], ApiError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| ApiError::bad_request("public_key must be 32 bytes of standard base64"))?;
    let probe = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
    let shared = probe.diffie_hellman(&x25519_dalek::PublicKey::from(bytes));
    if !shared.was_contributory() {
        return Err(ApiError::bad_request("public_key is a low-order point"));
    }
    Ok(bytes)
}

fn posture(p: PostureIn) -> Result<Posture, ApiError> {
    for (name, value) in [
        ("os", &p.os),
        ("os_version", &p.os_version),
        ("hostname", &p.hostname),
        ("client_version", &p.client_version),
    ] {
        if value.len() > MAX_FACT_LEN || value.chars().any(char::is_control) {
            return Err(ApiError::bad_request(format!(
                "posture.{name} must be at most {MAX_FACT_LEN} printable characters"
            )));
        }
    }
    Ok(Posture {
        os: p.os,
        os_version: p.os_version,
        hostname: p.hostname,
        client_version: p.client_version,
    })
}

async fn enroll(
    State(state): State<AppState>,
    UserAuth(session): UserAuth,
    body: Result<Json<EnrollRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let key = parse_public_key(&request.public_key)?;
    let public_key = base64::engine::general_purpose::STANDARD.encode(key);
    let posture = posture(request.posture)?;
    let pool = AddressPool::new(state.config().addresses.ipv4, state.config().addresses.ipv6)
        .map_err(|e| ApiError::internal(format!("address pools: {e}")))?;
    let now = crate::flows::unix_now();
    let at = crate::keys::to_store_time(now);
    let user_id = UserId::new(session.common.sub.clone());
    // The device gets its own session, as long-lived as its token and revocable on its own; it
    // carries the login facts of the CLI session it was enrolled with.
    let device_sid = SessionId::from_random(crate::flows::random_bytes());
    let lifetime = i64::try_from(state.config().tokens.device.as_secs()).unwrap_or(i64::MAX);
    let device_session = NewSession {
        id: device_sid.clone(),
        user_id: user_id.clone(),
        device_id: None,
        idp: session.user.idp.clone(),
        login_method: session.user.login_method.clone(),
        auth_time: crate::keys::to_store_time(session.user.auth_time.0),
        expires_at: identity_store::UnixTime(at.0.saturating_add(lifetime)),
    };
    // The CLI session it was enrolled with: re-sync and an upstream `invalid_grant` reach it.
    let parent_sid = SessionId::new(session.sid.clone());
    let (device, created) = state
        .db(move |store| {
            Ok(store.write(|w| {
                let existing = w.device_by_public_key(&public_key)?;
                let created = existing.is_none();
                let addresses = match &existing {
                    Some(d) => d.addresses.clone(),
                    None => allocate(&pool, &w.addresses_in_use()?)?,
                };
                let device = w.upsert_device(
                    &NewDevice {
                        id: DeviceId::from_random(crate::flows::random_bytes()),
                        user_id: user_id.clone(),
                        public_key,
                        addresses,
                        posture,
                    },
                    at,
                )?;
                let device_session = w.create_session(
                    &NewSession {
                        device_id: Some(device.id.clone()),
                        ..device_session
                    },
                    at,
                )?;
                if w.session(&parent_sid)?.is_some() {
                    w.set_session_parent(&device_session.id, &parent_sid)?;
                }
                w.record_audit(&NewAuditEvent {
                    at,
                    actor: user_id.as_str().to_owned(),
                    action: AuditAction::Enroll,
                    target: Some(device.id.as_str().to_owned()),
                    outcome: AuditOutcome::Success,
                    detail: serde_json::json!({ "new": created, "os": device.posture.os }),
                })?;
                Ok::<_, EnrollFailure>((device, created))
            })?)
        })
        .await?;
    tracing::info!(device = %device.id, user = %device.user_id, created, "enrolled");
    let device_token = auth::sign_device_session(
        &state,
        device.user_id.as_str(),
        device_sid.as_str(),
        device.id.as_str(),
        session.user,
        now,
    );
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "device_id": device.id,
            "device_token": device_token,
            "profile": Profile::new(state.config(), device.addresses),
        })),
    )
        .into_response())
}

/// An enrollment fails on the store or on an exhausted pool.
enum EnrollFailure {
    Store(identity_store::StoreError),
    Exhausted,
}

impl From<identity_store::StoreError> for EnrollFailure {
    fn from(e: identity_store::StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<EnrollFailure> for ApiError {
    fn from(e: EnrollFailure) -> Self {
        match e {
            EnrollFailure::Store(identity_store::StoreError::Conflict { .. }) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "this public key is enrolled for another user or was revoked; generate a new key",
            ),
            EnrollFailure::Store(e) => e.into(),
            EnrollFailure::Exhausted => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "address_pool_exhausted",
                "no tunnel addresses are left in the configured pools",
            ),
        }
    }
}

fn allocate(pool: &AddressPool, used: &BTreeSet<IpAddr>) -> Result<Vec<IpNet>, EnrollFailure> {
    let v4_used = used
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6_used = used
        .iter()
        .filter_map(|a| match a {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        })
        .collect();
    let v4 = pool
        .allocate_v4(&v4_used)
        .map_err(|_| EnrollFailure::Exhausted)?;
    let v6 = pool
        .allocate_v6(&v6_used)
        .map_err(|_| EnrollFailure::Exhausted)?;
    Ok(vec![
        IpNet::from(IpAddr::V4(v4)),
        IpNet::from(IpAddr::V6(v6)),
    ])
}

async fn profile(
    State(state): State<AppState>,
    DeviceAuth(device): DeviceAuth,
) -> Result<Json<Profile>, ApiError> {
    let id = DeviceId::new(device.device_id.clone());
    let now = crate::keys::to_store_time(crate::flows::unix_now());
    let row = state
        .db(move |store| {
            Ok(store.write(|w| {
                let d = w.device(&id)?;
                if d.is_some() {
                    w.touch_device(&id, now)?;
                }
                Ok::<_, identity_store::StoreError>(d)
            })?)
        })
        .await?
        .ok_or_else(|| ApiError::unauthorized("device not found"))?;
    Ok(Json(Profile::new(state.config(), row.addresses)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_must_be_32_bytes_and_not_low_order() {
        let good = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::random_from_rng(
            rand::rngs::OsRng,
        ));
        let b64 = base64::engine::general_purpose::STANDARD.encode(good.as_bytes());
        assert_eq!(parse_public_key(&b64).unwrap(), *good.as_bytes());
        assert!(parse_public_key("not base64!").is_err());
        assert!(
            parse_public_key(&base64::engine::general_purpose::STANDARD.encode([1u8; 31])).is_err()
        );
        // The all-zero point and the point of order 8 with u = 1 are small-order.
        for low in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            let b64 = base64::engine::general_purpose::STANDARD.encode(low);
            assert!(parse_public_key(&b64).is_err());
        }
    }

    #[test]
    fn posture_facts_are_bounded_and_printable() {
        let ok = PostureIn {
            os: "linux".into(),
            ..PostureIn::default()
        };
        assert_eq!(posture(ok).unwrap().os, "linux");
        let long = PostureIn {
            hostname: "h".repeat(300),
            ..PostureIn::default()
        };
        assert!(posture(long).is_err());
        let control = PostureIn {
            os_version: "6.1\n".into(),
            ..PostureIn::default()
        };
        assert!(posture(control).is_err());
    }
}

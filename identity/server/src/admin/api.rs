//! The admin API's entity routes: users, groups, devices, sessions, service tokens,
//! connectors and the audit log. Shared pieces (the `Admin` caller, JSON bodies, audited
//! writes) are `pub(super)` for `policy.rs`.

use crate::auth::{self, AdminAuth};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use identity_core::service_token::ServiceTokenSecret;
use identity_store::{
    AuditAction, AuditOutcome, AuditQuery, ConnectorId, DeviceId, NewAuditEvent, NewConnector,
    NewServiceToken, ServiceTokenId, ServiceTokenKind, SessionId, StoreError, UnixTime, UserId,
    WriteTx,
};
use ipnet::IpNet;
use secrecy::ExposeSecret as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::IpAddr;
use subtle::ConstantTimeEq as _;

/// Longest accepted name (service tokens, connectors, groups).
const MAX_NAME_LEN: usize = 128;
/// Most routes one connector may carry.
const MAX_ROUTES: usize = 1024;
/// RFC 1035 §2.3.4: 253 characters in text form, 63 per label.
const MAX_HOSTNAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
/// Longest service token lifetime accepted (10 years).
const MAX_TOKEN_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;
/// `GET /audit` page size: default and upper bound.
const AUDIT_DEFAULT_LIMIT: u32 = 100;
const AUDIT_MAX_LIMIT: u32 = 1000;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/users", get(users))
        .route("/admin/v1/users/{id}/disable", post(disable_user))
        .route("/admin/v1/users/{id}/enable", post(enable_user))
        .route("/admin/v1/groups", get(groups))
        .route("/admin/v1/groups/{name}/members", post(add_member))
        .route(
            "/admin/v1/groups/{name}/members/{user_id}",
            delete(remove_member),
        )
        .route("/admin/v1/devices", get(devices))
        .route("/admin/v1/devices/{id}/revoke", post(revoke_device))
        .route("/admin/v1/sessions", get(sessions))
        .route("/admin/v1/sessions/{id}/revoke", post(revoke_session))
        .route(
            "/admin/v1/service-tokens",
            get(service_tokens).post(create_service_token),
        )
        .route(
            "/admin/v1/service-tokens/{id}/revoke",
            post(revoke_service_token),
        )
        .route(
            "/admin/v1/connectors",
            get(connectors).post(create_connector),
        )
        .route("/admin/v1/connectors/{id}/routes", put(set_routes))
        .route("/admin/v1/connectors/{id}/revoke", post(revoke_connector))
        .route("/admin/v1/audit", get(audit))
}

/// Who is calling the admin API: `admin` for the admin token, else the user id of a member of
/// the configured `admin_group`. It is the audit events' actor.
pub(super) struct Admin {
    pub(super) actor: String,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(group) = state.config().admin_group.clone() else {
            AdminAuth::from_request_parts(parts, state).await?;
            return Ok(Self {
                actor: "admin".into(),
            });
        };
        let token = bearer(parts)?;
        let is_admin_token = state
            .config()
            .admin_token
            .as_ref()
            .is_some_and(|t| bool::from(token.as_bytes().ct_eq(t.expose_secret().as_bytes())));
        if is_admin_token {
            return Ok(Self {
                actor: "admin".into(),
            });
        }
        let session = auth::verify_user_session(state, token, &state.config().issuer())
            .await
            .map_err(|_| ApiError::unauthorized("wrong admin token or invalid user session"))?;
        let user = UserId::new(session.common.sub.clone());
        let groups = state.db(move |s| Ok(s.groups_of(&user)?)).await?;
        if !groups.contains(&group) {
            tracing::debug!(user = %session.common.sub, "admin API: not in the admin group");
            return Err(ApiError::forbidden(format!(
                "only members of group `{group}` may use the admin API"
            )));
        }
        Ok(Self {
            actor: session.common.sub,
        })
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .map(|(_, token)| token.trim())
        .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))
}

/// A JSON body or a 400 whose text names the offending field (serde's message, e.g. ``unknown
/// field `nmae`, expected one of `name`, `kind` ``). Missing content type and oversize bodies
/// keep their own status (415, 413).
pub(super) fn body<T: DeserializeOwned>(
    body: Result<Json<T>, JsonRejection>,
) -> Result<T, ApiError> {
    match body {
        Ok(Json(value)) => Ok(value),
        Err(e) => {
            let status = match e.status() {
                StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::PAYLOAD_TOO_LARGE => e.status(),
                _ => StatusCode::BAD_REQUEST,
            };
            Err(ApiError::new(status, "invalid_request", e.body_text()))
        }
    }
}

pub(super) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// The store's time type, now.
pub(super) fn now() -> UnixTime {
    crate::keys::to_store_time(crate::flows::unix_now())
}

/// What an audited mutation tells [`audited`]: its answer, and the audit detail when it
/// changed something (`None`: nothing changed, nothing is recorded).
pub(super) struct Change<T> {
    pub(super) value: T,
    pub(super) detail: Option<Value>,
}

/// Runs `f` in one write transaction and records `action` on `target` by `admin` in it when `f`
/// reports a change.
pub(super) async fn audited<T, F>(
    state: &AppState,
    admin: &Admin,
    action: AuditAction,
    target: String,
    f: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&WriteTx<'_>, UnixTime) -> Result<Change<T>, ApiError> + Send + 'static,
{
    let actor = admin.actor.clone();
    let at = now();
    state
        .db(move |store| {
            store.write(|w| {
                let change = f(w, at)?;
                if let Some(detail) = change.detail {
                    w.record_audit(&NewAuditEvent {
                        at,
                        actor,
                        action,
                        target: Some(target),
                        outcome: AuditOutcome::Success,
                        detail,
                    })?;
                }
                Ok(change.value)
            })
        })
        .await
}

/// Records one event that goes with no store mutation (a rejected request).
pub(super) async fn audited_event(
    state: &AppState,
    admin: &Admin,
    action: AuditAction,
    target: Option<String>,
    outcome: AuditOutcome,
    detail: Value,
) -> Result<(), ApiError> {
    let event = NewAuditEvent {
        at: now(),
        actor: admin.actor.clone(),
        action,
        target,
        outcome,
        detail,
    };
    state
        .db(move |store| {
            store.record_audit(&event)?;
            Ok(())
        })
        .await
}

fn conflict(description: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "conflict", description)
}

/// A secret-bearing answer: 201 and never cached.
fn created_secret(body: Value) -> Response {
    (
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response()
}

async fn users(State(state): State<AppState>, _: Admin) -> Result<Json<Value>, ApiError> {
    let users = state
        .db(|store| {
            Ok(store.read(|r| {
                r.users()?
                    .into_iter()
                    .map(|user| {
                        let groups = r.groups_of(&user.id)?;
                        Ok::<_, StoreError>(UserOut { user, groups })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })?)
        })
        .await?;
    Ok(Json(json!({ "users": users })))
}

/// A user with its groups.
#[derive(Serialize)]
struct UserOut {
    #[serde(flatten)]
    user: identity_store::User,
    groups: Vec<String>,
}

async fn disable_user(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_disabled(state, admin, id, true).await
}

async fn enable_user(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_disabled(state, admin, id, false).await
}

async fn set_disabled(
    state: AppState,
    admin: Admin,
    id: String,
    disabled: bool,
) -> Result<Json<Value>, ApiError> {
    let action = if disabled {
        AuditAction::UserDisable
    } else {
        AuditAction::UserEnable
    };
    let user_id = UserId::new(id.clone());
    let user = audited(&state, &admin, action, id, move |w, at| {
        let before = w
            .user(&user_id)?
            .ok_or(StoreError::NotFound { what: "user" })?;
        let user = w.set_user_disabled(&user_id, disabled, at)?;
        let changed = before.disabled != disabled;
        Ok(Change {
            value: user,
            detail: changed.then(|| json!({})),
        })
    })
    .await?;
    tracing::info!(user = %user.id, disabled, "admin: user updated");
    Ok(Json(json!(user)))
}

async fn groups(State(state): State<AppState>, _: Admin) -> Result<Json<Value>, ApiError> {
    let groups = state.db(|store| Ok(store.groups()?)).await?;
    Ok(Json(json!({ "groups": groups })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberIn {
    user_id: String,
}

async fn add_member(
    State(state): State<AppState>,
    admin: Admin,
    Path(group): Path<String>,
    request: Result<Json<MemberIn>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let MemberIn { user_id } = body(request)?;
    check_name("group name", &group)?;
    let user = UserId::new(user_id);
    let target = group.clone();
    let answer = audited(
        &state,
        &admin,
        AuditAction::GroupMemberAdd,
        target,
        move |w, at| {
            let added = w.add_group_member(&group, &user, at)?;
            let groups = w.groups_of(&user)?;
            Ok(Change {
                detail: added.then(|| json!({ "user_id": user })),
                value: json!({ "group": group, "user_id": user, "added": added, "groups": groups }),
            })
        },
    )
    .await?;
    Ok(Json(answer))
}

async fn remove_member(
    State(state): State<AppState>,
    admin: Admin,
    Path((group, user_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let user = UserId::new(user_id);
    let target = group.clone();
    let answer = audited(
        &state,
        &admin,
        AuditAction::GroupMemberRemove,
        target,
        move |w, at| {
            if !w.remove_group_member(&group, &user, at)? {
                return Err(ApiError::not_found(format!(
                    "user {user} is not a member of group `{group}`"
                )));
            }
            let groups = w.groups_of(&user)?;
            Ok(Change {
                detail: Some(json!({ "user_id": user })),
                value: json!({ "group": group, "user_id": user, "removed": true, "groups": groups }),
            })
        },
    )
    .await?;
    Ok(Json(answer))
}

#[derive(Deserialize)]
struct UserFilter {
    user: Option<String>,
}

async fn devices(
    State(state): State<AppState>,
    _: Admin,
    filter: Result<Query<UserFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let filter = query(filter)?;
    let devices = state
        .db(move |store| {
            Ok(store.read(|r| match filter.user {
                Some(user) => {
                    let user = UserId::new(user);
                    if r.user(&user)?.is_none() {
                        return Err(StoreError::NotFound { what: "user" });
                    }
                    r.devices_of_user(&user)
                }
                None => r.devices(),
            })?)
        })
        .await?;
    Ok(Json(json!({ "devices": devices })))
}

async fn revoke_device(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let device_id = DeviceId::new(id.clone());
    let device = audited(
        &state,
        &admin,
        AuditAction::DeviceRevoke,
        id,
        move |w, at| {
            let before = w
                .device(&device_id)?
                .ok_or(StoreError::NotFound { what: "device" })?;
            let device = w.revoke_device(&device_id, at)?;
            Ok(Change {
                detail: before
                    .revoked_at
                    .is_none()
                    .then(|| json!({ "user_id": device.user_id })),
                value: device,
            })
        },
    )
    .await?;
    tracing::info!(device = %device.id, "admin: device revoked");
    Ok(Json(json!(device)))
}

async fn sessions(
    State(state): State<AppState>,
    _: Admin,
    filter: Result<Query<UserFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let user = query(filter)?
        .user
        .ok_or_else(|| ApiError::bad_request("give `?user=<user id>`"))?;
    let user = UserId::new(user);
    let sessions = state
        .db(move |store| {
            Ok(store.read(|r| {
                if r.user(&user)?.is_none() {
                    return Err(StoreError::NotFound { what: "user" });
                }
                r.sessions_of_user(&user)
            })?)
        })
        .await?;
    Ok(Json(json!({ "sessions": sessions })))
}

async fn revoke_session(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let session_id = SessionId::new(id.clone());
    let session = audited(
        &state,
        &admin,
        AuditAction::SessionRevoke,
        id,
        move |w, at| {
            let before = w
                .session(&session_id)?
                .ok_or(StoreError::NotFound { what: "session" })?;
            let session = w.revoke_session(&session_id, at)?;
            Ok(Change {
                detail: before
                    .revoked_at
                    .is_none()
                    .then(|| json!({ "user_id": session.user_id })),
                value: session,
            })
        },
    )
    .await?;
    Ok(Json(json!(session)))
}

async fn service_tokens(State(state): State<AppState>, _: Admin) -> Result<Json<Value>, ApiError> {
    let tokens = state.db(|store| Ok(store.service_tokens()?)).await?;
    Ok(Json(json!({ "service_tokens": tokens })))
}

/// The kinds an admin creates directly; connector credentials come with their connector.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum TokenKindIn {
    Machine,
    Edge,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceTokenIn {
    name: String,
    kind: TokenKindIn,
    expires_in_secs: Option<u64>,
}

async fn create_service_token(
    State(state): State<AppState>,
    admin: Admin,
    request: Result<Json<ServiceTokenIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request = body(request)?;
    check_name("name", &request.name)?;
    let kind = match request.kind {
        TokenKindIn::Machine => ServiceTokenKind::Machine,
        TokenKindIn::Edge => ServiceTokenKind::Edge,
    };
    let expires_at = match request.expires_in_secs {
        None => None,
        Some(0) => return Err(ApiError::bad_request("expires_in_secs must be at least 1")),
        Some(secs) if secs > MAX_TOKEN_LIFETIME_SECS => {
            return Err(ApiError::bad_request(format!(
                "expires_in_secs must be at most {MAX_TOKEN_LIFETIME_SECS} (10 years)"
            )))
        }
        // Bounded above, so the conversion and the sum cannot overflow.
        Some(secs) => Some(UnixTime(
            now().0.saturating_add(i64::try_from(secs).unwrap_or(0)),
        )),
    };
    let (new, secret) = mint_token(request.name, kind, expires_at)?;
    let target = new.id.as_str().to_owned();
    let token = audited(
        &state,
        &admin,
        AuditAction::ServiceTokenCreate,
        target,
        move |w, at| {
            let token = w.create_service_token(&new, at)?;
            Ok(Change {
                detail: Some(json!({ "name": token.name, "kind": token.kind })),
                value: token,
            })
        },
    )
    .await?;
    tracing::info!(token = %token.id, kind = %token.kind, "admin: service token created");
    Ok(created_secret(json!({
        "token_id": token.id,
        "secret": secret.expose(),
        "token": token,
    })))
}

/// A fresh token id and secret, and the row that stores only the secret's hash.
fn mint_token(
    name: String,
    kind: ServiceTokenKind,
    expires_at: Option<UnixTime>,
) -> Result<(NewServiceToken, ServiceTokenSecret), ApiError> {
    let id = ServiceTokenId::from_random(crate::flows::random_bytes());
    let secret = ServiceTokenSecret::generate(id.as_str(), &crate::flows::random_bytes())
        .map_err(|e| ApiError::internal(format!("service token: {e}")))?;
    let new = NewServiceToken {
        id,
        name,
        kind,
        secret_hash: secret.hash().0.to_vec(),
        expires_at,
    };
    Ok((new, secret))
}

async fn revoke_service_token(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let token_id = ServiceTokenId::new(id.clone());
    let token = audited(
        &state,
        &admin,
        AuditAction::ServiceTokenRevoke,
        id,
        move |w, at| {
            let before = w.service_token(&token_id)?.ok_or(StoreError::NotFound {
                what: "service token",
            })?;
            if let Some(connector) = w.connector_by_credential(&token_id)? {
                return Err(conflict(format!(
                    "this token is the credential of connector `{}`; revoke the connector",
                    connector.name
                )));
            }
            let token = w.revoke_service_token(&token_id, at)?;
            Ok(Change {
                detail: before
                    .revoked_at
                    .is_none()
                    .then(|| json!({ "name": token.name, "kind": token.kind })),
                value: token,
            })
        },
    )
    .await?;
    tracing::info!(token = %token.id, "admin: service token revoked");
    Ok(Json(json!(token)))
}

async fn connectors(State(state): State<AppState>, _: Admin) -> Result<Json<Value>, ApiError> {
    let connectors = state.db(|store| Ok(store.connectors()?)).await?;
    Ok(Json(json!({ "connectors": connectors })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectorIn {
    name: String,
    routes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutesIn {
    routes: Vec<String>,
}

async fn create_connector(
    State(state): State<AppState>,
    admin: Admin,
    request: Result<Json<ConnectorIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let ConnectorIn { name, routes } = body(request)?;
    check_name("name", &name)?;
    let routes = parse_routes(&routes)?;
    let (credential, secret) = mint_token(
        format!("connector {name}"),
        ServiceTokenKind::Connector,
        None,
    )?;
    let new = NewConnector {
        id: ConnectorId::from_random(crate::flows::random_bytes()),
        name,
        routes,
    };
    let target = new.id.as_str().to_owned();
    let connector = audited(
        &state,
        &admin,
        AuditAction::ConnectorCreate,
        target,
        move |w, at| {
            let connector = match w.create_connector(&new, &credential, at) {
                Err(StoreError::Conflict {
                    what: "connector name",
                }) => {
                    return Err(conflict(format!(
                        "a connector named `{}` already exists",
                        new.name
                    )))
                }
                other => other?.0,
            };
            Ok(Change {
                detail: Some(json!({ "name": connector.name, "routes": connector.routes })),
                value: connector,
            })
        },
    )
    .await?;
    tracing::info!(connector = %connector.id, "admin: connector created");
    Ok(created_secret(json!({
        "connector": connector,
        "token_id": connector.credential,
        "secret": secret.expose(),
    })))
}

async fn set_routes(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    request: Result<Json<RoutesIn>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let RoutesIn { routes } = body(request)?;
    let routes = parse_routes(&routes)?;
    let connector_id = ConnectorId::new(id.clone());
    let connector = audited(
        &state,
        &admin,
        AuditAction::ConnectorUpdate,
        id,
        move |w, at| {
            let before = w
                .connector(&connector_id)?
                .ok_or(StoreError::NotFound { what: "connector" })?;
            if before.revoked() {
                return Err(conflict("the connector is revoked"));
            }
            let connector = w.set_connector_routes(&connector_id, &routes, at)?;
            Ok(Change {
                detail: Some(json!({ "before": before.routes, "routes": connector.routes })),
                value: connector,
            })
        },
    )
    .await?;
    Ok(Json(json!(connector)))
}

async fn revoke_connector(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let connector_id = ConnectorId::new(id.clone());
    let connector = audited(
        &state,
        &admin,
        AuditAction::ConnectorRevoke,
        id,
        move |w, at| {
            let before = w
                .connector(&connector_id)?
                .ok_or(StoreError::NotFound { what: "connector" })?;
            let connector = w.revoke_connector(&connector_id, at)?;
            Ok(Change {
                detail: (!before.revoked()).then(|| json!({ "name": connector.name })),
                value: connector,
            })
        },
    )
    .await?;
    tracing::info!(connector = %connector.id, "admin: connector revoked");
    Ok(Json(json!(connector)))
}

#[derive(Deserialize)]
struct AuditParams {
    action: Option<String>,
    /// Unix seconds.
    since: Option<i64>,
    limit: Option<u32>,
}

async fn audit(
    State(state): State<AppState>,
    _: Admin,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let action = params
        .action
        .filter(|a| !a.is_empty())
        .map(|a| a.parse::<AuditAction>())
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let limit = params.limit.unwrap_or(AUDIT_DEFAULT_LIMIT);
    if !(1..=AUDIT_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {AUDIT_MAX_LIMIT}"
        )));
    }
    let query = AuditQuery {
        action,
        since: params.since.map(UnixTime),
        limit,
    };
    let events = state
        .db(move |store| Ok(store.audit_events(&query)?))
        .await?;
    Ok(Json(json!({ "events": events })))
}

/// Names are non-empty, at most [`MAX_NAME_LEN`] characters, without control characters.
pub(super) fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME_LEN
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "{what} must be 1 to {MAX_NAME_LEN} printable characters"
        )));
    }
    Ok(())
}

/// Checks connector routes and returns them normalized (lowercase hostnames, CIDRs as
/// written by `ipnet`, a bare address as a host route).
fn parse_routes(routes: &[String]) -> Result<Vec<String>, ApiError> {
    if routes.len() > MAX_ROUTES {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_ROUTES} routes per connector"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(routes.len());
    for (i, route) in routes.iter().enumerate() {
        let route = parse_route(route.trim())
            .map_err(|why| ApiError::bad_request(format!("routes[{i}]: {why}")))?;
        if out.contains(&route) {
            return Err(ApiError::bad_request(format!(
                "routes[{i}]: `{route}` is listed twice"
            )));
        }
        out.push(route);
    }
    Ok(out)
}

/// One route: a CIDR with zero host bits, a bare IP address, a hostname or `*.domain`.
fn parse_route(route: &str) -> Result<String, String> {
    if let Ok(net) = route.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "`{route}` has host bits set; the network is `{}`",
                net.trunc()
            ));
        }
        return Ok(net.to_string());
    }
    if let Ok(addr) = route.parse::<IpAddr>() {
        return Ok(IpNet::from(addr).to_string());
    }
    if route.contains('/') || route.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("`{route}` is not a valid CIDR"));
    }
    let name = route.strip_prefix("*.").unwrap_or(route);
    let valid = !name.is_empty()
        && route.len() <= MAX_HOSTNAME_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        return Err(format!(
            "`{route}` is neither a CIDR (10.0.0.0/8) nor a hostname (db.corp.example, *.corp.example)"
        ));
    }
    Ok(route.to_ascii_lowercase())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes_accept_networks_addresses_and_hostnames() {
        assert_eq!(parse_route("10.0.0.0/8").unwrap(), "10.0.0.0/8");
        assert_eq!(parse_route("192.0.2.7").unwrap(), "192.0.2.7/32");
        assert_eq!(parse_route("fd00::/64").unwrap(), "fd00::/64");
        assert_eq!(parse_route("DB.corp.example").unwrap(), "db.corp.example");
        assert_eq!(parse_route("*.corp.example").unwrap(), "*.corp.example");
    }

    #[test]
    fn routes_reject_bad_networks_and_names() {
        assert!(parse_route("10.0.0.1/8").unwrap_err().contains("host bits"));
        assert!(parse_route("10.0.0/8")
            .unwrap_err()
            .contains("not a valid CIDR"));
        assert!(parse_route("300.1.2.3").is_err());
        for bad in [
            "",
            "*.",
            "a..b",
            "-a.example",
            "a b",
            "*.*.example",
            "x*.example",
        ] {
            assert!(parse_route(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicate_routes_are_rejected_after_normalization() {
        let routes = vec!["db.example".to_owned(), "DB.example".to_owned()];
        assert!(parse_routes(&routes)
            .unwrap_err()
            .description
            .contains("routes[1]"));
    }
}

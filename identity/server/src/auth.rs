//! Who is calling: extractors for each kind of credential, and the tokens identity signs.
//!
//! - `UserAuth`: `Authorization: Bearer <user-session JWT>` (the CLI's access token).
//! - `DeviceAuth`: `Bearer <device-session JWT>` (the device token from enrollment).
//! - `EdgeAuth`: `Bearer ghst_…` service token of kind `edge` (the config feed, assertions).
//! - `ConnectorAuth`: `Bearer ghst_…` service token of kind `connector`.
//! - `AdminAuth`: `Bearer <admin token>` from the configuration, compared in constant time.
//! - `BrowserAuth`: the `gh_session` cookie (a user-session JWT for the browser audience).
//!
//! Every JWT is checked against identity's own keys, then its session against the store, so a
//! revoked session or a disabled user fails at once, whatever the token's expiry.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use identity_claims::{
    Audience, CommonClaims, DeviceSession, Expectation, UnixTime, UserFacts, UserSession,
};
use identity_core::service_token::{SecretHash, ServiceTokenSecret};
use identity_store::{ServiceToken, ServiceTokenId, ServiceTokenKind, SessionId, UserId};
use secrecy::ExposeSecret as _;
use subtle::ConstantTimeEq as _;

/// The browser session cookie.
pub(crate) const SESSION_COOKIE: &str = "gh_session";
/// `aud` of browser session tokens, so a CLI token cannot be replayed as a cookie or back.
pub(crate) const BROWSER_AUDIENCE: &str = "gatehouse-browser";

/// A verified user-session bearer token.
pub(crate) struct UserAuth(pub(crate) UserSession);
/// A verified device token.
pub(crate) struct DeviceAuth(pub(crate) DeviceSession);
/// A valid edge service token.
pub(crate) struct EdgeAuth(pub(crate) ServiceToken);
/// A valid connector service token (its tunnel credential secret).
pub(crate) struct ConnectorAuth(pub(crate) ServiceToken);
/// The admin token was presented.
pub(crate) struct AdminAuth;
/// A verified browser session, if the cookie is present and valid.
pub(crate) struct BrowserAuth(pub(crate) Option<UserSession>);

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization header"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "expected `Authorization: Bearer <token>`",
        ));
    }
    Ok(token.trim())
}

fn expectation(state: &AppState, audience: &str) -> Expectation {
    Expectation {
        issuer: state.config().issuer(),
        audience: audience.to_owned(),
    }
}

/// Checks that a session is live and its user enabled.
async fn session_is_live(state: &AppState, sid: &str, user_id: &str) -> Result<(), ApiError> {
    let (sid, user_id) = (SessionId::new(sid), UserId::new(user_id));
    let now = crate::flows::unix_now();
    state
        .db(move |store| {
            let live = store.read(|r| {
                let session = r.session(&sid)?;
                let user = r.user(&user_id)?;
                Ok::<_, identity_store::StoreError>(
                    session.is_some_and(|s| {
                        s.revoked_at.is_none()
                            && s.user_id == user_id
                            && u64::try_from(s.expires_at.0).unwrap_or(0) > now
                    }) && user.is_some_and(|u| !u.disabled),
                )
            })?;
            if live {
                Ok(())
            } else {
                Err(ApiError::unauthorized("session revoked or expired"))
            }
        })
        .await
}

/// Verifies a user-session token for `audience` and its session.
pub(crate) async fn verify_user_session(
    state: &AppState,
    token: &str,
    audience: &str,
) -> Result<UserSession, ApiError> {
    let now = UnixTime(crate::flows::unix_now());
    let claims: UserSession = identity_claims::verify(
        token,
        &state.keys().verify,
        &expectation(state, audience),
        now,
    )
    .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
    session_is_live(state, &claims.sid, &claims.common.sub).await?;
    Ok(claims)
}

impl FromRequestParts<AppState> for UserAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let issuer = state.config().issuer();
        verify_user_session(state, token, &issuer).await.map(Self)
    }
}

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let now = UnixTime(crate::flows::unix_now());
        let issuer = state.config().issuer();
        let claims: DeviceSession = identity_claims::verify(
            token,
            &state.keys().verify,
            &expectation(state, &issuer),
            now,
        )
        .map_err(|e| ApiError::unauthorized(format!("invalid device token: {e}")))?;
        session_is_live(state, &claims.sid, &claims.common.sub).await?;
        let device_id = identity_store::DeviceId::new(claims.device_id.clone());
        let revoked = state
            .db(move |store| {
                Ok(store
                    .device(&device_id)?
                    .is_none_or(|d| d.revoked_at.is_some()))
            })
            .await?;
        if revoked {
            return Err(ApiError::unauthorized("device revoked"));
        }
        Ok(Self(claims))
    }
}

/// Checks a presented `ghst_…` token of `kind` against the store (hash in constant time,
/// expiry, revocation).
pub(crate) async fn verify_service_token(
    state: &AppState,
    presented: &str,
    kind: ServiceTokenKind,
) -> Result<ServiceToken, ApiError> {
    let secret = ServiceTokenSecret::parse(presented)
        .map_err(|_| ApiError::unauthorized("malformed service token"))?;
    let id = ServiceTokenId::new(secret.token_id());
    let now = i64::try_from(crate::flows::unix_now()).unwrap_or(i64::MAX);
    let token = state.db(move |store| Ok(store.service_token(&id)?)).await?;
    let valid = token.filter(|t| {
        let hash_ok = <[u8; 32]>::try_from(t.secret_hash.as_slice())
            .is_ok_and(|h| SecretHash(h).verify(&secret));
        hash_ok
            && t.kind == kind
            && t.revoked_at.is_none()
            && t.expires_at.is_none_or(|e| e.0 > now)
    });
    valid.ok_or_else(|| ApiError::unauthorized("unknown, revoked or expired service token"))
}

impl FromRequestParts<AppState> for EdgeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        verify_service_token(state, token, ServiceTokenKind::Edge)
            .await
            .map(Self)
    }
}

impl FromRequestParts<AppState> for ConnectorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        verify_service_token(state, token, ServiceTokenKind::Connector)
            .await
            .map(Self)
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let Some(expected) = state.config().admin_token.as_ref() else {
            return Err(ApiError::unauthorized(
                "no admin token is configured on this server",
            ));
        };
        if bool::from(token.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
            Ok(Self)
        } else {
            tracing::warn!("admin API: wrong admin token");
            Err(ApiError::unauthorized("wrong admin token"))
        }
    }
}

impl FromRequestParts<AppState> for BrowserAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let jar = axum_extra::extract::cookie::CookieJar::from_headers(&parts.headers);
        let Some(cookie) = jar.get(SESSION_COOKIE) else {
            return Ok(Self(None));
        };
        // An invalid, expired or revoked cookie is the same as none: log in again.
        Ok(Self(
            verify_user_session(state, cookie.value(), BROWSER_AUDIENCE)
                .await
                .ok(),
        ))
    }
}

/// Signs a user-session token for `audience`.
pub(crate) fn sign_user_session(
    state: &AppState,
    user_id: &str,
    sid: &str,
    user: UserFacts,
    audience: &str,
    lifetime_secs: u64,
    now: u64,
) -> String {
    let claims = UserSession {
        common: common_claims(state, user_id, audience, lifetime_secs, now),
        sid: sid.to_owned(),
        user,
    };
    identity_claims::sign(&claims, &state.keys().signing)
}

/// Signs a device token.
pub(crate) fn sign_device_session(
    state: &AppState,
    user_id: &str,
    sid: &str,
    device_id: &str,
    user: UserFacts,
    now: u64,
) -> String {
    let issuer = state.config().issuer();
    let claims = DeviceSession {
        common: common_claims(
            state,
            user_id,
            &issuer,
            state.config().tokens.device.as_secs(),
            now,
        ),
        sid: sid.to_owned(),
        device_id: device_id.to_owned(),
        user,
    };
    identity_claims::sign(&claims, &state.keys().signing)
}

/// The registered claims of a token identity signs now for `sub` and `audience`.
pub(crate) fn common_claims(
    state: &AppState,
    sub: &str,
    audience: &str,
    lifetime_secs: u64,
    now: u64,
) -> CommonClaims {
    CommonClaims {
        iss: state.config().issuer(),
        sub: sub.to_owned(),
        aud: Audience::one(audience),
        exp: UnixTime(now.saturating_add(lifetime_secs)),
        iat: UnixTime(now),
        nbf: None,
        jti: crate::flows::random_token(16),
    }
}

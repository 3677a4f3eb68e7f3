//! Clientless (browser) access: identity's side of the edge's login redirect.
//!
//! - `GET /v1/access/authorize?host=<host[:port]>&path=<path>&nonce=<nonce>`: the edge sends a
//!   browser without its access cookie here. Without an identity browser session (`gh_session`)
//!   the answer is a 302 to `/login?return_to=<this URL>`; with one, a 302 to
//!   `https://<host[:port]>/.gatehouse/callback?token=<access session JWT>&path=<path>`
//!   (`Cache-Control: no-store`, `Referrer-Policy: no-referrer`) and an `access_grant` audit
//!   event. The token is an `identity_claims::AccessSession`: `aud` =
//!   `identity_claims::access_audience(<host without port>)`, `sid` = the browser session's,
//!   `nonce` echoed, lifetime the smaller of `[tokens] access_session` and the browser
//!   session's remaining lifetime.
//! - `GET /v1/access/logout`: revokes the browser session (a `session` revision, so every edge
//!   gets `session_revoked` with its `sid` and refuses its access sessions), clears the
//!   cookie and shows a "signed out" page; the same page without a session.
//!
//! No open redirects: `host` must be a hostname (`[a-z0-9_-]` labels, lowercased, at most 253
//! characters, no userinfo, path or whitespace) with an optional port 1–65535, and the hostname
//! a host destination (exact or `*.suffix`) of an application in the active policy; `path`
//! must be a relative path `ReturnTo` accepts; `nonce` 16–128 characters of `[A-Za-z0-9_-]`.
//! Anything else is a 400 page without a `Location`.

use crate::auth::{BrowserAuth, SESSION_COOKIE};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar};
use edge_policy::HostPattern;
use identity_claims::{access_audience, AccessSession, UserSession};
use identity_core::login::ReturnTo;
use identity_store::{AuditAction, AuditOutcome, NewAuditEvent, SessionId};
use serde::Deserialize;
use std::sync::Arc;

/// Longest hostname (RFC 1035 §2.3.4, without the trailing dot).
const MAX_HOSTNAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;
/// Bounds of the edge's nonce: 16 characters of base64url are 96 bits.
const MIN_NONCE_LEN: usize = 16;
const MAX_NONCE_LEN: usize = 128;
/// Where the edge receives the token on the application host.
pub(crate) const CALLBACK_PATH: &str = "/.gatehouse/callback";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/access/authorize", get(authorize))
        .route("/v1/access/logout", get(logout))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    host: Option<String>,
    path: Option<String>,
    nonce: Option<String>,
}

/// A validated request: where to send the browser back to.
struct Target {
    /// Lowercase, without the port.
    hostname: String,
    port: Option<u16>,
    path: ReturnTo,
    nonce: String,
}

impl Target {
    /// `host[:port]` as the browser will be sent to it.
    fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.hostname),
            None => self.hostname.clone(),
        }
    }

    /// This request's own URL, the `return_to` of the login.
    fn authorize_url(&self) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("host", &self.authority())
            .append_pair("path", self.path.as_str())
            .append_pair("nonce", &self.nonce)
            .finish();
        format!("/v1/access/authorize?{query}")
    }
}

async fn authorize(
    State(state): State<AppState>,
    BrowserAuth(session): BrowserAuth,
    query: Result<Query<AuthorizeQuery>, QueryRejection>,
) -> Response {
    let target = match parse_query(query) {
        Ok(t) => t,
        Err(reason) => return bad_request(reason),
    };
    match is_application_host(&state, &target.hostname).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!("access: refused a host that is no application");
            return bad_request("not an application of this deployment");
        }
        Err(e) => return error_page(&e),
    }
    let now = crate::flows::unix_now();
    let remaining = session
        .as_ref()
        .map_or(0, |s| s.common.exp.0.saturating_sub(now));
    let lifetime = state
        .config()
        .tokens
        .access_session
        .as_secs()
        .min(remaining);
    let Some(session) = session.filter(|_| lifetime > 0) else {
        let return_to = url::form_urlencoded::byte_serialize(target.authorize_url().as_bytes())
            .collect::<String>();
        return found(&format!("/login?return_to={return_to}"));
    };
    match grant(&state, &target, session, lifetime, now).await {
        Ok(location) => found(&location),
        Err(e) => error_page(&e),
    }
}

fn parse_query(
    query: Result<Query<AuthorizeQuery>, QueryRejection>,
) -> Result<Target, &'static str> {
    let Query(q) = query.map_err(|_| "malformed query")?;
    let (hostname, port) = q
        .host
        .as_deref()
        .and_then(parse_host)
        .ok_or("host must be a hostname with an optional port")?;
    let path = q
        .path
        .as_deref()
        .and_then(|p| ReturnTo::parse(p).ok())
        .ok_or("path must be a relative path")?;
    let nonce = q
        .nonce
        .filter(|n| valid_nonce(n))
        .ok_or("nonce must be 16 to 128 characters of A-Z a-z 0-9 _ -")?;
    Ok(Target {
        hostname,
        port,
        path,
        nonce,
    })
}

/// `host[:port]` → (lowercase hostname, port). Only DNS names: no IP literals, userinfo,
/// paths, wildcards, whitespace or control characters.
fn parse_host(text: &str) -> Option<(String, Option<u16>)> {
    let (name, port) = match text.rsplit_once(':') {
        Some((name, port)) => {
            let valid = !port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && !port.starts_with('0');
            let port: u16 = port.parse().ok().filter(|_| valid)?;
            (name, Some(port))
        }
        None => (text, None),
    };
    let valid = !name.is_empty()
        && name.len() <= MAX_HOSTNAME_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then(|| (name.to_ascii_lowercase(), port))
}

fn valid_nonce(nonce: &str) -> bool {
    (MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `hostname` is a host destination of an application in the active policy.
async fn is_application_host(state: &AppState, hostname: &str) -> Result<bool, ApiError> {
    let version = state
        .db(|store| Ok(store.read(|r| r.active_policy())?.map(|p| p.version)))
        .await?;
    let Some(version) = version else {
        return Ok(false);
    };
    let hosts = match state.application_hosts(version) {
        Some(hosts) => hosts,
        None => {
            let policy = state
                .db(move |store| Ok(store.policy(version)?))
                .await?
                .ok_or_else(|| ApiError::internal("the active policy vanished"))?;
            let hosts: Arc<[HostPattern]> = tokio::task::spawn_blocking(move || {
                crate::admin::policy::parse_stored(&policy)
                    .map(|file| crate::admin::policy::application_hosts(&file))
            })
            .await
            .map_err(|e| ApiError::internal(format!("policy parse failed: {e}")))?
            .map_err(|e| ApiError::internal(format!("stored policy no longer parses: {e}")))?
            .into();
            state.cache_application_hosts(version, Arc::clone(&hosts));
            hosts
        }
    };
    Ok(hosts.iter().any(|p| p.matches(hostname)))
}

/// Signs the access session, audits the grant and returns the callback URL.
async fn grant(
    state: &AppState,
    target: &Target,
    session: UserSession,
    lifetime: u64,
    now: u64,
) -> Result<String, ApiError> {
    let claims = AccessSession {
        common: crate::auth::common_claims(
            state,
            &session.common.sub,
            &access_audience(&target.hostname),
            lifetime,
            now,
        ),
        sid: session.sid,
        user: session.user,
        nonce: target.nonce.clone(),
    };
    let event = NewAuditEvent {
        at: crate::keys::to_store_time(now),
        actor: claims.common.sub.clone(),
        action: AuditAction::AccessGrant,
        target: Some(target.authority()),
        outcome: AuditOutcome::Success,
        detail: serde_json::json!({
            "sid": claims.sid,
            "jti": claims.common.jti,
            "exp": claims.common.exp,
        }),
    };
    state
        .db(move |store| {
            store.record_audit(&event)?;
            Ok(())
        })
        .await?;
    tracing::debug!(user = %claims.common.sub, host = %target.hostname, "access granted");
    let token = identity_claims::sign(&claims, &state.keys().signing);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", &token)
        .append_pair("path", target.path.as_str())
        .finish();
    Ok(format!(
        "https://{}{CALLBACK_PATH}?{query}",
        target.authority()
    ))
}

async fn logout(
    State(state): State<AppState>,
    BrowserAuth(session): BrowserAuth,
    jar: CookieJar,
) -> Response {
    if let Some(session) = session {
        let sid = SessionId::new(session.sid.clone());
        let at = crate::keys::to_store_time(crate::flows::unix_now());
        let user = session.common.sub.clone();
        let revoked = state
            .db(move |store| {
                Ok(store.write(|w| {
                    let before = w.session(&sid)?;
                    let after = w.revoke_session(&sid, at)?;
                    if before.is_some_and(|b| b.revoked_at.is_none()) {
                        w.record_audit(&NewAuditEvent {
                            at,
                            actor: user,
                            action: AuditAction::Logout,
                            target: Some(after.id.as_str().to_owned()),
                            outcome: AuditOutcome::Success,
                            detail: serde_json::json!({}),
                        })?;
                    }
                    Ok::<_, identity_store::StoreError>(())
                })?)
            })
            .await;
        if let Err(e) = revoked {
            return error_page(&e);
        }
        tracing::debug!(user = %session.common.sub, "browser session signed out");
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    let page = Html(crate::html::page(
        "Signed out",
        "<h1>You are signed out</h1><p>Close this window, or open an application to sign in \
         again.</p>",
    ));
    let mut response = (jar, page).into_response();
    no_store(&mut response);
    response
}

/// A 302 (the contract with edges; axum's `Redirect::to` is a 303).
fn found(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
        }
        // Every location is built from validated, percent-encoded parts.
        Err(_) => return error_page(&ApiError::internal("unencodable redirect")),
    }
    no_store(&mut response);
    response
}

fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn bad_request(reason: &str) -> Response {
    error_page(&ApiError::bad_request(reason))
}

fn error_page(e: &ApiError) -> Response {
    let body = format!(
        "<h1>Cannot open this application</h1><p>{}</p>",
        crate::html::escape(&e.description)
    );
    let mut response = (e.status, Html(crate::html::page("Access", &body))).into_response();
    no_store(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_dns_names_with_an_optional_port() {
        assert_eq!(
            parse_host("App.Example.com"),
            Some(("app.example.com".to_owned(), None))
        );
        assert_eq!(
            parse_host("app.example.com:8443"),
            Some(("app.example.com".to_owned(), Some(8443)))
        );
        let long = format!("{}com", "a.".repeat(126));
        for bad in [
            "",
            ":443",
            "app.example.com:",
            "app.example.com:0",
            "app.example.com:65536",
            "app.example.com:+443",
            "app.example.com:0443",
            "app.example.com@evil.com",
            "user:pw@app.example.com",
            "app.example.com/evil",
            "app.example.com\\evil",
            "app .example.com",
            "app.example.com\n",
            "app..example.com",
            ".example.com",
            "app.example.com.",
            "*.example.com",
            "[::1]:443",
            "app.example.com:443:443",
            long.as_str(),
        ] {
            assert_eq!(parse_host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn nonces_are_bounded_base64url() {
        assert!(valid_nonce(&"a".repeat(16)) && valid_nonce(&"Z_-9".repeat(32)));
        for bad in [
            "a".repeat(15),
            "a".repeat(129),
            format!("{}=", "a".repeat(16)),
        ] {
            assert!(!valid_nonce(&bad), "{bad:?}");
        }
    }

    #[test]
    fn the_login_return_to_is_a_relative_path_login_accepts() {
        let target = Target {
            hostname: "app.example.com".into(),
            port: Some(8443),
            path: ReturnTo::parse("/a%20b?c=d&e").unwrap(),
            nonce: "n".repeat(16),
        };
        let url = target.authorize_url();
        assert_eq!(
            url,
            "/v1/access/authorize?host=app.example.com%3A8443&path=%2Fa%2520b%3Fc%3Dd%26e&nonce=nnnnnnnnnnnnnnnn"
        );
        assert!(ReturnTo::parse(&url).is_ok());
    }
}

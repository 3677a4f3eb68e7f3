//! Identity as the OAuth 2.0 authorization server of its own CLI (public client `gatehouse`):
//! RFC 8414 metadata, the device authorization grant (RFC 8628) with its `/device` approval
//! page, authorization code + PKCE with loopback redirects (RFC 8252), and the token endpoint.
//! The flow state machines are `identity_core::{device, authcode}`; the user behind every grant
//! is the browser session (`gh_session`) that approved it.

use crate::auth::{self, BrowserAuth};
use crate::error::ApiError;
use crate::state::{AppState, Grant};
use axum::extract::{Form, OriginalUri, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use identity_claims::{UnixTime, UserFacts};
use identity_core::authcode::AuthorizeRequest;
use identity_core::device::UserCode;
use identity_store::{AuditAction, AuditOutcome, NewAuditEvent, NewSession, SessionId, UserId};
use serde::Deserialize;

/// The CLI's client id.
pub(crate) const CLIENT_ID: &str = "gatehouse";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/oauth/device_authorization", post(device_authorization))
        .route("/device", get(device_page).post(device_decide))
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token))
}

async fn metadata(State(state): State<AppState>) -> Json<serde_json::Value> {
    let c = state.config();
    Json(serde_json::json!({
        "issuer": c.issuer(),
        "authorization_endpoint": c.url("/oauth/authorize"),
        "token_endpoint": c.url("/oauth/token"),
        "device_authorization_endpoint": c.url("/oauth/device_authorization"),
        "jwks_uri": c.url("/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", DEVICE_GRANT],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
    }))
}

#[derive(Deserialize)]
struct DeviceAuthorizationForm {
    client_id: Option<String>,
    scope: Option<String>,
}

async fn device_authorization(
    State(state): State<AppState>,
    Form(form): Form<DeviceAuthorizationForm>,
) -> Result<Response, ApiError> {
    if form.client_id.as_deref() != Some(CLIENT_ID) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client_id",
        ));
    }
    let now = UnixTime(crate::flows::unix_now());
    let started = {
        let mut flows = state.flows();
        // A collision of 256-bit codes is practically impossible; retry once anyway.
        flows
            .device
            .start(
                CLIENT_ID,
                form.scope.as_deref(),
                &crate::flows::random_bytes(),
                now,
            )
            .or_else(|_| {
                flows.device.start(
                    CLIENT_ID,
                    form.scope.as_deref(),
                    &crate::flows::random_bytes(),
                    now,
                )
            })
    };
    let started = started.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            e.to_string(),
        )
    })?;
    let verification_uri = state.config().url("/device");
    let user_code = started.user_code.to_string();
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "device_code": started.device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": format!("{verification_uri}?user_code={user_code}"),
            "expires_in": started.expires_in,
            "interval": started.interval,
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
struct DevicePageQuery {
    user_code: Option<String>,
}

async fn device_page(
    State(state): State<AppState>,
    BrowserAuth(session): BrowserAuth,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<DevicePageQuery>,
) -> Response {
    if session.is_none() {
        return login_redirect(&uri);
    }
    let Some(input) = q.user_code else {
        return device_form(None, None);
    };
    let now = UnixTime(crate::flows::unix_now());
    let pending = UserCode::parse(&input)
        .and_then(|code| state.flows().device.pending(&code, now).map(|p| (code, p)));
    match pending {
        Ok((code, _)) => {
            let body = format!(
                "<h1>Connect a device</h1><p>Sign in the Gatehouse client that shows the code \
                 <strong>{code}</strong>?</p>\
                 <form method=\"post\" action=\"/device\">\
                 <input type=\"hidden\" name=\"user_code\" value=\"{code}\">\
                 <button name=\"action\" value=\"approve\">Approve</button> \
                 <button name=\"action\" value=\"deny\">Deny</button></form>",
                code = crate::html::escape(&code.to_string())
            );
            Html(crate::html::page("Connect a device", &body)).into_response()
        }
        Err(e) => device_form(Some(&input), Some(&e.to_string())),
    }
}

fn device_form(code: Option<&str>, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", crate::html::escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Connect a device</h1>{error}<form method=\"get\" action=\"/device\">\
         <label>Code shown by the client <input name=\"user_code\" value=\"{}\"></label> \
         <button>Continue</button></form>",
        crate::html::escape(code.unwrap_or_default())
    );
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, Html(crate::html::page("Connect a device", &body))).into_response()
}

#[derive(Deserialize)]
struct DeviceDecision {
    user_code: String,
    action: String,
}

async fn device_decide(
    State(state): State<AppState>,
    BrowserAuth(session): BrowserAuth,
    Form(form): Form<DeviceDecision>,
) -> Response {
    // The cookie is SameSite=Lax: a cross-site form POST does not carry it, so another site
    // cannot approve a code in the user's name.
    let Some(browser) = session else {
        return ApiError::unauthorized("sign in first").into_response();
    };
    let now = UnixTime(crate::flows::unix_now());
    let result = UserCode::parse(&form.user_code).and_then(|code| {
        let mut flows = state.flows();
        match form.action.as_str() {
            "approve" => flows
                .device
                .approve(&code, Grant { browser }, now)
                .map(|()| true),
            _ => flows.device.deny(&code, now).map(|()| false),
        }
    });
    match result {
        Ok(approved) => {
            let text = if approved {
                "Device approved. You can close this window and return to the client."
            } else {
                "Request denied."
            };
            Html(crate::html::page(
                "Connect a device",
                &format!("<h1>{text}</h1>"),
            ))
            .into_response()
        }
        Err(e) => device_form(Some(&form.user_code), Some(&e.to_string())),
    }
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    scope: Option<String>,
}

async fn authorize(
    State(state): State<AppState>,
    BrowserAuth(session): BrowserAuth,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let request = AuthorizeRequest {
        response_type: q.response_type,
        client_id: q.client_id,
        redirect_uri: q.redirect_uri,
        state: q.state,
        code_challenge: q.code_challenge,
        code_challenge_method: q.code_challenge_method,
        scope: q.scope,
    };
    let validated = state.flows().codes.validate(&request);
    let valid = match validated {
        Ok(v) => v,
        Err(e) if e.redirectable() => {
            let redirect_uri = request.redirect_uri.unwrap_or_default();
            return redirect_with(
                &redirect_uri,
                &[("error", e.code())],
                request.state.as_deref(),
            );
        }
        Err(e) => return ApiError::bad_request(e.to_string()).into_response(),
    };
    let Some(browser) = session else {
        return login_redirect(&uri);
    };
    let now = UnixTime(crate::flows::unix_now());
    let (redirect_uri, client_state) = (valid.redirect_uri.clone(), valid.state.clone());
    let issued =
        state
            .flows()
            .codes
            .issue(valid, Grant { browser }, &crate::flows::random_bytes(), now);
    match issued {
        Ok(code) => redirect_with(&redirect_uri, &[("code", &code)], client_state.as_deref()),
        Err(e) => redirect_with(
            &redirect_uri,
            &[("error", e.code())],
            client_state.as_deref(),
        ),
    }
}

fn redirect_with(uri: &str, params: &[(&str, &str)], client_state: Option<&str>) -> Response {
    let Ok(mut url) = url::Url::parse(uri) else {
        return ApiError::bad_request("invalid redirect_uri").into_response();
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
        if let Some(s) = client_state {
            query.append_pair("state", s);
        }
    }
    Redirect::to(url.as_str()).into_response()
}

/// To `/login` and back here afterwards.
fn login_redirect(uri: &axum::http::Uri) -> Response {
    let here = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let encoded: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
    Redirect::to(&format!("/login?return_to={encoded}")).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    client_id: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    device_code: Option<String>,
}

fn oauth_error(code: &'static str, description: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, description)
}

async fn token(
    State(state): State<AppState>,
    Form(form): Form<TokenForm>,
) -> Result<Response, ApiError> {
    let client_id = form.client_id.as_deref().unwrap_or_default();
    if client_id != CLIENT_ID {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client_id",
        ));
    }
    let now = UnixTime(crate::flows::unix_now());
    let (grant, method) = match form.grant_type.as_str() {
        "authorization_code" => {
            let (Some(code), Some(redirect_uri), Some(verifier)) =
                (&form.code, &form.redirect_uri, &form.code_verifier)
            else {
                return Err(oauth_error(
                    "invalid_request",
                    "code, redirect_uri and code_verifier are required",
                ));
            };
            let redeemed = state
                .flows()
                .codes
                .redeem(code, client_id, redirect_uri, verifier, now);
            let grant =
                redeemed.map_err(|e| oauth_error(e.code(), "the code cannot be redeemed"))?;
            (grant, "authorization_code")
        }
        DEVICE_GRANT => {
            let Some(device_code) = &form.device_code else {
                return Err(oauth_error("invalid_request", "device_code is required"));
            };
            let polled = state.flows().device.poll(device_code, client_id, now);
            let grant = polled.map_err(|e| oauth_error(e.code(), &e.to_string()))?;
            (grant, "device_code")
        }
        _ => {
            return Err(oauth_error(
                "unsupported_grant_type",
                "grant_type must be authorization_code or the device code grant",
            ))
        }
    };
    let (access_token, expires_in) =
        issue_cli_session(&state, grant.browser, method, now.0).await?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": expires_in,
        })),
    )
        .into_response())
}

/// A new session for the CLI, carrying the browser login's facts; its token.
async fn issue_cli_session(
    state: &AppState,
    browser: identity_claims::UserSession,
    grant: &'static str,
    now: u64,
) -> Result<(String, u64), ApiError> {
    let lifetime = state.config().tokens.session.as_secs();
    let at = crate::keys::to_store_time(now);
    let user_id = UserId::new(browser.common.sub.clone());
    let sid = SessionId::from_random(crate::flows::random_bytes());
    let session = NewSession {
        id: sid.clone(),
        user_id: user_id.clone(),
        device_id: None,
        idp: browser.user.idp.clone(),
        login_method: browser.user.login_method.clone(),
        auth_time: crate::keys::to_store_time(browser.user.auth_time.0),
        expires_at: identity_store::UnixTime(
            at.0.saturating_add(i64::try_from(lifetime).unwrap_or(0)),
        ),
    };
    let browser_sid = SessionId::new(browser.sid.clone());
    let groups = state
        .db(move |store| {
            Ok(store.write(|w| {
                // The approving browser session must still be live (not revoked since).
                let live = w
                    .session(&browser_sid)?
                    .is_some_and(|s| s.revoked_at.is_none() && s.expires_at > at);
                if !live {
                    return Ok(None);
                }
                w.create_session(&session, at)?;
                // Re-sync and an upstream `invalid_grant` reach what rests on the login.
                w.set_session_parent(&session.id, &browser_sid)?;
                w.record_audit(&NewAuditEvent {
                    at,
                    actor: user_id.as_str().to_owned(),
                    action: AuditAction::Login,
                    target: Some(CLIENT_ID.to_owned()),
                    outcome: AuditOutcome::Success,
                    detail: serde_json::json!({ "grant": grant }),
                })?;
                w.groups_of(&user_id).map(Some)
            })?)
        })
        .await?;
    let groups =
        groups.ok_or_else(|| oauth_error("invalid_grant", "the approving session ended"))?;
    let facts = UserFacts {
        groups,
        ..browser.user
    };
    let issuer = state.config().issuer();
    let token = auth::sign_user_session(
        state,
        &browser.common.sub,
        sid.as_str(),
        facts,
        &issuer,
        lifetime,
        now,
    );
    Ok((token, lifetime))
}

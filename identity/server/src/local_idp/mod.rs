//! The built-in local provider: a minimal OpenID Connect provider at `/local-idp/` for the
//! embedded default and small deployments. Users and groups come from a TOML file with argon2
//! password hashes. It serves exactly one client, identity's own relying party, which reaches it
//! over HTTP like any external provider, so logins take the same code path after the password.
//!
//! Supported: discovery, `response_type=code` with PKCE S256, `client_secret_basic` and
//! `client_secret_post`, EdDSA ID tokens, JWKS. Not supported: everything else (no userinfo,
//! refresh tokens, consent, dynamic registration).

pub(crate) mod users;

use crate::config::{Provider, LOCAL_CLIENT_ID, LOCAL_IDP_PATH};
use crate::flows::{self, Bounded};
use crate::state::AppState;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use identity_core::pkce::CodeChallenge;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use users::Users;

/// ID tokens and codes of the local provider live this long (seconds).
const ID_TOKEN_LIFETIME: u64 = 300;
const CODE_LIFETIME: u64 = 60;

/// The local provider's state.
pub(crate) struct LocalIdp {
    users: Users,
    key: identity_claims::SigningKey,
    /// Generated at startup; only identity's relying party knows it.
    client_secret: SecretString,
    issuer: String,
    redirect_uri: String,
    codes: Mutex<Bounded<String, IssuedCode>>,
}

struct IssuedCode {
    email: String,
    nonce: Option<String>,
    challenge: CodeChallenge,
    auth_time: u64,
}

impl LocalIdp {
    /// # Errors
    /// Unreadable or invalid users file.
    pub(crate) fn new(provider: &Provider, public_url: &str) -> anyhow::Result<Self> {
        let path = provider
            .users_file
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("local provider without users_file"))?;
        let users = Users::load(path)?;
        // The local provider's key never rotates while running: its tokens live 5 minutes and
        // its JWKS is fetched by our own relying party, which refetches on an unknown `kid`.
        let key = identity_claims::SigningKey::from_seed(&flows::random_bytes::<32>());
        Ok(Self {
            users,
            key,
            client_secret: SecretString::from(flows::random_token(32)),
            issuer: provider.issuer.as_str().trim_end_matches('/').to_string(),
            redirect_uri: format!(
                "{}/callback/{}",
                public_url.trim_end_matches('/'),
                provider.id
            ),
            codes: Mutex::new(Bounded::new(flows::MAX_ENTRIES)),
        })
    }

    /// The secret identity's relying party authenticates with.
    pub(crate) fn client_secret(&self) -> SecretString {
        self.client_secret.clone()
    }
}

/// Routes under `/local-idp/`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            &format!("{LOCAL_IDP_PATH}/.well-known/openid-configuration"),
            get(discovery),
        )
        .route(
            &format!("{LOCAL_IDP_PATH}/authorize"),
            get(authorize_form).post(authorize_submit),
        )
        .route(&format!("{LOCAL_IDP_PATH}/token"), post(token))
        .route(&format!("{LOCAL_IDP_PATH}/jwks"), get(jwks))
}

fn not_configured() -> Response {
    (StatusCode::NOT_FOUND, "no local provider").into_response()
}

async fn discovery(State(state): State<AppState>) -> Response {
    let Some(idp) = state.local_idp() else {
        return not_configured();
    };
    let base = &idp.issuer;
    Json(serde_json::json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "email", "email_verified", "name", "groups"],
    }))
    .into_response()
}

async fn jwks(State(state): State<AppState>) -> Response {
    match state.local_idp() {
        Some(idp) => Json(identity_claims::Jwks::from_signing_keys([&idp.key])).into_response(),
        None => not_configured(),
    }
}

/// Authorization request parameters (OpenID Connect Core §3.1.2.1), carried through the form.
#[derive(Debug, Deserialize, Serialize, Clone)]
struct AuthorizeParams {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    code_challenge: Option<String>,
    #[serde(default)]
    code_challenge_method: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(flatten)]
    params: AuthorizeParams,
    username: String,
    password: String,
}

impl AuthorizeParams {
    /// Checks the request against our only client. An error never redirects.
    fn check(&self, idp: &LocalIdp) -> Result<CodeChallenge, &'static str> {
        if self.client_id != LOCAL_CLIENT_ID || self.redirect_uri != idp.redirect_uri {
            return Err("unknown client or redirect_uri");
        }
        if self.response_type != "code" {
            return Err("response_type must be code");
        }
        CodeChallenge::parse(
            self.code_challenge.as_deref().unwrap_or_default(),
            self.code_challenge_method.as_deref().unwrap_or_default(),
        )
        .map_err(|_| {
            "PKCE with code_challenge_method=S256 and a 43-character challenge is required"
        })
    }
}

async fn authorize_form(
    State(state): State<AppState>,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    let Some(idp) = state.local_idp() else {
        return not_configured();
    };
    if let Err(e) = params.check(idp) {
        return (StatusCode::BAD_REQUEST, e).into_response();
    }
    login_page(&params, None, StatusCode::OK)
}

async fn authorize_submit(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    let Some(idp) = state.local_idp() else {
        return not_configured();
    };
    let challenge = match form.params.check(idp) {
        Ok(c) => c,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let username = form.username.clone();
    let password = form.password;
    // argon2 is deliberately slow: keep it off the async workers.
    let state2 = state.clone();
    let email = tokio::task::spawn_blocking(move || {
        state2
            .local_idp()
            .and_then(|idp| idp.users.authenticate(&username, &password))
            .map(|u| u.email.clone())
    })
    .await
    .ok()
    .flatten();
    let Some(email) = email else {
        tracing::debug!("local provider: wrong email or password");
        return login_page(
            &form.params,
            Some("Wrong email or password."),
            StatusCode::UNAUTHORIZED,
        );
    };
    let now = flows::unix_now();
    let code = flows::random_token(32);
    let issued = IssuedCode {
        email,
        nonce: form.params.nonce.clone(),
        challenge,
        auth_time: now,
    };
    let inserted = idp
        .codes
        .lock()
        .map(|mut codes| {
            codes
                .insert(code.clone(), issued, now + CODE_LIFETIME, now)
                .is_ok()
        })
        .unwrap_or(false);
    if !inserted {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many pending logins").into_response();
    }
    let mut target = match url::Url::parse(&form.params.redirect_uri) {
        Ok(u) => u,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad redirect_uri").into_response(),
    };
    {
        let mut q = target.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(s) = &form.params.state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &idp.issuer);
    }
    Redirect::to(target.as_str()).into_response()
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    iat: u64,
    auth_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    email: &'a str,
    email_verified: bool,
    name: &'a str,
    groups: &'a [String],
    /// RFC 8176 authentication method: a password.
    amr: [&'a str; 1],
}

async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let Some(idp) = state.local_idp() else {
        return not_configured();
    };
    if !client_authenticated(idp, &headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.grant_type != "authorization_code" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let now = flows::unix_now();
    let issued = idp
        .codes
        .lock()
        .ok()
        .and_then(|mut codes| codes.take(&form.code, now));
    let Some(issued) = issued else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier_ok = form
        .code_verifier
        .as_deref()
        .and_then(|v| identity_core::pkce::CodeVerifier::parse(v).ok())
        .is_some_and(|v| issued.challenge.verify(&v));
    if form.redirect_uri != idp.redirect_uri || !verifier_ok {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let Some(user) = idp.users.by_email(&issued.email) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let sub = user.email.to_ascii_lowercase();
    let claims = IdClaims {
        iss: &idp.issuer,
        sub: &sub,
        aud: LOCAL_CLIENT_ID,
        exp: now + ID_TOKEN_LIFETIME,
        iat: now,
        auth_time: issued.auth_time,
        nonce: issued.nonce.as_deref(),
        email: &user.email,
        email_verified: true,
        name: user.name.as_deref().unwrap_or(&user.email),
        groups: &user.groups,
        amr: ["pwd"],
    };
    let id_token = match serde_json::to_value(&claims) {
        Ok(claims) => identity_claims::sign_json(&claims, &idp.key),
        Err(e) => {
            tracing::error!("local provider: failed to encode ID token claims: {e}");
            return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
        }
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "access_token": flows::random_token(32),
            "token_type": "Bearer",
            "expires_in": ID_TOKEN_LIFETIME,
            "id_token": id_token,
        })),
    )
        .into_response()
}

/// `client_secret_basic` (RFC 6749 §2.3.1) or `client_secret_post`, compared in constant time.
fn client_authenticated(idp: &LocalIdp, headers: &HeaderMap, form: &TokenForm) -> bool {
    use base64::Engine as _;
    use subtle::ConstantTimeEq as _;
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            // RFC 6749 §2.3.1: both are form-urlencoded before base64.
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    let (id, secret) = match (from_header, &form.client_id, &form.client_secret) {
        (Some(pair), _, _) => pair,
        (None, Some(id), Some(secret)) => (id.clone(), secret.clone()),
        (None, _, _) => return false,
    };
    let expected = idp.client_secret.expose_secret().as_bytes();
    id == LOCAL_CLIENT_ID && bool::from(secret.as_bytes().ct_eq(expected))
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(serde_json::json!({ "error": error }))).into_response()
}

fn login_page(params: &AuthorizeParams, error: Option<&str>, status: StatusCode) -> Response {
    let hidden = [
        ("response_type", Some(params.response_type.as_str())),
        ("client_id", Some(params.client_id.as_str())),
        ("redirect_uri", Some(params.redirect_uri.as_str())),
        ("state", params.state.as_deref()),
        ("nonce", params.nonce.as_deref()),
        ("code_challenge", params.code_challenge.as_deref()),
        (
            "code_challenge_method",
            params.code_challenge_method.as_deref(),
        ),
        ("scope", params.scope.as_deref()),
    ]
    .iter()
    .filter_map(|(name, value)| {
        value.map(|v| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                crate::html::escape(v)
            )
        })
    })
    .collect::<String>();
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", crate::html::escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1>{error}<form method=\"post\">{hidden}\
         <label>Email <input name=\"username\" type=\"email\" autocomplete=\"username\" required></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Sign in</button></form>"
    );
    (status, Html(crate::html::page("Sign in", &body))).into_response()
}

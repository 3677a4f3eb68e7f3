//! The OpenID Connect relying party to upstream providers (the built-in local provider
//! included: it is reached over HTTP like any other): `GET /login` and
//! `GET /callback/<provider>`.
//!
//! Built on `openidconnect` (discovery, the code exchange with PKCE, ID token signature via the
//! provider's JWKS, `iss`, `aud`, `exp`, `nonce`). On top of it: `azp` (OIDC Core §3.1.3.7
//! steps 4–5, which the crate leaves to the caller), `iat` within the clock skew, one JWKS
//! refresh on an unknown key (provider key rotation), groups from the configured claim.
//! State, nonce and PKCE verifier come from `identity_core::login`.

use crate::auth::{self, BROWSER_AUDIENCE, SESSION_COOKIE};
use crate::config::{Provider, ProviderKind};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine as _;
use identity_claims::{UnixTime, UserFacts};
use identity_core::login::ReturnTo;
use identity_store::{AuditAction, AuditOutcome, NewAuditEvent, NewSession, NewUser};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse as _,
};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Provider metadata (with its JWKS) is refetched after this long, and at once on an unknown
/// signing key.
const METADATA_MAX_AGE: Duration = Duration::from_secs(3600);
/// ID tokens issued longer ago than this are refused (beyond `exp`, which the provider sets).
const MAX_ID_TOKEN_AGE_SECS: i64 = 3600;

/// Discovered metadata by provider id.
#[derive(Default)]
pub(crate) struct Discovered {
    by_id: HashMap<String, (CoreProviderMetadata, Instant)>,
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login))
        .route("/callback/{provider}", get(callback))
}

#[derive(Deserialize)]
struct LoginQuery {
    provider: Option<String>,
    return_to: Option<String>,
}

async fn login(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    match start_login(&state, q).await {
        Ok(response) => response,
        Err(e) => error_page(&e),
    }
}

async fn start_login(state: &AppState, q: LoginQuery) -> Result<Response, ApiError> {
    let return_to = ReturnTo::parse(q.return_to.as_deref().unwrap_or("/"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let providers = &state.config().providers;
    let provider = match (q.provider.as_deref(), providers.as_slice()) {
        (Some(id), _) => providers
            .iter()
            .find(|p| p.id == id)
            .ok_or_else(|| ApiError::bad_request(format!("unknown provider {id:?}")))?,
        (None, [only]) => only,
        (None, []) => return Err(ApiError::not_found("no identity provider is configured")),
        (None, _) => return Ok(chooser(providers, &return_to)),
    };
    let client = client_for(state, provider, false).await?;
    let now = UnixTime(crate::flows::unix_now());
    let start = state
        .flows()
        .login
        .create(
            &provider.id,
            return_to,
            &crate::flows::random_bytes::<96>(),
            now,
        )
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                e.to_string(),
            )
        })?;
    // identity_core computed the S256 challenge already; openidconnect takes it as a value.
    let challenge = pkce_challenge(start.challenge.as_str())
        .ok_or_else(|| ApiError::internal("PKCE challenge conversion failed"))?;
    let (state_param, nonce) = (start.state.clone(), start.nonce.clone());
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state_param),
            move || Nonce::new(nonce),
        )
        .set_pkce_challenge(challenge);
    for scope in provider.scopes.iter().filter(|s| s.as_str() != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    if provider.sync_groups.is_some() && !provider.scopes.iter().any(|s| s == "offline_access") {
        // OIDC Core §11: a refresh token usable without the user needs `offline_access`, and
        // the provider then must obtain consent (`prompt=consent`).
        request = request
            .add_scope(Scope::new("offline_access".to_owned()))
            .add_prompt(openidconnect::core::CoreAuthPrompt::Consent);
    }
    let (url, _, _) = request.url();
    Ok(Redirect::to(url.as_str()).into_response())
}

/// `PkceCodeChallenge` has no public constructor from a challenge string; it deserializes
/// from its JSON form `{"code_challenge": …, "code_challenge_method": …}`.
fn pkce_challenge(challenge: &str) -> Option<PkceCodeChallenge> {
    serde_json::from_value(serde_json::json!({
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }))
    .ok()
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    Path(provider_id): Path<String>,
    jar: CookieJar,
    Query(q): Query<CallbackQuery>,
) -> Response {
    match finish_login(&state, &provider_id, q).await {
        Ok((token, return_to)) => {
            let cookie = Cookie::build((SESSION_COOKIE, token))
                .path("/")
                .http_only(true)
                .secure(state.config().public_url.scheme() == "https")
                .same_site(SameSite::Lax)
                .build();
            (jar.add(cookie), Redirect::to(return_to.as_str())).into_response()
        }
        Err(e) => {
            tracing::warn!(provider = %provider_id, "login failed: {}", e.description);
            audit_failure(&state, &provider_id, &e).await;
            error_page(&e)
        }
    }
}

async fn finish_login(
    state: &AppState,
    provider_id: &str,
    q: CallbackQuery,
) -> Result<(String, ReturnTo), ApiError> {
    let provider = state
        .config()
        .providers
        .iter()
        .find(|p| p.id == provider_id)
        .ok_or_else(|| ApiError::not_found(format!("unknown provider {provider_id:?}")))?;
    if let Some(error) = q.error {
        let detail = q.error_description.unwrap_or_default();
        return Err(ApiError::forbidden(format!(
            "the identity provider refused the login: {error} {detail}"
        )));
    }
    let (Some(code), Some(state_param)) = (q.code, q.state) else {
        return Err(ApiError::bad_request("callback without code and state"));
    };
    let now = crate::flows::unix_now();
    let attempt = state
        .flows()
        .login
        .take(&state_param, provider_id, UnixTime(now))
        .map_err(|e| ApiError::bad_request(format!("login failed: {e}")))?;

    let client = client_for(state, provider, false).await?;
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| ApiError::internal(format!("provider has no token endpoint: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(attempt.verifier.as_str().to_owned()))
        .request_async(state.http())
        .await
        .map_err(|e| ApiError::forbidden(format!("code exchange failed: {e}")))?;
    let id_token = response
        .id_token()
        .ok_or_else(|| ApiError::forbidden("the provider returned no ID token"))?;
    let nonce = Nonce::new(attempt.nonce.clone());
    let skew = state.config().tokens.clock_skew;
    let verify = |client: &Client| -> Result<Verified, openidconnect::ClaimsVerificationError> {
        let verifier = client
            .id_token_verifier()
            .set_issue_time_verifier_fn(move |iat| check_iat(iat, skew));
        let claims = id_token.claims(&verifier, &nonce)?;
        Ok(Verified::from(claims))
    };
    let verified = match verify(&client) {
        Ok(v) => v,
        Err(openidconnect::ClaimsVerificationError::SignatureVerification(
            openidconnect::SignatureVerificationError::NoMatchingKey,
        )) => {
            // The provider may have rotated its key since we fetched its JWKS: refetch once.
            let client = client_for(state, provider, true).await?;
            verify(&client).map_err(|e| ApiError::forbidden(format!("invalid ID token: {e}")))?
        }
        Err(e) => return Err(ApiError::forbidden(format!("invalid ID token: {e}"))),
    };
    let raw = raw_claims(&id_token.to_string())?;
    check_azp(&raw, &provider.client_id)?;
    let groups = groups_from(&raw, &provider.groups_claim);
    let login_method = verified.amr.clone().unwrap_or_else(|| match provider.kind {
        ProviderKind::Local => "pwd".to_owned(),
        ProviderKind::Oidc => "oidc".to_owned(),
    });
    // Kept only when re-sync is on: a refresh token nobody uses is a secret for nothing.
    let refresh = provider
        .sync_groups
        .and(response.refresh_token())
        .map(|t| secrecy::SecretString::from(t.secret().clone()));
    if provider.sync_groups.is_some() && refresh.is_none() {
        tracing::debug!(provider = %provider.id, "no refresh token: groups are not re-synced for this login");
    }
    let login = Login {
        verified,
        groups,
        login_method,
        refresh,
    };
    let token = complete_login(state, provider, login, now).await?;
    Ok((token, attempt.return_to))
}

/// What a verified upstream login brings to [`complete_login`].
struct Login {
    verified: Verified,
    groups: Vec<String>,
    login_method: String,
    /// The provider's refresh token, when group re-sync is on and it gave one.
    refresh: Option<secrecy::SecretString>,
}

/// What we keep of a verified ID token.
pub(crate) struct Verified {
    pub(crate) subject: String,
    email: Option<String>,
    name: Option<String>,
    auth_time: Option<i64>,
    amr: Option<String>,
}

impl From<&openidconnect::core::CoreIdTokenClaims> for Verified {
    fn from(c: &openidconnect::core::CoreIdTokenClaims) -> Self {
        Self {
            subject: c.subject().as_str().to_owned(),
            email: c.email().map(|e| e.as_str().to_owned()),
            name: c
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
            auth_time: c.auth_time().map(|t| t.timestamp()),
            amr: c
                .auth_method_refs()
                .and_then(|a| a.first())
                .map(|a| a.as_str().to_owned()),
        }
    }
}

/// `iat` may not lie more than the skew in the future nor more than an hour in the past.
pub(crate) fn check_iat(iat: chrono::DateTime<chrono::Utc>, skew: Duration) -> Result<(), String> {
    let now = i64::try_from(crate::flows::unix_now()).unwrap_or(i64::MAX);
    let skew = i64::try_from(skew.as_secs()).unwrap_or(0);
    let iat = iat.timestamp();
    if iat > now + skew {
        return Err(format!(
            "ID token issued in the future (iat {iat}, now {now})"
        ));
    }
    if iat < now - MAX_ID_TOKEN_AGE_SECS - skew {
        return Err(format!(
            "ID token issued too long ago (iat {iat}, now {now})"
        ));
    }
    Ok(())
}

/// The payload of an ID token whose signature was verified, as JSON (for `azp` and the
/// configurable groups claim, which the typed claims do not carry).
pub(crate) fn raw_claims(
    jwt: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let payload = jwt
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    payload.ok_or_else(|| ApiError::forbidden("ID token payload is not a JSON object"))
}

/// OIDC Core §3.1.3.7 steps 4–5: several audiences need an `azp`; an `azp` must be us.
pub(crate) fn check_azp(
    raw: &serde_json::Map<String, serde_json::Value>,
    client_id: &str,
) -> Result<(), ApiError> {
    let several_audiences = raw
        .get("aud")
        .and_then(|a| a.as_array())
        .is_some_and(|a| a.len() > 1);
    match raw.get("azp") {
        Some(serde_json::Value::String(azp)) if azp == client_id => Ok(()),
        Some(_) => Err(ApiError::forbidden(
            "invalid ID token: authorized party (azp) is not this client",
        )),
        None if several_audiences => Err(ApiError::forbidden(
            "invalid ID token: several audiences and no authorized party (azp)",
        )),
        None => Ok(()),
    }
}

/// Group names from `claim`: an array of strings, or one string. Anything else is no groups.
pub(crate) fn groups_from(
    raw: &serde_json::Map<String, serde_json::Value>,
    claim: &str,
) -> Vec<String> {
    let mut groups: Vec<String> = match raw.get(claim) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|g| g.as_str())
            .filter(|g| !g.is_empty() && g.len() <= 256)
            .map(str::to_owned)
            .collect(),
        Some(serde_json::Value::String(one)) if !one.is_empty() => vec![one.clone()],
        _ => Vec::new(),
    };
    groups.sort();
    groups.dedup();
    groups
}

/// The upstream login succeeded: upsert the user and their provider groups, open a browser
/// session, audit, and sign the session cookie. The same path for every provider.
async fn complete_login(
    state: &AppState,
    provider: &Provider,
    login: Login,
    now: u64,
) -> Result<String, ApiError> {
    let Login {
        verified,
        groups,
        login_method,
        refresh,
    } = login;
    let idp = provider.id.clone();
    let lifetime = state.config().tokens.browser_session.as_secs();
    let at = crate::keys::to_store_time(now);
    let auth_time = verified.auth_time.unwrap_or(at.0);
    let (user, groups, sid) = state
        .db({
            let idp = idp.clone();
            let login_method = login_method.clone();
            move |store| {
                Ok(store.write(|w| {
                    let user = w.upsert_user(
                        &NewUser {
                            id: identity_store::UserId::from_random(crate::flows::random_bytes()),
                            idp: idp.clone(),
                            subject: verified.subject.clone(),
                            email: verified.email.clone(),
                            display_name: verified.name.clone(),
                        },
                        at,
                    )?;
                    w.set_idp_groups(&user.id, &groups, at)?;
                    let groups = w.groups_of(&user.id)?;
                    let audit = |outcome, detail| {
                        w.record_audit(&NewAuditEvent {
                            at,
                            actor: user.id.as_str().to_owned(),
                            action: AuditAction::Login,
                            target: Some(idp.clone()),
                            outcome,
                            detail,
                        })
                    };
                    if user.disabled {
                        audit(
                            AuditOutcome::Failure,
                            serde_json::json!({ "reason": "user disabled" }),
                        )?;
                        return Ok::<_, identity_store::StoreError>((user, groups, None));
                    }
                    let sid = identity_store::SessionId::from_random(crate::flows::random_bytes());
                    let expires =
                        at.0.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX));
                    w.create_session(
                        &NewSession {
                            id: sid.clone(),
                            user_id: user.id.clone(),
                            device_id: None,
                            idp: idp.clone(),
                            login_method: login_method.clone(),
                            auth_time: identity_store::UnixTime(auth_time),
                            expires_at: identity_store::UnixTime(expires),
                        },
                        at,
                    )?;
                    if let Some(refresh) = &refresh {
                        w.put_upstream_grant(&sid, refresh, at)?;
                    }
                    audit(
                        AuditOutcome::Success,
                        serde_json::json!({
                            "login_method": login_method,
                            "group_sync": refresh.is_some(),
                        }),
                    )?;
                    Ok((user, groups, Some(sid)))
                })?)
            }
        })
        .await?;
    let Some(sid) = sid else {
        return Err(ApiError::forbidden("this user is disabled"));
    };
    tracing::info!(user = %user.id, idp = %idp, "login");
    let facts = UserFacts {
        email: user.email.clone().unwrap_or_default(),
        groups,
        idp,
        login_method,
        auth_time: UnixTime(u64::try_from(auth_time).unwrap_or(0)),
    };
    Ok(auth::sign_user_session(
        state,
        user.id.as_str(),
        sid.as_str(),
        facts,
        BROWSER_AUDIENCE,
        lifetime,
        now,
    ))
}

async fn audit_failure(state: &AppState, provider_id: &str, e: &ApiError) {
    let at = crate::keys::to_store_time(crate::flows::unix_now());
    let event = NewAuditEvent {
        at,
        actor: String::new(),
        action: AuditAction::Login,
        target: Some(provider_id.to_owned()),
        outcome: AuditOutcome::Failure,
        detail: serde_json::json!({ "reason": e.description }),
    };
    if let Err(e) = state.db(move |store| Ok(store.record_audit(&event)?)).await {
        tracing::error!("failed to record an audit event: {e}");
    }
}

pub(crate) type Client = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    openidconnect::core::CoreAuthDisplay,
    openidconnect::core::CoreGenderClaim,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJsonWebKey,
    openidconnect::core::CoreAuthPrompt,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    openidconnect::core::CoreTokenResponse,
    openidconnect::core::CoreTokenIntrospectionResponse,
    openidconnect::core::CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// A client for `provider` from (cached or fresh) discovery.
pub(crate) async fn client_for(
    state: &AppState,
    provider: &Provider,
    refresh: bool,
) -> Result<Client, ApiError> {
    let metadata = {
        let mut cache = state.providers().lock().await;
        let fresh = cache
            .by_id
            .get(&provider.id)
            .filter(|(_, at)| !refresh && at.elapsed() < METADATA_MAX_AGE)
            .map(|(m, _)| m.clone());
        match fresh {
            Some(m) => m,
            None => {
                let issuer =
                    IssuerUrl::new(provider.issuer.as_str().trim_end_matches('/').to_owned())
                        .map_err(|e| ApiError::internal(format!("bad issuer URL: {e}")))?;
                let m = CoreProviderMetadata::discover_async(issuer, state.http())
                    .await
                    .map_err(|e| {
                        tracing::error!(provider = %provider.id, "discovery failed: {e}");
                        ApiError::new(
                            StatusCode::BAD_GATEWAY,
                            "provider_unavailable",
                            format!(
                                "identity provider {:?} is unreachable or misconfigured",
                                provider.id
                            ),
                        )
                    })?;
                cache
                    .by_id
                    .insert(provider.id.clone(), (m.clone(), Instant::now()));
                m
            }
        }
    };
    let secret = match provider.kind {
        ProviderKind::Local => state
            .local_idp()
            .map(|idp| ClientSecret::new(idp.client_secret().expose_secret().to_owned())),
        ProviderKind::Oidc => provider
            .client_secret
            .as_ref()
            .map(|s| ClientSecret::new(s.expose_secret().to_owned())),
    };
    let redirect = RedirectUrl::new(state.config().url(&format!("/callback/{}", provider.id)))
        .map_err(|e| ApiError::internal(format!("bad redirect URL: {e}")))?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(provider.client_id.clone()),
        secret,
    )
    .set_redirect_uri(redirect))
}

fn chooser(providers: &[Provider], return_to: &ReturnTo) -> Response {
    let mut links = String::new();
    for p in providers {
        let href = format!(
            "/login?provider={}&return_to={}",
            url::form_urlencoded::byte_serialize(p.id.as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(return_to.as_str().as_bytes()).collect::<String>()
        );
        links.push_str(&format!(
            "<li><a href=\"{}\">{}</a></li>",
            crate::html::escape(&href),
            crate::html::escape(&p.display_name)
        ));
    }
    Html(crate::html::page(
        "Sign in",
        &format!("<h1>Sign in with</h1><ul>{links}</ul>"),
    ))
    .into_response()
}

fn error_page(e: &ApiError) -> Response {
    let body = format!(
        "<h1>Sign-in failed</h1><p>{}</p><p><a href=\"/login\">Try again</a></p>",
        crate::html::escape(&e.description)
    );
    (e.status, Html(crate::html::page("Sign-in failed", &body))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn azp_must_name_us_and_is_required_with_several_audiences() {
        assert!(check_azp(&raw(r#"{"aud":"c"}"#), "c").is_ok());
        assert!(check_azp(&raw(r#"{"aud":"c","azp":"c"}"#), "c").is_ok());
        assert!(check_azp(&raw(r#"{"aud":"c","azp":"other"}"#), "c").is_err());
        assert!(check_azp(&raw(r#"{"aud":["c","d"]}"#), "c").is_err());
        assert!(check_azp(&raw(r#"{"aud":["c","d"],"azp":"c"}"#), "c").is_ok());
    }

    #[test]
    fn groups_come_from_the_configured_claim() {
        let claims = raw(r#"{"groups":["b","a","a",""],"roles":"admin","n":5}"#);
        assert_eq!(groups_from(&claims, "groups"), ["a", "b"]);
        assert_eq!(groups_from(&claims, "roles"), ["admin"]);
        assert!(groups_from(&claims, "n").is_empty());
        assert!(groups_from(&claims, "missing").is_empty());
    }

    #[test]
    fn iat_outside_the_skew_is_refused() {
        let now = i64::try_from(crate::flows::unix_now()).unwrap();
        let at = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap();
        let skew = Duration::from_secs(60);
        assert!(check_iat(at(now), skew).is_ok());
        assert!(check_iat(at(now + 30), skew).is_ok());
        assert!(check_iat(at(now + 600), skew).is_err());
        assert!(check_iat(at(now - 2 * 3600), skew).is_err());
    }

    #[test]
    fn the_core_challenge_converts_to_the_crate_type() {
        let c = pkce_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM").unwrap();
        assert_eq!(c.as_str(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}

//! Upstream group re-sync: a login through a provider with `sync_groups` keeps the provider's
//! refresh token (`identity_store::UpstreamGrant`); this task refreshes every grant something
//! still rests on at that interval, verifies the new ID token as a login does (signature with
//! one JWKS refetch, `iss`, `aud`, `azp`, `exp`, `iat`, and the same `sub`), and writes the
//! groups of the configured claim. A change appends a `device` revision per device of the user,
//! so edges get `device_upserted` with the new groups and re-check live flows.
//!
//! The provider refusing the refresh with `invalid_grant` (the user was removed or the grant
//! revoked at the provider, or the refresh token expired) means it no longer vouches for that
//! login: every session issued from it is revoked, every device enrolled with one of them is
//! revoked (which closes its flows at the edges), and the grant is forgotten. Any other failure
//! (provider down, bad token) keeps the old state and warns, at most once per provider per
//! [`WARN_EVERY_SECS`].
//!
//! The decisions ([`is_due`], [`classify`], [`WarnLimit`]) are pure; [`spawn`], [`sync_user`]
//! and the store and HTTP calls below them are the driver. `POST /admin/v1/users/{id}/sync`
//! (`crate::admin`) runs [`sync_user`] at once.

use crate::config::Provider;
use crate::error::ApiError;
use crate::rp;
use crate::state::AppState;
use identity_store::{AuditAction, AuditOutcome, NewAuditEvent, StoreError, UpstreamGrant, UserId};
use openidconnect::core::CoreErrorResponseType;
use openidconnect::{
    Nonce, OAuth2TokenResponse as _, RefreshToken, RequestTokenError, TokenResponse as _,
};
use secrecy::{ExposeSecret as _, SecretString};
use std::collections::BTreeMap;
use std::time::Duration;

/// A failing provider is warned about at most this often (5 minutes); DEBUG logs the rest.
pub(crate) const WARN_EVERY_SECS: u64 = 300;
/// The task wakes at least this often to pick up due grants.
const MAX_TICK: Duration = Duration::from_secs(60);

/// Whether a grant last synced (or created) at `last` is due at `now` with `interval` seconds.
pub(crate) fn is_due(last: i64, interval_secs: u64, now: i64) -> bool {
    let interval = i64::try_from(interval_secs).unwrap_or(i64::MAX);
    now.saturating_sub(last) >= interval
}

/// What the provider answered a refresh, as far as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refreshed {
    /// A verified ID token (or userinfo) with the user's groups.
    Groups(Vec<String>),
    /// `invalid_grant` (RFC 6749 §5.2): the grant is gone at the provider.
    InvalidGrant,
    /// Anything else: the provider is unreachable, answered another error, or its token did not
    /// verify.
    Failed(String),
}

/// What to do about one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Write these provider groups (a no-op in the store when unchanged).
    SetGroups(Vec<String>),
    /// Revoke the login's sessions and devices and forget the grant.
    RevokeLogin,
    /// Keep the old state; warn (rate-limited).
    Keep(String),
}

/// The decision for one refresh outcome.
pub(crate) fn classify(outcome: Refreshed) -> Step {
    match outcome {
        Refreshed::Groups(mut groups) => {
            groups.sort();
            groups.dedup();
            Step::SetGroups(groups)
        }
        Refreshed::InvalidGrant => Step::RevokeLogin,
        Refreshed::Failed(why) => Step::Keep(why),
    }
}

/// At most one warning per key per [`WARN_EVERY_SECS`].
#[derive(Debug, Default)]
pub(crate) struct WarnLimit {
    last: BTreeMap<String, u64>,
}

impl WarnLimit {
    /// Whether a warning about `key` may be logged at `now` (and records it if so).
    pub(crate) fn allow(&mut self, key: &str, now: u64) -> bool {
        match self.last.get(key) {
            Some(&at) if now.saturating_sub(at) < WARN_EVERY_SECS => false,
            _ => {
                self.last.insert(key.to_owned(), now);
                true
            }
        }
    }
}

/// One grant's sync, as the admin route reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct SyncReport {
    pub(crate) session_id: String,
    pub(crate) provider: String,
    /// `updated`, `unchanged`, `revoked` or `failed`.
    pub(crate) result: &'static str,
    pub(crate) before: Vec<String>,
    pub(crate) after: Vec<String>,
    /// Devices revoked because the provider refused the grant.
    pub(crate) revoked_devices: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// Starts the re-sync task when a provider has `sync_groups`.
pub(crate) fn spawn(state: &AppState) {
    let Some(tick) = state
        .config()
        .providers
        .iter()
        .filter_map(|p| p.sync_groups)
        .min()
    else {
        return;
    };
    let tick = tick.min(MAX_TICK);
    let state = state.clone();
    tokio::spawn(async move {
        let mut warn = WarnLimit::default();
        loop {
            tokio::time::sleep(tick).await;
            run_due(&state, &mut warn).await;
        }
    });
}

/// Syncs every due grant once; failures are logged, never propagated.
async fn run_due(state: &AppState, warn: &mut WarnLimit) {
    let now = crate::flows::unix_now();
    let at = crate::keys::to_store_time(now);
    let grants = match state
        .db(move |store| Ok(store.live_upstream_grants(at)?))
        .await
    {
        Ok(grants) => grants,
        Err(e) => {
            tracing::error!("group sync: failed to read grants: {}", e.description);
            return;
        }
    };
    for grant in grants {
        let Some(provider) = provider_of(state, &grant) else {
            continue;
        };
        let Some(interval) = provider.sync_groups else {
            continue;
        };
        let last = grant.synced_at.unwrap_or(grant.created_at).0;
        if !is_due(last, interval.as_secs(), at.0) {
            continue;
        }
        let report = sync_grant(state, &provider, grant).await;
        if let Some(error) = &report.error {
            if warn.allow(&provider.id, now) {
                tracing::warn!(provider = %provider.id, "group sync failed, keeping the old groups: {error}");
            } else {
                tracing::debug!(provider = %provider.id, "group sync failed: {error}");
            }
        }
    }
}

/// Syncs every live grant of the user (`id`, or an e-mail naming exactly one user) at once.
///
/// # Errors
/// Unknown user (404), an ambiguous e-mail (400), no grant to sync (409), store failures.
pub(crate) async fn sync_user(
    state: &AppState,
    id_or_email: String,
) -> Result<(UserId, Vec<SyncReport>), ApiError> {
    let at = crate::keys::to_store_time(crate::flows::unix_now());
    let (user, grants) = state
        .db(move |store| {
            let user = if id_or_email.contains('@') {
                let mut users = store.users_by_email(&id_or_email)?;
                if users.len() > 1 {
                    return Err(ApiError::bad_request(
                        "several users have this e-mail: give the user id",
                    ));
                }
                users.pop()
            } else {
                store.user(&UserId::new(id_or_email))?
            };
            let user = user.ok_or_else(|| ApiError::not_found("user not found"))?;
            let grants: Vec<_> = store
                .live_upstream_grants(at)?
                .into_iter()
                .filter(|g| g.user_id == user.id)
                .collect();
            Ok((user.id, grants))
        })
        .await?;
    if grants.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "no_upstream_grant",
            "this user has no live login with a refresh token to sync",
        ));
    }
    let mut reports = Vec::with_capacity(grants.len());
    for grant in grants {
        let Some(provider) = provider_of(state, &grant) else {
            continue;
        };
        reports.push(sync_grant(state, &provider, grant).await);
    }
    Ok((user, reports))
}

fn provider_of(state: &AppState, grant: &UpstreamGrant) -> Option<Provider> {
    state
        .config()
        .providers
        .iter()
        .find(|p| p.id == grant.idp && p.sync_groups.is_some())
        .cloned()
}

/// Refreshes one grant and applies the decision. Never fails: the report says what happened.
async fn sync_grant(state: &AppState, provider: &Provider, grant: UpstreamGrant) -> SyncReport {
    let (outcome, rotated) = refresh(state, provider, &grant).await;
    let mut report = SyncReport {
        session_id: grant.session_id.as_str().to_owned(),
        provider: provider.id.clone(),
        result: "failed",
        before: Vec::new(),
        after: Vec::new(),
        revoked_devices: Vec::new(),
        error: None,
    };
    let applied = match classify(outcome) {
        Step::SetGroups(groups) => set_groups(state, grant, groups, rotated).await,
        Step::RevokeLogin => revoke_login(state, grant).await,
        Step::Keep(why) => {
            report.error = Some(why);
            return report;
        }
    };
    match applied {
        Ok(applied) => SyncReport {
            error: None,
            ..applied.into_report(report)
        },
        Err(e) => {
            report.error = Some(e.description);
            report
        }
    }
}

struct Applied {
    result: &'static str,
    before: Vec<String>,
    after: Vec<String>,
    revoked_devices: Vec<String>,
}

impl Applied {
    fn into_report(self, report: SyncReport) -> SyncReport {
        SyncReport {
            result: self.result,
            before: self.before,
            after: self.after,
            revoked_devices: self.revoked_devices,
            ..report
        }
    }
}

async fn set_groups(
    state: &AppState,
    grant: UpstreamGrant,
    groups: Vec<String>,
    rotated: Option<SecretString>,
) -> Result<Applied, ApiError> {
    let at = crate::keys::to_store_time(crate::flows::unix_now());
    let user = grant.user_id.clone();
    let applied = state
        .db(move |store| {
            Ok(store.write(|w| {
                let before = w.groups_of(&grant.user_id)?;
                w.set_idp_groups(&grant.user_id, &groups, at)?;
                let after = w.groups_of(&grant.user_id)?;
                w.mark_upstream_synced(&grant.session_id, rotated.as_ref(), at)?;
                let changed = before != after;
                if changed {
                    w.record_audit(&NewAuditEvent {
                        at,
                        actor: "system".to_owned(),
                        action: AuditAction::GroupSync,
                        target: Some(grant.user_id.as_str().to_owned()),
                        outcome: AuditOutcome::Success,
                        detail: serde_json::json!({
                            "idp": grant.idp, "before": before, "after": after,
                        }),
                    })?;
                }
                Ok::<_, StoreError>(Applied {
                    result: if changed { "updated" } else { "unchanged" },
                    before,
                    after,
                    revoked_devices: Vec::new(),
                })
            })?)
        })
        .await?;
    if applied.result == "updated" {
        tracing::info!(
            before = applied.before.len(),
            after = applied.after.len(),
            "group sync changed a user's groups"
        );
        tracing::debug!(user = %user, before = ?applied.before, after = ?applied.after, "group sync");
    }
    Ok(applied)
}

async fn revoke_login(state: &AppState, grant: UpstreamGrant) -> Result<Applied, ApiError> {
    let at = crate::keys::to_store_time(crate::flows::unix_now());
    let applied = state
        .db(move |store| {
            Ok(store.write(|w| {
                let before = w.groups_of(&grant.user_id)?;
                let tree = w.session_tree(&grant.session_id)?;
                let mut devices = std::collections::BTreeSet::new();
                let mut revoked_sessions = 0_usize;
                for session in &tree {
                    if session.revoked_at.is_none() {
                        w.revoke_session(&session.id, at)?;
                        revoked_sessions += 1;
                    }
                    if let Some(device) = &session.device_id {
                        devices.insert(device.clone());
                    }
                }
                let mut revoked_devices = Vec::new();
                for device in devices {
                    if w.device(&device)?.is_some_and(|d| d.revoked_at.is_none()) {
                        w.revoke_device(&device, at)?;
                        revoked_devices.push(device.as_str().to_owned());
                    }
                }
                w.delete_upstream_grant(&grant.session_id)?;
                w.record_audit(&NewAuditEvent {
                    at,
                    actor: "system".to_owned(),
                    action: AuditAction::GroupSync,
                    target: Some(grant.user_id.as_str().to_owned()),
                    outcome: AuditOutcome::Failure,
                    detail: serde_json::json!({
                        "idp": grant.idp,
                        "reason": "invalid_grant",
                        "revoked_sessions": revoked_sessions,
                        "revoked_devices": revoked_devices,
                    }),
                })?;
                let after = w.groups_of(&grant.user_id)?;
                Ok::<_, StoreError>(Applied {
                    result: "revoked",
                    before,
                    after,
                    revoked_devices,
                })
            })?)
        })
        .await?;
    tracing::info!(
        devices = applied.revoked_devices.len(),
        "the provider refused a refresh (invalid_grant): the login's sessions and devices are revoked"
    );
    Ok(applied)
}

/// The refresh grant (RFC 6749 §6) and the verification of what it returned; also a rotated
/// refresh token to keep. Error texts never carry a token.
async fn refresh(
    state: &AppState,
    provider: &Provider,
    grant: &UpstreamGrant,
) -> (Refreshed, Option<SecretString>) {
    let client = match rp::client_for(state, provider, false).await {
        Ok(c) => c,
        Err(e) => return (Refreshed::Failed(e.description), None),
    };
    let token = RefreshToken::new(grant.refresh_token.expose_secret().to_owned());
    let request = match client.exchange_refresh_token(&token) {
        Ok(r) => r,
        Err(e) => {
            return (
                Refreshed::Failed(format!("provider has no token endpoint: {e}")),
                None,
            )
        }
    };
    let response = match request.request_async(state.http()).await {
        Ok(r) => r,
        Err(RequestTokenError::ServerResponse(e))
            if *e.error() == CoreErrorResponseType::InvalidGrant =>
        {
            return (Refreshed::InvalidGrant, None);
        }
        Err(RequestTokenError::ServerResponse(e)) => {
            return (
                Refreshed::Failed(format!("the provider answered {}", e.error().as_ref())),
                None,
            )
        }
        Err(RequestTokenError::Request(e)) => {
            return (
                Refreshed::Failed(format!("refresh request failed: {e}")),
                None,
            )
        }
        // The body of an unparseable answer may hold tokens: never echo it.
        Err(RequestTokenError::Parse(..)) => {
            return (
                Refreshed::Failed("unparseable token response".to_owned()),
                None,
            )
        }
        Err(RequestTokenError::Other(e)) => {
            return (Refreshed::Failed(format!("refresh failed: {e}")), None)
        }
    };
    let rotated = response
        .refresh_token()
        .map(|t| SecretString::from(t.secret().clone()));
    let subject = match state
        .db({
            let user = grant.user_id.clone();
            move |store| Ok(store.user(&user)?.map(|u| u.subject))
        })
        .await
    {
        Ok(Some(s)) => s,
        Ok(None) => return (Refreshed::Failed("the user is gone".to_owned()), rotated),
        Err(e) => return (Refreshed::Failed(e.description), rotated),
    };
    let outcome = match response.id_token() {
        Some(id_token) => verify_refreshed(state, provider, &client, id_token, &subject).await,
        None => userinfo_groups(state, provider, &client, response.access_token(), &subject).await,
    };
    (outcome, rotated)
}

/// OIDC Core §12.2: the refreshed ID token is verified like the first one, and its `sub` (and
/// `iss`, `aud`, which the verifier checks) are the login's. A `nonce` is not required.
async fn verify_refreshed(
    state: &AppState,
    provider: &Provider,
    client: &rp::Client,
    id_token: &openidconnect::core::CoreIdToken,
    subject: &str,
) -> Refreshed {
    let skew = state.config().tokens.clock_skew;
    let verify = |client: &rp::Client| -> Result<String, openidconnect::ClaimsVerificationError> {
        let verifier = client
            .id_token_verifier()
            .set_issue_time_verifier_fn(move |iat| rp::check_iat(iat, skew));
        let claims = id_token.claims(&verifier, |_: Option<&Nonce>| Ok(()))?;
        Ok(claims.subject().as_str().to_owned())
    };
    let verified = match verify(client) {
        Err(openidconnect::ClaimsVerificationError::SignatureVerification(
            openidconnect::SignatureVerificationError::NoMatchingKey,
        )) => match rp::client_for(state, provider, true).await {
            Ok(fresh) => verify(&fresh),
            Err(e) => return Refreshed::Failed(e.description),
        },
        other => other,
    };
    match verified {
        Ok(sub) if sub == subject => {}
        Ok(_) => return Refreshed::Failed("refreshed ID token names another subject".to_owned()),
        Err(e) => return Refreshed::Failed(format!("invalid refreshed ID token: {e}")),
    }
    let raw = match rp::raw_claims(&id_token.to_string()) {
        Ok(raw) => raw,
        Err(e) => return Refreshed::Failed(e.description),
    };
    if let Err(e) = rp::check_azp(&raw, &provider.client_id) {
        return Refreshed::Failed(e.description);
    }
    Refreshed::Groups(rp::groups_from(&raw, &provider.groups_claim))
}

/// Without a refreshed ID token: the groups claim from userinfo (OIDC Core §5.3.2: its `sub`
/// must be the login's).
async fn userinfo_groups(
    state: &AppState,
    provider: &Provider,
    client: &rp::Client,
    access_token: &openidconnect::AccessToken,
    subject: &str,
) -> Refreshed {
    let Some(url) = client.user_info_url() else {
        return Refreshed::Failed("no ID token in the refresh and no userinfo endpoint".to_owned());
    };
    let answer = state
        .http()
        .get(url.url().as_str())
        .bearer_auth(access_token.secret())
        .send()
        .await;
    let body: serde_json::Map<String, serde_json::Value> = match answer {
        Ok(r) if r.status().is_success() => match r.json().await {
            Ok(body) => body,
            Err(_) => return Refreshed::Failed("userinfo is not a JSON object".to_owned()),
        },
        Ok(r) => return Refreshed::Failed(format!("userinfo answered {}", r.status())),
        Err(e) => return Refreshed::Failed(format!("userinfo request failed: {e}")),
    };
    if body.get("sub").and_then(|s| s.as_str()) != Some(subject) {
        return Refreshed::Failed("userinfo names another subject".to_owned());
    }
    Refreshed::Groups(rp::groups_from(&body, &provider.groups_claim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_is_due_once_its_interval_has_passed() {
        assert!(!is_due(1000, 300, 1299));
        assert!(is_due(1000, 300, 1300));
        assert!(is_due(1000, 300, 5000));
        // A clock that went backwards is not due.
        assert!(!is_due(1000, 300, 900));
    }

    #[test]
    fn new_groups_are_written_sorted_and_deduplicated() {
        let step = classify(Refreshed::Groups(vec![
            "sales".into(),
            "admins".into(),
            "sales".into(),
        ]));
        assert_eq!(step, Step::SetGroups(vec!["admins".into(), "sales".into()]));
        assert_eq!(
            classify(Refreshed::Groups(Vec::new())),
            Step::SetGroups(Vec::new())
        );
    }

    #[test]
    fn invalid_grant_revokes_the_login_and_other_failures_keep_the_state() {
        assert_eq!(classify(Refreshed::InvalidGrant), Step::RevokeLogin);
        assert_eq!(
            classify(Refreshed::Failed("provider down".into())),
            Step::Keep("provider down".into())
        );
    }

    #[test]
    fn warnings_are_limited_per_provider() {
        let mut warn = WarnLimit::default();
        assert!(warn.allow("corp", 1000));
        assert!(!warn.allow("corp", 1001));
        assert!(warn.allow("other", 1001));
        assert!(!warn.allow("corp", 1000 + WARN_EVERY_SECS - 1));
        assert!(warn.allow("corp", 1000 + WARN_EVERY_SECS));
    }
}

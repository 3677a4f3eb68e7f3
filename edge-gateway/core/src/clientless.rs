//! Clientless access (browsers and machines without the client), the pure part: who a request
//! comes from, and the login round trip's URLs and checks.
//!
//! A browser without a session is sent to identity's `/v1/access/authorize` with the host, the
//! path it asked for and a fresh nonce the edge also keeps in a short-lived cookie
//! ([`STATE_COOKIE`]). After login identity sends the browser back to [`CALLBACK_PATH`] on the
//! same host with an access-session token (`kind: access_session`, `aud` =
//! [`identity_claims::access_audience`] of the host, the nonce inside). The edge checks the
//! token and that its nonce is the one in the browser's cookie (so nobody can plant their own
//! session in someone else's browser), then sets the session cookie ([`SESSION_COOKIE`]) and
//! sends the browser on to the path, which must be a local path (no open redirects).
//!
//! Every later request is decided with the session's user facts by the same policy as tunnel
//! traffic; a session identity revoked (logout, admin) is refused through the feed's revoked
//! sessions. Machines send a service token in [`SERVICE_TOKEN_HEADER`] instead; it is checked
//! against the feed's machine tokens (their secrets' SHA-256, compared in constant time).

use crate::access::{verdict, Access, Verdict};
use edge_policy::{Request, Target, UnixTime};
use identity_claims::{AccessSession, Expectation, TokenError};
use identity_core::login::ReturnTo;
use identity_core::service_token::ServiceTokenSecret;
use std::net::IpAddr;
use subtle::ConstantTimeEq as _;

/// The session cookie: `__Host-` makes browsers insist on `Secure`, `Path=/` and no `Domain`,
/// so it is bound to the one application host that set it.
pub const SESSION_COOKIE: &str = "__Host-gatehouse-session";
/// The login-state cookie holding the nonce while the browser is at identity.
pub const STATE_COOKIE: &str = "__Host-gatehouse-login";
/// Where identity sends the browser back with the token.
pub const CALLBACK_PATH: &str = "/.gatehouse/callback";
/// Ends the session at this application and at identity.
pub const LOGOUT_PATH: &str = "/.gatehouse/logout";
/// A machine's service token (`ghst_…`); removed before the request goes to the origin.
pub const SERVICE_TOKEN_HEADER: &str = "gatehouse-service-token";
/// How long the browser may take to log in at identity (the state cookie's lifetime).
pub const LOGIN_STATE_SECS: u64 = 600;

/// Who a clientless request comes from, once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A browser with a valid session.
    User(Box<AccessSession>),
    /// A machine with a valid service token.
    Service {
        /// The token's id (what `service_token = "…"` policy rules name).
        token_id: String,
    },
}

/// Why a session cookie was not accepted (for DEBUG logs; the browser is sent to log in).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionRejected {
    #[error("invalid session token: {0}")]
    Token(TokenError),
    #[error("the session was revoked")]
    Revoked,
}

/// Why a service token was not accepted (the client gets 401 without the detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ServiceTokenRejected {
    #[error("malformed service token")]
    Malformed,
    #[error("unknown or revoked service token")]
    Unknown,
    #[error("expired service token")]
    Expired,
    #[error("wrong service token secret")]
    WrongSecret,
}

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRejected {
    #[error("the callback has no token")]
    NoToken,
    #[error("the callback's path is not a local path")]
    BadPath,
    #[error("no login is in progress in this browser")]
    NoLoginState,
    #[error("the token was issued for another login")]
    WrongNonce,
    #[error(transparent)]
    Session(#[from] SessionRejected),
}

impl Access {
    /// Checks an access-session token presented to `hostname` (lowercase, no port): signature
    /// by identity's keys, `iss`, `aud`, expiry, and that identity has not revoked the session.
    ///
    /// # Errors
    /// [`SessionRejected`].
    pub fn verify_session(
        &self,
        issuer: &str,
        token: &str,
        hostname: &str,
        now: identity_claims::UnixTime,
    ) -> Result<AccessSession, SessionRejected> {
        let expect = Expectation {
            issuer: issuer.to_owned(),
            audience: identity_claims::access_audience(hostname),
        };
        let session: AccessSession = identity_claims::verify(token, self.keys(), &expect, now)
            .map_err(SessionRejected::Token)?;
        if self.is_session_revoked(&session.sid) {
            return Err(SessionRejected::Revoked);
        }
        Ok(session)
    }

    /// Checks a presented `ghst_…` token against the feed's machine tokens; its id on success.
    ///
    /// # Errors
    /// [`ServiceTokenRejected`].
    pub fn verify_service_token(
        &self,
        presented: &str,
        now: identity_claims::UnixTime,
    ) -> Result<String, ServiceTokenRejected> {
        let secret =
            ServiceTokenSecret::parse(presented).map_err(|_| ServiceTokenRejected::Malformed)?;
        let known = self
            .service_token(secret.token_id())
            .ok_or(ServiceTokenRejected::Unknown)?;
        if !secret.verify_hex(&known.secret_sha256) {
            return Err(ServiceTokenRejected::WrongSecret);
        }
        if known.expires_at.is_some_and(|at| at.0 <= now.0) {
            return Err(ServiceTokenRejected::Expired);
        }
        Ok(known.token_id.clone())
    }

    /// Decides a clientless request by `caller` from `source` (the browser's or machine's
    /// address, for `ip` rules) to `target`.
    pub fn decide_caller(
        &self,
        caller: &Caller,
        source: IpAddr,
        target: Target<'_>,
        now: UnixTime,
    ) -> Verdict {
        let Some(policy) = self.policy() else {
            return Verdict::no_policy(None);
        };
        verdict(
            policy.evaluate(&caller_request(caller, source, target), now),
            None,
        )
    }

    /// The full explanation of [`Access::decide_caller`] (DEBUG logs only).
    pub fn explain_caller(
        &self,
        caller: &Caller,
        source: IpAddr,
        target: Target<'_>,
        now: UnixTime,
    ) -> String {
        match self.policy() {
            None => "deny: no access policy is loaded".to_owned(),
            Some(policy) => policy
                .explain(&caller_request(caller, source, target), now)
                .to_string(),
        }
    }
}

fn caller_request<'a>(caller: &'a Caller, source: IpAddr, target: Target<'a>) -> Request<'a> {
    let (user, service_token) = match caller {
        Caller::User(session) => (Some(crate::access::policy_user(&session.user)), None),
        Caller::Service { token_id } => (None, Some(token_id.as_str())),
    };
    Request {
        user,
        service_token,
        device: None,
        source_ip: Some(source),
        target,
    }
}

/// Identity's authorize URL for a browser that asked `host` (as it sent it, port included)
/// for `path_and_query`, with the login's `nonce`.
pub fn login_url(identity_url: &str, host: &str, path_and_query: &str, nonce: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("host", host)
        .append_pair("path", path_and_query)
        .append_pair("nonce", nonce)
        .finish();
    format!(
        "{}/v1/access/authorize?{query}",
        identity_url.trim_end_matches('/')
    )
}

/// Identity's logout URL.
pub fn logout_url(identity_url: &str) -> String {
    format!("{}/v1/access/logout", identity_url.trim_end_matches('/'))
}

/// A path the browser may be sent on to: local (`/…`, not `//…`), no backslashes, controls or
/// spaces, at most 2 KiB; anything else is `/`.
pub fn local_path(candidate: &str) -> String {
    ReturnTo::parse(candidate).map_or_else(|_| "/".to_owned(), |p| p.as_str().to_owned())
}

/// The callback's token and path, from its query string.
///
/// # Errors
/// [`CallbackRejected::NoToken`] or [`CallbackRejected::BadPath`].
pub fn parse_callback(query: &str) -> Result<(String, String), CallbackRejected> {
    let mut token = None;
    let mut path = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "token" if token.is_none() => token = Some(value.into_owned()),
            "path" if path.is_none() => path = Some(value.into_owned()),
            _ => {}
        }
    }
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or(CallbackRejected::NoToken)?;
    let path = match path {
        None => "/".to_owned(),
        Some(p) => ReturnTo::parse(&p)
            .map_err(|_| CallbackRejected::BadPath)?
            .as_str()
            .to_owned(),
    };
    Ok((token, path))
}

/// Checks a callback's session: valid for `hostname`, and carrying the nonce of the login this
/// browser started (`state_cookie`), compared in constant time.
///
/// # Errors
/// [`CallbackRejected`].
pub fn check_callback(
    access: &Access,
    issuer: &str,
    token: &str,
    hostname: &str,
    state_cookie: Option<&str>,
    now: identity_claims::UnixTime,
) -> Result<AccessSession, CallbackRejected> {
    let expected = state_cookie
        .filter(|s| !s.is_empty())
        .ok_or(CallbackRejected::NoLoginState)?;
    let session = access.verify_session(issuer, token, hostname, now)?;
    if bool::from(session.nonce.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(session)
    } else {
        Err(CallbackRejected::WrongNonce)
    }
}

#[cfg(test)]
#[path = "clientless_tests.rs"]
mod tests;

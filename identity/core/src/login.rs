//! Upstream login attempts: identity as an OIDC relying party (OpenID Connect Core 1.0 §3.1).
//!
//! [`LoginAttempts::create`] mints `state`, `nonce` and a PKCE pair for a redirect to the
//! provider; [`LoginAttempts::take`] consumes the attempt when the provider redirects back, once,
//! within [`ATTEMPT_LIFETIME_SECS`].

use std::collections::BTreeMap;

use crate::pkce::{CodeChallenge, CodeVerifier};
use crate::UnixTime;

/// How long a user has to finish logging in at the provider.
pub const ATTEMPT_LIFETIME_SECS: u64 = 600;
/// Default bound on attempts in flight (each is a few hundred bytes).
pub const DEFAULT_MAX_ATTEMPTS: usize = 10_000;

/// A relative path to send the browser to after login. Only paths on our own origin are
/// accepted, so a crafted link cannot bounce a freshly logged-in user to another site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnTo(String);

impl ReturnTo {
    /// Accepts `/…` paths (with query) and refuses anything a browser could read as another
    /// origin: `//host`, backslashes (`/\host` is `//host` to browsers), schemes, control
    /// characters and whitespace (browsers strip tabs and newlines, turning `/\t/host` into
    /// `//host`).
    ///
    /// # Errors
    /// [`LoginError::BadReturnTo`].
    pub fn parse(s: &str) -> Result<Self, LoginError> {
        let ok = s.starts_with('/')
            && !s.starts_with("//")
            && s.len() <= 2048
            && !s
                .chars()
                .any(|c| c == '\\' || c.is_control() || c.is_whitespace());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(LoginError::BadReturnTo)
        }
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ReturnTo {
    fn default() -> Self {
        Self("/".to_owned())
    }
}

/// Why a login attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// `return_to` is not a safe relative path.
    #[error("return_to must be a relative path")]
    BadReturnTo,
    /// Too many attempts in flight.
    #[error("too many login attempts in flight")]
    TooManyAttempts,
    /// The `state` is unknown, already used, or belongs to another provider.
    #[error("unknown or used state")]
    UnknownState,
    /// The attempt is older than [`ATTEMPT_LIFETIME_SECS`].
    #[error("login attempt expired")]
    Expired,
}

/// What the driver needs to redirect to the provider.
#[derive(Debug, Clone)]
pub struct LoginStart {
    /// The `state` parameter.
    pub state: String,
    /// The `nonce` parameter (checked in the ID token).
    pub nonce: String,
    /// The PKCE challenge to send (method `S256`).
    pub challenge: CodeChallenge,
}

/// A consumed attempt: what the callback needs to finish the login.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    /// The provider id the attempt was made for.
    pub provider_id: String,
    /// Where to send the browser afterwards.
    pub return_to: ReturnTo,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier for the token request.
    pub verifier: CodeVerifier,
    /// When the attempt was created.
    pub created_at: UnixTime,
}

/// Login attempts in flight, by `state`.
#[derive(Debug, Clone)]
pub struct LoginAttempts {
    max: usize,
    by_state: BTreeMap<String, LoginAttempt>,
}

impl LoginAttempts {
    /// An empty set holding at most `max` attempts.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            by_state: BTreeMap::new(),
        }
    }

    /// Starts an attempt. `random` must be 96 fresh bytes from a CSPRNG: 32 each for the state,
    /// the nonce and the PKCE verifier.
    ///
    /// # Errors
    /// [`LoginError::TooManyAttempts`] once `max` unexpired attempts are in flight.
    pub fn create(
        &mut self,
        provider_id: &str,
        return_to: ReturnTo,
        random: &[u8; 96],
        now: UnixTime,
    ) -> Result<LoginStart, LoginError> {
        self.purge(now);
        if self.by_state.len() >= self.max {
            return Err(LoginError::TooManyAttempts);
        }
        let (state, rest) = random.split_at(32);
        let (nonce, verifier) = rest.split_at(32);
        let mut v = [0u8; 32];
        v.copy_from_slice(verifier);
        let verifier = CodeVerifier::from_random(&v);
        let start = LoginStart {
            state: crate::b64url(state),
            nonce: crate::b64url(nonce),
            challenge: verifier.challenge(),
        };
        self.by_state.insert(
            start.state.clone(),
            LoginAttempt {
                provider_id: provider_id.to_owned(),
                return_to,
                nonce: start.nonce.clone(),
                verifier,
                created_at: now,
            },
        );
        Ok(start)
    }

    /// Consumes the attempt for `state` arriving at the callback of `provider_id`. Whatever the
    /// outcome, the state cannot be used again.
    ///
    /// # Errors
    /// Unknown, reused or other-provider state; expired attempt.
    pub fn take(
        &mut self,
        state: &str,
        provider_id: &str,
        now: UnixTime,
    ) -> Result<LoginAttempt, LoginError> {
        let attempt = self
            .by_state
            .remove(state)
            .ok_or(LoginError::UnknownState)?;
        if attempt.provider_id != provider_id {
            return Err(LoginError::UnknownState);
        }
        if now.secs_since(attempt.created_at) >= ATTEMPT_LIFETIME_SECS {
            return Err(LoginError::Expired);
        }
        Ok(attempt)
    }

    /// Drops expired attempts.
    pub fn purge(&mut self, now: UnixTime) {
        self.by_state
            .retain(|_, a| now.secs_since(a.created_at) < ATTEMPT_LIFETIME_SECS);
    }

    /// Attempts in flight.
    pub fn len(&self) -> usize {
        self.by_state.len()
    }

    /// Whether none is in flight.
    pub fn is_empty(&self) -> bool {
        self.by_state.is_empty()
    }
}

impl Default for LoginAttempts {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ATTEMPTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_accepts_only_same_origin_paths() {
        for ok in [
            "/",
            "/device?user_code=ABCD-EFGH",
            "/oauth/authorize?a=b&c=%2F%2F",
        ] {
            assert_eq!(ReturnTo::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            " /x",
            "/x y",
        ] {
            assert_eq!(
                ReturnTo::parse(bad),
                Err(LoginError::BadReturnTo),
                "{bad:?}"
            );
        }
    }
}

//! `gatehouse-verify`: what an origin behind a Gatehouse connector uses to check the
//! application assertion that comes with every request the edge allowed.
//!
//! The edge asks identity for an `app_assertion` JWT per (device, application) and the
//! connector puts it in a request header (`Gatehouse-Assertion` unless the connector's
//! `assertion-header` names another), dropping any copy the client sent. A [`Verifier`] holds
//! identity's public keys (its JWKS, `GET /.well-known/jwks.json`), the expected issuer
//! (identity's `public_url`) and audience (the application's name in the access policy), and
//! turns a header value into an [`Assertion`]: who the user is, their groups, how and when they
//! logged in, and the device and its posture. The recipe, for this crate and for any JOSE
//! library, is `docs/origin-assertions.md`.
//!
//! What it is not: a second JWT implementation. Every check (EdDSA only, known `kid`, strict
//! Ed25519 signature, `kind`, `iss`, `aud`, `exp`, `nbf`/`iat` skew) is
//! [`identity_claims::verify`]'s; this crate adds the key-set handling an origin needs
//! (replace on rotation, one rate-limited refetch on an unknown key) and a flat result type.
//!
//! What drives it: the origin. The default build is pure (no clock, no IO, no async runtime):
//! the caller passes `now` and feeds the JWKS in with [`Verifier::set_jwks`] or
//! [`Verifier::set_jwks_json`]. The `fetch` feature adds [`Verifier::refresh_from`] and
//! [`Verifier::verify_or_refresh`] (reqwest with rustls, inside a tokio runtime).

#![cfg_attr(test, allow(clippy::unwrap_used))]

#[cfg(feature = "fetch")]
mod fetch;

use std::sync::{Mutex, PoisonError, RwLock};

use identity_claims::{AppAssertion, Expectation, KeySet};

#[cfg(feature = "fetch")]
pub use fetch::FetchError;
pub use identity_claims::{Jwks, Posture, TokenError, UnixTime};

/// The header the connector carries the assertion in unless its `assertion-header` names
/// another.
pub const DEFAULT_HEADER: &str = "Gatehouse-Assertion";

/// Where identity serves its public keys, relative to its `public_url` (the issuer).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The shortest time between two key refetches caused by unknown key ids. Identity serves a
/// new key in its JWKS from the moment it signs with it and rotates every 7 days by default
/// (docs/identity-api.md, "Tokens identity signs"), so one refetch per rotation suffices; the
/// bound keeps tokens with made-up `kid`s from turning every request into a JWKS download.
pub const MIN_REFRESH_INTERVAL_SECS: u64 = 30;

/// Checks application assertions for one application.
///
/// Shareable between threads (`&self` methods; the key set sits behind a lock), so one
/// verifier per application serves every request.
#[derive(Debug)]
pub struct Verifier {
    expect: Expectation,
    keys: RwLock<KeySet>,
    /// When an unknown `kid` last led to a refetch (see [`Verifier::refresh_due`]).
    last_refresh: Mutex<Option<UnixTime>>,
}

/// A verified assertion: the requester as identity vouches for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// Identity's user id (`sub`); stable, unlike the e-mail address.
    pub user_id: String,
    /// The user's e-mail address from their identity provider.
    pub email: String,
    /// The user's groups (provider groups and identity's own).
    pub groups: Vec<String>,
    /// The identity provider id the user logged in with.
    pub idp: String,
    /// How the user authenticated (`pwd`, `otp`, `hwk`, … as the policy's login-method
    /// selector sees it); empty when the provider did not say.
    pub login_method: String,
    /// When the user authenticated at the provider.
    pub auth_time: UnixTime,
    /// The enrolled device the request came from; `None` for clientless access.
    pub device_id: Option<String>,
    /// The device's posture facts as reported at enrollment.
    pub posture: Option<Posture>,
    /// The application (the `aud` this verifier required).
    pub application: String,
    /// When the assertion was issued (`iat`).
    pub issued_at: UnixTime,
    /// When the assertion expires (`exp`); the edge fetches a new one before that.
    pub expires_at: UnixTime,
    /// The assertion's unique id (`jti`), for logs.
    pub token_id: String,
}

impl Assertion {
    /// Whether the user is a member of `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// Why an assertion was not accepted. Answer 401 (or 403) either way; the details are for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is absent or empty: the edge sent none (no identity, or identity failed).
    #[error("no assertion")]
    Missing,
    /// Signed with a key this verifier does not know: refetch the JWKS once and retry
    /// ([`Verifier::refresh_due`], [`Verifier::verify_or_refresh`]).
    #[error("assertion signed with unknown key {kid:?}")]
    UnknownKey {
        /// The token's `kid`.
        kid: String,
    },
    /// Malformed, badly signed, of another kind, issuer or audience, expired or not yet valid.
    #[error("invalid assertion")]
    Invalid(#[source] TokenError),
}

/// Why a JWKS document was not taken.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// Not a JSON object with a `keys` array.
    #[error("not a JWKS document")]
    Invalid(#[source] serde_json::Error),
    /// It holds no Ed25519 signature key with a `kid`, so no assertion could ever verify.
    #[error("the JWKS has no usable Ed25519 key")]
    NoUsableKey,
}

impl Verifier {
    /// A verifier for assertions `issuer` (identity's `public_url`, exactly as in `iss`) signs
    /// for `audience` (the application's name). It trusts no key until
    /// [`set_jwks`](Self::set_jwks).
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            expect: Expectation {
                issuer: issuer.into(),
                audience: audience.into(),
            },
            keys: RwLock::new(KeySet::default()),
            last_refresh: Mutex::new(None),
        }
    }

    /// [`new`](Self::new) trusting the keys of a JWKS document.
    ///
    /// # Errors
    /// The document is not a JWKS or has no usable key.
    pub fn from_jwks_json(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        json: &str,
    ) -> Result<Self, JwksError> {
        let verifier = Self::new(issuer, audience);
        verifier.set_jwks_json(json)?;
        Ok(verifier)
    }

    /// Trusts exactly the usable keys of `jwks` from now on (keys no longer listed are
    /// dropped, as identity drops retired keys once nothing they signed is valid).
    pub fn set_jwks(&self, jwks: &Jwks) {
        let keys = KeySet::from_jwks(jwks);
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
    }

    /// [`set_jwks`](Self::set_jwks) from a JWKS document's text. On error the trusted keys
    /// stay as they were.
    ///
    /// # Errors
    /// The document is not a JWKS or has no usable key.
    pub fn set_jwks_json(&self, json: &str) -> Result<(), JwksError> {
        let jwks: Jwks = serde_json::from_str(json).map_err(JwksError::Invalid)?;
        let keys = KeySet::from_jwks(&jwks);
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(())
    }

    /// The issuer assertions must carry.
    pub fn issuer(&self) -> &str {
        &self.expect.issuer
    }

    /// The application assertions must be for.
    pub fn audience(&self) -> &str {
        &self.expect.audience
    }

    /// Identity's JWKS address for this issuer: `{issuer}/.well-known/jwks.json`.
    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.expect.issuer.trim_end_matches('/'))
    }

    /// How many keys are trusted.
    pub fn key_count(&self) -> usize {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Verifies the assertion header's value (surrounding whitespace ignored) at `now`.
    ///
    /// # Errors
    /// [`VerifyError::Missing`] for an empty value, [`VerifyError::UnknownKey`] when the key
    /// is not trusted (yet), else [`VerifyError::Invalid`] with the failed check. Never panics
    /// on any input.
    pub fn verify(&self, header_value: &str, now: UnixTime) -> Result<Assertion, VerifyError> {
        let token = header_value.trim();
        if token.is_empty() {
            return Err(VerifyError::Missing);
        }
        let verified = {
            let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
            identity_claims::verify::<AppAssertion>(token, &keys, &self.expect, now)
        };
        match verified {
            Ok(claims) => Ok(self.assertion(claims)),
            Err(TokenError::UnknownKid(kid)) => Err(VerifyError::UnknownKey { kid }),
            Err(e) => Err(VerifyError::Invalid(e)),
        }
    }

    /// Whether `error` calls for refetching the JWKS now: it is an unknown key and no such
    /// refetch happened in the last [`MIN_REFRESH_INTERVAL_SECS`]. A `true` answer counts as
    /// the refetch (the caller fetches, calls [`set_jwks`](Self::set_jwks) and verifies again).
    pub fn refresh_due(&self, error: &VerifyError, now: UnixTime) -> bool {
        if !matches!(error, VerifyError::UnknownKey { .. }) {
            return false;
        }
        let mut last = self
            .last_refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|at| now.secs_since(at) >= MIN_REFRESH_INTERVAL_SECS);
        if due {
            *last = Some(now);
        }
        due
    }

    fn assertion(&self, claims: AppAssertion) -> Assertion {
        Assertion {
            user_id: claims.common.sub,
            email: claims.user.email,
            groups: claims.user.groups,
            idp: claims.user.idp,
            login_method: claims.user.login_method,
            auth_time: claims.user.auth_time,
            device_id: claims.device_id,
            posture: claims.posture,
            application: self.expect.audience.clone(),
            issued_at: claims.common.iat,
            expires_at: claims.common.exp,
            token_id: claims.common.jti,
        }
    }
}

#[cfg(test)]
mod tests;

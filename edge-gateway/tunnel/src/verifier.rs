//! How an edge checks the credential in a connector's `Register`.

use std::sync::RwLock;
use std::time::SystemTime;

use identity_claims::{ConnectorCredential, Expectation, KeySet, TokenError, UnixTime};
use tunnel_proto::{ConnectorId, RejectCode, TunnelId};

/// The audience of connector credentials (`docs/identity-api.md`).
pub const EDGE_AUDIENCE: &str = "gatehouse-edge";

/// Who a verified credential belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorIdentity {
    pub connector_id: ConnectorId,
    /// The tunnel the credential opens, when the credential names one; the edge then requires
    /// the `Register`'s `tunnel_id` to be the same.
    pub tunnel_id: Option<TunnelId>,
}

/// Why a credential was refused, as the edge tells the connector in `Rejected`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Checks a connector credential. Called once per connection, from the connection's task; it
/// must not block for long (no network calls: keys come from the config feed).
pub trait CredentialVerifier: Send + Sync + 'static {
    /// # Errors
    /// The credential is not acceptable; the rejection goes to the connector as is.
    fn verify(&self, credential: &str) -> Result<ConnectorIdentity, Rejection>;
}

/// Verifies connector credentials as identity signs them: EdDSA JWTs of kind
/// `connector_credential`, audience [`EDGE_AUDIENCE`], a configured issuer, against a key set
/// that can be replaced at run time (when the config feed delivers new signing keys).
#[derive(Debug)]
pub struct JwtVerifier {
    keys: RwLock<KeySet>,
    expect: Expectation,
}

impl JwtVerifier {
    pub fn new(issuer: impl Into<String>, keys: KeySet) -> Self {
        Self {
            keys: RwLock::new(keys),
            expect: Expectation {
                issuer: issuer.into(),
                audience: EDGE_AUDIENCE.to_owned(),
            },
        }
    }

    /// Replaces the trusted keys; connections already registered are not re-checked.
    pub fn set_keys(&self, keys: KeySet) {
        // A poisoned lock only means a writer panicked mid-assignment of a whole value.
        let mut guard = self.keys.write().unwrap_or_else(|e| e.into_inner());
        *guard = keys;
    }

    /// [`CredentialVerifier::verify`] at a given instant.
    ///
    /// # Errors
    /// See [`CredentialVerifier::verify`].
    pub fn verify_at(
        &self,
        credential: &str,
        now: UnixTime,
    ) -> Result<ConnectorIdentity, Rejection> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let claims: ConnectorCredential =
            identity_claims::verify(credential, &keys, &self.expect, now)
                .map_err(|e| Rejection::new(reject_code(&e), e.to_string()))?;
        if claims.common.sub != claims.connector_id {
            return Err(Rejection::new(
                RejectCode::INVALID_CREDENTIAL,
                "credential subject differs from its connector_id",
            ));
        }
        Ok(ConnectorIdentity {
            connector_id: ConnectorId(claims.connector_id),
            tunnel_id: Some(TunnelId(claims.tunnel_id)),
        })
    }
}

impl CredentialVerifier for JwtVerifier {
    fn verify(&self, credential: &str) -> Result<ConnectorIdentity, Rejection> {
        self.verify_at(credential, UnixTime::from_system_time(SystemTime::now()))
    }
}

fn reject_code(e: &TokenError) -> RejectCode {
    if let TokenError::Expired { .. } = e {
        RejectCode::CREDENTIAL_EXPIRED
    } else {
        RejectCode::INVALID_CREDENTIAL
    }
}

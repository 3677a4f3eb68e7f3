//! The credentials file (`credentials-file` in `config.yml`) and the exchange of a connector's
//! service-token secret for a connector credential at identity's `POST /v1/connector-credential`.
//!
//! The file is JSON, keys in cloudflared's capitalized style, unknown keys rejected:
//!
//! ```json
//! {"TunnelID": "t1", "ConnectorID": "c1", "Credential": "<connector credential JWT>"}
//! {"TunnelID": "t1", "ConnectorID": "c1", "Secret": "ghst_…", "Identity": "https://identity.example.com"}
//! ```
//!
//! `Credential` is used as is until the process restarts; with `Secret` and `Identity` the
//! connector asks identity for a credential at start and again at 80 % of each one's lifetime.
//! Secrets are [`SecretString`]s: their `Debug` is redacted and no log line carries them.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use tunnel_proto::{ConnectorId, Credential, TunnelId};
use url::Url;

/// The path of the exchange below identity's base URL (`docs/identity-api.md`).
pub const CONNECTOR_CREDENTIAL_PATH: &str = "/v1/connector-credential";

/// How long one exchange may take before it counts as failed.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed credentials file.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `TunnelID`: sent in `Register`; identity's credential names the same tunnel.
    pub tunnel_id: TunnelId,
    /// `ConnectorID`: sent in `Register`; identity's credential names the same connector.
    pub connector_id: ConnectorId,
    /// Where the connector credential comes from.
    pub source: CredentialSource,
}

/// `Credential`, or `Secret` plus `Identity`.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// A connector credential JWT, used until a restart.
    Fixed(SecretString),
    /// A connector service token, exchanged for credentials at `identity`.
    Exchange {
        /// identity's base URL (`public_url`).
        identity: Url,
        /// The service token's secret (`ghst_…`), sent as the Bearer token.
        secret: SecretString,
    },
}

/// Why the credentials file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("failed to read the credentials file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid credentials file")]
    Syntax(#[source] serde_json::Error),
    #[error("the credentials file needs either `Credential`, or `Secret` and `Identity`")]
    Source,
    #[error("`{0}` in the credentials file is empty")]
    Empty(&'static str),
}

/// A credential identity issued.
#[derive(Debug, Clone)]
pub struct IssuedCredential {
    pub credential: Credential,
    /// `expires_in`: the credential's lifetime from now.
    pub expires_in: Duration,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("failed to reach identity")]
    Request(#[source] reqwest::Error),
    /// 401 means the connector or its token was revoked.
    #[error("identity answered {0}")]
    Status(reqwest::StatusCode),
    #[error("invalid answer from identity")]
    Body(#[source] reqwest::Error),
}

impl Credentials {
    /// Parses the file's text.
    ///
    /// # Errors
    /// Invalid JSON, unknown or missing keys, or neither (or both) credential sources.
    pub fn from_json(text: &str) -> Result<Self, CredentialsError> {
        let raw: RawCredentials = serde_json::from_str(text).map_err(CredentialsError::Syntax)?;
        if raw.tunnel_id.is_empty() {
            return Err(CredentialsError::Empty("TunnelID"));
        }
        if raw.connector_id.is_empty() {
            return Err(CredentialsError::Empty("ConnectorID"));
        }
        let source = match (raw.credential, raw.secret, raw.identity) {
            (Some(jwt), None, None) => {
                if jwt.expose_secret().is_empty() {
                    return Err(CredentialsError::Empty("Credential"));
                }
                CredentialSource::Fixed(jwt)
            }
            (None, Some(secret), Some(identity)) => {
                if secret.expose_secret().is_empty() {
                    return Err(CredentialsError::Empty("Secret"));
                }
                CredentialSource::Exchange { identity, secret }
            }
            (Some(_) | None, Some(_) | None, Some(_) | None) => {
                return Err(CredentialsError::Source)
            }
        };
        Ok(Self {
            tunnel_id: TunnelId(raw.tunnel_id),
            connector_id: ConnectorId(raw.connector_id),
            source,
        })
    }

    /// Reads and parses the file at `path`.
    ///
    /// # Errors
    /// See [`CredentialsError`].
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text)
    }
}

/// Asks identity for a connector credential: `POST <identity>/v1/connector-credential` with the
/// secret as Bearer token, answer `{"token","expires_in"}`.
///
/// # Errors
/// identity could not be reached, answered other than 2xx, or with an invalid body.
pub async fn exchange(
    client: &reqwest::Client,
    identity: &Url,
    secret: &SecretString,
) -> Result<IssuedCredential, ExchangeError> {
    let url = format!(
        "{}{CONNECTOR_CREDENTIAL_PATH}",
        identity.as_str().trim_end_matches('/')
    );
    let response = client
        .post(url)
        .bearer_auth(secret.expose_secret())
        .timeout(EXCHANGE_TIMEOUT)
        .send()
        .await
        .map_err(ExchangeError::Request)?;
    let status = response.status();
    if !status.is_success() {
        return Err(ExchangeError::Status(status));
    }
    let answer: ExchangeAnswer = response.json().await.map_err(ExchangeError::Body)?;
    Ok(IssuedCredential {
        credential: Credential(answer.token),
        expires_in: Duration::from_secs(answer.expires_in),
    })
}

/// The shortest wait between two exchanges, so a credential with no lifetime left does not
/// make the connector hammer identity.
pub const MIN_REFRESH_DELAY: Duration = Duration::from_secs(1);

/// When to ask for the next credential: at 80 % of this one's lifetime (at least
/// [`MIN_REFRESH_DELAY`]), so a slow or failing identity has a fifth of it to recover before the
/// edges see an expired credential.
pub fn refresh_after(expires_in: Duration) -> Duration {
    expires_in.mul_f64(0.8).max(MIN_REFRESH_DELAY)
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    #[serde(rename = "TunnelID")]
    tunnel_id: String,
    #[serde(rename = "ConnectorID")]
    connector_id: String,
    #[serde(rename = "Credential")]
    credential: Option<SecretString>,
    #[serde(rename = "Secret")]
    secret: Option<SecretString>,
    #[serde(rename = "Identity")]
    identity: Option<Url>,
}

/// identity's answer; lenient, like every message from the network.
#[derive(Deserialize)]
struct ExchangeAnswer {
    token: String,
    expires_in: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn fixed_credential_parses() {
        let creds = Credentials::from_json(
            r#"{"TunnelID":"t1","ConnectorID":"c1","Credential":"eyJ.e30.s"}"#,
        )
        .unwrap();
        assert_eq!(creds.tunnel_id, TunnelId("t1".into()));
        assert_eq!(creds.connector_id, ConnectorId("c1".into()));
        assert!(
            matches!(&creds.source, CredentialSource::Fixed(jwt) if jwt.expose_secret() == "eyJ.e30.s")
        );
    }

    #[test]
    fn secret_with_identity_parses_and_debug_hides_it() {
        let creds = Credentials::from_json(
            r#"{"TunnelID":"t1","ConnectorID":"c1","Secret":"ghst_abc","Identity":"http://identity:8080"}"#,
        )
        .unwrap();
        let CredentialSource::Exchange { identity, secret } = &creds.source else {
            panic!("{creds:?}");
        };
        assert_eq!(identity.as_str(), "http://identity:8080/");
        assert_eq!(secret.expose_secret(), "ghst_abc");
        assert!(!format!("{creds:?}").contains("ghst_abc"));
    }

    #[test]
    fn both_or_neither_source_is_refused() {
        for text in [
            r#"{"TunnelID":"t1","ConnectorID":"c1"}"#,
            r#"{"TunnelID":"t1","ConnectorID":"c1","Secret":"ghst_abc"}"#,
            r#"{"TunnelID":"t1","ConnectorID":"c1","Credential":"j","Secret":"s","Identity":"http://i"}"#,
        ] {
            assert!(
                matches!(Credentials::from_json(text), Err(CredentialsError::Source)),
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_empty_ids_are_refused() {
        assert!(matches!(
            Credentials::from_json(
                r#"{"TunnelID":"t1","ConnectorID":"c1","Credential":"j","X":1}"#
            ),
            Err(CredentialsError::Syntax(_))
        ));
        assert!(matches!(
            Credentials::from_json(r#"{"TunnelID":"","ConnectorID":"c1","Credential":"j"}"#),
            Err(CredentialsError::Empty("TunnelID"))
        ));
    }

    #[test]
    fn refresh_comes_at_four_fifths_of_the_lifetime() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(2880)
        );
        assert_eq!(refresh_after(Duration::ZERO), MIN_REFRESH_DELAY);
    }
}

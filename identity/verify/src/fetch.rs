//! The `fetch` feature: identity's JWKS over HTTP(S) with reqwest (rustls).

use std::time::Duration;

use crate::{Assertion, JwksError, UnixTime, Verifier, VerifyError};

/// How long one JWKS download may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest JWKS document accepted; identity's holds a handful of 150-byte keys.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Why the JWKS could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No connection, a timeout, or a broken response.
    #[error("failed to fetch the JWKS")]
    Http(#[source] reqwest::Error),
    /// Identity answered with another status than 200.
    #[error("the JWKS endpoint answered {0}")]
    Status(u16),
    /// The document is larger than 1 MiB.
    #[error("the JWKS document is too large")]
    TooLarge,
    /// The document is not a usable JWKS.
    #[error("bad JWKS document")]
    Jwks(#[source] JwksError),
}

impl Verifier {
    /// Downloads `jwks_url` (usually [`Verifier::jwks_url`]) and trusts its keys from now on.
    ///
    /// # Errors
    /// The download fails or the document is not a usable JWKS; the trusted keys stay as they
    /// were.
    pub async fn refresh_from(&self, jwks_url: &str) -> Result<(), FetchError> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(FetchError::Http)?;
        let response = client
            .get(jwks_url)
            .send()
            .await
            .map_err(FetchError::Http)?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let body = response.bytes().await.map_err(FetchError::Http)?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(FetchError::TooLarge);
        }
        let text = String::from_utf8_lossy(&body);
        self.set_jwks_json(&text).map_err(FetchError::Jwks)
    }

    /// [`Verifier::verify`], and on an unknown key one refetch of `jwks_url` and a second try,
    /// at most once per [`crate::MIN_REFRESH_INTERVAL_SECS`] (key rotation).
    ///
    /// # Errors
    /// As [`Verifier::verify`]; a failed refetch leaves the [`VerifyError::UnknownKey`].
    pub async fn verify_or_refresh(
        &self,
        header_value: &str,
        jwks_url: &str,
        now: UnixTime,
    ) -> Result<Assertion, VerifyError> {
        match self.verify(header_value, now) {
            Err(error) if self.refresh_due(&error, now) => {
                if self.refresh_from(jwks_url).await.is_err() {
                    return Err(error);
                }
                self.verify(header_value, now)
            }
            verified => verified,
        }
    }
}

//! Identity's own authorization code grant (RFC 6749 §4.1) for its public client, with PKCE
//! required and loopback redirects for native apps (RFC 8252).

use std::collections::{BTreeMap, BTreeSet};

use crate::pkce::{CodeChallenge, CodeVerifier};
use crate::UnixTime;

/// Lifetime of an authorization code; RFC 6749 §4.1.2 recommends at most 10 minutes, one is
/// plenty for a redirect to a local listener.
pub const CODE_LIFETIME_SECS: u64 = 60;

/// Which clients exist and how many codes may be outstanding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCodeConfig {
    /// Known public client ids (`gatehouse`).
    pub clients: BTreeSet<String>,
    /// Most outstanding codes. Default 10,000.
    pub max_outstanding: usize,
}

impl Default for AuthCodeConfig {
    fn default() -> Self {
        Self {
            clients: BTreeSet::from(["gatehouse".to_owned()]),
            max_outstanding: 10_000,
        }
    }
}

/// The query parameters of `GET /oauth/authorize`, as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// `response_type`.
    pub response_type: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `code_challenge`.
    pub code_challenge: Option<String>,
    /// `code_challenge_method`.
    pub code_challenge_method: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
}

/// An authorization request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAuthorize {
    /// The client.
    pub client_id: String,
    /// The exact redirect URI (compared as a string at redemption).
    pub redirect_uri: String,
    /// Echoed back to the client.
    pub state: Option<String>,
    /// The PKCE challenge.
    pub challenge: CodeChallenge,
    /// Requested scope.
    pub scope: Option<String>,
}

/// Why an authorization request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    /// Missing or unknown `client_id`: show an error page, never redirect (RFC 6749 §4.1.2.1).
    #[error("unknown client")]
    UnknownClient,
    /// Missing or not a loopback `http://127.0.0.1` / `http://[::1]` URI: show an error page,
    /// never redirect.
    #[error("invalid redirect_uri")]
    InvalidRedirectUri,
    /// `response_type` is not `code`: redirect with `unsupported_response_type`.
    #[error("unsupported_response_type")]
    UnsupportedResponseType,
    /// No S256 challenge: redirect with `invalid_request` (RFC 7636 §4.4.1).
    #[error("invalid_request")]
    InvalidRequest,
    /// Too many outstanding codes: redirect with `temporarily_unavailable`.
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable,
}

impl AuthorizeError {
    /// Whether the error may be sent to the redirect URI (it is known to be safe) rather
    /// than shown to the user.
    pub fn redirectable(&self) -> bool {
        !matches!(self, Self::UnknownClient | Self::InvalidRedirectUri)
    }

    /// The RFC 6749 §4.1.2.1 `error` value.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownClient | Self::InvalidRedirectUri | Self::InvalidRequest => {
                "invalid_request"
            }
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// Why a code could not be redeemed: all are `invalid_grant` (RFC 6749 §5.2) except
/// `InvalidClient` and `InvalidRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedeemError {
    /// Unknown, used or expired code, or redirect URI / client / verifier mismatch.
    #[error("invalid_grant")]
    InvalidGrant,
    /// A syntactically invalid `code_verifier`.
    #[error("invalid_request")]
    InvalidRequest,
}

impl RedeemError {
    /// The `error` value of the JSON error response.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidRequest => "invalid_request",
        }
    }
}

#[derive(Debug, Clone)]
struct Issued<G> {
    request: ValidAuthorize,
    expires_at: UnixTime,
    grant: G,
}

/// Outstanding authorization codes. `G` is what the code grants (user, session), owned by the
/// driver.
#[derive(Debug, Clone)]
pub struct AuthCodes<G> {
    config: AuthCodeConfig,
    codes: BTreeMap<String, Issued<G>>,
}

impl<G> AuthCodes<G> {
    /// No codes yet.
    pub fn new(config: AuthCodeConfig) -> Self {
        Self {
            config,
            codes: BTreeMap::new(),
        }
    }

    /// Validates an authorization request. Checks client and redirect URI first so that the
    /// other errors may be redirected.
    ///
    /// # Errors
    /// [`AuthorizeError`]; see [`AuthorizeError::redirectable`].
    pub fn validate(&self, req: &AuthorizeRequest) -> Result<ValidAuthorize, AuthorizeError> {
        let client_id = req
            .client_id
            .as_deref()
            .filter(|c| self.config.clients.contains(*c))
            .ok_or(AuthorizeError::UnknownClient)?;
        let redirect_uri = req
            .redirect_uri
            .as_deref()
            .filter(|u| is_loopback_redirect(u))
            .ok_or(AuthorizeError::InvalidRedirectUri)?;
        if req.response_type.as_deref() != Some("code") {
            return Err(AuthorizeError::UnsupportedResponseType);
        }
        let challenge = CodeChallenge::parse(
            req.code_challenge.as_deref().unwrap_or_default(),
            req.code_challenge_method.as_deref().unwrap_or_default(),
        )
        .map_err(|_| AuthorizeError::InvalidRequest)?;
        Ok(ValidAuthorize {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            state: req.state.clone(),
            challenge,
            scope: req.scope.clone(),
        })
    }

    /// Issues a one-time code for a validated request once the user is logged in.
    /// `random`: 32 fresh CSPRNG bytes.
    ///
    /// # Errors
    /// [`AuthorizeError::TemporarilyUnavailable`] when too many codes are outstanding.
    pub fn issue(
        &mut self,
        request: ValidAuthorize,
        grant: G,
        random: &[u8; 32],
        now: UnixTime,
    ) -> Result<String, AuthorizeError> {
        self.purge(now);
        if self.codes.len() >= self.config.max_outstanding {
            return Err(AuthorizeError::TemporarilyUnavailable);
        }
        let code = crate::b64url(random);
        self.codes.insert(
            code.clone(),
            Issued {
                request,
                expires_at: now.plus(CODE_LIFETIME_SECS),
                grant,
            },
        );
        Ok(code)
    }

    /// Redeems a code at the token endpoint. The code is consumed even when a check fails, so
    /// a guessed verifier gets one try.
    ///
    /// # Errors
    /// [`RedeemError`].
    pub fn redeem(
        &mut self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
        now: UnixTime,
    ) -> Result<G, RedeemError> {
        let issued = self.codes.remove(code).ok_or(RedeemError::InvalidGrant)?;
        let verifier = CodeVerifier::parse(verifier).map_err(|_| RedeemError::InvalidRequest)?;
        let ok = now < issued.expires_at
            && issued.request.client_id == client_id
            && issued.request.redirect_uri == redirect_uri
            && issued.request.challenge.verify(&verifier);
        if ok {
            Ok(issued.grant)
        } else {
            Err(RedeemError::InvalidGrant)
        }
    }

    /// Drops expired codes.
    pub fn purge(&mut self, now: UnixTime) {
        self.codes.retain(|_, i| now < i.expires_at);
    }

    /// When the next code expires.
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        self.codes.values().map(|i| i.expires_at).min()
    }
}

impl<G> Default for AuthCodes<G> {
    fn default() -> Self {
        Self::new(AuthCodeConfig::default())
    }
}

/// `http://127.0.0.1[:port]/…` or `http://[::1][:port]/…` (RFC 8252 §7.3, any port), without
/// user info or fragment. `localhost` is refused (RFC 8252 §8.3: it may resolve elsewhere).
pub fn is_loopback_redirect(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("http://") else {
        return false;
    };
    if uri.contains('#') || uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return false;
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if !(path.is_empty() || path.starts_with('/') || path.starts_with('?')) {
        return false;
    }
    let Some(port) = authority
        .strip_prefix("127.0.0.1")
        .or_else(|| authority.strip_prefix("[::1]"))
    else {
        return false;
    };
    match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(p) => {
            p.len() <= 5
                && !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok_and(|p| p != 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ip_loopback_http_redirects_are_accepted() {
        for ok in [
            "http://127.0.0.1:49152/callback",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:8080",
            "http://[::1]:5000/cb?x=1",
            "http://[::1]/cb",
        ] {
            assert!(is_loopback_redirect(ok), "{ok}");
        }
        for bad in [
            "http://localhost:8080/callback",
            "https://127.0.0.1:8080/callback",
            "http://127.0.0.2:8080/callback",
            "http://127.0.0.1.evil.example/cb",
            "http://127.0.0.1:8080@evil.example/cb",
            "http://user@127.0.0.1:8080/cb",
            "http://127.0.0.1:99999/cb",
            "http://127.0.0.1:0/cb",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:80x/cb",
            "http://[::1]x/cb",
            "http://[0:0:0:0:0:0:0:1]:80/cb",
            "http://[::2]:80/cb",
            "http://127.0.0.1:80/cb#frag",
            "http://127.0.0.1:80/c b",
            "http://0x7f000001/cb",
            "gatehouse://callback",
            "",
        ] {
            assert!(!is_loopback_redirect(bad), "{bad}");
        }
    }
}

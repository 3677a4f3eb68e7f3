//! Compact JWS (RFC 7515 §7.1) with EdDSA over Ed25519 (RFC 8037 §3.1), and JWT validation
//! (RFC 7519 §7.2) against a caller-supplied `now`.
//!
//! Hand-written on `ed25519-dalek` rather than a JWT crate: the format is three base64url parts,
//! only one algorithm is ever accepted, and every check (including the time claims, which must
//! not read a clock here) is explicit in [`verify`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::Signature;
use serde::Deserialize;

use crate::jwk::ALG_EDDSA;
use crate::{Claims, KeySet, SigningKey, TokenKind, UnixTime};

/// How far in the future `nbf` and `iat` may lie, for clock differences between identity and
/// verifiers (RFC 7519 §4.1.5 allows "some small leeway"; 60 s is the common choice).
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Longest token accepted, in bytes. Our tokens are well under 2 KiB; the bound keeps hostile
/// input cheap to reject.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// What a verifier requires of `iss` and `aud`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The exact `iss` (identity's `public_url`).
    pub issuer: String,
    /// A value `aud` must contain.
    pub audience: String,
}

/// Why a token was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON, too long, or a claim set that does not fit the type.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is not `EdDSA` (this includes `none`, HMAC and RSA algorithms).
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The header has a `crit` member; no extension is understood (RFC 7515 §4.1.11).
    #[error("critical header extension not understood")]
    CriticalExtension,
    /// The header has no `kid`.
    #[error("token has no kid")]
    MissingKid,
    /// No trusted key has this `kid`; a verifier may refresh its JWKS once and retry.
    #[error("unknown kid {0:?}")]
    UnknownKid(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The `kind` claim is missing or names another token type.
    #[error("wrong token kind: expected {expected}, got {got:?}")]
    WrongKind {
        /// What the caller asked for.
        expected: TokenKind,
        /// What the token says (`None` when absent or not a known kind).
        got: Option<TokenKind>,
    },
    /// `iss` differs from the expected issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain the expected audience.
    #[error("wrong audience")]
    WrongAudience,
    /// `now` is at or after `exp`.
    #[error("token expired at {exp}")]
    Expired {
        /// The token's expiry.
        exp: UnixTime,
    },
    /// `nbf` lies more than [`CLOCK_SKEW_SECS`] in the future.
    #[error("token not valid before {nbf}")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: UnixTime,
    },
    /// `iat` lies more than [`CLOCK_SKEW_SECS`] in the future.
    #[error("token issued in the future at {iat}")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: UnixTime,
    },
}

/// Signs `claims` with `key` as a compact JWS: header `{"alg":"EdDSA","typ":"JWT","kid":…}`,
/// payload the claims plus `"kind": C::KIND`.
pub fn sign<C: Claims>(claims: &C, key: &SigningKey) -> String {
    // The claim types hold only strings, integers, options and vectors, whose serialization
    // cannot fail; the fallback is never taken.
    let mut payload = serde_json::to_value(claims).unwrap_or_default();
    if let Some(obj) = payload.as_object_mut() {
        obj.insert("kind".to_owned(), C::KIND.as_str().into());
    }
    sign_json(&payload, key)
}

/// Signs an arbitrary JSON claim set (no `kind` added), e.g. the built-in local provider's
/// OpenID Connect ID tokens, which are verified by a standard relying party rather than by
/// [`verify`].
pub fn sign_json(payload: &serde_json::Value, key: &SigningKey) -> String {
    let header = serde_json::json!({ "alg": ALG_EDDSA, "typ": "JWT", "kid": key.kid() });
    let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(payload.to_string()));
    let signature = key.sign_bytes(out.as_bytes());
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(signature));
    out
}

/// Verifies `token` and returns its claims.
///
/// Checks, in order: size and shape, `alg == EdDSA`, no `crit`, `kid` present and trusted, the
/// signature (strict RFC 8032 verification), `kind == C::KIND`, the claim set's shape, `iss`,
/// `aud`, `exp` (`now < exp`), and `nbf`/`iat` at most [`CLOCK_SKEW_SECS`] after `now`.
///
/// # Errors
/// The first failed check, as a [`TokenError`]. Never panics on any input.
pub fn verify<C: Claims>(
    token: &str,
    keys: &KeySet,
    expect: &Expectation,
    now: UnixTime,
) -> Result<C, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("token too long"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three parts"));
    };

    let header: Header = decode_json(header_b64, "bad header")?;
    if header.alg != ALG_EDDSA {
        return Err(TokenError::UnsupportedAlgorithm(header.alg));
    }
    if header.crit.is_some() {
        return Err(TokenError::CriticalExtension);
    }
    let kid = header.kid.ok_or(TokenError::MissingKid)?;
    let key = keys.key(&kid).ok_or(TokenError::UnknownKid(kid))?;

    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| TokenError::Malformed("bad signature encoding"))?;
    let sig = Signature::from_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    key.verify_strict(signing_input.as_bytes(), &sig)
        .map_err(|_| TokenError::BadSignature)?;

    let payload: serde_json::Value = decode_json(payload_b64, "bad payload")?;
    let got = payload
        .get("kind")
        .and_then(|k| TokenKind::deserialize(k).ok());
    if got != Some(C::KIND) {
        return Err(TokenError::WrongKind {
            expected: C::KIND,
            got,
        });
    }
    let claims =
        C::deserialize(&payload).map_err(|_| TokenError::Malformed("claims do not fit"))?;
    check_common(claims.common(), expect, now)?;
    Ok(claims)
}

fn check_common(
    c: &crate::CommonClaims,
    expect: &Expectation,
    now: UnixTime,
) -> Result<(), TokenError> {
    if c.iss != expect.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if !c.aud.contains(&expect.audience) {
        return Err(TokenError::WrongAudience);
    }
    if now >= c.exp {
        return Err(TokenError::Expired { exp: c.exp });
    }
    let latest = now.plus(CLOCK_SKEW_SECS);
    if let Some(nbf) = c.nbf {
        if nbf > latest {
            return Err(TokenError::NotYetValid { nbf });
        }
    }
    if c.iat > latest {
        return Err(TokenError::IssuedInFuture { iat: c.iat });
    }
    Ok(())
}

/// The JOSE header members we look at; others are ignored.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

fn decode_json<T: serde::de::DeserializeOwned>(
    part: &str,
    what: &'static str,
) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8037 Appendix A.4: the Ed25519 signature of a compact JWS signing input.
    #[test]
    fn rfc8037_a4_signature_vector() {
        let d = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
        let key = SigningKey::from_seed(&d.try_into().unwrap());
        let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
        let sig = key.sign_bytes(input.as_bytes());
        assert_eq!(
            URL_SAFE_NO_PAD.encode(sig),
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }
}

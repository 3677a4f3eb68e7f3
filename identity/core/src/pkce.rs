//! Proof Key for Code Exchange (RFC 7636) with the S256 method only.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Shortest verifier (RFC 7636 §4.1).
pub const VERIFIER_MIN_LEN: usize = 43;
/// Longest verifier (RFC 7636 §4.1).
pub const VERIFIER_MAX_LEN: usize = 128;
/// Length of an S256 challenge: base64url of 32 bytes without padding (RFC 7636 §4.2).
pub const CHALLENGE_LEN: usize = 43;

/// Why a PKCE value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// Not 43–128 characters of `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
    #[error("invalid code verifier")]
    InvalidVerifier,
    /// Not 43 base64url characters.
    #[error("invalid code challenge")]
    InvalidChallenge,
    /// `code_challenge_method` is not `S256` (`plain` is refused, RFC 7636 §7.2).
    #[error("unsupported code challenge method")]
    UnsupportedMethod,
}

/// A syntactically valid code verifier. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeVerifier(String);

impl CodeVerifier {
    /// Parses a verifier received from a client.
    ///
    /// # Errors
    /// [`PkceError::InvalidVerifier`].
    pub fn parse(s: &str) -> Result<Self, PkceError> {
        let ok = (VERIFIER_MIN_LEN..=VERIFIER_MAX_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(PkceError::InvalidVerifier)
        }
    }

    /// A verifier from 32 random bytes the caller drew (base64url, 43 characters: 256 bits, as
    /// RFC 7636 §4.1 recommends).
    pub fn from_random(random: &[u8; 32]) -> Self {
        Self(crate::b64url(random))
    }

    /// The verifier text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The S256 challenge: `BASE64URL(SHA256(ASCII(verifier)))` (RFC 7636 §4.2).
    pub fn challenge(&self) -> CodeChallenge {
        CodeChallenge(crate::b64url(&Sha256::digest(self.0.as_bytes())))
    }
}

impl std::fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeVerifier(..)")
    }
}

/// An S256 code challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Parses `code_challenge` and `code_challenge_method` from an authorization request.
    ///
    /// # Errors
    /// The method is not `S256`, or the challenge is not 43 base64url characters.
    pub fn parse(challenge: &str, method: &str) -> Result<Self, PkceError> {
        if method != "S256" {
            return Err(PkceError::UnsupportedMethod);
        }
        let ok = challenge.len() == CHALLENGE_LEN
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        if ok {
            Ok(Self(challenge.to_owned()))
        } else {
            Err(PkceError::InvalidChallenge)
        }
    }

    /// The challenge text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `verifier` hashes to this challenge, compared in constant time.
    pub fn verify(&self, verifier: &CodeVerifier) -> bool {
        verifier
            .challenge()
            .0
            .as_bytes()
            .ct_eq(self.0.as_bytes())
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    #[test]
    fn rfc7636_appendix_b_vector() {
        let random: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let v = CodeVerifier::from_random(&random);
        assert_eq!(v.as_str(), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        let c = v.challenge();
        assert_eq!(c.as_str(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let parsed = CodeChallenge::parse(c.as_str(), "S256").unwrap();
        assert!(parsed.verify(&CodeVerifier::parse(v.as_str()).unwrap()));
    }

    #[test]
    fn verifier_syntax_is_enforced() {
        assert!(CodeVerifier::parse(&"a".repeat(43)).is_ok());
        assert!(CodeVerifier::parse(&"~._-".repeat(32)).is_ok());
        assert_eq!(
            CodeVerifier::parse(&"a".repeat(42)),
            Err(PkceError::InvalidVerifier)
        );
        assert_eq!(
            CodeVerifier::parse(&"a".repeat(129)),
            Err(PkceError::InvalidVerifier)
        );
        assert_eq!(
            CodeVerifier::parse(&format!("{}+", "a".repeat(43))),
            Err(PkceError::InvalidVerifier)
        );
        assert_eq!(
            CodeVerifier::parse(&format!("{}é", "a".repeat(43))),
            Err(PkceError::InvalidVerifier)
        );
    }

    #[test]
    fn only_s256_challenges_are_accepted_and_a_wrong_verifier_fails() {
        let c = CodeVerifier::from_random(&[1; 32]).challenge();
        assert_eq!(
            CodeChallenge::parse(c.as_str(), "plain"),
            Err(PkceError::UnsupportedMethod)
        );
        assert_eq!(
            CodeChallenge::parse("short", "S256"),
            Err(PkceError::InvalidChallenge)
        );
        assert!(!c.verify(&CodeVerifier::from_random(&[2; 32])));
        assert!(!format!("{:?}", CodeVerifier::from_random(&[1; 32])).contains('A'));
    }
}

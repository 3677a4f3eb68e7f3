//! Service token secrets: `ghst_<token_id>_<secret>`, the secret 32 random bytes in base64url.
//!
//! Stored as a SHA-256 hash. A slow password hash (argon2) exists to make guessing low-entropy
//! human passwords expensive; these secrets are 256 bits from a CSPRNG, so a preimage search is
//! infeasible whatever the hash speed, and one fast hash per request keeps verification cheap
//! (the reasoning of RFC 6819 §5.1.4.1.3 for high-entropy credentials).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Prefix of every service token (makes leaked tokens recognisable to secret scanners).
pub const PREFIX: &str = "ghst_";
/// Length of the encoded secret: base64url of 32 bytes without padding.
pub const SECRET_LEN: usize = 43;
/// Longest token id.
pub const MAX_TOKEN_ID_LEN: usize = 64;

/// Why a service token string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceTokenError {
    /// Not `ghst_<id>_<43 base64url characters>`.
    #[error("malformed service token")]
    Malformed,
    /// The token id is empty, too long, or not `[A-Za-z0-9_-]`.
    #[error("invalid token id")]
    BadTokenId,
}

/// A service token with its secret. `Debug` shows only the id.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceTokenSecret {
    token_id: String,
    secret: [u8; 32],
}

impl ServiceTokenSecret {
    /// A new token for `token_id` with a secret of 32 bytes the caller drew from a CSPRNG.
    ///
    /// # Errors
    /// [`ServiceTokenError::BadTokenId`].
    pub fn generate(token_id: &str, random: &[u8; 32]) -> Result<Self, ServiceTokenError> {
        if !valid_id(token_id) {
            return Err(ServiceTokenError::BadTokenId);
        }
        Ok(Self {
            token_id: token_id.to_owned(),
            secret: *random,
        })
    }

    /// Parses a presented token.
    ///
    /// # Errors
    /// [`ServiceTokenError::Malformed`] or [`ServiceTokenError::BadTokenId`].
    pub fn parse(s: &str) -> Result<Self, ServiceTokenError> {
        let rest = s.strip_prefix(PREFIX).ok_or(ServiceTokenError::Malformed)?;
        // The secret has a fixed length and may itself contain `_`, so split from the end.
        let split = rest
            .len()
            .checked_sub(SECRET_LEN + 1)
            .ok_or(ServiceTokenError::Malformed)?;
        if !rest.is_char_boundary(split) || rest.as_bytes()[split] != b'_' {
            return Err(ServiceTokenError::Malformed);
        }
        let (id, secret) = (&rest[..split], &rest[split + 1..]);
        if !valid_id(id) {
            return Err(ServiceTokenError::BadTokenId);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(secret)
            .map_err(|_| ServiceTokenError::Malformed)?;
        let secret = bytes.try_into().map_err(|_| ServiceTokenError::Malformed)?;
        Ok(Self {
            token_id: id.to_owned(),
            secret,
        })
    }

    /// The token id (public: names the row and appears in the feed's revocations).
    pub fn token_id(&self) -> &str {
        &self.token_id
    }

    /// The full token text, shown to the admin once.
    pub fn expose(&self) -> String {
        format!(
            "{PREFIX}{}_{}",
            self.token_id,
            URL_SAFE_NO_PAD.encode(self.secret)
        )
    }

    /// The hash to store: SHA-256 over the token id, a 0 byte and the secret, so a hash copied
    /// to another row does not verify there.
    pub fn hash(&self) -> SecretHash {
        let mut h = Sha256::new();
        h.update(self.token_id.as_bytes());
        h.update([0]);
        h.update(self.secret);
        SecretHash(h.finalize().into())
    }

    /// [`ServiceTokenSecret::hash`] as lowercase hex: what the store keeps and the config
    /// feed carries as `secret_sha256`.
    pub fn sha256_hex(&self) -> String {
        self.hash().to_hex()
    }

    /// Whether this token hashes to `expected_hex` (a [`SecretHash::to_hex`] value, e.g. a
    /// feed entry's `secret_sha256`), comparing the digests in constant time. Malformed hex
    /// never verifies.
    pub fn verify_hex(&self, expected_hex: &str) -> bool {
        SecretHash::from_hex(expected_hex).is_some_and(|h| h.verify(self))
    }
}

impl std::fmt::Debug for ServiceTokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTokenSecret")
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

/// A stored secret hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Lowercase hex, for storage.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`SecretHash::to_hex`] output.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
    }

    /// Whether `presented` hashes to this value, compared in constant time.
    pub fn verify(&self, presented: &ServiceTokenSecret) -> bool {
        presented.hash().0.ct_eq(&self.0).into()
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_TOKEN_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_and_verifies_against_its_hash() {
        let t = ServiceTokenSecret::generate("tok-1", &[0xfb; 32]).unwrap();
        let text = t.expose();
        assert!(text.starts_with("ghst_tok-1_"));
        let parsed = ServiceTokenSecret::parse(&text).unwrap();
        assert_eq!(parsed, t);
        let stored = SecretHash::from_hex(&t.hash().to_hex()).unwrap();
        assert!(stored.verify(&parsed));
        assert!(!format!("{t:?}").contains(&text[11..]));
    }

    #[test]
    fn a_wrong_secret_or_a_hash_of_another_id_does_not_verify() {
        let t = ServiceTokenSecret::generate("a", &[1; 32]).unwrap();
        let other_secret = ServiceTokenSecret::generate("a", &[2; 32]).unwrap();
        let other_id = ServiceTokenSecret::generate("b", &[1; 32]).unwrap();
        assert!(!t.hash().verify(&other_secret));
        assert!(!t.hash().verify(&other_id));
    }

    #[test]
    fn the_hex_hash_verifies_its_own_token_only() {
        let t = ServiceTokenSecret::generate("tok_1", &[7; 32]).unwrap();
        let hex = t.sha256_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex, t.hash().to_hex());
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let presented = ServiceTokenSecret::parse(&t.expose()).unwrap();
        assert!(presented.verify_hex(&hex));
        assert!(
            presented.verify_hex(&hex.to_ascii_uppercase()),
            "hex digits in any case"
        );
        let other = ServiceTokenSecret::generate("tok_1", &[8; 32]).unwrap();
        assert!(!other.verify_hex(&hex));
        for bad in ["", "00", &hex[..63], &format!("{hex}0"), &"zz".repeat(32)] {
            assert!(!presented.verify_hex(bad), "{bad:?}");
        }
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let good = ServiceTokenSecret::generate("a", &[3; 32])
            .unwrap()
            .expose();
        let secret = &good[7..];
        for bad in [
            String::new(),
            "ghst_".into(),
            good.replacen("ghst_", "ghsx_", 1),
            format!("ghst__{secret}"),
            format!("ghst_a.b_{secret}"),
            format!("ghst_a{secret}"),
            good[..good.len() - 1].to_owned(),
            format!("{good}A"),
            format!("ghst_é_{secret}"),
        ] {
            assert!(ServiceTokenSecret::parse(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ServiceTokenSecret::generate("a.b", &[0; 32]),
            Err(ServiceTokenError::BadTokenId)
        );
    }
}

//! Identity's signing keys: Ed25519 (RFC 8037 `EdDSA`), rotated on schedule with overlap, and the
//! JWKS that publishes them.
//!
//! A new key becomes current every `rotation`; retired keys stay published (and accepted) for
//! `overlap` more, the longest lifetime of a token they signed, then are dropped.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// One Ed25519 key with its id and creation time (unix seconds).
struct Key {
    kid: String,
    public: [u8; 32],
    encoding: EncodingKey,
    decoding: DecodingKey,
    created_at: u64,
}

/// Errors from signing or verifying identity's own tokens.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("token has no known key id")]
    UnknownKey,
    #[error("invalid token")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("failed to encode the signing key")]
    KeyEncoding,
}

/// The key ring: newest key last.
pub(crate) struct KeyRing {
    keys: Vec<Key>,
    rotation: u64,
    overlap: u64,
}

impl KeyRing {
    /// A ring with one fresh key created at `now`.
    pub(crate) fn new(
        seed: [u8; 32],
        rotation: u64,
        overlap: u64,
        now: u64,
    ) -> Result<Self, TokenError> {
        let mut ring = Self {
            keys: Vec::new(),
            rotation,
            overlap,
        };
        ring.push(seed, now)?;
        Ok(ring)
    }

    /// Whether the current key is older than the rotation period at `now`.
    pub(crate) fn rotation_due(&self, now: u64) -> bool {
        self.keys
            .last()
            .is_none_or(|k| now.saturating_sub(k.created_at) >= self.rotation)
    }

    /// Makes a new key (from `seed`) current and drops keys retired longer than the overlap.
    pub(crate) fn rotate(&mut self, seed: [u8; 32], now: u64) -> Result<(), TokenError> {
        self.push(seed, now)?;
        let overlap = self.overlap;
        // A key retires when its successor is created; keep it while its tokens can be valid.
        let retired_at: Vec<u64> = self.keys.iter().skip(1).map(|k| k.created_at).collect();
        let mut keep = Vec::with_capacity(self.keys.len());
        for (i, key) in std::mem::take(&mut self.keys).into_iter().enumerate() {
            let alive = retired_at
                .get(i)
                .is_none_or(|retired| now.saturating_sub(*retired) < overlap);
            if alive {
                keep.push(key);
            }
        }
        self.keys = keep;
        Ok(())
    }

    /// Signs `claims` with the current key.
    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        let key = self.keys.last().ok_or(TokenError::UnknownKey)?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".to_string());
        Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
    }

    /// Verifies a token signed by one of our keys: EdDSA only (no `none`, no HMAC), the given
    /// issuer and audience, `exp` with no leeway.
    pub(crate) fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::UnknownKey);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(jsonwebtoken::decode::<T>(token, &key.decoding, &validation)?.claims)
    }

    /// The public keys as an RFC 7517 JWK set of RFC 8037 OKP keys.
    pub(crate) fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(k.public),
                    "kid": k.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    fn push(&mut self, seed: [u8; 32], now: u64) -> Result<(), TokenError> {
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = signing.verifying_key().to_bytes();
        let der = signing
            .to_pkcs8_der()
            .map_err(|_| TokenError::KeyEncoding)?;
        // The key id: the RFC 7638 thumbprint would do too; a hash prefix of the key is stable.
        let kid = hex::encode(&sha2_256(&public)[..8]);
        self.keys.push(Key {
            kid,
            public,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public))?,
            created_at: now,
        });
        Ok(())
    }
}

pub(crate) fn sha2_256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Claims {
        iss: String,
        aud: String,
        sub: String,
        exp: u64,
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            iss: "https://id".into(),
            aud: "gatehouse".into(),
            sub: "u1".into(),
            exp,
        }
    }

    const FAR: u64 = 4_000_000_000;

    #[test]
    fn signed_token_verifies_and_wrong_audience_fails() {
        let ring = KeyRing::new([1; 32], 100, 50, 0).unwrap();
        let token = ring.sign(&claims(FAR)).unwrap();
        let back: Claims = ring.verify(&token, "https://id", "gatehouse").unwrap();
        assert_eq!(back, claims(FAR));
        assert!(ring
            .verify::<Claims>(&token, "https://id", "other")
            .is_err());
    }

    #[test]
    fn retired_key_verifies_during_overlap_then_is_dropped() {
        let mut ring = KeyRing::new([1; 32], 100, 50, 0).unwrap();
        let old = ring.sign(&claims(FAR)).unwrap();
        assert!(!ring.rotation_due(99));
        assert!(ring.rotation_due(100));
        ring.rotate([2; 32], 100).unwrap();
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2);
        assert!(ring
            .verify::<Claims>(&old, "https://id", "gatehouse")
            .is_ok());
        ring.rotate([3; 32], 200).unwrap();
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2);
        assert!(matches!(
            ring.verify::<Claims>(&old, "https://id", "gatehouse"),
            Err(TokenError::UnknownKey)
        ));
    }

    #[test]
    fn alg_none_is_rejected() {
        let ring = KeyRing::new([1; 32], 100, 50, 0).unwrap();
        let token = ring.sign(&claims(FAR)).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let forged = format!("{header}.{payload}.");
        assert!(ring
            .verify::<Claims>(&forged, "https://id", "gatehouse")
            .is_err());
    }
}

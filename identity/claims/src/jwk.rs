//! Ed25519 signing keys, their public JWKs (RFC 8037 §2) and key sets.
//!
//! A key's `kid` is its RFC 7638 thumbprint, so the same key always has the same id and a
//! verifier can recompute it.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest as _, Sha256};

/// `kty` of an octet key pair (RFC 8037 §2).
pub const KTY_OKP: &str = "OKP";
/// `crv` of an Ed25519 key (RFC 8037 §2).
pub const CRV_ED25519: &str = "Ed25519";
/// The JWS `alg` for EdDSA signatures (RFC 8037 §3.1).
pub const ALG_EDDSA: &str = "EdDSA";
/// `use` of a signature key (RFC 7517 §4.2).
pub const USE_SIG: &str = "sig";

/// An Ed25519 private key with its key id. `Debug` never shows the key.
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
    kid: String,
}

impl SigningKey {
    /// The key for a 32-byte seed (RFC 8032 §5.1.5 private key). The caller draws the seed from
    /// a CSPRNG and stores it; the same seed always gives the same key and `kid`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let inner = ed25519_dalek::SigningKey::from_bytes(seed);
        let kid = thumbprint(&inner.verifying_key());
        Self { inner, kid }
    }

    /// The key id: the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The 32-byte public key.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.inner.verifying_key().to_bytes()
    }

    /// The public key as a JWK with `kid`, `use: sig` and `alg: EdDSA`.
    pub fn public_jwk(&self) -> Jwk {
        Jwk {
            kty: KTY_OKP.to_owned(),
            crv: Some(CRV_ED25519.to_owned()),
            x: Some(URL_SAFE_NO_PAD.encode(self.public_key_bytes())),
            kid: Some(self.kid.clone()),
            key_use: Some(USE_SIG.to_owned()),
            alg: Some(ALG_EDDSA.to_owned()),
        }
    }

    pub(crate) fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.inner.sign(message).to_bytes()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// One JSON Web Key (RFC 7517 §4). Lenient: unknown members are ignored and members other key
/// types need are optional, so a JWKS with RSA or EC keys still parses; [`KeySet`] keeps only
/// Ed25519 signature keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type; `OKP` for Ed25519.
    pub kty: String,
    /// Curve; `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// The public key, base64url without padding (RFC 8037 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended use (`sig`).
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
    /// Algorithm (`EdDSA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

impl Jwk {
    /// The RFC 7638 thumbprint of this key, if it is a well-formed Ed25519 key.
    ///
    /// # Errors
    /// The key is not an Ed25519 public key.
    pub fn thumbprint(&self) -> Result<String, JwkError> {
        Ok(thumbprint(&self.verifying_key()?))
    }

    fn verifying_key(&self) -> Result<VerifyingKey, JwkError> {
        if self.kty != KTY_OKP || self.crv.as_deref() != Some(CRV_ED25519) {
            return Err(JwkError::NotEd25519);
        }
        let x = self.x.as_deref().ok_or(JwkError::BadPublicKey)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(x)
            .map_err(|_| JwkError::BadPublicKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| JwkError::BadPublicKey)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| JwkError::BadPublicKey)?;
        // A small-order key verifies forged signatures for many messages (RFC 8032 §5.1.7
        // leaves the check to implementations); no honest key is one.
        if key.is_weak() {
            return Err(JwkError::BadPublicKey);
        }
        Ok(key)
    }
}

/// A JWK set (RFC 7517 §5): `{"keys":[…]}`. Entries that are not JSON objects with a `kty`
/// are skipped when parsing, as the RFC asks of keys a reader does not understand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    #[serde(default, deserialize_with = "lenient_keys")]
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The public JWKs of `keys`, in the given order.
    pub fn from_signing_keys<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> Self {
        Self {
            keys: keys.into_iter().map(SigningKey::public_jwk).collect(),
        }
    }
}

fn lenient_keys<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Jwk>, D::Error> {
    let raw = Vec::<serde_json::Value>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

/// Why a JWK cannot be used for EdDSA verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// `kty`/`crv` are not `OKP`/`Ed25519`.
    #[error("not an Ed25519 key")]
    NotEd25519,
    /// `x` is missing, not base64url, not 32 bytes, not a curve point, or of small order.
    #[error("bad Ed25519 public key")]
    BadPublicKey,
    /// `alg` is present and not `EdDSA`, or `use` is present and not `sig`.
    #[error("key is not for EdDSA signatures")]
    WrongUse,
    /// No `kid`: tokens name their key, so a key without one can never be selected.
    #[error("key has no kid")]
    MissingKid,
}

/// The verification keys a verifier trusts, by `kid`. Built from a [`Jwks`]; keys that are not
/// usable Ed25519 signature keys are left out.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: BTreeMap<String, VerifyingKey>,
}

impl KeySet {
    /// The usable keys of `jwks`. Later duplicates of a `kid` are ignored.
    pub fn from_jwks(jwks: &Jwks) -> Self {
        let mut set = Self::default();
        for jwk in &jwks.keys {
            // Unusable keys are skipped by design (RFC 7517 §5); `try_insert` reports why.
            let _ = set.try_insert(jwk);
        }
        set
    }

    /// Adds one key.
    ///
    /// # Errors
    /// The key is not an Ed25519 signature key with a `kid`.
    pub fn try_insert(&mut self, jwk: &Jwk) -> Result<(), JwkError> {
        let key = jwk.verifying_key()?;
        if jwk.alg.as_deref().is_some_and(|a| a != ALG_EDDSA)
            || jwk.key_use.as_deref().is_some_and(|u| u != USE_SIG)
        {
            return Err(JwkError::WrongUse);
        }
        let kid = jwk.kid.clone().ok_or(JwkError::MissingKid)?;
        self.keys.entry(kid).or_insert(key);
        Ok(())
    }

    /// Whether a key with this id is present.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }
}

impl From<&Jwks> for KeySet {
    fn from(jwks: &Jwks) -> Self {
        Self::from_jwks(jwks)
    }
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace.
fn thumbprint(key: &VerifyingKey) -> String {
    let x = URL_SAFE_NO_PAD.encode(key.as_bytes());
    let canonical = format!(r#"{{"crv":"{CRV_ED25519}","kty":"{KTY_OKP}","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// RFC 8037 Appendix A.1 (private key `d`), A.2 (public `x`) and A.3 (thumbprint).
    #[test]
    fn rfc8037_key_and_thumbprint_vectors() {
        let d = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
        let key = SigningKey::from_seed(&d.try_into().unwrap());
        let jwk = key.public_jwk();
        assert_eq!(
            jwk.x.as_deref(),
            Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        );
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        assert_eq!(jwk.thumbprint().unwrap(), key.kid());
    }

    #[test]
    fn debug_does_not_show_the_seed() {
        let key = SigningKey::from_seed(&[7; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains(key.kid()));
        assert!(!shown.contains("inner"));
    }

    #[test]
    fn jwks_parses_literal_json_skipping_foreign_keys() {
        let json = r#"{"keys":[
            {"kty":"RSA","n":"0vx7","e":"AQAB","kid":"rsa1"},
            42,
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
             "kid":"k1","use":"sig","alg":"EdDSA","extra":true}
        ]}"#;
        let jwks: Jwks = serde_json::from_str(json).unwrap();
        assert_eq!(
            jwks.keys.len(),
            2,
            "the RSA key parses as a JWK, 42 is skipped"
        );
        let set = KeySet::from_jwks(&jwks);
        assert_eq!(set.len(), 1);
        assert!(set.contains("k1"));
        assert!(!set.contains("rsa1"));
    }

    #[test]
    fn keyset_rejects_unusable_keys() {
        let good = SigningKey::from_seed(&[1; 32]).public_jwk();
        let mut set = KeySet::default();

        let mut hs = good.clone();
        hs.alg = Some("HS256".into());
        assert_eq!(set.try_insert(&hs), Err(JwkError::WrongUse));

        let mut enc = good.clone();
        enc.key_use = Some("enc".into());
        assert_eq!(set.try_insert(&enc), Err(JwkError::WrongUse));

        let mut no_kid = good.clone();
        no_kid.kid = None;
        assert_eq!(set.try_insert(&no_kid), Err(JwkError::MissingKid));

        let mut short = good.clone();
        short.x = Some("AAAA".into());
        assert_eq!(set.try_insert(&short), Err(JwkError::BadPublicKey));

        // The identity point (y = 1) has small order.
        let mut weak = good.clone();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        weak.x = Some(URL_SAFE_NO_PAD.encode(identity));
        assert_eq!(set.try_insert(&weak), Err(JwkError::BadPublicKey));

        let mut x448 = good.clone();
        x448.crv = Some("Ed448".into());
        assert_eq!(set.try_insert(&x448), Err(JwkError::NotEd25519));

        assert!(set.is_empty());
        set.try_insert(&good).unwrap();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn kid_is_stable_per_seed_and_differs_between_seeds() {
        let a = SigningKey::from_seed(&hex32(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        ));
        let again = SigningKey::from_seed(&hex32(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        ));
        let b = SigningKey::from_seed(&[2; 32]);
        assert_eq!(a.kid(), again.kid());
        assert_ne!(a.kid(), b.kid());
        // RFC 8032 §7.1 test 1: the public key of this seed.
        assert_eq!(
            a.public_key_bytes(),
            hex32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
    }
}

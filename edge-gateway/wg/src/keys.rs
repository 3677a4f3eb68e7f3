//! WireGuard key types: Curve25519 keys in base64 (wg-quick, configs) and hex (UAPI).
//!
//! Private keys and preshared keys redact themselves in `Debug`; nothing here logs a key.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use std::fmt;
use std::str::FromStr;
use x25519_dalek::{PublicKey as DalekPublic, StaticSecret};

/// Errors when reading a key from text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("key is not valid base64")]
    Base64,
    #[error("key is not valid hex")]
    Hex,
    #[error("key must be 32 bytes, got {0}")]
    Length(usize),
    #[error("public key is a low-order point (all-zero shared secret)")]
    LowOrder,
}

/// A Curve25519 public key: a peer's identity.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; 32]);

/// A Curve25519 private key. `Debug` prints `PrivateKey(..)`.
#[derive(Clone)]
pub struct PrivateKey(StaticSecret);

/// A 32-byte preshared symmetric key. `Debug` prints `PresharedKey(..)`.
#[derive(Clone, PartialEq, Eq)]
pub struct PresharedKey([u8; 32]);

impl PublicKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode_base64(text).map(Self)
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        decode_hex(text).map(Self)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn to_dalek(self) -> DalekPublic {
        DalekPublic::from(self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Public keys are not secret; a short prefix keeps logs readable.
        write!(f, "PublicKey({}…)", &self.to_base64()[..8])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_base64(s)
    }
}

impl PrivateKey {
    /// Builds a private key from 32 bytes (clamping happens in the scalar multiplication).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(StaticSecret::from(bytes))
    }

    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode_base64(text).map(Self::from_bytes)
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0.to_bytes())
    }

    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        decode_hex(text).map(Self::from_bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(DalekPublic::from(&self.0).to_bytes())
    }

    /// Checks that `peer` is usable with this key: the Diffie-Hellman result must be
    /// contributory (not all-zero), as the kernel's `wg_noise_precompute_static_static` requires.
    ///
    /// # Errors
    /// [`KeyError::LowOrder`] for low-order points, the all-zero key among them.
    pub fn check_peer(&self, peer: &PublicKey) -> Result<(), KeyError> {
        if self.0.diffie_hellman(&peer.to_dalek()).was_contributory() {
            Ok(())
        } else {
            Err(KeyError::LowOrder)
        }
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.0
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

impl PresharedKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode_base64(text).map(Self)
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        decode_hex(text).map(Self)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// True for the all-zero key, which UAPI and wg-quick use to mean "no preshared key".
    pub fn is_zero(&self) -> bool {
        self.0 == [0u8; 32]
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(..)")
    }
}

fn decode_base64(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = BASE64.decode(text.trim()).map_err(|_| KeyError::Base64)?;
    to_array(bytes)
}

fn decode_hex(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = hex::decode(text.trim()).map_err(|_| KeyError::Hex)?;
    to_array(bytes)
}

fn to_array(bytes: Vec<u8>) -> Result<[u8; 32], KeyError> {
    let len = bytes.len();
    bytes.try_into().map_err(|_| KeyError::Length(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_hex_round_trip() {
        let key = PrivateKey::from_bytes([7u8; 32]);
        let public = key.public_key();
        assert_eq!(PublicKey::from_base64(&public.to_base64()), Ok(public));
        assert_eq!(PublicKey::from_hex(&public.to_hex()), Ok(public));
        assert_eq!(
            PrivateKey::from_hex(&key.to_hex()).map(|k| k.public_key()),
            Ok(public)
        );
    }

    #[test]
    fn wrong_length_and_garbage_are_rejected() {
        assert_eq!(PublicKey::from_base64("AAAA"), Err(KeyError::Length(3)));
        assert_eq!(PublicKey::from_base64("!!!"), Err(KeyError::Base64));
        assert_eq!(PublicKey::from_hex("zz"), Err(KeyError::Hex));
    }

    #[test]
    fn low_order_peer_keys_are_rejected() {
        let key = PrivateKey::from_bytes([9u8; 32]);
        assert_eq!(
            key.check_peer(&PublicKey::from_bytes([0u8; 32])),
            Err(KeyError::LowOrder)
        );
        // The order-1 point (u = 1) is also low order.
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(
            key.check_peer(&PublicKey::from_bytes(one)),
            Err(KeyError::LowOrder)
        );
        let good = PrivateKey::from_bytes([3u8; 32]).public_key();
        assert_eq!(key.check_peer(&good), Ok(()));
    }

    #[test]
    fn debug_never_prints_secrets() {
        let key = PrivateKey::from_bytes([5u8; 32]);
        assert_eq!(format!("{key:?}"), "PrivateKey(..)");
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }
}

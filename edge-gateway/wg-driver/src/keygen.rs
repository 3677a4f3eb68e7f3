//! Key generation from the OS's random source (drivers only: cores take keys as input).

use rand::RngCore as _;
use wg::keys::PrivateKey;

/// A new random Curve25519 private key, like `wg genkey`.
pub fn generate_private_key() -> PrivateKey {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    PrivateKey::from_bytes(bytes)
}

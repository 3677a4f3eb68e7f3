//! `identity-core`: the sans-IO protocol logic of `gatehouse-identity`.
//!
//! - [`pkce`]: RFC 7636 code verifiers and S256 challenges.
//! - [`device`]: the RFC 8628 device authorization grant as a state machine over `now`.
//! - [`authcode`]: identity's own authorization code grant for the public client, with RFC 8252
//!   loopback redirects.
//! - [`login`]: upstream login attempts (identity as an OIDC relying party): `state`, `nonce`,
//!   PKCE, and open-redirect-safe `return_to` paths.
//! - [`alloc`]: deterministic tunnel address allocation.
//! - [`service_token`]: service token secrets, their storage hashes and verification.
//! - [`rotation`]: when to create, sign with, publish and drop signing keys.
//!
//! It is pure: the server passes `now` ([`identity_claims::UnixTime`]) and random bytes it drew
//! from the OS, and does all IO (HTTP, storage, upstream calls). No clock, no randomness, no
//! files here; state lives in ordered maps so the same inputs give the same outputs.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod alloc;
pub mod authcode;
pub mod device;
pub mod login;
pub mod pkce;
pub mod rotation;
pub mod service_token;

pub use identity_claims::UnixTime;

/// base64url without padding (RFC 4648 §5), the encoding of every random string we hand out.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

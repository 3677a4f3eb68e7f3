//! `identity-claims`: the contracts identity shares with edges, connectors and origins.
//!
//! - [`jws`]: compact EdDSA JSON Web Signatures (RFC 7515, RFC 8037) over Ed25519 keys, with
//!   [`jws::sign`] and [`jws::verify`], which checks algorithm, key id, signature, issuer,
//!   audience, token kind and the time claims against a `now` the caller passes in.
//! - [`jwk`]: the signing key, its public JWK and JWKS, key ids as RFC 7638 thumbprints, and the
//!   [`jwk::KeySet`] a verifier is built from.
//! - [`claims`]: the token payloads identity issues (user and device sessions, application
//!   assertions, connector credentials, clientless access sessions), each tagged with a `kind` so one cannot pass as another.
//! - [`feed`]: the NDJSON config feed messages identity streams to edges, and
//!   [`feed::FeedReplica`], which applies them.
//! - [`decisions`]: the access decision records edges send to identity (`POST /v1/decisions`),
//!   with the bounds identity checks on ingest.
//!
//! It is pure: no clock, no randomness (signing keys come from a seed the caller draws), no IO.
//! What drives it: `identity` signs and serves the feed; edges and origins verify and replicate.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod claims;
pub mod decisions;
pub mod feed;
pub mod jwk;
pub mod jws;
mod time;

pub use claims::{
    access_audience, AccessSession, AppAssertion, Audience, Claims, CommonClaims,
    ConnectorCredential, DeviceSession, Posture, TokenKind, UserFacts, UserSession,
    ACCESS_AUDIENCE_PREFIX,
};
pub use decisions::{DecisionBatch, DecisionKind, DecisionOutcome, DecisionRecord};
pub use feed::{FeedMessage, FeedReplica, Revision};
pub use jwk::{Jwk, JwkError, Jwks, KeySet, SigningKey};
pub use jws::{sign, sign_json, verify, Expectation, TokenError, CLOCK_SKEW_SECS};
pub use time::UnixTime;

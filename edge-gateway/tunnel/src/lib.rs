//! `tunnel`: the QUIC transport between edges and connectors, a driver library.
//!
//! The edge side ([`edge::TunnelListener`]) accepts connectors' connections, checks each
//! `Register` with a [`CredentialVerifier`], keeps a [`Registry`] of what every connection
//! serves and opens flow streams toward the right one. The connector side
//! ([`connector::Dialer`]) dials one edge, registers, sends heartbeats, hands each flow stream
//! from the edge to a [`connector::StreamHandler`], re-dials with jittered backoff and drains.
//! Both sides carry UDP flows as QUIC datagrams ([`udp`]).
//! [`ca`] makes the deployment CA and edge certificates; [`config`] builds the quinn
//! configurations (TLS 1.3, ALPN `gatehouse-tunnel/1`, limits).
//!
//! It is not the protocol: the bytes are `tunnel-proto`'s, which this crate feeds with what it
//! reads. It is not a binary either: `gatehouse-edge` and `gatehouse-connector` build on it,
//! own the configuration files and install the tracing subscriber. It reads the clock (JWT
//! expiry, heartbeats, backoff) and spawns tokio tasks; the route matching in [`registry`] is
//! pure.

pub mod backoff;
pub mod ca;
pub mod config;
pub mod connector;
pub mod edge;
mod frames;
pub mod registry;
pub mod udp;
mod verifier;

pub use frames::FrameIoError;
pub use registry::{ConnectionInfo, Registry, Target};
pub use verifier::{ConnectorIdentity, CredentialVerifier, JwtVerifier, Rejection, EDGE_AUDIENCE};

/// QUIC application close codes (RFC 9000 §20.2) this crate uses on tunnel connections.
pub mod close_code {
    /// After `Goodbye`, or a local shutdown.
    pub const NORMAL: u32 = 0;
    /// The edge refused the registration (after `Rejected`).
    pub const REJECTED: u32 = 1;
    /// A frame that is invalid or not allowed at this point.
    pub const PROTOCOL_ERROR: u32 = 2;
    /// No `Register` (edge) or no answer to it (connector) in time.
    pub const REGISTER_TIMEOUT: u32 = 3;
    /// The connector saw too many heartbeats go unanswered.
    pub const HEARTBEAT_TIMEOUT: u32 = 4;
}

//! `tunnel-proto`: the byte formats between an edge and a connector (ALPN
//! [`ALPN`], `gatehouse-tunnel/1`), specified in `docs/tunnel-protocol.md`.
//!
//! One QUIC connection carries a control stream (the first bidirectional stream the connector
//! opens: [`Frame::Register`], heartbeats, route updates, drain, UDP flow announcements), one
//! bidirectional flow stream per proxied TCP flow or HTTP request (opened by the edge, starting
//! with a [`Frame::StreamHeader`] and answered by [`Frame::StreamAccept`] or
//! [`Frame::StreamRefuse`]), and QUIC datagrams for UDP flows ([`encode_datagram`]).
//!
//! It is not a session: who sends what when (register first, answer heartbeats, stop opening
//! streams after a drain) is `connector-core`'s and `edge-core`'s business. It does no IO,
//! reads no clock and holds no state beyond one [`FrameDecoder`] per stream, which the drivers
//! feed with the bytes they read. Decoding hostile input never panics, and no length field is
//! believed before it is checked against the limits below and the bytes actually present.

mod codec;
mod datagram;
mod decode;
mod error;
mod frame;

pub use datagram::{datagram_overhead, decode_datagram, encode_datagram};
pub use decode::{FrameDecoder, StreamKind};
pub use error::ProtoError;
pub use frame::{
    Assertion, ConnectionId, ConnectorId, Credential, Destination, FlowId, Frame, FrameType,
    Protocol, RefuseCode, Register, RejectCode, RequestId, Route, StreamHeader, TunnelId,
    UdpFlowOpen,
};

/// The TLS ALPN protocol id of tunnel connections; bump with [`VERSION`].
pub const ALPN: &[u8] = b"gatehouse-tunnel/1";

/// The version byte every frame starts with.
pub const VERSION: u8 = 1;

/// Frame header: version, type, `u32` body length.
pub const HEADER_LEN: usize = 6;

/// Largest frame body (16 KiB). Enough for a `Register` with an 8 KiB credential and a few
/// hundred routes; a larger announced length is refused before any of the body is read, so a
/// decoder never holds more than `HEADER_LEN + MAX_FRAME` bytes.
pub const MAX_FRAME: usize = 16 * 1024;

/// Most routes in one `Register` or `UpdateRoutes`, checked before any route is read. The frame
/// size binds first: the shortest route takes 7 bytes (a one-letter host name), an IPv4 CIDR 9,
/// so at most 2,340 fit in `MAX_FRAME`.
pub const MAX_ROUTES: usize = 4096;

/// Longest host name or route pattern: RFC 1035 §2.3.4, 253 characters in text form.
pub const MAX_HOST_LEN: usize = 253;

/// Longest identity assertion or connector credential (8 KiB). The JWTs identity issues are
/// under 1 KiB; the limit leaves room for large group claims.
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;

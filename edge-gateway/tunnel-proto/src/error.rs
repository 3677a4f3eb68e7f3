//! The one error type of the crate, for decoding and encoding alike.

use crate::{MAX_FRAME, MAX_ROUTES};

/// Why bytes are not a valid frame or datagram, or why a value cannot be encoded.
///
/// Each is fatal for the stream it was read from: the driver closes the stream (or, on the
/// control stream, the connection) and counts the reason. `field` names say where in the frame
/// the problem was (`"register.tunnel_id"`, `"route.pattern"`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The frame's version byte is not [`VERSION`](crate::VERSION).
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The frame header announces a body over [`MAX_FRAME`] bytes; the body is never read.
    #[error("frame body of {0} bytes exceeds the limit of {MAX_FRAME}")]
    FrameTooLarge(u64),
    /// A frame type this side does not know where it cannot be skipped (a flow stream).
    #[error("unknown frame type {0:#04x}")]
    UnknownFrameType(u8),
    /// A known frame type on the wrong kind of stream (a stream header on the control stream, a
    /// control message on a flow stream).
    #[error("frame type {0:#04x} is not allowed on this stream")]
    UnexpectedFrame(u8),
    /// The body (or the stream, for `"frame"`) ended inside the named field.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A string field is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// A field is longer than its limit (a host name over 253 bytes, an assertion over 8 KiB, a
    /// string over 65,535 bytes).
    #[error("{field} is {len} bytes, over the limit of {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// A host name or route pattern is empty.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// A route list longer than [`MAX_ROUTES`]; checked before any route is read.
    #[error("{0} routes exceed the limit of {MAX_ROUTES}")]
    TooManyRoutes(usize),
    /// A tag byte (option, destination kind, address family, protocol) with no meaning.
    #[error("invalid {field} tag {tag}")]
    InvalidTag { field: &'static str, tag: u8 },
    /// A CIDR prefix longer than its address.
    #[error("prefix length {0} is too long for its address family")]
    InvalidPrefixLen(u8),
    /// A CIDR route with bits set after its prefix (`10.0.0.1/8`).
    #[error("cidr route {0} has host bits set")]
    CidrHostBits(ipnet::IpNet),
    /// A flow id over [`FlowId::MAX`](crate::FlowId::MAX) (2^62 - 1, the QUIC varint range).
    #[error("flow id {0} exceeds 2^62 - 1")]
    FlowIdTooLarge(u64),
}

//! The frames: control messages, stream headers and their replies, and the values they carry.

use std::fmt;
use std::net::SocketAddr;

use ipnet::IpNet;

use crate::ProtoError;

/// One frame of the tunnel protocol: a control message (on the control stream) or a flow
/// stream's header or reply (the first frame each side writes on a flow stream).
///
/// `docs/tunnel-protocol.md` has the byte layout of each and who sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Connector → edge, the first frame on the control stream.
    Register(Register),
    /// Edge → connector: the registration is accepted.
    Registered {
        /// The edge's name, for the connector's logs and status.
        edge_name: String,
        /// This QUIC connection, as the edge numbers it.
        connection_id: ConnectionId,
    },
    /// Edge → connector: the registration is refused; the edge then closes the connection.
    Rejected { code: RejectCode, message: String },
    /// Either side: answer with a [`Frame::HeartbeatAck`] carrying the same `seq`.
    Heartbeat { seq: u64 },
    /// The answer to a [`Frame::Heartbeat`].
    HeartbeatAck { seq: u64 },
    /// Connector → edge: the connector's full route set, replacing the last one.
    UpdateRoutes { routes: Vec<Route> },
    /// Either side: open no new streams or flows; finish those in flight within `grace_ms`.
    Drain { grace_ms: u32 },
    /// Either side: the last frame on the control stream; the sender then closes.
    Goodbye,
    /// Edge → connector: datagrams with this flow id follow.
    UdpFlowOpen(UdpFlowOpen),
    /// Edge → connector, the first frame on every flow stream.
    StreamHeader(StreamHeader),
    /// Connector → edge: the origin is connected; raw bytes follow both ways.
    StreamAccept,
    /// Connector → edge: the origin was not reached; the connector then finishes the stream.
    StreamRefuse { code: RefuseCode, message: String },
}

/// The type byte of each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum FrameType {
    Register = 0x01,
    Registered = 0x02,
    Rejected = 0x03,
    Heartbeat = 0x04,
    HeartbeatAck = 0x05,
    UpdateRoutes = 0x06,
    Drain = 0x07,
    Goodbye = 0x08,
    UdpFlowOpen = 0x09,
    StreamHeader = 0x40,
    StreamAccept = 0x41,
    StreamRefuse = 0x42,
}

impl FrameType {
    /// The type a byte names, if it is one this version knows.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0x01 => Self::Register,
            0x02 => Self::Registered,
            0x03 => Self::Rejected,
            0x04 => Self::Heartbeat,
            0x05 => Self::HeartbeatAck,
            0x06 => Self::UpdateRoutes,
            0x07 => Self::Drain,
            0x08 => Self::Goodbye,
            0x09 => Self::UdpFlowOpen,
            0x40 => Self::StreamHeader,
            0x41 => Self::StreamAccept,
            0x42 => Self::StreamRefuse,
            _ => return None,
        })
    }

    /// Whether frames of this type travel on the control stream (else on flow streams).
    pub fn is_control(self) -> bool {
        (self as u8) < 0x40
    }
}

impl Frame {
    /// This frame's type byte.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::Register(_) => FrameType::Register,
            Self::Registered { .. } => FrameType::Registered,
            Self::Rejected { .. } => FrameType::Rejected,
            Self::Heartbeat { .. } => FrameType::Heartbeat,
            Self::HeartbeatAck { .. } => FrameType::HeartbeatAck,
            Self::UpdateRoutes { .. } => FrameType::UpdateRoutes,
            Self::Drain { .. } => FrameType::Drain,
            Self::Goodbye => FrameType::Goodbye,
            Self::UdpFlowOpen(_) => FrameType::UdpFlowOpen,
            Self::StreamHeader(_) => FrameType::StreamHeader,
            Self::StreamAccept => FrameType::StreamAccept,
            Self::StreamRefuse { .. } => FrameType::StreamRefuse,
        }
    }
}

/// A connector's registration on a new QUIC connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// The tunnel this connection belongs to (from the credential).
    pub tunnel_id: TunnelId,
    pub connector_id: ConnectorId,
    /// The connector's software version (`"0.1.0"`), for the edge's status and logs.
    pub connector_version: String,
    /// The connector credential JWT issued by identity.
    pub credential: Credential,
    /// What the connector serves; at most [`MAX_ROUTES`](crate::MAX_ROUTES).
    pub routes: Vec<Route>,
}

/// A destination the connector serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// HTTP requests for a host name: exact (`app.example.com`) or a leading wildcard
    /// (`*.example.com`), optionally only below a path prefix (`/api`). The pattern's syntax is
    /// checked by whoever matches it; the wire only bounds its length (1 to 253 bytes).
    Hostname {
        pattern: String,
        path_prefix: Option<String>,
    },
    /// TCP and UDP flows to a private network, with no host bits set (`10.1.0.0/16`).
    Cidr(IpNet),
}

/// Announces a UDP flow before its datagrams (edge → connector, on the control stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpFlowOpen {
    pub flow_id: FlowId,
    pub destination: Destination,
    /// The identity assertion (JWT) for the origin, if the policy issues one.
    pub assertion: Option<Assertion>,
}

/// The first frame the edge writes on a new flow stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    pub request_id: RequestId,
    pub protocol: Protocol,
    pub destination: Destination,
    /// The identity assertion (JWT) for the origin, if the policy issues one.
    pub assertion: Option<Assertion>,
    /// The client's tunnel address, for PROXY protocol toward the origin.
    pub source: Option<SocketAddr>,
}

/// What a flow stream carries after its header and reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Protocol {
    /// A TCP byte stream.
    Tcp = 1,
    /// One HTTP/1.1 request from the edge and its response from the origin.
    Http = 2,
    /// UDP datagrams, each prefixed by its `u16` big-endian length (when QUIC datagrams cannot
    /// carry them).
    Udp = 3,
}

impl Protocol {
    pub(crate) fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Tcp),
            2 => Some(Self::Http),
            3 => Some(Self::Udp),
            _ => None,
        }
    }
}

/// Where the connector connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A name the connector resolves (1 to 253 bytes) and a port.
    Host { host: String, port: u16 },
    /// An address. An IPv6 address's flow info and scope id are not carried.
    Addr(SocketAddr),
}

/// Why an edge refuses a registration; values this side does not know are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RejectCode(pub u16);

impl RejectCode {
    /// The credential did not verify (signature, audience, issuer).
    pub const INVALID_CREDENTIAL: Self = Self(1);
    /// The credential expired; fetch a new one and re-dial.
    pub const CREDENTIAL_EXPIRED: Self = Self(2);
    /// The connector was revoked; do not re-dial.
    pub const REVOKED: Self = Self(3);
    /// The tunnel or connector id does not match the credential.
    pub const ID_MISMATCH: Self = Self(4);
    /// A route is not one identity assigned to this connector.
    pub const ROUTE_NOT_ALLOWED: Self = Self(5);
    /// The edge is draining or at capacity; try another edge.
    pub const UNAVAILABLE: Self = Self(6);
    /// The first frame was not a `Register`, or a frame did not parse.
    pub const PROTOCOL_ERROR: Self = Self(7);

    fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::INVALID_CREDENTIAL => "invalid_credential",
            Self::CREDENTIAL_EXPIRED => "credential_expired",
            Self::REVOKED => "revoked",
            Self::ID_MISMATCH => "id_mismatch",
            Self::ROUTE_NOT_ALLOWED => "route_not_allowed",
            Self::UNAVAILABLE => "unavailable",
            Self::PROTOCOL_ERROR => "protocol_error",
            _ => return None,
        })
    }
}

/// Why a connector refuses a flow stream; values this side does not know are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefuseCode(pub u16);

impl RefuseCode {
    /// No ingress rule or route of the connector covers the destination.
    pub const NO_ROUTE: Self = Self(1);
    /// The host name did not resolve.
    pub const DNS_FAILED: Self = Self(2);
    /// The origin refused the connection.
    pub const CONNECTION_REFUSED: Self = Self(3);
    /// The origin did not answer in time.
    pub const TIMED_OUT: Self = Self(4);
    /// The origin's network or host is unreachable.
    pub const UNREACHABLE: Self = Self(5);
    /// The connector is draining or at capacity.
    pub const UNAVAILABLE: Self = Self(6);
    /// The header did not parse or asked for what this connector does not do.
    pub const PROTOCOL_ERROR: Self = Self(7);

    fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NO_ROUTE => "no_route",
            Self::DNS_FAILED => "dns_failed",
            Self::CONNECTION_REFUSED => "connection_refused",
            Self::TIMED_OUT => "timed_out",
            Self::UNREACHABLE => "unreachable",
            Self::UNAVAILABLE => "unavailable",
            Self::PROTOCOL_ERROR => "protocol_error",
            _ => return None,
        })
    }
}

macro_rules! code_fmt {
    ($ty:ident) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{name} ({})", self.0),
                    None => write!(f, "code {}", self.0),
                }
            }
        }
    };
}
code_fmt!(RejectCode);
code_fmt!(RefuseCode);

/// A tunnel's id, as identity writes it into the connector credential.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TunnelId(pub String);

/// A connector's id, as identity names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectorId(pub String);

/// The edge's number for one QUIC connection of a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// The edge's number for one flow stream (a TCP flow or an HTTP request), for logs and audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// The id of a UDP flow on one QUIC connection, chosen by the edge; at most [`FlowId::MAX`] so
/// that it fits a QUIC variable-length integer (RFC 9000 §16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowId(u64);

impl FlowId {
    /// 2^62 - 1, the largest QUIC variable-length integer (RFC 9000 §16).
    pub const MAX: u64 = (1 << 62) - 1;

    /// # Errors
    /// [`ProtoError::FlowIdTooLarge`] over [`FlowId::MAX`].
    pub fn new(id: u64) -> Result<Self, ProtoError> {
        if id > Self::MAX {
            return Err(ProtoError::FlowIdTooLarge(id));
        }
        Ok(Self(id))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

/// The connector credential (a JWT); `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(pub String);

/// An identity assertion (a JWT) for the origin; `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Assertion(pub String);

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential(<{} bytes>)", self.0.len())
    }
}

impl fmt::Debug for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Assertion(<{} bytes>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug() {
        let shown = format!(
            "{:?} {:?}",
            Credential("eyJsecret".into()),
            Assertion("eyJother".into())
        );
        assert_eq!(shown, "Credential(<9 bytes>) Assertion(<8 bytes>)");
    }

    #[test]
    fn codes_show_their_names_and_keep_unknown_values() {
        assert_eq!(RejectCode::REVOKED.to_string(), "revoked (3)", "known code");
        assert_eq!(RefuseCode(900).to_string(), "code 900");
    }

    #[test]
    fn every_type_byte_maps_back() {
        for byte in 0..=u8::MAX {
            if let Some(t) = FrameType::from_byte(byte) {
                assert_eq!(t as u8, byte);
            }
        }
        assert!(FrameType::UdpFlowOpen.is_control());
        assert!(!FrameType::StreamHeader.is_control());
    }

    #[test]
    fn flow_ids_stop_at_the_varint_range() {
        assert_eq!(FlowId::new(FlowId::MAX).map(FlowId::get), Ok(FlowId::MAX));
        assert_eq!(
            FlowId::new(1 << 62),
            Err(ProtoError::FlowIdTooLarge(1 << 62))
        );
    }
}

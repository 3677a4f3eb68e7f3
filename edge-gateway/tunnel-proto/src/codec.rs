//! Frame bodies to and from bytes: fields in order, big-endian integers, `u16`-length strings,
//! `u8`-tagged options and addresses, type-length-value routes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::frame::{
    Assertion, ConnectionId, ConnectorId, Credential, Destination, FlowId, Frame, FrameType,
    Protocol, RefuseCode, Register, RejectCode, RequestId, Route, StreamHeader, TunnelId,
    UdpFlowOpen,
};
use crate::{
    ProtoError, HEADER_LEN, MAX_ASSERTION_LEN, MAX_FRAME, MAX_HOST_LEN, MAX_ROUTES, VERSION,
};

const ROUTE_HOSTNAME: u8 = 1;
const ROUTE_CIDR: u8 = 2;
const DESTINATION_HOST: u8 = 0;
const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;
/// The shortest route on the wire: kind, length, and an empty body.
const MIN_ROUTE_LEN: usize = 3;

impl Frame {
    /// The frame's bytes: header and body.
    ///
    /// # Errors
    /// A field over its limit ([`ProtoError::TooLong`], [`ProtoError::Empty`],
    /// [`ProtoError::TooManyRoutes`], [`ProtoError::CidrHostBits`]) or a body over
    /// [`MAX_FRAME`] ([`ProtoError::FrameTooLarge`]): the peer would refuse the frame.
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the frame's bytes to `out`; on error `out` is left as it was.
    ///
    /// # Errors
    /// As [`Frame::encode`].
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        let start = out.len();
        let result = self.write_frame(out, start);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn write_frame(&self, out: &mut Vec<u8>, start: usize) -> Result<(), ProtoError> {
        out.extend_from_slice(&[VERSION, self.frame_type() as u8, 0, 0, 0, 0]);
        self.write_body(out)?;
        let len = out.len() - start - HEADER_LEN;
        if len > MAX_FRAME {
            return Err(ProtoError::FrameTooLarge(len as u64));
        }
        // `len <= MAX_FRAME`, which fits a u32.
        let len = (len as u32).to_be_bytes();
        out[start + 2..start + HEADER_LEN].copy_from_slice(&len);
        Ok(())
    }

    fn write_body(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        match self {
            Self::Register(r) => {
                put_str(out, &r.tunnel_id.0, "register.tunnel_id", usize::MAX)?;
                put_str(out, &r.connector_id.0, "register.connector_id", usize::MAX)?;
                put_str(
                    out,
                    &r.connector_version,
                    "register.connector_version",
                    usize::MAX,
                )?;
                put_str(
                    out,
                    &r.credential.0,
                    "register.credential",
                    MAX_ASSERTION_LEN,
                )?;
                put_routes(out, &r.routes)
            }
            Self::Registered {
                edge_name,
                connection_id,
            } => {
                put_str(out, edge_name, "registered.edge_name", usize::MAX)?;
                out.extend_from_slice(&connection_id.0.to_be_bytes());
                Ok(())
            }
            Self::Rejected { code, message } => {
                out.extend_from_slice(&code.0.to_be_bytes());
                put_str(out, message, "rejected.message", usize::MAX)
            }
            Self::Heartbeat { seq } | Self::HeartbeatAck { seq } => {
                out.extend_from_slice(&seq.to_be_bytes());
                Ok(())
            }
            Self::UpdateRoutes { routes } => put_routes(out, routes),
            Self::Drain { grace_ms } => {
                out.extend_from_slice(&grace_ms.to_be_bytes());
                Ok(())
            }
            Self::Goodbye | Self::StreamAccept => Ok(()),
            Self::UdpFlowOpen(u) => {
                out.extend_from_slice(&u.flow_id.get().to_be_bytes());
                put_destination(out, &u.destination)?;
                put_assertion(out, u.assertion.as_ref())
            }
            Self::StreamHeader(h) => {
                out.extend_from_slice(&h.request_id.0.to_be_bytes());
                out.push(h.protocol as u8);
                put_destination(out, &h.destination)?;
                put_assertion(out, h.assertion.as_ref())?;
                match h.source {
                    None => out.push(0),
                    Some(addr) => {
                        out.push(1);
                        put_socket_addr(out, addr);
                    }
                }
                Ok(())
            }
            Self::StreamRefuse { code, message } => {
                out.extend_from_slice(&code.0.to_be_bytes());
                put_str(out, message, "stream_refuse.message", usize::MAX)
            }
        }
    }
}

/// Parses the body of a frame of a known type. Bytes after the fields this version knows are
/// ignored, so later versions can append optional fields.
pub(crate) fn decode_body(frame_type: FrameType, body: &[u8]) -> Result<Frame, ProtoError> {
    let mut r = Reader { bytes: body };
    Ok(match frame_type {
        FrameType::Register => Frame::Register(Register {
            tunnel_id: TunnelId(r.string("register.tunnel_id", usize::MAX)?),
            connector_id: ConnectorId(r.string("register.connector_id", usize::MAX)?),
            connector_version: r.string("register.connector_version", usize::MAX)?,
            credential: Credential(r.string("register.credential", MAX_ASSERTION_LEN)?),
            routes: r.routes()?,
        }),
        FrameType::Registered => Frame::Registered {
            edge_name: r.string("registered.edge_name", usize::MAX)?,
            connection_id: ConnectionId(r.u64("registered.connection_id")?),
        },
        FrameType::Rejected => Frame::Rejected {
            code: RejectCode(r.u16("rejected.code")?),
            message: r.string("rejected.message", usize::MAX)?,
        },
        FrameType::Heartbeat => Frame::Heartbeat {
            seq: r.u64("heartbeat.seq")?,
        },
        FrameType::HeartbeatAck => Frame::HeartbeatAck {
            seq: r.u64("heartbeat_ack.seq")?,
        },
        FrameType::UpdateRoutes => Frame::UpdateRoutes {
            routes: r.routes()?,
        },
        FrameType::Drain => Frame::Drain {
            grace_ms: r.u32("drain.grace_ms")?,
        },
        FrameType::Goodbye => Frame::Goodbye,
        FrameType::UdpFlowOpen => Frame::UdpFlowOpen(UdpFlowOpen {
            flow_id: FlowId::new(r.u64("udp_flow_open.flow_id")?)?,
            destination: r.destination()?,
            assertion: r.assertion()?,
        }),
        FrameType::StreamHeader => Frame::StreamHeader(StreamHeader {
            request_id: RequestId(r.u64("stream_header.request_id")?),
            protocol: {
                let tag = r.u8("stream_header.protocol")?;
                Protocol::from_byte(tag).ok_or(ProtoError::InvalidTag {
                    field: "stream_header.protocol",
                    tag,
                })?
            },
            destination: r.destination()?,
            assertion: r.assertion()?,
            source: match r.option_tag("stream_header.source")? {
                false => None,
                true => Some(r.socket_addr("stream_header.source")?),
            },
        }),
        FrameType::StreamAccept => Frame::StreamAccept,
        FrameType::StreamRefuse => Frame::StreamRefuse {
            code: RefuseCode(r.u16("stream_refuse.code")?),
            message: r.string("stream_refuse.message", usize::MAX)?,
        },
    })
}

fn put_str(out: &mut Vec<u8>, s: &str, field: &'static str, max: usize) -> Result<(), ProtoError> {
    let max = max.min(usize::from(u16::MAX));
    let len = u16::try_from(s.len())
        .ok()
        .filter(|len| usize::from(*len) <= max)
        .ok_or(ProtoError::TooLong {
            field,
            len: s.len(),
            max,
        })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_host(out: &mut Vec<u8>, host: &str, field: &'static str) -> Result<(), ProtoError> {
    if host.is_empty() {
        return Err(ProtoError::Empty(field));
    }
    put_str(out, host, field, MAX_HOST_LEN)
}

fn put_assertion(out: &mut Vec<u8>, assertion: Option<&Assertion>) -> Result<(), ProtoError> {
    match assertion {
        None => out.push(0),
        Some(a) => {
            out.push(1);
            put_str(out, &a.0, "assertion", MAX_ASSERTION_LEN)?;
        }
    }
    Ok(())
}

fn put_routes(out: &mut Vec<u8>, routes: &[Route]) -> Result<(), ProtoError> {
    // MAX_ROUTES fits a u16.
    if routes.len() > MAX_ROUTES {
        return Err(ProtoError::TooManyRoutes(routes.len()));
    }
    out.extend_from_slice(&(routes.len() as u16).to_be_bytes());
    for route in routes {
        let kind = match route {
            Route::Hostname { .. } => ROUTE_HOSTNAME,
            Route::Cidr(_) => ROUTE_CIDR,
        };
        out.extend_from_slice(&[kind, 0, 0]);
        let body_start = out.len();
        match route {
            Route::Hostname {
                pattern,
                path_prefix,
            } => {
                put_host(out, pattern, "route.pattern")?;
                match path_prefix {
                    None => out.push(0),
                    Some(path) => {
                        out.push(1);
                        put_str(out, path, "route.path_prefix", usize::MAX)?;
                    }
                }
            }
            Route::Cidr(net) => {
                if net.trunc() != *net {
                    return Err(ProtoError::CidrHostBits(*net));
                }
                put_ip(out, net.addr());
                out.push(net.prefix_len());
            }
        }
        let len = out.len() - body_start;
        // The whole frame is checked against MAX_FRAME (< 65,536) afterwards; a longer route
        // body fails that check, so the truncated length written here is never sent.
        let len = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
        out[body_start - 2..body_start].copy_from_slice(&len);
    }
    Ok(())
}

fn put_destination(out: &mut Vec<u8>, destination: &Destination) -> Result<(), ProtoError> {
    match destination {
        Destination::Host { host, port } => {
            out.push(DESTINATION_HOST);
            put_host(out, host, "destination.host")?;
            out.extend_from_slice(&port.to_be_bytes());
        }
        Destination::Addr(addr) => put_socket_addr(out, *addr),
    }
    Ok(())
}

fn put_socket_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    put_ip(out, addr.ip());
    out.extend_from_slice(&addr.port().to_be_bytes());
}

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.push(FAMILY_V4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(FAMILY_V6);
            out.extend_from_slice(&v6.octets());
        }
    }
}

/// A cursor over a body. Every read checks the remaining length first, so a hostile length
/// field can neither panic nor allocate more than the body it points into.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ProtoError> {
        if self.bytes.len() < n {
            return Err(ProtoError::Truncated(field));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ProtoError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, ProtoError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, ProtoError> {
        self.array(field).map(u16::from_be_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, ProtoError> {
        self.array(field).map(u32::from_be_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, ProtoError> {
        self.array(field).map(u64::from_be_bytes)
    }

    fn string(&mut self, field: &'static str, max: usize) -> Result<String, ProtoError> {
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(ProtoError::TooLong { field, len, max });
        }
        let bytes = self.take(len, field)?;
        let s = std::str::from_utf8(bytes).map_err(|_| ProtoError::InvalidUtf8(field))?;
        Ok(s.to_owned())
    }

    fn host(&mut self, field: &'static str) -> Result<String, ProtoError> {
        let host = self.string(field, MAX_HOST_LEN)?;
        if host.is_empty() {
            return Err(ProtoError::Empty(field));
        }
        Ok(host)
    }

    fn option_tag(&mut self, field: &'static str) -> Result<bool, ProtoError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(ProtoError::InvalidTag { field, tag }),
        }
    }

    fn assertion(&mut self) -> Result<Option<Assertion>, ProtoError> {
        Ok(match self.option_tag("assertion")? {
            false => None,
            true => Some(Assertion(self.string("assertion", MAX_ASSERTION_LEN)?)),
        })
    }

    fn routes(&mut self) -> Result<Vec<Route>, ProtoError> {
        let count = usize::from(self.u16("routes")?);
        if count > MAX_ROUTES {
            return Err(ProtoError::TooManyRoutes(count));
        }
        if self.bytes.len() < count * MIN_ROUTE_LEN {
            return Err(ProtoError::Truncated("routes"));
        }
        let mut routes = Vec::with_capacity(count);
        for _ in 0..count {
            let kind = self.u8("route")?;
            let len = usize::from(self.u16("route")?);
            let mut body = Reader {
                bytes: self.take(len, "route")?,
            };
            match kind {
                ROUTE_HOSTNAME => routes.push(Route::Hostname {
                    pattern: body.host("route.pattern")?,
                    path_prefix: match body.option_tag("route.path_prefix")? {
                        false => None,
                        true => Some(body.string("route.path_prefix", usize::MAX)?),
                    },
                }),
                ROUTE_CIDR => routes.push(Route::Cidr(body.ip_net()?)),
                // A kind from a later version: skipped, so the edge serves the routes it knows.
                _ => {}
            }
        }
        Ok(routes)
    }

    fn ip_net(&mut self) -> Result<IpNet, ProtoError> {
        let addr = self.ip("route.cidr")?;
        let prefix = self.u8("route.cidr")?;
        let net = match addr {
            IpAddr::V4(a) => Ipv4Net::new(a, prefix).map(IpNet::V4),
            IpAddr::V6(a) => Ipv6Net::new(a, prefix).map(IpNet::V6),
        }
        .map_err(|_| ProtoError::InvalidPrefixLen(prefix))?;
        if net.trunc() != net {
            return Err(ProtoError::CidrHostBits(net));
        }
        Ok(net)
    }

    fn destination(&mut self) -> Result<Destination, ProtoError> {
        let field = "destination";
        Ok(match self.u8(field)? {
            DESTINATION_HOST => Destination::Host {
                host: self.host("destination.host")?,
                port: self.u16("destination.port")?,
            },
            FAMILY_V4 => Destination::Addr(SocketAddr::new(
                Ipv4Addr::from(self.array::<4>(field)?).into(),
                self.u16("destination.port")?,
            )),
            FAMILY_V6 => Destination::Addr(SocketAddr::new(
                Ipv6Addr::from(self.array::<16>(field)?).into(),
                self.u16("destination.port")?,
            )),
            tag => return Err(ProtoError::InvalidTag { field, tag }),
        })
    }

    fn socket_addr(&mut self, field: &'static str) -> Result<SocketAddr, ProtoError> {
        let ip = self.ip(field)?;
        Ok(SocketAddr::new(ip, self.u16(field)?))
    }

    fn ip(&mut self, field: &'static str) -> Result<IpAddr, ProtoError> {
        match self.u8(field)? {
            FAMILY_V4 => Ok(Ipv4Addr::from(self.array::<4>(field)?).into()),
            FAMILY_V6 => Ok(Ipv6Addr::from(self.array::<16>(field)?).into()),
            tag => Err(ProtoError::InvalidTag { field, tag }),
        }
    }
}

//! Flow keys: the 5-tuple (protocol, source, destination) of an IP packet.

use etherparse::{IpNumber, IpSlice};
use std::fmt;
use std::net::IpAddr;

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    /// ICMP or ICMPv6; flows of echo messages are keyed by their identifier.
    Icmp,
    Other(u8),
}

/// One direction of a flow: protocol, source address and port, destination address and port.
///
/// For ICMP echo, both ports hold the echo identifier so that the reply's key is the reverse of
/// the request's key. Protocols without ports use 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowKey {
    pub protocol: Protocol,
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
}

/// The TCP flags a flow table cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// What the edge needs to know about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSummary {
    pub key: FlowKey,
    /// Present for TCP segments.
    pub tcp_flags: Option<TcpFlags>,
    /// True for ICMP error messages (unreachable, time exceeded, ...), which belong to the flow
    /// of the packet they quote rather than starting a flow of their own.
    pub icmp_error: bool,
}

/// Why a packet could not be summarised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("malformed ip header")]
    Malformed,
    #[error("transport header truncated")]
    TruncatedTransport,
}

impl FlowKey {
    /// The key of packets travelling the other way on the same flow.
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            protocol: self.protocol,
            src: self.dst,
            src_port: self.dst_port,
            dst: self.src,
            dst_port: self.src_port,
        }
    }
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {}:{} -> {}:{}",
            self.protocol, self.src, self.src_port, self.dst, self.dst_port
        )
    }
}

impl PacketSummary {
    /// Summarises an IPv4 or IPv6 packet.
    ///
    /// # Errors
    /// [`PacketError`] when the IP header is malformed or a TCP/UDP header is cut short.
    /// Fragments summarise with ports 0.
    pub fn parse(packet: &[u8]) -> Result<PacketSummary, PacketError> {
        let ip = IpSlice::from_slice(packet).map_err(|_| PacketError::Malformed)?;
        let payload = ip.payload();
        let transport = payload.payload;
        // etherparse flags any fragment (first or not); fragments are keyed without ports.
        let first_fragment = !payload.fragmented;
        let protocol = match payload.ip_number {
            IpNumber::TCP => Protocol::Tcp,
            IpNumber::UDP => Protocol::Udp,
            IpNumber::ICMP | IpNumber::IPV6_ICMP => Protocol::Icmp,
            other => Protocol::Other(other.0),
        };
        let mut summary = PacketSummary {
            key: FlowKey {
                protocol,
                src: ip.source_addr(),
                src_port: 0,
                dst: ip.destination_addr(),
                dst_port: 0,
            },
            tcp_flags: None,
            icmp_error: false,
        };
        if !first_fragment {
            return Ok(summary);
        }
        match protocol {
            Protocol::Tcp | Protocol::Udp => {
                let min = if protocol == Protocol::Tcp { 20 } else { 8 };
                if transport.len() < min {
                    return Err(PacketError::TruncatedTransport);
                }
                summary.key.src_port = u16::from_be_bytes([transport[0], transport[1]]);
                summary.key.dst_port = u16::from_be_bytes([transport[2], transport[3]]);
                if protocol == Protocol::Tcp {
                    let flags = transport[13];
                    summary.tcp_flags = Some(TcpFlags {
                        fin: flags & 0x01 != 0,
                        syn: flags & 0x02 != 0,
                        rst: flags & 0x04 != 0,
                        ack: flags & 0x10 != 0,
                    });
                }
            }
            Protocol::Icmp => {
                if transport.len() < 8 {
                    return Err(PacketError::TruncatedTransport);
                }
                let kind = transport[0];
                let is_v6 = payload.ip_number == IpNumber::IPV6_ICMP;
                let echo = if is_v6 {
                    kind == 128 || kind == 129
                } else {
                    kind == 8 || kind == 0
                };
                if echo {
                    let id = u16::from_be_bytes([transport[4], transport[5]]);
                    summary.key.src_port = id;
                    summary.key.dst_port = id;
                } else {
                    // ICMPv6 types below 128 and ICMPv4 types other than echo/info are errors.
                    summary.icmp_error = if is_v6 { kind < 128 } else { true };
                }
            }
            Protocol::Other(_) => {}
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_syn() -> Vec<u8> {
        let builder = PacketBuilder::ipv4([100, 64, 0, 2], [10, 0, 0, 9], 64)
            .tcp(40000, 80, 1, 1000)
            .syn();
        let mut out = Vec::new();
        builder
            .write(&mut out, &[])
            .expect("writing to a vec succeeds");
        out
    }

    #[test]
    fn tcp_syn_is_summarised_with_ports_and_flags() {
        let summary = PacketSummary::parse(&tcp_syn()).expect("valid packet");
        assert_eq!(summary.key.protocol, Protocol::Tcp);
        assert_eq!(summary.key.src_port, 40000);
        assert_eq!(summary.key.dst_port, 80);
        let flags = summary.tcp_flags.expect("tcp has flags");
        assert!(flags.syn && !flags.ack && !flags.rst);
    }

    #[test]
    fn icmp_echo_request_and_reply_have_reverse_keys() {
        let mut req = Vec::new();
        PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64)
            .icmpv4_echo_request(77, 1)
            .write(&mut req, b"ping")
            .expect("vec write");
        let mut rep = Vec::new();
        PacketBuilder::ipv4([2, 2, 2, 2], [1, 1, 1, 1], 64)
            .icmpv4_echo_reply(77, 1)
            .write(&mut rep, b"ping")
            .expect("vec write");
        let a = PacketSummary::parse(&req).expect("valid");
        let b = PacketSummary::parse(&rep).expect("valid");
        assert_eq!(a.key.reversed(), b.key);
        assert!(!a.icmp_error);
    }

    #[test]
    fn truncated_transport_is_an_error_not_a_panic() {
        let mut packet = tcp_syn();
        packet.truncate(30);
        // Fix the IPv4 total length so only the transport header is short.
        packet[2..4].copy_from_slice(&30u16.to_be_bytes());
        assert!(PacketSummary::parse(&packet).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for len in 0..80 {
            for seed in 0..16u8 {
                let bytes: Vec<u8> = (0..len)
                    .map(|i| (i as u8).wrapping_mul(31) ^ seed)
                    .collect();
                let _ = PacketSummary::parse(&bytes);
            }
        }
    }
}

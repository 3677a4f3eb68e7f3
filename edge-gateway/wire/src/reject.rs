//! Packets the edge sends back when it refuses a flow: a TCP reset for TCP, an ICMP
//! "administratively prohibited" unreachable for everything else.

use etherparse::{
    icmpv4::DestUnreachableHeader, icmpv6::DestUnreachableCode, Icmpv4Type, Icmpv6Type, IpNumber,
    IpSlice, PacketBuilder,
};

/// ICMPv6 error messages must fit the IPv6 minimum MTU (RFC 4443 §2.4 (c)).
const ICMPV6_ERROR_MAX: usize = 1280;
/// ICMPv4 errors quote the IP header plus at least 8 bytes (RFC 792); we quote up to 548 bytes
/// so the error fits the 576-byte minimum datagram (RFC 1812 §4.3.2.3).
const ICMPV4_ERROR_MAX: usize = 576;

/// A TCP RST answering `packet` (a TCP segment), from its destination to its source, as
/// RFC 9293 §3.10.7.1 describes for a closed port. `None` for anything else, and for resets
/// (a reset is never answered).
pub fn tcp_reset_for(packet: &[u8]) -> Option<Vec<u8>> {
    let ip = IpSlice::from_slice(packet).ok()?;
    let payload = ip.payload();
    if payload.ip_number != IpNumber::TCP || payload.fragmented {
        return None;
    }
    let tcp = payload.payload;
    if tcp.len() < 20 {
        return None;
    }
    let src_port = u16::from_be_bytes([tcp[0], tcp[1]]);
    let dst_port = u16::from_be_bytes([tcp[2], tcp[3]]);
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let ack = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
    let flags = tcp[13];
    if flags & 0x04 != 0 {
        return None;
    }
    let data_offset = usize::from(tcp[12] >> 4) * 4;
    let data_len = tcp.len().saturating_sub(data_offset) as u32;
    let syn = u32::from(flags & 0x02 != 0);
    let fin = u32::from(flags & 0x01 != 0);

    let builder = match (ip.source_addr(), ip.destination_addr()) {
        (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
            PacketBuilder::ipv4(d.octets(), s.octets(), 64)
        }
        (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) => {
            PacketBuilder::ipv6(d.octets(), s.octets(), 64)
        }
        _ => return None,
    };
    let builder = if flags & 0x10 != 0 {
        // <SEQ=SEG.ACK><CTL=RST>
        builder.tcp(dst_port, src_port, ack, 0).rst()
    } else {
        // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
        builder
            .tcp(dst_port, src_port, 0, 0)
            .rst()
            .ack(seq.wrapping_add(data_len + syn + fin))
    };
    let mut out = Vec::with_capacity(60);
    builder.write(&mut out, &[]).ok()?;
    Some(out)
}

/// The acknowledgment number of a TCP segment that carries one (ACK set, not a reset): what
/// its sender expects next from the other side, so a reset with this sequence number is in
/// its window. `None` for anything else.
pub fn tcp_ack_of(packet: &[u8]) -> Option<u32> {
    let ip = IpSlice::from_slice(packet).ok()?;
    let payload = ip.payload();
    if payload.ip_number != IpNumber::TCP || payload.fragmented {
        return None;
    }
    let tcp = payload.payload;
    if tcp.len() < 20 || tcp[13] & 0x04 != 0 || tcp[13] & 0x10 == 0 {
        return None;
    }
    Some(u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]))
}

/// The sequence number that follows a TCP segment (`SEG.SEQ + SEG.LEN`, SYN and FIN
/// counted): the receiver's `RCV.NXT` once it has it. `None` for resets and non-TCP packets.
pub fn tcp_next_seq(packet: &[u8]) -> Option<u32> {
    let ip = IpSlice::from_slice(packet).ok()?;
    let payload = ip.payload();
    if payload.ip_number != IpNumber::TCP || payload.fragmented {
        return None;
    }
    let tcp = payload.payload;
    if tcp.len() < 20 || tcp[13] & 0x04 != 0 {
        return None;
    }
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let data_offset = usize::from(tcp[12] >> 4) * 4;
    let data_len = u32::try_from(tcp.len().saturating_sub(data_offset)).ok()?;
    let flags = u32::from(tcp[13] & 0x02 != 0) + u32::from(tcp[13] & 0x01 != 0);
    Some(seq.wrapping_add(data_len).wrapping_add(flags))
}

/// A TCP RST that closes the flow `key` at its sender (`key.src`), as if sent by `key.dst`:
/// `<SEQ=ack><CTL=RST>` where `ack` is the last acknowledgment number the sender sent
/// ([`tcp_ack_of`]). `None` when the addresses are of different families.
pub fn tcp_reset_to_sender(key: &crate::FlowKey, ack: u32) -> Option<Vec<u8>> {
    let builder = match (key.src, key.dst) {
        (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
            PacketBuilder::ipv4(d.octets(), s.octets(), 64)
        }
        (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) => {
            PacketBuilder::ipv6(d.octets(), s.octets(), 64)
        }
        _ => return None,
    };
    let mut out = Vec::with_capacity(60);
    builder
        .tcp(key.dst_port, key.src_port, ack, 0)
        .rst()
        .write(&mut out, &[])
        .ok()?;
    Some(out)
}

/// An ICMP (v4: type 3 code 13) or ICMPv6 (type 1 code 1) "administratively prohibited"
/// answering `packet`, from `packet`'s destination, quoting as much of it as the RFCs allow.
/// `None` for ICMP errors themselves (never answered) and unparsable packets.
pub fn icmp_unreachable_for(packet: &[u8]) -> Option<Vec<u8>> {
    let ip = IpSlice::from_slice(packet).ok()?;
    let payload = ip.payload();
    let transport = payload.payload;
    let mut out = Vec::with_capacity(ICMPV6_ERROR_MAX);
    match (ip.source_addr(), ip.destination_addr()) {
        (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
            if payload.ip_number == IpNumber::ICMP && !transport.is_empty() {
                // Only echo request/reply and informational types are answered.
                if !matches!(transport[0], 0 | 8 | 13 | 14) {
                    return None;
                }
            }
            let quote = &packet[..packet.len().min(ICMPV4_ERROR_MAX - 28)];
            PacketBuilder::ipv4(d.octets(), s.octets(), 64)
                .icmpv4(Icmpv4Type::DestinationUnreachable(
                    DestUnreachableHeader::FilterProhibited,
                ))
                .write(&mut out, quote)
                .ok()?;
        }
        (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) => {
            if payload.ip_number == IpNumber::IPV6_ICMP
                && transport.first().is_some_and(|t| *t < 128)
            {
                return None;
            }
            let quote = &packet[..packet.len().min(ICMPV6_ERROR_MAX - 48)];
            PacketBuilder::ipv6(d.octets(), s.octets(), 64)
                .icmpv6(Icmpv6Type::DestinationUnreachable(
                    DestUnreachableCode::Prohibited,
                ))
                .write(&mut out, quote)
                .ok()?;
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PacketSummary;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    fn syn_v4() -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([100, 64, 0, 2], [10, 0, 0, 9], 64)
            .tcp(40000, 80, 1000, 1000)
            .syn()
            .write(&mut out, &[])
            .expect("vec write");
        out
    }

    #[test]
    fn reset_for_syn_acknowledges_the_syn_and_swaps_ends() {
        let rst = tcp_reset_for(&syn_v4()).expect("syn gets a reset");
        let sliced = SlicedPacket::from_ip(&rst).expect("valid reset");
        let Some(TransportSlice::Tcp(tcp)) = sliced.transport else {
            panic!("reset is tcp");
        };
        assert!(tcp.rst() && tcp.ack());
        assert_eq!(tcp.acknowledgment_number(), 1001);
        assert_eq!((tcp.source_port(), tcp.destination_port()), (80, 40000));
        let summary = PacketSummary::parse(&rst).expect("valid");
        assert_eq!(summary.key.dst.to_string(), "100.64.0.2");
    }

    #[test]
    fn a_live_flow_is_reset_at_its_sender_with_the_sequence_it_acknowledged() {
        let mut ack = Vec::new();
        PacketBuilder::ipv4([100, 64, 0, 2], [10, 0, 0, 9], 64)
            .tcp(40000, 80, 1001, 1000)
            .ack(777_000)
            .write(&mut ack, b"data")
            .expect("vec write");
        assert_eq!(tcp_ack_of(&ack), Some(777_000));
        assert_eq!(tcp_next_seq(&ack), Some(1005), "1001 + 4 bytes");
        assert_eq!(tcp_next_seq(&syn_v4()), Some(1001), "a SYN counts one");
        assert_eq!(
            tcp_ack_of(&syn_v4()),
            None,
            "a bare SYN acknowledges nothing"
        );
        let key = PacketSummary::parse(&ack).expect("valid").key;
        let rst = tcp_reset_to_sender(&key, 777_000).expect("reset");
        let sliced = SlicedPacket::from_ip(&rst).expect("valid reset");
        let Some(TransportSlice::Tcp(tcp)) = sliced.transport else {
            panic!("reset is tcp");
        };
        assert!(tcp.rst() && !tcp.ack());
        assert_eq!(tcp.sequence_number(), 777_000);
        assert_eq!((tcp.source_port(), tcp.destination_port()), (80, 40000));
        let back = PacketSummary::parse(&rst).expect("valid").key;
        assert_eq!(back, key.reversed());
        assert_eq!(tcp_ack_of(&rst), None, "a reset is not tracked");
    }

    #[test]
    fn a_reset_is_never_answered() {
        let rst = tcp_reset_for(&syn_v4()).expect("syn gets a reset");
        assert_eq!(tcp_reset_for(&rst), None);
    }

    #[test]
    fn udp_gets_admin_prohibited_quoting_the_packet() {
        let mut udp = Vec::new();
        PacketBuilder::ipv6([0xfd; 16], [0x20; 16], 64)
            .udp(5000, 53)
            .write(&mut udp, b"query")
            .expect("vec write");
        let icmp = icmp_unreachable_for(&udp).expect("udp gets unreachable");
        let summary = PacketSummary::parse(&icmp).expect("valid");
        assert!(summary.icmp_error);
        assert!(icmp.ends_with(&udp));
        // ICMP errors are never answered with ICMP errors.
        assert_eq!(icmp_unreachable_for(&icmp), None);
    }

    #[test]
    fn garbage_gets_nothing() {
        assert_eq!(tcp_reset_for(&[0x45, 0, 0]), None);
        assert_eq!(icmp_unreachable_for(&[0x60; 10]), None);
    }
}

//! `wire`: zero-copy views of the IP packets that cross the tunnel, and the few packets the edge
//! writes itself (TCP resets and ICMP unreachables for denied flows).
//!
//! It is not a TCP/IP stack and keeps no state; parsing is delegated to `etherparse`, which
//! checks header lengths, so no function here panics on any input. Used by `wg` (inner source
//! checks), `edge-core` (flow keys) and `client-core`.

mod flow_key;
pub mod offload;
mod reject;

pub use flow_key::{FlowKey, PacketError, PacketSummary, Protocol, TcpFlags};
pub use reject::{
    icmp_unreachable_for, tcp_ack_of, tcp_next_seq, tcp_reset_for, tcp_reset_to_sender,
};

use std::net::IpAddr;

/// The source address of an IPv4 or IPv6 packet, if the header is long enough to hold one.
pub fn source_addr(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 if packet.len() >= 20 => {
            let bytes: [u8; 4] = packet[12..16].try_into().ok()?;
            Some(IpAddr::from(bytes))
        }
        6 if packet.len() >= 40 => {
            let bytes: [u8; 16] = packet[8..24].try_into().ok()?;
            Some(IpAddr::from(bytes))
        }
        _ => None,
    }
}

/// The destination address of an IPv4 or IPv6 packet, if the header is long enough to hold one.
pub fn destination_addr(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 if packet.len() >= 20 => {
            let bytes: [u8; 4] = packet[16..20].try_into().ok()?;
            Some(IpAddr::from(bytes))
        }
        6 if packet.len() >= 40 => {
            let bytes: [u8; 16] = packet[24..40].try_into().ok()?;
            Some(IpAddr::from(bytes))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_short_or_unknown_packets_are_none() {
        assert_eq!(source_addr(&[]), None);
        assert_eq!(source_addr(&[0x45; 19]), None);
        assert_eq!(destination_addr(&[0x60; 39]), None);
        assert_eq!(destination_addr(&[0x00; 60]), None);
    }
}

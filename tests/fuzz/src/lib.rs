//! Helpers shared by the fuzz targets in `fuzz_targets/`: a byte cursor that turns fuzz input
//! into a sequence of operations, and the client/edge set-up the stateful targets drive.
//!
//! The input format is hand-rolled rather than `arbitrary`-derived so that the seed corpora in
//! `corpus/` can be written by hand (see `README.md`). It is not part of any product.

use edge_core::{Action, EdgeConfig, EdgePeer, FlowTimeouts, PortRange, Rule, RulePolicy};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use wg::keys::{PrivateKey, PublicKey};
use wg::{NodeConfig, PeerConfig, DEFAULT_HANDSHAKE_LOAD_LIMIT};
use wire::Protocol;

/// Upper bound on operations per input, so one input cannot run for long.
pub const MAX_STEPS: usize = 256;
/// Upper bound on a packet or datagram taken from the input.
pub const MAX_PACKET: usize = 2048;
/// Buffers handed to the nodes: any packet up to [`MAX_PACKET`] plus WireGuard's overhead.
pub const BUF: usize = 4096;
/// Datagrams kept in flight per direction; older ones are dropped like a full socket queue.
pub const MAX_IN_FLIGHT: usize = 64;

pub const CLIENT_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)), 40000);
pub const EDGE_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)), 51820);
/// The name policy rules use for the client peer.
pub const CLIENT_NAME: &str = "client";

/// Reads fuzz input front to back; every read succeeds, yielding zeros once the input is spent.
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    /// Little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// A `u16` length (capped at [`MAX_PACKET`]) followed by that many bytes, or fewer when the
    /// input ends first.
    pub fn bytes(&mut self) -> &'a [u8] {
        let len = usize::from(self.u16()).min(MAX_PACKET).min(self.data.len());
        let (taken, rest) = self.data.split_at(len);
        self.data = rest;
        taken
    }

    /// One selector byte (even: IPv4, odd: IPv6), the address, then a little-endian port.
    pub fn socket_addr(&mut self) -> SocketAddr {
        let ip = if self.u8().is_multiple_of(2) {
            IpAddr::V4(Ipv4Addr::from(std::array::from_fn::<u8, 4, _>(|_| {
                self.u8()
            })))
        } else {
            IpAddr::V6(Ipv6Addr::from(std::array::from_fn::<u8, 16, _>(|_| {
                self.u8()
            })))
        };
        SocketAddr::new(ip, self.u16())
    }

    /// Milliseconds to advance the clock by.
    pub fn millis(&mut self) -> Duration {
        Duration::from_millis(u64::from(self.u16()))
    }
}

pub fn client_private_key() -> PrivateKey {
    PrivateKey::from_bytes([1; 32])
}

pub fn edge_private_key() -> PrivateKey {
    PrivateKey::from_bytes([2; 32])
}

pub fn node_config(private_key: PrivateKey) -> NodeConfig {
    NodeConfig {
        private_key,
        listen_port: 51820,
        fwmark: None,
        handshake_load_limit: DEFAULT_HANDSHAKE_LOAD_LIMIT,
    }
}

/// The client as the edge knows it: inner addresses 100.64.0.2 and fd00::2.
pub fn client_on_edge() -> PeerConfig {
    PeerConfig {
        public_key: client_private_key().public_key(),
        preshared_key: None,
        endpoint: None,
        allowed_ips: vec![net("100.64.0.2/32"), net("fd00::2/128")],
        persistent_keepalive: None,
    }
}

/// The edge as the client knows it: everything routes to it.
pub fn edge_on_client() -> PeerConfig {
    PeerConfig {
        public_key: edge_public_key(),
        preshared_key: None,
        endpoint: Some(EDGE_ADDR),
        allowed_ips: vec![net("0.0.0.0/0"), net("::/0")],
        persistent_keepalive: None,
    }
}

pub fn edge_public_key() -> PublicKey {
    edge_private_key().public_key()
}

/// TCP 80-443 and DNS to 10.0.0.0/8 and fd10::/16 are allowed for the client; 10.0.0.99 is
/// denied explicitly; everything else is denied by default.
pub fn policy() -> RulePolicy {
    let rule = |action, destinations: &[&str], protocol, ports| Rule {
        action,
        peers: vec![CLIENT_NAME.to_string()],
        destinations: destinations.iter().map(|d| net(d)).collect(),
        protocol: Some(protocol),
        ports,
    };
    RulePolicy {
        rules: vec![
            Rule {
                action: Action::Deny,
                peers: vec![],
                destinations: vec![net("10.0.0.99/32")],
                protocol: None,
                ports: None,
            },
            rule(
                Action::Allow,
                &["10.0.0.0/8", "fd10::/16"],
                Protocol::Tcp,
                PortRange::parse("80-443"),
            ),
            rule(
                Action::Allow,
                &["10.0.0.0/8", "fd10::/16"],
                Protocol::Udp,
                PortRange::parse("53"),
            ),
            rule(Action::Allow, &["10.0.0.0/8"], Protocol::Icmp, None),
        ],
    }
}

/// Short timeouts so that a `u16` of milliseconds per step can expire flows.
pub fn flow_timeouts() -> FlowTimeouts {
    FlowTimeouts {
        tcp: Duration::from_secs(30),
        tcp_closing: Duration::from_secs(2),
        udp: Duration::from_secs(10),
        other: Duration::from_secs(5),
    }
}

pub fn edge_config() -> EdgeConfig {
    EdgeConfig {
        node: node_config(edge_private_key()),
        peers: vec![client_edge_peer()],
        policy: Box::new(policy()),
        flow_timeouts: flow_timeouts(),
    }
}

pub fn client_edge_peer() -> EdgePeer {
    EdgePeer {
        name: CLIENT_NAME.to_string(),
        config: client_on_edge(),
    }
}

/// `packet` with source and destination (addresses and TCP/UDP ports) swapped, and an ICMP
/// echo request turned into a reply: what the destination would answer. Checksums are left
/// as they are (the edge does not verify them). `None` if the header is too short.
pub fn reply_to(packet: &[u8]) -> Option<Vec<u8>> {
    let mut out = packet.to_vec();
    let (transport, protocol) = match packet.first()? >> 4 {
        4 if packet.len() >= 20 => {
            swap(&mut out, 12, 16, 4);
            (usize::from(packet[0] & 0x0f) * 4, packet[9])
        }
        6 if packet.len() >= 40 => {
            swap(&mut out, 8, 24, 16);
            (40, packet[6])
        }
        _ => return None,
    };
    match protocol {
        6 | 17 if out.len() >= transport + 4 => swap(&mut out, transport, transport + 2, 2),
        1 if out.get(transport) == Some(&8) => out[transport] = 0,
        58 if out.get(transport) == Some(&128) => out[transport] = 129,
        _ => {}
    }
    Some(out)
}

fn swap(buf: &mut [u8], a: usize, b: usize, len: usize) {
    for i in 0..len {
        buf.swap(a + i, b + i);
    }
}

fn net(text: &str) -> IpNet {
    text.parse().expect("literal network")
}

/// Queues a datagram in flight, dropping the oldest once [`MAX_IN_FLIGHT`] are queued.
pub fn push(queue: &mut std::collections::VecDeque<Vec<u8>>, datagram: Vec<u8>) {
    if queue.len() == MAX_IN_FLIGHT {
        queue.pop_front();
    }
    queue.push_back(datagram);
}

/// Corrupts one byte of `datagram` (position `at` modulo its length) when `xor` is non-zero.
pub fn flip(mut datagram: Vec<u8>, at: u16, xor: u8) -> Vec<u8> {
    if xor != 0 && !datagram.is_empty() {
        let at = usize::from(at) % datagram.len();
        datagram[at] ^= xor;
    }
    datagram
}

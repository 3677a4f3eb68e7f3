//! One WireGuard peer as the node sees it: a boringtun `Tunn` plus what WireGuard keeps beside it.

use crate::keys::{PresharedKey, PublicKey};
use boringtun::noise::Tunn;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How a peer is configured (from a config file, the identity feed or UAPI).
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub public_key: PublicKey,
    pub preshared_key: Option<PresharedKey>,
    /// Where to send until the peer's first authenticated packet tells us (roaming).
    pub endpoint: Option<SocketAddr>,
    /// Inner addresses the peer may send from and that are routed to it.
    pub allowed_ips: Vec<ipnet::IpNet>,
    /// Seconds between keepalives when otherwise idle; `None` is off.
    pub persistent_keepalive: Option<u16>,
}

pub(crate) struct Peer {
    pub(crate) tunn: Tunn,
    pub(crate) index: u32,
    pub(crate) preshared_key: Option<PresharedKey>,
    pub(crate) endpoint: Option<SocketAddr>,
    pub(crate) persistent_keepalive: Option<u16>,
    /// Bytes of authenticated datagrams received, as the kernel counts them.
    pub(crate) rx_bytes: u64,
    /// Bytes of datagrams sent.
    pub(crate) tx_bytes: u64,
    pub(crate) last_initiation_consumed: Option<Instant>,
}

impl Peer {
    pub(crate) fn since_last_handshake(&self) -> Option<Duration> {
        self.tunn.stats().0
    }
}

/// Counters and state of one peer, for status displays and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub public_key: PublicKey,
    pub endpoint: Option<SocketAddr>,
    pub since_last_handshake: Option<Duration>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

//! The node: N peers behind one UDP socket, one timer.

use crate::allowed_ips::AllowedIps;
use crate::keys::{PrivateKey, PublicKey};
use crate::limits::{LoadMeter, SourceLimiter, MIN_INITIATION_SPACING};
use crate::peer::{Peer, PeerConfig, PeerStatus};
use crate::uapi::{DeviceSnapshot, PeerSnapshot, SetRequest};
use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// boringtun's timers expect a tick at least every 250 ms (its `device` module's cadence).
const TICK: Duration = Duration::from_millis(250);
/// Handshake messages per second above which the node answers with cookies; boringtun's
/// `device` module uses the same default (`HANDSHAKE_RATE_LIMIT`).
pub const DEFAULT_HANDSHAKE_LOAD_LIMIT: u64 = 100;
/// Kernel ratelimiter table size on a small machine (`max_entries` scales with RAM).
const SOURCE_TABLE_MAX: usize = 8192;
/// Receiver indices carry the peer index in their upper 24 bits (boringtun: `index << 8`).
const INDEX_SPACE: u32 = 1 << 24;
/// Smallest buffer `handle_datagram`/`send` accept: a handshake initiation is 148 bytes.
pub const MIN_BUFFER: usize = 148;

/// Device-wide settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub private_key: PrivateKey,
    /// Reported through UAPI; the driver owns the socket.
    pub listen_port: u16,
    pub fwmark: Option<u32>,
    /// Handshake messages per second before cookies are required.
    pub handshake_load_limit: u64,
}

/// A datagram to send, borrowing the caller's buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Transmit<'b> {
    pub to: SocketAddr,
    pub datagram: &'b [u8],
}

/// A datagram to send that the node produced outside the per-packet path (handshakes,
/// keepalives, cookie replies, packets queued during a handshake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedTransmit {
    pub to: SocketAddr,
    pub datagram: Vec<u8>,
}

/// The outcome of one received datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'b> {
    /// A decrypted IP packet from `peer`, whose source address is one of its allowed IPs.
    Packet { peer: PublicKey, packet: &'b [u8] },
    /// Handled (handshake, keepalive, cookie); anything to send is in `poll_transmit`.
    Control,
}

/// Things the driver may want to log or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A handshake with `peer` completed, from `endpoint`.
    HandshakeCompleted {
        peer: PublicKey,
        endpoint: SocketAddr,
    },
    /// The peer's endpoint changed (roaming).
    EndpointChanged {
        peer: PublicKey,
        endpoint: SocketAddr,
    },
}

/// Why a datagram or packet was dropped. Counted by the driver, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("not a wireguard message")]
    Malformed,
    #[error("no peer for receiver index")]
    UnknownIndex,
    #[error("handshake from an unknown static key")]
    UnknownPeer,
    #[error("handshake dropped: under load without a valid cookie from this source")]
    SourceRateLimited,
    #[error("handshake dropped: peer initiated more than 50 times per second")]
    PeerRateLimited,
    #[error("inner source address not in the peer's allowed ips")]
    SpoofedSource,
    #[error("no peer routes the destination address")]
    NoRoute,
    #[error("peer has no known endpoint")]
    NoEndpoint,
    #[error("buffer smaller than the packet plus 32 bytes")]
    BufferTooSmall,
    #[error("noise: {0:?}")]
    Noise(WireGuardErrorKind),
}

/// boringtun's error, reduced to what a counter needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireGuardErrorKind {
    InvalidMac,
    Replay,
    Expired,
    InvalidPacket,
    Other,
}

/// Errors adding a peer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerError {
    #[error("peer public key is unusable")]
    BadKey(#[from] crate::keys::KeyError),
    #[error("peer public key equals the node's own")]
    OwnKey,
    #[error("no receiver index left")]
    IndexSpaceExhausted,
}

/// A sans-IO WireGuard node.
///
/// Inputs: [`Node::handle_datagram`] (UDP in), [`Node::send`] / [`Node::send_to_peer`] (IP
/// packets out), [`Node::handle_timeout`]; peers change with [`Node::add_peer`],
/// [`Node::remove_peer`] and [`Node::apply_uapi`]. Outputs are pulled: after every input the
/// driver drains [`Node::poll_transmit`] then [`Node::poll_event`], and arms one timer at
/// [`Node::poll_timeout`]. Per-packet paths borrow the caller's buffer, which must hold the
/// packet plus 32 bytes and no less than [`MIN_BUFFER`].
pub struct Node {
    private_key: PrivateKey,
    public_key: PublicKey,
    listen_port: u16,
    fwmark: Option<u32>,
    peers: BTreeMap<PublicKey, Peer>,
    by_index: BTreeMap<u32, PublicKey>,
    allowed_ips: AllowedIps,
    next_index: u32,
    /// Checks mac1 and answers with cookies under load (shared by all peers, before lookup).
    cookie_guard: Arc<RateLimiter>,
    /// Given to every `Tunn`: checks mac1 again but never reports load.
    peer_guard: Arc<RateLimiter>,
    load: LoadMeter,
    sources: SourceLimiter,
    handshake_load_limit: u64,
    transmits: VecDeque<OwnedTransmit>,
    events: VecDeque<Event>,
    next_tick: Instant,
}

impl Node {
    pub fn new(config: NodeConfig, now: Instant) -> Self {
        let public_key = config.private_key.public_key();
        let (cookie_guard, peer_guard) = guards(&public_key, config.handshake_load_limit);
        Self {
            private_key: config.private_key,
            public_key,
            listen_port: config.listen_port,
            fwmark: config.fwmark,
            peers: BTreeMap::new(),
            by_index: BTreeMap::new(),
            allowed_ips: AllowedIps::default(),
            next_index: 1,
            cookie_guard,
            peer_guard,
            load: LoadMeter::new(config.handshake_load_limit, now),
            sources: SourceLimiter::new(SOURCE_TABLE_MAX),
            handshake_load_limit: config.handshake_load_limit,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_tick: now + TICK,
        }
    }

    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// Adds a peer, or replaces the peer with the same public key (its sessions restart).
    ///
    /// # Errors
    /// A low-order key or the node's own key.
    pub fn add_peer(&mut self, config: PeerConfig) -> Result<(), PeerError> {
        if config.public_key == self.public_key {
            return Err(PeerError::OwnKey);
        }
        self.private_key.check_peer(&config.public_key)?;
        let previous_endpoint = self.remove_peer(&config.public_key);
        let index = self.allocate_index()?;
        let tunn = Tunn::new(
            self.private_key.secret().clone(),
            config.public_key.to_dalek(),
            config.preshared_key.as_ref().map(|k| *k.as_bytes()),
            config.persistent_keepalive,
            index,
            Some(self.peer_guard.clone()),
        );
        for net in &config.allowed_ips {
            self.allowed_ips.insert(*net, config.public_key);
        }
        self.by_index.insert(index, config.public_key);
        self.peers.insert(
            config.public_key,
            Peer {
                tunn,
                index,
                preshared_key: config.preshared_key,
                endpoint: config.endpoint.or(previous_endpoint),
                persistent_keepalive: config.persistent_keepalive,
                rx_bytes: 0,
                tx_bytes: 0,
                last_initiation_consumed: None,
            },
        );
        Ok(())
    }

    /// Removes a peer and its allowed IPs; returns its last endpoint if it existed.
    pub fn remove_peer(&mut self, key: &PublicKey) -> Option<SocketAddr> {
        let peer = self.peers.remove(key)?;
        self.by_index.remove(&peer.index);
        self.allowed_ips.remove_peer(key);
        peer.endpoint
    }

    pub fn contains_peer(&self, key: &PublicKey) -> bool {
        self.peers.contains_key(key)
    }

    /// The peer that routes `addr` (longest allowed-IP prefix).
    pub fn peer_for(&self, addr: IpAddr) -> Option<PublicKey> {
        self.allowed_ips.lookup(addr).copied()
    }

    /// Counters of every peer, ordered by public key.
    pub fn peer_statuses(&self) -> Vec<PeerStatus> {
        self.peers
            .iter()
            .map(|(key, peer)| PeerStatus {
                public_key: *key,
                endpoint: peer.endpoint,
                since_last_handshake: peer.since_last_handshake(),
                rx_bytes: peer.rx_bytes,
                tx_bytes: peer.tx_bytes,
            })
            .collect()
    }

    /// Handles one UDP datagram from `from`.
    ///
    /// # Errors
    /// A [`DropReason`] the driver counts; nothing is sent for a dropped datagram.
    pub fn handle_datagram<'b>(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        buf: &'b mut [u8],
        now: Instant,
    ) -> Result<Received<'b>, DropReason> {
        if buf.len() < MIN_BUFFER.max(datagram.len()) {
            return Err(DropReason::BufferTooSmall);
        }
        let packet = Tunn::parse_incoming_packet(datagram).map_err(|_| DropReason::Malformed)?;
        let key = match packet {
            Packet::HandshakeInit(ref init) => {
                return self.handle_initiation(from, datagram, init, buf, now)
            }
            Packet::HandshakeResponse(ref p) => {
                self.screen_handshake(from, datagram, buf, now)?;
                self.peer_by_index(p.receiver_idx)?
            }
            Packet::PacketCookieReply(ref p) => self.peer_by_index(p.receiver_idx)?,
            Packet::PacketData(ref p) => self.peer_by_index(p.receiver_idx)?,
        };
        let is_data = matches!(packet, Packet::PacketData(_));
        self.decapsulate(key, from, datagram, is_data, buf, now)
    }

    /// Encrypts `packet` for the peer whose allowed IPs hold its destination.
    ///
    /// # Errors
    /// [`DropReason::NoRoute`] when no peer routes the destination, or see [`Node::send_to_peer`].
    pub fn send<'b>(
        &mut self,
        packet: &[u8],
        buf: &'b mut [u8],
        now: Instant,
    ) -> Result<Option<Transmit<'b>>, DropReason> {
        let dst = wire::destination_addr(packet).ok_or(DropReason::Malformed)?;
        let key = self.peer_for(dst).ok_or(DropReason::NoRoute)?;
        self.send_to_peer(&key, packet, buf, now)
    }

    /// Encrypts `packet` for `peer`. `Ok(None)` when the packet is queued behind a handshake
    /// (the handshake initiation is then in `poll_transmit`).
    ///
    /// # Errors
    /// Unknown peer, no endpoint yet, a buffer too small, or a noise error.
    pub fn send_to_peer<'b>(
        &mut self,
        peer: &PublicKey,
        packet: &[u8],
        buf: &'b mut [u8],
        _now: Instant,
    ) -> Result<Option<Transmit<'b>>, DropReason> {
        if buf.len() < MIN_BUFFER.max(packet.len() + 32) {
            return Err(DropReason::BufferTooSmall);
        }
        let peer_state = self.peers.get_mut(peer).ok_or(DropReason::NoRoute)?;
        let Some(endpoint) = peer_state.endpoint else {
            return Err(DropReason::NoEndpoint);
        };
        match peer_state.tunn.encapsulate(packet, buf) {
            TunnResult::WriteToNetwork(datagram) => {
                peer_state.tx_bytes += datagram.len() as u64;
                // A handshake initiation (148 bytes, type 1) means the packet was queued.
                if datagram.first() == Some(&1) && datagram.len() == MIN_BUFFER {
                    self.transmits.push_back(OwnedTransmit {
                        to: endpoint,
                        datagram: datagram.to_vec(),
                    });
                    return Ok(None);
                }
                Ok(Some(Transmit {
                    to: endpoint,
                    datagram,
                }))
            }
            TunnResult::Done => Ok(None),
            TunnResult::Err(e) => Err(DropReason::Noise(kind_of(&e))),
            TunnResult::WriteToTunnelV4(..) | TunnResult::WriteToTunnelV6(..) => Ok(None),
        }
    }

    /// Runs WireGuard's timers (handshake retries, keepalives, rekeys, session expiry) and the
    /// rate limiters' housekeeping.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + TICK;
        self.cookie_guard.reset_count();
        self.sources.expire(now);
        let mut buf = vec![0u8; MIN_BUFFER.max(256)];
        for (key, peer) in &mut self.peers {
            match peer.tunn.update_timers(&mut buf) {
                TunnResult::WriteToNetwork(datagram) => match peer.endpoint {
                    Some(to) => {
                        peer.tx_bytes += datagram.len() as u64;
                        self.transmits.push_back(OwnedTransmit {
                            to,
                            datagram: datagram.to_vec(),
                        });
                    }
                    None => tracing::trace!(?key, "timer output dropped: no endpoint"),
                },
                TunnResult::Err(WireGuardError::ConnectionExpired) => {
                    tracing::debug!(?key, "session expired");
                }
                TunnResult::Err(e) => tracing::debug!(?key, error = ?e, "timer error"),
                TunnResult::Done
                | TunnResult::WriteToTunnelV4(..)
                | TunnResult::WriteToTunnelV6(..) => {}
            }
        }
    }

    /// The next instant [`Node::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    pub fn poll_transmit(&mut self) -> Option<OwnedTransmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// What `wg show` reports.
    pub fn snapshot(&self) -> DeviceSnapshot {
        DeviceSnapshot {
            private_key: Some(self.private_key.clone()),
            listen_port: self.listen_port,
            fwmark: self.fwmark,
            peers: self
                .peers
                .iter()
                .map(|(key, peer)| PeerSnapshot {
                    public_key: *key,
                    preshared_key: peer.preshared_key.clone(),
                    endpoint: peer.endpoint,
                    persistent_keepalive: peer.persistent_keepalive,
                    allowed_ips: self.allowed_ips.of_peer(key),
                    since_last_handshake: peer.since_last_handshake(),
                    rx_bytes: peer.rx_bytes,
                    tx_bytes: peer.tx_bytes,
                })
                .collect(),
        }
    }

    /// Applies a UAPI `set=1` request.
    ///
    /// # Errors
    /// The first peer that could not be added; changes before it stay applied, as in
    /// wireguard-go.
    pub fn apply_uapi(&mut self, request: SetRequest, now: Instant) -> Result<(), PeerError> {
        if let Some(Some(key)) = request.private_key {
            self.set_private_key(key, now)?;
        }
        if let Some(port) = request.listen_port {
            self.listen_port = port;
        }
        if let Some(fwmark) = request.fwmark {
            self.fwmark = fwmark;
        }
        if request.replace_peers {
            let keys: Vec<PublicKey> = self.peers.keys().copied().collect();
            for key in keys {
                self.remove_peer(&key);
            }
        }
        for update in request.peers {
            if update.remove {
                self.remove_peer(&update.public_key);
                continue;
            }
            let existing = self.peers.get(&update.public_key);
            if existing.is_none() && update.update_only {
                continue;
            }
            let mut allowed_ips = if update.replace_allowed_ips {
                Vec::new()
            } else {
                self.allowed_ips.of_peer(&update.public_key)
            };
            allowed_ips.extend(update.allowed_ips);
            let config = PeerConfig {
                public_key: update.public_key,
                preshared_key: match update.preshared_key {
                    Some(psk) => psk,
                    None => existing.and_then(|p| p.preshared_key.clone()),
                },
                endpoint: update.endpoint.or(existing.and_then(|p| p.endpoint)),
                allowed_ips,
                persistent_keepalive: match update.persistent_keepalive {
                    Some(k) => k,
                    None => existing.and_then(|p| p.persistent_keepalive),
                },
            };
            // boringtun fixes the preshared key and keepalive at construction.
            let changes_session = existing.is_none_or(|p| {
                p.preshared_key != config.preshared_key
                    || p.persistent_keepalive != config.persistent_keepalive
            });
            if changes_session {
                self.add_peer(config)?;
            } else {
                self.update_peer_in_place(config);
            }
        }
        Ok(())
    }

    /// Replaces the node's private key; every peer's sessions restart.
    ///
    /// # Errors
    /// A peer whose key is low order with the new private key.
    pub fn set_private_key(&mut self, key: PrivateKey, now: Instant) -> Result<(), PeerError> {
        let configs: Vec<PeerConfig> = self
            .peers
            .iter()
            .map(|(public_key, peer)| PeerConfig {
                public_key: *public_key,
                preshared_key: peer.preshared_key.clone(),
                endpoint: peer.endpoint,
                allowed_ips: self.allowed_ips.of_peer(public_key),
                persistent_keepalive: peer.persistent_keepalive,
            })
            .collect();
        *self = Node::new(
            NodeConfig {
                private_key: key,
                listen_port: self.listen_port,
                fwmark: self.fwmark,
                handshake_load_limit: self.handshake_load_limit,
            },
            now,
        );
        configs.into_iter().try_for_each(|c| self.add_peer(c))
    }

    fn update_peer_in_place(&mut self, config: PeerConfig) {
        self.allowed_ips.remove_peer(&config.public_key);
        for net in &config.allowed_ips {
            self.allowed_ips.insert(*net, config.public_key);
        }
        if let Some(peer) = self.peers.get_mut(&config.public_key) {
            peer.endpoint = config.endpoint;
        }
    }

    fn handle_initiation<'b>(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        init: &boringtun::noise::HandshakeInit<'_>,
        buf: &'b mut [u8],
        now: Instant,
    ) -> Result<Received<'b>, DropReason> {
        self.screen_handshake(from, datagram, buf, now)?;
        let half =
            parse_handshake_anon(self.private_key.secret(), &self.public_key.to_dalek(), init)
                .map_err(|_| DropReason::UnknownPeer)?;
        let key = PublicKey::from_bytes(half.peer_static_public);
        let peer = self.peers.get(&key).ok_or(DropReason::UnknownPeer)?;
        if let Some(last) = peer.last_initiation_consumed {
            if now.saturating_duration_since(last) < MIN_INITIATION_SPACING {
                return Err(DropReason::PeerRateLimited);
            }
        }
        self.decapsulate(key, from, datagram, false, buf, now)
    }

    /// The checks every handshake message passes before any Diffie-Hellman work: mac1, then
    /// under load a valid mac2 (else a cookie reply) and the per-source token bucket.
    fn screen_handshake(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        buf: &mut [u8],
        now: Instant,
    ) -> Result<(), DropReason> {
        let verdict = self
            .cookie_guard
            .verify_packet(Some(from.ip()), datagram, buf);
        // Every message with a valid mac1 counts towards load, answered with a cookie or not,
        // so the per-source limit is on whenever cookies are being demanded.
        let under_load = match verdict {
            Ok(_) | Err(TunnResult::WriteToNetwork(_)) => self.load.record(now),
            Err(_) => false,
        };
        match verdict {
            Ok(_) => {}
            Err(TunnResult::WriteToNetwork(cookie)) => {
                self.transmits.push_back(OwnedTransmit {
                    to: from,
                    datagram: cookie.to_vec(),
                });
                return Err(DropReason::SourceRateLimited);
            }
            Err(TunnResult::Err(e)) => return Err(DropReason::Noise(kind_of(&e))),
            Err(_) => return Err(DropReason::Malformed),
        }
        if under_load && !self.sources.allow(from.ip(), now) {
            return Err(DropReason::SourceRateLimited);
        }
        Ok(())
    }

    fn peer_by_index(&self, receiver_idx: u32) -> Result<PublicKey, DropReason> {
        self.by_index
            .get(&(receiver_idx >> 8))
            .copied()
            .ok_or(DropReason::UnknownIndex)
    }

    fn decapsulate<'b>(
        &mut self,
        key: PublicKey,
        from: SocketAddr,
        datagram: &[u8],
        is_data: bool,
        buf: &'b mut [u8],
        now: Instant,
    ) -> Result<Received<'b>, DropReason> {
        let peer = self.peers.get_mut(&key).ok_or(DropReason::UnknownIndex)?;
        let result = peer.tunn.decapsulate(Some(from.ip()), datagram, buf);
        let (packet, src) = match result {
            TunnResult::Err(e) => return Err(DropReason::Noise(kind_of(&e))),
            TunnResult::WriteToTunnelV4(packet, src) => (packet, IpAddr::V4(src)),
            TunnResult::WriteToTunnelV6(packet, src) => (packet, IpAddr::V6(src)),
            TunnResult::Done => {
                // Authenticated (a keepalive or a cookie reply).
                peer.rx_bytes += datagram.len() as u64;
                if is_data {
                    update_endpoint(peer, key, from, &mut self.events);
                }
                return Ok(Received::Control);
            }
            TunnResult::WriteToNetwork(reply) => {
                // A handshake message was accepted: answer it, then flush queued packets.
                peer.rx_bytes += datagram.len() as u64;
                update_endpoint(peer, key, from, &mut self.events);
                if datagram.first() == Some(&1) {
                    peer.last_initiation_consumed = Some(now);
                }
                peer.tx_bytes += reply.len() as u64;
                self.transmits.push_back(OwnedTransmit {
                    to: from,
                    datagram: reply.to_vec(),
                });
                let mut scratch = vec![0u8; 65_536 + 32];
                while let TunnResult::WriteToNetwork(queued) =
                    peer.tunn.decapsulate(None, &[], &mut scratch)
                {
                    peer.tx_bytes += queued.len() as u64;
                    self.transmits.push_back(OwnedTransmit {
                        to: from,
                        datagram: queued.to_vec(),
                    });
                }
                self.events.push_back(Event::HandshakeCompleted {
                    peer: key,
                    endpoint: from,
                });
                return Ok(Received::Control);
            }
        };
        if self.allowed_ips.lookup(src) != Some(&key) {
            return Err(DropReason::SpoofedSource);
        }
        peer.rx_bytes += datagram.len() as u64;
        update_endpoint(peer, key, from, &mut self.events);
        Ok(Received::Packet { peer: key, packet })
    }

    fn allocate_index(&mut self) -> Result<u32, PeerError> {
        for _ in 0..INDEX_SPACE {
            let candidate = self.next_index;
            self.next_index = (self.next_index + 1) % INDEX_SPACE;
            if !self.by_index.contains_key(&candidate) {
                return Ok(candidate);
            }
        }
        Err(PeerError::IndexSpaceExhausted)
    }
}

fn guards(public_key: &PublicKey, load_limit: u64) -> (Arc<RateLimiter>, Arc<RateLimiter>) {
    let dalek = public_key.to_dalek();
    (
        Arc::new(RateLimiter::new(&dalek, load_limit)),
        Arc::new(RateLimiter::new(&dalek, u64::MAX)),
    )
}

fn update_endpoint(
    peer: &mut Peer,
    key: PublicKey,
    from: SocketAddr,
    events: &mut VecDeque<Event>,
) {
    if peer.endpoint != Some(from) {
        peer.endpoint = Some(from);
        events.push_back(Event::EndpointChanged {
            peer: key,
            endpoint: from,
        });
    }
}

fn kind_of(error: &WireGuardError) -> WireGuardErrorKind {
    match error {
        WireGuardError::InvalidMac | WireGuardError::InvalidAeadTag => {
            WireGuardErrorKind::InvalidMac
        }
        WireGuardError::DuplicateCounter
        | WireGuardError::InvalidCounter
        | WireGuardError::WrongTai64nTimestamp => WireGuardErrorKind::Replay,
        WireGuardError::ConnectionExpired | WireGuardError::NoCurrentSession => {
            WireGuardErrorKind::Expired
        }
        WireGuardError::InvalidPacket
        | WireGuardError::IncorrectPacketLength
        | WireGuardError::WrongPacketType
        | WireGuardError::UnexpectedPacket
        | WireGuardError::InvalidTai64nTimestamp => WireGuardErrorKind::InvalidPacket,
        WireGuardError::DestinationBufferTooSmall
        | WireGuardError::WrongIndex
        | WireGuardError::WrongKey
        | WireGuardError::LockFailed
        | WireGuardError::UnderLoad => WireGuardErrorKind::Other,
    }
}

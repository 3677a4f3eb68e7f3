//! The edge core: WireGuard node + flow table + policy.

use crate::flows::{FlowTable, FlowTimeouts};
use crate::policy::{Action, Decision, FlowPolicy};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use wg::keys::PublicKey;
use wg::uapi::{DeviceSnapshot, SetRequest};
use wg::{DropReason, Node, NodeConfig, OwnedTransmit, PeerConfig, PeerError, Received, Transmit};
use wire::PacketSummary;

/// Flow expiry runs at most this often; a flow's lifetime is minutes, so one second is exact
/// enough and keeps the sweep off the per-packet path.
const FLOW_SWEEP: Duration = Duration::from_secs(1);

/// A peer with the name logs and policy use.
#[derive(Debug, Clone)]
pub struct EdgePeer {
    pub name: String,
    pub config: PeerConfig,
}

/// Everything the core needs to start.
pub struct EdgeConfig {
    pub node: NodeConfig,
    pub peers: Vec<EdgePeer>,
    pub policy: Box<dyn FlowPolicy + Send>,
    pub flow_timeouts: FlowTimeouts,
}

/// What became of a datagram from a peer.
#[derive(Debug, PartialEq, Eq)]
pub enum FromPeer<'b> {
    /// An allowed packet to write to the TUN device.
    Forward(&'b [u8]),
    /// Handled inside (handshake, keepalive, or a denied packet answered with a reject).
    Consumed,
}

/// Why the edge dropped a datagram or a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EdgeDrop {
    #[error(transparent)]
    WireGuard(#[from] DropReason),
    #[error("decrypted packet is not valid ip")]
    MalformedInner,
    #[error("packet towards a peer answers no allowed flow")]
    NoFlow,
}

/// Things for the driver to log, count or audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeEvent {
    /// A new flow was decided.
    FlowDecided {
        peer: String,
        flow: wire::FlowKey,
        decision: Decision,
    },
    HandshakeCompleted {
        peer: String,
        endpoint: SocketAddr,
    },
    EndpointChanged {
        peer: String,
        endpoint: SocketAddr,
    },
}

/// The sans-IO edge.
///
/// Inputs: [`Edge::handle_datagram`] (UDP from peers), [`Edge::handle_tun_packet`] (IP packets
/// from the TUN device, towards peers), [`Edge::handle_timeout`]. After each input the driver
/// drains [`Edge::poll_transmit`] (datagrams to send) and [`Edge::poll_event`], then arms one
/// timer at [`Edge::poll_timeout`]. The per-packet paths borrow the caller's buffer.
pub struct Edge {
    node: Node,
    names: BTreeMap<PublicKey, String>,
    flows: FlowTable,
    policy: Box<dyn FlowPolicy + Send>,
    transmits: VecDeque<OwnedTransmit>,
    events: VecDeque<EdgeEvent>,
    next_sweep: Instant,
}

impl Edge {
    /// # Errors
    /// A peer with an unusable key.
    pub fn new(config: EdgeConfig, now: Instant) -> Result<Self, PeerError> {
        let mut edge = Self {
            node: Node::new(config.node, now),
            names: BTreeMap::new(),
            flows: FlowTable::new(config.flow_timeouts),
            policy: config.policy,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_sweep: now + FLOW_SWEEP,
        };
        for peer in config.peers {
            edge.add_peer(peer)?;
        }
        Ok(edge)
    }

    /// Adds or replaces a peer.
    ///
    /// # Errors
    /// A low-order key or the edge's own key.
    pub fn add_peer(&mut self, peer: EdgePeer) -> Result<(), PeerError> {
        let key = peer.config.public_key;
        self.node.add_peer(peer.config)?;
        self.names.insert(key, peer.name);
        Ok(())
    }

    /// Removes a peer, its session and all its flows; open TCP flows get a reset first (sent
    /// while the session still exists), so the device's connections end at once.
    pub fn remove_peer(&mut self, key: &PublicKey, now: Instant) {
        for (flow, ack) in self.flows.remove_peer(key) {
            self.reset_at_peer(*key, &flow, ack, now);
        }
        self.node.remove_peer(key);
        self.names.remove(key);
    }

    /// Whether `key` is a peer.
    pub fn has_peer(&self, key: &PublicKey) -> bool {
        self.names.contains_key(key)
    }

    /// Decides every live allowed flow again (the policy, or who is behind an address,
    /// changed) and forgets those now denied: their next packet from the peer is decided anew,
    /// denied and answered with a reset or unreachable, and replies toward the peer are
    /// dropped at once. Returns how many were closed.
    pub fn reevaluate_flows(&mut self, now: Instant) -> usize {
        let before = self.flows.len();
        let policy = &self.policy;
        let names = &self.names;
        let mut closed = Vec::new();
        self.flows.retain(|key, flow| {
            if flow.decision.action != Action::Allow {
                return true;
            }
            let name = names
                .get(&flow.peer)
                .cloned()
                .unwrap_or_else(|| flow.peer.to_base64()[..8].to_string());
            let decision = policy.decide(&name, key);
            let keep = decision.action == Action::Allow;
            if !keep {
                closed.push((name, flow.peer, *key, flow.resettable_ack(), decision));
            }
            keep
        });
        for (name, peer, flow, ack, decision) in closed {
            if let Some(ack) = ack {
                self.reset_at_peer(peer, &flow, ack, now);
            }
            self.events.push_back(EdgeEvent::FlowDecided {
                peer: name,
                flow,
                decision,
            });
        }
        before - self.flows.len()
    }

    /// Sends `peer` a reset that ends its TCP flow `flow` (peer → destination).
    fn reset_at_peer(&mut self, peer: PublicKey, flow: &wire::FlowKey, ack: u32, now: Instant) {
        let Some(rst) = wire::tcp_reset_to_sender(flow, ack) else {
            return;
        };
        let mut buf = vec![0u8; (rst.len() + 32).max(wg::MIN_BUFFER)];
        if let Ok(Some(t)) = self.node.send_to_peer(&peer, &rst, &mut buf, now) {
            self.transmits.push_back(OwnedTransmit {
                to: t.to,
                datagram: t.datagram.to_vec(),
            });
        }
    }

    pub fn public_key(&self) -> PublicKey {
        self.node.public_key()
    }

    /// Number of live flows.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Handles a UDP datagram from `from`.
    ///
    /// # Errors
    /// An [`EdgeDrop`] to count; the datagram is gone.
    pub fn handle_datagram<'b>(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        buf: &'b mut [u8],
        now: Instant,
    ) -> Result<FromPeer<'b>, EdgeDrop> {
        let received = self.node.handle_datagram(from, datagram, buf, now);
        self.drain_node_events();
        let (peer, packet) = match received? {
            Received::Control => return Ok(FromPeer::Consumed),
            Received::Packet { peer, packet } => (peer, packet),
        };
        let summary = PacketSummary::parse(packet).map_err(|_| EdgeDrop::MalformedInner)?;
        let peer_ack = match summary.key.protocol {
            wire::Protocol::Tcp => wire::tcp_ack_of(packet),
            wire::Protocol::Udp | wire::Protocol::Icmp | wire::Protocol::Other(_) => None,
        };
        let decision = match self.flows.outbound(&peer, &summary, peer_ack, now) {
            Some(flow) => flow.decision,
            None => self.decide(peer, &summary, peer_ack, now),
        };
        match decision.action {
            Action::Allow => Ok(FromPeer::Forward(packet)),
            Action::Deny => {
                self.reject(peer, packet, &summary, now);
                Ok(FromPeer::Consumed)
            }
        }
    }

    /// Handles an IP packet read from the TUN device: a reply on an allowed flow is encrypted
    /// for the peer that opened it.
    ///
    /// # Errors
    /// [`EdgeDrop::NoFlow`] for anything that answers no allowed flow (deny by default).
    pub fn handle_tun_packet<'b>(
        &mut self,
        packet: &[u8],
        buf: &'b mut [u8],
        now: Instant,
    ) -> Result<Option<Transmit<'b>>, EdgeDrop> {
        let summary = PacketSummary::parse(packet).map_err(|_| EdgeDrop::MalformedInner)?;
        let next_seq = match summary.key.protocol {
            wire::Protocol::Tcp => wire::tcp_next_seq(packet),
            wire::Protocol::Udp | wire::Protocol::Icmp | wire::Protocol::Other(_) => None,
        };
        let flow = self
            .flows
            .inbound(&summary, next_seq, now)
            .ok_or(EdgeDrop::NoFlow)?;
        if flow.decision.action != Action::Allow {
            return Err(EdgeDrop::NoFlow);
        }
        Ok(self.node.send_to_peer(&flow.peer, packet, buf, now)?)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.node.handle_timeout(now);
        if now >= self.next_sweep {
            self.flows.expire(now);
            self.next_sweep = now + FLOW_SWEEP;
        }
    }

    pub fn poll_timeout(&self) -> Instant {
        self.node.poll_timeout().min(self.next_sweep)
    }

    pub fn poll_transmit(&mut self) -> Option<OwnedTransmit> {
        self.node
            .poll_transmit()
            .or_else(|| self.transmits.pop_front())
    }

    pub fn poll_event(&mut self) -> Option<EdgeEvent> {
        self.drain_node_events();
        self.events.pop_front()
    }

    /// What `wg show` reports.
    pub fn snapshot(&self) -> DeviceSnapshot {
        self.node.snapshot()
    }

    /// Applies a UAPI `set=1`. Peers added this way are named by their key's first
    /// 8 base64 characters; removed peers lose their flows.
    ///
    /// # Errors
    /// See [`Node::apply_uapi`].
    pub fn apply_uapi(&mut self, request: SetRequest, now: Instant) -> Result<(), PeerError> {
        let result = self.node.apply_uapi(request, now);
        let gone: Vec<PublicKey> = self
            .names
            .keys()
            .filter(|key| !self.node.contains_peer(key))
            .copied()
            .collect();
        for key in gone {
            // The session is gone already: no reset can reach the peer.
            let _open = self.flows.remove_peer(&key);
            self.names.remove(&key);
        }
        for status in self.node.peer_statuses() {
            self.names
                .entry(status.public_key)
                .or_insert_with(|| status.public_key.to_base64()[..8].to_string());
        }
        result
    }

    fn decide(
        &mut self,
        peer: PublicKey,
        summary: &PacketSummary,
        peer_ack: Option<u32>,
        now: Instant,
    ) -> Decision {
        let name = self.name_of(&peer);
        let decision = self.policy.decide(&name, &summary.key);
        self.flows.insert(peer, summary, decision, peer_ack, now);
        self.events.push_back(EdgeEvent::FlowDecided {
            peer: name,
            flow: summary.key,
            decision,
        });
        decision
    }

    fn reject(&mut self, peer: PublicKey, packet: &[u8], summary: &PacketSummary, now: Instant) {
        let answer = match summary.key.protocol {
            wire::Protocol::Tcp => wire::tcp_reset_for(packet),
            wire::Protocol::Udp | wire::Protocol::Icmp | wire::Protocol::Other(_) => {
                wire::icmp_unreachable_for(packet)
            }
        };
        let Some(answer) = answer else { return };
        let mut buf = vec![0u8; (answer.len() + 32).max(wg::MIN_BUFFER)];
        if let Ok(Some(t)) = self.node.send_to_peer(&peer, &answer, &mut buf, now) {
            self.transmits.push_back(OwnedTransmit {
                to: t.to,
                datagram: t.datagram.to_vec(),
            });
        }
    }

    fn drain_node_events(&mut self) {
        while let Some(event) = self.node.poll_event() {
            let mapped = match event {
                wg::Event::HandshakeCompleted { peer, endpoint } => EdgeEvent::HandshakeCompleted {
                    peer: self.name_of(&peer),
                    endpoint,
                },
                wg::Event::EndpointChanged { peer, endpoint } => EdgeEvent::EndpointChanged {
                    peer: self.name_of(&peer),
                    endpoint,
                },
            };
            self.events.push_back(mapped);
        }
    }

    fn name_of(&self, peer: &PublicKey) -> String {
        self.names
            .get(peer)
            .cloned()
            .unwrap_or_else(|| peer.to_base64()[..8].to_string())
    }
}

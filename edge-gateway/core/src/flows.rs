//! The flow table: one entry per (peer, 5-tuple) with the policy decision made for it.

use crate::policy::Decision;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wg::keys::PublicKey;
use wire::{FlowKey, PacketSummary, Protocol};

/// Idle timeouts after which a flow is forgotten (and re-decided on its next packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTimeouts {
    pub tcp: Duration,
    /// After a FIN or RST was seen.
    pub tcp_closing: Duration,
    pub udp: Duration,
    pub other: Duration,
}

impl Default for FlowTimeouts {
    fn default() -> Self {
        // Close to Linux conntrack's: established TCP is kept long, closing TCP and datagram
        // flows briefly (nf_conntrack_udp_timeout_stream = 120 s, icmp = 30 s).
        Self {
            tcp: Duration::from_secs(2 * 60 * 60),
            tcp_closing: Duration::from_secs(10),
            udp: Duration::from_secs(120),
            other: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Flow {
    pub(crate) peer: PublicKey,
    pub(crate) decision: Decision,
    /// For TCP, the last acknowledgment number the peer sent: a reset with this sequence
    /// number closes the flow at the peer when the edge ends it.
    pub(crate) peer_ack: Option<u32>,
    /// For TCP, the sequence number after the last segment sent to the peer: its `RCV.NXT`,
    /// the only reset sequence a stack with RFC 5961 checks accepts at once.
    pub(crate) peer_next: Option<u32>,
    last_seen: Instant,
    closing: bool,
}

/// Flows keyed by the direction peer → destination.
#[derive(Debug, Default)]
pub(crate) struct FlowTable {
    flows: BTreeMap<FlowKey, Flow>,
    timeouts: FlowTimeouts,
}

impl FlowTable {
    pub(crate) fn new(timeouts: FlowTimeouts) -> Self {
        Self {
            flows: BTreeMap::new(),
            timeouts,
        }
    }

    /// The flow of a packet from a peer, refreshed, if one exists for that same peer.
    pub(crate) fn outbound(
        &mut self,
        peer: &PublicKey,
        summary: &PacketSummary,
        peer_ack: Option<u32>,
        now: Instant,
    ) -> Option<Flow> {
        let flow = self.flows.get_mut(&summary.key)?;
        if flow.peer != *peer {
            return None;
        }
        touch(flow, summary, now);
        if peer_ack.is_some() {
            flow.peer_ack = peer_ack;
        }
        Some(*flow)
    }

    /// The flow a packet towards a peer answers, refreshed; `next_seq` is the sequence number
    /// after that packet, for TCP.
    pub(crate) fn inbound(
        &mut self,
        summary: &PacketSummary,
        next_seq: Option<u32>,
        now: Instant,
    ) -> Option<Flow> {
        let flow = self.flows.get_mut(&summary.key.reversed())?;
        touch(flow, summary, now);
        if next_seq.is_some() {
            flow.peer_next = next_seq;
        }
        Some(*flow)
    }

    pub(crate) fn insert(
        &mut self,
        peer: PublicKey,
        summary: &PacketSummary,
        decision: Decision,
        peer_ack: Option<u32>,
        now: Instant,
    ) {
        let mut flow = Flow {
            peer,
            decision,
            peer_ack,
            peer_next: None,
            last_seen: now,
            closing: false,
        };
        touch(&mut flow, summary, now);
        self.flows.insert(summary.key, flow);
    }

    /// Removes every flow of `peer`; returns the TCP ones still open (key and the peer's last
    /// acknowledgment number), to be reset.
    pub(crate) fn remove_peer(&mut self, peer: &PublicKey) -> Vec<(FlowKey, u32)> {
        let mut open = Vec::new();
        self.flows.retain(|key, flow| {
            if flow.peer != *peer {
                return true;
            }
            if let Some(ack) = flow.resettable_ack() {
                open.push((*key, ack));
            }
            false
        });
        open
    }

    /// Keeps the flows `keep` says yes to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&FlowKey, &Flow) -> bool) {
        self.flows.retain(|key, flow| keep(key, flow));
    }

    /// Forgets idle flows.
    pub(crate) fn expire(&mut self, now: Instant) {
        let timeouts = self.timeouts;
        self.flows.retain(|key, flow| {
            let limit = match (key.protocol, flow.closing) {
                (Protocol::Tcp, true) => timeouts.tcp_closing,
                (Protocol::Tcp, false) => timeouts.tcp,
                (Protocol::Udp, _) => timeouts.udp,
                (Protocol::Icmp | Protocol::Other(_), _) => timeouts.other,
            };
            now.saturating_duration_since(flow.last_seen) < limit
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.flows.len()
    }
}

impl Flow {
    /// The sequence number that resets this flow at its peer, for an open allowed TCP flow.
    pub(crate) fn resettable_ack(&self) -> Option<u32> {
        self.peer_next
            .or(self.peer_ack)
            .filter(|_| !self.closing && self.decision.action == crate::Action::Allow)
    }
}

fn touch(flow: &mut Flow, summary: &PacketSummary, now: Instant) {
    flow.last_seen = now;
    if summary.tcp_flags.is_some_and(|f| f.fin || f.rst) {
        flow.closing = true;
    }
}

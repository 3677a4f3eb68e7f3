//! An `edge_core::Edge` (one client peer, a `RulePolicy`) and a real client `wg::Node`, driven
//! by a sequence of operations read from the input: packets the client tunnels to the edge,
//! raw datagrams, packets from the TUN side (arbitrary ones and replies to forwarded ones),
//! clock jumps and peer removal. Nothing may panic, and:
//!
//! - a packet is forwarded only if it parses and the policy allows its flow;
//! - every decision the edge reports is the policy's;
//! - a packet from the TUN side is sent to the peer only if it answers a flow that was
//!   forwarded since the peer was last (re)added (deny by default).
//!
//! Operations (first byte modulo 8):
//! 0 client sends `bytes`           1 deliver to the edge: flip offset `u16`, xor `u8`
//! 2 deliver to the client: same    3 raw datagram: `socket_addr`, `bytes`, to the edge
//! 4 TUN packet `bytes`             5 TUN reply to the last forwarded packet
//! 6 advance the clock by `u16` ms, run both timers
//! 7 `u8`: remove the client (even: `remove_peer`, odd: UAPI `remove=true`), or add it back

#![no_main]

use edge_core::{Action, Edge, EdgeEvent, FlowPolicy, FromPeer, RulePolicy};
use fuzz::{client_edge_peer, client_private_key, edge_config, edge_on_client, node_config};
use fuzz::{flip, policy, push, reply_to, Cursor, BUF, CLIENT_ADDR, EDGE_ADDR, MAX_STEPS};
use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;
use wg::uapi::{PeerUpdate, SetRequest};
use wg::Node;
use wire::{FlowKey, PacketSummary};

struct World {
    edge: Edge,
    client: Node,
    policy: RulePolicy,
    to_edge: VecDeque<Vec<u8>>,
    to_client: VecDeque<Vec<u8>>,
    /// Flows forwarded since the client was last added.
    forwarded: BTreeSet<FlowKey>,
    last_forwarded: Option<Vec<u8>>,
    buf: Vec<u8>,
    now: Instant,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor::new(data);
    let now = Instant::now();
    let mut client = Node::new(node_config(client_private_key()), now);
    client.add_peer(edge_on_client()).expect("valid peer");
    let mut w = World {
        edge: Edge::new(edge_config(), now).expect("valid config"),
        client,
        policy: policy(),
        to_edge: VecDeque::new(),
        to_client: VecDeque::new(),
        forwarded: BTreeSet::new(),
        last_forwarded: None,
        buf: vec![0u8; BUF],
        now,
    };
    let client_key = w.client.public_key();

    for _ in 0..MAX_STEPS {
        if input.is_empty() {
            break;
        }
        match input.u8() % 8 {
            0 => {
                let packet = input.bytes();
                if let Ok(Some(t)) = w.client.send(packet, &mut w.buf, w.now) {
                    push(&mut w.to_edge, t.datagram.to_vec());
                }
            }
            1 => {
                let (at, xor) = (input.u16(), input.u8());
                if let Some(datagram) = w.to_edge.pop_front() {
                    w.datagram(CLIENT_ADDR, &flip(datagram, at, xor));
                }
            }
            2 => {
                let (at, xor) = (input.u16(), input.u8());
                if let Some(datagram) = w.to_client.pop_front() {
                    let datagram = flip(datagram, at, xor);
                    let _ = w
                        .client
                        .handle_datagram(EDGE_ADDR, &datagram, &mut w.buf, w.now);
                }
            }
            3 => {
                let from = input.socket_addr();
                let datagram = input.bytes().to_vec();
                w.datagram(from, &datagram);
            }
            4 => {
                let packet = input.bytes().to_vec();
                w.tun_packet(&packet);
            }
            5 => {
                if let Some(reply) = w.last_forwarded.as_deref().and_then(reply_to) {
                    w.tun_packet(&reply);
                }
            }
            6 => {
                w.now += input.millis();
                w.edge.handle_timeout(w.now);
                w.client.handle_timeout(w.now);
                // The policy is fixed, so re-deciding live flows closes none.
                assert_eq!(w.edge.reevaluate_flows(w.now), 0);
                assert!(
                    w.edge.poll_timeout() > w.now,
                    "timer re-armed in the future"
                );
            }
            _ => {
                let how = input.u8();
                if w.edge.snapshot().peers.is_empty() {
                    w.edge.add_peer(client_edge_peer()).expect("valid peer");
                } else {
                    if how.is_multiple_of(2) {
                        w.edge.remove_peer(&client_key, w.now);
                    } else {
                        let mut update = PeerUpdate::new(client_key);
                        update.remove = true;
                        let request = SetRequest {
                            peers: vec![update],
                            ..SetRequest::default()
                        };
                        w.edge.apply_uapi(request, w.now).expect("removal succeeds");
                    }
                    assert_eq!(w.edge.flow_count(), 0, "a removed peer's flows are gone");
                    w.forwarded.clear();
                }
            }
        }
        w.drain();
    }
});

impl World {
    fn datagram(&mut self, from: SocketAddr, datagram: &[u8]) {
        let result = self
            .edge
            .handle_datagram(from, datagram, &mut self.buf, self.now);
        if let Ok(FromPeer::Forward(packet)) = result {
            let summary = PacketSummary::parse(packet).expect("forwarded packets parse");
            let decision = self.policy.decide(fuzz::CLIENT_NAME, &summary.key);
            assert_eq!(decision.action, Action::Allow, "forwarded a denied flow");
            self.forwarded.insert(summary.key);
            self.last_forwarded = Some(packet.to_vec());
        }
    }

    fn tun_packet(&mut self, packet: &[u8]) {
        let result = self.edge.handle_tun_packet(packet, &mut self.buf, self.now);
        let Ok(sent) = result else { return };
        let summary = PacketSummary::parse(packet).expect("sent packets parse");
        assert!(
            self.forwarded.contains(&summary.key.reversed()),
            "sent a packet that answers no forwarded flow: {}",
            summary.key
        );
        if let Some(t) = sent {
            push(&mut self.to_client, t.datagram.to_vec());
        }
    }

    fn drain(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            push(&mut self.to_edge, t.datagram);
        }
        while let Some(t) = self.edge.poll_transmit() {
            push(&mut self.to_client, t.datagram);
        }
        while self.client.poll_event().is_some() {}
        while let Some(event) = self.edge.poll_event() {
            if let EdgeEvent::FlowDecided {
                peer,
                flow,
                decision,
            } = event
            {
                assert_eq!(
                    decision,
                    self.policy.decide(&peer, &flow),
                    "decision is the policy's"
                );
            }
        }
    }
}

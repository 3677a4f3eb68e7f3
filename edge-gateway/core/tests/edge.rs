//! Scenarios for the edge core: a client `wg::Node` and an `Edge` wired back to back in memory,
//! grouped by the life of a flow: decided, forwarded or rejected, answered, expired, removed.

#![allow(clippy::unwrap_used)]
// boringtun reads the real clock, so the scenarios start from `Instant::now()` and move the
// edge's clock explicitly from there.
#![allow(clippy::disallowed_methods)]

use edge_core::{
    Action, Decision, Edge, EdgeConfig, EdgeDrop, EdgeEvent, EdgePeer, FlowPolicy, FlowTimeouts,
    FromPeer, PortRange, Rule, RulePolicy,
};
use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::{Icmpv4Type, NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wg::keys::{PrivateKey, PublicKey};
use wg::uapi::{parse_request, Request};
use wg::{Node, NodeConfig, PeerConfig, Received};
use wire::{FlowKey, PacketSummary};

const CLIENT_ADDR: &str = "198.51.100.2:40000";
const EDGE_ADDR: &str = "203.0.113.1:51820";
const CLIENT_IP: [u8; 4] = [100, 64, 0, 2];
const WEB: [u8; 4] = [10, 0, 0, 9];
const DNS: [u8; 4] = [10, 0, 0, 53];
const BUF: usize = 2048;

/// What became of a datagram at the edge, owned so the test can keep it.
#[derive(Debug, PartialEq, Eq)]
enum AtEdge {
    Forward(Vec<u8>),
    Consumed,
}

struct Harness {
    client: Node,
    edge: Edge,
    client_key: PublicKey,
    client_addr: SocketAddr,
    edge_addr: SocketAddr,
    t0: Instant,
}

/// `alice` may reach the web server on TCP 80 and the resolver on UDP 53; nothing else.
fn policy() -> RulePolicy {
    let allow = |destination: &str, protocol, port| Rule {
        action: Action::Allow,
        peers: vec!["alice".into()],
        destinations: vec![destination.parse().unwrap()],
        protocol: Some(protocol),
        ports: PortRange::parse(port),
    };
    RulePolicy {
        rules: vec![
            allow("10.0.0.9/32", wire::Protocol::Tcp, "80"),
            allow("10.0.0.53/32", wire::Protocol::Udp, "53"),
        ],
    }
}

fn timeouts() -> FlowTimeouts {
    FlowTimeouts {
        tcp: Duration::from_secs(10),
        tcp_closing: Duration::from_secs(2),
        udp: Duration::from_secs(5),
        other: Duration::from_secs(5),
    }
}

impl Harness {
    fn new() -> Self {
        Self::with_policy(Box::new(policy()))
    }

    fn with_policy(flow_policy: Box<dyn FlowPolicy + Send>) -> Self {
        let t0 = Instant::now();
        let client_addr: SocketAddr = CLIENT_ADDR.parse().unwrap();
        let edge_addr: SocketAddr = EDGE_ADDR.parse().unwrap();
        let client_private = PrivateKey::from_bytes([1; 32]);
        let edge_private = PrivateKey::from_bytes([2; 32]);
        let client_key = client_private.public_key();
        let node_config = |private_key| NodeConfig {
            private_key,
            listen_port: 51820,
            fwmark: None,
            handshake_load_limit: wg::DEFAULT_HANDSHAKE_LOAD_LIMIT,
        };
        let mut client = Node::new(node_config(client_private), t0);
        client
            .add_peer(PeerConfig {
                public_key: edge_private.public_key(),
                preshared_key: None,
                endpoint: Some(edge_addr),
                allowed_ips: vec!["0.0.0.0/0".parse().unwrap()],
                persistent_keepalive: None,
            })
            .unwrap();
        let edge = Edge::new(
            EdgeConfig {
                node: node_config(edge_private),
                peers: vec![EdgePeer {
                    name: "alice".into(),
                    config: PeerConfig {
                        public_key: client_key,
                        preshared_key: None,
                        endpoint: None,
                        allowed_ips: vec!["100.64.0.2/32".parse().unwrap()],
                        persistent_keepalive: None,
                    },
                }],
                policy: flow_policy,
                flow_timeouts: timeouts(),
            },
            t0,
        )
        .unwrap();
        Self {
            client,
            edge,
            client_key,
            client_addr,
            edge_addr,
            t0,
        }
    }

    /// Completes the handshake, carried by `first` (queued on the client until then); returns
    /// what the edge forwarded.
    fn connect(&mut self, first: &[u8]) -> Vec<Vec<u8>> {
        let mut buf = vec![0u8; BUF];
        let sent = self.client.send(first, &mut buf, self.t0).unwrap();
        assert_eq!(sent, None, "the first packet waits for the handshake");
        let (forwarded, _) = self.pump(self.t0);
        forwarded
    }

    /// Delivers queued datagrams both ways until both sides are quiet; returns the packets the
    /// edge forwarded and the packets the client decrypted.
    fn pump(&mut self, now: Instant) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let mut forwarded = Vec::new();
        let mut at_client = Vec::new();
        for _ in 0..100 {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit() {
                moved = true;
                if let Ok(AtEdge::Forward(packet)) = self.edge_receives(&t.datagram, now) {
                    forwarded.push(packet);
                }
            }
            while let Some(t) = self.edge.poll_transmit() {
                moved = true;
                assert_eq!(t.to, self.client_addr);
                at_client.extend(self.client_receives(&t.datagram, now));
            }
            if !moved {
                return (forwarded, at_client);
            }
        }
        panic!("datagrams still moving after 100 rounds");
    }

    /// Encrypts `packet` on the client (session established) and hands it to the edge.
    fn client_sends(&mut self, packet: &[u8], now: Instant) -> Result<AtEdge, EdgeDrop> {
        let mut buf = vec![0u8; BUF];
        let t = self.client.send(packet, &mut buf, now).unwrap().unwrap();
        let datagram = t.datagram.to_vec();
        self.edge_receives(&datagram, now)
    }

    fn edge_receives(&mut self, datagram: &[u8], now: Instant) -> Result<AtEdge, EdgeDrop> {
        let mut buf = vec![0u8; BUF];
        match self
            .edge
            .handle_datagram(self.client_addr, datagram, &mut buf, now)?
        {
            FromPeer::Forward(packet) => Ok(AtEdge::Forward(packet.to_vec())),
            FromPeer::Consumed => Ok(AtEdge::Consumed),
        }
    }

    /// Hands `packet` to the edge as if read from the TUN device; returns what the client
    /// decrypted from the edge's answer.
    fn tun_sends(&mut self, packet: &[u8], now: Instant) -> Result<Vec<u8>, EdgeDrop> {
        let mut buf = vec![0u8; BUF];
        let t = self
            .edge
            .handle_tun_packet(packet, &mut buf, now)?
            .expect("session established: sent at once");
        assert_eq!(t.to, self.client_addr);
        let datagram = t.datagram.to_vec();
        Ok(self
            .client_receives(&datagram, now)
            .expect("client decrypts"))
    }

    /// The one datagram the edge queued for the client (a reject), decrypted.
    fn reject_at_client(&mut self, now: Instant) -> Vec<u8> {
        let t = self.edge.poll_transmit().expect("the edge answered");
        assert_eq!(t.to, self.client_addr);
        assert_eq!(self.edge.poll_transmit(), None, "one answer per packet");
        self.client_receives(&t.datagram, now)
            .expect("the answer decrypts to a packet")
    }

    fn client_receives(&mut self, datagram: &[u8], now: Instant) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; BUF];
        match self
            .client
            .handle_datagram(self.edge_addr, datagram, &mut buf, now)
        {
            Ok(Received::Packet { packet, .. }) => Some(packet.to_vec()),
            Ok(Received::Control) => None,
            Err(e) => panic!("client dropped the edge's datagram: {e}"),
        }
    }

    /// Drains the edge's events, keeping the flow decisions.
    fn decisions(&mut self) -> Vec<(String, FlowKey, Decision)> {
        std::iter::from_fn(|| self.edge.poll_event())
            .filter_map(|event| match event {
                EdgeEvent::FlowDecided {
                    peer,
                    flow,
                    decision,
                } => Some((peer, flow, decision)),
                EdgeEvent::HandshakeCompleted { .. } | EdgeEvent::EndpointChanged { .. } => None,
            })
            .collect()
    }

    /// A handshake carried by an allowed DNS query; events drained.
    fn established() -> Self {
        let mut h = Harness::new();
        let query = udp(CLIENT_IP, 5353, DNS, 53, b"query");
        assert_eq!(h.connect(&query), vec![query]);
        h.decisions();
        h
    }
}

fn tcp(src: [u8; 4], src_port: u16, dst: [u8; 4], dst_port: u16, flags: &str) -> Vec<u8> {
    let mut builder = PacketBuilder::ipv4(src, dst, 64).tcp(src_port, dst_port, 1000, 64240);
    for flag in flags.chars() {
        builder = match flag {
            'S' => builder.syn(),
            'A' => builder.ack(5001),
            'F' => builder.fin(),
            other => panic!("unknown flag {other}"),
        };
    }
    let mut out = Vec::new();
    builder.write(&mut out, &[]).unwrap();
    out
}

fn udp(src: [u8; 4], src_port: u16, dst: [u8; 4], dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(src_port, dst_port)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn ipv4_addresses(packet: &[u8]) -> ([u8; 4], [u8; 4]) {
    match PacketHeaders::from_ip_slice(packet).unwrap().net {
        Some(NetHeaders::Ipv4(ip, _)) => (ip.source, ip.destination),
        other => panic!("expected ipv4, got {other:?}"),
    }
}

fn key_of(packet: &[u8]) -> FlowKey {
    PacketSummary::parse(packet).unwrap().key
}

// Forwarding and replies.

#[test]
fn allowed_tcp_flow_is_forwarded_and_its_reply_reaches_the_client() {
    let mut h = Harness::new();
    let syn = tcp(CLIENT_IP, 40000, WEB, 80, "S");
    assert_eq!(h.connect(&syn), vec![syn.clone()], "the exact packet");
    let ack = tcp(CLIENT_IP, 40000, WEB, 80, "A");
    assert_eq!(h.client_sends(&ack, h.t0), Ok(AtEdge::Forward(ack)));

    let syn_ack = tcp(WEB, 80, CLIENT_IP, 40000, "SA");
    assert_eq!(h.tun_sends(&syn_ack, h.t0), Ok(syn_ack));
    assert_eq!(h.edge.poll_transmit(), None, "nothing besides the reply");
}

/// A policy the test can swap while flows are live (as the edge's identity policy changes).
struct Switchable(Arc<Mutex<RulePolicy>>);

impl FlowPolicy for Switchable {
    fn decide(&self, peer: &str, flow: &FlowKey) -> Decision {
        self.0.lock().unwrap().decide(peer, flow)
    }
}

#[test]
fn flows_no_longer_allowed_are_closed_when_reevaluated() {
    let current = Arc::new(Mutex::new(policy()));
    let mut h = Harness::with_policy(Box::new(Switchable(current.clone())));
    let syn = tcp(CLIENT_IP, 40000, WEB, 80, "S");
    assert_eq!(h.connect(&syn), vec![syn.clone()]);
    let ack = tcp(CLIENT_IP, 40000, WEB, 80, "A");
    assert_eq!(h.client_sends(&ack, h.t0), Ok(AtEdge::Forward(ack)));
    h.decisions();
    assert_eq!(h.edge.reevaluate_flows(h.t0), 0, "nothing changed");
    assert_eq!(h.edge.poll_transmit(), None);

    // The web server is no longer allowed: the live flow is closed, and the client is told.
    current.lock().unwrap().rules.remove(0);
    assert_eq!(h.edge.reevaluate_flows(h.t0), 1);
    let decisions = h.decisions();
    assert_eq!(decisions.len(), 1, "the closing is reported: {decisions:?}");
    assert_eq!(decisions[0].2.action, Action::Deny);
    let rst = h.reject_at_client(h.t0);
    assert_eq!(ipv4_addresses(&rst), (WEB, CLIENT_IP));
    let Some(TransportHeader::Tcp(header)) = PacketHeaders::from_ip_slice(&rst).unwrap().transport
    else {
        panic!("a reset is tcp");
    };
    assert!(header.rst, "a reset");
    assert_eq!(
        header.sequence_number, 5001,
        "in the client's window: what it acknowledged"
    );
    let mut buf = vec![0u8; BUF];
    let reply = tcp(WEB, 80, CLIENT_IP, 40000, "A");
    assert_eq!(
        h.edge.handle_tun_packet(&reply, &mut buf, h.t0),
        Err(EdgeDrop::NoFlow),
        "replies stop at once"
    );
    let more = tcp(CLIENT_IP, 40000, WEB, 80, "A");
    assert_eq!(
        h.client_sends(&more, h.t0),
        Ok(AtEdge::Consumed),
        "and the client's next packet is refused"
    );
    let rst = h.reject_at_client(h.t0);
    assert_eq!(ipv4_addresses(&rst), (WEB, CLIENT_IP));
}

#[test]
fn tun_packet_that_answers_no_flow_is_dropped() {
    let mut h = Harness::established();
    let unsolicited = tcp(WEB, 80, CLIENT_IP, 40000, "S");
    let mut buf = vec![0u8; BUF];
    assert_eq!(
        h.edge.handle_tun_packet(&unsolicited, &mut buf, h.t0),
        Err(EdgeDrop::NoFlow)
    );
    // An answer from the right host to another of the client's ports opens nothing either.
    let other_port = udp(DNS, 53, CLIENT_IP, 5354, b"answer");
    assert_eq!(
        h.edge.handle_tun_packet(&other_port, &mut buf, h.t0),
        Err(EdgeDrop::NoFlow)
    );
    assert_eq!(h.edge.poll_transmit(), None);
}

#[test]
fn tun_packet_that_answers_a_denied_flow_is_dropped() {
    let mut h = Harness::established();
    let ssh = tcp(CLIENT_IP, 40001, WEB, 22, "S");
    assert_eq!(h.client_sends(&ssh, h.t0), Ok(AtEdge::Consumed));
    h.reject_at_client(h.t0);

    let mut buf = vec![0u8; BUF];
    let answer = tcp(WEB, 22, CLIENT_IP, 40001, "SA");
    assert_eq!(
        h.edge.handle_tun_packet(&answer, &mut buf, h.t0),
        Err(EdgeDrop::NoFlow)
    );
}

// Rejects.

#[test]
fn denied_tcp_syn_is_answered_with_an_encrypted_reset() {
    let mut h = Harness::established();
    let ssh = tcp(CLIENT_IP, 40001, WEB, 22, "S");
    assert_eq!(h.client_sends(&ssh, h.t0), Ok(AtEdge::Consumed));

    let rst = h.reject_at_client(h.t0);
    assert_eq!(ipv4_addresses(&rst), (WEB, CLIENT_IP));
    let Some(TransportHeader::Tcp(header)) = PacketHeaders::from_ip_slice(&rst).unwrap().transport
    else {
        panic!("a reset is tcp");
    };
    assert!(header.rst && header.ack && !header.syn);
    assert_eq!((header.source_port, header.destination_port), (22, 40001));
    assert_eq!(header.acknowledgment_number, 1001, "acknowledges the SYN");
}

#[test]
fn denied_udp_is_answered_with_icmp_admin_prohibited() {
    let mut h = Harness::established();
    let datagram = udp(CLIENT_IP, 5000, WEB, 5000, b"knock");
    assert_eq!(h.client_sends(&datagram, h.t0), Ok(AtEdge::Consumed));

    let icmp = h.reject_at_client(h.t0);
    assert_eq!(ipv4_addresses(&icmp), (WEB, CLIENT_IP));
    let Some(TransportHeader::Icmpv4(header)) =
        PacketHeaders::from_ip_slice(&icmp).unwrap().transport
    else {
        panic!("an unreachable is icmp");
    };
    assert_eq!(
        header.icmp_type,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FilterProhibited)
    );
    assert!(icmp.ends_with(&datagram), "quotes the denied packet");
}

// Decisions.

#[test]
fn a_flow_is_decided_once() {
    let mut h = Harness::established();
    let web = tcp(CLIENT_IP, 40000, WEB, 80, "S");
    for _ in 0..3 {
        assert_eq!(h.client_sends(&web, h.t0), Ok(AtEdge::Forward(web.clone())));
    }
    let ssh = tcp(CLIENT_IP, 40001, WEB, 22, "S");
    for _ in 0..3 {
        assert_eq!(h.client_sends(&ssh, h.t0), Ok(AtEdge::Consumed));
        h.reject_at_client(h.t0);
    }

    let allow = Decision {
        action: Action::Allow,
        rule: Some(0),
    };
    let deny = Decision {
        action: Action::Deny,
        rule: None,
    };
    assert_eq!(
        h.decisions(),
        vec![
            ("alice".into(), key_of(&web), allow),
            ("alice".into(), key_of(&ssh), deny),
        ]
    );
}

// Expiry.

#[test]
fn idle_flow_expires_and_a_later_reply_is_dropped() {
    let mut h = Harness::established();
    let syn = tcp(CLIENT_IP, 40000, WEB, 80, "S");
    assert_eq!(h.client_sends(&syn, h.t0), Ok(AtEdge::Forward(syn.clone())));
    assert_eq!(h.edge.flow_count(), 2, "the DNS flow and the web flow");

    h.edge.handle_timeout(h.t0 + Duration::from_secs(9));
    assert_eq!(h.edge.flow_count(), 1, "the UDP flow expired after 5 s");
    h.edge.handle_timeout(h.t0 + Duration::from_secs(11));
    assert_eq!(h.edge.flow_count(), 0, "the TCP flow expired after 10 s");

    let mut buf = vec![0u8; BUF];
    let late = tcp(WEB, 80, CLIENT_IP, 40000, "SA");
    assert_eq!(
        h.edge
            .handle_tun_packet(&late, &mut buf, h.t0 + Duration::from_secs(11)),
        Err(EdgeDrop::NoFlow)
    );
}

#[test]
fn traffic_keeps_a_flow_alive() {
    let mut h = Harness::established();
    let syn = tcp(CLIENT_IP, 40000, WEB, 80, "S");
    assert_eq!(h.client_sends(&syn, h.t0), Ok(AtEdge::Forward(syn)));
    let t8 = h.t0 + Duration::from_secs(8);
    let syn_ack = tcp(WEB, 80, CLIENT_IP, 40000, "SA");
    assert_eq!(h.tun_sends(&syn_ack, t8), Ok(syn_ack.clone()));

    let t15 = h.t0 + Duration::from_secs(15);
    h.edge.handle_timeout(t15);
    assert_eq!(h.tun_sends(&syn_ack, t15), Ok(syn_ack), "idle 7 s of 10");
}

#[test]
fn closing_tcp_flow_expires_after_the_short_timeout() {
    let mut h = Harness::established();
    let syn = tcp(CLIENT_IP, 40000, WEB, 80, "S");
    assert_eq!(h.client_sends(&syn, h.t0), Ok(AtEdge::Forward(syn)));
    let fin = tcp(CLIENT_IP, 40000, WEB, 80, "FA");
    assert_eq!(h.client_sends(&fin, h.t0), Ok(AtEdge::Forward(fin)));

    let t3 = h.t0 + Duration::from_secs(3);
    h.edge.handle_timeout(t3);
    let mut buf = vec![0u8; BUF];
    let fin_ack = tcp(WEB, 80, CLIENT_IP, 40000, "FA");
    assert_eq!(
        h.edge.handle_tun_packet(&fin_ack, &mut buf, t3),
        Err(EdgeDrop::NoFlow),
        "2 s after a FIN, not 10"
    );
}

#[test]
fn an_expired_flow_is_decided_again() {
    let mut h = Harness::established();
    let syn = tcp(CLIENT_IP, 40000, WEB, 80, "S");
    assert_eq!(h.client_sends(&syn, h.t0), Ok(AtEdge::Forward(syn.clone())));
    let t11 = h.t0 + Duration::from_secs(11);
    h.edge.handle_timeout(t11);
    assert_eq!(h.client_sends(&syn, t11), Ok(AtEdge::Forward(syn.clone())));

    let keys: Vec<FlowKey> = h.decisions().into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(keys, vec![key_of(&syn), key_of(&syn)]);
}

// Peer removal.

#[test]
fn a_removed_peers_flows_are_gone() {
    let mut h = Harness::established();
    let syn = tcp(CLIENT_IP, 40000, WEB, 80, "S");
    assert_eq!(h.client_sends(&syn, h.t0), Ok(AtEdge::Forward(syn)));

    let client_key = h.client_key;
    h.edge.remove_peer(&client_key, h.t0);
    assert_eq!(h.edge.flow_count(), 0);
    assert_eq!(
        h.edge.poll_transmit(),
        None,
        "a bare SYN's flow has nothing to reset"
    );
    let mut buf = vec![0u8; BUF];
    let syn_ack = tcp(WEB, 80, CLIENT_IP, 40000, "SA");
    // With the flow left behind, the edge would look for the peer and fail with NoRoute.
    assert_eq!(
        h.edge.handle_tun_packet(&syn_ack, &mut buf, h.t0),
        Err(EdgeDrop::NoFlow)
    );
}

#[test]
fn a_removed_peers_open_tcp_flows_are_reset_before_its_session_goes() {
    let mut h = Harness::established();
    let syn = tcp(CLIENT_IP, 40000, WEB, 80, "S");
    assert_eq!(h.client_sends(&syn, h.t0), Ok(AtEdge::Forward(syn)));
    let ack = tcp(CLIENT_IP, 40000, WEB, 80, "A");
    assert_eq!(h.client_sends(&ack, h.t0), Ok(AtEdge::Forward(ack)));
    let client_key = h.client_key;
    h.edge.remove_peer(&client_key, h.t0);
    let rst = h.reject_at_client(h.t0);
    assert_eq!(ipv4_addresses(&rst), (WEB, CLIENT_IP));
    assert_eq!(h.edge.flow_count(), 0);
}

#[test]
fn uapi_removal_of_a_peer_drops_its_flows() {
    let mut h = Harness::established();
    let syn = tcp(CLIENT_IP, 40000, WEB, 80, "S");
    assert_eq!(h.client_sends(&syn, h.t0), Ok(AtEdge::Forward(syn)));

    let text = format!("set=1\npublic_key={}\nremove=true\n", h.client_key.to_hex());
    let Ok(Request::Set(request)) = parse_request(&text) else {
        panic!("a valid set request");
    };
    h.edge.apply_uapi(request, h.t0).unwrap();

    assert!(h.edge.snapshot().peers.is_empty());
    assert_eq!(h.edge.flow_count(), 0);
    let mut buf = vec![0u8; BUF];
    let syn_ack = tcp(WEB, 80, CLIENT_IP, 40000, "SA");
    assert_eq!(
        h.edge.handle_tun_packet(&syn_ack, &mut buf, h.t0),
        Err(EdgeDrop::NoFlow)
    );
}

#[test]
fn uapi_change_to_another_setting_keeps_the_flows() {
    let mut h = Harness::established();
    let syn = tcp(CLIENT_IP, 40000, WEB, 80, "S");
    assert_eq!(h.client_sends(&syn, h.t0), Ok(AtEdge::Forward(syn)));

    let text = format!(
        "set=1\nlisten_port=51821\npublic_key={}\nupdate_only=true\nallowed_ip=100.64.0.3/32\n",
        h.client_key.to_hex()
    );
    let Ok(Request::Set(request)) = parse_request(&text) else {
        panic!("a valid set request");
    };
    h.edge.apply_uapi(request, h.t0).unwrap();

    assert_eq!(h.edge.flow_count(), 2);
    let syn_ack = tcp(WEB, 80, CLIENT_IP, 40000, "SA");
    assert_eq!(h.tun_sends(&syn_ack, h.t0), Ok(syn_ack));
}

//! Scenarios for the sans-IO node: two nodes wired back to back in memory.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // boringtun reads the real clock: tests pass it `Instant::now()`.

use etherparse::PacketBuilder;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use wg::keys::{PrivateKey, PublicKey};
use wg::{DropReason, Event, Node, NodeConfig, PeerConfig, Received};

const CLIENT_ADDR: &str = "198.51.100.2:40000";
const EDGE_ADDR: &str = "203.0.113.1:51820";

struct Pair {
    client: Node,
    edge: Node,
    client_key: PublicKey,
    edge_key: PublicKey,
    client_addr: SocketAddr,
    edge_addr: SocketAddr,
}

fn node(seed: u8, now: Instant, load_limit: u64) -> Node {
    Node::new(
        NodeConfig {
            private_key: PrivateKey::from_bytes([seed; 32]),
            listen_port: 51820,
            fwmark: None,
            handshake_load_limit: load_limit,
        },
        now,
    )
}

fn pair(now: Instant, load_limit: u64) -> Pair {
    let mut client = node(1, now, load_limit);
    let mut edge = node(2, now, load_limit);
    let client_key = client.public_key();
    let edge_key = edge.public_key();
    let client_addr: SocketAddr = CLIENT_ADDR.parse().unwrap();
    let edge_addr: SocketAddr = EDGE_ADDR.parse().unwrap();
    client.add_peer(edge_as_peer(edge_key, edge_addr)).unwrap();
    edge.add_peer(PeerConfig {
        public_key: client_key,
        preshared_key: None,
        endpoint: None,
        allowed_ips: vec!["100.64.0.2/32".parse().unwrap()],
        persistent_keepalive: None,
    })
    .unwrap();
    Pair {
        client,
        edge,
        client_key,
        edge_key,
        client_addr,
        edge_addr,
    }
}

/// The edge as the client's only peer: everything routed to it.
fn edge_as_peer(edge_key: PublicKey, edge_addr: SocketAddr) -> PeerConfig {
    PeerConfig {
        public_key: edge_key,
        preshared_key: None,
        endpoint: Some(edge_addr),
        allowed_ips: vec!["0.0.0.0/0".parse().unwrap()],
        persistent_keepalive: None,
    }
}

fn ip_packet(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(5000, 53)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// Delivers every queued datagram between the two nodes until both are quiet; returns the
/// decrypted packets each side received.
fn pump(p: &mut Pair, now: Instant) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut at_client = Vec::new();
    let mut at_edge = Vec::new();
    let mut buf = vec![0u8; 2048];
    for _ in 0..100 {
        let mut moved = false;
        while let Some(t) = p.client.poll_transmit() {
            moved = true;
            assert_eq!(t.to, p.edge_addr);
            if let Ok(Received::Packet { packet, .. }) =
                p.edge
                    .handle_datagram(p.client_addr, &t.datagram, &mut buf, now)
            {
                at_edge.push(packet.to_vec());
            }
        }
        while let Some(t) = p.edge.poll_transmit() {
            moved = true;
            if let Ok(Received::Packet { packet, .. }) =
                p.client
                    .handle_datagram(p.edge_addr, &t.datagram, &mut buf, now)
            {
                at_client.push(packet.to_vec());
            }
        }
        if !moved {
            break;
        }
    }
    (at_client, at_edge)
}

fn connect(p: &mut Pair, now: Instant) -> Vec<Vec<u8>> {
    let packet = ip_packet([100, 64, 0, 2], [10, 0, 0, 9], b"hello");
    let mut buf = vec![0u8; 2048];
    let sent = p.client.send(&packet, &mut buf, now).unwrap();
    assert_eq!(sent, None, "first packet waits for the handshake");
    let (_, at_edge) = pump(p, now);
    at_edge
}

#[test]
fn handshake_then_queued_packet_arrives_and_counters_match() {
    let now = Instant::now();
    let mut p = pair(now, 100);
    let at_edge = connect(&mut p, now);
    assert_eq!(at_edge.len(), 1);
    assert!(at_edge[0].ends_with(b"hello"));

    let edge_status = &p.edge.peer_statuses()[0];
    let client_status = &p.client.peer_statuses()[0];
    assert_eq!(edge_status.public_key, p.client_key);
    assert_eq!(edge_status.endpoint, Some(p.client_addr));
    assert!(edge_status.since_last_handshake.is_some());
    // Every byte one side sent, the other received.
    assert_eq!(client_status.tx_bytes, edge_status.rx_bytes);
    assert_eq!(edge_status.tx_bytes, client_status.rx_bytes);

    let events: Vec<Event> = std::iter::from_fn(|| p.edge.poll_event()).collect();
    assert!(events.contains(&Event::HandshakeCompleted {
        peer: p.client_key,
        endpoint: p.client_addr
    }));
}

#[test]
fn data_flows_both_ways_after_handshake() {
    let now = Instant::now();
    let mut p = pair(now, 100);
    connect(&mut p, now);
    let mut buf = vec![0u8; 2048];
    let reply = ip_packet([10, 0, 0, 9], [100, 64, 0, 2], b"world");
    let t = p.edge.send(&reply, &mut buf, now).unwrap().unwrap();
    assert_eq!(t.to, p.client_addr);
    let datagram = t.datagram.to_vec();
    let mut out = vec![0u8; 2048];
    match p
        .client
        .handle_datagram(p.edge_addr, &datagram, &mut out, now)
    {
        Ok(Received::Packet { peer, packet }) => {
            assert_eq!(peer, p.edge_key);
            assert_eq!(packet, reply.as_slice());
        }
        other => panic!("expected a packet, got {other:?}"),
    }
}

#[test]
fn spoofed_inner_source_is_dropped() {
    let now = Instant::now();
    let mut p = pair(now, 100);
    connect(&mut p, now);
    let mut buf = vec![0u8; 2048];
    let spoofed = ip_packet([100, 64, 0, 3], [10, 0, 0, 9], b"evil");
    let t = p.client.send(&spoofed, &mut buf, now).unwrap().unwrap();
    let datagram = t.datagram.to_vec();
    let mut out = vec![0u8; 2048];
    assert_eq!(
        p.edge
            .handle_datagram(p.client_addr, &datagram, &mut out, now),
        Err(DropReason::SpoofedSource)
    );
}

#[test]
fn replayed_data_is_dropped() {
    let now = Instant::now();
    let mut p = pair(now, 100);
    connect(&mut p, now);
    let mut buf = vec![0u8; 2048];
    let packet = ip_packet([100, 64, 0, 2], [10, 0, 0, 9], b"once");
    let datagram = p
        .client
        .send(&packet, &mut buf, now)
        .unwrap()
        .unwrap()
        .datagram
        .to_vec();
    let mut out = vec![0u8; 2048];
    assert!(matches!(
        p.edge
            .handle_datagram(p.client_addr, &datagram, &mut out, now),
        Ok(Received::Packet { .. })
    ));
    assert!(matches!(
        p.edge
            .handle_datagram(p.client_addr, &datagram, &mut out, now),
        Err(DropReason::Noise(_))
    ));
}

#[test]
fn junk_and_truncated_datagrams_are_dropped_without_panic() {
    let now = Instant::now();
    let mut p = pair(now, 100);
    let mut out = vec![0u8; 2048];
    for len in 0..200 {
        let junk: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        assert!(p
            .edge
            .handle_datagram(p.client_addr, &junk, &mut out, now)
            .is_err());
    }
    // A real initiation cut short, and one with a flipped byte.
    let mut buf = vec![0u8; 2048];
    let _ = p.client.send(
        &ip_packet([100, 64, 0, 2], [1, 1, 1, 1], b"x"),
        &mut buf,
        now,
    );
    let init = p.client.poll_transmit().unwrap().datagram;
    assert_eq!(
        p.edge
            .handle_datagram(p.client_addr, &init[..100], &mut out, now),
        Err(DropReason::Malformed)
    );
    let mut flipped = init.clone();
    flipped[60] ^= 1;
    assert!(p
        .edge
        .handle_datagram(p.client_addr, &flipped, &mut out, now)
        .is_err());
    assert_eq!(p.edge.poll_transmit(), None, "nothing answers junk");
}

#[test]
fn initiation_from_unknown_key_is_dropped() {
    let now = Instant::now();
    let mut p = pair(now, 100);
    let mut stranger = node(9, now, 100);
    stranger
        .add_peer(edge_as_peer(p.edge_key, p.edge_addr))
        .unwrap();
    let mut buf = vec![0u8; 2048];
    let _ = stranger.send(
        &ip_packet([100, 64, 0, 9], [1, 1, 1, 1], b"x"),
        &mut buf,
        now,
    );
    let init = stranger.poll_transmit().unwrap().datagram;
    assert_eq!(
        p.edge.handle_datagram(p.client_addr, &init, &mut buf, now),
        Err(DropReason::UnknownPeer)
    );
}

#[test]
fn replayed_initiation_is_not_answered_twice() {
    let now = Instant::now();
    let mut p = pair(now, 100);
    let mut buf = vec![0u8; 2048];
    let _ = p.client.send(
        &ip_packet([100, 64, 0, 2], [1, 1, 1, 1], b"x"),
        &mut buf,
        now,
    );
    let init = p.client.poll_transmit().unwrap().datagram;
    assert!(p
        .edge
        .handle_datagram(p.client_addr, &init, &mut buf, now)
        .is_ok());
    while p.edge.poll_transmit().is_some() {}
    let later = now + Duration::from_millis(100);
    assert!(p
        .edge
        .handle_datagram(p.client_addr, &init, &mut buf, later)
        .is_err());
    assert_eq!(p.edge.poll_transmit(), None);
}

#[test]
fn initiations_faster_than_fifty_per_second_are_dropped() {
    let now = Instant::now();
    let mut p = pair(now, 1000);
    let mut buf = vec![0u8; 2048];
    let _ = p.client.send(
        &ip_packet([100, 64, 0, 2], [1, 1, 1, 1], b"x"),
        &mut buf,
        now,
    );
    let first = p.client.poll_transmit().unwrap().datagram;
    assert!(p
        .edge
        .handle_datagram(p.client_addr, &first, &mut buf, now)
        .is_ok());
    // A fresh client node with the same key produces a new, valid initiation (boringtun's
    // TAI64N stamps advance with its own clock).
    std::thread::sleep(Duration::from_millis(2));
    let mut third = pair(now, 1000);
    let _ = third.client.send(
        &ip_packet([100, 64, 0, 2], [1, 1, 1, 1], b"x"),
        &mut buf,
        now,
    );
    let second = third.client.poll_transmit().unwrap().datagram;
    assert_eq!(
        p.edge.handle_datagram(
            p.client_addr,
            &second,
            &mut buf,
            now + Duration::from_millis(5)
        ),
        Err(DropReason::PeerRateLimited)
    );
}

#[test]
fn under_load_initiations_get_cookie_replies() {
    let now = Instant::now();
    let mut p = pair(now, 2);
    let mut buf = vec![0u8; 2048];
    let mut cookies = 0;
    for i in 0..10u8 {
        let mut c = node(1, now, 2);
        c.add_peer(edge_as_peer(p.edge_key, p.edge_addr)).unwrap();
        let _ = c.send(
            &ip_packet([100, 64, 0, 2], [1, 1, 1, 1], b"x"),
            &mut buf,
            now,
        );
        let init = c.poll_transmit().unwrap().datagram;
        let from: SocketAddr = format!("198.51.100.{}:4000", 10 + i).parse().unwrap();
        let result = p.edge.handle_datagram(from, &init, &mut buf, now);
        while let Some(t) = p.edge.poll_transmit() {
            if t.datagram.len() == 64 && t.datagram[0] == 3 {
                assert_eq!(t.to, from);
                cookies += 1;
                assert_eq!(result, Err(DropReason::SourceRateLimited));
            }
        }
    }
    assert!(cookies >= 7, "cookie replies under load: {cookies}");
}

#[test]
fn endpoint_follows_the_client_when_it_roams() {
    let now = Instant::now();
    let mut p = pair(now, 100);
    connect(&mut p, now);
    while p.edge.poll_event().is_some() {}
    let roamed: SocketAddr = "192.0.2.77:50000".parse().unwrap();
    let mut buf = vec![0u8; 2048];
    let packet = ip_packet([100, 64, 0, 2], [10, 0, 0, 9], b"moved");
    let datagram = p
        .client
        .send(&packet, &mut buf, now)
        .unwrap()
        .unwrap()
        .datagram
        .to_vec();
    let mut out = vec![0u8; 2048];
    assert!(p
        .edge
        .handle_datagram(roamed, &datagram, &mut out, now)
        .is_ok());
    assert_eq!(
        p.edge.poll_event(),
        Some(Event::EndpointChanged {
            peer: p.client_key,
            endpoint: roamed
        })
    );
    let reply = ip_packet([10, 0, 0, 9], [100, 64, 0, 2], b"back");
    assert_eq!(
        p.edge.send(&reply, &mut buf, now).unwrap().unwrap().to,
        roamed
    );
}

#[test]
fn low_order_and_own_keys_are_refused() {
    let now = Instant::now();
    let mut n = node(1, now, 100);
    let own = n.public_key();
    let config = |key| PeerConfig {
        public_key: key,
        preshared_key: None,
        endpoint: None,
        allowed_ips: vec![],
        persistent_keepalive: None,
    };
    assert!(n.add_peer(config(PublicKey::from_bytes([0; 32]))).is_err());
    assert!(n.add_peer(config(own)).is_err());
}

#[test]
fn timers_retry_the_handshake_when_the_edge_is_silent() {
    let now = Instant::now();
    let mut p = pair(now, 100);
    let mut buf = vec![0u8; 2048];
    let _ = p.client.send(
        &ip_packet([100, 64, 0, 2], [1, 1, 1, 1], b"x"),
        &mut buf,
        now,
    );
    while p.client.poll_transmit().is_some() {}
    // boringtun reads its own clock: the Rekey-Timeout (5 s) must really pass.
    std::thread::sleep(Duration::from_millis(5_300));
    let later = Instant::now();
    p.client.handle_timeout(later);
    let retry = p.client.poll_transmit().expect("handshake retried");
    assert_eq!(retry.datagram[0], 1);
    assert!(p.client.poll_timeout() > later);
}

//! A `wg::Node` (the edge side, one peer) fed a sequence of operations read from the input:
//! raw datagrams from arbitrary sources, packets to send, clock jumps, peer removal, and the
//! traffic of a real client node with one byte of each delivered datagram optionally flipped,
//! so that handshakes complete and the data path is reached. Nothing may panic.
//!
//! Operations (first byte modulo 8):
//! 0 raw datagram: `socket_addr`, buffer length `u16`, `bytes`, to the edge
//! 1 client sends `bytes`          2 edge sends `bytes`
//! 3 deliver to the edge: flip offset `u16`, xor `u8` (0: unchanged)
//! 4 deliver to the client: same   5 advance the clock by `u16` ms, run both timers
//! 6 remove the client peer from the edge, or add it back
//! 7 edge sends `bytes` to the client peer directly

#![no_main]

use fuzz::{client_on_edge, client_private_key, edge_on_client, edge_private_key, node_config};
use fuzz::{flip, push, Cursor, BUF, CLIENT_ADDR, EDGE_ADDR, MAX_STEPS};
use libfuzzer_sys::fuzz_target;
use std::collections::VecDeque;
use std::time::Instant;
use wg::{Node, Transmit};

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor::new(data);
    let mut now = Instant::now();
    let mut edge = Node::new(node_config(edge_private_key()), now);
    let mut client = Node::new(node_config(client_private_key()), now);
    edge.add_peer(client_on_edge()).expect("valid peer");
    client.add_peer(edge_on_client()).expect("valid peer");
    let client_key = client.public_key();
    let mut to_edge = VecDeque::new();
    let mut to_client = VecDeque::new();
    let mut buf = vec![0u8; BUF];

    for _ in 0..MAX_STEPS {
        if input.is_empty() {
            break;
        }
        match input.u8() % 8 {
            0 => {
                let from = input.socket_addr();
                let mut small = vec![0u8; usize::from(input.u16())];
                let datagram = input.bytes();
                let _ = edge.handle_datagram(from, datagram, &mut small, now);
            }
            1 => {
                let packet = input.bytes();
                let sent = client.send(packet, &mut buf, now);
                queue(&mut to_edge, sent.ok().flatten());
            }
            2 => {
                let packet = input.bytes();
                let sent = edge.send(packet, &mut buf, now);
                queue(&mut to_client, sent.ok().flatten());
            }
            3 => {
                let (at, xor) = (input.u16(), input.u8());
                if let Some(datagram) = to_edge.pop_front() {
                    let datagram = flip(datagram, at, xor);
                    let _ = edge.handle_datagram(CLIENT_ADDR, &datagram, &mut buf, now);
                }
            }
            4 => {
                let (at, xor) = (input.u16(), input.u8());
                if let Some(datagram) = to_client.pop_front() {
                    let datagram = flip(datagram, at, xor);
                    let _ = client.handle_datagram(EDGE_ADDR, &datagram, &mut buf, now);
                }
            }
            5 => {
                now += input.millis();
                edge.handle_timeout(now);
                client.handle_timeout(now);
                assert!(edge.poll_timeout() > now, "timer re-armed in the future");
            }
            6 => {
                if edge.contains_peer(&client_key) {
                    edge.remove_peer(&client_key);
                } else {
                    edge.add_peer(client_on_edge()).expect("valid peer");
                }
            }
            _ => {
                let packet = input.bytes();
                let sent = edge.send_to_peer(&client_key, packet, &mut buf, now);
                queue(&mut to_client, sent.ok().flatten());
            }
        }
        while let Some(t) = client.poll_transmit() {
            push(&mut to_edge, t.datagram);
        }
        while let Some(t) = edge.poll_transmit() {
            push(&mut to_client, t.datagram);
        }
        while edge.poll_event().is_some() {}
        while client.poll_event().is_some() {}
        let _ = edge.peer_statuses();
    }
});

fn queue(queue: &mut VecDeque<Vec<u8>>, sent: Option<Transmit<'_>>) {
    if let Some(t) = sent {
        push(queue, t.datagram.to_vec());
    }
}

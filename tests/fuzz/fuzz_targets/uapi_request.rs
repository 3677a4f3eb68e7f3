//! `wg::uapi::parse_request` on arbitrary text never panics; a `set=1` that parses is applied
//! to a node with one peer, which must not panic either.

#![no_main]

use fuzz::{client_on_edge, edge_private_key, node_config};
use libfuzzer_sys::fuzz_target;
use std::time::Instant;
use wg::uapi::{parse_request, Request};
use wg::Node;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(Request::Set(set)) = parse_request(&text) else {
        return;
    };
    let now = Instant::now();
    let mut node = Node::new(node_config(edge_private_key()), now);
    node.add_peer(client_on_edge()).expect("valid peer");
    let _ = node.apply_uapi(set, now);
    let _ = node.snapshot();
});

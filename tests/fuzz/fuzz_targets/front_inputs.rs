//! Network input the edge's application front and identity's decision intake parse: the host
//! of an HTTP request (`edge_core::http_host`), a `POST /v1/decisions` body
//! (`identity_claims::DecisionBatch`), and the sequence numbers the edge reads from packets to
//! reset live flows (`wire::tcp_ack_of`, `tcp_next_seq`, `tcp_reset_to_sender`). None may
//! panic; an accepted host is a lowercase DNS name that normalizes to itself; a validated
//! batch's records survive `fit` unchanged; a reset for a flow is a valid RST of the reverse
//! flow.

#![no_main]

use edge_core::http_host::{normalize_host, request_host};
use identity_claims::DecisionBatch;
use libfuzzer_sys::fuzz_target;
use wire::{tcp_ack_of, tcp_next_seq, tcp_reset_to_sender, PacketSummary};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(host) = normalize_host(&text) {
        assert!(!host.is_empty() && host.len() <= 253);
        assert!(host.bytes().all(|b| b.is_ascii_lowercase()
            || b.is_ascii_digit()
            || b == b'.'
            || b == b'-'
            || b == b'_'));
        assert_eq!(normalize_host(&host).as_deref(), Some(host.as_str()));
    }
    let _ = request_host(None, Some(data));

    if let Ok(batch) = serde_json::from_slice::<DecisionBatch>(data) {
        if batch.validate().is_ok() {
            for record in batch.records {
                assert_eq!(
                    record.clone().fit(),
                    record,
                    "a valid record needs no fitting"
                );
            }
        }
    }

    let _ = tcp_next_seq(data);
    if let (Some(ack), Ok(summary)) = (tcp_ack_of(data), PacketSummary::parse(data)) {
        if let Some(rst) = tcp_reset_to_sender(&summary.key, ack) {
            let back = PacketSummary::parse(&rst).expect("a reset parses");
            assert_eq!(back.key, summary.key.reversed());
            assert!(back.tcp_flags.is_some_and(|f| f.rst));
        }
    }
});

//! `wire` on arbitrary bytes: summarising never panics, and the edge's own reject packets are
//! valid, answer the flow they reject, and are never answered in turn (no reject loops).

#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::{icmp_unreachable_for, tcp_reset_for, PacketSummary, Protocol};

fuzz_target!(|packet: &[u8]| {
    let summary = PacketSummary::parse(packet);
    let _ = wire::source_addr(packet);
    let _ = wire::destination_addr(packet);

    if let Some(rst) = tcp_reset_for(packet) {
        let answer = PacketSummary::parse(&rst).expect("a reset parses");
        assert_eq!(answer.key.protocol, Protocol::Tcp);
        assert!(
            answer.tcp_flags.is_some_and(|f| f.rst),
            "a reset has RST set"
        );
        if let Ok(summary) = &summary {
            assert_eq!(
                answer.key,
                summary.key.reversed(),
                "a reset answers the flow"
            );
        }
        assert_eq!(tcp_reset_for(&rst), None, "a reset is never answered");
    }

    if let Some(icmp) = icmp_unreachable_for(packet) {
        let answer = PacketSummary::parse(&icmp).expect("an unreachable parses");
        assert_eq!(answer.key.protocol, Protocol::Icmp);
        assert!(answer.icmp_error, "an unreachable is an icmp error");
        assert_eq!(
            icmp_unreachable_for(&icmp),
            None,
            "an icmp error is never answered"
        );
        assert_eq!(tcp_reset_for(&icmp), None);
    }
});

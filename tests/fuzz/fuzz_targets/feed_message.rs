//! `identity_claims::feed::FeedMessage::from_json_line` on arbitrary bytes never panics; a line
//! that parses is emitted as one line that parses back to the same message; applying it to a
//! replica never panics, a gap leaves the replica unchanged, and the replica's snapshot
//! round-trips.

#![no_main]

use identity_claims::feed::{FeedError, FeedMessage, FeedReplica, Revision};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut replica = FeedReplica::new();
    // Several lines: apply them in order, as an edge would.
    for line in data.split(|b| *b == b'\n') {
        let Ok(msg) = FeedMessage::from_json_line(line) else {
            continue;
        };
        let emitted = msg.to_json_line();
        assert!(emitted.ends_with('\n'));
        assert!(!emitted[..emitted.len() - 1].contains('\n'), "one line");
        let reparsed = FeedMessage::from_json_line(emitted.as_bytes())
            .unwrap_or_else(|e| panic!("emitted line does not parse: {e}\n{emitted}"));
        assert_eq!(reparsed, msg);

        let before = replica.clone();
        match replica.apply(msg.clone()) {
            Ok(_) => {
                if !matches!(msg, FeedMessage::Heartbeat { .. }) {
                    assert_eq!(replica.revision(), msg.revision());
                }
            }
            Err(FeedError::Gap { expected, got }) => {
                assert_eq!(expected, Revision(before.revision().0.saturating_add(1)));
                assert_eq!(got, msg.revision());
                assert_eq!(replica, before, "a gap changes nothing");
            }
            Err(FeedError::Parse(_)) => panic!("apply does not parse"),
        }
        let FeedMessage::Snapshot { revision, state } = replica.to_snapshot() else {
            panic!("to_snapshot gives a snapshot");
        };
        assert_eq!(FeedReplica::from_snapshot(revision, state), replica);
    }
});

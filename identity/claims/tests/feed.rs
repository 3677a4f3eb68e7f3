//! Feed messages against literal JSON, and the replica's life cycle.
#![allow(clippy::unwrap_used)]

use identity_claims::feed::{Applied, Change, FeedError, FeedMessage, FeedReplica, Revision};

const DEVICE: &str = r#"{"device_id":"d1","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
  "addresses":["100.64.0.2/32","fd00:1::2/128"],
  "user":{"user_id":"u1","email":"ada@example.com","groups":["eng"],"idp":"okta","shoe_size":42},
  "posture":{"os":"linux","os_version":"6.1","hostname":"h","client_version":"0.1.0"},
  "enrolled_at":1700000000,"login_method":"pwd","auth_time":1699999990,"new_field":[1,2]}"#;

fn line(s: &str) -> FeedMessage {
    // Literal JSON is written over several lines for reading; the wire has one line each.
    let one: String = s.split('\n').map(str::trim).collect();
    FeedMessage::from_json_line(one.as_bytes()).unwrap()
}

fn snapshot() -> FeedMessage {
    line(&format!(
        r#"{{"type":"snapshot","revision":42,"state":{{"devices":[{DEVICE}],
        "policy":{{"version":3,"format":"toml","source":"[app]","sha256":"ab"}},
        "revoked_sessions":[{{"session_id":"s9","expires_at":1700000600}}],
        "revoked_service_tokens":[{{"token_id":"t9"}}],
        "connectors":[{{"connector_id":"c1","name":"dc","routes":["10.1.0.0/16","app.example.com"],"revoked":false}}],
        "signing_keys":{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1"}}]}},
        "something_new":{{}}}}}}"#
    ))
}

#[test]
fn a_snapshot_with_unknown_fields_replaces_the_state() {
    let mut r = FeedReplica::new();
    assert_eq!(r.apply(snapshot()).unwrap(), Applied::Replaced);
    assert_eq!(r.revision(), Revision(42));
    let d = r.device("d1").unwrap();
    assert_eq!(d.user.groups, ["eng"]);
    assert_eq!(d.addresses[1].to_string(), "fd00:1::2/128");
    assert_eq!(
        r.device_by_public_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .unwrap()
            .device_id,
        "d1"
    );
    assert_eq!(r.policy().unwrap().version, 3);
    assert!(r.is_session_revoked("s9") && !r.is_session_revoked("s1"));
    assert!(r.is_service_token_revoked("t9"));
    assert_eq!(r.connector("c1").unwrap().routes.len(), 2);
    assert_eq!(r.signing_keys().keys.len(), 1);

    // A second snapshot replaces everything, also what it does not mention.
    let empty = line(r#"{"type":"snapshot","revision":7,"state":{}}"#);
    r.apply(empty).unwrap();
    assert_eq!(r.revision(), Revision(7));
    assert!(r.device("d1").is_none() && r.policy().is_none());
    assert!(!r.is_session_revoked("s9"));
}

#[test]
fn deltas_apply_in_order_and_a_gap_is_reported_without_change() {
    let mut r = FeedReplica::new();
    r.apply(snapshot()).unwrap();

    let removed = line(
        r#"{"type":"delta","revision":43,"change":{"kind":"device_removed","device_id":"d1","reason":"revoked"}}"#,
    );
    assert!(matches!(
        r.apply(removed).unwrap(),
        Applied::Changed(Change::DeviceRemoved { .. })
    ));
    assert!(r.device("d1").is_none());
    assert!(r
        .device_by_public_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        .is_none());

    let skip = line(
        r#"{"type":"delta","revision":45,"change":{"kind":"session_revoked","session":{"session_id":"s1","expires_at":1}}}"#,
    );
    assert_eq!(
        r.apply(skip),
        Err(FeedError::Gap {
            expected: Revision(44),
            got: Revision(45)
        })
    );
    let replay = line(
        r#"{"type":"delta","revision":43,"change":{"kind":"connector_removed","connector_id":"c1"}}"#,
    );
    assert!(matches!(r.apply(replay), Err(FeedError::Gap { .. })));
    assert_eq!(r.revision(), Revision(43));
    assert!(!r.is_session_revoked("s1"));
    assert!(r.connector("c1").is_some());

    let upsert = line(&format!(
        r#"{{"type":"delta","revision":44,"change":{{"kind":"device_upserted","device":{DEVICE}}}}}"#
    ));
    r.apply(upsert).unwrap();
    assert!(r.device("d1").is_some());
}

#[test]
fn every_change_kind_applies() {
    let mut r = FeedReplica::new();
    let deltas = [
        r#"{"kind":"policy_applied","policy":{"version":1,"format":"yaml","source":"a: 1","sha256":"00"}}"#,
        r#"{"kind":"session_revoked","session":{"session_id":"s1","expires_at":100}}"#,
        r#"{"kind":"service_token_revoked","token_id":"t1"}"#,
        r#"{"kind":"connector_upserted","connector":{"connector_id":"c1","name":"n","routes":["10.0.0.0/8"],"revoked":false}}"#,
        r#"{"kind":"signing_keys","jwks":{"keys":[]}}"#,
        r#"{"kind":"connector_removed","connector_id":"c1"}"#,
    ];
    for (i, change) in deltas.iter().enumerate() {
        let msg = line(&format!(
            r#"{{"type":"delta","revision":{},"change":{change}}}"#,
            i + 1
        ));
        assert!(
            matches!(r.apply(msg).unwrap(), Applied::Changed(_)),
            "{change}"
        );
    }
    assert_eq!(r.revision(), Revision(6));
    assert_eq!(r.policy().unwrap().source, "a: 1");
    assert!(r.is_session_revoked("s1"));
    assert!(r.is_service_token_revoked("t1"));
    assert!(r.connector("c1").is_none());
    r.purge_expired(identity_claims::UnixTime(100));
    assert!(!r.is_session_revoked("s1"));
}

#[test]
fn machine_service_tokens_arrive_by_snapshot_and_delta_and_leave_on_revocation() {
    let hash = "ab".repeat(32);
    let mut r = FeedReplica::new();
    r.apply(line(&format!(
        r#"{{"type":"snapshot","revision":1,"state":{{"service_tokens":[
        {{"token_id":"t1","name":"ci","secret_sha256":"{hash}","expires_at":1800000000,"x":1}}]}}}}"#
    )))
    .unwrap();
    let t1 = r.service_token("t1").unwrap();
    assert_eq!(
        (t1.name.as_str(), t1.secret_sha256.as_str()),
        ("ci", hash.as_str())
    );
    assert_eq!(
        t1.expires_at,
        Some(identity_claims::UnixTime(1_800_000_000))
    );

    let upserted = line(&format!(
        r#"{{"type":"delta","revision":2,"change":{{"kind":"service_token_upserted",
        "token":{{"token_id":"t2","name":"bot","secret_sha256":"{hash}","expires_at":null}}}}}}"#
    ));
    assert!(matches!(
        r.apply(upserted).unwrap(),
        Applied::Changed(Change::ServiceTokenUpserted { .. })
    ));
    assert_eq!(r.service_token("t2").unwrap().expires_at, None);

    let revoked = line(
        r#"{"type":"delta","revision":3,"change":{"kind":"service_token_revoked","token_id":"t1"}}"#,
    );
    r.apply(revoked).unwrap();
    assert!(r.service_token("t1").is_none() && r.is_service_token_revoked("t1"));
    assert!(r.service_token("t2").is_some());
    let FeedMessage::Snapshot { state, .. } = r.to_snapshot() else {
        unreachable!()
    };
    assert_eq!(state.service_tokens.len(), 1);
    assert_eq!(state.service_tokens[0].token_id, "t2");
}

#[test]
fn an_unknown_change_kind_is_skipped_but_advances_the_revision() {
    let mut r = FeedReplica::new();
    let msg = line(
        r#"{"type":"delta","revision":1,"change":{"kind":"teleporter_added","teleporter":{"id":1}},"extra":true}"#,
    );
    assert_eq!(
        msg,
        FeedMessage::Delta {
            revision: Revision(1),
            change: Change::Unknown
        }
    );
    assert_eq!(r.apply(msg).unwrap(), Applied::Skipped);
    assert_eq!(r.revision(), Revision(1));
    assert_eq!(r, {
        let mut fresh = FeedReplica::new();
        fresh
            .apply(line(r#"{"type":"snapshot","revision":1,"state":{}}"#))
            .unwrap();
        fresh
    });
}

#[test]
fn heartbeats_report_whether_the_replica_is_behind() {
    let mut r = FeedReplica::new();
    r.apply(snapshot()).unwrap();
    let hb = |rev: u64| line(&format!(r#"{{"type":"heartbeat","revision":{rev},"x":1}}"#));
    assert_eq!(r.apply(hb(42)).unwrap(), Applied::InSync);
    assert_eq!(r.apply(hb(41)).unwrap(), Applied::InSync);
    assert_eq!(
        r.apply(hb(50)).unwrap(),
        Applied::Behind {
            local: Revision(42),
            remote: Revision(50)
        }
    );
    assert_eq!(r.revision(), Revision(42));
}

#[test]
fn lines_emit_and_reparse_equal_and_the_snapshot_round_trips() {
    let snap = snapshot();
    let text = snap.to_json_line();
    assert!(text.ends_with('\n') && !text[..text.len() - 1].contains('\n'));
    assert_eq!(FeedMessage::from_json_line(text.as_bytes()).unwrap(), snap);
    assert_eq!(
        FeedMessage::from_json_line(b"{\"type\":\"heartbeat\",\"revision\":3}\r\n").unwrap(),
        FeedMessage::Heartbeat {
            revision: Revision(3)
        }
    );

    let mut r = FeedReplica::new();
    r.apply(snap.clone()).unwrap();
    assert_eq!(r.to_snapshot(), snap);
    let FeedMessage::Snapshot { revision, state } = r.to_snapshot() else {
        unreachable!()
    };
    assert_eq!(FeedReplica::from_snapshot(revision, state), r);
}

#[test]
fn malformed_lines_are_errors() {
    for bad in [
        &b""[..],
        b"{}",
        b"{\"type\":\"snapshot\"}",
        b"{\"type\":\"gossip\",\"revision\":1}",
        b"{\"type\":\"delta\",\"revision\":-1,\"change\":{\"kind\":\"signing_keys\"}}",
        b"{\"type\":\"delta\",\"revision\":1,\"change\":{\"kind\":\"device_removed\"}}",
        b"[1,2]",
        b"\xff\xfe",
        b"{\"type\":\"heartbeat\",\"revision\":1}\n{\"type\":\"heartbeat\",\"revision\":2}",
    ] {
        assert!(
            matches!(FeedMessage::from_json_line(bad), Err(FeedError::Parse(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn a_device_reenrolled_under_a_new_id_takes_its_key_over() {
    let mut r = FeedReplica::new();
    r.apply(snapshot()).unwrap();
    let moved = DEVICE.replace(r#""device_id":"d1""#, r#""device_id":"d2""#);
    r.apply(line(&format!(
        r#"{{"type":"delta","revision":43,"change":{{"kind":"device_upserted","device":{moved}}}}}"#
    )))
    .unwrap();
    assert!(r.device("d1").is_none());
    assert_eq!(
        r.device_by_public_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .unwrap()
            .device_id,
        "d2"
    );
    assert_eq!(r.devices().count(), 1);
}

//! `device.json` against literal JSON (files written by every client version so far), the
//! meaning of identity's `GET /v1/profile` answers, and the device token's display facts.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use client_core::device_state::{
    profile_answer, token_facts, DeviceState, ProfileAnswer, StateError, TokenFacts, STATE_VERSION,
};
use client_core::enroll::{DeviceToken, Posture};

/// A JWT-shaped token with `claims` as its payload (the signature is not checked here).
fn jwt(claims: &serde_json::Value) -> DeviceToken {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    DeviceToken::new(format!(
        "{}.{}.{}",
        b64(br#"{"alg":"EdDSA","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes()),
        b64(b"signature")
    ))
}

/// What `gatehouse login` wrote before the optional fields existed.
const FIRST_LAYOUT: &str = r#"{
  "version": 1,
  "identity": "https://id.example.com/",
  "device_id": "dev_42",
  "device_token": "a.b.c",
  "public_key": "pk",
  "profile": {
    "addresses": ["100.64.0.2/32"],
    "edges": [{"name": "fra", "endpoint": "192.0.2.1:51820", "public_key": "ek", "region": "eu"}],
    "routes": ["10.0.0.0/8"],
    "dns": ["100.64.0.1"]
  }
}"#;

#[test]
fn the_first_layout_still_reads_with_the_optional_fields_unset() {
    let state = DeviceState::parse(FIRST_LAYOUT.as_bytes()).unwrap();

    assert_eq!(state.version, 1);
    assert_eq!(state.device_id, "dev_42");
    assert_eq!(state.device_token.expose(), "a.b.c");
    assert_eq!(state.profile.edges[0].name, "fra");
    assert_eq!(state.profile.mtu, None);
    assert_eq!(state.edge, None);
    assert_eq!(state.posture, None);
    assert_eq!(state.enrolled_at, None);
    assert_eq!(state.profile_updated_at, None);
}

#[test]
fn state_round_trips_and_unset_optional_fields_are_not_written() {
    let mut state = DeviceState::parse(FIRST_LAYOUT.as_bytes()).unwrap();
    let bytes = state.to_json();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.ends_with("}\n"), "{text}");
    for absent in [
        "\"edge\"",
        "posture",
        "enrolled_at",
        "profile_updated_at",
        "mtu",
    ] {
        assert!(!text.contains(absent), "{absent} in {text}");
    }
    assert_eq!(DeviceState::parse(&bytes).unwrap(), state);

    state.edge = Some("fra".into());
    state.posture = Some(Posture {
        os: "linux".into(),
        os_version: "6.1".into(),
        hostname: "laptop".into(),
        client_version: "0.1.0".into(),
    });
    state.enrolled_at = Some(1_700_000_000);
    state.profile_updated_at = Some(1_700_000_100);

    assert_eq!(DeviceState::parse(&state.to_json()).unwrap(), state);
}

#[test]
fn a_newer_layout_or_a_non_state_file_is_refused() {
    let newer = FIRST_LAYOUT.replace("\"version\": 1", "\"version\": 2");

    let err = DeviceState::parse(newer.as_bytes()).unwrap_err();
    assert!(matches!(err, StateError::UnsupportedVersion { found: 2 }));
    assert!(err.to_string().contains("upgrade gatehouse"), "{err}");
    assert!(matches!(
        DeviceState::parse(br#"{"version":1}"#),
        Err(StateError::Invalid(_))
    ));
    assert_eq!(STATE_VERSION, 1);
}

#[test]
fn state_debug_never_shows_the_device_token() {
    let state = DeviceState::parse(FIRST_LAYOUT.as_bytes()).unwrap();

    assert!(!format!("{state:?}").contains("a.b.c"));
}

#[test]
fn profile_answers_are_fresh_refused_or_unavailable() {
    let body = br#"{"addresses":["100.64.0.2/32"],"edges":[],"routes":[],"dns":[],"new":1}"#;
    let ProfileAnswer::Fresh(profile) = profile_answer(200, body) else {
        panic!("a 200 with a profile is fresh")
    };
    assert_eq!(profile.addresses[0].to_string(), "100.64.0.2/32");

    for refused in [401, 403, 404] {
        assert_eq!(profile_answer(refused, b"{}"), ProfileAnswer::Refused);
    }
    for (status, body) in [
        (500, &b"{}"[..]),
        (502, b"bad gateway"),
        (200, b"<html>"),
        (302, b""),
    ] {
        assert!(
            matches!(profile_answer(status, body), ProfileAnswer::Unavailable(_)),
            "{status}"
        );
    }
}

#[test]
fn token_facts_come_from_the_unverified_payload() {
    let token = jwt(&serde_json::json!({
        "iss": "https://id.example.com", "sub": "usr_1", "kind": "device_session",
        "email": "alice@example.com", "login_method": "pwd", "auth_time": 1_700_000_000,
        "exp": 1_702_592_000, "groups": ["eng"],
    }));

    assert_eq!(
        token_facts(&token),
        TokenFacts {
            email: Some("alice@example.com".into()),
            login_method: Some("pwd".into()),
            auth_time: Some(1_700_000_000),
            expires_at: Some(1_702_592_000),
        }
    );
}

#[test]
fn tokens_that_are_not_jwts_have_no_facts() {
    for token in ["opaque", "a.!!!.c", "a.bm90IGpzb24.c", ""] {
        assert_eq!(
            token_facts(&DeviceToken::new(token.into())),
            TokenFacts::default()
        );
    }
    let empty = jwt(&serde_json::json!({"email": "", "login_method": ""}));
    assert_eq!(token_facts(&empty), TokenFacts::default());
}

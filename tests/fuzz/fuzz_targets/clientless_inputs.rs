//! What the edge's clientless front parses from a browser or a machine
//! (`edge_core::clientless`): the callback's query string, the path a browser is sent on to, a
//! presented service token and a session cookie checked against an `Access` that knows one
//! machine token. None may panic; a path that comes out is local (`/…`, never `//…` or with a
//! backslash, so never another origin); a login URL always points at identity's authorize; no
//! input verifies as a session (nothing here is signed), and a service token verifies only if
//! it is the known one.

#![no_main]

use edge_core::access::Access;
use edge_core::clientless::{local_path, login_url, parse_callback};
use identity_claims::feed::{FeedReplica, FeedState, Revision, ServiceToken};
use identity_claims::UnixTime;
use identity_core::service_token::ServiceTokenSecret;
use libfuzzer_sys::fuzz_target;

fn assert_local(path: &str) {
    assert!(path.starts_with('/'), "{path:?}");
    assert!(!path.starts_with("//"), "{path:?}");
    assert!(!path.contains('\\'), "{path:?}");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok((token, path)) = parse_callback(&text) {
        assert!(!token.is_empty());
        assert_local(&path);
    }
    assert_local(&local_path(&text));
    let url = login_url("https://id.test", &text, &local_path(&text), "n");
    assert!(url.starts_with("https://id.test/v1/access/authorize?host="), "{url}");

    let known = ServiceTokenSecret::generate("tok_1", &[5; 32]).expect("token");
    let replica = FeedReplica::from_snapshot(
        Revision(1),
        FeedState {
            service_tokens: vec![ServiceToken {
                token_id: "tok_1".to_owned(),
                name: "robot".to_owned(),
                secret_sha256: known.sha256_hex(),
                expires_at: None,
            }],
            ..FeedState::default()
        },
    );
    let access = Access::from_replica(&replica, None);
    let now = UnixTime(1_800_000_000);
    if access.verify_service_token(&text, now).is_ok() {
        assert_eq!(text, known.expose());
    }
    assert!(access
        .verify_session("https://id.test", &text, "app.test", now)
        .is_err());
});

use super::*;
use identity_claims::feed::{FeedReplica, FeedState, Revision, RevokedSession, ServiceToken};
use identity_claims::{Audience, CommonClaims, Jwks, SigningKey, UserFacts};
use std::sync::Arc;

const ISSUER: &str = "https://id.corp.test";
const NOW: u64 = 1_800_000_000;

const POLICY: &str = r#"
version = 1
[[applications]]
name = "wiki"
destinations = [{ host = "wiki.corp.test" }]
[[applications.policies]]
name = "eng"
action = "allow"
include = [{ group = "eng" }]

[[applications]]
name = "ci"
destinations = [{ host = "ci.corp.test" }]
[[applications.policies]]
name = "robots"
action = "service_auth"
include = [{ service_token = "tok_ci" }]
"#;

fn key() -> SigningKey {
    SigningKey::from_seed(&[7; 32])
}

fn access(revoked: &[&str], tokens: Vec<ServiceToken>) -> Access {
    let replica = FeedReplica::from_snapshot(
        Revision(1),
        FeedState {
            signing_keys: Jwks::from_signing_keys([&key()]),
            revoked_sessions: revoked
                .iter()
                .map(|sid| RevokedSession {
                    session_id: (*sid).to_owned(),
                    expires_at: identity_claims::UnixTime(NOW + 3600),
                })
                .collect(),
            service_tokens: tokens,
            ..FeedState::default()
        },
    );
    let policy = edge_policy::load(POLICY, edge_policy::Format::Toml, "t.toml").expect("policy");
    Access::from_replica(&replica, Some(Arc::new(policy)))
}

fn session_token(host: &str, sid: &str, nonce: &str, groups: &[&str], exp: u64) -> String {
    let claims = AccessSession {
        common: CommonClaims {
            iss: ISSUER.to_owned(),
            sub: "usr_ada".to_owned(),
            aud: Audience::one(identity_claims::access_audience(host)),
            exp: identity_claims::UnixTime(exp),
            iat: identity_claims::UnixTime(NOW - 10),
            nbf: None,
            jti: "j1".to_owned(),
        },
        sid: sid.to_owned(),
        user: UserFacts {
            email: "ada@corp.test".to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            idp: "okta".to_owned(),
            login_method: "pwd".to_owned(),
            auth_time: identity_claims::UnixTime(NOW - 60),
        },
        nonce: nonce.to_owned(),
    };
    identity_claims::sign(&claims, &key())
}

fn now() -> identity_claims::UnixTime {
    identity_claims::UnixTime(NOW)
}

fn at(host: &str) -> Target<'_> {
    Target::Http { host, path: "/" }
}

fn ip() -> IpAddr {
    "198.51.100.7".parse().expect("ip")
}

#[test]
fn a_session_for_the_host_decides_with_its_user_facts() {
    let access = access(&[], vec![]);
    let token = session_token("wiki.corp.test", "ses_1", "n", &["eng"], NOW + 60);
    let session = access
        .verify_session(ISSUER, &token, "wiki.corp.test", now())
        .expect("valid");
    let caller = Caller::User(Box::new(session));
    let verdict = access.decide_caller(&caller, ip(), at("wiki.corp.test"), UnixTime(NOW as i64));
    assert!(verdict.allowed, "{verdict:?}");
    assert_eq!(verdict.application.as_deref(), Some("wiki"));

    let outsider = session_token("wiki.corp.test", "ses_2", "n", &["sales"], NOW + 60);
    let outsider = access
        .verify_session(ISSUER, &outsider, "wiki.corp.test", now())
        .expect("valid");
    let verdict = access.decide_caller(
        &Caller::User(Box::new(outsider)),
        ip(),
        at("wiki.corp.test"),
        UnixTime(NOW as i64),
    );
    assert!(!verdict.allowed);
}

#[test]
fn a_session_for_another_host_expired_forged_or_revoked_is_refused() {
    let access = access(&["ses_revoked"], vec![]);
    let for_ci = session_token("ci.corp.test", "ses_1", "n", &["eng"], NOW + 60);
    assert!(matches!(
        access.verify_session(ISSUER, &for_ci, "wiki.corp.test", now()),
        Err(SessionRejected::Token(_))
    ));
    let expired = session_token("wiki.corp.test", "ses_1", "n", &["eng"], NOW - 1);
    assert!(matches!(
        access.verify_session(ISSUER, &expired, "wiki.corp.test", now()),
        Err(SessionRejected::Token(_))
    ));
    let good = session_token("wiki.corp.test", "ses_1", "n", &["eng"], NOW + 60);
    let mut forged = good.clone();
    // Flip one character of the signature.
    let last = forged.pop().expect("char");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert!(access
        .verify_session(ISSUER, &forged, "wiki.corp.test", now())
        .is_err());
    assert!(access
        .verify_session("https://other.test", &good, "wiki.corp.test", now())
        .is_err());
    let revoked = session_token("wiki.corp.test", "ses_revoked", "n", &["eng"], NOW + 60);
    assert_eq!(
        access.verify_session(ISSUER, &revoked, "wiki.corp.test", now()),
        Err(SessionRejected::Revoked)
    );
}

fn machine_token() -> (String, ServiceToken) {
    let secret = ServiceTokenSecret::generate("tok_ci", &[9; 32]).expect("token");
    let entry = ServiceToken {
        token_id: "tok_ci".to_owned(),
        name: "ci".to_owned(),
        secret_sha256: secret.sha256_hex(),
        expires_at: Some(identity_claims::UnixTime(NOW + 60)),
    };
    (secret.expose(), entry)
}

#[test]
fn a_machine_token_is_checked_against_the_feed_and_decides_as_itself() {
    let (presented, entry) = machine_token();
    let access = access(&[], vec![entry.clone()]);
    let token_id = access
        .verify_service_token(&presented, now())
        .expect("valid");
    assert_eq!(token_id, "tok_ci");
    let caller = Caller::Service { token_id };
    assert!(
        access
            .decide_caller(&caller, ip(), at("ci.corp.test"), UnixTime(NOW as i64))
            .allowed
    );
    assert!(
        !access
            .decide_caller(&caller, ip(), at("wiki.corp.test"), UnixTime(NOW as i64))
            .allowed
    );

    let other = ServiceTokenSecret::generate("tok_ci", &[8; 32]).expect("token");
    assert_eq!(
        access.verify_service_token(&other.expose(), now()),
        Err(ServiceTokenRejected::WrongSecret)
    );
    assert_eq!(
        access.verify_service_token("ghst_nope", now()),
        Err(ServiceTokenRejected::Malformed)
    );
    assert_eq!(
        access.verify_service_token(&presented, identity_claims::UnixTime(NOW + 60)),
        Err(ServiceTokenRejected::Expired)
    );
    let without = self::access(&[], vec![]);
    assert_eq!(
        without.verify_service_token(&presented, now()),
        Err(ServiceTokenRejected::Unknown)
    );
}

#[test]
fn the_callback_needs_this_browsers_nonce_and_a_local_path() {
    let access = access(&[], vec![]);
    let token = session_token("wiki.corp.test", "ses_1", "nonce-a", &["eng"], NOW + 60);
    let check = |state: Option<&str>| {
        check_callback(&access, ISSUER, &token, "wiki.corp.test", state, now())
    };
    assert!(check(Some("nonce-a")).is_ok());
    assert_eq!(check(Some("nonce-b")), Err(CallbackRejected::WrongNonce));
    assert_eq!(check(None), Err(CallbackRejected::NoLoginState));

    let query = format!("token={token}&path=%2Fdocs%3Fq%3D1");
    assert_eq!(
        parse_callback(&query),
        Ok((token.clone(), "/docs?q=1".to_owned()))
    );
    assert_eq!(parse_callback("path=%2F"), Err(CallbackRejected::NoToken));
    for evil in [
        "%2F%2Fevil.test",
        "https%3A%2F%2Fevil.test",
        "%2F%5Cevil.test",
    ] {
        assert_eq!(
            parse_callback(&format!("token=t&path={evil}")),
            Err(CallbackRejected::BadPath),
            "{evil}"
        );
    }
    assert_eq!(local_path("//evil.test"), "/");
    assert_eq!(local_path("/a?b=c"), "/a?b=c");
}

#[test]
fn the_login_url_carries_host_path_and_nonce_encoded() {
    let url = login_url(
        "https://id.corp.test/",
        "wiki.corp.test:8443",
        "/a b?x=1&y",
        "n0",
    );
    assert_eq!(
        url,
        "https://id.corp.test/v1/access/authorize?host=wiki.corp.test%3A8443&path=%2Fa+b%3Fx%3D1%26y&nonce=n0"
    );
}

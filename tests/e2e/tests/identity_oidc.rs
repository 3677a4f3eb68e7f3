//! Identity against real OpenID Connect providers (the npm `oidc-provider` and a deliberately
//! broken one), with the real `gatehouse-identity` binary: code + PKCE login, the device grant,
//! the loopback code grant, enrollment, the profile, the config feed (snapshot, deltas,
//! revocation, resume), provider key rotation, and every way an ID token can be bad.

use std::io::{BufRead as _, BufReader};
use std::time::Duration;

use base64::Engine as _;
use e2e::browser::{Browser, Page, Stop};
use e2e::identity::{Identity, UpstreamProvider};
use e2e::oidc::{BrokenMode, BrokenProvider, OidcClient, OidcProvider, ALICE, BOB};
use e2e::{keypair, skip_unless_node, TestDir};
use serde_json::{json, Value};
use sha2::Digest as _;

const CLIENT_ID: &str = "gatehouse-identity";
const CLIENT_SECRET: &str = "identity-test-secret";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A real `oidc-provider` registered as `corp` and identity using it.
fn start_corp(dir: &TestDir) -> anyhow::Result<(OidcProvider, Identity)> {
    let port = Identity::free_loopback_port()?;
    let provider = OidcProvider::start(
        dir,
        OidcClient {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![Identity::redirect_uri(port, "corp")],
        },
    )?;
    let identity = Identity::start(dir, port, &[upstream("corp", provider.issuer())])?;
    Ok((provider, identity))
}

fn upstream(id: &str, issuer: &str) -> UpstreamProvider {
    UpstreamProvider {
        id: id.into(),
        issuer: issuer.into(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        groups_claim: "groups".into(),
    }
}

fn page(stop: Stop) -> Page {
    match stop {
        Stop::Page(p) => p,
        Stop::Redirect(url) => panic!("expected a page, got a redirect to {url}"),
    }
}

fn post_form(identity: &Identity, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let response = client
        .post(identity.url(path))
        .form(form)
        .send()
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn admin(identity: &Identity, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut request = client
        .request(method.parse().expect("method"), identity.url(path))
        .bearer_auth(identity.admin_token());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().expect("admin request");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn revoke_device(identity: &Identity, device_id: &str) {
    let (status, answer) = admin(
        identity,
        "POST",
        &format!("/admin/v1/devices/{device_id}/revoke"),
        None,
    );
    assert_eq!(status, 200, "{answer}");
}

/// A new edge service token; its answer holds the `secret`.
fn create_edge_token(identity: &Identity, name: &str) -> Value {
    let (status, created) = admin(
        identity,
        "POST",
        "/admin/v1/service-tokens",
        Some(json!({"name": name, "kind": "edge"})),
    );
    assert_eq!(status, 201, "{created}");
    created
}

fn enroll(identity: &Identity, access_token: &str, public_key: &str) -> (u16, Value) {
    let response = reqwest::blocking::Client::new()
        .post(identity.url("/v1/enroll"))
        .bearer_auth(access_token)
        .json(&json!({
            "public_key": public_key,
            "posture": {"os": "linux", "os_version": "6.1", "hostname": "laptop",
                        "client_version": "0.1.0", "future_fact": true}
        }))
        .send()
        .expect("enroll");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

/// The device grant through the browser: returns the access token.
fn device_login(identity: &Identity, browser: &Browser, user: &str, password: &str) -> String {
    let (status, started) = post_form(
        identity,
        "/oauth/device_authorization",
        &[("client_id", "gatehouse")],
    );
    assert_eq!(status, 200, "{started}");
    let device_code = started["device_code"]
        .as_str()
        .expect("device_code")
        .to_owned();
    let interval = started["interval"].as_u64().expect("interval");
    let poll = || {
        post_form(
            identity,
            "/oauth/token",
            &[
                ("grant_type", DEVICE_GRANT),
                ("client_id", "gatehouse"),
                ("device_code", &device_code),
            ],
        )
    };
    let (status, pending) = poll();
    assert_eq!(
        (status, pending["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    let (_, fast) = poll();
    assert_eq!(
        fast["error"], "slow_down",
        "polling faster than the interval"
    );

    let complete = started["verification_uri_complete"].as_str().expect("uri");
    let approval = page(
        browser
            .login_through(complete, user, password, None)
            .expect("login"),
    );
    assert_eq!(approval.status, 200, "{}", approval.body);
    let user_code = started["user_code"].as_str().expect("user_code");
    assert!(approval.body.contains(user_code), "{}", approval.body);
    let response = browser
        .client()
        .post(identity.url("/device"))
        .form(&[("user_code", user_code), ("action", "approve")])
        .send()
        .expect("approve");
    assert_eq!(response.status().as_u16(), 200);

    // slow_down added 5 s to the interval.
    std::thread::sleep(Duration::from_secs(interval + 5));
    let (status, token) = poll();
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    let (status, again) = poll();
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant")),
        "one use"
    );
    token["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// An NDJSON feed subscription.
struct Feed {
    lines: BufReader<reqwest::blocking::Response>,
}

impl Feed {
    fn open(identity: &Identity, token: &str, since: Option<u64>) -> Feed {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client");
        let url = match since {
            Some(s) => identity.url(&format!("/v1/feed?since={s}")),
            None => identity.url("/v1/feed"),
        };
        let response = client.get(url).bearer_auth(token).send().expect("feed");
        assert_eq!(response.status().as_u16(), 200);
        Feed {
            lines: BufReader::new(response),
        }
    }

    fn next(&mut self) -> Value {
        let mut line = String::new();
        self.lines.read_line(&mut line).expect("feed line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad feed line {line:?}: {e}"))
    }

    /// The next message that is not a heartbeat.
    fn next_change(&mut self) -> Value {
        loop {
            let m = self.next();
            if m["type"] != "heartbeat" {
                return m;
            }
        }
    }
}

#[test]
fn device_grant_login_enrolls_and_the_feed_carries_devices_revocations_and_resumes() {
    skip_unless_node!();
    let dir = TestDir::new("identity-device").expect("dir");
    let (_provider, identity) = start_corp(&dir).expect("start");
    let browser = Browser::new().expect("browser");
    let access = device_login(&identity, &browser, ALICE.username, ALICE.password);

    let (_, public_key) = keypair();
    let (status, enrolled) = enroll(&identity, &access, &public_key);
    assert_eq!(status, 201, "{enrolled}");
    let profile = &enrolled["profile"];
    assert_eq!(profile["addresses"][0], "100.64.0.2/32");
    assert!(profile["addresses"][1]
        .as_str()
        .expect("v6")
        .ends_with("::2/128"));
    assert_eq!(profile["edges"][0]["name"], "test1");
    assert_eq!(profile["routes"], json!(["10.0.0.0/8"]));
    let device_id = enrolled["device_id"]
        .as_str()
        .expect("device_id")
        .to_owned();
    let (status, again) = enroll(&identity, &access, &public_key);
    assert_eq!(
        (status, &again["device_id"]),
        (200, &json!(device_id)),
        "same key, same device"
    );
    let (status, bad) = enroll(&identity, &access, "AAAA");
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _) = enroll(&identity, "not-a-token", &public_key);
    assert_eq!(status, 401);

    let device_token = enrolled["device_token"].as_str().expect("device_token");
    let fetched: Value = reqwest::blocking::Client::new()
        .get(identity.url("/v1/profile"))
        .bearer_auth(device_token)
        .send()
        .expect("profile")
        .json()
        .expect("json");
    assert_eq!(fetched["addresses"], profile["addresses"]);

    let created = create_edge_token(&identity, "edge-1");
    let edge_token = created["secret"].as_str().expect("secret").to_owned();

    let mut feed = Feed::open(&identity, &edge_token, None);
    let snapshot = feed.next();
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    let devices = snapshot["state"]["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["public_key"], json!(public_key));
    assert_eq!(devices[0]["user"]["email"], ALICE.email);
    let mut groups = ALICE.groups.to_vec();
    groups.sort_unstable();
    assert_eq!(devices[0]["user"]["groups"], json!(groups));
    assert_eq!(devices[0]["user"]["idp"], "corp");
    assert_eq!(devices[0]["posture"]["os_version"], "6.1");
    assert!(!snapshot["state"]["signing_keys"]["keys"]
        .as_array()
        .expect("keys")
        .is_empty());
    let revision = snapshot["revision"].as_u64().expect("revision");

    revoke_device(&identity, &device_id);
    let removed = feed.next_change();
    assert_eq!(removed["type"], "delta");
    assert_eq!(removed["revision"].as_u64(), Some(revision + 1));
    assert_eq!(removed["change"]["kind"], "device_removed");
    assert_eq!(removed["change"]["device_id"], json!(device_id));
    let (status, _) = reqwest::blocking::Client::new()
        .get(identity.url("/v1/profile"))
        .bearer_auth(device_token)
        .send()
        .map(|r| (r.status().as_u16(), ()))
        .expect("profile");
    assert_eq!(status, 401, "a revoked device's token is refused");
    drop(feed);

    // A change while the edge is away arrives as a delta when it resumes.
    let (_, second_key) = keypair();
    let (status, second) = enroll(&identity, &access, &second_key);
    assert_eq!(status, 201, "{second}");
    let mut resumed = Feed::open(&identity, &edge_token, Some(revision + 1));
    let delta = resumed.next_change();
    assert_eq!(
        delta["type"], "delta",
        "resume gives deltas, not a snapshot: {delta}"
    );
    assert_eq!(delta["revision"].as_u64(), Some(revision + 2));
    assert_eq!(delta["change"]["kind"], "device_upserted");
    assert_eq!(delta["change"]["device"]["public_key"], json!(second_key));
    assert_eq!(
        delta["change"]["device"]["addresses"][0], "100.64.0.3/32",
        "a revoked device's address is not reused while its row exists"
    );

    // The edge asks identity for an application assertion for the device's user.
    let jwks: identity_claims::Jwks =
        reqwest::blocking::get(identity.url("/.well-known/jwks.json"))
            .expect("jwks")
            .json()
            .expect("json");
    let keys = identity_claims::KeySet::from_jwks(&jwks);
    let now = identity_claims::UnixTime::from_system_time(std::time::SystemTime::now());
    let expect = |audience: &str| identity_claims::Expectation {
        issuer: identity.base_url().to_owned(),
        audience: audience.to_owned(),
    };
    let second_id = second["device_id"].as_str().expect("device_id");
    let assert_for = |device: &str| {
        reqwest::blocking::Client::new()
            .post(identity.url("/v1/assertions"))
            .bearer_auth(&edge_token)
            .json(&json!({"audience": "wiki", "device_id": device}))
            .send()
            .expect("assertion")
    };
    let answer: Value = assert_for(second_id).json().expect("json");
    let assertion: identity_claims::AppAssertion = identity_claims::verify(
        answer["token"].as_str().expect("token"),
        &keys,
        &expect("wiki"),
        now,
    )
    .expect("a valid assertion for the application");
    assert_eq!(assertion.user.email, ALICE.email);
    assert_eq!(assertion.device_id.as_deref(), Some(second_id));
    assert_eq!(assertion.posture.expect("posture").os_version, "6.1");
    assert!(identity_claims::verify::<identity_claims::AppAssertion>(
        answer["token"].as_str().expect("token"),
        &keys,
        &expect("another-app"),
        now
    )
    .is_err());
    assert_eq!(
        assert_for(&device_id).status().as_u16(),
        404,
        "no assertion for a revoked device"
    );

    // A connector exchanges its credential secret for a tunnel credential edges verify.
    let (status, connector) = admin(
        &identity,
        "POST",
        "/admin/v1/connectors",
        Some(json!({"name": "dc1", "routes": ["10.1.0.0/16"]})),
    );
    assert_eq!(status, 201, "{connector}");
    let exchange = || {
        reqwest::blocking::Client::new()
            .post(identity.url("/v1/connector-credential"))
            .bearer_auth(connector["secret"].as_str().expect("secret"))
            .send()
            .expect("credential")
    };
    let answer: Value = exchange().json().expect("json");
    let credential: identity_claims::ConnectorCredential = identity_claims::verify(
        answer["token"].as_str().expect("token"),
        &keys,
        &expect("gatehouse-edge"),
        now,
    )
    .expect("a valid connector credential");
    let connector_id = connector["connector"]["id"].as_str().expect("connector id");
    assert_eq!(credential.connector_id, connector_id);
    let (status, _) = admin(
        &identity,
        "POST",
        &format!("/admin/v1/connectors/{connector_id}/revoke"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        exchange().status().as_u16(),
        401,
        "a revoked connector gets no credential"
    );
    // (Enrollment binds the session in a second revision: another device_upserted first.)
    let mut connector_delta = resumed.next_change();
    while connector_delta["change"]["kind"] == "device_upserted" {
        connector_delta = resumed.next_change();
    }
    assert_eq!(
        connector_delta["change"]["kind"], "connector_upserted",
        "{connector_delta}"
    );
    let revoked = resumed.next_change();
    assert_eq!(revoked["change"]["connector"]["revoked"], true, "{revoked}");

    let bad = reqwest::blocking::Client::new()
        .get(identity.url("/v1/feed"))
        .bearer_auth("ghst_tok_x_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .send()
        .expect("feed");
    assert_eq!(bad.status().as_u16(), 401);
}

fn pkce() -> (String, String) {
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn rand_bytes() -> [u8; 32] {
    use rand::RngCore as _;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

fn authorize_url(identity: &Identity, redirect_uri: &str, state: &str, challenge: &str) -> String {
    let mut url = url::Url::parse(&identity.url("/oauth/authorize")).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "gatehouse")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[test]
fn loopback_code_grant_with_pkce_and_a_denied_device_request() {
    skip_unless_node!();
    let dir = TestDir::new("identity-loopback").expect("dir");
    let (_provider, identity) = start_corp(&dir).expect("start");
    let browser = Browser::new().expect("browser");
    let redirect_uri = "http://127.0.0.1:49152/callback";

    let (verifier, challenge) = pkce();
    let url = authorize_url(&identity, redirect_uri, "state-1", &challenge);
    let stop = browser
        .login_through(&url, BOB.username, BOB.password, Some(redirect_uri))
        .expect("login");
    let Stop::Redirect(back) = stop else {
        panic!("expected the loopback redirect, got {stop:?}")
    };
    assert_eq!(query(&back, "state").as_deref(), Some("state-1"));
    let code = query(&back, "code").expect("code");
    let redeem = |code: &str, verifier: &str| {
        post_form(
            &identity,
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "gatehouse"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ],
        )
    };
    let (wrong, _) = pkce();
    let (status, refused) = redeem(&code, &wrong);
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, used) = redeem(&code, &verifier);
    assert_eq!(
        (status, used["error"].as_str()),
        (400, Some("invalid_grant")),
        "codes are one-shot"
    );

    // Signed in already: the browser goes straight back with a new code.
    let (verifier, challenge) = pkce();
    let url = authorize_url(&identity, redirect_uri, "state-2", &challenge);
    let Stop::Redirect(back) = browser
        .navigate(&url, Some(redirect_uri))
        .expect("authorize")
    else {
        panic!("expected a redirect")
    };
    let (status, token) = redeem(&query(&back, "code").expect("code"), &verifier);
    assert_eq!(status, 200, "{token}");
    let (_, public_key) = keypair();
    let (status, enrolled) = enroll(
        &identity,
        token["access_token"].as_str().expect("token"),
        &public_key,
    );
    assert_eq!(status, 201, "{enrolled}");

    let bad = authorize_url(
        &identity,
        "http://localhost:49152/callback",
        "s",
        &challenge,
    );
    let page = page(browser.navigate(&bad, None).expect("authorize"));
    assert_eq!(
        page.status, 400,
        "localhost is not a loopback redirect (RFC 8252 §8.3)"
    );

    // A denied device request answers access_denied.
    let (_, started) = post_form(
        &identity,
        "/oauth/device_authorization",
        &[("client_id", "gatehouse")],
    );
    let user_code = started["user_code"].as_str().expect("user_code");
    let response = browser
        .client()
        .post(identity.url("/device"))
        .form(&[("user_code", user_code), ("action", "deny")])
        .send()
        .expect("deny");
    assert_eq!(response.status().as_u16(), 200);
    let (status, denied) = post_form(
        &identity,
        "/oauth/token",
        &[
            ("grant_type", DEVICE_GRANT),
            ("client_id", "gatehouse"),
            (
                "device_code",
                started["device_code"].as_str().expect("code"),
            ),
        ],
    );
    assert_eq!(
        (status, denied["error"].as_str()),
        (400, Some("access_denied"))
    );
}

/// Logs in through `/login` and says whether identity accepted it.
fn login_accepted(identity: &Identity, provider: &str, account: (&str, &str)) -> (bool, Page) {
    let browser = Browser::new().expect("browser");
    let url = identity.url(&format!("/login?provider={provider}&return_to=/healthz"));
    let page = page(
        browser
            .login_through(&url, account.0, account.1, None)
            .expect("login"),
    );
    (page.url.path() == "/healthz" && page.body == "ok", page)
}

#[test]
fn provider_key_rotation_is_followed() {
    skip_unless_node!();
    let dir = TestDir::new("identity-rotation").expect("dir");
    let (provider, identity) = start_corp(&dir).expect("start");
    let alice = (ALICE.username, ALICE.password);
    let (ok, page) = login_accepted(&identity, "corp", alice);
    assert!(ok, "{page:?}");
    // The old key leaves the JWKS at once: identity's cached JWKS no longer has the new kid.
    provider.rotate_key(true).expect("rotate");
    let (ok, page) = login_accepted(&identity, "corp", alice);
    assert!(ok, "login after the provider rotated its key: {page:?}");
}

#[test]
fn every_kind_of_bad_id_token_or_state_is_rejected() {
    skip_unless_node!();
    let dir = TestDir::new("identity-broken").expect("dir");
    let port = Identity::free_loopback_port().expect("port");
    let broken = BrokenProvider::start(
        &dir,
        &OidcClient {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![Identity::redirect_uri(port, "broken")],
        },
        BrokenMode::Ok,
    )
    .expect("broken provider");
    let identity =
        Identity::start(&dir, port, &[upstream("broken", broken.issuer())]).expect("identity");
    let any = ("alice", "unused");
    let (ok, page) = login_accepted(&identity, "broken", any);
    assert!(ok, "the control mode must log in: {page:?}");
    for mode in [
        BrokenMode::WrongNonce,
        BrokenMode::Expired,
        BrokenMode::UnknownKey,
        BrokenMode::BadSignature,
        BrokenMode::AlgNone,
        BrokenMode::Hs256PublicKey,
        BrokenMode::WrongIss,
        BrokenMode::WrongAud,
        BrokenMode::WrongAzp,
        BrokenMode::WrongState,
    ] {
        broken.set_mode(mode).expect("mode");
        let (ok, page) = login_accepted(&identity, "broken", any);
        assert!(!ok, "{} was accepted", mode.as_str());
        assert!(
            (400..500).contains(&page.status),
            "{}: status {} {}",
            mode.as_str(),
            page.status,
            page.body
        );
        assert!(
            page.body.contains("Sign-in failed"),
            "{}: {}",
            mode.as_str(),
            page.body
        );
    }
    broken.set_mode(BrokenMode::Ok).expect("mode");
    let (status, events) = admin(&identity, "GET", "/admin/v1/audit?action=login", None);
    assert_eq!(status, 200, "{events}");
    let failures = events["events"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["outcome"] == "failure").count())
        .unwrap_or(0);
    assert!(failures >= 10, "each rejected login is audited: {events}");
}

#[test]
fn an_edge_keeps_its_cached_copy_while_identity_is_down_and_resumes_after() {
    skip_unless_node!();
    let dir = TestDir::new("identity-edge-cache").expect("dir");
    let (_provider, mut identity) = start_corp(&dir).expect("start");
    let browser = Browser::new().expect("browser");
    let access = device_login(&identity, &browser, ALICE.username, ALICE.password);
    let (_, public_key) = keypair();
    let (status, enrolled) = enroll(&identity, &access, &public_key);
    assert_eq!(status, 201, "{enrolled}");
    let created = create_edge_token(&identity, "edge-cache");
    let token_file = dir
        .write(
            "edge.token",
            format!("{}\n", created["secret"].as_str().expect("secret")),
        )
        .expect("token file");
    let cache = dir.join("edge-cache.json");
    let edge_log = dir.join("edge-feed.log");
    let base_url = identity.base_url().to_owned();
    let spawn_edge = || {
        let mut command = std::process::Command::new(e2e::bin("gatehouse-edge"));
        command
            .arg("feed")
            .arg("--identity")
            .arg(&base_url)
            .arg("--token-file")
            .arg(&token_file)
            .arg("--cache")
            .arg(&cache)
            .env("RUST_LOG", "info");
        e2e::Proc::spawn(command, "gatehouse-edge feed", &edge_log).expect("edge")
    };
    let mut edge = spawn_edge();
    edge.wait_for_log(
        "\"kind\":\"snapshot\",\"devices\":1",
        Duration::from_secs(10),
    )
    .expect("snapshot with the device");
    // The cache is written (atomically) right after the line is printed.
    let cached_with_key =
        || std::fs::read_to_string(&cache).is_ok_and(|c| c.contains(public_key.as_str()));
    assert!(
        e2e::wait_until(
            Duration::from_secs(5),
            Duration::from_millis(20),
            cached_with_key
        ),
        "the edge caches the snapshot"
    );
    edge.stop().expect("stop edge");

    identity.stop().expect("stop identity");
    let cached = std::fs::read_to_string(&cache).expect("cache");
    assert!(
        cached.contains(&public_key),
        "the cache holds the device: {cached}"
    );
    // With identity down the edge starts from its cache and keeps retrying.
    let mut edge = spawn_edge();
    std::thread::sleep(Duration::from_secs(2));
    assert!(edge.is_running(), "{}", edge.log());
    assert_eq!(
        std::fs::read_to_string(&cache).expect("cache"),
        cached,
        "the cache is kept"
    );

    identity.restart().expect("restart identity");
    let device_id = enrolled["device_id"].as_str().expect("device_id");
    revoke_device(&identity, device_id);
    edge.wait_for_log("\"kind\":\"delta\",\"devices\":0", Duration::from_secs(20))
        .expect("the revocation arrives as a delta after the edge resumes");
    assert!(
        !edge.log().contains("\"kind\":\"snapshot\",\"devices\":0"),
        "resumed from the cached revision, not from a new snapshot: {}",
        edge.log()
    );
}

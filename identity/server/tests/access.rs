//! Clientless access on a loopback port: `/v1/access/authorize` (login redirect, the access
//! session token, open-redirect refusals), `/v1/access/logout`, assertions for a session, and
//! machine service tokens in the feed.

#![allow(clippy::unwrap_used)]

use argon2::password_hash::{PasswordHasher as _, SaltString};
use identity_claims::{AccessSession, AppAssertion, Expectation, Jwks, KeySet, UnixTime};
use identity_core::service_token::ServiceTokenSecret;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
const EMAIL: &str = "alice@example.com";
const PASSWORD: &str = "correct horse battery staple";
const NONCE: &str = "nonce_0123456789-abcdef";

const POLICY: &str = r#"version = 1

[[applications]]
name = "app"
destinations = [{ host = "app.example.com" }, { host = "*.tools.example.com" }, { cidr = "10.0.0.0/8" }]

[[applications.policies]]
name = "eng"
action = "allow"
include = [{ group = "eng" }]
"#;

struct Server {
    base: String,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server with the local provider (one user, [`EMAIL`] / [`PASSWORD`]) and [`POLICY`].
async fn start() -> Server {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gh-identity-access-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    // The smallest argon2id parameters: the test is about the flow, not the hash's cost.
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"access-test-salt").unwrap();
    let hash = hasher.hash_password(PASSWORD.as_bytes(), &salt).unwrap();
    std::fs::write(
        dir.join("users.toml"),
        format!("[[users]]\nemail = \"{EMAIL}\"\ngroups = [\"eng\"]\npassword_hash = \"{hash}\"\n"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let text = format!(
        "listen = \"{addr}\"\nadmin_token = \"{ADMIN_TOKEN}\"\ndatabase = \"{}\"\n\
         [[providers]]\nid = \"local\"\nkind = \"local\"\nusers_file = \"users.toml\"\n",
        dir.join("identity.db").display()
    );
    let config = identity::parse_config(&text, &dir).unwrap();
    tokio::spawn(identity::serve_listener(listener, config));
    let server = Server {
        base: format!("http://{addr}"),
        dir,
    };
    let (status, body) = server
        .admin(
            reqwest::Method::POST,
            "/policy",
            Some(json!({ "format": "toml", "source": POLICY })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    server
}

/// A browser: a cookie jar, redirects followed by hand.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in a {} answer", resp.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

fn query_of(url: &str) -> Vec<(String, String)> {
    // Locations are absolute or relative to identity.
    let url = url::Url::parse("http://relative.invalid/")
        .unwrap()
        .join(url)
        .unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {name} in {pairs:?}"))
}

impl Server {
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}/admin/v1{path}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    fn authorize_url(&self, host: &str, path: &str, nonce: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("host", host)
            .append_pair("path", path)
            .append_pair("nonce", nonce)
            .finish();
        format!("{}/v1/access/authorize?{query}", self.base)
    }

    /// Signs `browser` in through the local provider, starting from `/login?…` (a relative
    /// location); returns where identity sends the browser afterwards.
    async fn log_in(&self, browser: &reqwest::Client, login: &str) -> String {
        let resp = browser
            .get(format!("{}{login}", self.base))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_redirection(), "{}", resp.status());
        let authorize = location(&resp);
        let mut form = query_of(&authorize);
        form.push(("username".into(), EMAIL.into()));
        form.push(("password".into(), PASSWORD.into()));
        let resp = browser
            .post(format!("{}/local-idp/authorize", self.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_redirection(), "{}", resp.status());
        let callback = location(&resp);
        let resp = browser.get(&callback).send().await.unwrap();
        assert!(resp.status().is_redirection(), "{}", resp.status());
        location(&resp)
    }

    /// Logs in and follows back to authorize: the callback location.
    async fn authorized(&self, browser: &reqwest::Client, host: &str, path: &str) -> String {
        let resp = browser
            .get(self.authorize_url(host, path, NONCE))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        let login = location(&resp);
        let back = self.log_in(browser, &login).await;
        assert!(back.starts_with("/v1/access/authorize?"), "{back}");
        let resp = browser
            .get(format!("{}{back}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
        location(&resp)
    }

    async fn keys(&self) -> KeySet {
        let jwks: Jwks = reqwest::get(format!("{}/.well-known/jwks.json", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        KeySet::from_jwks(&jwks)
    }

    async fn verify_access(&self, token: &str, host: &str) -> AccessSession {
        identity_claims::verify(
            token,
            &self.keys().await,
            &Expectation {
                issuer: self.base.clone(),
                audience: format!("gatehouse-access:{host}"),
            },
            UnixTime(now()),
        )
        .unwrap()
    }

    /// A new service token of `kind`: (id, secret).
    async fn service_token(&self, kind: &str) -> (String, String) {
        let (status, body) = self
            .admin(
                reqwest::Method::POST,
                "/service-tokens",
                Some(json!({ "name": format!("{kind} token"), "kind": kind })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["token_id"].as_str().unwrap().to_owned(),
            body["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// The first `n` lines of the feed from `since`.
    async fn feed(&self, edge: &str, since: Option<u64>, n: usize) -> Vec<Value> {
        let query = since.map_or_else(String::new, |s| format!("?since={s}"));
        let mut resp = reqwest::Client::new()
            .get(format!("{}/v1/feed{query}", self.base))
            .bearer_auth(edge)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut text = String::new();
        while text.matches('\n').count() < n {
            let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
                .await
                .expect("feed line within 10 s")
                .unwrap()
                .expect("feed still open");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        text.lines()
            .take(n)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    async fn assertion(&self, edge: &str, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v1/assertions", self.base))
            .bearer_auth(edge)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token_of(callback: &str) -> String {
    param(&query_of(callback), "token")
}

#[tokio::test]
async fn authorize_logs_the_browser_in_then_sends_it_back_with_an_access_session() {
    let server = start().await;
    let browser = browser();
    let resp = browser
        .get(server.authorize_url("App.Example.com:8443", "/docs?a=1&b=2", NONCE))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let login = location(&resp);
    let return_to = param(&query_of(&login), "return_to");
    assert!(login.starts_with("/login?return_to="), "{login}");
    assert_eq!(
        param(&query_of(&return_to), "host"),
        "app.example.com:8443",
        "{return_to}"
    );

    let back = server.log_in(&browser, &login).await;
    assert_eq!(back, return_to);
    let resp = browser
        .get(format!("{}{back}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    let callback = location(&resp);
    assert!(
        callback.starts_with("https://app.example.com:8443/.gatehouse/callback?token="),
        "{callback}"
    );
    let pairs = query_of(&callback);
    assert_eq!(param(&pairs, "path"), "/docs?a=1&b=2");

    let claims = server
        .verify_access(&param(&pairs, "token"), "app.example.com")
        .await;
    assert_eq!(claims.nonce, NONCE);
    assert_eq!(claims.user.email, EMAIL);
    assert_eq!(claims.user.groups, ["eng"]);
    assert!(!claims.sid.is_empty());
    // The browser session lives 12 h by default, the access session 8 h.
    let lifetime = claims.common.exp.0 - claims.common.iat.0;
    assert_eq!(lifetime, 8 * 3600);
    let user_id = claims.common.sub.clone();
    let (_, sessions) = server
        .admin(
            reqwest::Method::GET,
            &format!("/sessions?user={user_id}"),
            None,
        )
        .await;
    let session = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == claims.sid.as_str())
        .unwrap();
    assert!(claims.common.exp.0 <= session["expires_at"].as_u64().unwrap());

    // A wildcard destination covers the names below it; the token is for that host only.
    let resp = browser
        .get(server.authorize_url("wiki.tools.example.com", "/", NONCE))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let callback = location(&resp);
    assert!(callback.starts_with("https://wiki.tools.example.com/.gatehouse/callback?"));
    let token = token_of(&callback);
    server.verify_access(&token, "wiki.tools.example.com").await;
    let wrong_host = identity_claims::verify::<AccessSession>(
        &token,
        &server.keys().await,
        &Expectation {
            issuer: server.base.clone(),
            audience: "gatehouse-access:app.example.com".into(),
        },
        UnixTime(now()),
    );
    assert!(wrong_host.is_err());

    let (_, audit) = server
        .admin(reqwest::Method::GET, "/audit?action=access_grant", None)
        .await;
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{audit}");
    assert!(
        !audit.to_string().contains(&token),
        "no token in the audit log"
    );
}

#[tokio::test]
async fn open_redirect_attempts_are_refused_without_a_location() {
    let server = start().await;
    let browser = browser();
    // Signed in, so a bad request cannot hide behind the login redirect.
    server.authorized(&browser, "app.example.com", "/").await;
    let cases = [
        ("other.example.com", "/", NONCE),
        ("evil.com", "/", NONCE),
        ("tools.example.com", "/", NONCE),
        ("app.example.com@evil.com", "/", NONCE),
        ("evil.com@app.example.com", "/", NONCE),
        ("app.example.com/evil.com", "/", NONCE),
        ("app.example.com:99999", "/", NONCE),
        ("app.example.com", "//evil.com", NONCE),
        ("app.example.com", "https://evil.com", NONCE),
        ("app.example.com", "/\\evil.com", NONCE),
        ("app.example.com", "/", "short"),
        ("app.example.com", "/", "bad nonce with spaces!"),
    ];
    for (host, path, nonce) in cases {
        let resp = browser
            .get(server.authorize_url(host, path, nonce))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{host} {path} {nonce}");
        assert!(resp.headers().get("location").is_none(), "{host} {path}");
    }
    let resp = browser
        .get(server.authorize_url("evil.com", "/", NONCE))
        .send()
        .await
        .unwrap();
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("not an application of this deployment"));
    for query in ["", "?host=app.example.com&nonce=nonce_0123456789-abcdef"] {
        let resp = browser
            .get(format!("{}/v1/access/authorize{query}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{query:?}");
    }
}

#[tokio::test]
async fn logout_revokes_the_session_for_every_edge_and_the_next_authorize_logs_in_again() {
    let server = start().await;
    let (_, edge) = server.service_token("edge").await;
    let browser = browser();
    let callback = server.authorized(&browser, "app.example.com", "/").await;
    let claims = server
        .verify_access(&token_of(&callback), "app.example.com")
        .await;

    let resp = browser
        .get(format!("{}/v1/access/logout", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cleared = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("gh_session=;"));
    assert!(cleared, "{:?}", resp.headers());
    assert!(resp.text().await.unwrap().contains("You are signed out"));

    let snapshot = &server.feed(&edge, None, 1).await[0];
    let revoked = snapshot["state"]["revoked_sessions"].as_array().unwrap();
    assert!(
        revoked
            .iter()
            .any(|s| s["session_id"] == claims.sid.as_str()),
        "{snapshot}"
    );
    let resp = browser
        .get(server.authorize_url("app.example.com", "/", NONCE))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert!(location(&resp).starts_with("/login?"));

    // Signed out already (and a fresh browser without any cookie): the same page.
    for client in [browser, self::browser()] {
        let resp = client
            .get(format!("{}/v1/access/logout", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.text().await.unwrap().contains("You are signed out"));
    }
}

#[tokio::test]
async fn assertions_for_a_session_carry_no_device_and_stop_with_the_session() {
    let server = start().await;
    let (_, edge) = server.service_token("edge").await;
    let browser = browser();
    let callback = server.authorized(&browser, "app.example.com", "/").await;
    let access = server
        .verify_access(&token_of(&callback), "app.example.com")
        .await;

    let resp = server
        .assertion(
            &edge,
            json!({ "audience": "app", "session_id": access.sid }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let assertion: AppAssertion = identity_claims::verify(
        body["token"].as_str().unwrap(),
        &server.keys().await,
        &Expectation {
            issuer: server.base.clone(),
            audience: "app".into(),
        },
        UnixTime(now()),
    )
    .unwrap();
    assert_eq!(assertion.common.sub, access.common.sub);
    assert_eq!(assertion.user.email, EMAIL);
    assert_eq!(assertion.user.groups, ["eng"]);
    assert_eq!(assertion.user.idp, "local");
    assert_eq!(assertion.device_id, None);
    assert_eq!(assertion.posture, None);
    assert!(!body["token"].as_str().unwrap().is_empty());

    for bad in [
        json!({ "audience": "app", "session_id": access.sid, "device_id": "dev_1" }),
        json!({ "audience": "app" }),
    ] {
        let resp = server.assertion(&edge, bad.clone()).await;
        assert_eq!(resp.status(), 400, "{bad}");
    }
    let resp = server
        .assertion(
            &edge,
            json!({ "audience": "app", "session_id": "ses_unknown" }),
        )
        .await;
    assert_eq!(resp.status(), 404);

    let (status, _) = server
        .admin(
            reqwest::Method::POST,
            &format!("/sessions/{}/revoke", access.sid),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let resp = server
        .assertion(
            &edge,
            json!({ "audience": "app", "session_id": access.sid }),
        )
        .await;
    assert_eq!(resp.status(), 404, "a revoked session gets no assertion");
}

#[tokio::test]
async fn machine_tokens_reach_the_feed_with_their_hash_and_leave_on_revocation() {
    let server = start().await;
    let (_, edge) = server.service_token("edge").await;
    let before = server.feed(&edge, None, 1).await[0]["revision"]
        .as_u64()
        .unwrap();
    let (id, secret) = server.service_token("machine").await;
    let hash = ServiceTokenSecret::parse(&secret).unwrap().sha256_hex();

    let delta = &server.feed(&edge, Some(before), 1).await[0];
    assert_eq!(delta["type"], "delta", "{delta}");
    assert_eq!(delta["change"]["kind"], "service_token_upserted");
    assert_eq!(delta["change"]["token"]["token_id"], id.as_str());
    assert_eq!(delta["change"]["token"]["secret_sha256"], hash.as_str());
    let snapshot = &server.feed(&edge, None, 1).await[0];
    let tokens = snapshot["state"]["service_tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1, "only machine tokens: {snapshot}");
    assert_eq!(tokens[0]["token_id"], id.as_str());
    assert_eq!(tokens[0]["name"], "machine token");
    assert!(ServiceTokenSecret::parse(&secret)
        .unwrap()
        .verify_hex(tokens[0]["secret_sha256"].as_str().unwrap()));

    let at = snapshot["revision"].as_u64().unwrap();
    let (status, _) = server
        .admin(
            reqwest::Method::POST,
            &format!("/service-tokens/{id}/revoke"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let delta = &server.feed(&edge, Some(at), 1).await[0];
    assert_eq!(delta["change"]["kind"], "service_token_revoked");
    let snapshot = &server.feed(&edge, None, 1).await[0];
    assert_eq!(snapshot["state"]["service_tokens"], json!([]));
    assert_eq!(
        snapshot["state"]["revoked_service_tokens"][0]["token_id"],
        id.as_str()
    );
}

//! `gatehouse login` end to end against a scripted identity on a loopback port: both sign-in
//! flows, enrollment and the state files. The fake speaks just enough HTTP/1.1 (one request per
//! connection) and answers from the contract's examples (docs/identity-api.md).

use super::*;
use client_core::enroll::EnrollRequest;
use oauth2::url::form_urlencoded;
use oauth2::{PkceCodeChallenge, PkceCodeVerifier};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// One request the fake received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    authorization: Option<String>,
    body: Vec<u8>,
}

impl Seen {
    fn form(&self) -> BTreeMap<String, String> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// An answer: status, extra header lines, body.
type Answer = (u16, String, String);

struct Fake {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    /// Serves `answer(request, how many earlier requests had the same path)` until dropped.
    async fn start(answer: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let request = read_request(&mut stream).await;
                let earlier = {
                    let mut log = log.lock().unwrap();
                    let earlier = log.iter().filter(|s| s.path == request.path).count();
                    log.push(request.clone());
                    earlier
                };
                let (status, headers, body) = answer(&request, earlier);
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{headers}\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(response.as_bytes()).await.unwrap();
                let _ = stream.shutdown().await;
            }
        });
        Self { addr, seen }
    }

    fn base(&self) -> Url {
        format!("http://{}/", self.addr).parse().unwrap()
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        let log = self.seen.lock().unwrap();
        log.iter().filter(|s| s.path == path).cloned().collect()
    }
}

async fn read_request(stream: &mut TcpStream) -> Seen {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert_ne!(n, 0, "client closed early");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap().split(' ');
    let method = parts.next().unwrap().to_owned();
    let target = parts.next().unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut length = 0;
    let mut authorization = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(": ") {
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap(),
                "authorization" => authorization = Some(value.to_owned()),
                _ => {}
            }
        }
    }
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
    }
    Seen {
        method,
        path: path.to_owned(),
        query: form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        authorization,
        body: buf[head_end..].to_vec(),
    }
}

fn edge_key() -> String {
    wg::keys::PrivateKey::from_bytes([7; 32])
        .public_key()
        .to_base64()
}

fn ok(body: serde_json::Value) -> Answer {
    (200, String::new(), body.to_string())
}

/// identity's answers for both flows; the token endpoint says `authorization_pending` once.
fn identity(request: &Seen, earlier: usize) -> Answer {
    match request.path.as_str() {
        "/oauth/device_authorization" => ok(serde_json::json!({
            "device_code": "device-code-secret",
            "user_code": "ABCD-EFGH",
            "verification_uri": "http://id.test/device",
            "verification_uri_complete": "http://id.test/device?user_code=ABCD-EFGH",
            "expires_in": 600,
            "interval": 0,
        })),
        "/oauth/authorize" => {
            let location = format!(
                "{}?code=auth-code&state={}",
                request.query["redirect_uri"], request.query["state"]
            );
            (302, format!("Location: {location}\r\n"), String::new())
        }
        "/oauth/token" if earlier == 0 && request.form()["grant_type"].contains("device_code") => (
            400,
            String::new(),
            r#"{"error":"authorization_pending"}"#.into(),
        ),
        "/oauth/token" => ok(serde_json::json!({
            "access_token": "user-session-jwt",
            "token_type": "Bearer",
            "expires_in": 3600,
        })),
        "/v1/enroll" => (
            201,
            String::new(),
            serde_json::json!({
                "device_id": "dev_42",
                "device_token": "device-session-jwt",
                "profile": {
                    "addresses": ["100.64.0.2/32", "fd7a:115c::2/128"],
                    "edges": [{"name": "fra", "endpoint": "192.0.2.1:51820",
                               "public_key": edge_key(), "region": "eu"}],
                    "routes": ["10.0.0.0/8", "app.example.com"],
                    "dns": ["100.64.0.1"],
                },
            })
            .to_string(),
        ),
        _ => (404, String::new(), r#"{"error":"not_found"}"#.into()),
    }
}

fn args(fake: &Fake, dir: &Path, browser: bool) -> LoginArgs {
    LoginArgs {
        identity: fake.base(),
        browser,
        state_dir: Some(dir.to_owned()),
        edge: None,
        hostname: Some("test-host".into()),
    }
}

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gatehouse-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Checks the enroll request, the stdout line and the state files.
fn check_enrollment(fake: &Fake, dir: &Path, line: &str) {
    let enrolls = fake.seen("/v1/enroll");
    assert_eq!(enrolls.len(), 1);
    assert_eq!(enrolls[0].method, "POST");
    assert_eq!(
        enrolls[0].authorization.as_deref(),
        Some("Bearer user-session-jwt")
    );
    let request: EnrollRequest = serde_json::from_slice(&enrolls[0].body).unwrap();
    assert_eq!(request.posture.hostname, "test-host");
    assert_eq!(request.posture.os, std::env::consts::OS);

    let config_path = dir.join("gatehouse.conf");
    assert_eq!(
        line,
        format!(
            "enrolled device=dev_42 addresses=100.64.0.2/32,fd7a:115c::2/128 config={}\n",
            config_path.display()
        )
    );
    let config =
        client_core::wg_quick::parse(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    assert_eq!(
        config.interface.private_key.public_key().to_base64(),
        request.public_key
    );
    assert_eq!(config.peers[0].public_key.to_base64(), edge_key());

    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("device.json")).unwrap()).unwrap();
    assert_eq!(state["version"], 1);
    assert_eq!(state["device_id"], "dev_42");
    assert_eq!(state["device_token"], "device-session-jwt");
    assert_eq!(state["public_key"], request.public_key.as_str());
    assert_eq!(state["profile"]["edges"][0]["name"], "fra");
    assert_eq!(state["posture"]["hostname"], "test-host");
    assert_eq!(state["posture"]["os"], std::env::consts::OS);
    assert!(state["enrolled_at"].as_u64().unwrap() > 0);

    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.to_owned()), 0o700);
    assert_eq!(mode(dir.join("device.json")), 0o600);
    assert_eq!(mode(config_path), 0o600);
}

#[tokio::test]
async fn device_flow_polls_until_approved_then_enrolls() {
    let fake = Fake::start(identity).await;
    let endpoints = Endpoints::new(&fake.base()).unwrap();
    let dir = temp_dir("device-flow");
    let opened = Mutex::new(Vec::new());
    let open = |url: &str, fallback: Option<&str>| {
        opened
            .lock()
            .unwrap()
            .push((url.to_owned(), fallback.map(str::to_owned)));
    };

    let line = run(&http(), &endpoints, args(&fake, &dir, false), &open)
        .await
        .unwrap();

    assert_eq!(
        *opened.lock().unwrap(),
        [("http://id.test/device?user_code=ABCD-EFGH".to_owned(), None)]
    );
    let authorization = fake.seen("/oauth/device_authorization");
    assert_eq!(authorization[0].form()["client_id"], "gatehouse");
    let polls = fake.seen("/oauth/token");
    assert_eq!(polls.len(), 2);
    for poll in &polls {
        let form = poll.form();
        assert_eq!(
            form["grant_type"],
            "urn:ietf:params:oauth:grant-type:device_code"
        );
        assert_eq!(form["device_code"], "device-code-secret");
        assert_eq!(form["client_id"], "gatehouse");
    }
    check_enrollment(&fake, &dir, &line);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn browser_flow_exchanges_the_code_with_the_pkce_verifier() {
    let fake = Fake::start(identity).await;
    let endpoints = Endpoints::new(&fake.base()).unwrap();
    let dir = temp_dir("browser-flow");
    // The "browser": follows identity's redirect to the loopback callback.
    let open = |url: &str, fallback: Option<&str>| {
        assert!(fallback.is_some());
        let url = url.to_owned();
        tokio::spawn(async move {
            let page = oauth2::reqwest::get(url).await.unwrap();
            assert_eq!(page.status(), 200);
        });
    };

    let line = run(&http(), &endpoints, args(&fake, &dir, true), &open)
        .await
        .unwrap();

    let authorize = &fake.seen("/oauth/authorize")[0].query;
    assert_eq!(authorize["response_type"], "code");
    assert_eq!(authorize["client_id"], "gatehouse");
    assert_eq!(authorize["code_challenge_method"], "S256");
    let redirect = &authorize["redirect_uri"];
    assert!(redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/callback"));
    let exchange = fake.seen("/oauth/token")[0].form();
    assert_eq!(exchange["grant_type"], "authorization_code");
    assert_eq!(exchange["code"], "auth-code");
    assert_eq!(&exchange["redirect_uri"], redirect);
    let verifier = PkceCodeVerifier::new(exchange["code_verifier"].clone());
    assert_eq!(
        PkceCodeChallenge::from_code_verifier_sha256(&verifier).as_str(),
        authorize["code_challenge"]
    );
    check_enrollment(&fake, &dir, &line);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn denied_device_login_writes_nothing() {
    let fake = Fake::start(|request, earlier| match request.path.as_str() {
        "/oauth/token" => (
            400,
            String::new(),
            r#"{"error":"access_denied","error_description":"user said no"}"#.into(),
        ),
        _ => identity(request, earlier),
    })
    .await;
    let endpoints = Endpoints::new(&fake.base()).unwrap();
    let dir = temp_dir("denied");

    let err = run(&http(), &endpoints, args(&fake, &dir, false), &|_, _| {})
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        "login failed (user said no): the login was denied"
    );
    assert!(fake.seen("/v1/enroll").is_empty());
    assert!(!dir.exists());
}

#[tokio::test]
async fn refused_enrollment_shows_status_and_error_and_writes_nothing() {
    let fake = Fake::start(|request, earlier| match request.path.as_str() {
        "/v1/enroll" => (
            403,
            String::new(),
            r#"{"error":"access_denied","error_description":"user disabled"}"#.into(),
        ),
        _ => identity(request, earlier),
    })
    .await;
    let endpoints = Endpoints::new(&fake.base()).unwrap();
    let dir = temp_dir("refused");

    let err = run(&http(), &endpoints, args(&fake, &dir, false), &|_, _| {})
        .await
        .unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        "identity refused the enrollment (403 Forbidden): access_denied: user disabled"
    );
    assert!(!dir.exists());
}

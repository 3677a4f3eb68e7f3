//! Tests of `decision_audit`: the outbox with explicit instants, the record builder, the
//! non-blocking queue, and uploads to a real identity server on loopback.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use super::*;
use identity_claims::feed::DeviceUser;
use identity_claims::Posture;

fn record(n: u64) -> DecisionRecord {
    DecisionRecord {
        at_ms: 1_767_600_000_000 + n,
        edge: "fra1".into(),
        reference: None,
        decision: DecisionOutcome::Deny,
        kind: DecisionKind::Flow,
        source_ip: "100.64.0.2".into(),
        device_id: None,
        user_id: None,
        email: None,
        destination: format!("10.1.2.3:{n}/tcp"),
        application: None,
        policy: None,
        reason: "no application covers this address".into(),
    }
}

fn ids(batch: &Batch) -> Vec<u64> {
    batch
        .records
        .iter()
        .map(|r| r.at_ms - 1_767_600_000_000)
        .collect()
}

const FLUSH: Duration = Duration::from_secs(1);

#[test]
fn a_batch_waits_for_the_flush_interval_unless_it_is_full() {
    let t0 = Instant::now();
    let mut outbox = Outbox::new(QUEUE_BOUND, FLUSH);
    assert_eq!(outbox.poll_timeout(), None);
    outbox.push(record(1), t0);
    outbox.push(record(2), t0 + Duration::from_millis(300));
    assert_eq!(outbox.poll_timeout(), Some(t0 + FLUSH));
    assert!(outbox.take_batch(t0 + Duration::from_millis(999)).is_none());
    let batch = outbox.take_batch(t0 + FLUSH).unwrap();
    assert_eq!(ids(&batch), [1, 2]);
    assert_eq!(outbox.poll_timeout(), None);

    for n in 0..1200 {
        outbox.push(record(n), t0);
    }
    assert_eq!(
        outbox.poll_timeout(),
        Some(t0),
        "a full batch is due at once"
    );
    assert_eq!(outbox.take_batch(t0).unwrap().records.len(), MAX_BATCH);
    assert_eq!(outbox.take_batch(t0).unwrap().records.len(), MAX_BATCH);
    assert!(
        outbox.take_batch(t0).is_none(),
        "the rest waits for company"
    );
    assert_eq!(outbox.take_batch(t0 + FLUSH).unwrap().records.len(), 200);
}

#[test]
fn the_body_is_a_decision_batch_within_the_byte_limit() {
    let t0 = Instant::now();
    let mut outbox = Outbox::new(QUEUE_BOUND, FLUSH);
    for n in 0..MAX_BATCH as u64 {
        let mut r = record(n);
        r.destination = format!("app.example/{}", "p".repeat(1000));
        outbox.push(r, t0);
    }
    let batch = outbox.take_batch(t0).unwrap();
    assert!(batch.body.len() <= MAX_BATCH_BYTES, "{}", batch.body.len());
    assert!(batch.records.len() < MAX_BATCH);
    let parsed: identity_claims::DecisionBatch = serde_json::from_slice(&batch.body).unwrap();
    assert_eq!(parsed.records, batch.records);
    parsed.validate().unwrap();
    assert_eq!(outbox.len(), MAX_BATCH - batch.records.len());
}

#[test]
fn beyond_the_cap_the_oldest_records_are_dropped_and_counted() {
    let t0 = Instant::now();
    let mut outbox = Outbox::new(3, FLUSH);
    for n in 0..5 {
        outbox.push(record(n), t0);
    }
    assert_eq!(outbox.take_evicted(), 2);
    assert_eq!(outbox.take_evicted(), 0);
    assert_eq!(ids(&outbox.take_batch(t0 + FLUSH).unwrap()), [2, 3, 4]);
}

#[test]
fn a_failed_batch_goes_back_in_front_and_waits_for_the_backoff() {
    let t0 = Instant::now();
    let mut outbox = Outbox::new(4, FLUSH);
    outbox.push(record(1), t0);
    outbox.push(record(2), t0);
    let batch = outbox.take_batch(t0 + FLUSH).unwrap();
    outbox.push(record(3), t0 + FLUSH);
    let retry_at = t0 + Duration::from_secs(5);
    outbox.failed(batch, t0 + FLUSH, retry_at);
    assert_eq!(outbox.poll_timeout(), Some(retry_at));
    assert!(outbox
        .take_batch(retry_at - Duration::from_millis(1))
        .is_none());
    // While identity is down the cap still holds: the oldest (the failed batch) go first.
    outbox.push(record(4), retry_at);
    outbox.push(record(5), retry_at);
    assert_eq!(outbox.take_evicted(), 1);
    let batch = outbox.take_batch(retry_at).unwrap();
    assert_eq!(ids(&batch), [2, 3, 4, 5]);
    outbox.sent();
    assert_eq!(outbox.poll_timeout(), None);
}

fn device() -> Device {
    Device {
        device_id: "dev_1".into(),
        public_key: "key".into(),
        addresses: vec!["100.64.0.2/32".parse().unwrap()],
        user: DeviceUser {
            user_id: "usr_1".into(),
            email: "ada@corp.example".into(),
            groups: vec!["eng".into()],
            idp: "local".into(),
        },
        posture: Posture::default(),
        enrolled_at: identity_claims::UnixTime(1),
        login_method: "pwd".into(),
        auth_time: identity_claims::UnixTime(1),
    }
}

#[test]
fn a_verdict_and_its_device_become_a_record() {
    let verdict = Verdict {
        allowed: false,
        application: Some("wiki".into()),
        policy: Some("eng".into()),
        device_id: Some("dev_1".into()),
        summary: "no policy allows this request",
    };
    let r = decision_record(
        "fra1",
        &verdict,
        Who::from(Some(&device())),
        DecisionKind::Http,
        "::ffff:100.64.0.2".parse().unwrap(),
        &destination(Target::Http {
            host: "wiki.corp.example",
            path: "/admin",
        }),
        Some("00c0ffee00c0ffee".into()),
        42,
    );
    assert_eq!(r.decision, DecisionOutcome::Deny);
    assert_eq!(r.source_ip, "100.64.0.2", "mapped IPv4 is shown as IPv4");
    assert_eq!(r.email.as_deref(), Some("ada@corp.example"));
    assert_eq!(r.user_id.as_deref(), Some("usr_1"));
    assert_eq!(r.destination, "wiki.corp.example/admin");
    assert_eq!(r.application.as_deref(), Some("wiki"));
    assert_eq!(r.reason, "no policy allows this request");
    r.validate().unwrap();

    let stranger = decision_record(
        "fra1",
        &Verdict {
            allowed: true,
            application: None,
            policy: None,
            device_id: None,
            summary: "allowed",
        },
        Who::default(),
        DecisionKind::Flow,
        "100.64.0.9".parse().unwrap(),
        "10.0.0.1:22/tcp",
        None,
        42,
    );
    assert_eq!(stranger.decision, DecisionOutcome::Allow);
    assert_eq!((stranger.user_id, stranger.email), (None, None));
}

#[test]
fn destinations_read_like_addresses_and_urls() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let flow = |addr, port, protocol| Target::Ip {
        addr,
        port,
        protocol,
    };
    assert_eq!(
        destination(flow(ip("10.1.2.3"), 5432, Protocol::Tcp)),
        "10.1.2.3:5432/tcp"
    );
    assert_eq!(
        destination(flow(ip("fd00::1"), 53, Protocol::Udp)),
        "[fd00::1]:53/udp"
    );
    assert_eq!(
        destination(flow(ip("10.1.2.3"), 0, Protocol::Icmp)),
        "10.1.2.3/icmp"
    );
    assert_eq!(
        destination(Target::Http {
            host: "app.example.com",
            path: ""
        }),
        "app.example.com",
        "a TLS decision names the SNI host"
    );
    assert_eq!(
        destination(Target::Http {
            host: "app.example.com",
            path: "/docs?q=1"
        }),
        "app.example.com/docs?q=1"
    );
}

#[tokio::test]
async fn a_full_queue_drops_instead_of_blocking() {
    let (tx, mut rx) = mpsc::channel(2);
    let audit = DecisionAudit {
        edge: "fra1".into(),
        tx: Some(tx),
        dropped: DropCounter::default(),
    };
    for n in 0..5 {
        audit.record(record(n));
    }
    // The first drop WARNs and resets the count; the next two wait for the next minute.
    assert_eq!(audit.dropped.since_warn.load(Ordering::Relaxed), 2);
    assert_eq!(rx.recv().await.unwrap().at_ms, record(0).at_ms);
    assert_eq!(rx.recv().await.unwrap().at_ms, record(1).at_ms);
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn without_identity_records_are_only_logged() {
    let audit = DecisionAudit::start(None, "fra1".into());
    audit.record(record(1));
    assert!(audit.tx.is_none());
    assert_eq!(audit.edge(), "fra1");
}

// --- Uploads to the real identity server -------------------------------------------------

const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

struct Identity {
    url: String,
    dir: std::path::PathBuf,
}

impl Drop for Identity {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn identity_dir() -> std::path::PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gh-edge-decisions-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn serve_identity(
    listener: tokio::net::TcpListener,
    dir: &std::path::Path,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let addr = listener.local_addr().unwrap();
    let text = format!(
        "listen = \"{addr}\"\nadmin_token = \"{ADMIN_TOKEN}\"\ndatabase = \"{}\"\n",
        dir.join("identity.db").display()
    );
    let config = identity::parse_config(&text, dir).unwrap();
    tokio::spawn(identity::serve_listener(listener, config))
}

async fn start_identity() -> Identity {
    let dir = identity_dir();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _server = serve_identity(listener, &dir).await;
    Identity { url, dir }
}

async fn admin(
    client: &reqwest::Client,
    url: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut request = client
        .request(method, format!("{url}/admin/v1{path}"))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    let text = request.send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn edge_token(client: &reqwest::Client, url: &str) -> String {
    let created = admin(
        client,
        url,
        reqwest::Method::POST,
        "/service-tokens",
        Some(serde_json::json!({ "name": "fra1", "kind": "edge" })),
    )
    .await;
    created["secret"].as_str().unwrap().to_owned()
}

/// Polls the admin API until `count` decisions are stored (at most 10 s).
async fn wait_for_decisions(
    client: &reqwest::Client,
    url: &str,
    count: usize,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = admin(client, url, reqwest::Method::GET, "/decisions", None).await;
        let n = found["decisions"].as_array().map_or(0, Vec::len);
        if n >= count || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fast_target(url: &str, token: String) -> UploadTarget {
    UploadTarget {
        identity_url: url.to_owned(),
        token,
        flush_after: Duration::from_millis(20),
        backoff_base: Duration::from_millis(20),
    }
}

#[tokio::test]
async fn the_uploader_posts_batches_identity_stores() {
    let identity = start_identity().await;
    let client = reqwest::Client::new();
    let token = edge_token(&client, &identity.url).await;
    let audit = DecisionAudit::start_with(Some(fast_target(&identity.url, token)), "fra1".into());
    let verdict = Verdict {
        allowed: false,
        application: Some("wiki".into()),
        policy: None,
        device_id: Some("dev_1".into()),
        summary: "no policy allows this request",
    };
    audit.record_verdict(
        &verdict,
        Who::from(Some(&device())),
        DecisionKind::Http,
        "100.64.0.2".parse().unwrap(),
        Target::Http {
            host: "wiki.corp.example",
            path: "/admin",
        },
        Some("00c0ffee00c0ffee".into()),
    );
    for n in 0..3 {
        audit.record(record(n));
    }
    let found = wait_for_decisions(&client, &identity.url, 4).await;
    let list = found["decisions"].as_array().unwrap();
    assert_eq!(list.len(), 4, "{found}");
    let http = list.iter().find(|d| d["kind"] == "http").unwrap();
    assert_eq!(http["email"], "ada@corp.example");
    assert_eq!(http["reference"], "00c0ffee00c0ffee");
    assert_eq!(http["destination"], "wiki.corp.example/admin");
    assert_eq!(http["edge"], "fra1");
}

#[tokio::test]
async fn records_wait_while_identity_is_down_and_arrive_once_it_is_back() {
    let dir = identity_dir();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}");
    let first = serve_identity(listener, &dir).await;
    let client = reqwest::Client::new();
    let token = edge_token(&client, &url).await;
    // Identity goes down (the listener closes); the edge keeps deciding.
    first.abort();
    let _ = first.await;
    let audit = DecisionAudit::start_with(Some(fast_target(&url, token)), "fra1".into());
    for n in 0..3 {
        audit.record(record(n));
    }
    // Long enough for several refused uploads and backoffs (not a timing assertion).
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Identity is back on the same address and database.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _second = serve_identity(listener, &dir).await;
    let identity = Identity { url, dir };
    let found = wait_for_decisions(&client, &identity.url, 3).await;
    assert_eq!(found["decisions"].as_array().unwrap().len(), 3, "{found}");
}

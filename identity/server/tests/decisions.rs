//! Access decisions on a loopback port: an edge posts batches with its service token
//! (`POST /v1/decisions`), identity rejects other credentials, oversized and malformed batches,
//! and admins read them back through the admin API and the CLI.

#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
const DAY_MS: u64 = 24 * 3600 * 1000;

struct Server {
    /// `http://127.0.0.1:PORT`.
    url: String,
    client: reqwest::Client,
    dir: PathBuf,
    owns_dir: bool,
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn fresh_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gh-identity-decisions-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn start() -> Server {
    start_in(&fresh_dir(), true).await
}

/// A server on the database in `dir` (a second server on the same file is a restart).
async fn start_in(dir: &Path, owns_dir: bool) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let text = format!(
        "listen = \"{addr}\"\nadmin_token = \"{ADMIN_TOKEN}\"\ndatabase = \"{}\"\ndecision_retention_days = 30\n",
        dir.join("identity.db").display()
    );
    let config = identity::parse_config(&text, dir).unwrap();
    tokio::spawn(identity::serve_listener(listener, config));
    Server {
        url: format!("http://{addr}"),
        client: reqwest::Client::new(),
        dir: dir.to_owned(),
        owns_dir,
    }
}

impl Server {
    async fn admin_get(&self, path_and_query: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}/admin/v1{path_and_query}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A new service token of `kind`; its secret.
    async fn token(&self, kind: &str) -> String {
        let response = self
            .client
            .post(format!("{}/admin/v1/service-tokens", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "name": format!("{kind} token"), "kind": kind }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["secret"].as_str().unwrap().to_owned()
    }

    async fn post_decisions(&self, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/v1/decisions", self.url))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn record(at_ms: u64, email: &str, decision: &str) -> Value {
    json!({
        "at_ms": at_ms,
        "edge": "fra1",
        "reference": format!("{:016x}", at_ms),
        "decision": decision,
        "kind": "http",
        "source_ip": "100.64.0.2",
        "device_id": format!("dev_{email}"),
        "user_id": format!("usr_{email}"),
        "email": email,
        "destination": "wiki.corp.example/docs",
        "application": "wiki",
        "policy": if decision == "allow" { json!("eng") } else { Value::Null },
        "reason": if decision == "allow" { "allowed" } else { "no policy allows this request" },
    })
}

#[tokio::test]
async fn an_edge_posts_a_batch_and_admins_filter_and_page_it() {
    let server = start().await;
    let edge = server.token("edge").await;
    let t = now_ms();
    let batch = json!({ "records": [
        record(t - 3000, "ada@corp.example", "allow"),
        record(t - 2000, "ada@corp.example", "deny"),
        record(t - 1000, "bob@corp.example", "deny"),
    ], "future_field": true });
    let (status, body) = server.post_decisions(Some(&edge), &batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stored"], 3);

    let (status, all) = server.admin_get("/decisions").await;
    assert_eq!(status, 200);
    let list = all["decisions"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["email"], "bob@corp.example", "newest first");
    assert_eq!(list[0]["destination"], "wiki.corp.example/docs");
    assert!(list[0]["token_id"].as_str().unwrap().starts_with("tok_"));
    assert_eq!(all["next_cursor"], Value::Null);

    let (_, denied) = server
        .admin_get("/decisions?email=ada@corp.example&decision=deny")
        .await;
    assert_eq!(denied["decisions"].as_array().unwrap().len(), 1);
    assert_eq!(denied["decisions"][0]["at_ms"], t - 2000);
    let (_, by_device) = server
        .admin_get("/decisions?device=dev_bob@corp.example&application=wiki")
        .await;
    assert_eq!(by_device["decisions"].as_array().unwrap().len(), 1);
    let reference = format!("{:016x}", t - 3000);
    let (_, by_reference) = server
        .admin_get(&format!("/decisions?reference={reference}"))
        .await;
    assert_eq!(by_reference["decisions"][0]["decision"], "allow");
    let (_, future) = server
        .admin_get(&format!("/decisions?since={}", t / 1000 + 60))
        .await;
    assert_eq!(future["decisions"], json!([]));

    let (_, first) = server.admin_get("/decisions?limit=2").await;
    assert_eq!(first["decisions"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = server
        .admin_get(&format!("/decisions?limit=2&before={cursor}"))
        .await;
    assert_eq!(second["decisions"].as_array().unwrap().len(), 1);
    assert_eq!(second["decisions"][0]["at_ms"], t - 3000);

    for bad in ["limit=0", "limit=1001", "decision=maybe", "before=nope"] {
        let (status, body) = server.admin_get(&format!("/decisions?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn only_edge_tokens_may_post_decisions() {
    let server = start().await;
    let machine = server.token("machine").await;
    let batch = json!({ "records": [record(now_ms(), "ada@corp.example", "deny")] });
    let (status, _) = server.post_decisions(None, &batch).await;
    assert_eq!(status, 401);
    let (status, body) = server.post_decisions(Some(&machine), &batch).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = server.post_decisions(Some(ADMIN_TOKEN), &batch).await;
    assert_eq!(status, 401, "the admin token is no edge token");
    let (_, all) = server.admin_get("/decisions").await;
    assert_eq!(all["decisions"], json!([]));
}

#[tokio::test]
async fn oversized_and_malformed_batches_are_rejected_whole() {
    let server = start().await;
    let edge = server.token("edge").await;
    let t = now_ms();

    let too_many: Vec<Value> = (0..1001)
        .map(|i| record(t - i, "ada@corp.example", "deny"))
        .collect();
    let (status, body) = server
        .post_decisions(Some(&edge), &json!({ "records": too_many }))
        .await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("at most 1000"),
        "{body}"
    );

    // Under 1,000 records but over the 1 MiB body limit.
    let mut huge = record(t, "ada@corp.example", "deny");
    huge["padding"] = json!("x".repeat(1024 * 1024));
    let (status, _) = server
        .post_decisions(Some(&edge), &json!({ "records": [huge] }))
        .await;
    assert_eq!(status, 413);

    let mut bad = record(t, "bob@corp.example", "deny");
    bad["source_ip"] = json!("not-an-ip");
    let (status, body) = server
        .post_decisions(
            Some(&edge),
            &json!({ "records": [record(t, "ada@corp.example", "deny"), bad] }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error_description"],
        "records[1].source_ip: not an IP address"
    );

    let mut unknown_kind = record(t, "ada@corp.example", "deny");
    unknown_kind["kind"] = json!("carrier-pigeon");
    let (status, _) = server
        .post_decisions(Some(&edge), &json!({ "records": [unknown_kind] }))
        .await;
    assert_eq!(status, 400);

    let (_, all) = server.admin_get("/decisions").await;
    assert_eq!(all["decisions"], json!([]), "nothing of a rejected batch");
}

#[tokio::test]
async fn a_restarted_server_prunes_decisions_past_the_retention() {
    let first = start().await;
    let edge = first.token("edge").await;
    let t = now_ms();
    let batch = json!({ "records": [
        record(t - 31 * DAY_MS, "ada@corp.example", "deny"),
        record(t - 29 * DAY_MS, "ada@corp.example", "deny"),
    ]});
    let (status, _) = first.post_decisions(Some(&edge), &batch).await;
    assert_eq!(status, 200);
    let (_, all) = first.admin_get("/decisions").await;
    assert_eq!(all["decisions"].as_array().unwrap().len(), 2);

    // The first ingest after a start runs a retention pass before storing.
    let second = start_in(&first.dir, false).await;
    let batch = json!({ "records": [record(t, "bob@corp.example", "allow")] });
    let (status, _) = second.post_decisions(Some(&edge), &batch).await;
    assert_eq!(status, 200);
    let (_, all) = second.admin_get("/decisions").await;
    let times: Vec<u64> = all["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["at_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(times, [t, t - 29 * DAY_MS]);
}

/// Runs `gatehouse-identity admin --url … --token-file … <args>`; returns (exit code, stdout,
/// stderr).
async fn admin_cli(server: &Server, args: &[&str]) -> (i32, String, String) {
    let token_file = server.dir.join("admin.token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse-identity"));
    command
        .arg("admin")
        .arg("--url")
        .arg(&server.url)
        .arg("--token-file")
        .arg(token_file)
        .args(args)
        .env("RUST_LOG", "error");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn the_cli_prints_decisions_as_a_table_or_json() {
    let server = start().await;
    let edge = server.token("edge").await;
    let t = now_ms();
    let batch = json!({ "records": [
        record(t - 2000, "ada@corp.example", "deny"),
        record(t - 1000, "ada@corp.example", "allow"),
        record(t, "bob@corp.example", "deny"),
    ]});
    let (status, _) = server.post_decisions(Some(&edge), &batch).await;
    assert_eq!(status, 200);

    let (code, stdout, stderr) = admin_cli(
        &server,
        &[
            "decisions",
            "--email",
            "ada@corp.example",
            "--decision",
            "deny",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("TIME (UTC)"), "{stdout}");
    assert!(lines[1].contains("deny"), "{stdout}");
    assert!(lines[1].contains("ada@corp.example"), "{stdout}");
    assert!(lines[1].contains("wiki.corp.example/docs"), "{stdout}");

    let (code, stdout, _) = admin_cli(&server, &["decisions", "--limit", "2"]).await;
    assert_eq!(code, 0);
    let next = stdout.lines().last().unwrap();
    let cursor = next.strip_prefix("next page: --before ").unwrap();
    let (code, stdout, _) = admin_cli(
        &server,
        &["decisions", "--limit", "2", "--before", cursor, "--json"],
    )
    .await;
    assert_eq!(code, 0);
    let page: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(page["decisions"].as_array().unwrap().len(), 1);
    assert_eq!(page["decisions"][0]["at_ms"], t - 2000);

    let (code, _, stderr) = admin_cli(&server, &["decisions", "--limit", "5000"]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("limit must be between 1 and 1000"),
        "{stderr}"
    );
}

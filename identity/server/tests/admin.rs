//! The admin API on a loopback port: authentication, service tokens, connectors, policies
//! (apply with in-file tests, reject, explain) and the audit log.

#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A small policy whose in-file tests pass.
const GOOD_POLICY: &str = r#"version = 1

[[applications]]
name = "wiki"
destinations = [{ host = "wiki.corp.example" }]

[[applications.policies]]
name = "eng"
action = "allow"
include = [{ group = "eng" }]

[[tests]]
name = "eng reads the wiki"
subject = { email = "ada@corp.example", groups = ["eng"] }
request = { host = "wiki.corp.example" }
expect = "allow"
"#;

struct Server {
    base: String,
    client: reqwest::Client,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start() -> Server {
    start_with("").await
}

/// A server whose configuration has `extra` appended.
async fn start_with(extra: &str) -> Server {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gh-identity-admin-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let database = dir.join("identity.db");
    let text = format!(
        "listen = \"{addr}\"\nadmin_token = \"{ADMIN_TOKEN}\"\ndatabase = \"{}\"\n{extra}",
        database.display()
    );
    let config = identity::parse_config(&text, &dir).unwrap();
    tokio::spawn(identity::serve_listener(listener, config));
    Server {
        base: format!("http://{addr}/admin/v1"),
        client: reqwest::Client::new(),
        dir,
    }
}

impl Server {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn apply(&self, source: &str) -> (u16, Value) {
        self.post("/policy", json!({ "format": "toml", "source": source }))
            .await
    }
}

#[tokio::test]
async fn requests_without_or_with_a_wrong_token_are_unauthorized() {
    let server = start().await;
    let url = format!("{}/users", server.base);
    let none = server.client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = server
        .client
        .get(&url)
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    let (status, body) = server.get("/users").await;
    assert_eq!(status, 200);
    assert_eq!(body["users"], json!([]));
}

#[tokio::test]
async fn with_an_admin_group_the_admin_token_still_works_and_bad_sessions_do_not() {
    let server = start_with("admin_group = \"admins\"\n").await;
    let (status, _) = server.get("/users").await;
    assert_eq!(status, 200);
    let bogus = server
        .client
        .get(format!("{}/users", server.base))
        .bearer_auth("eyJhbGciOiJFZERTQSJ9.e30.c2ln")
        .send()
        .await
        .unwrap();
    assert_eq!(bogus.status(), 401);
}

#[tokio::test]
async fn service_token_secret_is_shown_once_and_revocation_sticks() {
    let server = start().await;
    let (status, created) = server
        .post(
            "/service-tokens",
            json!({ "name": "ci", "kind": "machine", "expires_in_secs": 3600 }),
        )
        .await;
    assert_eq!(status, 201);
    let id = created["token_id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ghst_"), "{secret}");

    let (status, list) = server.get("/service-tokens").await;
    assert_eq!(status, 200);
    let tokens = list["service_tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["id"], id.as_str());
    assert_eq!(tokens[0]["kind"], "machine");
    assert!(tokens[0]["revoked_at"].is_null());
    assert!(!list.to_string().contains(&secret));

    let (status, revoked) = server
        .post(&format!("/service-tokens/{id}/revoke"), json!(null))
        .await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_i64());
    let (_, list) = server.get("/service-tokens").await;
    assert!(list["service_tokens"][0]["revoked_at"].is_i64());

    let (status, _) = server
        .post("/service-tokens/tok_nope/revoke", json!(null))
        .await;
    assert_eq!(status, 404);
    let (status, body) = server
        .post(
            "/service-tokens",
            json!({ "name": "x", "kind": "connector" }),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("unknown variant `connector`"));

    let (_, audit) = server.get("/audit?action=service_token_create").await;
    assert_eq!(audit["events"][0]["target"], id.as_str());
    assert_eq!(audit["events"][0]["actor"], "admin");
}

#[tokio::test]
async fn connectors_accept_valid_routes_and_reject_invalid_ones() {
    let server = start().await;
    let (status, created) = server
        .post(
            "/connectors",
            json!({ "name": "dc1", "routes": ["10.1.0.0/16", "*.corp.example", "DB.corp.example"] }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["connector"]["routes"],
        json!(["10.1.0.0/16", "*.corp.example", "db.corp.example"])
    );
    assert!(created["secret"].as_str().unwrap().starts_with("ghst_"));
    let id = created["connector"]["id"].as_str().unwrap().to_owned();

    for (route, expected) in [
        ("10.1.0.1/16", "host bits"),
        ("10.0.0/8", "not a valid CIDR"),
        ("bad host!", "neither a CIDR"),
    ] {
        let (status, body) = server
            .post("/connectors", json!({ "name": "dc2", "routes": [route] }))
            .await;
        assert_eq!(status, 400, "{route}");
        let text = body["error_description"].as_str().unwrap();
        assert!(
            text.contains("routes[0]") && text.contains(expected),
            "{text}"
        );
    }

    let (status, _) = server
        .post("/connectors", json!({ "name": "dc1", "routes": [] }))
        .await;
    assert_eq!(status, 409);

    let (status, updated) = server
        .call(
            reqwest::Method::PUT,
            &format!("/connectors/{id}/routes"),
            Some(json!({ "routes": ["192.0.2.0/24"] })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(updated["routes"], json!(["192.0.2.0/24"]));

    let (_, list) = server.get("/connectors").await;
    assert_eq!(list["connectors"][0]["routes"], json!(["192.0.2.0/24"]));
    assert!(!list.to_string().contains("ghst_"));

    let (status, revoked) = server
        .post(&format!("/connectors/{id}/revoke"), json!(null))
        .await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_i64());
}

#[tokio::test]
async fn a_policy_with_passing_tests_is_applied_and_shown() {
    let server = start().await;
    let (status, applied) = server.apply(GOOD_POLICY).await;
    assert_eq!(status, 201, "{applied}");
    assert_eq!(applied["version"], 1);
    assert_eq!(applied["tests_passed"], 1);
    assert_eq!(applied["sha256"].as_str().unwrap().len(), 64);

    let (status, active) = server.get("/policy").await;
    assert_eq!(status, 200);
    assert_eq!(active["version"], 1);
    assert_eq!(active["format"], "toml");
    assert_eq!(active["source"], GOOD_POLICY);
    assert_eq!(active["sha256"], applied["sha256"]);

    let (status, versions) = server.get("/policies").await;
    assert_eq!(status, 200);
    assert_eq!(versions["policies"][0]["version"], 1);
    assert!(versions["policies"][0].get("source").is_none());
}

#[tokio::test]
async fn a_failing_in_file_test_rejects_the_policy_naming_the_test() {
    let server = start().await;
    let failing = GOOD_POLICY.replace("groups = [\"eng\"]", "groups = [\"sales\"]");
    let (status, body) = server.apply(&failing).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"], "policy_rejected");
    let text = body["error_description"].as_str().unwrap();
    assert!(
        text.contains("test `eng reads the wiki` failed: expected allow, got deny"),
        "{text}"
    );
    let (status, _) = server.get("/policy").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_syntax_error_rejects_the_policy_naming_the_line() {
    let server = start().await;
    let broken = GOOD_POLICY.replace("action = \"allow\"", "action = \"alow\"");
    let (status, body) = server
        .post(
            "/policy",
            json!({ "format": "toml", "source": broken, "file_name": "corp.toml" }),
        )
        .await;
    assert_eq!(status, 422);
    let text = body["error_description"].as_str().unwrap();
    assert!(
        text.starts_with("corp.toml:9:") && text.contains("applications[0].policies[0].action"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unknown_body_field_is_a_400_naming_it() {
    let server = start().await;
    let (status, body) = server
        .post(
            "/policy",
            json!({ "format": "toml", "source": GOOD_POLICY, "sauce": 1 }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("unknown field `sauce`"));
}

#[tokio::test]
async fn explain_names_the_deciding_application_and_policy() {
    let server = start().await;
    let (status, body) = server
        .post(
            "/policy/explain",
            json!({ "request": { "host": "wiki.corp.example" } }),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    server.apply(GOOD_POLICY).await;

    let (status, allow) = server
        .post(
            "/policy/explain",
            json!({
                "subject": { "email": "ada@corp.example", "groups": ["eng"] },
                "device": { "os": "linux" },
                "request": { "host": "wiki.corp.example", "path": "/" },
            }),
        )
        .await;
    assert_eq!(status, 200, "{allow}");
    assert_eq!(allow["decision"], "allow");
    assert_eq!(allow["application"], "wiki");
    assert_eq!(allow["policy"], "eng");
    assert_eq!(allow["policy_version"], 1);
    assert_eq!(
        allow["explanation"],
        "allow: application `wiki` matched host wiki.corp.example; \
         policy `eng` (allow) matched: include rule 1 (group = eng) met"
    );

    let (_, deny) = server
        .post(
            "/policy/explain",
            json!({ "request": { "ip": "10.0.0.1", "port": 22, "protocol": "tcp" } }),
        )
        .await;
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["reason"], "no_application");
    assert!(deny["application"].is_null());

    let (status, bad) = server
        .post(
            "/policy/explain",
            json!({ "request": { "host": "wiki.corp.example" }, "user": {} }),
        )
        .await;
    assert_eq!(status, 400);
    assert!(bad["error_description"]
        .as_str()
        .unwrap()
        .contains("unknown field `user`"));
}

#[tokio::test]
async fn audit_lists_policy_apply_and_reject_events() {
    let server = start().await;
    server.apply(GOOD_POLICY).await;
    server.apply("version = 2\n").await;

    let (status, all) = server.get("/audit").await;
    assert_eq!(status, 200);
    let events = all["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["policy_reject", "policy_apply"]);
    assert_eq!(events[0]["outcome"], "failure");
    assert_eq!(events[1]["target"], "1");
    assert_eq!(events[1]["actor"], "admin");

    let (_, rejects) = server.get("/audit?action=policy_reject&limit=1").await;
    assert_eq!(rejects["events"].as_array().unwrap().len(), 1);
    assert!(rejects["events"][0]["detail"]["error"]
        .as_str()
        .unwrap()
        .contains("version"));

    let (status, _) = server.get("/audit?limit=5000").await;
    assert_eq!(status, 400);
    let (status, _) = server.get("/audit?action=nonsense").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let server = start().await;
    let (status, body) = server.post("/users/usr_nope/disable", json!(null)).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    assert_eq!(body["error_description"], "user not found");
    for path in [
        "/devices/dev_nope/revoke",
        "/sessions/ses_nope/revoke",
        "/connectors/con_nope/revoke",
    ] {
        let (status, _) = server.post(path, json!(null)).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = server.get("/sessions?user=usr_nope").await;
    assert_eq!(status, 404);
    let (status, _) = server
        .post("/groups/eng/members", json!({ "user_id": "usr_nope" }))
        .await;
    assert_eq!(status, 404);
}

/// Runs `gatehouse-identity admin --url … --token-file … <args>`; returns (exit code, stdout,
/// stderr).
async fn admin_cli(server: &Server, args: &[&str]) -> (i32, String, String) {
    let token_file = server.dir.join("admin.token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let url = server.base.trim_end_matches("/admin/v1").to_owned();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse-identity"));
    command
        .arg("admin")
        .arg("--url")
        .arg(url)
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
async fn the_cli_applies_explains_and_reports_errors() {
    let server = start().await;
    let file = server.dir.join("corp.toml");
    std::fs::write(&file, GOOD_POLICY).unwrap();
    let (code, stdout, stderr) =
        admin_cli(&server, &["policy", "apply", file.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    let applied: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(applied["version"], 1);

    let (code, stdout, _) = admin_cli(
        &server,
        &[
            "policy",
            "explain",
            "--email",
            "ada@corp.example",
            "--group",
            "eng",
            "--host",
            "wiki.corp.example",
            "--os",
            "linux",
        ],
    )
    .await;
    assert_eq!(code, 0);
    let explained: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(explained["decision"], "allow");
    assert_eq!(explained["policy"], "eng");

    let (code, stdout, _) = admin_cli(
        &server,
        &[
            "connectors",
            "create",
            "--name",
            "dc1",
            "--route",
            "10.0.0.0/8",
        ],
    )
    .await;
    assert_eq!(code, 0);
    let created: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(created["connector"]["routes"], json!(["10.0.0.0/8"]));

    let (code, stdout, stderr) = admin_cli(&server, &["users", "disable", "usr_nope"]).await;
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(stderr.contains("user not found"), "{stderr}");

    let (code, _, stderr) = admin_cli(&server, &["audit", "--action", "policy_apply"]).await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test]
async fn policy_files_beyond_the_public_body_limit_are_accepted_up_to_the_admin_limit() {
    let server = start().await;
    // ~200 KiB: far beyond the 64 KiB limit of the public endpoints.
    let mut big = GOOD_POLICY.to_owned();
    for i in 0..2000 {
        big.push_str(&format!(
            "\n[[applications]]\nname = \"app{i}\"\ndestinations = [{{ host = \"app{i}.corp.example\" }}]\n"
        ));
    }
    assert!(big.len() > 128 * 1024);
    let (status, applied) = server.apply(&big).await;
    assert_eq!(status, 201, "{applied}");

    let huge = "#".repeat(5 * 1024 * 1024);
    let (status, _) = server.apply(&huge).await;
    assert_eq!(status, 413);
}

//! The real router on a loopback port: health, JWKS, the local provider's discovery and sign-in
//! form, and the body limit.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

struct Server {
    base: String,
    _dir: std::path::PathBuf,
}

async fn start() -> Server {
    start_with("").await
}

/// `extra` is appended to the configuration (more `[[providers]]`).
async fn start_with(extra: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("gh-identity-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // These tests never sign in: any well-formed argon2id PHC string keeps the file valid.
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$4fbx6PmS5mNQuzr0hbAv3DSFU0v1bBxl/8BT3rS+Oe4";
    std::fs::write(
        dir.join("users.toml"),
        format!("[[users]]\nemail = \"alice@example.com\"\ngroups = [\"eng\"]\npassword_hash = \"{hash}\"\n"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    // One database per server: tests run in parallel.
    let database = dir.join(format!("identity-{}.db", addr.port()));
    let text = format!(
        "listen = \"{addr}\"\ndatabase = {database:?}\n[[providers]]\nid = \"local\"\nkind = \"local\"\nusers_file = \"users.toml\"\n{extra}"
    );
    let config = identity::parse_config(&text, &dir).unwrap();
    tokio::spawn(identity::serve_listener(listener, config));
    Server {
        base: format!("http://{addr}"),
        _dir: dir,
    }
}

#[tokio::test]
async fn healthz_answers_ok() {
    let server = start().await;
    let body = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");
}

#[tokio::test]
async fn jwks_publishes_one_ed25519_key() {
    let server = start().await;
    let jwks: serde_json::Value = reqwest::get(format!("{}/.well-known/jwks.json", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert_eq!(keys[0]["alg"], "EdDSA");
}

#[tokio::test]
async fn local_provider_discovery_names_its_endpoints() {
    let server = start().await;
    let doc: serde_json::Value = reqwest::get(format!(
        "{}/local-idp/.well-known/openid-configuration",
        server.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(doc["issuer"], format!("{}/local-idp", server.base));
    assert_eq!(
        doc["token_endpoint"],
        format!("{}/local-idp/token", server.base)
    );
    assert_eq!(doc["code_challenge_methods_supported"][0], "S256");
}

#[tokio::test]
async fn local_provider_rejects_a_foreign_redirect_uri() {
    let server = start().await;
    let resp = reqwest::get(format!(
        "{}/local-idp/authorize?response_type=code&client_id=gatehouse-identity&redirect_uri=https://evil.example/cb&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        server.base
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn local_provider_token_without_client_auth_is_rejected() {
    let server = start().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/local-idp/token", server.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("redirect_uri", "y"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn oversized_body_is_rejected_with_413() {
    let server = start().await;
    let big = "a".repeat(100 * 1024);
    let resp = reqwest::Client::new()
        .post(format!("{}/local-idp/token", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type={big}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn authorization_server_metadata_names_the_endpoints_and_s256() {
    let server = start().await;
    let doc: serde_json::Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        server.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(doc["issuer"], server.base);
    assert_eq!(
        doc["token_endpoint"],
        format!("{}/oauth/token", server.base)
    );
    assert_eq!(
        doc["device_authorization_endpoint"],
        format!("{}/oauth/device_authorization", server.base)
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn login_offers_a_chooser_with_several_providers_and_refuses_open_redirects() {
    let server = start_with(
        "\n[[providers]]\nid = \"corp\"\nkind = \"oidc\"\ndisplay_name = \"Corp <SSO>\"\n\
         issuer = \"http://127.0.0.1:9\"\nclient_id = \"c\"\n",
    )
    .await;
    let client = no_redirects();
    let page = client
        .get(format!("{}/login?return_to=/device", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("/login?provider=local&amp;return_to=%2Fdevice"),
        "{html}"
    );
    assert!(
        html.contains("Corp &lt;SSO&gt;"),
        "names are escaped: {html}"
    );

    for bad in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let resp = client
            .get(format!(
                "{}/login?provider=local&return_to={bad}",
                server.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }
    // An unreachable provider is a clear 502, not a hang or a panic.
    let resp = client
        .get(format!("{}/login?provider=corp", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.text().await.unwrap().contains("unreachable"));
}

#[tokio::test]
async fn protected_endpoints_refuse_missing_and_forged_tokens() {
    let server = start().await;
    let client = reqwest::Client::new();
    for (method, path) in [
        ("POST", "/v1/enroll"),
        ("GET", "/v1/profile"),
        ("GET", "/v1/feed"),
        ("POST", "/v1/assertions"),
        ("POST", "/v1/connector-credential"),
    ] {
        let url = format!("{}{path}", server.base);
        let bare = client
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        assert_eq!(bare.status(), 401, "{path} without a token");
        let forged = client
            .request(method.parse().unwrap(), &url)
            .bearer_auth("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 401, "{path} with alg none");
    }
}

//! `gatehouse-identity serve --embedded`: the self-contained default. First start writes its
//! files (secrets 0600), the built-in local provider signs a sample user in through the same
//! relying-party path as an external provider, the device grant and enrollment work, the admin
//! CLI works with the written token, and a restart keeps users, devices and signing keys.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use e2e::browser::{Browser, Stop};
use e2e::identity::Identity;
use e2e::{bin, keypair, wait_until, Proc, TestDir};
use serde_json::{json, Value};

fn serve(dir: &TestDir, state: &std::path::Path, port: u16) -> Proc {
    let mut command = Command::new(bin("gatehouse-identity"));
    command
        .arg("serve")
        .arg("--embedded")
        .arg(state)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "identity=debug,info");
    let mut proc =
        Proc::spawn(command, "gatehouse-identity", &dir.join("identity.log")).expect("spawn");
    let base = format!("http://127.0.0.1:{port}");
    let up = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        reqwest::blocking::get(format!("{base}/healthz")).is_ok_and(|r| r.status().is_success())
            || !proc.is_running()
    });
    assert!(
        up && proc.is_running(),
        "identity did not start: {}",
        proc.log()
    );
    proc
}

fn password_of(state: &std::path::Path, email: &str) -> String {
    let text = std::fs::read_to_string(state.join("passwords.txt")).expect("passwords.txt");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{email} ")).map(str::to_owned))
        .expect("password line")
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn embedded_identity_logs_in_a_local_user_enrolls_and_survives_a_restart() {
    let dir = TestDir::new("identity-embedded").expect("dir");
    let state = dir.join("state");
    let port = Identity::free_loopback_port().expect("port");
    let base = format!("http://127.0.0.1:{port}");
    let mut proc = serve(&dir, &state, port);

    for secret in ["admin.token", "edge.token", "passwords.txt", "users.toml"] {
        assert_eq!(mode(&state.join(secret)), 0o600, "{secret}");
    }
    assert_eq!(mode(&state), 0o700);
    let password = password_of(&state, "alice@example.com");
    assert!(
        !proc.log().contains(&password),
        "passwords are never logged"
    );

    // Device grant, signed in at the built-in provider through /login and /callback/local.
    let http = reqwest::blocking::Client::new();
    let started: Value = http
        .post(format!("{base}/oauth/device_authorization"))
        .form(&[("client_id", "gatehouse")])
        .send()
        .expect("device authorization")
        .json()
        .expect("json");
    let browser = Browser::new().expect("browser");
    let complete = started["verification_uri_complete"].as_str().expect("uri");
    let wrong = browser
        .login_through(complete, "alice@example.com", "wrong-password", None)
        .expect("login");
    let Stop::Page(wrong) = wrong else {
        panic!("expected a page")
    };
    assert_eq!(
        wrong.status, 401,
        "a wrong password is refused: {}",
        wrong.body
    );
    let Stop::Page(approval) = browser
        .login_through(complete, "alice@example.com", &password, None)
        .expect("login")
    else {
        panic!("expected the approval page")
    };
    assert_eq!(approval.status, 200, "{}", approval.body);
    let user_code = started["user_code"].as_str().expect("user_code");
    assert!(approval.body.contains(user_code), "{}", approval.body);
    let approved = browser
        .client()
        .post(format!("{base}/device"))
        .form(&[("user_code", user_code), ("action", "approve")])
        .send()
        .expect("approve");
    assert_eq!(approved.status().as_u16(), 200);
    std::thread::sleep(Duration::from_secs(
        started["interval"].as_u64().expect("interval"),
    ));
    let token: Value = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", "gatehouse"),
            (
                "device_code",
                started["device_code"].as_str().expect("code"),
            ),
        ])
        .send()
        .expect("token")
        .json()
        .expect("json");
    let access = token["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{token}"));

    let (_, public_key) = keypair();
    let enrolled = http
        .post(format!("{base}/v1/enroll"))
        .bearer_auth(access)
        .json(&json!({"public_key": public_key, "posture": {"os": "linux"}}))
        .send()
        .expect("enroll");
    assert_eq!(enrolled.status().as_u16(), 201);
    let enrolled: Value = enrolled.json().expect("json");
    assert_eq!(enrolled["profile"]["addresses"][0], "100.64.0.2/32");

    let admin = |args: &[&str]| {
        let output = Command::new(bin("gatehouse-identity"))
            .arg("admin")
            .arg("--url")
            .arg(&base)
            .arg("--token-file")
            .arg(state.join("admin.token"))
            .args(args)
            .output()
            .expect("admin cli");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Value>(&output.stdout).expect("admin json")
    };
    let users = admin(&["users", "list"]);
    let alice = &users["users"][0];
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["idp"], "local");
    let jwks_before: Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .expect("jwks")
        .json()
        .expect("json");

    proc.stop().expect("stop");
    let _proc = serve(&dir, &state, port);
    assert_eq!(
        password_of(&state, "alice@example.com"),
        password,
        "files are reused"
    );
    let devices = admin(&["devices", "list"]);
    assert_eq!(devices["devices"][0]["public_key"], json!(public_key));
    let jwks_after: Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .expect("jwks")
        .json()
        .expect("json");
    assert_eq!(
        jwks_after, jwks_before,
        "signing keys persist across restarts"
    );
    let profile = http
        .get(format!("{base}/v1/profile"))
        .bearer_auth(enrolled["device_token"].as_str().expect("device token"))
        .send()
        .expect("profile");
    assert_eq!(
        profile.status().as_u16(),
        200,
        "a device token outlives a restart"
    );

    // Disabling the user cuts the device token and refuses the next login.
    let alice_id = alice["id"].as_str().expect("user id").to_owned();
    admin(&["users", "disable", &alice_id]);
    let profile = http
        .get(format!("{base}/v1/profile"))
        .bearer_auth(enrolled["device_token"].as_str().expect("device token"))
        .send()
        .expect("profile");
    assert_eq!(
        profile.status().as_u16(),
        401,
        "a disabled user's device token is refused"
    );
    let Stop::Page(refused) = Browser::new()
        .expect("browser")
        .login_through(
            &format!("{base}/login?return_to=/healthz"),
            "alice@example.com",
            &password,
            None,
        )
        .expect("login")
    else {
        panic!("expected a page")
    };
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("disabled"), "{}", refused.body);
}

//! `gatehouse login` against the real `gatehouse-identity` and the npm `oidc-provider`: the
//! device grant and the browser (code + PKCE on a loopback port) flow, each ending in an
//! enrolled device and a wg-quick file the client can bring up. The test plays the person at the
//! browser: `GATEHOUSE_LOGIN_OPEN` points at a script that hands the URL to the test.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::browser::{Browser, Stop};
use e2e::identity::{Identity, UpstreamProvider, TEST_EDGE_PUBLIC_KEY};
use e2e::oidc::{OidcClient, OidcProvider, ALICE, BOB};
use e2e::{bin, skip_unless_node, wait_until, Proc, TestDir};

fn start(dir: &TestDir) -> (OidcProvider, Identity) {
    let port = Identity::free_loopback_port().expect("port");
    let provider = OidcProvider::start(
        dir,
        OidcClient {
            client_id: "gatehouse-identity".into(),
            client_secret: "s3cret".into(),
            redirect_uris: vec![Identity::redirect_uri(port, "corp")],
        },
    )
    .expect("provider");
    let identity = Identity::start(
        dir,
        port,
        &[UpstreamProvider {
            id: "corp".into(),
            issuer: provider.issuer().into(),
            client_id: "gatehouse-identity".into(),
            client_secret: "s3cret".into(),
            groups_claim: "groups".into(),
        }],
    )
    .expect("identity");
    (provider, identity)
}

/// Starts `gatehouse login` with an opener script that writes the URL to `url_file`.
fn login(dir: &TestDir, identity: &Identity, state: &Path, browser: bool) -> (Proc, PathBuf) {
    let url_file = dir.join(if browser { "browser-url" } else { "device-url" });
    let opener = dir
        .write(
            &format!("open-{}.sh", if browser { "browser" } else { "device" }),
            format!(
                "#!/bin/sh\nprintf '%s' \"$1\" > {}.tmp && mv {0}.tmp {0}\n",
                url_file.display()
            ),
        )
        .expect("opener");
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut command = Command::new(bin("gatehouse"));
    command
        .arg("login")
        .arg("--identity")
        .arg(identity.base_url())
        .arg("--state-dir")
        .arg(state)
        .arg("--hostname")
        .arg("e2e-laptop")
        .env("GATEHOUSE_LOGIN_OPEN", &opener)
        .env("RUST_LOG", "info");
    if browser {
        command.arg("--browser");
    }
    let proc = Proc::spawn(command, "gatehouse login", &dir.join("login.log")).expect("login");
    (proc, url_file)
}

fn wait_for_url(proc: &mut Proc, url_file: &Path) -> String {
    let appeared = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        url_file.exists() || !proc.is_running()
    });
    assert!(
        appeared && url_file.exists(),
        "no URL was opened: {}",
        proc.log()
    );
    std::fs::read_to_string(url_file).expect("url")
}

fn finish(proc: &mut Proc, state: &Path) -> String {
    let status = proc
        .wait_exit(Duration::from_secs(60))
        .expect("login exits");
    assert!(status.success(), "gatehouse login failed: {}", proc.log());
    let log = proc.log();
    assert!(log.contains("enrolled device=dev_"), "{log}");
    let conf = state.join("gatehouse.conf");
    assert_eq!(
        std::fs::metadata(&conf).expect("conf").permissions().mode() & 0o777,
        0o600,
        "the config holds the private key"
    );
    let text = std::fs::read_to_string(&conf).expect("conf");
    assert!(text.contains(TEST_EDGE_PUBLIC_KEY), "{text}");
    assert!(text.contains("127.0.0.1:51820"), "{text}");
    assert!(text.contains("10.0.0.0/8"), "{text}");
    assert!(!log.contains("PrivateKey"), "keys are never logged");
    text
}

fn devices(identity: &Identity) -> serde_json::Value {
    reqwest::blocking::Client::new()
        .get(identity.url("/admin/v1/devices"))
        .bearer_auth(identity.admin_token())
        .send()
        .expect("devices")
        .json()
        .expect("json")
}

#[test]
fn device_grant_login_enrolls_and_writes_a_wg_quick_file() {
    skip_unless_node!();
    let dir = TestDir::new("client-login-device").expect("dir");
    let (_provider, identity) = start(&dir);
    let state = dir.join("state");
    let (mut proc, url_file) = login(&dir, &identity, &state, false);
    let url = wait_for_url(&mut proc, &url_file);
    assert!(url.contains("/device?user_code="), "{url}");

    let browser = Browser::new().expect("browser");
    let Stop::Page(approval) = browser
        .login_through(&url, ALICE.username, ALICE.password, None)
        .expect("browser login")
    else {
        panic!("expected the approval page")
    };
    let user_code = url.rsplit('=').next().expect("code");
    assert!(approval.body.contains(user_code), "{}", approval.body);
    let approved = browser
        .client()
        .post(identity.url("/device"))
        .form(&[("user_code", user_code), ("action", "approve")])
        .send()
        .expect("approve");
    assert_eq!(approved.status().as_u16(), 200);

    let conf = finish(&mut proc, &state);
    assert!(conf.contains("100.64.0.2/32"), "{conf}");
    let devices = devices(&identity);
    assert_eq!(
        devices["devices"][0]["posture"]["hostname"], "e2e-laptop",
        "{devices}"
    );
    client_core::wg_quick::parse(&conf).expect("the client's own parser reads it");
}

#[test]
fn browser_login_with_pkce_on_a_loopback_port_enrolls() {
    skip_unless_node!();
    let dir = TestDir::new("client-login-browser").expect("dir");
    let (_provider, identity) = start(&dir);
    let state = dir.join("state");
    let (mut proc, url_file) = login(&dir, &identity, &state, true);
    let url = wait_for_url(&mut proc, &url_file);
    let authorize = url::Url::parse(&url).expect("authorize url");
    let redirect_uri = authorize
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .expect("redirect_uri");
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:"),
        "{redirect_uri}"
    );

    let browser = Browser::new().expect("browser");
    let Stop::Redirect(back) = browser
        .login_through(&url, BOB.username, BOB.password, Some(&redirect_uri))
        .expect("browser login")
    else {
        panic!("expected the redirect to the client's loopback listener")
    };
    // The browser delivers the code to the client's listener.
    let page = reqwest::blocking::get(back.as_str()).expect("loopback callback");
    assert_eq!(page.status().as_u16(), 200);

    finish(&mut proc, &state);
    let devices = devices(&identity);
    assert_eq!(
        devices["devices"].as_array().map(Vec::len),
        Some(1),
        "{devices}"
    );
}

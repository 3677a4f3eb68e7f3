//! [`ZeroTrust`]: a deployment where identity decides: `gatehouse-identity serve --embedded`
//! and an edge following its feed (no `[[peers]]`, no `[[policy]]`), a device of alice's
//! enrolled through the device grant, a policy applied through the admin CLI, and the
//! WireGuard client up with the enrolled key.
//!
//! ```text
//!  client ns                 edge ns                                dest ns
//!  100.64.0.2 (enrolled) ── gatehouse-edge (feed from identity)  ── 10.202.0.2
//!                           gatehouse-identity 127.0.0.1:18080
//! ```
//! Identity listens on the edge namespace's loopback; the test talks to it from a thread
//! inside that namespace ([`Netns::in_thread`](crate::Netns::in_thread)).

use crate::browser::{Browser, Stop};
use crate::gatehouse::Topology;
use crate::oidc::{OidcClient, OidcProvider, ALICE};
use crate::{bin, wait_until, Proc};
use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Identity's port on the edge namespace's loopback (the namespace is the test's own).
const IDENTITY_PORT: u16 = 18080;

pub struct ZeroTrust {
    pub client: Proc,
    pub edge: Proc,
    pub identity: Proc,
    /// The npm `oidc-provider` in the edge namespace, for [`ZeroTrust::with_upstream`].
    pub provider: Option<OidcProvider>,
    /// The embedded state directory (admin.token, edge.token, passwords.txt).
    pub state: PathBuf,
    /// The enrolled device's id.
    pub device_id: String,
    pub topo: Topology,
}

/// What [`ZeroTrust::with_edge`] adds to the deployment.
pub struct EdgeExtra {
    /// Appended to the edge's config, after its `[identity]` section.
    pub config: String,
    /// The client's `AllowedIPs` towards the edge, e.g. `10.202.0.0/24, 100.64.0.1/32`.
    pub client_routes: String,
}

impl ZeroTrust {
    /// Builds the deployment with `policy` (an edge-policy TOML file) applied.
    ///
    /// # Errors
    /// Any step failing, with the logs that explain it.
    pub fn new(label: &str, policy: &str) -> anyhow::Result<ZeroTrust> {
        Self::with_edge(label, policy, |_| {
            Ok(EdgeExtra {
                config: String::new(),
                client_routes: "10.202.0.0/24".to_owned(),
            })
        })
    }

    /// Like [`new`](Self::new); `extra` runs once identity is up and the device enrolled, just
    /// before the edge starts (e.g. to write a PKI for `[connectors]`), and says what to append
    /// to the edge's config and which routes the client sends through the tunnel.
    ///
    /// # Errors
    /// Any step failing, with the logs that explain it.
    pub fn with_edge(
        label: &str,
        policy: &str,
        extra: impl FnOnce(&Topology) -> anyhow::Result<EdgeExtra>,
    ) -> anyhow::Result<ZeroTrust> {
        Self::build(label, policy, None, extra)
    }

    /// Like [`new`](Self::new), but identity's only provider is the npm `oidc-provider`
    /// (`tests/oidc-provider/provider.mjs`, in the edge namespace) with `sync_groups` set, and
    /// alice (`oidc::ALICE`) logs in there. The caller checks for node first
    /// (`skip_unless_node!`).
    ///
    /// # Errors
    /// Any step failing, with the logs that explain it.
    pub fn with_upstream(
        label: &str,
        policy: &str,
        sync_groups: &str,
    ) -> anyhow::Result<ZeroTrust> {
        Self::build(label, policy, Some(sync_groups), |_| {
            Ok(EdgeExtra {
                config: String::new(),
                client_routes: "10.202.0.0/24".to_owned(),
            })
        })
    }

    fn build(
        label: &str,
        policy: &str,
        sync_groups: Option<&str>,
        extra: impl FnOnce(&Topology) -> anyhow::Result<EdgeExtra>,
    ) -> anyhow::Result<ZeroTrust> {
        let topo = Topology::new(label)?;
        let state = topo.dir.join("identity-state");
        let state_text = state.to_string_lossy().to_string();
        let listen = format!("127.0.0.1:{IDENTITY_PORT}");
        let base = format!("http://{listen}");
        let provider = match sync_groups {
            Some(interval) => Some(start_upstream(&topo, &state, &base, interval)?),
            None => None,
        };
        let config = state.join("identity.toml").to_string_lossy().to_string();
        let serve: Vec<&str> = if provider.is_some() {
            vec!["serve", "--config", &config]
        } else {
            vec!["serve", "--embedded", &state_text, "--listen", &listen]
        };
        let identity = topo.edge.spawn_with_env(
            bin("gatehouse-identity"),
            &serve,
            &[("RUST_LOG", "identity=debug,info")],
            &topo.dir.join("identity.log"),
        )?;
        let health = format!("{base}/healthz");
        let up = wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
            let url = health.clone();
            topo.edge
                .in_thread(move || {
                    reqwest::blocking::get(url).is_ok_and(|r| r.status().is_success())
                })
                .unwrap_or(false)
        });
        if !up {
            bail!("identity did not start:\n{}", identity.log());
        }

        let (username, password) = match provider {
            Some(_) => (ALICE.username.to_owned(), ALICE.password.to_owned()),
            None => (
                "alice@example.com".to_owned(),
                password_of(&state, "alice@example.com")?,
            ),
        };
        let public_key = topo.client_public.clone();
        let base_for_thread = base.clone();
        let device_id = topo
            .edge
            .in_thread(move || enroll(&base_for_thread, &username, &password, &public_key))?
            .with_context(|| format!("enrollment; identity log:\n{}", identity.log()))?;
        if provider.is_some() {
            let created = admin_in(
                &topo,
                &state,
                &["tokens", "create", "--name", "edge", "--kind", "edge"],
            )?;
            let created: Value = serde_json::from_str(&created).context("tokens create")?;
            let secret = created["secret"].as_str().context("edge token secret")?;
            std::fs::write(state.join("edge.token"), format!("{secret}\n"))?;
        }

        let policy_file = topo.dir.write("access-policy.toml", policy)?;
        let extra = extra(&topo)?;
        let edge_config = format!(
            "private_key = \"{}\"\nlisten = \"0.0.0.0:51820\"\ninterface = \"{}\"\n\
             address = [\"100.64.0.1/10\"]\n\n[identity]\nurl = \"{base}\"\n\
             token_file = \"{}\"\n{}",
            topo.edge_private,
            topo.edge_tun,
            state.join("edge.token").display(),
            extra.config
        );
        let edge_path = topo.dir.write("edge.toml", edge_config)?;
        admin_in(
            &topo,
            &state,
            &["policy", "apply", &policy_file.to_string_lossy()],
        )?;
        let mut edge = topo.start_edge(&edge_path)?;
        edge.wait_for_log("identity peers applied", Duration::from_secs(15))
            .with_context(|| format!("identity log:\n{}", identity.log()))?;
        let client = topo.start_client(&topo.write_client_config(&extra.client_routes)?, &[])?;
        Ok(ZeroTrust {
            client,
            edge,
            identity,
            provider,
            state,
            device_id,
            topo,
        })
    }

    /// Identity's base URL, reachable from inside the edge namespace.
    pub fn identity_url(&self) -> String {
        identity_url()
    }

    /// Runs `gatehouse-identity admin ARGS` (JSON output) against this identity.
    ///
    /// # Errors
    /// The command fails.
    pub fn admin(&self, args: &[&str]) -> anyhow::Result<String> {
        admin_in(&self.topo, &self.state, args)
    }
}

/// Starts `provider.mjs` in the edge namespace and writes `state/identity.toml` (and
/// `state/admin.token`) for an identity whose one provider it is, with `sync_groups`.
fn start_upstream(
    topo: &Topology,
    state: &std::path::Path,
    base: &str,
    sync_groups: &str,
) -> anyhow::Result<OidcProvider> {
    std::fs::create_dir_all(state)?;
    let client = OidcClient {
        client_id: "gatehouse-identity".into(),
        client_secret: "upstream-test-secret".into(),
        redirect_uris: vec![format!("{base}/callback/corp")],
    };
    let provider = OidcProvider::start_in(&topo.dir, &topo.edge, client)?;
    std::fs::write(
        state.join("admin.token"),
        format!("admin-{}\n", crate::random_suffix(24)),
    )?;
    let config = format!(
        "listen = \"127.0.0.1:{IDENTITY_PORT}\"\npublic_url = {base:?}\n\
         database = \"identity.db\"\nadmin_token_file = \"admin.token\"\n\n\
         [[providers]]\nid = \"corp\"\nkind = \"oidc\"\nissuer = {:?}\n\
         client_id = \"gatehouse-identity\"\nclient_secret = \"upstream-test-secret\"\n\
         scopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n\
         sync_groups = {sync_groups:?}\n",
        provider.issuer()
    );
    std::fs::write(state.join("identity.toml"), config)?;
    Ok(provider)
}

/// Identity's base URL on the edge namespace's loopback.
pub fn identity_url() -> String {
    format!("http://127.0.0.1:{IDENTITY_PORT}")
}

/// Runs `gatehouse-identity admin ARGS` inside the edge namespace against the identity whose
/// embedded state is `state`.
///
/// # Errors
/// The command fails.
pub fn admin_in(topo: &Topology, state: &std::path::Path, args: &[&str]) -> anyhow::Result<String> {
    let url = identity_url();
    let token = state.join("admin.token").to_string_lossy().to_string();
    let binary = bin("gatehouse-identity").to_string_lossy().to_string();
    let mut command = vec![
        binary.as_str(),
        "admin",
        "--url",
        &url,
        "--token-file",
        &token,
    ];
    command.extend_from_slice(args);
    topo.edge.run(&command)
}

/// A sample user's password from the embedded state's `passwords.txt`.
///
/// # Errors
/// The file or the line is missing.
pub fn password_of(state: &std::path::Path, email: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(state.join("passwords.txt")).context("passwords.txt")?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{email} ")).map(str::to_owned))
        .context("no password line")
}

/// The device grant signed in at identity's provider (the built-in one or the upstream
/// `oidc-provider`), then `/v1/enroll` of `public_key`; returns the device id.
fn enroll(base: &str, username: &str, password: &str, public_key: &str) -> anyhow::Result<String> {
    let http = reqwest::blocking::Client::new();
    let started: Value = http
        .post(format!("{base}/oauth/device_authorization"))
        .form(&[("client_id", "gatehouse")])
        .send()?
        .json()?;
    let complete = started["verification_uri_complete"]
        .as_str()
        .context("verification_uri_complete")?;
    let user_code = started["user_code"].as_str().context("user_code")?;
    let browser = Browser::new()?;
    let Stop::Page(approval) = browser.login_through(complete, username, password, None)? else {
        bail!("expected the approval page");
    };
    anyhow::ensure!(approval.status == 200, "approval page: {}", approval.body);
    let approved = browser
        .client()
        .post(format!("{base}/device"))
        .form(&[("user_code", user_code), ("action", "approve")])
        .send()?;
    anyhow::ensure!(
        approved.status().is_success(),
        "approve: {}",
        approved.status()
    );
    let interval = started["interval"].as_u64().unwrap_or(1);
    let device_code = started["device_code"].as_str().context("device_code")?;
    let mut access = None;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_secs(interval));
        let token: Value = http
            .post(format!("{base}/oauth/token"))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", "gatehouse"),
                ("device_code", device_code),
            ])
            .send()?
            .json()?;
        if let Some(t) = token["access_token"].as_str() {
            access = Some(t.to_owned());
            break;
        }
    }
    let access = access.context("no access token")?;
    let enrolled = http
        .post(format!("{base}/v1/enroll"))
        .bearer_auth(access)
        .json(&json!({"public_key": public_key, "posture": {"os": "linux", "client_version": "0.1.0"}}))
        .send()?;
    anyhow::ensure!(
        enrolled.status().as_u16() == 201,
        "enroll: {}",
        enrolled.status()
    );
    let enrolled: Value = enrolled.json()?;
    anyhow::ensure!(
        enrolled["profile"]["addresses"][0] == "100.64.0.2/32",
        "the test client's address is the pool's first: {enrolled}"
    );
    enrolled["device_id"]
        .as_str()
        .or_else(|| enrolled["device"]["id"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("no device id in {enrolled}"))
}

/// Python in the client namespace: `CONNECT_PROBE ADDR PORT` connects (3 s timeout) and prints
/// `connected`, `reset` (reset or refused) or `timeout`.
pub const CONNECT_PROBE: &str = r#"
import socket, sys
s = socket.socket(); s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except (ConnectionResetError, ConnectionRefusedError):
    print("reset")
except (socket.timeout, TimeoutError):
    print("timeout")
"#;

/// Python in the destination namespace: `ECHO_SERVER ADDR ECHO_PORT ACCEPT_PORT` echoes on
/// `ECHO_PORT`; `ACCEPT_PORT` only accepts (so a refusal there is the edge's, not the host's).
/// Prints `ready`.
pub const ECHO_SERVER: &str = r#"
import socket, sys, threading
def serve(port, echo):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((sys.argv[1], port)); l.listen(16)
    while True:
        c, _ = l.accept()
        def run(c=c):
            try:
                while echo:
                    d = c.recv(4096)
                    if not d:
                        break
                    c.sendall(d)
            except OSError:
                pass
        threading.Thread(target=run, daemon=True).start()
threading.Thread(target=serve, args=(int(sys.argv[3]), False), daemon=True).start()
threading.Thread(target=serve, args=(int(sys.argv[2]), True), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// Python in the client namespace: `LIVE_FLOW ADDR PORT` sends a byte every 20 ms and reads it
/// back; prints `flowing` once, then `closed <error or eof> <ms since the epoch>`.
pub const LIVE_FLOW: &str = r#"
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
said = False
try:
    while True:
        s.sendall(b"x")
        if not s.recv(1):
            print("closed eof", time.time() * 1000, flush=True)
            break
        if not said:
            print("flowing", flush=True)
            said = True
        time.sleep(0.02)
except Exception as e:
    print("closed", type(e).__name__, time.time() * 1000, flush=True)
"#;

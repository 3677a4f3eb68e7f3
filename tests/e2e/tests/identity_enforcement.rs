//! Identity decides at the edge: the edge's only peers come from identity's feed, its only
//! policy is the one applied through the admin API, and revoking the device closes its live
//! flow (the client sees a reset) and ends its WireGuard session. Allowed HTTP requests reach
//! the origin with identity's application assertion, which the origin verifies against
//! identity's JWKS.

use anyhow::Context as _;
use e2e::connector::CredentialKey;
use e2e::gatehouse::{DEST, EDGE_DEST_SIDE};
use e2e::zero_trust::{EdgeExtra, ZeroTrust, CONNECT_PROBE, ECHO_SERVER, LIVE_FLOW};
use e2e::{bin, skip_unless_root, wait_until, Proc};
use gatehouse_verify::{UnixTime, Verifier};
use std::time::{Duration, SystemTime};

const ECHO_PORT: u16 = 9000;
const CLOSED_PORT: u16 = 9001;

/// alice may reach the echo port; nothing else is covered (denied by default).
const POLICY: &str = r#"
version = 1
[[applications]]
name = "echo"
destinations = [{ cidr = "10.202.0.2/32", ports = [9000], protocol = "tcp" }]
[[applications.policies]]
name = "alice"
action = "allow"
include = [{ email = "alice@example.com" }]
"#;

#[test]
fn feed_peers_identity_policy_and_revocation_closing_a_live_flow() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let mut world = ZeroTrust::new("zt-revoke", POLICY)?;
    let topo = &world.topo;
    let log = topo.dir.join("echo.log");
    let mut echo = topo.dest.spawn(
        "python3",
        &[
            "-u",
            "-c",
            ECHO_SERVER,
            DEST,
            &ECHO_PORT.to_string(),
            &CLOSED_PORT.to_string(),
        ],
        &log,
    )?;
    echo.wait_for_log("ready", Duration::from_secs(10))?;

    // A port the policy does not cover is refused by the edge (reset), though it listens.
    let refused = topo.client.run(&[
        "python3",
        "-c",
        CONNECT_PROBE,
        DEST,
        &CLOSED_PORT.to_string(),
    ])?;
    anyhow::ensure!(
        refused.trim() == "reset",
        "uncovered port: {refused}\nedge log:\n{}",
        world.edge.log()
    );

    // A live flow: a byte every 20 ms, echoed back.
    let flow_log = topo.dir.join("flow.log");
    let mut flow = topo.client.spawn(
        "python3",
        &["-u", "-c", LIVE_FLOW, DEST, &ECHO_PORT.to_string()],
        &flow_log,
    )?;
    flow.wait_for_log("flowing", Duration::from_secs(15))
        .map_err(|e| anyhow::anyhow!("{e:#}\nedge log:\n{}", world.edge.log()))?;

    world.admin(&["devices", "revoke", &world.device_id])?;
    let closed = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        flow.log().contains("closed")
    });
    anyhow::ensure!(
        closed,
        "the live flow survived the revocation:\n{}\nedge log:\n{}",
        flow.log(),
        world.edge.log()
    );
    anyhow::ensure!(
        flow.log().contains("closed ConnectionResetError"),
        "closed by a reset from the edge: {}",
        flow.log()
    );
    world
        .edge
        .wait_for_log("removed=1", Duration::from_secs(5))?;
    // With the peer gone, nothing from the device passes any more.
    let after =
        world
            .topo
            .client
            .run(&["python3", "-c", CONNECT_PROBE, DEST, &ECHO_PORT.to_string()])?;
    anyhow::ensure!(after.trim() == "timeout", "after revocation: {after}");
    stop(&mut flow);

    // Every decision reached identity's audit: the refused port and the allowed flow, with
    // who and which application.
    let mut last = String::new();
    let audited = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        last = world
            .admin(&["decisions", "--json"])
            .unwrap_or_else(|e| format!("{e:#}"));
        last.contains("10.202.0.2:9001/tcp") && last.contains("10.202.0.2:9000/tcp")
    });
    anyhow::ensure!(audited, "decisions: {last}");
    let decisions: serde_json::Value = serde_json::from_str(&last)?;
    let find = |destination: &str, decision: &str| {
        decisions["decisions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["destination"] == destination && d["decision"] == decision)
            .cloned()
            .unwrap_or_default()
    };
    let denied = find("10.202.0.2:9001/tcp", "deny");
    anyhow::ensure!(
        denied["email"] == "alice@example.com"
            && denied["reason"] == "no application covers this address",
        "{denied}"
    );
    let allowed = find("10.202.0.2:9000/tcp", "allow");
    anyhow::ensure!(
        allowed["email"] == "alice@example.com"
            && allowed["application"] == "echo"
            && allowed["policy"] == "alice"
            && allowed["device_id"] == world.device_id.as_str(),
        "{allowed}"
    );
    Ok(())
}

/// alice may use the wiki application (a connector's hostname route).
const WIKI_POLICY: &str = r#"
version = 1
[[applications]]
name = "wiki"
destinations = [{ host = "wiki.e2e.test" }]
[[applications.policies]]
name = "alice"
action = "allow"
include = [{ email = "alice@example.com" }]
"#;

const CONNECTOR_PORT: u16 = 7844;
const WIKI_PORT: u16 = 8081;

/// Client → edge front (HTTP, Host wiki.e2e.test) → connector → origin: the origin gets
/// identity's application assertion in `Gatehouse-Assertion` (the client's forged copy
/// dropped), and it verifies with `gatehouse-verify` against identity's JWKS: audience the
/// application, alice's e-mail, the enrolled device.
///
/// The connector's credential is signed by a test key the edge trusts through `jwks_file`
/// (as in connector_path.rs): identity listens on the edge namespace's loopback only, out of
/// the connector's reach, and the credential exchange is not what this test is about.
#[test]
fn allowed_requests_carry_an_application_assertion_the_origin_verifies() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let world = ZeroTrust::with_edge("zt-assert", WIKI_POLICY, |topo| {
        let pki = topo.dir.join("pki");
        let out = std::process::Command::new(bin("gatehouse-edge"))
            .args(["ca", "init", "--dir", &pki.to_string_lossy()])
            .args(["--name", "edge.e2e.test", "--ip", EDGE_DEST_SIDE])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "ca init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = CredentialKey::new("https://connectors.e2e.test");
        topo.dir.write("connector-keys.json", key.jwks_json()?)?;
        topo.dir.write(
            "credentials.json",
            format!(
                "{{\"TunnelID\": \"tun-1\", \"ConnectorID\": \"conn-1\", \"Credential\": \"{}\"}}",
                key.credential("conn-1", "tun-1")
            ),
        )?;
        Ok(EdgeExtra {
            config: format!(
                "\n[connectors]\nlisten = \"0.0.0.0:{CONNECTOR_PORT}\"\ncert_file = \"pki/edge.pem\"\n\
                 key_file = \"pki/edge.key\"\nissuer = \"{}\"\njwks_file = \"connector-keys.json\"\n\
                 name = \"e2e-edge\"\n",
                key.issuer
            ),
            client_routes: "10.202.0.0/24, 100.64.0.1/32".to_owned(),
        })
    })?;
    let topo = &world.topo;
    let _origin = {
        let log = topo.dir.join("wiki.log");
        let mut origin = topo.dest.spawn(
            "python3",
            &["-u", "-c", ASSERTION_ECHO, &WIKI_PORT.to_string()],
            &log,
        )?;
        origin.wait_for_log("ready", Duration::from_secs(10))?;
        origin
    };
    let config = topo.dir.write(
        "config.yml",
        format!(
            "credentials-file: {}\nedge-ca-file: {}\nedges: [\"{EDGE_DEST_SIDE}:{CONNECTOR_PORT}\"]\n\
             ha-connections: 1\ngrace-period: 1s\ningress:\n\
             \x20 - hostname: wiki.e2e.test\n    service: http://127.0.0.1:{WIKI_PORT}\n\
             \x20 - service: http_status:404\n",
            topo.dir.join("credentials.json").display(),
            topo.dir.join("pki").join("ca.pem").display()
        ),
    )?;
    let connector = topo.dest.spawn_with_env(
        bin("gatehouse-connector"),
        &["run", "--config", &config.to_string_lossy()],
        &[("GATEHOUSE_LOG", "info,connector=debug")],
        &topo.dir.join("connector.log"),
    )?;

    // The first request may race the connector's registration: retry until the origin answers.
    let mut answer = String::new();
    let answered = wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        answer = topo
            .client
            .run(&["python3", "-c", WIKI_CLIENT, "100.64.0.1", "wiki.e2e.test"])
            .unwrap_or_else(|e| format!("{e:#}"));
        answer.starts_with("200 ")
    });
    anyhow::ensure!(
        answered,
        "request to the wiki: {answer}\nedge log:\n{}\nconnector log:\n{}",
        world.edge.log(),
        connector.log()
    );
    let jwt = answer.trim_start_matches("200 ").trim().to_owned();
    anyhow::ensure!(
        jwt != "none" && jwt != "forged",
        "the origin got {jwt:?}\nedge log:\n{}",
        world.edge.log()
    );

    // The origin's side: identity's issuer and JWKS, fetched from inside the edge namespace.
    let base = world.identity_url();
    let (issuer, jwks) = topo
        .edge
        .in_thread(move || -> anyhow::Result<(String, String)> {
            let metadata: serde_json::Value =
                reqwest::blocking::get(format!("{base}/.well-known/oauth-authorization-server"))?
                    .json()?;
            let issuer = metadata["issuer"].as_str().context("issuer")?.to_owned();
            let jwks = reqwest::blocking::get(format!("{base}/.well-known/jwks.json"))?.text()?;
            Ok((issuer, jwks))
        })??;
    let verifier = Verifier::from_jwks_json(issuer, "wiki", &jwks)?;
    let now = UnixTime::from_system_time(SystemTime::now());
    let assertion = verifier
        .verify(&jwt, now)
        .context("the assertion verifies")?;
    anyhow::ensure!(assertion.application == "wiki");
    anyhow::ensure!(assertion.email == "alice@example.com", "{assertion:?}");
    anyhow::ensure!(
        assertion.device_id.as_deref() == Some(world.device_id.as_str()),
        "{assertion:?}"
    );
    anyhow::ensure!(assertion.posture.is_some_and(|p| p.os == "linux"));
    // Another application's verifier does not take it.
    let other = Verifier::from_jwks_json(verifier.issuer(), "payroll", &jwks)?;
    anyhow::ensure!(other.verify(&jwt, now).is_err());
    anyhow::ensure!(
        !world.edge.log().contains(&jwt),
        "the edge never logs the assertion"
    );
    // The request's decision is in identity's audit as an HTTP decision for the application.
    let mut last = String::new();
    let audited = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        last = world
            .admin(&["decisions", "--json", "--application", "wiki"])
            .unwrap_or_else(|e| format!("{e:#}"));
        serde_json::from_str::<serde_json::Value>(&last).is_ok_and(|v| {
            v["decisions"].as_array().is_some_and(|all| {
                all.iter()
                    .any(|d| d["kind"] == "http" && d["decision"] == "allow")
            })
        })
    });
    anyhow::ensure!(audited, "http decisions: {last}");
    Ok(())
}

/// Answers every request with the `Gatehouse-Assertion` header it got (or `none`); several
/// copies would show as `dup`.
const ASSERTION_ECHO: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        got = self.headers.get_all("Gatehouse-Assertion") or []
        text = ("dup" if len(got) > 1 else (got[0] if got else "none")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("ready", flush=True)
s.serve_forever()
"#;

/// GET / with a forged assertion header; prints `STATUS BODY`.
const WIKI_CLIENT: &str = r#"
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], 80, timeout=10)
c.request("GET", "/", headers={"Host": sys.argv[2], "Gatehouse-Assertion": "forged"})
r = c.getresponse()
print(r.status, r.read().decode(errors="replace"))
"#;

fn stop(proc: &mut Proc) {
    let _ = proc.stop();
}

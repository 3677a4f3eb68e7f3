//! Clientless access end to end, with real binaries in namespaces and no Gatehouse client: a
//! browser-like HTTP client (cookie jar, redirects followed, the built-in provider's sign-in
//! form filled in) reaches applications behind a connector through the edge's HTTPS front.
//!
//! ```text
//!  edge ns: browser (test thread) ── https 127.0.0.1:8443 ── gatehouse-edge ── QUIC ──┐
//!           gatehouse-identity 127.0.0.1:18080 (embedded, built-in provider)         │
//!  dest ns: gatehouse-connector ── http 127.0.0.1:8081 origin  ◀───────────────────────┘
//! ```
//!
//! Checked: login redirect → sign-in → callback → the app, with an assertion the origin
//! verifies and none of the edge's cookies at the origin; one sign-in serves a second app;
//! a denied app gets 403; app A's cookie does not open app B; a forged cookie, a logged-out
//! session and an expired session are refused; no open redirect; machines get in with a
//! service token in a header and are refused (401) with a wrong one; disabling the user ends
//! a live browser session.

use anyhow::{bail, ensure, Context as _};
use e2e::browser::{Browser, Stop};
use e2e::connector::CredentialKey;
use e2e::gatehouse::{Topology, EDGE_DEST_SIDE};
use e2e::zero_trust::{admin_in, identity_url, password_of};
use e2e::{bin, skip_unless_root, wait_until, Proc};
use gatehouse_verify::{UnixTime, Verifier};
use reqwest::blocking::Client;
use reqwest::cookie::CookieStore as _;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const CONNECTOR_PORT: u16 = 7844;
const ORIGIN_PORT: u16 = 8081;
const FRONT: &str = "127.0.0.1:8443";
/// How long an access session lasts here (identity's `[tokens] access_session`).
const ACCESS_SESSION_SECS: u64 = 25;
const APPS: [&str; 4] = [
    "a.apps.e2e.test",
    "b.apps.e2e.test",
    "c.apps.e2e.test",
    "ci.apps.e2e.test",
];

/// alice may use app-a and app-b; app-c is for finance (alice is not in it); app-ci takes
/// any valid service token.
const POLICY: &str = r#"
version = 1
[[applications]]
name = "app-a"
destinations = [{ host = "a.apps.e2e.test" }]
[[applications.policies]]
name = "alice"
action = "allow"
include = [{ email = "alice@example.com" }]

[[applications]]
name = "app-b"
destinations = [{ host = "b.apps.e2e.test" }]
[[applications.policies]]
name = "alice"
action = "allow"
include = [{ email = "alice@example.com" }]

[[applications]]
name = "app-c"
destinations = [{ host = "c.apps.e2e.test" }]
[[applications.policies]]
name = "finance"
action = "allow"
include = [{ group = "finance" }]

[[applications]]
name = "app-ci"
destinations = [{ host = "ci.apps.e2e.test" }]
[[applications.policies]]
name = "robots"
action = "service_auth"
include = [{ any_service_token = true }]
"#;

/// Answers with what it got: `path`, the `Cookie` header, the assertion, whether a service
/// token header arrived, as one JSON object.
const ORIGIN: &str = r#"
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({
            "path": self.path,
            "host": self.headers.get("Host", ""),
            "cookie": self.headers.get("Cookie", ""),
            "assertion": self.headers.get("Gatehouse-Assertion", ""),
            "service_token_seen": self.headers.get("Gatehouse-Service-Token") is not None,
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("ready", flush=True)
s.serve_forever()
"#;

struct World {
    topo: Topology,
    state: std::path::PathBuf,
    edge: Proc,
    identity: Proc,
    connector: Proc,
    _origin: Proc,
}

impl World {
    fn logs(&self) -> String {
        format!(
            "edge log:\n{}\nidentity log:\n{}\nconnector log:\n{}",
            self.edge.log(),
            self.identity.log(),
            self.connector.log()
        )
    }
}

fn start() -> anyhow::Result<World> {
    let topo = Topology::new("clientless")?;
    let state = topo.dir.join("identity-state");
    std::fs::create_dir_all(&state)?;
    let base = identity_url();
    let listen = base.trim_start_matches("http://").to_owned();
    std::fs::write(
        state.join("identity.toml"),
        format!(
            "listen = \"{listen}\"\ndatabase = \"identity.db\"\nadmin_token_file = \"admin.token\"\n\n\
             [tokens]\naccess_session = \"{ACCESS_SESSION_SECS}s\"\n\n\
             [[providers]]\nid = \"local\"\nkind = \"local\"\ndisplay_name = \"Local accounts\"\n\
             users_file = \"users.toml\"\n"
        ),
    )?;
    let identity = topo.edge.spawn_with_env(
        bin("gatehouse-identity"),
        &["serve", "--embedded", &state.to_string_lossy()],
        &[("RUST_LOG", "identity=debug,info")],
        &topo.dir.join("identity.log"),
    )?;
    let health = format!("{base}/healthz");
    let up = wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        let url = health.clone();
        topo.edge
            .in_thread(move || reqwest::blocking::get(url).is_ok_and(|r| r.status().is_success()))
            .unwrap_or(false)
    });
    ensure!(up, "identity did not start:\n{}", identity.log());
    let policy = topo.dir.write("policy.toml", POLICY)?;
    admin_in(
        &topo,
        &state,
        &["policy", "apply", &policy.to_string_lossy()],
    )?;

    // One certificate from the deployment CA for the tunnel and every application name.
    let pki = topo.dir.join("pki");
    let out = std::process::Command::new(bin("gatehouse-edge"))
        .args(["ca", "init", "--dir", &pki.to_string_lossy()])
        .args(["--name", "edge.e2e.test", "--name", "*.apps.e2e.test"])
        .args(["--ip", EDGE_DEST_SIDE])
        .output()?;
    ensure!(
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
    let edge_config = topo.dir.write(
        "edge.toml",
        format!(
            "private_key = \"{}\"\nlisten = \"0.0.0.0:51820\"\ninterface = \"{}\"\n\
             address = [\"100.64.0.1/10\"]\n\n[identity]\nurl = \"{base}\"\ntoken_file = \"{}\"\n\n\
             [connectors]\nlisten = \"0.0.0.0:{CONNECTOR_PORT}\"\ncert_file = \"pki/edge.pem\"\n\
             key_file = \"pki/edge.key\"\nissuer = \"{}\"\njwks_file = \"connector-keys.json\"\n\n\
             [clientless]\nlisten = [\"{FRONT}\"]\n[[clientless.certificates]]\n\
             cert_file = \"pki/edge.pem\"\nkey_file = \"pki/edge.key\"\n",
            topo.edge_private,
            topo.edge_tun,
            state.join("edge.token").display(),
            key.issuer
        ),
    )?;
    let mut edge = topo.start_edge(&edge_config)?;
    edge.wait_for_log("clientless access (HTTPS) up", Duration::from_secs(15))?;
    edge.wait_for_log(
        "access policy from identity loaded",
        Duration::from_secs(15),
    )
    .with_context(|| format!("identity log:\n{}", identity.log()))?;

    let mut origin = topo.dest.spawn(
        "python3",
        &["-u", "-c", ORIGIN, &ORIGIN_PORT.to_string()],
        &topo.dir.join("origin.log"),
    )?;
    origin.wait_for_log("ready", Duration::from_secs(10))?;
    let mut ingress = String::new();
    for host in APPS {
        ingress.push_str(&format!(
            "  - hostname: {host}\n    service: http://127.0.0.1:{ORIGIN_PORT}\n"
        ));
    }
    let connector_config = topo.dir.write(
        "config.yml",
        format!(
            "credentials-file: {}\nedge-ca-file: {}\nedges: [\"{EDGE_DEST_SIDE}:{CONNECTOR_PORT}\"]\n\
             ha-connections: 1\ngrace-period: 1s\ningress:\n{ingress}  - service: http_status:404\n",
            topo.dir.join("credentials.json").display(),
            pki.join("ca.pem").display()
        ),
    )?;
    let connector = topo.dest.spawn_with_env(
        bin("gatehouse-connector"),
        &["run", "--config", &connector_config.to_string_lossy()],
        &[("GATEHOUSE_LOG", "info,connector=debug")],
        &topo.dir.join("connector.log"),
    )?;
    Ok(World {
        topo,
        state,
        edge,
        identity,
        connector,
        _origin: origin,
    })
}

/// A client that trusts the deployment CA, resolves the application names to the edge's
/// HTTPS front and follows no redirects itself; with `jar` it keeps cookies like a browser.
fn client(ca_pem: &[u8], jar: Option<Arc<reqwest::cookie::Jar>>) -> anyhow::Result<Client> {
    let front: SocketAddr = FRONT.parse()?;
    let mut builder = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem)?)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20));
    for host in APPS {
        builder = builder.resolve(host, front);
    }
    if let Some(jar) = jar {
        builder = builder.cookie_provider(jar);
    }
    Ok(builder.build()?)
}

fn app_url(host: &str, path: &str) -> String {
    format!(
        "https://{host}:{}{path}",
        FRONT.rsplit(':').next().unwrap_or("8443")
    )
}

/// The session cookie the jar holds for `host`, if any.
fn session_cookie(jar: &reqwest::cookie::Jar, host: &str) -> Option<String> {
    let url = url::Url::parse(&app_url(host, "/")).ok()?;
    let header = jar.cookies(&url)?;
    header
        .to_str()
        .ok()?
        .split(';')
        .map(str::trim)
        .find_map(|pair| pair.strip_prefix("__Host-gatehouse-session="))
        .map(str::to_owned)
}

fn page(stop: Stop) -> anyhow::Result<e2e::browser::Page> {
    match stop {
        Stop::Page(page) => Ok(page),
        Stop::Redirect(url) => bail!("stopped at a redirect to {url}"),
    }
}

#[test]
fn browsers_sign_in_through_identity_and_machines_use_service_tokens() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let world = start()?;
    let password = password_of(&world.state, "alice@example.com")?;
    let ca_pem = std::fs::read(world.topo.dir.join("pki").join("ca.pem"))?;
    let ca_pem_for_disable = ca_pem.clone();
    let token_out = admin_in(
        &world.topo,
        &world.state,
        &[
            "tokens", "create", "--name", "ci-robot", "--kind", "machine",
        ],
    )?;
    let created: serde_json::Value = serde_json::from_str(&token_out)
        .with_context(|| format!("tokens create printed {token_out}"))?;
    let machine_secret = created["secret"]
        .as_str()
        .context("the token's secret")?
        .to_owned();
    let base = identity_url();
    let secret_for_thread = machine_secret.clone();
    let result = world.topo.edge.in_thread(move || -> anyhow::Result<String> {
        let machine_secret = secret_for_thread;
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = client(&ca_pem, Some(jar.clone()))?;

        // No session: a redirect to identity's authorize, with the login nonce in a cookie.
        let first = http.get(app_url(APPS[0], "/hello?x=1")).send()?;
        ensure!(first.status() == 302, "first answer {}", first.status());
        let location = first.headers()[LOCATION].to_str()?.to_owned();
        ensure!(
            location.starts_with(&format!(
                "{base}/v1/access/authorize?host=a.apps.e2e.test%3A8443&path=%2Fhello%3Fx%3D1&nonce="
            )),
            "{location}"
        );
        let state_cookie = first.headers()[SET_COOKIE].to_str()?.to_owned();
        for attribute in ["__Host-gatehouse-login=", "HttpOnly", "Secure", "SameSite=Lax"] {
            ensure!(state_cookie.contains(attribute), "{state_cookie}");
        }

        // The whole round trip: authorize → /login → the provider's form → back → the app.
        // The first request may race the connector's registration: retry a 502.
        let browser = Browser::from_client(http.clone());
        let signed_in = page(browser.login_through(
            &app_url(APPS[0], "/hello?x=1"),
            "alice@example.com",
            &password,
            None,
        )?)?;
        let mut answer = signed_in;
        let reached = wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
            if answer.status == 200 {
                return true;
            }
            if let Ok(Stop::Page(p)) = browser.navigate(&app_url(APPS[0], "/hello?x=1"), None) {
                answer = p;
            }
            answer.status == 200
        });
        ensure!(reached, "app-a answered {} {}", answer.status, answer.body);
        let seen: serde_json::Value = serde_json::from_str(&answer.body)?;
        ensure!(seen["path"] == "/hello?x=1", "{seen}");
        ensure!(
            !seen["cookie"].as_str().unwrap_or("").contains("gatehouse"),
            "the edge's cookies reach the origin: {seen}"
        );
        let session_a = session_cookie(&jar, APPS[0]).context("no session cookie for app A")?;

        // The origin verifies the assertion: audience the application, alice, no device.
        let metadata: serde_json::Value =
            reqwest::blocking::get(format!("{base}/.well-known/oauth-authorization-server"))?
                .json()?;
        let issuer = metadata["issuer"].as_str().context("issuer")?.to_owned();
        let jwks = reqwest::blocking::get(format!("{base}/.well-known/jwks.json"))?.text()?;
        let verifier = Verifier::from_jwks_json(issuer.clone(), "app-a", &jwks)?;
        let now = UnixTime::from_system_time(SystemTime::now());
        let jwt = seen["assertion"].as_str().unwrap_or("");
        let assertion = verifier.verify(jwt, now).context("the assertion verifies")?;
        ensure!(assertion.email == "alice@example.com", "{assertion:?}");
        ensure!(assertion.device_id.is_none(), "{assertion:?}");
        ensure!(Verifier::from_jwks_json(issuer, "app-b", &jwks)?
            .verify(jwt, now)
            .is_err());

        // One sign-in serves app B too (identity's own session; no password form again).
        let b = page(browser.navigate(&app_url(APPS[1], "/"), None)?)?;
        ensure!(b.status == 200, "app-b: {} {}", b.status, b.body);
        let session_b = session_cookie(&jar, APPS[1]).context("no session cookie for app B")?;
        ensure!(session_a != session_b, "each application has its own session");

        // app C: the policy denies alice; a 403 page with a reference id.
        let c = http.get(app_url(APPS[2], "/")).send()?;
        let c_status = c.status().as_u16();
        if c_status == 302 {
            // First visit: through authorize and back, then the decision.
            let c = page(browser.navigate(&app_url(APPS[2], "/"), None)?)?;
            ensure!(c.status == 403, "app-c: {} {}", c.status, c.body);
            ensure!(c.body.contains("Reference"), "{}", c.body);
        } else {
            bail!("app-c answered {c_status} without a session");
        }

        // A's cookie does not open B, a forged one does not open A; A's own does (control).
        let bare = client(&ca_pem, None)?;
        let with_cookie = |host: &str, value: &str| -> anyhow::Result<u16> {
            Ok(bare
                .get(app_url(host, "/"))
                .header(COOKIE, format!("__Host-gatehouse-session={value}"))
                .send()?
                .status()
                .as_u16())
        };
        ensure!(with_cookie(APPS[0], &session_a)? == 200, "A's cookie at A");
        ensure!(with_cookie(APPS[1], &session_a)? == 302, "A's cookie at B");
        let mut forged = session_a.clone();
        let last = forged.pop().context("empty cookie")?;
        forged.push(if last == 'A' { 'B' } else { 'A' });
        ensure!(with_cookie(APPS[0], &forged)? == 302, "a forged cookie");

        // No open redirect: the callback keeps only local paths, identity only app hosts.
        let evil = bare
            .get(app_url(
                APPS[0],
                &format!("/.gatehouse/callback?token={session_a}&path=%2F%2Fevil.test"),
            ))
            .send()?;
        ensure!(evil.status() == 400 && evil.headers().get(LOCATION).is_none());
        let evil = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?
            .get(format!(
                "{base}/v1/access/authorize?host=evil.test&path=%2F&nonce=0123456789abcdefghij"
            ))
            .send()?;
        ensure!(
            evil.status() == 400 && evil.headers().get(LOCATION).is_none(),
            "identity's authorize for a foreign host: {}",
            evil.status()
        );

        // Machines: a service token in a header; never redirected, never forwarded.
        let machine = |token: Option<&str>, host: &str| -> anyhow::Result<(u16, String)> {
            let mut request = bare.get(app_url(host, "/"));
            if let Some(token) = token {
                request = request.header("Gatehouse-Service-Token", token);
            }
            let response = request.send()?;
            Ok((response.status().as_u16(), response.text()?))
        };
        let mut ok = (0, String::new());
        let fed = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
            ok = machine(Some(&machine_secret), APPS[3]).unwrap_or((0, String::new()));
            ok.0 == 200
        });
        ensure!(fed, "service token at app-ci: {} {}", ok.0, ok.1);
        ensure!(ok.1.contains("\"service_token_seen\": false"), "{}", ok.1);
        let mut wrong = machine_secret.clone();
        let last = wrong.pop().context("empty token")?;
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        ensure!(machine(Some(&wrong), APPS[3])?.0 == 401, "a wrong secret");
        ensure!(machine(Some(&machine_secret), APPS[0])?.0 == 403, "token at alice's app");
        ensure!(machine(None, APPS[3])?.0 == 302, "no credential: the login redirect");

        // Logout ends the session everywhere: A's old cookie is refused once the feed says so.
        let out = page(browser.navigate(&app_url(APPS[0], "/.gatehouse/logout"), None)?)?;
        ensure!(out.url.as_str().starts_with(&base), "ended at {}", out.url);
        ensure!(session_cookie(&jar, APPS[0]).is_none(), "the cookie is cleared");
        let revoked = wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
            with_cookie(APPS[1], &session_b).is_ok_and(|s| s == 302)
        });
        ensure!(revoked, "B's session still works after logout");
        let again = page(browser.navigate(&app_url(APPS[0], "/"), None)?)?;
        ensure!(
            again.body.contains("name=\"password\""),
            "after logout the sign-in form again: {} {}",
            again.status,
            again.body
        );

        // A new session expires after identity's access-session lifetime.
        let fresh = page(browser.sign_in(&again, "alice@example.com", &password, None)?)?;
        ensure!(fresh.status == 200, "signed in again: {} {}", fresh.status, fresh.body);
        let session = session_cookie(&jar, APPS[0]).context("the new session cookie")?;
        let signed_at = Instant::now();
        ensure!(with_cookie(APPS[0], &session)? == 200);
        std::thread::sleep(
            Duration::from_secs(ACCESS_SESSION_SECS + 2).saturating_sub(signed_at.elapsed()),
        );
        ensure!(with_cookie(APPS[0], &session)? == 302, "an expired session");

        // A live session for the disabled-user check below (identity's own login still holds).
        let last = page(browser.navigate(&app_url(APPS[0], "/"), None)?)?;
        ensure!(last.status == 200, "a third session: {} {}", last.status, last.body);
        let live = session_cookie(&jar, APPS[0]).context("the third session cookie")?;
        ensure!(with_cookie(APPS[0], &live)? == 200);
        Ok(live)
    })?;
    let live_session = result.with_context(|| world.logs())?;

    // Disabling alice revokes her live browser session at the edge, not only her devices.
    let users: serde_json::Value =
        serde_json::from_str(&admin_in(&world.topo, &world.state, &["users", "list"])?)?;
    let alice_id = users["users"]
        .as_array()
        .and_then(|all| all.iter().find(|u| u["email"] == "alice@example.com"))
        .and_then(|u| u["id"].as_str())
        .context("alice in users list")?
        .to_owned();
    admin_in(&world.topo, &world.state, &["users", "disable", &alice_id])?;
    let refused = world
        .topo
        .edge
        .in_thread(move || -> anyhow::Result<bool> {
            let bare = client(&ca_pem_for_disable, None)?;
            Ok(wait_until(
                Duration::from_secs(5),
                Duration::from_millis(100),
                || {
                    bare.get(app_url(APPS[0], "/"))
                        .header(COOKIE, format!("__Host-gatehouse-session={live_session}"))
                        .send()
                        .is_ok_and(|r| r.status() == 302)
                },
            ))
        })??;
    ensure!(
        refused,
        "a disabled user's browser session still opens the app\n{}",
        world.logs()
    );

    // The clientless decisions are in identity's audit with the user.
    let decisions = admin_in(
        &world.topo,
        &world.state,
        &["decisions", "--json", "--application", "app-c"],
    )?;
    let decisions: serde_json::Value = serde_json::from_str(&decisions)?;
    ensure!(
        decisions["decisions"]
            .as_array()
            .is_some_and(|all| all.iter().any(|d| {
                d["decision"] == "deny" && d["kind"] == "http" && d["email"] == "alice@example.com"
            })),
        "app-c decisions: {decisions}"
    );
    ensure!(
        !world.edge.log().contains(&machine_secret),
        "the edge never logs a token"
    );
    Ok(())
}

//! Client → edge → connector → origin: a WireGuard client's TCP flows and UDP datagrams to a
//! connector's private route leave the edge through the connector's outbound-only QUIC tunnel
//! (flow streams for TCP, QUIC datagrams for UDP).
//!
//! ```text
//!  client ns              edge ns                              origin ns
//!  10.201.0.2 ──veth── 10.201.0.1
//!                      10.202.0.1 (QUIC :7844) ◀──dials── 10.202.0.2  connector
//!                      TUN 100.64.0.1/10, TPROXY :7845         10.99.0.5/24 on lo: HTTP :8080,
//!                                                              TCP echo :9000, (UDP test:)
//!                                                              DNS :53, UDP echo :9001
//!                                                              input: ct state new drop (not lo)
//! ```
//! Two connectors play the far end: the real `gatehouse-connector` binary (config.yml with
//! `private-routes`, `edges`, `edge-ca-file`, `credentials-file`), and the in-test one from
//! `e2e::connector` (the `tunnel` crate's `Dialer` on a thread inside the origin namespace),
//! which also checks the edge's behaviour while a connector is away and back.

use anyhow::Context as _;
use e2e::connector::{ConnectorSpec, CredentialKey, InTestConnector};
use e2e::gatehouse::{Topology, DEST, EDGE_DEST_SIDE};

/// The edge's tunnel address, where its application front listens.
const EDGE_TUNNEL: &str = "100.64.0.1";
use e2e::{bin, http_get, skip_unless_root, wait_until, Proc};
use rand::RngCore;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ORIGIN_ADDR: &str = "10.99.0.5";
const PRIVATE_ROUTE: &str = "10.99.0.0/24";
const HTTP_PORT: u16 = 8080;
const ECHO_PORT: u16 = 9000;
const DNS_PORT: u16 = 53;
const UDP_ECHO_PORT: u16 = 9001;
/// The name the origin's resolver answers, and its address.
const DNS_NAME: &str = "app.internal";
const DNS_ANSWER: &str = "10.1.2.3";
const CONNECTOR_PORT: u16 = 7844;
const ISSUER: &str = "https://identity.e2e.test";
const CONNECTOR_ID: &str = "conn-1";
const TUNNEL_ID: &str = "tun-1";
const ALLOW_ALL: &str = "[[policy]]\naction = \"allow\"\n";

/// The three namespaces with the origin's servers and drop rule, the PKI from
/// `gatehouse-edge ca init`, a credential key, the edge (with `[connectors]`) and the client.
/// Fields drop in declaration order: the processes before the topology (last) that holds them.
struct World {
    _client: Proc,
    edge: Proc,
    _echo: Proc,
    _http: e2e::HttpServer,
    body: Vec<u8>,
    key: CredentialKey,
    ca_pem: PathBuf,
    topo: Topology,
}

impl World {
    fn new(label: &str) -> anyhow::Result<World> {
        Self::with_edge_files(label, &[], "")
    }

    /// Like [`new`](Self::new), with `files` written beside the edge's config and `extra`
    /// appended to it (after its `[connectors]` section).
    fn with_edge_files(label: &str, files: &[(&str, &str)], extra: &str) -> anyhow::Result<World> {
        let topo = Topology::new(label)?;
        for (name, text) in files {
            topo.dir.write(name, text)?;
        }
        let origin = &topo.dest;
        // The origin: a private address on lo, servers on it, and no new inbound connections
        // from outside (the connector only dials out).
        origin.ip(&["addr", "add", &format!("{ORIGIN_ADDR}/24"), "dev", "lo"])?;
        origin.run_with_stdin(
            &["nft", "-f", "-"],
            b"table inet e2e_origin {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\
              \t\tiif \"lo\" accept\n\t\tct state new drop\n\t}\n}\n",
        )?;
        let mut body = vec![0u8; 256 * 1024];
        rand::thread_rng().fill_bytes(&mut body);
        let http = e2e::HttpServer::start(origin, topo.dir.path(), "0.0.0.0", HTTP_PORT, &body)?;
        let echo = start_tcp_echo(&topo)?;

        // The deployment CA and the edge certificate, by the edge's own subcommand.
        let pki = topo.dir.join("pki");
        let pki_text = pki.to_string_lossy().to_string();
        let out = std::process::Command::new(bin("gatehouse-edge"))
            .args([
                "ca",
                "init",
                "--dir",
                &pki_text,
                "--name",
                "edge.e2e.test",
                "--ip",
                EDGE_DEST_SIDE,
            ])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "ca init: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let key = CredentialKey::new(ISSUER);
        topo.dir.write("connector-keys.json", key.jwks_json()?)?;
        let connectors = format!(
            "{ALLOW_ALL}\n[connectors]\nlisten = \"0.0.0.0:{CONNECTOR_PORT}\"\n\
             cert_file = \"pki/edge.pem\"\nkey_file = \"pki/edge.key\"\nissuer = \"{ISSUER}\"\n\
             jwks_file = \"connector-keys.json\"\nname = \"e2e-edge\"\n{extra}"
        );
        let mut edge = topo.start_edge(&topo.write_edge_config(&connectors)?)?;
        edge.wait_for_log("connector listener up", Duration::from_secs(10))?;
        // The private route, and the edge's own tunnel address (the application front).
        let allowed = format!("{PRIVATE_ROUTE}, {EDGE_TUNNEL}/32");
        let client = topo.start_client(&topo.write_client_config(&allowed)?, &[])?;

        // Outbound only: the edge cannot open a connection into the origin namespace.
        let direct = topo.edge.run(&[
            "python3",
            "-c",
            TCP_CONNECT_PROBE,
            DEST,
            &HTTP_PORT.to_string(),
        ])?;
        anyhow::ensure!(
            direct.trim() == "timeout",
            "the origin accepted an inbound connection: {direct}"
        );
        Ok(World {
            _client: client,
            edge,
            _echo: echo,
            _http: http,
            body,
            key,
            ca_pem: pki.join("ca.pem"),
            topo,
        })
    }

    fn spec(&self) -> ConnectorSpec<'_> {
        ConnectorSpec {
            edge: format!("{EDGE_DEST_SIDE}:{CONNECTOR_PORT}")
                .parse()
                .expect("addr"),
            edge_name: EDGE_DEST_SIDE,
            ca_pem_file: &self.ca_pem,
            credential: self.key.credential(CONNECTOR_ID, TUNNEL_ID),
            connector_id: CONNECTOR_ID,
            tunnel_id: TUNNEL_ID,
            routes: vec![PRIVATE_ROUTE.parse().expect("cidr")],
        }
    }

    /// Waits until the edge captures the private route, then checks the TPROXY table.
    fn wait_for_routes(&mut self) -> anyhow::Result<()> {
        self.edge
            .wait_for_log("connector routes installed", Duration::from_secs(15))?;
        let rules = self
            .topo
            .edge
            .run(&["nft", "list", "table", "inet", "gatehouse_tproxy"])?;
        anyhow::ensure!(
            rules.contains("10.99.0.0/24") && rules.contains("tproxy"),
            "{rules}"
        );
        Ok(())
    }

    /// HTTP GET and a 1 MiB TCP echo (half-close included) from the client to the origin's
    /// private address, through WireGuard, TPROXY, the QUIC tunnel and the connector.
    fn check_flows(&self) -> anyhow::Result<()> {
        let fetched = http_get(
            &self.topo.client,
            &format!("http://{ORIGIN_ADDR}:{HTTP_PORT}/body"),
            Duration::from_secs(20),
        )?;
        anyhow::ensure!(
            fetched == self.body,
            "body differs: got {} bytes",
            fetched.len()
        );
        let echoed = self.topo.client.run(&[
            "python3",
            "-c",
            TCP_ECHO_CLIENT,
            ORIGIN_ADDR,
            &ECHO_PORT.to_string(),
            &(1024 * 1024).to_string(),
        ])?;
        anyhow::ensure!(echoed.trim() == "ok", "echo round trip: {echoed}");
        Ok(())
    }

    /// With no connector, a new flow is reset by the edge at once instead of hanging.
    fn check_reset_without_connector(&self) -> anyhow::Result<()> {
        let mut last = String::new();
        let reset = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
            let started = Instant::now();
            last = self
                .topo
                .client
                .run(&[
                    "python3",
                    "-c",
                    TCP_RESET_PROBE,
                    ORIGIN_ADDR,
                    &ECHO_PORT.to_string(),
                ])
                .unwrap_or_else(|e| format!("{e:#}"));
            let quick = started.elapsed() < Duration::from_secs(3);
            quick
                && matches!(
                    last.trim(),
                    "ConnectionResetError" | "ConnectionRefusedError" | "eof"
                )
        });
        anyhow::ensure!(
            reset,
            "with no connector the flow was not reset quickly: {last}"
        );
        anyhow::ensure!(
            self.edge.log().contains("no connector for the destination"),
            "the reset comes from the edge:\n{}",
            self.edge.log()
        );
        Ok(())
    }
}

#[test]
fn the_connector_binary_carries_tcp_flows_to_its_private_route() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let mut world = World::new("connbin")?;
    let mut connector = start_connector_binary(&world, "")?;
    world
        .wait_for_routes()
        .with_context(|| format!("connector log:\n{}", connector.log()))?;
    world.check_flows()?;

    connector.stop()?;
    world.check_reset_without_connector()?;
    Ok(())
}

#[test]
fn udp_dns_and_echo_reach_the_origin_through_the_connector_binary() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let mut world = World::new("connudp")?;
    let _dns = start_udp_server(&world.topo, "dns", UDP_DNS_SERVER, DNS_PORT)?;
    let _echo = start_udp_server(&world.topo, "udp-echo", UDP_ECHO_SERVER, UDP_ECHO_PORT)?;
    let mut connector = start_connector_binary(&world, "")?;
    world
        .wait_for_routes()
        .with_context(|| format!("connector log:\n{}", connector.log()))?;
    let rules = world
        .topo
        .edge
        .run(&["nft", "list", "table", "inet", "gatehouse_tproxy"])?;
    anyhow::ensure!(rules.contains("udp"), "no udp rule: {rules}");

    // A DNS query from the client namespace to the resolver on the origin's private address.
    let answer = world.topo.client.run(&[
        "python3",
        "-c",
        UDP_DNS_QUERY,
        ORIGIN_ADDR,
        &DNS_PORT.to_string(),
        DNS_NAME,
    ])?;
    anyhow::ensure!(
        answer.trim() == DNS_ANSWER,
        "dns answer: {answer}\nedge log:\n{}\nconnector log:\n{}",
        world.edge.log(),
        connector.log()
    );

    // A UDP echo of a few sizes, replies from the address the client sent to.
    let echoed = world.topo.client.run(&[
        "python3",
        "-c",
        UDP_ECHO_CLIENT,
        ORIGIN_ADDR,
        &UDP_ECHO_PORT.to_string(),
        "1,100,512,1200",
    ])?;
    anyhow::ensure!(echoed.trim() == "ok", "udp echo: {echoed}");

    // The connector counted the flows and datagrams.
    let metrics = connector_metrics(&world, &connector)?;
    anyhow::ensure!(
        metrics
            .lines()
            .any(|l| l.starts_with("gatehouse_connector_udp_flows_total ")
                && l != "gatehouse_connector_udp_flows_total 0"),
        "no udp flow counted:\n{metrics}"
    );
    // No datagram was lost to the race between a flow's first datagram and its announcement.
    anyhow::ensure!(
        metrics
            .lines()
            .any(|l| l == "gatehouse_connector_udp_dropped_total{reason=\"unknown_flow\"} 0"),
        "datagrams dropped as unknown:\n{metrics}"
    );
    connector.stop()?;
    Ok(())
}

/// Hostname routes through the edge's application front: on one keep-alive connection an
/// allowed request reaches the origin, a denied one gets the edge's 403 page with a reference id
/// (which the edge logs) and the next allowed one still works; a body is forwarded. TLS is
/// decided on SNI and passed through: an allowed name reaches the origin's TLS server, a denied
/// one gets an `access_denied` alert.
#[test]
fn hostname_requests_are_decided_one_by_one_and_tls_flows_by_sni() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let mut world = World::with_edge_files(
        "connhost",
        &[("access.toml", FRONT_POLICY)],
        "\n[access]\npolicy_file = \"access.toml\"\n",
    )?;
    world
        .edge
        .wait_for_log("application front (HTTP) up", Duration::from_secs(10))?;
    let _http = start_origin_script(&world.topo, "http-echo", HTTP_ECHO_SERVER, &[])?;
    let pki = world.topo.dir.join("pki");
    let (cert, key) = (pki.join("edge.pem"), pki.join("edge.key"));
    let _tls = start_origin_script(
        &world.topo,
        "tls-echo",
        TLS_ECHO_SERVER,
        &[&cert.to_string_lossy(), &key.to_string_lossy()],
    )?;
    let ingress = format!(
        "  - hostname: app.e2e.test\n    service: http://{ORIGIN_ADDR}:{HTTP_ECHO_PORT}\n\
         \x20 - hostname: tls.e2e.test\n    service: tcp://{ORIGIN_ADDR}:{TLS_ECHO_PORT}\n"
    );
    let connector = start_connector_binary(&world, &ingress)?;
    world
        .wait_for_routes()
        .with_context(|| format!("connector log:\n{}", connector.log()))?;

    let out = world
        .topo
        .client
        .run(&[
            "python3",
            "-c",
            KEEP_ALIVE_CLIENT,
            EDGE_TUNNEL,
            "app.e2e.test",
        ])
        .with_context(|| format!("edge log:\n{}", world.edge.log()))?;
    let lines: Vec<&str> = out.lines().collect();
    anyhow::ensure!(lines.len() == 4, "client output:\n{out}");
    // status, same connection as the first request, reference, body
    let fields = |line: &str| -> Vec<String> { line.split('\t').map(str::to_owned).collect() };
    let first = fields(lines[0]);
    anyhow::ensure!(
        first[0] == "200" && first[3] == "GET host=app.e2e.test path=/public/one body=",
        "allowed request: {out}\nedge log:\n{}\nconnector log:\n{}",
        world.edge.log(),
        connector.log()
    );
    let denied = fields(lines[1]);
    anyhow::ensure!(
        denied[0] == "403" && denied[1] == "same" && denied[3].contains("Access denied"),
        "denied request: {out}"
    );
    let reference = &denied[2];
    anyhow::ensure!(
        reference.len() == 16 && denied[3].contains(reference.as_str()),
        "reference: {out}"
    );
    anyhow::ensure!(
        fields(lines[2])[..2] == ["200".to_owned(), "same".to_owned()],
        "the allowed request after the denied one, on the same connection: {out}"
    );
    anyhow::ensure!(
        fields(lines[3])[3] == "POST host=app.e2e.test path=/public/upload body=hello gatehouse",
        "body forwarded: {out}"
    );
    let denied_log = world
        .edge
        .log()
        .lines()
        .find(|l| l.contains("request denied") && l.contains(reference.as_str()))
        .map(str::to_owned);
    anyhow::ensure!(
        denied_log.is_some_and(|l| l.contains("app-admin")),
        "the edge logs the denial with its reference and application:\n{}",
        world.edge.log()
    );

    let tls = |name: &str| {
        world
            .topo
            .client
            .run(&["python3", "-c", TLS_CLIENT, EDGE_TUNNEL, name])
            .unwrap_or_else(|e| format!("{e:#}"))
    };
    let allowed = tls("tls.e2e.test");
    anyhow::ensure!(
        allowed.trim() == "tls-ok sni=tls.e2e.test",
        "allowed TLS flow: {allowed}\nedge log:\n{}",
        world.edge.log()
    );
    let refused = tls("secret.e2e.test");
    anyhow::ensure!(
        refused.contains("ACCESS_DENIED"),
        "denied TLS flow: {refused}"
    );
    anyhow::ensure!(
        world.edge.log().contains("kind=Tls") && world.edge.log().contains("request denied")
    );
    Ok(())
}

/// The edge's access policy for the front test: `/public` on app.e2e.test is open, `/admin`
/// blocked, tls.e2e.test open; nothing else is covered (denied by default).
const FRONT_POLICY: &str = r#"
version = 1
[[applications]]
name = "app-public"
destinations = [{ host = "app.e2e.test", path = "/public" }]
[[applications.policies]]
name = "anyone"
action = "bypass"
include = [{ everyone = true }]

[[applications]]
name = "app-admin"
destinations = [{ host = "app.e2e.test", path = "/admin" }]
[[applications.policies]]
name = "nobody"
action = "block"
include = [{ everyone = true }]

[[applications]]
name = "tls-app"
destinations = [{ host = "tls.e2e.test" }]
[[applications.policies]]
name = "anyone"
action = "bypass"
include = [{ everyone = true }]
"#;

const HTTP_ECHO_PORT: u16 = 8081;
const TLS_ECHO_PORT: u16 = 8443;

/// Starts a python origin script on the private address: `script ADDR PORT-or-args…`; waits
/// for `ready`.
fn start_origin_script(
    topo: &Topology,
    name: &str,
    script: &str,
    extra: &[&str],
) -> anyhow::Result<Proc> {
    let log = topo.dir.join(format!("{name}.log"));
    let mut args = vec!["-u", "-c", script, ORIGIN_ADDR];
    args.extend_from_slice(extra);
    let mut proc = topo.dest.spawn("python3", &args, &log)?;
    proc.wait_for_log("ready", Duration::from_secs(10))?;
    Ok(proc)
}

/// Answers every request with `METHOD host=<Host> path=<path> body=<body>` (HTTP/1.1,
/// keep-alive).
const HTTP_ECHO_SERVER: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        text = f"{self.command} host={self.headers.get('Host')} path={self.path} body={body}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)
    do_GET = answer
    do_POST = answer
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer((sys.argv[1], 8081), H)
print("ready", flush=True)
s.serve_forever()
"#;

/// A TLS server that answers a line with `tls-ok sni=<the SNI it saw>`.
const TLS_ECHO_SERVER: &str = r#"
import socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
local = threading.local()
def sni(_sock, name, _ctx):
    local.name = name
ctx.sni_callback = sni
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], 8443)); l.listen(16)
print("ready", flush=True)
def serve(c):
    try:
        t = ctx.wrap_socket(c, server_side=True)
        t.recv(100)
        t.sendall(f"tls-ok sni={getattr(local, 'name', None)}\n".encode())
        t.close()
    except Exception as e:
        print("error", e, flush=True)
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// Four requests on one connection; per request a tab-separated line: status, `same` when the
/// connection is the first request's, the `gatehouse-reference` header, the body.
const KEEP_ALIVE_CLIENT: &str = r#"
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], 80, timeout=20)
first = None
for method, path, body in [("GET", "/public/one", None), ("GET", "/admin/panel", None),
                           ("GET", "/public/two", None), ("POST", "/public/upload", b"hello gatehouse")]:
    c.request(method, path, body=body, headers={"Host": sys.argv[2]})
    r = c.getresponse()
    text = r.read().decode(errors="replace").replace("\n", " ").replace("\t", " ")
    sock = c.sock
    if first is None:
        first = sock
    same = "same" if sock is not None and sock is first else "other"
    print(f"{r.status}\t{same}\t{r.getheader('gatehouse-reference') or '-'}\t{text}")
"#;

/// A TLS client for SNI `argv[2]` (no certificate checks: only the routing is tested); prints
/// the server's line or the TLS error.
const TLS_CLIENT: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = socket.create_connection((sys.argv[1], 443), timeout=10)
try:
    t = ctx.wrap_socket(s, server_hostname=sys.argv[2])
    t.sendall(b"hello\n")
    print(t.recv(100).decode().strip())
except ssl.SSLError as e:
    print("sslerror", e.reason)
except OSError as e:
    print("oserror", e)
"#;

/// The real connector binary with `private-routes`, a `/metrics` listener and the ingress rules
/// `ingress` (YAML list items, before the catch-all), in the origin namespace.
fn start_connector_binary(world: &World, ingress: &str) -> anyhow::Result<Proc> {
    let dir = &world.topo.dir;
    let credentials = dir.write(
        "credentials.json",
        format!(
            "{{\"TunnelID\": \"{TUNNEL_ID}\", \"ConnectorID\": \"{CONNECTOR_ID}\", \"Credential\": \"{}\"}}",
            world.key.credential(CONNECTOR_ID, TUNNEL_ID)
        ),
    )?;
    let config = dir.write(
        "config.yml",
        format!(
            "credentials-file: {}\nedge-ca-file: {}\nedges: [\"{EDGE_DEST_SIDE}:{CONNECTOR_PORT}\"]\n\
             ha-connections: 1\nprivate-routes: [{PRIVATE_ROUTE}]\ngrace-period: 1s\n\
             metrics: 127.0.0.1:{METRICS_PORT}\n\
             ingress:\n{ingress}  - service: http_status:404\n",
            credentials.display(),
            world.ca_pem.display()
        ),
    )?;
    let config_text = config.to_string_lossy().to_string();
    let log = dir.join("connector.log");
    world.topo.dest.spawn_with_env(
        bin("gatehouse-connector"),
        &["run", "--config", &config_text],
        &[("GATEHOUSE_LOG", "info,connector=debug")],
        &log,
    )
}

const METRICS_PORT: u16 = 20241;

fn connector_metrics(world: &World, connector: &Proc) -> anyhow::Result<String> {
    let body = http_get(
        &world.topo.dest,
        &format!("http://127.0.0.1:{METRICS_PORT}/metrics"),
        Duration::from_secs(10),
    )
    .with_context(|| format!("connector log:\n{}", connector.log()))?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn tcp_flows_go_through_an_in_test_connector_and_reset_while_it_is_away() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let mut world = World::new("connpath")?;
    let mut connector = InTestConnector::start(&world.topo.dest, world.spec())?;
    world.wait_for_routes()?;
    world.check_flows()?;

    // The connector drains and leaves; the route stays captured and flows are reset.
    connector.stop();
    world.check_reset_without_connector()?;

    // And the edge is the way in again once a connector is back.
    let _connector = InTestConnector::start(&world.topo.dest, world.spec())?;
    let again = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        world.check_flows().is_ok()
    });
    assert!(
        again,
        "no flow after the connector came back:\n{}",
        world.edge.log()
    );

    // The edge removes its table when it stops.
    world.edge.stop()?;
    let rules = world
        .topo
        .edge
        .exec(&["nft", "list", "table", "inet", "gatehouse_tproxy"]);
    assert!(!rules.status.success(), "table left behind");
    Ok(())
}

fn start_tcp_echo(topo: &Topology) -> anyhow::Result<Proc> {
    let log = topo.dir.join("tcp-echo.log");
    let mut proc = topo.dest.spawn(
        "python3",
        &[
            "-u",
            "-c",
            TCP_ECHO_SERVER,
            ORIGIN_ADDR,
            &ECHO_PORT.to_string(),
        ],
        &log,
    )?;
    proc.wait_for_log("ready", Duration::from_secs(10))?;
    Ok(proc)
}

fn start_udp_server(topo: &Topology, name: &str, script: &str, port: u16) -> anyhow::Result<Proc> {
    let log = topo.dir.join(format!("{name}.log"));
    let mut proc = topo.dest.spawn(
        "python3",
        &["-u", "-c", script, ORIGIN_ADDR, &port.to_string()],
        &log,
    )?;
    proc.wait_for_log("ready", Duration::from_secs(10))?;
    Ok(proc)
}

/// A resolver for one name: answers A queries for `app.internal` with 10.1.2.3,
/// anything else with NXDOMAIN.
const UDP_DNS_SERVER: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    q, peer = s.recvfrom(4096)
    if len(q) < 12:
        continue
    qid, flags, qd = struct.unpack("!HHH", q[:6])
    i, labels = 12, []
    while i < len(q) and q[i] != 0:
        labels.append(q[i + 1:i + 1 + q[i]].decode())
        i += 1 + q[i]
    question = q[12:i + 5]
    qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
    name = ".".join(labels)
    if name == "app.internal" and qtype == 1:
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("10.1.2.3")
        head = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    else:
        answer = b""
        head = struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0)
    s.sendto(head + question + answer, peer)
"#;

/// Sends an A query for argv[3] and prints the first address of the answer (or the failure).
const UDP_DNS_QUERY: &str = r#"
import os, socket, struct, sys
qid = struct.unpack("!H", os.urandom(2))[0]
name = b"".join(bytes([len(l)]) + l.encode() for l in sys.argv[3].split(".")) + b"\0"
query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for attempt in range(5):
    s.sendto(query, (sys.argv[1], int(sys.argv[2])))
    try:
        reply, peer = s.recvfrom(4096)
    except socket.timeout:
        continue
    if peer != (sys.argv[1], int(sys.argv[2])):
        print("reply from %r" % (peer,))
        sys.exit()
    rid, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    if rid != qid or an < 1:
        print("bad reply id=%d flags=%x answers=%d" % (rid, flags, an))
        sys.exit()
    print(socket.inet_ntoa(reply[-4:]))
    sys.exit()
print("timeout")
"#;

/// Echoes every datagram to its sender.
const UDP_ECHO_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    d, peer = s.recvfrom(65535)
    s.sendto(d, peer)
"#;

/// Sends one random datagram of each size in argv[3] (comma-separated) and checks the echo and
/// that it comes from the address sent to; prints "ok" or what went wrong.
const UDP_ECHO_CLIENT: &str = r#"
import os, socket, sys
dest = (sys.argv[1], int(sys.argv[2]))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for size in map(int, sys.argv[3].split(",")):
    data = os.urandom(size)
    for attempt in range(3):
        s.sendto(data, dest)
        try:
            got, peer = s.recvfrom(65535)
        except socket.timeout:
            continue
        break
    else:
        print("timeout at %d bytes" % size)
        sys.exit()
    if peer != dest or got != data:
        print("mismatch at %d bytes from %r" % (size, peer))
        sys.exit()
print("ok")
"#;

/// Echoes every connection until its peer half-closes, then closes.
const TCP_ECHO_SERVER: &str = r#"
import socket, sys, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(64)
print("ready", flush=True)
def serve(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// Sends N random bytes, half-closes, reads to EOF; prints "ok" if the reply is the same bytes.
const TCP_ECHO_CLIENT: &str = r#"
import os, socket, sys, threading
data = os.urandom(int(sys.argv[3]))
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=send).start()
got = bytearray()
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
print("ok" if bytes(got) == data else "mismatch: sent %d, got %d" % (len(data), len(got)))
"#;

/// Prints "connected" or "timeout" (or the exception) for a TCP connect with a 2 s limit.
const TCP_CONNECT_PROBE: &str = r#"
import socket, sys
s = socket.socket()
s.settimeout(2)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except socket.timeout:
    print("timeout")
except Exception as e:
    print(type(e).__name__)
"#;

/// Connects, sends, reads: prints the exception class, "eof", "data" or "timeout".
const TCP_RESET_PROBE: &str = r#"
import socket, sys
s = socket.socket()
s.settimeout(2.5)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    s.sendall(b"hello")
    d = s.recv(100)
    print("data" if d else "eof")
except socket.timeout:
    print("timeout")
except Exception as e:
    print(type(e).__name__)
"#;

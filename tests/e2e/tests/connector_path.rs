//! Client → edge → connector → origin: a WireGuard client's TCP flows to a connector's private
//! route leave the edge through the connector's outbound-only QUIC tunnel.
//!
//! ```text
//!  client ns              edge ns                              origin ns
//!  10.201.0.2 ──veth── 10.201.0.1
//!                      10.202.0.1 (QUIC :7844) ◀──dials── 10.202.0.2  connector
//!                      TUN 100.64.0.1/10, TPROXY :7845         10.99.0.5/24 on lo: HTTP :8080,
//!                                                              TCP echo :9000
//!                                                              input: ct state new drop (not lo)
//! ```
//! Two connectors play the far end: the real `gatehouse-connector` binary (config.yml with
//! `private-routes`, `edges`, `edge-ca-file`, `credentials-file`), and the in-test one from
//! `e2e::connector` (the `tunnel` crate's `Dialer` on a thread inside the origin namespace),
//! which also checks the edge's behaviour while a connector is away and back.

use anyhow::Context as _;
use e2e::connector::{ConnectorSpec, CredentialKey, InTestConnector};
use e2e::gatehouse::{Topology, DEST, EDGE_DEST_SIDE};
use e2e::{bin, http_get, skip_unless_root, wait_until, Proc};
use rand::RngCore;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ORIGIN_ADDR: &str = "10.99.0.5";
const PRIVATE_ROUTE: &str = "10.99.0.0/24";
const HTTP_PORT: u16 = 8080;
const ECHO_PORT: u16 = 9000;
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
        let topo = Topology::new(label)?;
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
             jwks_file = \"connector-keys.json\"\nname = \"e2e-edge\"\n"
        );
        let mut edge = topo.start_edge(&topo.write_edge_config(&connectors)?)?;
        edge.wait_for_log("connector listener up", Duration::from_secs(10))?;
        let client = topo.start_client(&topo.write_client_config(PRIVATE_ROUTE)?, &[])?;

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
             ingress:\n  - service: http_status:404\n",
            credentials.display(),
            world.ca_pem.display()
        ),
    )?;
    let config_text = config.to_string_lossy().to_string();
    let log = dir.join("connector.log");
    let mut connector = world.topo.dest.spawn_with_env(
        bin("gatehouse-connector"),
        &["run", "--config", &config_text],
        &[("GATEHOUSE_LOG", "info,connector=debug")],
        &log,
    )?;
    world
        .wait_for_routes()
        .with_context(|| format!("connector log:\n{}", connector.log()))?;
    world.check_flows()?;

    connector.stop()?;
    world.check_reset_without_connector()?;
    Ok(())
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

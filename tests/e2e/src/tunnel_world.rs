//! [`TunnelWorld`]: WireGuard clients, one or more edges with `[connectors]`, and an origin
//! namespace where the real `gatehouse-connector` runs, for the connector's resilience tests.
//!
//! ```text
//!  site i (0, 1, …)                                            origin ns
//!  client ns               edge ns
//!  10.21i.0.2 ──veth── 10.21i.0.1
//!                      10.22i.0.1 (QUIC :7844) ◀──dials── 10.22i.0.2   gatehouse-connector(s)
//!  gatehouse (WG)      gatehouse-edge, TUN 100.64.0.1/10            10.99.0.5/24, 10.99.1.5/24
//!  100.64.0.2          TPROXY :7845                                 on lo; HTTP :8080
//!                                                                   input: ct state new drop
//! ```
//! A *site* is one client namespace whose WireGuard tunnel enters one edge: traffic of site `i`
//! reaches the origin only through edge `i` and the connector's connection(s) to it, so a
//! test can count failures per edge. All edges share one deployment CA and one certificate
//! (valid for every edge's address, from `gatehouse-edge ca init --ip … --ip …`) and trust one
//! connector credential key.
//!
//! The origin serves, on every local address, port [`ORIGIN_PORT`]: `/body` (a fixed
//! [`BODY_LEN`]-byte body), `/slow/<s>` (the same body after `s` seconds), `/drip/<n>` (`n`
//! bytes, one per second). It accepts no new inbound connection from outside the namespace:
//! the connector only dials out. Fields drop in declaration order: processes first, then the
//! namespaces, then the directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::connector::CredentialKey;
use crate::{bin, ifname, keypair, veth, wait_for_socket, wait_until, Netns, Proc, TestDir};

/// The origin's address on route A (`10.99.0.0/24`).
pub const ORIGIN_A: &str = "10.99.0.5";
/// The origin's address on route B (`10.99.1.0/24`).
pub const ORIGIN_B: &str = "10.99.1.5";
pub const ROUTE_A: &str = "10.99.0.0/24";
pub const ROUTE_B: &str = "10.99.1.0/24";
/// An address on route A where nothing answers: the origin's output chain drops what is sent
/// to it, so a connection attempt times out (an address on `lo` with a prefix makes the whole
/// prefix local, so an unassigned one would still answer).
pub const BLACKHOLE: &str = "10.99.0.6";
/// The origin's HTTP port.
pub const ORIGIN_PORT: u16 = 8080;
/// The length of `/body`.
pub const BODY_LEN: usize = 64 * 1024;
pub const CONNECTOR_PORT: u16 = 7844;
pub const ISSUER: &str = "https://identity.e2e.test";
pub const TUNNEL_ID: &str = "tun-1";
const CLIENT_TUNNEL: &str = "100.64.0.2";
const EDGE_WG_PORT: u16 = 51820;
const ALLOW_ALL: &str = "[[policy]]\naction = \"allow\"\n";
const EDGE_LOG: &str = "info,gatehouse_edge=debug,tunnel=debug";

/// The namespaces, PKI, origin server and sites; connectors are started by the test.
pub struct TunnelWorld {
    pub sites: Vec<Site>,
    origin_server: Proc,
    pub key: CredentialKey,
    /// The deployment CA the edges' certificate chains to.
    pub ca_pem: PathBuf,
    pub origin: Netns,
    pub dir: TestDir,
}

/// One client namespace and the edge its WireGuard tunnel enters.
pub struct Site {
    pub index: usize,
    pub client_proc: Option<Proc>,
    pub edge_proc: Option<Proc>,
    pub client: Netns,
    pub edge: Netns,
    edge_config: PathBuf,
    client_config: PathBuf,
    edge_tun: String,
    client_tun: String,
}

/// How to write one connector's `config.yml` and credentials file.
pub struct ConnectorOptions<'a> {
    /// A name for the files and the log.
    pub name: &'a str,
    pub connector_id: &'a str,
    /// The credential JWT in the credentials file.
    pub credential: String,
    /// `TunnelID` in the credentials file.
    pub tunnel_id: &'a str,
    /// The sites whose edges go into `edges`.
    pub edges: Vec<usize>,
    pub ha_connections: u32,
    pub private_routes: Vec<&'a str>,
    pub grace_period: &'a str,
    /// `metrics` port on 127.0.0.1 in the origin namespace.
    pub metrics_port: u16,
    /// `edge-ca-file`; the deployment CA when `None`.
    pub edge_ca: Option<&'a Path>,
}

impl TunnelWorld {
    /// Builds `sites` sites and the origin, runs `ca init`, starts the origin server, every
    /// edge (waiting for its connector listener) and every client.
    ///
    /// # Errors
    /// Namespace, `ca init` or start-up failures.
    pub fn new(label: &str, sites: usize) -> anyhow::Result<TunnelWorld> {
        let dir = TestDir::new(label)?;
        let origin = Netns::new("gho")?;
        origin.ip(&["addr", "add", &format!("{ORIGIN_A}/24"), "dev", "lo"])?;
        origin.ip(&["addr", "add", &format!("{ORIGIN_B}/24"), "dev", "lo"])?;
        origin.run_with_stdin(
            &["nft", "-f", "-"],
            b"table inet e2e_origin {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\
              \t\tiif \"lo\" accept\n\t\tct state new drop\n\t}\n\
              \tchain output {\n\t\ttype filter hook output priority 0; policy accept;\n\
              \t\tip daddr 10.99.0.6 drop\n\t}\n}\n",
        )?;
        let log = dir.join("origin.log");
        let mut origin_server = origin.spawn(
            "python3",
            &["-u", "-c", ORIGIN_SERVER, &ORIGIN_PORT.to_string()],
            &log,
        )?;
        origin_server.wait_for_log("ready", Duration::from_secs(10))?;

        let pki = dir.join("pki");
        init_ca(&pki, &(0..sites).map(edge_addr).collect::<Vec<_>>())?;
        let key = CredentialKey::new(ISSUER);
        dir.write("connector-keys.json", key.jwks_json()?)?;

        let mut world = TunnelWorld {
            sites: Vec::new(),
            origin_server,
            key,
            ca_pem: pki.join("ca.pem"),
            origin,
            dir,
        };
        for index in 0..sites {
            let site = world.build_site(index)?;
            world.sites.push(site);
        }
        for index in 0..sites {
            world.start_edge(index)?;
            world.start_client(index)?;
        }
        Ok(world)
    }

    /// The `host:port` connectors dial for site `index`'s edge.
    pub fn edge_endpoint(index: usize) -> String {
        format!("{}:{CONNECTOR_PORT}", edge_addr(index))
    }

    /// Starts site `index`'s edge (again, after a kill) and waits for its connector listener.
    ///
    /// # Errors
    /// The edge does not come up within 10 s.
    pub fn start_edge(&mut self, index: usize) -> anyhow::Result<()> {
        let site = &mut self.sites[index];
        // A killed edge leaves its UAPI socket file behind.
        let socket = PathBuf::from(format!("/var/run/wireguard/{}.sock", site.edge_tun));
        let _ = std::fs::remove_file(&socket);
        let config = site.edge_config.to_string_lossy().to_string();
        let log = self
            .dir
            .join(format!("edge{index}-{}.log", crate::random_suffix(4)));
        let mut proc = site.edge.spawn_with_env(
            bin("gatehouse-edge"),
            &["run", "--config", &config],
            &[("GATEHOUSE_LOG", EDGE_LOG)],
            &log,
        )?;
        proc.wait_for_log("connector listener up", Duration::from_secs(10))?;
        wait_for_socket(&socket, Duration::from_secs(10))
            .with_context(|| format!("edge {index} log:\n{}", proc.log()))?;
        site.edge_proc = Some(proc);
        Ok(())
    }

    /// Starts (or restarts) site `index`'s WireGuard client.
    ///
    /// # Errors
    /// The client does not come up within 10 s.
    pub fn start_client(&mut self, index: usize) -> anyhow::Result<()> {
        let site = &mut self.sites[index];
        if let Some(mut old) = site.client_proc.take() {
            old.stop()?;
        }
        let config = site.client_config.to_string_lossy().to_string();
        let log = self
            .dir
            .join(format!("client{index}-{}.log", crate::random_suffix(4)));
        let args = ["up", "--config", &config, "--interface", &site.client_tun];
        let proc = site.client.spawn_with_env(
            bin("gatehouse"),
            &args,
            &[("GATEHOUSE_LOG", "info")],
            &log,
        )?;
        let socket = PathBuf::from(format!("/var/run/wireguard/{}.sock", site.client_tun));
        wait_for_socket(&socket, Duration::from_secs(10))
            .with_context(|| format!("client {index} log:\n{}", proc.log()))?;
        site.client_proc = Some(proc);
        Ok(())
    }

    /// The log of site `index`'s running (or last) edge.
    pub fn edge_log(&self, index: usize) -> String {
        self.sites[index]
            .edge_proc
            .as_ref()
            .map(Proc::log)
            .unwrap_or_default()
    }

    /// Connector connections site `index`'s current edge process registered.
    pub fn registrations(&self, index: usize) -> usize {
        self.edge_log(index).matches("connector registered").count()
    }

    /// Waits until site `index`'s edge captures `route` (a connector announced it): a CIDR in
    /// its TPROXY table covers it (the edge merges adjacent routes into one).
    ///
    /// # Errors
    /// Not within `timeout`.
    pub fn wait_for_route(
        &self,
        index: usize,
        route: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let edge = &self.sites[index].edge;
        let captured = wait_until(timeout, Duration::from_millis(100), || {
            edge.run(&["nft", "list", "table", "inet", "gatehouse_tproxy"])
                .is_ok_and(|rules| covers(&rules, route))
        });
        anyhow::ensure!(
            captured,
            "edge {index} did not capture {route}; its log:\n{}",
            self.edge_log(index)
        );
        Ok(())
    }

    /// A connector credential for `connector_id` on [`TUNNEL_ID`], signed by the trusted key.
    pub fn credential(&self, connector_id: &str) -> String {
        self.key.credential(connector_id, TUNNEL_ID)
    }

    /// Writes the connector's files and starts `gatehouse-connector run` in the origin.
    ///
    /// # Errors
    /// Writing the files or spawning.
    pub fn start_connector(&self, options: &ConnectorOptions<'_>) -> anyhow::Result<Connector> {
        let config = self.write_connector_config(options)?;
        let config_text = config.to_string_lossy().to_string();
        let log = self.dir.join(format!("{}.log", options.name));
        let proc = self.origin.spawn_with_env(
            bin("gatehouse-connector"),
            &["run", "--config", &config_text],
            &[("GATEHOUSE_LOG", "info,connector=debug,tunnel=debug")],
            &log,
        )?;
        Ok(Connector {
            proc,
            config,
            metrics_port: options.metrics_port,
        })
    }

    /// Writes `<name>-credentials.json` and `<name>.yml`; returns the config's path.
    ///
    /// # Errors
    /// Writing the files.
    pub fn write_connector_config(
        &self,
        options: &ConnectorOptions<'_>,
    ) -> anyhow::Result<PathBuf> {
        let credentials = self.dir.write(
            &format!("{}-credentials.json", options.name),
            format!(
                "{{\"TunnelID\": \"{}\", \"ConnectorID\": \"{}\", \"Credential\": \"{}\"}}",
                options.tunnel_id, options.connector_id, options.credential
            ),
        )?;
        let text = connector_yaml(
            options,
            &credentials,
            options.edge_ca.unwrap_or(&self.ca_pem),
        );
        self.dir.write(&format!("{}.yml", options.name), text)
    }

    /// The origin server's log (one line per request).
    pub fn origin_log(&self) -> String {
        self.origin_server.log()
    }

    fn build_site(&self, index: usize) -> anyhow::Result<Site> {
        let client = Netns::new("ghc")?;
        let edge = Netns::new("ghe")?;
        veth(
            &client,
            &format!("10.21{index}.0.2/24"),
            &edge,
            &format!("10.21{index}.0.1/24"),
        )?;
        veth(
            &edge,
            &format!("{}/24", edge_addr(index)),
            &self.origin,
            &format!("10.22{index}.0.2/24"),
        )?;
        edge.enable_forwarding()?;
        let (edge_private, edge_public) = keypair();
        let (client_private, client_public) = keypair();
        let edge_tun = ifname("ghe");
        let client_tun = ifname("ghc");
        let connectors = format!(
            "{ALLOW_ALL}\n[connectors]\nlisten = \"0.0.0.0:{CONNECTOR_PORT}\"\n\
             cert_file = \"pki/edge.pem\"\nkey_file = \"pki/edge.key\"\nissuer = \"{ISSUER}\"\n\
             jwks_file = \"connector-keys.json\"\nname = \"edge-{index}\"\n"
        );
        let edge_text = format!(
            "private_key = \"{edge_private}\"\nlisten = \"0.0.0.0:{EDGE_WG_PORT}\"\n\
             interface = \"{edge_tun}\"\naddress = [\"100.64.0.1/10\"]\n\
             endpoint = \"10.21{index}.0.1:{EDGE_WG_PORT}\"\n\n[[peers]]\nname = \"client-{index}\"\n\
             public_key = \"{client_public}\"\naddresses = [\"{CLIENT_TUNNEL}/32\"]\n\n{connectors}\n"
        );
        let edge_config = self.dir.write(&format!("edge{index}.toml"), edge_text)?;
        let client_text = format!(
            "[Interface]\nPrivateKey = {client_private}\nAddress = {CLIENT_TUNNEL}/32\nMTU = 1420\n\n\
             [Peer]\nPublicKey = {edge_public}\nEndpoint = 10.21{index}.0.1:{EDGE_WG_PORT}\n\
             AllowedIPs = 10.99.0.0/16\nPersistentKeepalive = 25\n"
        );
        let client_config = self
            .dir
            .write(&format!("client{index}.conf"), client_text)?;
        Ok(Site {
            index,
            client_proc: None,
            edge_proc: None,
            client,
            edge,
            edge_config,
            client_config,
            edge_tun,
            client_tun,
        })
    }
}

impl Site {
    /// The running edge process.
    ///
    /// # Panics
    /// If the edge is not running (a test bug).
    pub fn edge_proc(&mut self) -> &mut Proc {
        self.edge_proc.as_mut().expect("the edge was started")
    }
}

/// A running `gatehouse-connector`.
pub struct Connector {
    pub proc: Proc,
    /// Its `config.yml`, for reload tests.
    pub config: PathBuf,
    metrics_port: u16,
}

impl Connector {
    /// `readyConnections` from `/ready`, `None` if the endpoint does not answer.
    pub fn ready_connections(&self, origin: &Netns) -> Option<u64> {
        let body = self.local_get(origin, "/ready")?;
        let (_, rest) = body.split_once("\"readyConnections\":")?;
        rest.trim_end_matches('}').trim().parse().ok()
    }

    /// The value of the unlabelled series `name` in `/metrics`.
    pub fn metric(&self, origin: &Netns, name: &str) -> Option<u64> {
        let body = self.local_get(origin, "/metrics")?;
        body.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Waits until `/ready` reports at least `count` connections.
    ///
    /// # Errors
    /// Not within `timeout`, with the connector's log.
    pub fn wait_ready(&self, origin: &Netns, count: u64, timeout: Duration) -> anyhow::Result<()> {
        let ready = wait_until(timeout, Duration::from_millis(100), || {
            self.ready_connections(origin).is_some_and(|n| n >= count)
        });
        anyhow::ensure!(
            ready,
            "connector not ready with {count} connections (now {:?}); log:\n{}",
            self.ready_connections(origin),
            self.proc.log()
        );
        Ok(())
    }

    fn local_get(&self, origin: &Netns, path: &str) -> Option<String> {
        let url = format!("http://127.0.0.1:{}{path}", self.metrics_port);
        let out = origin.exec(&["curl", "-s", "--max-time", "2", &url]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// One HTTP request of a [`LoadRun`].
#[derive(Debug, Clone)]
pub struct Request {
    pub worker: usize,
    /// Seconds since the Unix epoch.
    pub start: f64,
    pub end: f64,
    pub ok: bool,
    pub detail: String,
}

/// A bounded HTTP load from a client namespace: `workers` threads of sequential GETs of `url`
/// (a new TCP connection each, so a new flow stream each) for `seconds`; a request succeeds
/// with status 200 and [`BODY_LEN`] bytes.
pub struct LoadRun {
    proc: Proc,
}

impl LoadRun {
    /// Starts the load in `netns`.
    ///
    /// # Errors
    /// Spawning python3.
    pub fn start(
        netns: &Netns,
        dir: &TestDir,
        url: &str,
        workers: usize,
        seconds: f64,
    ) -> anyhow::Result<LoadRun> {
        let log = dir.join(format!("load-{}.log", crate::random_suffix(4)));
        let proc = netns.spawn(
            "python3",
            &[
                "-u",
                "-c",
                LOAD_CLIENT,
                url,
                &workers.to_string(),
                &seconds.to_string(),
                &BODY_LEN.to_string(),
            ],
            &log,
        )?;
        Ok(LoadRun { proc })
    }

    /// Waits for the load to end and returns every request.
    ///
    /// # Errors
    /// The load does not end within `timeout` or exits non-zero.
    pub fn finish(mut self, timeout: Duration) -> anyhow::Result<Vec<Request>> {
        let status = self.proc.wait_exit(timeout)?;
        anyhow::ensure!(status.success(), "load failed: {}", self.proc.log());
        Ok(parse_requests(&self.proc.log()))
    }
}

/// Seconds since the Unix epoch, as the load client writes them.
pub fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn parse_requests(log: &str) -> Vec<Request> {
    log.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(6, ' ');
            (parts.next()? == "R").then_some(())?;
            Some(Request {
                worker: parts.next()?.parse().ok()?,
                start: parts.next()?.parse().ok()?,
                end: parts.next()?.parse().ok()?,
                ok: parts.next()? == "ok",
                detail: parts.next().unwrap_or("").to_owned(),
            })
        })
        .collect()
}

/// Whether a CIDR in the nft listing `rules` contains all of `route`.
fn covers(rules: &str, route: &str) -> bool {
    let Ok(route) = route.parse::<ipnet::IpNet>() else {
        return false;
    };
    rules
        .split(|c: char| c.is_whitespace() || c == ',' || c == '{' || c == '}')
        .filter_map(|token| token.parse::<ipnet::IpNet>().ok())
        .any(|net| net.contains(&route))
}

fn edge_addr(index: usize) -> String {
    format!("10.22{index}.0.1")
}

fn init_ca(dir: &Path, ips: &[String]) -> anyhow::Result<()> {
    let dir_text = dir.to_string_lossy().to_string();
    let mut args = vec!["ca", "init", "--dir", &dir_text, "--name", "edge.e2e.test"];
    for ip in ips {
        args.extend(["--ip", ip.as_str()]);
    }
    let out = std::process::Command::new(bin("gatehouse-edge"))
        .args(&args)
        .output()
        .context("failed to run ca init")?;
    anyhow::ensure!(
        out.status.success(),
        "ca init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A deployment CA nobody trusts, with an edge certificate for site 0: `dir/ca.pem` etc.
///
/// # Errors
/// `ca init` fails.
pub fn other_ca(dir: &Path) -> anyhow::Result<PathBuf> {
    init_ca(dir, &[edge_addr(0)])?;
    Ok(dir.join("ca.pem"))
}

fn connector_yaml(options: &ConnectorOptions<'_>, credentials: &Path, ca: &Path) -> String {
    let edges: Vec<String> = options
        .edges
        .iter()
        .map(|&i| format!("\"{}\"", TunnelWorld::edge_endpoint(i)))
        .collect();
    format!(
        "credentials-file: {}\nedge-ca-file: {}\nedges: [{}]\nha-connections: {}\n\
         private-routes: [{}]\ngrace-period: {}\nmetrics: 127.0.0.1:{}\n\
         originRequest:\n  connectTimeout: 2s\ningress:\n  - service: http_status:404\n",
        credentials.display(),
        ca.display(),
        edges.join(", "),
        options.ha_connections,
        options.private_routes.join(", "),
        options.grace_period,
        options.metrics_port
    )
}

/// The origin: `/body`, `/slow/<s>`, `/drip/<n>` on every address, one thread per connection.
const ORIGIN_SERVER: &str = r#"
import http.server, sys, time
BODY = bytes(i % 251 for i in range(64 * 1024))
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def log_message(self, fmt, *args):
        print("%s %s" % (self.address_string(), fmt % args), flush=True)
    def do_GET(self):
        print("request", self.path, flush=True)
        parts = self.path.strip("/").split("/")
        if parts[0] == "slow":
            time.sleep(float(parts[1]))
            body = BODY
        elif parts[0] == "drip":
            self.send_response(200)
            self.send_header("Content-Length", parts[1])
            self.end_headers()
            for _ in range(int(parts[1])):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(1)
            return
        elif parts[0] == "body":
            body = BODY
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
srv = http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H)
srv.daemon_threads = True
print("ready", flush=True)
srv.serve_forever()
"#;

/// The load: argv url, workers, seconds, expected length. One line per request:
/// `R <worker> <start> <end> ok|fail <detail>`.
const LOAD_CLIENT: &str = r#"
import http.client, sys, threading, time, urllib.parse
url, workers, seconds, want = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
u = urllib.parse.urlsplit(url)
stop = time.time() + seconds
lock = threading.Lock()
def work(n):
    while time.time() < stop:
        start = time.time()
        ok, detail = False, ""
        try:
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            c.request("GET", u.path)
            r = c.getresponse()
            body = r.read()
            ok = r.status == 200 and len(body) == want
            detail = "status %d len %d" % (r.status, len(body))
            c.close()
        except Exception as e:
            detail = type(e).__name__ + ": " + str(e).replace("\n", " ")
        with lock:
            print("R %d %.3f %.3f %s %s" % (n, start, time.time(), "ok" if ok else "fail", detail), flush=True)
        if not ok:
            time.sleep(0.2)
ts = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
for t in ts: t.start()
for t in ts: t.join()
print("done", flush=True)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merged_route_covers_its_parts() {
        let rules =
            "iifname \"ghe\" meta l4proto tcp ip daddr { 10.99.0.0/23, 10.99.4.0/24 } tproxy";
        assert!(covers(rules, "10.99.1.0/24"));
        assert!(covers(rules, "10.99.4.0/24"));
        assert!(!covers(rules, "10.99.2.0/24"));
        assert!(!covers(rules, "10.99.0.0/22"));
    }
}

//! Client → edge → destination through the real binaries: TCP and UDP round trips, `wg show`
//! counters, and the edge's per-flow policy (resets and unreachables for denied flows).

use e2e::gatehouse::{Topology, CLIENT_PEER, DEST};
use e2e::{http_get, parse_dump, skip_unless_root, udp_echo, wait_until, HttpServer, UdpEcho};
use rand::RngCore;
use std::time::Duration;

const HTTP_PORT: u16 = 8080;
const ECHO_PORT: u16 = 9000;
const DENIED_TCP_PORT: u16 = 9090;
const DENIED_UDP_PORT: u16 = 9091;
const BODY_LEN: usize = 512 * 1024;
const ALLOW_ALL: &str = "[[policy]]\naction = \"allow\"\n";

#[test]
fn tcp_and_udp_round_trips_and_wg_show_counters_agree() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let topo = Topology::new("dataplane")?;
    let _edge = topo.start_edge(&topo.write_edge_config(ALLOW_ALL)?)?;
    let _client = topo.start_client(&topo.write_client_config("10.202.0.0/24")?, &[])?;

    let mut body = vec![0u8; BODY_LEN];
    rand::thread_rng().fill_bytes(&mut body);
    let _http = HttpServer::start(&topo.dest, topo.dir.path(), DEST, HTTP_PORT, &body)?;
    let fetched = http_get(
        &topo.client,
        &format!("http://{DEST}:{HTTP_PORT}/body"),
        Duration::from_secs(20),
    )?;
    assert!(fetched == body, "body differs: got {} bytes", fetched.len());

    let _echo = UdpEcho::start(&topo.dest, topo.dir.path(), DEST, ECHO_PORT)?;
    let mut payload = vec![0u8; 1200];
    rand::thread_rng().fill_bytes(&mut payload);
    let echoed = udp_echo(
        &topo.client,
        DEST,
        ECHO_PORT,
        &payload,
        Duration::from_secs(5),
    )?;
    assert_eq!(echoed, payload);

    // `wg show` (stock wireguard-tools over our UAPI) on both ends: each side's sent bytes are
    // the other side's received bytes, and they cover what crossed the tunnel.
    let mut last = String::new();
    let agreed = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let (Ok(c), Ok(e)) = (
            topo.client.run(&["wg", "show", &topo.client_tun, "dump"]),
            topo.edge.run(&["wg", "show", &topo.edge_tun, "dump"]),
        ) else {
            return false;
        };
        last = format!("client:\n{c}\nedge:\n{e}");
        match (parse_dump(&c), parse_dump(&e)) {
            (Ok(c), Ok(e)) if c.len() == 1 && e.len() == 1 => {
                c[0].tx_bytes == e[0].rx_bytes && e[0].tx_bytes == c[0].rx_bytes
            }
            _ => false,
        }
    });
    assert!(agreed, "counters never agreed:\n{last}");
    let client_view = &parse_dump(&topo.client.run(&["wg", "show", &topo.client_tun, "dump"])?)?[0];
    assert_eq!(client_view.public_key, topo.edge_public);
    assert!(client_view.latest_handshake > 0);
    assert!(
        client_view.rx_bytes >= u64::try_from(BODY_LEN + payload.len())?,
        "{client_view:?}"
    );
    let edge_view = &parse_dump(&topo.edge.run(&["wg", "show", &topo.edge_tun, "dump"])?)?[0];
    assert_eq!(edge_view.public_key, topo.client_public);
    assert_eq!(
        edge_view.allowed_ips,
        vec![format!("{}/32", e2e::gatehouse::CLIENT_TUNNEL)]
    );

    // `gatehouse status` reads the same counters.
    let status = topo.client.run(&[
        e2e::bin("gatehouse").to_string_lossy().as_ref(),
        "status",
        "--interface",
        &topo.client_tun,
    ])?;
    assert!(status.contains(&topo.edge_public), "{status}");
    assert!(status.contains("latest handshake"), "{status}");
    Ok(())
}

#[test]
fn denied_flows_get_a_reset_or_an_unreachable_and_allowed_ones_work() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let topo = Topology::new("policy")?;
    let policy = format!(
        "[[policy]]\naction = \"deny\"\ndestinations = [\"{DEST}/32\"]\nports = \"{DENIED_TCP_PORT}-{DENIED_UDP_PORT}\"\n\n\
         [[policy]]\naction = \"allow\"\npeers = [\"{CLIENT_PEER}\"]\ndestinations = [\"10.202.0.0/24\"]\n"
    );
    let mut edge = topo.start_edge(&topo.write_edge_config(&policy)?)?;
    let _client = topo.start_client(&topo.write_client_config("10.202.0.0/24")?, &[])?;
    let body = b"allowed body".to_vec();
    let _allowed = HttpServer::start(&topo.dest, topo.dir.path(), DEST, HTTP_PORT, &body)?;
    // A server on the denied port proves the refusal comes from the edge, not the destination.
    let _denied = HttpServer::start(&topo.dest, topo.dir.path(), DEST, DENIED_TCP_PORT, &body)?;
    let _echo = UdpEcho::start(&topo.dest, topo.dir.path(), DEST, DENIED_UDP_PORT)?;

    let fetched = http_get(
        &topo.client,
        &format!("http://{DEST}:{HTTP_PORT}/body"),
        Duration::from_secs(10),
    )?;
    assert_eq!(fetched, body);

    // TCP: connect() fails with ECONNREFUSED (a reset), not a timeout.
    let tcp = topo.client.run(&[
        "python3",
        "-c",
        TCP_PROBE,
        DEST,
        &DENIED_TCP_PORT.to_string(),
    ])?;
    assert_eq!(tcp.trim(), "ConnectionRefusedError", "denied TCP flow");
    // UDP: the ICMP "administratively prohibited" surfaces as EHOSTUNREACH on a connected socket.
    let udp = topo.client.run(&[
        "python3",
        "-c",
        UDP_PROBE,
        DEST,
        &DENIED_UDP_PORT.to_string(),
    ])?;
    assert_eq!(udp.trim(), "errno 113", "denied UDP flow");

    edge.wait_for_log("flow deny", Duration::from_secs(5))?;
    let log = edge.log();
    assert!(
        log.contains(&format!("peer={CLIENT_PEER}")) && log.contains("flow allow"),
        "decisions are logged with the peer name:\n{log}"
    );
    Ok(())
}

/// Prints the exception class of a TCP connect, or "connected".
const TCP_PROBE: &str = r#"
import socket, sys
s = socket.socket()
s.settimeout(5)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except Exception as e:
    print(type(e).__name__)
"#;

/// Sends on a connected UDP socket until an error or a reply; prints "errno N" or "reply".
const UDP_PROBE: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.connect((sys.argv[1], int(sys.argv[2])))
for _ in range(5):
    try:
        s.send(b"probe")
        s.recv(100)
        print("reply")
        break
    except socket.timeout:
        continue
    except OSError as e:
        print("errno", e.errno)
        break
else:
    print("timeout")
"#;

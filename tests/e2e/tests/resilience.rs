//! The tunnel survives what users do not control: the edge restarts, and the client's underlay
//! address changes (roaming) under a long-lived TCP connection.

use e2e::gatehouse::{Topology, DEST, EDGE_UNDERLAY};
use e2e::{http_get, parse_dump, skip_unless_root, wait_until, HttpServer};
use std::time::Duration;

const HTTP_PORT: u16 = 8080;
const ECHO_PORT: &str = "7000";
const ALLOW_ALL: &str = "[[policy]]\naction = \"allow\"\n";

#[test]
fn traffic_resumes_after_the_edge_restarts_without_touching_the_client() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let topo = Topology::new("edge-restart")?;
    let edge_config = topo.write_edge_config(ALLOW_ALL)?;
    let mut edge = topo.start_edge(&edge_config)?;
    let _client = topo.start_client(&topo.write_client_config("10.202.0.0/24")?, &[])?;
    let body = b"before and after".to_vec();
    let _http = HttpServer::start(&topo.dest, topo.dir.path(), DEST, HTTP_PORT, &body)?;
    let url = format!("http://{DEST}:{HTTP_PORT}/body");
    assert_eq!(http_get(&topo.client, &url, Duration::from_secs(10))?, body);

    // The restarted edge has no session: the client's timers must notice the silence and
    // handshake again (WireGuard: Keepalive-Timeout + Rekey-Timeout, 15 s).
    edge.stop()?;
    let _edge = topo.start_edge(&edge_config)?;
    let resumed = wait_until(Duration::from_secs(45), Duration::from_millis(500), || {
        http_get(&topo.client, &url, Duration::from_secs(2)).is_ok_and(|b| b == body)
    });
    assert!(resumed, "traffic did not resume after the edge restarted");
    Ok(())
}

#[test]
fn long_lived_tcp_connection_survives_the_client_roaming() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let topo = Topology::new("roaming")?;
    let _edge = topo.start_edge(&topo.write_edge_config(ALLOW_ALL)?)?;
    let _client = topo.start_client(&topo.write_client_config("10.202.0.0/24")?, &[])?;
    let mut server = topo.dest.spawn(
        "python3",
        &["-u", "-c", TCP_ECHO_SERVER, DEST, ECHO_PORT],
        &topo.dir.join("tcp-echo.log"),
    )?;
    server.wait_for_log("ready", Duration::from_secs(10))?;
    let mut conversation = topo.client.spawn(
        "python3",
        &["-u", "-c", TCP_CONVERSATION, DEST, ECHO_PORT, "8"],
        &topo.dir.join("conversation.log"),
    )?;
    conversation.wait_for_log("connected", Duration::from_secs(10))?;

    // Roam: a new address in another subnet, the old one gone, the edge reached through the new.
    topo.edge
        .ip(&["addr", "add", "10.201.1.1/24", "dev", &topo.edge_client_if])?;
    topo.client
        .ip(&["addr", "add", "10.201.1.2/24", "dev", &topo.client_if])?;
    topo.client
        .ip(&["addr", "del", "10.201.0.2/24", "dev", &topo.client_if])?;
    topo.client.ip(&[
        "route",
        "add",
        &format!("{EDGE_UNDERLAY}/32"),
        "via",
        "10.201.1.1",
    ])?;

    let status = conversation.wait_exit(Duration::from_secs(30))?;
    let log = conversation.log();
    assert!(
        status.success() && log.contains("done"),
        "conversation broke:\n{log}"
    );
    let edge_view = parse_dump(&topo.edge.run(&["wg", "show", &topo.edge_tun, "dump"])?)?;
    let endpoint = edge_view[0].endpoint.clone().unwrap_or_default();
    assert!(
        endpoint.starts_with("10.201.1.2:"),
        "edge endpoint {endpoint}"
    );
    Ok(())
}

const TCP_ECHO_SERVER: &str = r#"
import socket, sys, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen()
print("ready", flush=True)
def serve(conn):
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

/// One TCP connection, a numbered line every 100 ms for N seconds, each echo checked.
const TCP_CONVERSATION: &str = r#"
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
print("connected", flush=True)
end = time.time() + float(sys.argv[3])
n = 0
f = s.makefile("rb")
while time.time() < end:
    line = b"line %d\n" % n
    s.sendall(line)
    echo = f.readline()
    assert echo == line, (echo, line)
    n += 1
    time.sleep(0.1)
print("done", n, flush=True)
"#;

//! Identity decides at the edge: the edge's only peers come from identity's feed, its only
//! policy is the one applied through the admin API, and revoking the device closes its live
//! flow (the client sees a reset) and ends its WireGuard session.

use e2e::gatehouse::DEST;
use e2e::zero_trust::ZeroTrust;
use e2e::{skip_unless_root, wait_until, Proc};
use std::time::Duration;

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

fn stop(proc: &mut Proc) {
    let _ = proc.stop();
}

/// Echoes on the first port; the second only accepts (to show the edge, not the host, refuses).
const ECHO_SERVER: &str = r#"
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

/// Connects; prints `connected`, `reset` or `timeout`.
const CONNECT_PROBE: &str = r#"
import socket, sys
s = socket.socket(); s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except ConnectionResetError:
    print("reset")
except ConnectionRefusedError:
    print("reset")
except (socket.timeout, TimeoutError):
    print("timeout")
"#;

/// Sends a byte every 20 ms and reads it back; prints `flowing` once, then `closed <error>`.
const LIVE_FLOW: &str = r#"
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
said = False
try:
    while True:
        s.sendall(b"x")
        if not s.recv(1):
            print("closed eof", flush=True)
            break
        if not said:
            print("flowing", flush=True)
            said = True
        time.sleep(0.02)
except Exception as e:
    print("closed", type(e).__name__, flush=True)
"#;

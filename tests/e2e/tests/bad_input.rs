//! Hostile and malformed input at the edge's UDP port: junk and truncated datagrams, replayed
//! handshakes and data, and a handshake flood from many sources. The working peer must not
//! notice any of it, and the edge must answer nothing but cookie replies under load.
//!
//! The traffic comes from `scripts/bad_input.py` (python3, run inside the client namespace).

#![allow(clippy::print_stderr)] // Figures shown with --nocapture.

use anyhow::{bail, Context};
use e2e::gatehouse::{Topology, CLIENT_TUNNEL, CLIENT_UNDERLAY, DEST, EDGE_PORT, EDGE_UNDERLAY};
use e2e::{http_get, parse_dump, skip_unless_root, udp_echo, DumpPeer, HttpServer, Netns, UdpEcho};
use rand::RngCore;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

const SCRIPT: &str = include_str!("../scripts/bad_input.py");
const ALLOW_ALL: &str = "[[policy]]\naction = \"allow\"\n";
const HTTP_PORT: u16 = 8080;
const ECHO_PORT: u16 = 9000;
const BODY_LEN: usize = 64 * 1024;
const GET_TIMEOUT: Duration = Duration::from_secs(15);
/// How much the edge's rx counter may grow while bad input arrives: a few keepalives (32 bytes
/// each) from the real client. Any one accepted junk or replayed data datagram of the tests
/// below is larger (the replayed echoes are over 1200 bytes; junk totals megabytes).
const RX_SLACK: u64 = 1000;
/// The relay's port in the client namespace (test 2): the client's Endpoint.
const RELAY_PORT: u16 = 40000;
/// Payload of the UDP echoes pushed through the relay (test 2), larger than `RX_SLACK`.
const ECHO_LEN: usize = 1200;
const ECHOES: usize = 4;
/// Extra source addresses of the flood (test 3): 10.201.0.100 to 10.201.0.249.
const FLOOD_FIRST: u8 = 100;
const FLOOD_SOURCES: u8 = 150;
/// Initiations per second in total, the edge's load limit, and the flood's upper bound in time.
const FLOOD_RATE: u32 = 3000;
const FLOOD_LOAD_LIMIT: u32 = 20;
const FLOOD_MAX_SECS: u32 = 35;

#[test]
fn junk_and_truncated_datagrams_do_not_disturb_a_working_peer() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let started = Instant::now();
    let topo = Topology::new("bad-junk")?;
    let mut edge = topo.start_edge(&topo.write_edge_config(ALLOW_ALL)?)?;
    let _client = topo.start_client(&topo.write_client_config("10.202.0.0/24")?, &[])?;
    let body = random_bytes(BODY_LEN);
    let _http = HttpServer::start(&topo.dest, topo.dir.path(), DEST, HTTP_PORT, &body)?;
    let url = format!("http://{DEST}:{HTTP_PORT}/body");
    assert_body(
        http_get(&topo.client, &url, GET_TIMEOUT)?,
        &body,
        "before the junk",
    );

    let before = edge_peer(&topo)?;
    let report = script(
        &topo.client,
        &[
            "junk",
            EDGE_UNDERLAY,
            &EDGE_PORT.to_string(),
            &topo.edge_public,
        ],
    )?;
    let after = edge_peer(&topo)?;
    eprintln!("junk: {report:?}\nedge peer before {before:?}\nafter {after:?}");

    let sent: u64 = field(&report, "sent")?;
    let bytes: u64 = field(&report, "bytes")?;
    assert!(sent >= 3000, "only {sent} junk datagrams sent");
    assert!(field::<u64>(&report, "mac1_valid")? > 0);
    assert_eq!(
        field::<u64>(&report, "replies")?,
        0,
        "the edge answered junk (types {:?}): below the load limit nothing without a valid \
         handshake may be answered",
        report.get("reply_types")
    );
    assert!(edge.is_running(), "the edge died on junk:\n{}", edge.log());
    assert_no_panic(&edge.log())?;
    // Nothing of the junk was authenticated: not counted, and the peer's endpoint (the real
    // client's port, while the junk came from another port of the same address) did not move.
    let grown = after.rx_bytes.saturating_sub(before.rx_bytes);
    assert!(
        grown < RX_SLACK,
        "rx grew by {grown} bytes during {bytes} bytes of junk"
    );
    assert_eq!(after.endpoint, before.endpoint, "junk moved the endpoint");

    assert_body(
        http_get(&topo.client, &url, GET_TIMEOUT)?,
        &body,
        "after the junk",
    );
    assert!(edge.is_running(), "the edge died after the junk");
    assert_no_panic(&edge.log())?;
    eprintln!("junk test took {:?}", started.elapsed());
    Ok(())
}

#[test]
fn replayed_handshakes_and_data_are_not_accepted() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let started = Instant::now();
    let topo = Topology::new("bad-replay")?;
    let mut edge = topo.start_edge(&topo.write_edge_config(ALLOW_ALL)?)?;
    let record = topo.dir.join("relay-record.txt");
    let record_arg = record.to_string_lossy().into_owned();
    let mut relay = topo.client.spawn(
        "python3",
        &[
            "-u",
            "-c",
            SCRIPT,
            "relay",
            CLIENT_UNDERLAY,
            &RELAY_PORT.to_string(),
            EDGE_UNDERLAY,
            &EDGE_PORT.to_string(),
            &record_arg,
        ],
        &topo.dir.join("relay.log"),
    )?;
    relay.wait_for_log("ready", Duration::from_secs(10))?;
    // The client reaches the edge through the relay. No PersistentKeepalive: the less the client
    // sends on its own, the tighter the rx bound below.
    let config = topo.dir.write(
        "client-relay.conf",
        format!(
            "[Interface]\nPrivateKey = {}\nAddress = {CLIENT_TUNNEL}/32\nMTU = 1420\n\n\
             [Peer]\nPublicKey = {}\nEndpoint = {CLIENT_UNDERLAY}:{RELAY_PORT}\n\
             AllowedIPs = 10.202.0.0/24\n",
            topo.client_private, topo.edge_public
        ),
    )?;
    let _client = topo.start_client(&config, &[])?;
    let body = random_bytes(BODY_LEN);
    let _http = HttpServer::start(&topo.dest, topo.dir.path(), DEST, HTTP_PORT, &body)?;
    let _echo = UdpEcho::start(&topo.dest, topo.dir.path(), DEST, ECHO_PORT)?;
    let url = format!("http://{DEST}:{HTTP_PORT}/body");
    assert_body(
        http_get(&topo.client, &url, GET_TIMEOUT)?,
        &body,
        "through the relay",
    );
    // Large client-to-edge data datagrams, so one accepted replay would show in the counter.
    for _ in 0..ECHOES {
        echo(&topo.client)?;
    }

    let relay_endpoint = format!("{CLIENT_UNDERLAY}:{RELAY_PORT}");
    let before = edge_peer(&topo)?;
    assert_eq!(before.endpoint.as_deref(), Some(relay_endpoint.as_str()));
    let report = script(
        &topo.client,
        &[
            "replay",
            &record_arg,
            CLIENT_UNDERLAY,
            EDGE_UNDERLAY,
            &EDGE_PORT.to_string(),
        ],
    )?;
    let after = edge_peer(&topo)?;
    eprintln!("replay: {report:?}\nedge peer before {before:?}\nafter {after:?}");

    let inits: u64 = field(&report, "inits")?;
    let datas: u64 = field(&report, "datas")?;
    let data_bytes: u64 = field(&report, "data_bytes")?;
    assert!(inits >= 1, "the relay recorded no initiation");
    assert!(
        datas >= u64::try_from(ECHOES)? && data_bytes >= u64::try_from(ECHOES * ECHO_LEN)?,
        "the relay recorded too little data: {report:?}"
    );
    assert_eq!(
        field::<u64>(&report, "replies")?,
        0,
        "the edge answered replayed or altered datagrams (types {:?}; 2 = a handshake \
         response to a replayed initiation)",
        report.get("reply_types")
    );
    let grown = after.rx_bytes.saturating_sub(before.rx_bytes);
    assert!(
        grown < RX_SLACK && grown < data_bytes,
        "rx grew by {grown} bytes after {data_bytes} bytes of replayed data: replays accepted"
    );
    // Replays came from another port: unauthenticated, they must not steal the endpoint.
    assert_eq!(
        after.endpoint, before.endpoint,
        "a replay moved the endpoint"
    );

    assert_body(
        http_get(&topo.client, &url, GET_TIMEOUT)?,
        &body,
        "after the replay",
    );
    echo(&topo.client)?;
    assert_eq!(
        edge_peer(&topo)?.endpoint.as_deref(),
        Some(relay_endpoint.as_str())
    );
    assert!(relay.is_running(), "the relay died:\n{}", relay.log());
    assert!(edge.is_running(), "the edge died:\n{}", edge.log());
    assert_no_panic(&edge.log())?;
    eprintln!("replay test took {:?}", started.elapsed());
    Ok(())
}

#[test]
fn handshake_flood_from_many_sources_gets_cookie_replies_and_the_peer_keeps_working(
) -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let started = Instant::now();
    let topo = Topology::new("bad-flood")?;
    // Top-level keys must come before the first table of the file.
    let plain = std::fs::read_to_string(topo.write_edge_config(ALLOW_ALL)?)?;
    let config = topo.dir.write(
        "edge-flood.toml",
        format!("handshake_load_limit = {FLOOD_LOAD_LIMIT}\n{plain}"),
    )?;
    let mut edge = topo.start_edge(&config)?;
    let body = random_bytes(BODY_LEN);
    let _http = HttpServer::start(&topo.dest, topo.dir.path(), DEST, HTTP_PORT, &body)?;
    let url = format!("http://{DEST}:{HTTP_PORT}/body");

    let sources: Vec<String> = (0..FLOOD_SOURCES)
        .map(|n| format!("10.201.0.{}", FLOOD_FIRST + n))
        .collect();
    let batch: String = sources
        .iter()
        .map(|addr| format!("addr add {addr}/24 dev {}\n", topo.client_if))
        .collect();
    topo.client
        .run_with_stdin(&["ip", "-batch", "-"], batch.as_bytes())?;
    let addrs = topo.dir.write("flood-sources.txt", sources.join("\n"))?;
    let stop = topo.dir.join("flood-stop");
    let mut flooder = topo.client.spawn(
        "python3",
        &[
            "-u",
            "-c",
            SCRIPT,
            "flood",
            EDGE_UNDERLAY,
            &EDGE_PORT.to_string(),
            &topo.edge_public,
            &addrs.to_string_lossy(),
            &FLOOD_RATE.to_string(),
            &FLOOD_MAX_SECS.to_string(),
            &stop.to_string_lossy(),
        ],
        &topo.dir.join("flood.log"),
    )?;
    flooder
        .wait_for_log("first-cookie", Duration::from_secs(10))
        .context(
            "no cookie reply to the flood: the edge does not answer with cookies under load",
        )?;

    // A client that starts now handshakes under load: its first initiation (no mac2) gets a
    // cookie reply, and its retry carries a valid mac2 and gets through (boringtun retries
    // after Rekey-Timeout, 5 s).
    let flood_started_client = Instant::now();
    let client = topo.start_client(&topo.write_client_config("10.202.0.0/24")?, &[])?;
    let fetched = http_get(&topo.client, &url, Duration::from_secs(25));
    let under_flood = flood_started_client.elapsed();
    let still_flooding = flooder.is_running();

    std::fs::write(&stop, "")?;
    let status = flooder.wait_exit(Duration::from_secs(10))?;
    let log = flooder.log();
    assert!(status.success(), "flooder failed ({status}):\n{log}");
    let report = key_values(&log);
    eprintln!(
        "flood: {report:?}; GET after {under_flood:?}: {}; client log mentions a cookie reply: \
         {}",
        if fetched.is_ok() { "ok" } else { "failed" },
        client.log().contains("cookie_reply")
    );
    let sent: u64 = field(&report, "sent")?;
    let cookies: u64 = field(&report, "cookies")?;
    assert!(sent > u64::from(FLOOD_RATE), "only {sent} initiations sent");
    assert!(
        cookies > 0,
        "no cookie replies to {sent} initiations from {FLOOD_SOURCES} sources"
    );
    assert!(
        field::<u64>(&report, "cookie_sources")? > 1,
        "cookie replies reached only one source"
    );
    assert_eq!(
        field::<u64>(&report, "bad")?,
        0,
        "the edge sent the flooders something other than cookie replies for their indices"
    );
    assert_body(fetched?, &body, "during the flood");
    assert!(
        still_flooding,
        "the flood ended before the GET did, so it did not run under load:\n{log}"
    );

    // And after the flood.
    assert_body(
        http_get(&topo.client, &url, GET_TIMEOUT)?,
        &body,
        "after the flood",
    );
    assert!(edge.is_running(), "the edge died under the flood");
    assert_no_panic(&edge.log())?;
    eprintln!("flood test took {:?}", started.elapsed());
    Ok(())
}

/// Runs `scripts/bad_input.py args…` in `netns` to completion and returns its `key=value` lines.
fn script(netns: &Netns, args: &[&str]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut full = vec!["python3", "-c", SCRIPT];
    full.extend_from_slice(args);
    Ok(key_values(&netns.run(&full)?))
}

fn key_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

fn field<T: FromStr>(report: &BTreeMap<String, String>, key: &str) -> anyhow::Result<T> {
    report
        .get(key)
        .and_then(|value| value.parse().ok())
        .with_context(|| format!("no number {key}= in the script's report {report:?}"))
}

/// The edge's view of its one peer, from `wg show <edge_tun> dump` over its UAPI socket.
fn edge_peer(topo: &Topology) -> anyhow::Result<DumpPeer> {
    let dump = topo.edge.run(&["wg", "show", &topo.edge_tun, "dump"])?;
    let mut peers = parse_dump(&dump)?;
    if peers.len() != 1 {
        bail!("want one peer in the edge's dump:\n{dump}");
    }
    Ok(peers.remove(0))
}

fn echo(netns: &Netns) -> anyhow::Result<()> {
    let payload = random_bytes(ECHO_LEN);
    let reply = udp_echo(netns, DEST, ECHO_PORT, &payload, Duration::from_secs(6))?;
    if reply != payload {
        bail!("the echo differs: {} bytes back", reply.len());
    }
    Ok(())
}

fn assert_body(fetched: Vec<u8>, body: &[u8], when: &str) {
    assert!(
        fetched == body,
        "GET {when}: body differs ({} bytes, want {})",
        fetched.len(),
        body.len()
    );
}

fn assert_no_panic(log: &str) -> anyhow::Result<()> {
    if log.contains("panicked") {
        bail!("the edge panicked:\n{log}");
    }
    Ok(())
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

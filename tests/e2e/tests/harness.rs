//! Validates the harness itself against two stock wireguard-go peers: if this fails, the e2e
//! tests of Gatehouse cannot be trusted either.

#![allow(clippy::print_stderr)] // Output shown with --nocapture, to see what the tunnel did.

use std::time::Duration;

use e2e::{
    http_get, ifname, keypair, skip_unless_root, udp_echo, veth, HttpServer, Netns, TestDir,
    UdpEcho, WgGo,
};
use rand::RngCore;

const A_UNDERLAY: &str = "10.203.0.1/24";
const B_UNDERLAY: &str = "10.203.0.2/24";
const A_TUNNEL: &str = "100.70.0.1";
const B_TUNNEL: &str = "100.70.0.2";
const WG_PORT: u16 = 51820;
const HTTP_PORT: u16 = 8080;
const ECHO_PORT: u16 = 9000;
/// Larger than the tunnel MTU many times over, so the body crosses as many packets.
const BODY_LEN: usize = 256 * 1024;
const ECHO_LEN: usize = 1200;

#[test]
fn wireguard_go_peers_carry_ping_http_and_udp_through_the_tunnel() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let dir = TestDir::new("harness")?;
    let a = Netns::new("gha")?;
    let b = Netns::new("ghb")?;
    veth(&a, A_UNDERLAY, &b, B_UNDERLAY)?;

    let (a_private, a_public) = keypair();
    let (b_private, b_public) = keypair();
    let wg_a = WgGo::start(
        &a,
        &ifname("wga"),
        &a_private,
        WG_PORT,
        &format!("{A_TUNNEL}/24"),
    )?;
    let wg_b = WgGo::start(
        &b,
        &ifname("wgb"),
        &b_private,
        WG_PORT,
        &format!("{B_TUNNEL}/24"),
    )?;
    assert_eq!(wg_a.public_key(), a_public);
    let b_endpoint = format!("10.203.0.2:{WG_PORT}");
    let a_endpoint = format!("10.203.0.1:{WG_PORT}");
    wg_a.add_peer(
        &b_public,
        Some(&b_endpoint),
        &format!("{B_TUNNEL}/32"),
        None,
    )?;
    wg_b.add_peer(
        &a_public,
        Some(&a_endpoint),
        &format!("{A_TUNNEL}/32"),
        None,
    )?;

    // Ping through the tunnel (the first echo waits for the handshake).
    let ping = a.run(&["ping", "-c", "3", "-W", "2", B_TUNNEL])?;
    eprintln!("{ping}");

    // HTTP GET of a known body served by b.
    let mut body = vec![0u8; BODY_LEN];
    rand::thread_rng().fill_bytes(&mut body);
    let _http = HttpServer::start(&b, dir.path(), B_TUNNEL, HTTP_PORT, &body)?;
    let url = format!("http://{B_TUNNEL}:{HTTP_PORT}/body");
    let fetched = http_get(&a, &url, Duration::from_secs(20))?;
    assert!(fetched == body, "body differs: got {} bytes", fetched.len());

    // UDP echo round trip.
    let _echo = UdpEcho::start(&b, dir.path(), B_TUNNEL, ECHO_PORT)?;
    let mut payload = vec![0u8; ECHO_LEN];
    rand::thread_rng().fill_bytes(&mut payload);
    let reply = udp_echo(&a, B_TUNNEL, ECHO_PORT, &payload, Duration::from_secs(6))?;
    assert_eq!(reply, payload);

    // The transfer counters saw it all: a received the body and the echo; nothing can be
    // received that the other side did not send. Counters only grow, so each "sent" figure is
    // read after the "received" figure it bounds: a, then b, then a again.
    eprintln!("a: {}b: {}", wg_a.show_dump()?, wg_b.show_dump()?);
    let a_sees_b = only_peer(wg_a.peers()?);
    let b_sees_a = only_peer(wg_b.peers()?);
    let a_sees_b_later = only_peer(wg_a.peers()?);
    assert_eq!(a_sees_b.public_key, b_public);
    assert_eq!(b_sees_a.public_key, a_public);
    for peer in [&a_sees_b, &b_sees_a] {
        assert!(peer.rx_bytes > 0 && peer.tx_bytes > 0, "{peer:?}");
        assert!(peer.latest_handshake > 0, "{peer:?}");
    }
    let body_len = u64::try_from(BODY_LEN)?;
    let echo_len = u64::try_from(ECHO_LEN)?;
    assert!(a_sees_b.rx_bytes >= body_len + echo_len, "{a_sees_b:?}");
    assert!(
        b_sees_a.tx_bytes >= a_sees_b.rx_bytes,
        "{b_sees_a:?} vs {a_sees_b:?}"
    );
    assert!(b_sees_a.rx_bytes >= echo_len, "{b_sees_a:?}");
    assert!(
        a_sees_b_later.tx_bytes >= b_sees_a.rx_bytes,
        "{a_sees_b_later:?} vs {b_sees_a:?}"
    );
    Ok(())
}

fn only_peer(peers: Vec<e2e::DumpPeer>) -> e2e::DumpPeer {
    let count = peers.len();
    match <[e2e::DumpPeer; 1]>::try_from(peers) {
        Ok([peer]) => peer,
        Err(peers) => panic!("want exactly one peer, got {count}: {peers:?}"),
    }
}

//! Stock `wg` drives the binaries through the WireGuard UAPI: `wg set` adds a peer to a running
//! edge, and that peer's traffic then flows; `wg show` reports the real private key's public
//! half and the peer the edge learned.

use e2e::gatehouse::{Topology, CLIENT_TUNNEL, DEST};
use e2e::{http_get, parse_dump, skip_unless_root, HttpServer};
use std::time::Duration;

const HTTP_PORT: u16 = 8080;

#[test]
fn wg_set_adds_a_peer_to_a_running_edge_and_its_traffic_flows() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let topo = Topology::new("uapi-set")?;
    // An edge that knows no peer: its config's one peer is removed again through UAPI first, so
    // only `wg set` can make the client known.
    let _edge = topo.start_edge(&topo.write_edge_config("[[policy]]\naction = \"allow\"\n")?)?;
    topo.edge.run(&[
        "wg",
        "set",
        &topo.edge_tun,
        "peer",
        &topo.client_public,
        "remove",
    ])?;
    assert_eq!(
        parse_dump(&topo.edge.run(&["wg", "show", &topo.edge_tun, "dump"])?)?.len(),
        0
    );

    let _client = topo.start_client(&topo.write_client_config("10.202.0.0/24")?, &[])?;
    let body = b"added at run time".to_vec();
    let _http = HttpServer::start(&topo.dest, topo.dir.path(), DEST, HTTP_PORT, &body)?;
    let url = format!("http://{DEST}:{HTTP_PORT}/body");
    assert!(
        http_get(&topo.client, &url, Duration::from_secs(3)).is_err(),
        "an unknown peer must not get through"
    );

    topo.edge.run(&[
        "wg",
        "set",
        &topo.edge_tun,
        "peer",
        &topo.client_public,
        "allowed-ips",
        &format!("{CLIENT_TUNNEL}/32"),
    ])?;
    // The client retries its handshake every 5 s (Rekey-Timeout).
    let fetched = http_get(&topo.client, &url, Duration::from_secs(20))?;
    assert_eq!(fetched, body);

    let show = topo.edge.run(&["wg", "show", &topo.edge_tun])?;
    assert!(
        show.contains(&format!("public key: {}", topo.edge_public)),
        "{show}"
    );
    let peers = parse_dump(&topo.edge.run(&["wg", "show", &topo.edge_tun, "dump"])?)?;
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].public_key, topo.client_public);
    assert_eq!(peers[0].allowed_ips, vec![format!("{CLIENT_TUNNEL}/32")]);
    assert!(peers[0].latest_handshake > 0);
    Ok(())
}

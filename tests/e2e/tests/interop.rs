//! Interoperability with stock WireGuard: `wireguard-go` + `wg` as the client of
//! `gatehouse-edge`, `gatehouse` against a `wireguard-go` server, and a wg-quick file generated
//! by the edge brought up unchanged by stock `wg-quick`.

use e2e::gatehouse::{Topology, CLIENT_PEER, CLIENT_TUNNEL, DEST, EDGE_PORT, EDGE_UNDERLAY};
use e2e::{bin, http_get, parse_dump, skip_unless_root, HttpServer, Netns, WgGo};
use std::path::PathBuf;
use std::time::Duration;

const HTTP_PORT: u16 = 8080;
const ALLOW_ALL: &str = "[[policy]]\naction = \"allow\"\n";

#[test]
fn wireguard_go_client_reaches_the_destination_through_gatehouse_edge() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let topo = Topology::new("interop-wggo-client")?;
    let _edge = topo.start_edge(&topo.write_edge_config(ALLOW_ALL)?)?;
    let body = b"served to a stock wireguard-go client".to_vec();
    let _http = HttpServer::start(&topo.dest, topo.dir.path(), DEST, HTTP_PORT, &body)?;

    let stock = WgGo::start(
        &topo.client,
        &topo.client_tun,
        &topo.client_private,
        0,
        &format!("{CLIENT_TUNNEL}/32"),
    )?;
    stock.add_peer(
        &topo.edge_public,
        Some(&format!("{EDGE_UNDERLAY}:{EDGE_PORT}")),
        "10.202.0.0/24",
        Some(25),
    )?;
    topo.client.route_dev("10.202.0.0/24", &topo.client_tun)?;

    let fetched = http_get(
        &topo.client,
        &format!("http://{DEST}:{HTTP_PORT}/body"),
        Duration::from_secs(15),
    )?;
    assert_eq!(fetched, body);
    let peers = stock.peers()?;
    assert_eq!(peers.len(), 1);
    assert!(peers[0].latest_handshake > 0, "{peers:?}");
    let edge_view = parse_dump(&topo.edge.run(&["wg", "show", &topo.edge_tun, "dump"])?)?;
    assert_eq!(edge_view[0].public_key, topo.client_public);
    assert!(edge_view[0].rx_bytes > 0 && edge_view[0].latest_handshake > 0);
    Ok(())
}

#[test]
fn gatehouse_client_connects_to_a_wireguard_go_server() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let topo = Topology::new("interop-wggo-server")?;
    let body = b"served behind a stock wireguard-go server".to_vec();
    let _http = HttpServer::start(&topo.dest, topo.dir.path(), DEST, HTTP_PORT, &body)?;
    let server = WgGo::start(
        &topo.edge,
        &topo.edge_tun,
        &topo.edge_private,
        EDGE_PORT,
        "100.64.0.1/10",
    )?;
    server.add_peer(
        &topo.client_public,
        None,
        &format!("{CLIENT_TUNNEL}/32"),
        None,
    )?;
    let _client = topo.start_client(&topo.write_client_config("10.202.0.0/24")?, &[])?;

    let fetched = http_get(
        &topo.client,
        &format!("http://{DEST}:{HTTP_PORT}/body"),
        Duration::from_secs(15),
    )?;
    assert_eq!(fetched, body);
    let server_view = server.peers()?;
    assert_eq!(server_view[0].public_key, topo.client_public);
    assert!(server_view[0].latest_handshake > 0, "{server_view:?}");
    Ok(())
}

#[test]
fn wg_quick_config_generated_by_the_edge_works_unchanged() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let topo = Topology::new("interop-wgquick")?;
    let _edge = topo.start_edge(&topo.write_edge_config(ALLOW_ALL)?)?;
    let body = b"reached with wg-quick".to_vec();
    let _http = HttpServer::start(&topo.dest, topo.dir.path(), DEST, HTTP_PORT, &body)?;

    let key_file = topo.dir.write("client.key", &topo.client_private)?;
    let edge_config = topo.dir.join("edge.toml");
    let generated = topo.edge.run(&[
        bin("gatehouse-edge").to_string_lossy().as_ref(),
        "client-config",
        "--config",
        edge_config.to_string_lossy().as_ref(),
        "--peer",
        CLIENT_PEER,
        "--private-key-file",
        key_file.to_string_lossy().as_ref(),
        "--allowed-ip",
        "10.202.0.0/24",
    ])?;
    assert!(generated.contains(&format!("Endpoint = {EDGE_UNDERLAY}:{EDGE_PORT}")));
    // wg-quick names the interface after the file.
    let conf = topo
        .dir
        .write(&format!("{}.conf", topo.client_tun), &generated)?;
    let _up = WgQuickUp::up(&topo.client, conf)?;

    let fetched = http_get(
        &topo.client,
        &format!("http://{DEST}:{HTTP_PORT}/body"),
        Duration::from_secs(15),
    )?;
    assert_eq!(fetched, body);
    Ok(())
}

/// `wg-quick up` with wireguard-go as the userspace implementation; `wg-quick down` on drop
/// (deleting the interface is what stops the daemon wg-quick started).
struct WgQuickUp<'ns> {
    netns: &'ns Netns,
    conf: PathBuf,
}

impl<'ns> WgQuickUp<'ns> {
    fn up(netns: &'ns Netns, conf: PathBuf) -> anyhow::Result<Self> {
        let conf_text = conf.to_string_lossy().to_string();
        let guard = WgQuickUp { netns, conf };
        let output = netns.exec(&[
            "env",
            "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go",
            "wg-quick",
            "up",
            &conf_text,
        ]);
        anyhow::ensure!(
            output.status.success(),
            "wg-quick up failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(guard)
    }
}

impl Drop for WgQuickUp<'_> {
    fn drop(&mut self) {
        let conf = self.conf.to_string_lossy().to_string();
        let _ = self.netns.exec(&["wg-quick", "down", &conf]);
    }
}

//! The `gatehouse` client's tunnel modes and life cycle: full tunnel (the edge stays reachable
//! outside it), split exclude, and `up --background` / `status` / `export` / `down`.

use e2e::gatehouse::{Topology, DEST, EDGE_UNDERLAY};
use e2e::{bin, http_get, skip_unless_root, HttpServer};
use std::time::Duration;

const HTTP_PORT: u16 = 8080;
const ALLOW_ALL: &str = "[[policy]]\naction = \"allow\"\n";

fn route_dev(topo: &Topology, dest: &str, extra: &[&str]) -> anyhow::Result<String> {
    let mut args = vec!["ip", "route", "get", dest];
    args.extend_from_slice(extra);
    topo.client.run(&args)
}

#[test]
fn full_tunnel_routes_everything_and_keeps_the_edge_outside() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let topo = Topology::new("full-tunnel")?;
    let _edge = topo.start_edge(&topo.write_edge_config(ALLOW_ALL)?)?;
    let _client = topo.start_client(&topo.write_client_config("0.0.0.0/0, ::/0")?, &[])?;
    let body = b"full tunnel".to_vec();
    let _http = HttpServer::start(&topo.dest, topo.dir.path(), DEST, HTTP_PORT, &body)?;

    let fetched = http_get(
        &topo.client,
        &format!("http://{DEST}:{HTTP_PORT}/body"),
        Duration::from_secs(10),
    )?;
    assert_eq!(fetched, body);
    // Any destination goes into the tunnel, the edge's own endpoint included for unmarked
    // traffic; the tunnel's socket (fwmark 51820) still reaches the edge over the underlay.
    assert!(route_dev(&topo, "192.0.2.1", &[])?.contains(&topo.client_tun));
    assert!(route_dev(&topo, "2001:db8::1", &[])?.contains(&topo.client_tun));
    let marked = route_dev(&topo, EDGE_UNDERLAY, &["mark", "51820"])?;
    assert!(marked.contains(&topo.client_if), "{marked}");
    Ok(())
}

#[test]
fn split_exclude_keeps_excluded_prefixes_out_of_the_tunnel() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let topo = Topology::new("split-exclude")?;
    let _edge = topo.start_edge(&topo.write_edge_config(ALLOW_ALL)?)?;
    let _client = topo.start_client(
        &topo.write_client_config("0.0.0.0/0")?,
        &["--exclude", "10.202.0.0/24"],
    )?;
    let inside = route_dev(&topo, "192.0.2.1", &[])?;
    assert!(inside.contains(&topo.client_tun), "{inside}");
    // Excluded: not through the tunnel (and here, with no other route, unreachable).
    let excluded = topo.client.exec(&["ip", "route", "get", DEST]);
    let excluded = String::from_utf8_lossy(&excluded.stdout);
    assert!(!excluded.contains(&topo.client_tun), "{excluded}");
    Ok(())
}

#[test]
fn background_service_status_export_and_down() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let topo = Topology::new("client-cli")?;
    let _edge = topo.start_edge(&topo.write_edge_config(ALLOW_ALL)?)?;
    let body = b"as a service".to_vec();
    let _http = HttpServer::start(&topo.dest, topo.dir.path(), DEST, HTTP_PORT, &body)?;
    let config = topo.write_client_config("10.202.0.0/24")?;
    let gatehouse = bin("gatehouse").to_string_lossy().to_string();
    let log = topo
        .dir
        .join("background.log")
        .to_string_lossy()
        .to_string();
    let config = config.to_string_lossy().to_string();
    let iface = topo.client_tun.as_str();

    // `up --background` returns once the tunnel is configured.
    topo.client.run(&[
        &gatehouse,
        "up",
        "--config",
        &config,
        "--interface",
        iface,
        "--background",
        "--log-file",
        &log,
    ])?;
    let guard = DownOnDrop {
        topo: &topo,
        gatehouse: gatehouse.clone(),
    };
    let fetched = http_get(
        &topo.client,
        &format!("http://{DEST}:{HTTP_PORT}/body"),
        Duration::from_secs(10),
    )?;
    assert_eq!(fetched, body);

    let status = topo
        .client
        .run(&[&gatehouse, "status", "--interface", iface])?;
    assert!(status.contains(&topo.edge_public), "{status}");
    assert!(status.contains("latest handshake: "), "{status}");
    assert!(
        !status.contains(&topo.client_private),
        "status never shows the private key"
    );

    let exported = topo
        .client
        .run(&[&gatehouse, "export", "--interface", iface])?;
    assert!(exported.contains(&format!("PrivateKey = {}", topo.client_private)));
    assert!(
        exported.contains("AllowedIPs = 10.202.0.0/24"),
        "{exported}"
    );

    topo.client
        .run(&[&gatehouse, "down", "--interface", iface])?;
    std::mem::forget(guard);
    let links = topo.client.run(&["ip", "link"])?;
    assert!(!links.contains(iface), "TUN removed: {links}");
    let rules = topo.client.run(&["ip", "rule"])?;
    assert!(!rules.contains("51820"), "rules removed: {rules}");
    assert!(!std::path::Path::new(&format!("/var/run/wireguard/{iface}.sock")).exists());
    let again = topo
        .client
        .exec(&[&gatehouse, "status", "--interface", iface]);
    assert!(
        !again.status.success(),
        "status of a downed interface fails"
    );
    Ok(())
}

/// Takes the background daemon down if the test fails before it does.
struct DownOnDrop<'a> {
    topo: &'a Topology,
    gatehouse: String,
}

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.topo.client.exec(&[
            &self.gatehouse,
            "down",
            "--interface",
            &self.topo.client_tun,
        ]);
    }
}

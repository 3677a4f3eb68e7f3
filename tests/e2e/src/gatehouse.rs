//! A client | edge | destination topology running the real `gatehouse` and `gatehouse-edge`.
//!
//! ```text
//!  client ns                edge ns                          dest ns
//!  10.201.0.2/24 ──veth── 10.201.0.1/24
//!                          10.202.0.1/24 ──veth── 10.202.0.2/24  (route 100.64.0.0/10 via edge)
//!  tunnel 100.64.0.2        tunnel 100.64.0.1/10 (TUN), ip_forward on
//! ```
//! A test binds the [`Topology`] before the processes it starts in it, so that `Drop` (in reverse
//! order) stops the processes before their namespaces go.

use crate::{bin, ifname, keypair, veth, wait_for_socket, Netns, Proc, TestDir};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const CLIENT_UNDERLAY: &str = "10.201.0.2";
pub const EDGE_UNDERLAY: &str = "10.201.0.1";
pub const EDGE_DEST_SIDE: &str = "10.202.0.1";
pub const DEST: &str = "10.202.0.2";
pub const CLIENT_TUNNEL: &str = "100.64.0.2";
pub const EDGE_PORT: u16 = 51820;
/// The peer name of the client in the edge's configuration.
pub const CLIENT_PEER: &str = "test-client";

/// Three namespaces wired as above, with keys and configuration files, but nothing running.
pub struct Topology {
    pub dir: TestDir,
    pub client: Netns,
    pub edge: Netns,
    pub dest: Netns,
    /// The client's underlay interface (in `client`).
    pub client_if: String,
    /// The edge's interface towards the client (in `edge`).
    pub edge_client_if: String,
    pub edge_private: String,
    pub edge_public: String,
    pub client_private: String,
    pub client_public: String,
    /// The `gatehouse` TUN name and the edge's TUN name (unique on the host: UAPI sockets).
    pub client_tun: String,
    pub edge_tun: String,
}

impl Topology {
    /// Builds the namespaces, links and keys.
    ///
    /// # Errors
    /// `ip` failures.
    pub fn new(label: &str) -> anyhow::Result<Topology> {
        let dir = TestDir::new(label)?;
        let client = Netns::new("ghc")?;
        let edge = Netns::new("ghe")?;
        let dest = Netns::new("ghd")?;
        let (client_if, edge_client_if) = veth(
            &client,
            &format!("{CLIENT_UNDERLAY}/24"),
            &edge,
            &format!("{EDGE_UNDERLAY}/24"),
        )?;
        veth(
            &edge,
            &format!("{EDGE_DEST_SIDE}/24"),
            &dest,
            &format!("{DEST}/24"),
        )?;
        dest.route_via("100.64.0.0/10", EDGE_DEST_SIDE)?;
        edge.enable_forwarding()?;
        let (edge_private, edge_public) = keypair();
        let (client_private, client_public) = keypair();
        Ok(Topology {
            dir,
            client,
            edge,
            dest,
            client_if,
            edge_client_if,
            edge_private,
            edge_public,
            client_private,
            client_public,
            client_tun: ifname("ghc"),
            edge_tun: ifname("ghe"),
        })
    }

    /// Writes the edge's TOML with the client as its one peer and `policy` (TOML `[[policy]]`
    /// tables) appended; returns its path.
    ///
    /// # Errors
    /// Writing the file.
    pub fn write_edge_config(&self, policy: &str) -> anyhow::Result<PathBuf> {
        let text = format!(
            r#"private_key = "{}"
listen = "0.0.0.0:{EDGE_PORT}"
interface = "{}"
address = ["100.64.0.1/10"]
endpoint = "{EDGE_UNDERLAY}:{EDGE_PORT}"

[[peers]]
name = "{CLIENT_PEER}"
public_key = "{}"
addresses = ["{CLIENT_TUNNEL}/32"]

{policy}
"#,
            self.edge_private, self.edge_tun, self.client_public
        );
        self.dir.write("edge.toml", text)
    }

    /// Starts `gatehouse-edge run` in the edge namespace and waits for its UAPI socket.
    ///
    /// # Errors
    /// The edge does not come up within 10 s.
    pub fn start_edge(&self, config: &Path) -> anyhow::Result<Proc> {
        let config = config.to_string_lossy().to_string();
        let log = self
            .dir
            .join(format!("edge-{}.log", crate::random_suffix(4)));
        let mut proc = self.edge.spawn_with_env(
            bin("gatehouse-edge"),
            &["run", "--config", &config],
            &[("GATEHOUSE_LOG", "info,gatehouse_edge=debug")],
            &log,
        )?;
        wait_up(&mut proc, &self.edge_tun)?;
        Ok(proc)
    }

    /// Writes the client's wg-quick file: tunnel address, the edge as peer, `allowed_ips`
    /// routed through the tunnel; returns its path.
    ///
    /// # Errors
    /// Writing the file.
    pub fn write_client_config(&self, allowed_ips: &str) -> anyhow::Result<PathBuf> {
        let text = format!(
            "[Interface]\nPrivateKey = {}\nAddress = {CLIENT_TUNNEL}/32\nMTU = 1420\n\n\
             [Peer]\nPublicKey = {}\nEndpoint = {EDGE_UNDERLAY}:{EDGE_PORT}\n\
             AllowedIPs = {allowed_ips}\nPersistentKeepalive = 25\n",
            self.client_private, self.edge_public
        );
        self.dir.write("client.conf", text)
    }

    /// Starts `gatehouse up` (foreground) in the client namespace and waits for its UAPI socket.
    ///
    /// # Errors
    /// The client does not come up within 10 s.
    pub fn start_client(&self, config: &Path, extra: &[&str]) -> anyhow::Result<Proc> {
        let config = config.to_string_lossy().to_string();
        let mut args = vec!["up", "--config", &config, "--interface", &self.client_tun];
        args.extend_from_slice(extra);
        let log = self
            .dir
            .join(format!("client-{}.log", crate::random_suffix(4)));
        let mut proc = self.client.spawn_with_env(
            bin("gatehouse"),
            &args,
            &[("GATEHOUSE_LOG", "debug")],
            &log,
        )?;
        wait_up(&mut proc, &self.client_tun)?;
        Ok(proc)
    }
}

fn wait_up(proc: &mut Proc, interface: &str) -> anyhow::Result<()> {
    let socket = PathBuf::from(format!("/var/run/wireguard/{interface}.sock"));
    wait_for_socket(&socket, Duration::from_secs(10))
        .with_context(|| format!("{} did not come up; its log:\n{}", proc.label(), proc.log()))?;
    Ok(())
}

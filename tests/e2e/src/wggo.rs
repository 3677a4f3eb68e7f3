//! [`WgGo`]: a stock `wireguard-go` peer in a namespace, the reference to interoperate and
//! compare with.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::netns::Netns;
use crate::proc::Proc;
use crate::testdir::TestDir;
use crate::wait::wait_until;
use crate::wgdump::{parse_dump, DumpPeer};

/// Where wireguard-go and `wg` meet: `<dir>/<interface>.sock`. The directory is shared by all
/// namespaces (`ip netns exec` keeps `/var/run`), so interface names must be unique per host.
const UAPI_DIR: &str = "/var/run/wireguard";
/// How long wireguard-go may take to create its TUN device and UAPI socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A `wireguard-go -f <interface>` daemon in a namespace, configured through `wg`.
///
/// The program is `$WIREGUARD_GO` if set, else `wireguard-go` on `$PATH`. The daemon's log
/// (`LOG_LEVEL=verbose`) lives in its own [`TestDir`]. `Drop` stops the daemon (its TUN device
/// goes with it) and removes a UAPI socket it left behind. Borrowing the [`Netns`] ensures the
/// daemon is stopped before its namespace is deleted.
#[derive(Debug)]
pub struct WgGo<'ns> {
    netns: &'ns Netns,
    ifname: String,
    public_key: String,
    listen_port: u16,
    proc: Proc,
    dir: TestDir,
}

impl<'ns> WgGo<'ns> {
    /// Starts wireguard-go as `ifname` (≤ 15 characters, unique on the host: see
    /// [`crate::ifname`]) in `netns`, sets its private key (base64) and UDP listen port, adds
    /// `addr_cidr` (e.g. `100.70.0.1/24`) to the interface and brings it up.
    ///
    /// # Errors
    /// If the interface name is taken, the daemon does not create its UAPI socket within 10 s,
    /// or configuring it fails.
    pub fn start(
        netns: &'ns Netns,
        ifname: &str,
        private_key: &str,
        listen_port: u16,
        addr_cidr: &str,
    ) -> anyhow::Result<WgGo<'ns>> {
        if ifname.len() > 15 {
            bail!("interface name {ifname:?} is longer than 15 characters");
        }
        let public_key = wg::keys::PrivateKey::from_base64(private_key)
            .map(|key| key.public_key().to_base64())
            .map_err(|err| anyhow::anyhow!("bad private key: {err}"))?;
        let socket = uapi_socket(ifname);
        if socket.exists() {
            bail!(
                "{} exists: interface name {ifname} is taken",
                socket.display()
            );
        }
        let dir = TestDir::new(&format!("wggo-{ifname}"))?;
        let program = std::env::var("WIREGUARD_GO").unwrap_or_else(|_| "wireguard-go".into());
        let env = [("WG_PROCESS_FOREGROUND", "1"), ("LOG_LEVEL", "verbose")];
        let log = dir.join("wireguard-go.log");
        let mut proc = netns.spawn_with_env(&program, &["-f", ifname], &env, &log)?;
        let mut exited = false;
        let ready = wait_until(START_TIMEOUT, Duration::from_millis(20), || {
            exited = !proc.is_running();
            exited || socket.exists()
        });
        if !ready || exited {
            bail!(
                "wireguard-go {ifname} in {} did not create {} ({}); log:\n{}",
                netns.name(),
                socket.display(),
                if exited { "it exited" } else { "timed out" },
                proc.log()
            );
        }
        let port = listen_port.to_string();
        netns.run_with_stdin(
            &[
                "wg",
                "set",
                ifname,
                "private-key",
                "/dev/stdin",
                "listen-port",
                &port,
            ],
            private_key.as_bytes(),
        )?;
        netns.ip(&["addr", "add", addr_cidr, "dev", ifname])?;
        netns.ip(&["link", "set", ifname, "up"])?;
        Ok(WgGo {
            netns,
            ifname: ifname.to_owned(),
            public_key,
            listen_port,
            proc,
            dir,
        })
    }

    /// Adds or updates a peer: `wg set <if> peer <key> [endpoint E] allowed-ips A
    /// [persistent-keepalive K]`. `allowed_ips` is comma-separated CIDRs.
    ///
    /// # Errors
    /// If `wg` fails.
    pub fn add_peer(
        &self,
        public_key: &str,
        endpoint: Option<&str>,
        allowed_ips: &str,
        keepalive: Option<u16>,
    ) -> anyhow::Result<()> {
        let keepalive = keepalive.map(|secs| secs.to_string());
        let mut args = vec!["wg", "set", &self.ifname, "peer", public_key];
        if let Some(endpoint) = endpoint {
            args.extend(["endpoint", endpoint]);
        }
        args.extend(["allowed-ips", allowed_ips]);
        if let Some(keepalive) = &keepalive {
            args.extend(["persistent-keepalive", keepalive]);
        }
        self.netns.run(&args).map(drop)
    }

    /// `wg show <if> dump`: the interface line, then one tab-separated line per peer.
    ///
    /// # Errors
    /// If `wg` fails.
    pub fn show_dump(&self) -> anyhow::Result<String> {
        self.netns.run(&["wg", "show", &self.ifname, "dump"])
    }

    /// The peers of [`WgGo::show_dump`], parsed.
    ///
    /// # Errors
    /// If `wg` fails or prints something unexpected.
    pub fn peers(&self) -> anyhow::Result<Vec<DumpPeer>> {
        parse_dump(&self.show_dump()?).context("failed to parse wg show dump")
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The base64 public key matching the private key given to [`WgGo::start`].
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The UDP port it listens on.
    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    /// The daemon process (pid, log, CPU time).
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// The directory holding the daemon's log.
    pub fn dir(&self) -> &TestDir {
        &self.dir
    }
}

impl Drop for WgGo<'_> {
    #[allow(clippy::print_stderr)] // Cleanup failures must be visible in the test output.
    fn drop(&mut self) {
        if let Err(err) = self.proc.stop() {
            eprintln!("e2e: failed to stop wireguard-go {}: {err:#}", self.ifname);
        }
        let socket = uapi_socket(&self.ifname);
        if socket.exists() {
            if let Err(err) = std::fs::remove_file(&socket) {
                eprintln!("e2e: failed to remove {}: {err}", socket.display());
            }
        }
    }
}

/// The UAPI socket of interface `ifname`.
pub(crate) fn uapi_socket(ifname: &str) -> PathBuf {
    PathBuf::from(UAPI_DIR).join(format!("{ifname}.sock"))
}

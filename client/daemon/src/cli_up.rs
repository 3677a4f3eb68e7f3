//! `gatehouse up`: load the wg-quick file, create the TUN, route, and run the tunnel. `gatehouse
//! connect` writes the file from identity's profile and comes here too.

use anyhow::{bail, Context as _};
use client::{os, paths, tunnel};
use client_core::routes::{self, TunnelMode};
use client_core::wg_quick;
use ipnet::IpNet;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wg_driver::tun_device::AsyncTun;
use wg_driver::uapi_server::UapiServer;
use wg_driver::udp;

/// Gatehouse's default tunnel MTU: IPv6's minimum, safe on any path.
const DEFAULT_MTU: u16 = 1280;

#[derive(clap::Args)]
pub(crate) struct UpArgs {
    /// A wg-quick configuration file.
    #[arg(long, short, env = "GATEHOUSE_CONFIG")]
    pub(crate) config: PathBuf,
    /// The TUN interface name (at most 15 characters).
    #[arg(long, short, default_value = "gatehouse0", env = "GATEHOUSE_INTERFACE")]
    pub(crate) interface: String,
    /// Route everything except these prefixes through the tunnel (split exclude).
    #[arg(long = "exclude")]
    pub(crate) exclude: Vec<IpNet>,
    /// Detach and run as a background service; returns once the tunnel is configured.
    #[arg(long)]
    pub(crate) background: bool,
    /// Log file for --background (default /var/log/gatehouse-<interface>.log).
    #[arg(long)]
    pub(crate) log_file: Option<PathBuf>,
}

pub(crate) fn up(args: UpArgs) -> anyhow::Result<()> {
    if args.interface.is_empty() || args.interface.len() > 15 {
        bail!("interface name must be 1 to 15 characters");
    }
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("failed to read {}", args.config.display()))?;
    let config = wg_quick::parse(&text)
        .with_context(|| format!("invalid configuration {}", args.config.display()))?;
    if args.background {
        return spawn_background(&args);
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the runtime")?
        .block_on(run_foreground(args, config))
}

async fn run_foreground(args: UpArgs, config: wg_quick::WgQuickConfig) -> anyhow::Result<()> {
    let interface = args.interface.as_str();
    if !config.interface.dns.is_empty() {
        tracing::warn!("DNS entries are read but not applied to the system resolver yet");
    }
    let node = tunnel::build_node(&config, Instant::now()).await?;
    let mtu = config.interface.mtu.unwrap_or(DEFAULT_MTU);
    let table = config.interface.fwmark.unwrap_or(os::DEFAULT_TABLE);

    let tun = AsyncTun::create(interface, mtu, true)?;
    os::add_addresses(interface, &config.interface.addresses)?;
    let allowed: Vec<IpNet> = config
        .peers
        .iter()
        .flat_map(|p| p.allowed_ips.iter().copied())
        .collect();
    let plan = routes::plan(&routes::mode_from_allowed_ips(&allowed, &args.exclude));
    let listen = SocketAddr::from(([0u16; 8], config.interface.listen_port.unwrap_or(0)));
    let mut socket = udp::BatchSocket::new(udp::bind(listen, Some(table))?)?;
    let _routes = os::install_routes(interface, &plan, table)?;
    let mut uapi = UapiServer::bind(interface)?;
    let _files = RuntimeFiles::write(interface, &text_of(&config)?)?;
    tracing::info!(
        interface,
        mode = mode_name(&routes::mode_from_allowed_ips(&allowed, &args.exclude)),
        mtu,
        "tunnel up"
    );

    let shutdown = wg_driver::process::shutdown_signal()?;
    tunnel::run(node, &mut socket, &tun, Some(&mut uapi), shutdown).await?;
    Ok(())
}

fn text_of(config: &wg_quick::WgQuickConfig) -> anyhow::Result<String> {
    Ok(wg_quick::to_string(config)?)
}

fn mode_name(mode: &TunnelMode) -> &'static str {
    match mode {
        TunnelMode::Full => "full",
        TunnelMode::SplitInclude(_) => "split-include",
        TunnelMode::SplitExclude(_) => "split-exclude",
    }
}

/// The pid file and the running configuration (0600: it holds the private key), removed on drop.
struct RuntimeFiles {
    pid: PathBuf,
    config: PathBuf,
}

impl RuntimeFiles {
    fn write(interface: &str, config_text: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(paths::RUN_DIR)
            .with_context(|| format!("failed to create {}", paths::RUN_DIR))?;
        std::fs::set_permissions(paths::RUN_DIR, std::fs::Permissions::from_mode(0o700))?;
        let pid = paths::pid_file(interface);
        std::fs::write(&pid, format!("{}\n", std::process::id()))
            .with_context(|| format!("failed to write {}", pid.display()))?;
        let config = paths::running_config(interface);
        write_private(&config, config_text)?;
        Ok(Self { pid, config })
    }
}

impl Drop for RuntimeFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pid);
        let _ = std::fs::remove_file(&self.config);
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("failed to write {}", path.display()))
}

/// Re-runs this binary detached (new session, no stdin, output to a log file) and waits until
/// its UAPI socket appears.
fn spawn_background(args: &UpArgs) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let log = args
        .log_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/var/log/gatehouse-{}.log", args.interface)));
    let log_file = std::fs::File::create(&log)
        .with_context(|| format!("failed to create {}", log.display()))?;
    let exe = std::env::current_exe().context("failed to find this executable")?;
    let config = std::fs::canonicalize(&args.config)?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("up")
        .arg("--config")
        .arg(config)
        .arg("--interface")
        .arg(&args.interface);
    for prefix in &args.exclude {
        command.arg("--exclude").arg(prefix.to_string());
    }
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .context("failed to start the background daemon")?;
    let socket = paths::uapi_socket(&args.interface);
    for _ in 0..100 {
        if let Some(status) = child.try_wait()? {
            bail!("the daemon exited with {status}; see {}", log.display());
        }
        if socket.exists() && paths::pid_file(&args.interface).exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "the daemon did not come up within 10 s; see {}",
        log.display()
    )
}

//! `gatehouse`: the Gatehouse client for desktops. Signs in and enrolls the device at identity
//! (`login`), brings a WireGuard tunnel up from identity's profile (`connect`) or a wg-quick file
//! (`up`), routes full or split, serves the WireGuard UAPI so `wg show` works, and shows the
//! login and the tunnel (`status`).

mod cli_connect;
mod cli_status;
mod cli_up;
mod login;
mod state;
mod uapi_client;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use client::paths;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "gatehouse", version, about = "Gatehouse client")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign in at identity, enroll this device and write its tunnel configuration.
    Login(login::LoginArgs),
    /// Fetch this device's profile from identity and bring the tunnel up with it (needs
    /// CAP_NET_ADMIN). Runs in the foreground unless --background.
    Connect(cli_connect::ConnectArgs),
    /// Bring the tunnel up from a wg-quick file (needs CAP_NET_ADMIN). Runs in the foreground
    /// unless --background.
    Up(cli_up::UpArgs),
    /// Take a running tunnel down.
    Down {
        #[arg(long, short, default_value = "gatehouse0", env = "GATEHOUSE_INTERFACE")]
        interface: String,
    },
    /// Show the login (user, device, edge, posture) and the tunnel's peers, handshakes and
    /// transfer counters.
    Status(cli_status::StatusArgs),
    /// Print the running tunnel's configuration as a wg-quick file (contains the private key).
    Export {
        #[arg(long, short, default_value = "gatehouse0", env = "GATEHOUSE_INTERFACE")]
        interface: String,
    },
    /// Print a new private key (base64), like `wg genkey`.
    Genkey,
    /// Read a private key on stdin and print its public key, like `wg pubkey`.
    Pubkey,
}

fn main() -> std::process::ExitCode {
    wg_driver::process::init_logging();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Login(args) => login::login(args),
        Command::Connect(args) => cli_connect::connect(args),
        Command::Up(args) => cli_up::up(args),
        Command::Down { interface } => down(&interface),
        Command::Status(args) => cli_status::status(args),
        Command::Export { interface } => {
            let path = paths::running_config(&interface);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("interface {interface} is not up (no {})", path.display())
            })?;
            wg_driver::process::write_stdout(&text)
        }
        Command::Genkey => wg_driver::process::genkey(),
        Command::Pubkey => wg_driver::process::pubkey(),
    }
}

/// Asks the daemon of `interface` to stop (SIGTERM) and waits up to 10 s for it to exit.
fn down(interface: &str) -> anyhow::Result<()> {
    let pid_path = paths::pid_file(interface);
    let text = std::fs::read_to_string(&pid_path).with_context(|| {
        format!(
            "interface {interface} is not up (no {})",
            pid_path.display()
        )
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{} holds no pid", pid_path.display()))?;
    // SAFETY: kill(2) with a pid read from our own pid file; no memory is involved.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        let _ = std::fs::remove_file(&pid_path);
        bail!("the daemon of {interface} (pid {pid}) is gone; removed its stale pid file");
    }
    for _ in 0..100 {
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the daemon of {interface} (pid {pid}) did not stop within 10 s")
}

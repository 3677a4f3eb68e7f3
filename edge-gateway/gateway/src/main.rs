//! `gatehouse-edge`: a Gatehouse point of presence. Terminates WireGuard for many peers, decides
//! every new flow with the policy, and forwards allowed traffic through a TUN device.

mod client_config;
mod config;
mod run;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "gatehouse-edge", version, about = "Gatehouse edge gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the edge in the foreground until SIGINT/SIGTERM (needs CAP_NET_ADMIN for the TUN).
    Run {
        /// The edge configuration file (TOML).
        #[arg(long, short, env = "GATEHOUSE_EDGE_CONFIG")]
        config: PathBuf,
    },
    /// Check a configuration file and print a summary.
    Check {
        #[arg(long, short, env = "GATEHOUSE_EDGE_CONFIG")]
        config: PathBuf,
    },
    /// Print a wg-quick configuration for one of the edge's peers.
    ClientConfig {
        #[arg(long, short, env = "GATEHOUSE_EDGE_CONFIG")]
        config: PathBuf,
        /// The peer's name in the edge configuration.
        #[arg(long)]
        peer: String,
        /// File holding the peer's private key (base64), as `wg genkey` writes it.
        #[arg(long)]
        private_key_file: PathBuf,
        /// The edge endpoint clients dial (default: `endpoint` from the configuration).
        #[arg(long)]
        endpoint: Option<String>,
        /// Routes to send through the tunnel (default: everything, 0.0.0.0/0 and ::/0).
        #[arg(long = "allowed-ip")]
        allowed_ips: Vec<ipnet::IpNet>,
    },
    /// Print a new private key (base64), like `wg genkey`.
    Genkey,
    /// Read a private key on stdin and print its public key, like `wg pubkey`.
    Pubkey,
}

fn main() -> std::process::ExitCode {
    wg_driver::process::init_logging();
    match run_cli(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_cli(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config } => {
            let settings = config::load(&config)?;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("failed to start the runtime")?
                .block_on(run::run(settings))
        }
        Command::Check { config } => {
            let settings = config::load(&config)?;
            let summary = format!(
                "ok: {} peers, {} policy rules, interface {}, listen {}\n",
                settings.peers.len(),
                settings.policy.rules.len(),
                settings.file.interface,
                settings.file.listen
            );
            wg_driver::process::write_stdout(&summary)
        }
        Command::ClientConfig {
            config,
            peer,
            private_key_file,
            endpoint,
            allowed_ips,
        } => {
            let settings = config::load(&config)?;
            let text = client_config::render(
                &settings,
                &peer,
                &private_key_file,
                endpoint.as_deref(),
                &allowed_ips,
            )?;
            wg_driver::process::write_stdout(&text)
        }
        Command::Genkey => wg_driver::process::genkey(),
        Command::Pubkey => wg_driver::process::pubkey(),
    }
}

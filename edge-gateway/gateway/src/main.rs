//! `gatehouse-edge`: a Gatehouse point of presence. Terminates WireGuard for many peers, decides
//! every new flow with the policy, and forwards allowed traffic through a TUN device.

mod access_state;
mod app_front;
mod assertions;
mod ca_init;
mod client_config;
mod config;
mod connectors;
mod decision_audit;
mod feed_peers;
mod flow_policy;
mod identity_feed;
mod live_flows;
mod run;
mod tproxy;
mod transparent;
mod udp_flows;

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
    /// Follow identity's config feed and print one JSON line per applied message (revision,
    /// kind, devices, wall-clock time in ms and µs); the same follower `run` uses. No root needed.
    Feed {
        /// Identity's base URL.
        #[arg(long, env = "GATEHOUSE_IDENTITY_URL")]
        identity: String,
        /// File holding the edge's service token (kind `edge`).
        #[arg(long, env = "GATEHOUSE_EDGE_TOKEN_FILE")]
        token_file: PathBuf,
        /// Where the replica is cached (JSON); loaded at start, so a restart resumes from it.
        #[arg(long, default_value = "feed-cache.json")]
        cache: PathBuf,
    },
    /// The deployment CA connectors trust, and edge certificates signed by it.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Print a new private key (base64), like `wg genkey`.
    Genkey,
    /// Read a private key on stdin and print its public key, like `wg pubkey`.
    Pubkey,
}

#[derive(Subcommand)]
enum CaCommand {
    /// Write a new CA (ca.pem, ca.key) and an edge certificate (edge.pem, edge.key) into DIR;
    /// keys get mode 0600 and no existing file is overwritten.
    Init {
        /// The directory to write to (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// A DNS name the edge certificate is valid for (repeatable).
        #[arg(long = "name")]
        names: Vec<String>,
        /// An IP address the edge certificate is valid for (repeatable).
        #[arg(long = "ip")]
        ips: Vec<std::net::IpAddr>,
    },
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
        Command::Feed {
            identity,
            token_file,
            cache,
        } => {
            let source = identity_feed::FeedSource {
                identity_url: identity,
                token: config::read_token(&token_file)?,
                cache,
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("failed to start the runtime")?
                .block_on(print_feed(source))
        }
        Command::Ca {
            command: CaCommand::Init { dir, names, ips },
        } => {
            let written = ca_init::init(&dir, &names, &ips)?;
            let mut text = String::new();
            for file in &written.files {
                text.push_str(&format!("wrote {}\n", file.display()));
            }
            wg_driver::process::write_stdout(&text)
        }
        Command::Genkey => wg_driver::process::genkey(),
        Command::Pubkey => wg_driver::process::pubkey(),
    }
}

/// `feed`: follows the feed until SIGINT/SIGTERM, one line per applied message.
async fn print_feed(source: identity_feed::FeedSource) -> anyhow::Result<()> {
    let replica = identity_feed::load_cache(&source.cache)?;
    let shutdown = wg_driver::process::shutdown_signal()?;
    let follow = identity_feed::follow(source, replica, |update| {
        let at_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let at_ms = at_us / 1000;
        let line = format!(
            "{{\"revision\":{},\"kind\":\"{}\",\"devices\":{},\"at_ms\":{at_ms},\"at_us\":{at_us}}}\n",
            update.replica.revision(),
            identity_feed::applied_kind(&update.applied),
            update.replica.devices().count(),
        );
        if let Err(e) = wg_driver::process::write_stdout(&line) {
            tracing::debug!("{e:#}");
        }
    });
    tokio::select! {
        () = shutdown => Ok(()),
        _ = follow => Ok(()),
    }
}

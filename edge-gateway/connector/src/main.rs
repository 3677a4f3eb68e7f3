//! `gatehouse-connector`: runs next to origins, keeps tunnels to edges and dials origins for
//! their streams; `ingress validate` and `ingress rule` check a `config.yml` like cloudflared's.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use connector::commands::{self, Report};
use connector::{RunOptions, TunnelTransport};

#[derive(Parser)]
#[command(
    name = "gatehouse-connector",
    version,
    about = "Gatehouse connector: publishes origins to Gatehouse edges"
)]
struct Cli {
    /// The configuration file (cloudflared's config.yml format).
    #[arg(
        long,
        short,
        global = true,
        env = "GATEHOUSE_CONNECTOR_CONFIG",
        default_value = "config.yml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run in the foreground: SIGHUP reloads the configuration, SIGTERM/SIGINT drains (twice:
    /// exits at once).
    Run,
    /// Validate and test the ingress rules.
    Ingress {
        #[command(subcommand)]
        command: IngressCommand,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum IngressCommand {
    /// Check the configuration file: prints OK or every problem (exit status 1).
    Validate,
    /// Print which ingress rule matches a request URL.
    Rule {
        /// The request URL, e.g. https://app.example.com/api/users.
        url: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run => {
            init_logging();
            match run(cli.config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Ingress {
            command: IngressCommand::Validate,
        } => print(&commands::ingress_validate(&cli.config)),
        Command::Ingress {
            command: IngressCommand::Rule { url },
        } => print(&commands::ingress_rule(&cli.config, &url)),
        Command::Version => print(&Report {
            stdout: format!(
                "gatehouse-connector version {}\n",
                env!("CARGO_PKG_VERSION")
            ),
            stderr: String::new(),
            success: true,
        }),
    }
}

fn run(config_path: PathBuf) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the runtime")?
        .block_on(connector::run(
            RunOptions::new(config_path),
            TunnelTransport,
        ))
        .map(|_reason| ())
}

/// Writes a command's report; a closed stdout or stderr is not worth another error.
fn print(report: &Report) -> ExitCode {
    let _ = std::io::stdout().lock().write_all(report.stdout.as_bytes());
    let _ = std::io::stderr().lock().write_all(report.stderr.as_bytes());
    if report.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `GATEHOUSE_LOG` (tracing's filter syntax) or INFO, to stderr, colored only on a terminal.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

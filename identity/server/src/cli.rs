//! The command line: `serve`, `check`, `hash-password`, `admin …`.

use crate::config::{self, Overrides};
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use url::Url;

#[derive(Parser)]
#[command(
    name = "gatehouse-identity",
    version,
    about = "Gatehouse identity service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server in the foreground until SIGINT/SIGTERM.
    Serve(Box<ServeArgs>),
    /// Check a configuration file and print a summary.
    Check {
        #[arg(long, short, env = "GATEHOUSE_IDENTITY_CONFIG")]
        config: PathBuf,
    },
    /// Read a password on stdin and print its argon2id hash for a local users file.
    HashPassword,
    /// Administer a running server (users, devices, tokens, policies).
    Admin(crate::admin::AdminArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The configuration file (TOML).
    #[arg(
        long,
        short,
        env = "GATEHOUSE_IDENTITY_CONFIG",
        required_unless_present = "embedded"
    )]
    config: Option<PathBuf>,
    /// Self-contained demo mode: create (or reuse) a database, a local provider with two sample
    /// users and an admin token file in this directory, and listen on loopback.
    #[arg(long, conflicts_with = "config")]
    embedded: Option<PathBuf>,
    #[command(flatten)]
    overrides: OverrideArgs,
}

#[derive(clap::Args)]
struct OverrideArgs {
    /// Listen address (default: from the file, else 127.0.0.1:8080).
    #[arg(long, env = "GATEHOUSE_IDENTITY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Public base URL (default: from the file, else http://<listen>).
    #[arg(long, env = "GATEHOUSE_IDENTITY_PUBLIC_URL")]
    public_url: Option<Url>,
    /// SQLite database path.
    #[arg(long, env = "GATEHOUSE_IDENTITY_DATABASE")]
    database: Option<PathBuf>,
    /// File holding the admin token.
    #[arg(long, env = "GATEHOUSE_IDENTITY_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// The admin token itself (prefer the file: arguments are visible in `ps`).
    #[arg(long, env = "GATEHOUSE_IDENTITY_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

impl OverrideArgs {
    fn into_overrides(self) -> Overrides {
        Overrides {
            listen: self.listen,
            public_url: self.public_url,
            database: self.database,
            admin_token: self.admin_token.map(SecretString::from),
            admin_token_file: self.admin_token_file,
        }
    }
}

/// The binary's entry point: parses the command line, installs logging, runs the command.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the runtime")?;
    match cli.command {
        Command::Serve(args) => {
            let args = *args;
            let overrides = args.overrides.into_overrides();
            let config = match (args.config, args.embedded) {
                (Some(path), _) => config::load(&path, &overrides)?,
                (None, Some(dir)) => crate::embedded::prepare(&dir, &overrides)?,
                (None, None) => anyhow::bail!("give --config or --embedded"),
            };
            runtime.block_on(crate::serve(config))
        }
        Command::Check { config } => {
            let config = config::load(&config, &Overrides::default())?;
            let summary = format!(
                "ok: listen {}, public_url {}, {} providers, {} edges\n",
                config.listen,
                config.public_url,
                config.providers.len(),
                config.edges.len()
            );
            write_stdout(&summary)
        }
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("failed to read the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!("empty password");
            }
            let hash = crate::local_idp::users::hash_password(password)?;
            write_stdout(&format!("{hash}\n"))
        }
        Command::Admin(args) => runtime.block_on(crate::admin::cli(args)),
    }
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("failed to write to stdout")
}

//! What both binaries do the same way as processes: logging setup, stdout, shutdown signals,
//! and the `genkey` / `pubkey` verbs.

use anyhow::Context as _;
use std::io::{Read as _, Write as _};
use tokio::signal::unix::{signal, SignalKind};

/// Installs the global subscriber: `GATEHOUSE_LOG` (tracing's filter syntax) or INFO, to
/// stderr, colored only on a terminal. boringtun logs every handshake retry at WARN, so its
/// default level is ERROR.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,boringtun=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// Writes `text` to stdout and flushes.
///
/// # Errors
/// stdout is closed.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("failed to write to stdout")
}

/// `genkey`: prints a new private key (base64), like `wg genkey`.
///
/// # Errors
/// stdout is closed.
pub fn genkey() -> anyhow::Result<()> {
    write_stdout(&format!(
        "{}\n",
        crate::keygen::generate_private_key().to_base64()
    ))
}

/// `pubkey`: reads a private key on stdin and prints its public key, like `wg pubkey`.
///
/// # Errors
/// stdin is not a key, or stdout is closed.
pub fn pubkey() -> anyhow::Result<()> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("failed to read stdin")?;
    let key = wg::keys::PrivateKey::from_base64(&text).context("invalid private key")?;
    write_stdout(&format!("{}\n", key.public_key()))
}

/// Completes on the first SIGINT or SIGTERM.
///
/// # Errors
/// The signal handlers cannot be installed (outside a tokio runtime).
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut sigterm = signal(SignalKind::terminate()).context("failed to watch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("failed to watch SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
        }
    })
}

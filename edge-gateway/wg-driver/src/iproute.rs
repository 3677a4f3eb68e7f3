//! Interface addresses, routes and rules through iproute2's `ip`, as wg-quick does.

use anyhow::{bail, Context as _};
use std::process::Command;

/// Runs `ip <args>`; fails with ip's own message.
///
/// # Errors
/// `ip` is missing or reports an error.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .context("failed to run ip (is iproute2 installed?)")?;
    if !output.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `ip <args>` and ignores failure (for cleanup of things that may already be gone).
pub fn ip_quiet(args: &[&str]) {
    if let Err(e) = ip(args) {
        tracing::debug!("{e:#}");
    }
}

/// Adds an address in CIDR form to `interface`.
///
/// # Errors
/// See [`ip`].
pub fn add_address(interface: &str, cidr: &str) -> anyhow::Result<()> {
    let family = if cidr.contains(':') { "-6" } else { "-4" };
    ip(&[family, "address", "add", cidr, "dev", interface])
}

//! Whether this process may build network namespaces, and what a test does when it may not.

use std::process::Command;
use std::sync::OnceLock;

/// `Ok` when this process runs as root and `ip netns add` works; otherwise the reason.
///
/// The probe (add and delete a namespace) runs once per test binary.
///
/// # Errors
/// A human-readable reason: not root, `ip` missing, or `ip netns add` refused.
pub fn require_net_admin() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE.get_or_init(probe).clone()
}

/// Whether `CI` is set to `true` (or `1`), as CI runners do.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|value| value.eq_ignore_ascii_case("true") || value == "1")
        .unwrap_or(false)
}

/// The body of [`skip_unless_root!`](crate::skip_unless_root): `true` to go on with the test,
/// `false` (after printing why to stderr) to skip it.
///
/// # Panics
/// When the privilege is missing and [`in_ci`]: CI must never be green by skipping.
#[allow(clippy::print_stderr)] // The skip reason is for the person reading the test output.
pub fn privileged_or_skip() -> bool {
    match require_net_admin() {
        Ok(()) => true,
        Err(reason) if in_ci() => {
            panic!("needs CAP_NET_ADMIN (run as root), and CI=true forbids skipping: {reason}")
        }
        Err(reason) => {
            eprintln!("skipped: needs CAP_NET_ADMIN (run as root): {reason}");
            false
        }
    }
}

fn probe() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(format!("not root (euid {euid})"));
    }
    let name = format!("ghprobe-{}", crate::random_suffix(6));
    let output = Command::new("ip")
        .args(["netns", "add", &name])
        .output()
        .map_err(|err| format!("cannot run `ip`: {err} (install iproute2)"))?;
    if !output.status.success() {
        return Err(format!(
            "`ip netns add` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let deleted = Command::new("ip").args(["netns", "del", &name]).output();
    match deleted {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "`ip netns del` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(err) => Err(format!("cannot run `ip`: {err}")),
    }
}

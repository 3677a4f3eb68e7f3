//! Bounded polling: the harness never sleeps for a fixed time and hopes.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

/// Calls `condition` every `interval` until it returns `true` (then `true`) or `timeout` has
/// passed (then `false`). The condition is always evaluated at least once, and once more at the
/// deadline.
pub fn wait_until(
    timeout: Duration,
    interval: Duration,
    mut condition: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(interval.min(deadline - now));
    }
}

/// Waits until `path` exists.
///
/// # Errors
/// If it does not appear within `timeout`.
pub fn wait_for_file(path: &Path, timeout: Duration) -> anyhow::Result<()> {
    if wait_until(timeout, Duration::from_millis(20), || path.exists()) {
        return Ok(());
    }
    bail!("{} did not appear within {timeout:?}", path.display())
}

/// Waits until `path` exists and is a Unix socket (a UAPI or control socket).
///
/// # Errors
/// If no socket appears there within `timeout`.
pub fn wait_for_socket(path: &Path, timeout: Duration) -> anyhow::Result<()> {
    let is_socket = || {
        std::fs::metadata(path)
            .map(|meta| meta.file_type().is_socket())
            .unwrap_or(false)
    };
    if wait_until(timeout, Duration::from_millis(20), is_socket) {
        return Ok(());
    }
    bail!("no socket at {} within {timeout:?}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_true_once_condition_holds() {
        let mut calls = 0;
        let met = wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            calls == 3
        });
        assert!(met);
        assert_eq!(calls, 3);
    }

    #[test]
    fn wait_until_gives_up_after_timeout() {
        assert!(!wait_until(
            Duration::from_millis(30),
            Duration::from_millis(5),
            || false
        ));
    }
}

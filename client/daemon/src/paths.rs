//! Where the desktop client keeps its runtime files.

use std::path::PathBuf;

/// Runtime directory for pid files and the running configuration (root only, 0700).
pub const RUN_DIR: &str = "/var/run/gatehouse";

/// The pid file of the daemon serving `interface`.
pub fn pid_file(interface: &str) -> PathBuf {
    PathBuf::from(RUN_DIR).join(format!("{interface}.pid"))
}

/// The WireGuard UAPI socket of `interface` (the path `wg` uses).
pub fn uapi_socket(interface: &str) -> PathBuf {
    PathBuf::from("/var/run/wireguard").join(format!("{interface}.sock"))
}

/// The configuration the daemon serving `interface` runs (for `gatehouse export`).
pub fn running_config(interface: &str) -> PathBuf {
    PathBuf::from(RUN_DIR).join(format!("{interface}.conf"))
}

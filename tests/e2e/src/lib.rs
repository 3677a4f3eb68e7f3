//! `e2e`: the harness for end-to-end tests of the real Gatehouse binaries in Linux network
//! namespaces.
//!
//! What it is: RAII wrappers that build a throwaway topology per test and tear it down in `Drop`,
//! also when the test panics — [`Netns`] (a named network namespace), [`veth`] pairs between
//! them, [`Proc`] (a child process with its output in a log file), [`TestDir`] (a temporary
//! directory), [`WgGo`] (a stock `wireguard-go` peer to interoperate with) and small servers and
//! clients ([`HttpServer`], [`UdpEcho`], [`http_get`], [`udp_echo`]) to push traffic through a
//! tunnel; [`tunnel_world`] builds clients, edges and an origin for the real connector.
//!
//! What it is not: a simulation. Nothing here is deterministic or sans-IO; deterministic network
//! tests live in `tests/sim`. Timings are never assertions here either: waits are bounded polls.
//!
//! What drives it: `cargo test -p e2e` as root (CAP_NET_ADMIN is needed for `ip netns add`).
//! Every test starts with [`skip_unless_root!`], which skips the test without the privilege and
//! fails it instead when `CI=true`, so CI is never green by skipping. Tests run in parallel:
//! every namespace, interface and temporary directory carries a random suffix.
//!
//! The binaries under test are found by [`bin`]; build them first with
//! `cargo build --release --bins`.

pub mod browser;
pub mod connector;
pub mod gatehouse;
pub mod identity;
mod netns;
pub mod oidc;
mod privilege;
mod proc;
mod servers;
mod testdir;
pub mod tunnel_world;
mod wait;
mod wgdump;
mod wggo;
pub mod zero_trust;

use std::path::PathBuf;

use rand::distributions::{Distribution, Uniform};
use rand::RngCore;

pub use netns::{drop_randomly, netem, netem_supported, veth, Netns};
pub use privilege::{in_ci, privileged_or_skip, require_net_admin};
pub use proc::Proc;
pub use servers::{find_in_path, http_get, udp_echo, HttpServer, UdpEcho, MAX_UDP_ECHO_PAYLOAD};
pub use testdir::TestDir;
pub use wait::{wait_for_file, wait_for_socket, wait_until};
pub use wgdump::{parse_dump, DumpPeer};
pub use wggo::WgGo;

/// Returns from the calling test unless it can create network namespaces.
///
/// Without the privilege it prints `skipped: needs CAP_NET_ADMIN (run as root): <reason>` to
/// stderr and returns (`skip_unless_root!()` in a test returning `()`, or
/// `skip_unless_root!(Ok(()))` in one returning a `Result`). With `CI=true` it panics instead.
#[macro_export]
macro_rules! skip_unless_root {
    () => {
        if !$crate::privileged_or_skip() {
            return;
        }
    };
    ($ret:expr) => {
        if !$crate::privileged_or_skip() {
            return $ret;
        }
    };
}

/// The path of the workspace binary `name` (`gatehouse`, `gatehouse-edge`, …).
///
/// Looks in `$GATEHOUSE_BIN_DIR` if set, else in `<target>/release` if the binary is there, else
/// in `<target>/debug`, where `<target>` is `$CARGO_TARGET_DIR` or the workspace's `target`.
///
/// # Panics
/// If the binary is missing, with a message telling to run `cargo build --release --bins`.
pub fn bin(name: &str) -> PathBuf {
    let candidates: Vec<PathBuf> = match std::env::var_os("GATEHOUSE_BIN_DIR") {
        Some(dir) => vec![PathBuf::from(dir).join(name)],
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("target"));
            vec![
                target.join("release").join(name),
                target.join("debug").join(name),
            ]
        }
    };
    match candidates.iter().find(|path| path.is_file()) {
        Some(path) => path.clone(),
        None => panic!(
            "binary `{name}` not found (looked at {candidates:?}): run `cargo build --release \
             --bins` first, or set GATEHOUSE_BIN_DIR to the directory holding it"
        ),
    }
}

/// The workspace root: this crate lives in `<root>/tests/e2e`.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match manifest.parent().and_then(|tests| tests.parent()) {
        Some(root) => root.to_path_buf(),
        None => manifest,
    }
}

/// A fresh WireGuard key pair as `(private, public)`, both base64 as `wg` prints them.
pub fn keypair() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let private = wg::keys::PrivateKey::from_bytes(bytes);
    (private.to_base64(), private.public_key().to_base64())
}

/// `len` random characters from `[a-z0-9]`, for names that must not collide between parallel
/// tests (namespaces, interfaces, directories).
pub fn random_suffix(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let pick = Uniform::from(0..CHARS.len());
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(CHARS[pick.sample(&mut rng)]))
        .collect()
}

/// A unique interface name: `prefix` (at most 8 characters are kept) and 6 random characters,
/// so it stays within Linux's 15-character limit (`IFNAMSIZ` − 1).
pub fn ifname(prefix: &str) -> String {
    let prefix: String = prefix.chars().take(8).collect();
    format!("{prefix}{}", random_suffix(6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_fit_ifnamsiz() {
        assert_eq!(ifname("v").len(), 7);
        assert!(ifname("averylongprefix").len() <= 15);
    }

    #[test]
    fn keypair_public_matches_private() {
        let (private, public) = keypair();
        let parsed = wg::keys::PrivateKey::from_base64(&private).map(|k| k.public_key());
        assert_eq!(parsed.map(|k| k.to_base64()), Ok(public));
    }
}

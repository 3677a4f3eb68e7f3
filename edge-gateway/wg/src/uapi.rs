//! The WireGuard cross-platform userspace API (UAPI) text protocol, sans-IO.
//!
//! See <https://www.wireguard.com/xplatform/>. A driver reads one request from the
//! `/var/run/wireguard/<ifname>.sock` socket (everything up to the blank line), hands the text
//! to [`parse_request`], applies a [`SetRequest`] to its node or answers a `get=1` with
//! [`format_get`], and writes back the response followed by `errno=N` and a blank line.

use crate::keys::{PresharedKey, PrivateKey, PublicKey};
use ipnet::IpNet;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// One parsed UAPI request.
#[derive(Debug)]
pub enum Request {
    Get,
    Set(SetRequest),
}

/// A `set=1` request: device-level changes, then per-peer changes in order.
#[derive(Debug, Default)]
pub struct SetRequest {
    pub private_key: Option<Option<PrivateKey>>, // Some(None) = remove (all-zero key)
    pub listen_port: Option<u16>,
    pub fwmark: Option<Option<u32>>, // Some(None) = fwmark=0
    pub replace_peers: bool,
    pub peers: Vec<PeerUpdate>,
}

/// Changes to one peer, keyed by public key.
#[derive(Debug)]
pub struct PeerUpdate {
    pub public_key: PublicKey,
    pub remove: bool,
    pub update_only: bool,
    pub preshared_key: Option<Option<PresharedKey>>, // Some(None) = clear
    pub endpoint: Option<SocketAddr>,
    pub persistent_keepalive: Option<Option<u16>>, // Some(None) = 0 = off
    pub replace_allowed_ips: bool,
    pub allowed_ips: Vec<IpNet>,
}

/// What a `get=1` reports about a device.
#[derive(Debug)]
pub struct DeviceSnapshot {
    pub private_key: Option<PrivateKey>,
    pub listen_port: u16,
    pub fwmark: Option<u32>,
    pub peers: Vec<PeerSnapshot>,
}

/// What a `get=1` reports about a peer.
#[derive(Debug)]
pub struct PeerSnapshot {
    pub public_key: PublicKey,
    pub preshared_key: Option<PresharedKey>,
    pub endpoint: Option<SocketAddr>,
    pub persistent_keepalive: Option<u16>,
    pub allowed_ips: Vec<IpNet>,
    /// Time since the last completed handshake; the formatter turns it into an absolute time.
    pub since_last_handshake: Option<Duration>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Errors of a malformed request; [`UapiError::errno`] gives the value to report.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UapiError {
    #[error("request must start with get=1 or set=1")]
    UnknownOperation,
    #[error("line {line}: {reason}")]
    InvalidLine { line: usize, reason: String },
}

impl UapiError {
    /// The `errno=` value wireguard-go reports for this error (EINVAL for protocol errors).
    pub fn errno(&self) -> i32 {
        22
    }
}

/// Parses one request (the text up to, not including, the terminating blank line).
///
/// # Errors
/// [`UapiError`] for an unknown operation, an unknown key, or a value that does not parse.
pub fn parse_request(text: &str) -> Result<Request, UapiError> {
    let _ = text;
    todo!("implemented by the uapi task")
}

/// Formats the body of a `get=1` response (without the trailing `errno=0` line), with absolute
/// handshake times computed from `now_wall`.
pub fn format_get(device: &DeviceSnapshot, now_wall: SystemTime) -> String {
    let _ = (device, now_wall);
    todo!("implemented by the uapi task")
}

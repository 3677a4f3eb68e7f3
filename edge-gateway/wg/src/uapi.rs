//! The WireGuard cross-platform userspace API (UAPI) text protocol, sans-IO.
//!
//! See <https://www.wireguard.com/xplatform/>. A driver reads one request from the
//! `/var/run/wireguard/<ifname>.sock` socket (everything up to the blank line), hands the text
//! to [`parse_request`], applies a [`SetRequest`] to its node or answers a `get=1` with
//! [`format_get`], and writes back the response followed by `errno=N` and a blank line.
//!
//! Keys are lowercase hex on this protocol (base64 is only for humans and config files). The
//! parser is as strict as wireguard-go: unknown keys, device keys after the first `public_key`,
//! and flags other than `true` are errors, so a typo in `wg set` fails loudly instead of being
//! half-applied.

use crate::keys::{PresharedKey, PrivateKey, PublicKey};
use ipnet::IpNet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// One parsed UAPI request.
#[derive(Debug, Clone)]
pub enum Request {
    /// `get=1`: report the device with [`format_get`].
    Get,
    /// `set=1`: apply the changes in order.
    Set(SetRequest),
}

/// A `set=1` request: device-level changes, then per-peer changes in order.
///
/// `None` means "not mentioned, keep as is" throughout.
#[derive(Debug, Clone, Default)]
pub struct SetRequest {
    /// `Some(None)` removes the private key (an all-zero `private_key`).
    pub private_key: Option<Option<PrivateKey>>,
    /// `Some(0)` asks for a port chosen by the system.
    pub listen_port: Option<u16>,
    /// `Some(None)` removes the mark (`fwmark=0`).
    pub fwmark: Option<Option<u32>>,
    /// Remove every peer before applying [`SetRequest::peers`].
    pub replace_peers: bool,
    /// One entry per `public_key=` line, in request order; the same key may appear twice, and
    /// the entries are then applied one after the other.
    pub peers: Vec<PeerUpdate>,
}

/// Changes to one peer, keyed by public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUpdate {
    pub public_key: PublicKey,
    /// Remove the peer; the other fields are then meaningless.
    pub remove: bool,
    /// Only change an existing peer; never create it.
    pub update_only: bool,
    /// `Some(None)` clears the preshared key (an all-zero `preshared_key`).
    pub preshared_key: Option<Option<PresharedKey>>,
    pub endpoint: Option<SocketAddr>,
    /// Seconds; `Some(None)` turns persistent keepalive off (`persistent_keepalive_interval=0`).
    pub persistent_keepalive: Option<Option<u16>>,
    /// Drop the peer's allowed IPs before adding [`PeerUpdate::allowed_ips`].
    pub replace_allowed_ips: bool,
    /// Allowed IPs to add, with host bits cleared (`10.0.0.1/24` becomes `10.0.0.0/24`).
    pub allowed_ips: Vec<IpNet>,
}

/// What a `get=1` reports about a device.
#[derive(Debug, Clone, Default)]
pub struct DeviceSnapshot {
    pub private_key: Option<PrivateKey>,
    pub listen_port: u16,
    /// `None` or `Some(0)`: no mark, and no `fwmark` line.
    pub fwmark: Option<u32>,
    pub peers: Vec<PeerSnapshot>,
}

/// What a `get=1` reports about a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSnapshot {
    pub public_key: PublicKey,
    /// `None` or an all-zero key: no `preshared_key` line.
    pub preshared_key: Option<PresharedKey>,
    pub endpoint: Option<SocketAddr>,
    /// Seconds; `None` is reported as `0` (off).
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
    /// `line` counts from 1, the `get=1`/`set=1` line being line 1.
    #[error("line {line}: {kind}")]
    InvalidLine { line: usize, kind: LineError },
}

/// What is wrong with one line of a request.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum LineError {
    #[error("expected key=value")]
    NotKeyValue,
    #[error("get=1 takes no keys")]
    KeyAfterGet,
    /// The key as received, cut to [`MAX_ECHOED_KEY_CHARS`] characters.
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    #[error("device key {0} after the first public_key")]
    DeviceKeyAfterPeer(&'static str),
    #[error("invalid value for {0}")]
    InvalidValue(&'static str),
}

/// How much of an unknown key [`LineError::UnknownKey`] keeps: enough to spot a typo, little
/// enough that a hostile client cannot fill the logs.
pub const MAX_ECHOED_KEY_CHARS: usize = 32;

impl UapiError {
    /// The positive `errno` value wireguard-go reports for this error: `EPROTO` for a line that is
    /// not `key=value`, `EINVAL` for everything else. How it is written on the socket depends on
    /// the operation (`wg(8)` negates it after a set); that is the driver's business.
    pub fn errno(&self) -> i32 {
        match self {
            Self::InvalidLine {
                kind: LineError::NotKeyValue,
                ..
            } => EPROTO,
            Self::UnknownOperation
            | Self::InvalidLine {
                kind:
                    LineError::KeyAfterGet
                    | LineError::UnknownKey(_)
                    | LineError::DeviceKeyAfterPeer(_)
                    | LineError::InvalidValue(_),
                ..
            } => EINVAL,
        }
    }
}

impl PeerUpdate {
    /// An update that only names the peer (creating it if it does not exist).
    pub fn new(public_key: PublicKey) -> Self {
        Self {
            public_key,
            remove: false,
            update_only: false,
            preshared_key: None,
            endpoint: None,
            persistent_keepalive: None,
            replace_allowed_ips: false,
            allowed_ips: Vec::new(),
        }
    }
}

/// Parses one request: the text up to, not including, the terminating blank line (a trailing
/// `"\n"` or `"\n\n"` is accepted too).
///
/// # Errors
/// [`UapiError`] for an unknown operation, a line that is not `key=value`, an unknown or
/// misplaced key, or a value that does not parse.
pub fn parse_request(text: &str) -> Result<Request, UapiError> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let body = body.strip_suffix('\n').unwrap_or(body);
    let mut lines = body
        .split('\n')
        .enumerate()
        .map(|(index, line)| (index + 1, line));
    match lines.next() {
        Some((_, "get=1")) => match lines.next() {
            None => Ok(Request::Get),
            Some((line, _)) => Err(UapiError::InvalidLine {
                line,
                kind: LineError::KeyAfterGet,
            }),
        },
        Some((_, "set=1")) => parse_set(lines).map(Request::Set),
        _ => Err(UapiError::UnknownOperation),
    }
}

/// Formats the body of a `get=1` response (without the trailing `errno=0` line), with absolute
/// handshake times computed from `now_wall`.
///
/// The keys and their order are wireguard-go's, which `wg(8)` parses strictly: a value it
/// cannot read makes it reject the whole response.
pub fn format_get(device: &DeviceSnapshot, now_wall: SystemTime) -> String {
    let mut out = String::new();
    // `fmt::Write` for `String` never fails, so the `writeln!` results below carry no information.
    if let Some(key) = &device.private_key {
        let _ = writeln!(out, "private_key={}", key.to_hex());
    }
    let _ = writeln!(out, "listen_port={}", device.listen_port);
    if let Some(mark) = device.fwmark.filter(|mark| *mark != 0) {
        let _ = writeln!(out, "fwmark={mark}");
    }
    for peer in &device.peers {
        format_peer(&mut out, peer, now_wall);
    }
    out
}

/// `EINVAL`: 22 on Linux, Darwin, the BSDs and Windows alike.
const EINVAL: i32 = 22;

/// `EPROTO` differs by platform (Darwin `sys/errno.h` 100, FreeBSD 92, Windows CRT 134, Linux 71).
#[cfg(any(target_os = "macos", target_os = "ios"))]
const EPROTO: i32 = 100;
#[cfg(target_os = "freebsd")]
const EPROTO: i32 = 92;
#[cfg(windows)]
const EPROTO: i32 = 134;
#[cfg(not(any(target_os = "macos", target_os = "ios", target_os = "freebsd", windows)))]
const EPROTO: i32 = 71;

/// Keys that are only valid before the first `public_key`.
const DEVICE_KEYS: [&str; 4] = ["private_key", "listen_port", "fwmark", "replace_peers"];

fn parse_set<'a>(lines: impl Iterator<Item = (usize, &'a str)>) -> Result<SetRequest, UapiError> {
    let mut set = SetRequest::default();
    for (line, text) in lines {
        apply_line(&mut set, text).map_err(|kind| UapiError::InvalidLine { line, kind })?;
    }
    Ok(set)
}

fn apply_line(set: &mut SetRequest, line: &str) -> Result<(), LineError> {
    let (key, value) = line.split_once('=').ok_or(LineError::NotKeyValue)?;
    if key == "public_key" {
        let public_key = PublicKey::from_hex(hex_key(value, "public_key")?)
            .map_err(|_| LineError::InvalidValue("public_key"))?;
        set.peers.push(PeerUpdate::new(public_key));
        return Ok(());
    }
    match set.peers.last_mut() {
        Some(peer) => apply_peer_line(peer, key, value),
        None => apply_device_line(set, key, value),
    }
}

fn apply_device_line(set: &mut SetRequest, key: &str, value: &str) -> Result<(), LineError> {
    match key {
        "private_key" => {
            let hex = hex_key(value, "private_key")?;
            let private_key =
                PrivateKey::from_hex(hex).map_err(|_| LineError::InvalidValue("private_key"))?;
            let is_zero = hex.bytes().all(|digit| digit == b'0');
            set.private_key = Some((!is_zero).then_some(private_key));
        }
        "listen_port" => set.listen_port = Some(decimal(value, "listen_port")?),
        "fwmark" => {
            let mark: u32 = decimal(value, "fwmark")?;
            set.fwmark = Some((mark != 0).then_some(mark));
        }
        "replace_peers" => set.replace_peers = flag(value, "replace_peers")?,
        _ => return Err(unknown_key(key)),
    }
    Ok(())
}

fn apply_peer_line(peer: &mut PeerUpdate, key: &str, value: &str) -> Result<(), LineError> {
    match key {
        "remove" => peer.remove = flag(value, "remove")?,
        "update_only" => peer.update_only = flag(value, "update_only")?,
        "preshared_key" => {
            let key = PresharedKey::from_hex(hex_key(value, "preshared_key")?)
                .map_err(|_| LineError::InvalidValue("preshared_key"))?;
            peer.preshared_key = Some((!key.is_zero()).then_some(key));
        }
        "endpoint" => {
            let endpoint = value
                .parse()
                .map_err(|_| LineError::InvalidValue("endpoint"))?;
            peer.endpoint = Some(endpoint);
        }
        "persistent_keepalive_interval" => {
            let seconds: u16 = decimal(value, "persistent_keepalive_interval")?;
            peer.persistent_keepalive = Some((seconds != 0).then_some(seconds));
        }
        "replace_allowed_ips" => {
            // Lines apply in order, so this also drops the allowed IPs listed above it.
            peer.replace_allowed_ips = flag(value, "replace_allowed_ips")?;
            peer.allowed_ips.clear();
        }
        "allowed_ip" => {
            let net: IpNet = value
                .parse()
                .map_err(|_| LineError::InvalidValue("allowed_ip"))?;
            peer.allowed_ips.push(net.trunc());
        }
        "protocol_version" => {
            if value != "1" {
                return Err(LineError::InvalidValue("protocol_version"));
            }
        }
        _ => {
            return Err(
                match DEVICE_KEYS.iter().find(|device_key| **device_key == key) {
                    Some(device_key) => LineError::DeviceKeyAfterPeer(device_key),
                    None => unknown_key(key),
                },
            )
        }
    }
    Ok(())
}

/// Checks that `value` is exactly 64 hex digits: the key types trim whitespace, the protocol
/// does not.
fn hex_key<'a>(value: &'a str, key: &'static str) -> Result<&'a str, LineError> {
    if value.len() == 64 && value.bytes().all(|digit| digit.is_ascii_hexdigit()) {
        Ok(value)
    } else {
        Err(LineError::InvalidValue(key))
    }
}

/// Parses plain decimal digits; `FromStr` for integers would also take a leading `+`.
fn decimal<T: FromStr>(value: &str, key: &'static str) -> Result<T, LineError> {
    if value.is_empty() || !value.bytes().all(|digit| digit.is_ascii_digit()) {
        return Err(LineError::InvalidValue(key));
    }
    value.parse().map_err(|_| LineError::InvalidValue(key))
}

/// Flags have one valid value, `true`, as in wireguard-go.
fn flag(value: &str, key: &'static str) -> Result<bool, LineError> {
    if value == "true" {
        Ok(true)
    } else {
        Err(LineError::InvalidValue(key))
    }
}

fn unknown_key(key: &str) -> LineError {
    LineError::UnknownKey(key.chars().take(MAX_ECHOED_KEY_CHARS).collect())
}

fn format_peer(out: &mut String, peer: &PeerSnapshot, now_wall: SystemTime) {
    let _ = writeln!(out, "public_key={}", peer.public_key.to_hex());
    if let Some(key) = peer.preshared_key.as_ref().filter(|key| !key.is_zero()) {
        let _ = writeln!(out, "preshared_key={}", key.to_hex());
    }
    let _ = writeln!(out, "protocol_version=1");
    if let Some(endpoint) = peer.endpoint {
        // `SocketAddr` prints IPv6 in brackets (`[2001:db8::1]:51820`), as wg(8) expects.
        let _ = writeln!(out, "endpoint={endpoint}");
    }
    let handshake = peer
        .since_last_handshake
        .and_then(|since| now_wall.checked_sub(since))
        .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or(Duration::ZERO);
    let _ = writeln!(out, "last_handshake_time_sec={}", handshake.as_secs());
    let _ = writeln!(out, "last_handshake_time_nsec={}", handshake.subsec_nanos());
    let _ = writeln!(out, "tx_bytes={}", peer.tx_bytes);
    let _ = writeln!(out, "rx_bytes={}", peer.rx_bytes);
    let _ = writeln!(
        out,
        "persistent_keepalive_interval={}",
        peer.persistent_keepalive.unwrap_or(0)
    );
    for net in &peer.allowed_ips {
        let _ = writeln!(out, "allowed_ip={net}");
    }
}

#[cfg(test)]
#[cfg_attr(test, allow(clippy::unwrap_used))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PRIVATE_HEX: &str = "e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a";
    const PUBLIC_A_HEX: &str = "b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33";
    const PUBLIC_B_HEX: &str = "58147dd86a5e4a2d23ff25fed8d6f3e10f3a4d6a4c6e62bdf4e1fc1e3e8b1a08";
    const PSK_HEX: &str = "188515093e952f5f22e865cef3012e72f8b5f0b598ac0309d5dacce3b70fcf52";
    const ZERO_HEX: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn public(hex: &str) -> PublicKey {
        PublicKey::from_hex(hex).unwrap()
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    fn parse_set_ok(text: &str) -> SetRequest {
        match parse_request(text) {
            Ok(Request::Set(set)) => set,
            other => panic!("expected a set request, got {other:?}"),
        }
    }

    fn line_error(text: &str) -> (usize, LineError) {
        match parse_request(text) {
            Err(UapiError::InvalidLine { line, kind }) => (line, kind),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn get_parses_with_or_without_the_terminating_newlines() {
        for text in ["get=1", "get=1\n", "get=1\n\n"] {
            assert!(matches!(parse_request(text), Ok(Request::Get)), "{text:?}");
        }
    }

    #[test]
    fn setconf_request_parses_every_key() {
        // What `wg setconf` sends for a config with a private key, port, mark and two peers.
        let text = format!(
            "set=1\n\
             private_key={PRIVATE_HEX}\n\
             listen_port=51820\n\
             fwmark=4660\n\
             replace_peers=true\n\
             public_key={PUBLIC_A_HEX}\n\
             preshared_key={PSK_HEX}\n\
             endpoint=192.0.2.1:51820\n\
             persistent_keepalive_interval=25\n\
             replace_allowed_ips=true\n\
             allowed_ip=10.0.0.2/32\n\
             allowed_ip=fd00::2/128\n\
             public_key={PUBLIC_B_HEX}\n\
             protocol_version=1\n\
             endpoint=[2001:db8::1]:443\n\
             replace_allowed_ips=true\n\
             allowed_ip=0.0.0.0/0\n"
        );

        let set = parse_set_ok(&text);

        let private_key = set.private_key.clone().flatten().unwrap();
        assert_eq!(private_key.to_hex(), PRIVATE_HEX);
        assert_eq!(set.listen_port, Some(51820));
        assert_eq!(set.fwmark, Some(Some(4660)));
        assert!(set.replace_peers);
        let first = PeerUpdate {
            preshared_key: Some(Some(PresharedKey::from_hex(PSK_HEX).unwrap())),
            endpoint: Some("192.0.2.1:51820".parse().unwrap()),
            persistent_keepalive: Some(Some(25)),
            replace_allowed_ips: true,
            allowed_ips: vec![net("10.0.0.2/32"), net("fd00::2/128")],
            ..PeerUpdate::new(public(PUBLIC_A_HEX))
        };
        let second = PeerUpdate {
            endpoint: Some("[2001:db8::1]:443".parse().unwrap()),
            replace_allowed_ips: true,
            allowed_ips: vec![net("0.0.0.0/0")],
            ..PeerUpdate::new(public(PUBLIC_B_HEX))
        };
        assert_eq!(set.peers, vec![first, second]);
    }

    #[test]
    fn set_with_only_a_peer_leaves_the_device_untouched() {
        // `wg set wg0 peer <key> allowed-ips 10.0.0.2/32`.
        let set = parse_set_ok(&format!(
            "set=1\npublic_key={PUBLIC_A_HEX}\nreplace_allowed_ips=true\nallowed_ip=10.0.0.2/32\n"
        ));

        assert!(set.private_key.is_none());
        assert_eq!(set.listen_port, None);
        assert_eq!(set.fwmark, None);
        assert!(!set.replace_peers);
        assert_eq!(set.peers.len(), 1);
    }

    #[test]
    fn peer_flags_parse() {
        // `wg set wg0 peer <key> remove`, and an update-only peer.
        let set = parse_set_ok(&format!(
            "set=1\npublic_key={PUBLIC_A_HEX}\nremove=true\n\
             public_key={PUBLIC_B_HEX}\nupdate_only=true\n"
        ));

        assert!(set.peers[0].remove && !set.peers[0].update_only);
        assert!(set.peers[1].update_only && !set.peers[1].remove);
    }

    #[test]
    fn zero_values_mean_remove_or_off() {
        let set = parse_set_ok(&format!(
            "set=1\nprivate_key={ZERO_HEX}\nfwmark=0\nlisten_port=0\n\
             public_key={PUBLIC_A_HEX}\npreshared_key={ZERO_HEX}\npersistent_keepalive_interval=0\n"
        ));

        assert!(matches!(set.private_key, Some(None)));
        assert_eq!(set.fwmark, Some(None));
        assert_eq!(set.listen_port, Some(0));
        assert_eq!(set.peers[0].preshared_key, Some(None));
        assert_eq!(set.peers[0].persistent_keepalive, Some(None));
    }

    #[test]
    fn replace_allowed_ips_drops_the_allowed_ips_above_it() {
        let set = parse_set_ok(&format!(
            "set=1\npublic_key={PUBLIC_A_HEX}\nallowed_ip=10.0.0.1/32\n\
             replace_allowed_ips=true\nallowed_ip=10.0.0.2/32\n"
        ));

        assert!(set.peers[0].replace_allowed_ips);
        assert_eq!(set.peers[0].allowed_ips, vec![net("10.0.0.2/32")]);
    }

    #[test]
    fn allowed_ips_lose_their_host_bits_and_endpoints_keep_their_scope() {
        let set = parse_set_ok(&format!(
            "set=1\npublic_key={PUBLIC_A_HEX}\nallowed_ip=10.1.2.3/16\nendpoint=[fe80::1%3]:51820\n"
        ));

        assert_eq!(set.peers[0].allowed_ips, vec![net("10.1.0.0/16")]);
        let endpoint = set.peers[0].endpoint.unwrap();
        assert_eq!(endpoint.to_string(), "[fe80::1%3]:51820");
    }

    #[test]
    fn uppercase_hex_keys_are_accepted() {
        let set = parse_set_ok(&format!(
            "set=1\npublic_key={}\n",
            PUBLIC_A_HEX.to_uppercase()
        ));

        assert_eq!(set.peers[0].public_key, public(PUBLIC_A_HEX));
    }

    #[test]
    fn unknown_operations_are_rejected() {
        for text in [
            "",
            "\n",
            "get=2\n",
            "GET=1\n",
            "set=1 \n",
            "listen_port=1\n",
        ] {
            assert_eq!(
                parse_request(text).unwrap_err(),
                UapiError::UnknownOperation,
                "{text:?}"
            );
        }
        assert_eq!(UapiError::UnknownOperation.errno(), EINVAL);
    }

    #[test]
    fn get_with_keys_is_rejected() {
        assert_eq!(
            line_error("get=1\nlisten_port=1\n"),
            (2, LineError::KeyAfterGet)
        );
    }

    #[test]
    fn lines_without_equals_are_protocol_errors() {
        let error = parse_request("set=1\nlisten_port=1\nlisten_port\n").unwrap_err();

        assert_eq!(
            error,
            UapiError::InvalidLine {
                line: 3,
                kind: LineError::NotKeyValue
            }
        );
        assert_eq!(error.errno(), EPROTO);
        assert_eq!(error.to_string(), "line 3: expected key=value");
        // A blank line inside the text is not key=value either.
        assert_eq!(
            line_error("set=1\n\nlisten_port=1\n"),
            (2, LineError::NotKeyValue)
        );
    }

    #[test]
    fn unknown_keys_are_rejected_and_echoed_short() {
        assert_eq!(
            line_error("set=1\nlisten-port=1\n"),
            (2, LineError::UnknownKey("listen-port".into()))
        );
        let long = "k".repeat(1000);
        let (_, kind) = line_error(&format!("set=1\npublic_key={PUBLIC_A_HEX}\n{long}=1\n"));
        assert_eq!(
            kind,
            LineError::UnknownKey("k".repeat(MAX_ECHOED_KEY_CHARS))
        );
        // Peer keys are unknown at device level.
        assert_eq!(
            line_error("set=1\nendpoint=192.0.2.1:1\n"),
            (2, LineError::UnknownKey("endpoint".into()))
        );
        // Read-only keys of the get output are not settable.
        assert_eq!(
            line_error(&format!("set=1\npublic_key={PUBLIC_A_HEX}\nrx_bytes=1\n")),
            (3, LineError::UnknownKey("rx_bytes".into()))
        );
    }

    #[test]
    fn device_keys_after_a_peer_are_rejected() {
        for key in DEVICE_KEYS {
            let text = format!("set=1\npublic_key={PUBLIC_A_HEX}\n{key}=1\n");
            assert_eq!(
                line_error(&text),
                (3, LineError::DeviceKeyAfterPeer(key)),
                "{key}"
            );
        }
    }

    #[test]
    fn invalid_values_are_rejected() {
        let peer = format!("public_key={PUBLIC_A_HEX}\n");
        let cases = [
            ("private_key=abcd", "private_key"),
            (
                &format!("private_key= {}", &PRIVATE_HEX[1..]),
                "private_key",
            ),
            (
                &format!("private_key={}zz", &PRIVATE_HEX[2..]),
                "private_key",
            ),
            ("listen_port=65536", "listen_port"),
            ("listen_port=+1", "listen_port"),
            ("listen_port=", "listen_port"),
            ("listen_port=-1", "listen_port"),
            ("fwmark=4294967296", "fwmark"),
            ("fwmark=0x10", "fwmark"),
            ("replace_peers=false", "replace_peers"),
            ("replace_peers=1", "replace_peers"),
            ("public_key=", "public_key"),
            (&format!("public_key={PUBLIC_A_HEX}0"), "public_key"),
            (&format!("{peer}remove=false"), "remove"),
            (&format!("{peer}update_only=yes"), "update_only"),
            (&format!("{peer}preshared_key=00"), "preshared_key"),
            (&format!("{peer}endpoint=vpn.example.com:51820"), "endpoint"),
            (&format!("{peer}endpoint=192.0.2.1"), "endpoint"),
            (&format!("{peer}endpoint=::1:51820"), "endpoint"),
            (&format!("{peer}endpoint=192.0.2.1:65536"), "endpoint"),
            (
                &format!("{peer}persistent_keepalive_interval=65536"),
                "persistent_keepalive_interval",
            ),
            (
                &format!("{peer}replace_allowed_ips=TRUE"),
                "replace_allowed_ips",
            ),
            (&format!("{peer}allowed_ip=10.0.0.0/33"), "allowed_ip"),
            (&format!("{peer}allowed_ip=10.0.0.1"), "allowed_ip"),
            (&format!("{peer}allowed_ip=fd00::/129"), "allowed_ip"),
            (&format!("{peer}protocol_version=2"), "protocol_version"),
        ];
        for (lines, key) in cases {
            let error = parse_request(&format!("set=1\n{lines}\n")).unwrap_err();
            let UapiError::InvalidLine { kind, .. } = &error else {
                panic!("{lines:?}: expected a line error, got {error:?}");
            };
            assert_eq!(kind, &LineError::InvalidValue(key), "{lines:?}");
            assert_eq!(error.errno(), EINVAL, "{lines:?}");
        }
    }

    #[test]
    fn get_output_matches_wireguard_go() {
        let now_wall = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 250_000_000);
        let device = DeviceSnapshot {
            private_key: Some(PrivateKey::from_hex(PRIVATE_HEX).unwrap()),
            listen_port: 51820,
            fwmark: Some(4660),
            peers: vec![
                PeerSnapshot {
                    public_key: public(PUBLIC_A_HEX),
                    preshared_key: Some(PresharedKey::from_hex(PSK_HEX).unwrap()),
                    endpoint: Some("[2001:db8::1]:443".parse().unwrap()),
                    persistent_keepalive: Some(25),
                    allowed_ips: vec![net("10.0.0.2/32"), net("fd00::/64")],
                    // 1_700_000_000.25 - 5.5 = 1_699_999_994.75
                    since_last_handshake: Some(Duration::from_millis(5_500)),
                    rx_bytes: 1024,
                    tx_bytes: 2048,
                },
                PeerSnapshot {
                    public_key: public(PUBLIC_B_HEX),
                    preshared_key: Some(PresharedKey::from_bytes([0; 32])),
                    endpoint: None,
                    persistent_keepalive: None,
                    allowed_ips: vec![],
                    since_last_handshake: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                },
            ],
        };

        let text = format_get(&device, now_wall);

        let expected = format!(
            "private_key={PRIVATE_HEX}\n\
             listen_port=51820\n\
             fwmark=4660\n\
             public_key={PUBLIC_A_HEX}\n\
             preshared_key={PSK_HEX}\n\
             protocol_version=1\n\
             endpoint=[2001:db8::1]:443\n\
             last_handshake_time_sec=1699999994\n\
             last_handshake_time_nsec=750000000\n\
             tx_bytes=2048\n\
             rx_bytes=1024\n\
             persistent_keepalive_interval=25\n\
             allowed_ip=10.0.0.2/32\n\
             allowed_ip=fd00::/64\n\
             public_key={PUBLIC_B_HEX}\n\
             protocol_version=1\n\
             last_handshake_time_sec=0\n\
             last_handshake_time_nsec=0\n\
             tx_bytes=0\n\
             rx_bytes=0\n\
             persistent_keepalive_interval=0\n"
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn get_output_of_an_unconfigured_device_has_only_the_port() {
        let text = format_get(
            &DeviceSnapshot {
                fwmark: Some(0),
                ..DeviceSnapshot::default()
            },
            SystemTime::UNIX_EPOCH,
        );

        assert_eq!(text, "listen_port=0\n");
    }

    #[test]
    fn handshake_older_than_the_epoch_reports_never() {
        let device = DeviceSnapshot {
            peers: vec![PeerSnapshot {
                since_last_handshake: Some(Duration::from_secs(10)),
                ..peer_snapshot(public(PUBLIC_A_HEX))
            }],
            ..DeviceSnapshot::default()
        };

        let text = format_get(&device, SystemTime::UNIX_EPOCH + Duration::from_secs(5));

        assert!(text.contains("last_handshake_time_sec=0\nlast_handshake_time_nsec=0\n"));
    }

    fn peer_snapshot(public_key: PublicKey) -> PeerSnapshot {
        PeerSnapshot {
            public_key,
            preshared_key: None,
            endpoint: None,
            persistent_keepalive: None,
            allowed_ips: vec![],
            since_last_handshake: None,
            rx_bytes: 0,
            tx_bytes: 0,
        }
    }

    // Deeper generators and the get-to-set round trip live in `tests/uapi.rs`.
    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_text(text in "\\PC*(\n\\PC*){0,8}") {
            let _ = parse_request(&text);
        }
    }
}

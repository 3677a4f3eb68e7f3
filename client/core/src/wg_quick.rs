//! wg-quick configuration files: [`parse`] and [`to_string`].
//!
//! The syntax follows wg-quick(8) and wg(8): one `[Interface]` section, zero or more `[Peer]`
//! sections, `Key = Value` lines with case-insensitive keys, `#` comments to the end of the line,
//! and comma-separated lists that accumulate over repeated lines. The parser is strict where
//! wg-quick would silently do something surprising: unknown keys, duplicate single-valued keys,
//! duplicate or low-order peer keys are errors. `PreUp`/`PostUp`/`PreDown`/`PostDown` commands are
//! kept verbatim for re-export; this crate never executes them. Errors carry a line number and
//! never print key material.

use ipnet::IpNet;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use wg::keys::{KeyError, PresharedKey, PrivateKey, PublicKey};

mod parser;

use parser::{is_host, is_token, looks_like_ip};

/// A whole wg-quick file.
#[derive(Debug, Clone)]
pub struct WgQuickConfig {
    /// The `[Interface]` section.
    pub interface: InterfaceSection,
    /// The `[Peer]` sections, in file order.
    pub peers: Vec<PeerSection>,
}

/// The `[Interface]` section. `Debug` redacts the private key.
#[derive(Debug, Clone)]
pub struct InterfaceSection {
    /// `PrivateKey`.
    pub private_key: PrivateKey,
    /// `Address`: interface addresses with their prefix (`10.0.0.2` reads as `10.0.0.2/32`).
    pub addresses: Vec<IpNet>,
    /// `ListenPort`; `None` lets the OS choose.
    pub listen_port: Option<u16>,
    /// `DNS`: resolvers and search domains, in file order.
    pub dns: Vec<DnsEntry>,
    /// `MTU`; `None` lets the driver choose.
    pub mtu: Option<u16>,
    /// `FwMark`; `off` and `0` read as `None`.
    pub fwmark: Option<u32>,
    /// `Table`: `off`, `auto`, a routing table number or name, kept as written.
    pub table: Option<String>,
    /// `PreUp` shell commands, verbatim and never executed here.
    pub pre_up: Vec<String>,
    /// `PostUp` shell commands, verbatim and never executed here.
    pub post_up: Vec<String>,
    /// `PreDown` shell commands, verbatim and never executed here.
    pub pre_down: Vec<String>,
    /// `PostDown` shell commands, verbatim and never executed here.
    pub post_down: Vec<String>,
}

impl InterfaceSection {
    /// An interface with a key and addresses and nothing else set (no port, DNS, MTU, mark,
    /// table or hooks).
    pub fn new(private_key: PrivateKey, addresses: Vec<IpNet>) -> Self {
        Self {
            private_key,
            addresses,
            listen_port: None,
            dns: Vec::new(),
            mtu: None,
            fwmark: None,
            table: None,
            pre_up: Vec::new(),
            post_up: Vec::new(),
            pre_down: Vec::new(),
            post_down: Vec::new(),
        }
    }
}

/// One `[Peer]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSection {
    /// `PublicKey`: the peer's identity, unique within a file and never a low-order point.
    pub public_key: PublicKey,
    /// `PresharedKey`; the all-zero key reads as `None`, as in wg(8).
    pub preshared_key: Option<PresharedKey>,
    /// `AllowedIPs`, as written (host bits are kept).
    pub allowed_ips: Vec<IpNet>,
    /// `Endpoint`.
    pub endpoint: Option<Endpoint>,
    /// `PersistentKeepalive` in seconds; `off` and `0` read as `None`.
    pub persistent_keepalive: Option<u16>,
}

/// One item of a `DNS` line. wg-quick treats items that look like IP addresses as resolvers
/// and everything else as search domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsEntry {
    /// A resolver address.
    Server(IpAddr),
    /// A search domain.
    SearchDomain(String),
}

/// A peer's `Endpoint`. Resolving a hostname is the driver's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// An address literal: `192.0.2.1:51820` or `[2001:db8::1]:51820`.
    Addr(SocketAddr),
    /// A DNS name and port: `edge.example.com:51820`.
    Host {
        /// The DNS name, without brackets.
        host: String,
        /// The UDP port.
        port: u16,
    },
}

/// A parse error: where it is and what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct WgQuickError {
    /// 1-based line number. File-level problems (no `[Interface]`) point at the last line,
    /// missing keys at their section header.
    pub line: usize,
    /// What is wrong.
    pub kind: WgQuickErrorKind,
}

/// What is wrong with a wg-quick file. Messages never include values, which may be keys.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WgQuickErrorKind {
    /// A line that is neither blank, a comment, a section header, nor `key = value`.
    #[error("expected `key = value` or a section header")]
    Malformed,
    /// A section other than `[Interface]` and `[Peer]`. The name is kept only if it is short
    /// and alphanumeric, so a pasted key never ends up in a message.
    #[error("unknown section{}", Name(.name))]
    UnknownSection { name: Option<String> },
    /// A `key = value` line before the first section header.
    #[error("key outside of a section")]
    KeyOutsideSection,
    /// A key wg-quick does not know in this section (the name as for `UnknownSection`).
    #[error("unknown key{} in {section}", Name(.name))]
    UnknownKey {
        name: Option<String>,
        section: Section,
    },
    /// A single-valued key given twice in one section.
    #[error("duplicate {key} in {section}")]
    DuplicateKey { key: &'static str, section: Section },
    /// A second `[Interface]` section.
    #[error("second [Interface] section, the first is on line {first_line}")]
    DuplicateInterface { first_line: usize },
    /// No `[Interface]` section at all.
    #[error("missing [Interface] section")]
    MissingInterface,
    /// An `[Interface]` without `PrivateKey`.
    #[error("missing PrivateKey in [Interface]")]
    MissingPrivateKey,
    /// A `[Peer]` without `PublicKey`.
    #[error("missing PublicKey in [Peer]")]
    MissingPublicKey,
    /// A key that does not decode, or a low-order peer public key.
    #[error("invalid {key}")]
    InvalidKey {
        key: &'static str,
        #[source]
        source: KeyError,
    },
    /// A peer whose public key is the interface's own.
    #[error("peer PublicKey is the interface's own public key")]
    OwnPublicKey,
    /// Two peers with the same public key.
    #[error("duplicate peer PublicKey, first used on line {first_line}")]
    DuplicatePeer { first_line: usize },
    /// A value that does not parse: a number, address, endpoint or name.
    #[error("invalid {key}, expected {expected}")]
    InvalidValue {
        key: &'static str,
        expected: &'static str,
    },
}

/// A section of a wg-quick file, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `[Interface]`.
    Interface,
    /// `[Peer]`.
    Peer,
}

/// A value that wg-quick syntax cannot carry: it holds a line break or `#`, or a list item holds
/// a separator, so writing it would change its meaning or inject lines.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field} value cannot be written in wg-quick syntax")]
pub struct EmitError {
    /// The wg-quick key whose value is at fault.
    pub field: &'static str,
}

/// Parses a wg-quick file.
///
/// # Errors
/// The first problem found, with its line; see [`WgQuickErrorKind`].
pub fn parse(text: &str) -> Result<WgQuickConfig, WgQuickError> {
    parser::parse(text)
}

/// Writes `config` as a canonical wg-quick file that [`parse`] reads back to an equal config
/// and stock wg-quick accepts. Values meaning "off" (a zero keepalive, fwmark or preshared key)
/// are left out. The output contains the private key: never log it.
///
/// # Errors
/// [`EmitError`] if a string value cannot be represented (see its docs).
pub fn to_string(config: &WgQuickConfig) -> Result<String, EmitError> {
    let mut out = String::new();
    write_interface(&mut out, &config.interface)?;
    for peer in &config.peers {
        write_peer(&mut out, peer)?;
    }
    Ok(out)
}

impl fmt::Display for WgQuickError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

impl std::error::Error for WgQuickError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The kind is part of this error's message; its own source comes next in the chain.
        std::error::Error::source(&self.kind)
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Interface => "[Interface]",
            Section::Peer => "[Peer]",
        })
    }
}

/// Formats an optional name from the file as ` "Name"`, or nothing.
struct Name<'a>(&'a Option<String>);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, " \"{name}\""),
            None => Ok(()),
        }
    }
}

fn write_interface(out: &mut String, iface: &InterfaceSection) -> Result<(), EmitError> {
    out.push_str("[Interface]\n");
    line(out, "PrivateKey", iface.private_key.to_base64());
    if !iface.addresses.is_empty() {
        line(out, "Address", join(&iface.addresses));
    }
    if let Some(port) = iface.listen_port {
        line(out, "ListenPort", port);
    }
    if let Some(mark) = iface.fwmark.filter(|&mark| mark != 0) {
        line(out, "FwMark", format_args!("{mark:#x}"));
    }
    if !iface.dns.is_empty() {
        let mut items = Vec::with_capacity(iface.dns.len());
        for entry in &iface.dns {
            items.push(match entry {
                DnsEntry::Server(addr) => addr.to_string(),
                DnsEntry::SearchDomain(domain) if is_token(domain) && !looks_like_ip(domain) => {
                    domain.clone()
                }
                DnsEntry::SearchDomain(_) => return Err(EmitError { field: "DNS" }),
            });
        }
        line(out, "DNS", items.join(", "));
    }
    if let Some(mtu) = iface.mtu {
        line(out, "MTU", mtu);
    }
    if let Some(table) = &iface.table {
        check(is_token(table), "Table")?;
        line(out, "Table", table);
    }
    let hooks = [
        ("PreUp", &iface.pre_up),
        ("PostUp", &iface.post_up),
        ("PreDown", &iface.pre_down),
        ("PostDown", &iface.post_down),
    ];
    for (key, commands) in hooks {
        for command in commands {
            check(!command.contains(['\n', '#']), key)?;
            line(out, key, command);
        }
    }
    Ok(())
}

fn write_peer(out: &mut String, peer: &PeerSection) -> Result<(), EmitError> {
    out.push_str("\n[Peer]\n");
    line(out, "PublicKey", peer.public_key.to_base64());
    if let Some(psk) = peer.preshared_key.as_ref().filter(|psk| !psk.is_zero()) {
        line(out, "PresharedKey", psk.to_base64());
    }
    if !peer.allowed_ips.is_empty() {
        line(out, "AllowedIPs", join(&peer.allowed_ips));
    }
    match &peer.endpoint {
        Some(Endpoint::Addr(addr)) => line(out, "Endpoint", addr),
        Some(Endpoint::Host { host, port }) => {
            check(is_host(host), "Endpoint")?;
            line(out, "Endpoint", format_args!("{host}:{port}"));
        }
        None => {}
    }
    if let Some(seconds) = peer.persistent_keepalive.filter(|&s| s != 0) {
        line(out, "PersistentKeepalive", seconds);
    }
    Ok(())
}

fn line(out: &mut String, key: &str, value: impl fmt::Display) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{key} = {value}");
}

fn join(nets: &[IpNet]) -> String {
    let items: Vec<String> = nets.iter().map(IpNet::to_string).collect();
    items.join(", ")
}

fn check(representable: bool, field: &'static str) -> Result<(), EmitError> {
    if representable {
        Ok(())
    } else {
        Err(EmitError { field })
    }
}

//! The wg-quick line parser and the value rules [`super::to_string`] shares with it.

use super::{DnsEntry, Endpoint, InterfaceSection, PeerSection, Section, WgQuickConfig};
use super::{WgQuickError, WgQuickErrorKind};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use wg::keys::{KeyError, PresharedKey, PrivateKey, PublicKey};

/// Parses a whole file; see [`super::parse`].
pub(super) fn parse(text: &str) -> Result<WgQuickConfig, WgQuickError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser::default();
    let mut last_line = 1;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        last_line = line;
        parser
            .line(raw, line)
            .map_err(|kind| WgQuickError { line, kind })?;
    }
    parser.finish(last_line)
}

/// Longer than any wg-quick key, shorter than a base64 key, so names in errors are not keys.
const MAX_SHOWN_NAME: usize = 20;

fn shown_name(name: &str) -> Option<String> {
    let plain = name.chars().all(|c| c.is_ascii_alphanumeric());
    (plain && !name.is_empty() && name.len() <= MAX_SHOWN_NAME).then(|| name.to_owned())
}

#[derive(Default)]
struct Parser {
    interface: Option<InterfaceDraft>,
    peers: Vec<PeerDraft>,
    current: Option<Section>,
}

#[derive(Default)]
struct InterfaceDraft {
    header_line: usize,
    seen: BTreeSet<&'static str>,
    private_key: Option<PrivateKey>,
    addresses: Vec<IpNet>,
    listen_port: Option<u16>,
    dns: Vec<DnsEntry>,
    mtu: Option<u16>,
    fwmark: Option<u32>,
    table: Option<String>,
    pre_up: Vec<String>,
    post_up: Vec<String>,
    pre_down: Vec<String>,
    post_down: Vec<String>,
}

#[derive(Default)]
struct PeerDraft {
    header_line: usize,
    seen: BTreeSet<&'static str>,
    public_key: Option<(PublicKey, usize)>,
    preshared_key: Option<PresharedKey>,
    allowed_ips: Vec<IpNet>,
    endpoint: Option<Endpoint>,
    persistent_keepalive: Option<u16>,
}

impl Parser {
    fn line(&mut self, raw: &str, line: usize) -> Result<(), WgQuickErrorKind> {
        let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if content.is_empty() {
            return Ok(());
        }
        if let Some(inner) = content.strip_prefix('[') {
            let name = inner.strip_suffix(']').ok_or(WgQuickErrorKind::Malformed)?;
            return self.header(name.trim(), line);
        }
        let (key, value) = content.split_once('=').ok_or(WgQuickErrorKind::Malformed)?;
        let (key, value) = (key.trim(), value.trim());
        let lower = key.to_ascii_lowercase();
        match self.current {
            None => Err(WgQuickErrorKind::KeyOutsideSection),
            Some(section) => {
                let known = match (section, self.interface.as_mut(), self.peers.last_mut()) {
                    (Section::Interface, Some(iface), _) => iface.apply(&lower, value)?,
                    (Section::Peer, _, Some(peer)) => peer.apply(&lower, value, line)?,
                    // `current` is set together with the draft it names.
                    (Section::Interface, None, _) | (Section::Peer, _, None) => false,
                };
                if known {
                    return Ok(());
                }
                let name = shown_name(key);
                Err(WgQuickErrorKind::UnknownKey { name, section })
            }
        }
    }

    fn header(&mut self, name: &str, line: usize) -> Result<(), WgQuickErrorKind> {
        if name.eq_ignore_ascii_case("interface") {
            if let Some(first) = &self.interface {
                let first_line = first.header_line;
                return Err(WgQuickErrorKind::DuplicateInterface { first_line });
            }
            self.interface = Some(InterfaceDraft {
                header_line: line,
                ..InterfaceDraft::default()
            });
            self.current = Some(Section::Interface);
            Ok(())
        } else if name.eq_ignore_ascii_case("peer") {
            self.peers.push(PeerDraft {
                header_line: line,
                ..PeerDraft::default()
            });
            self.current = Some(Section::Peer);
            Ok(())
        } else {
            let name = shown_name(name);
            Err(WgQuickErrorKind::UnknownSection { name })
        }
    }

    fn finish(self, last_line: usize) -> Result<WgQuickConfig, WgQuickError> {
        let at = |line: usize| move |kind| WgQuickError { line, kind };
        let draft = self
            .interface
            .ok_or(WgQuickErrorKind::MissingInterface)
            .map_err(at(last_line))?;
        let header_line = draft.header_line;
        let interface = draft.finish().map_err(at(header_line))?;
        let own_key = interface.private_key.public_key();
        let mut first_use: BTreeMap<PublicKey, usize> = BTreeMap::new();
        let mut peers = Vec::with_capacity(self.peers.len());
        for draft in self.peers {
            let Some((public_key, key_line)) = draft.public_key else {
                return Err(at(draft.header_line)(WgQuickErrorKind::MissingPublicKey));
            };
            let check = if public_key == own_key {
                Err(WgQuickErrorKind::OwnPublicKey)
            } else if let Some(&first_line) = first_use.get(&public_key) {
                Err(WgQuickErrorKind::DuplicatePeer { first_line })
            } else {
                let check = interface.private_key.check_peer(&public_key);
                check.map_err(|source| invalid_key("PublicKey", source))
            };
            check.map_err(at(key_line))?;
            first_use.insert(public_key, key_line);
            peers.push(PeerSection {
                public_key,
                preshared_key: draft.preshared_key,
                allowed_ips: draft.allowed_ips,
                endpoint: draft.endpoint,
                persistent_keepalive: draft.persistent_keepalive,
            });
        }
        Ok(WgQuickConfig { interface, peers })
    }
}

impl InterfaceDraft {
    /// Applies one `key = value` line; `Ok(false)` for an unknown key.
    fn apply(&mut self, key: &str, value: &str) -> Result<bool, WgQuickErrorKind> {
        match key {
            "privatekey" => {
                self.once("PrivateKey")?;
                let key = PrivateKey::from_base64(value);
                self.private_key = Some(key.map_err(|source| invalid_key("PrivateKey", source))?);
            }
            "listenport" => {
                self.once("ListenPort")?;
                self.listen_port = Some(parse_number("ListenPort", value)?);
            }
            "fwmark" => {
                self.once("FwMark")?;
                self.fwmark = parse_fwmark(value)?;
            }
            "address" => {
                for item in split_list(value, true) {
                    self.addresses.push(parse_net("Address", item)?);
                }
            }
            "dns" => {
                for item in split_list(value, true) {
                    self.dns.push(parse_dns(item)?);
                }
            }
            "mtu" => {
                self.once("MTU")?;
                self.mtu = Some(parse_number("MTU", value)?);
            }
            "table" => {
                self.once("Table")?;
                let expected = "off, auto, or a table number or name";
                self.table = Some(parse_token("Table", value, expected)?.to_owned());
            }
            "preup" => self.pre_up.push(value.to_owned()),
            "postup" => self.post_up.push(value.to_owned()),
            "predown" => self.pre_down.push(value.to_owned()),
            "postdown" => self.post_down.push(value.to_owned()),
            "saveconfig" => {
                self.once("SaveConfig")?;
                if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                    let expected = "true or false";
                    return Err(WgQuickErrorKind::InvalidValue {
                        key: "SaveConfig",
                        expected,
                    });
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn once(&mut self, key: &'static str) -> Result<(), WgQuickErrorKind> {
        once(&mut self.seen, key, Section::Interface)
    }

    fn finish(self) -> Result<InterfaceSection, WgQuickErrorKind> {
        let private_key = self
            .private_key
            .ok_or(WgQuickErrorKind::MissingPrivateKey)?;
        Ok(InterfaceSection {
            private_key,
            addresses: self.addresses,
            listen_port: self.listen_port,
            dns: self.dns,
            mtu: self.mtu,
            fwmark: self.fwmark,
            table: self.table,
            pre_up: self.pre_up,
            post_up: self.post_up,
            pre_down: self.pre_down,
            post_down: self.post_down,
        })
    }
}

impl PeerDraft {
    /// Applies one `key = value` line; `Ok(false)` for an unknown key.
    fn apply(&mut self, key: &str, value: &str, line: usize) -> Result<bool, WgQuickErrorKind> {
        match key {
            "publickey" => {
                once(&mut self.seen, "PublicKey", Section::Peer)?;
                let key = PublicKey::from_base64(value);
                let key = key.map_err(|source| invalid_key("PublicKey", source))?;
                self.public_key = Some((key, line));
            }
            "presharedkey" => {
                once(&mut self.seen, "PresharedKey", Section::Peer)?;
                let key = PresharedKey::from_base64(value);
                let key = key.map_err(|source| invalid_key("PresharedKey", source))?;
                self.preshared_key = (!key.is_zero()).then_some(key);
            }
            "allowedips" => {
                for item in split_list(value, false) {
                    self.allowed_ips.push(parse_net("AllowedIPs", item)?);
                }
            }
            "endpoint" => {
                once(&mut self.seen, "Endpoint", Section::Peer)?;
                self.endpoint = Some(parse_endpoint(value)?);
            }
            "persistentkeepalive" => {
                once(&mut self.seen, "PersistentKeepalive", Section::Peer)?;
                self.persistent_keepalive = if value.eq_ignore_ascii_case("off") {
                    None
                } else {
                    Some(parse_number::<u16>("PersistentKeepalive", value)?).filter(|&s| s != 0)
                };
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn once(
    seen: &mut BTreeSet<&'static str>,
    key: &'static str,
    section: Section,
) -> Result<(), WgQuickErrorKind> {
    if seen.insert(key) {
        Ok(())
    } else {
        Err(WgQuickErrorKind::DuplicateKey { key, section })
    }
}

fn invalid_key(key: &'static str, source: KeyError) -> WgQuickErrorKind {
    WgQuickErrorKind::InvalidKey { key, source }
}

/// Splits a list on commas, and on whitespace too where wg-quick's shell word splitting applies
/// (`Address`, `DNS`); empty items are skipped, as wg-quick does.
fn split_list(value: &str, on_whitespace: bool) -> impl Iterator<Item = &str> {
    value
        .split(move |c: char| c == ',' || (on_whitespace && c.is_whitespace()))
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// A plain decimal number; unlike `str::parse`, no sign is accepted.
fn parse_number<T: std::str::FromStr>(
    key: &'static str,
    value: &str,
) -> Result<T, WgQuickErrorKind> {
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let expected = "a decimal number in range";
    let invalid = WgQuickErrorKind::InvalidValue { key, expected };
    if !digits {
        return Err(invalid);
    }
    value.parse().map_err(|_| invalid)
}

/// `off`, a decimal or `0x` hexadecimal mark, as wg(8) reads it; zero means off.
fn parse_fwmark(value: &str) -> Result<Option<u32>, WgQuickErrorKind> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let hex = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"));
    let mark = match hex {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u32::from_str_radix(digits, 16).ok()
        }
        Some(_) => None,
        None => parse_number::<u32>("FwMark", value).ok(),
    };
    let expected = "off or a 32-bit number";
    let mark = mark.ok_or(WgQuickErrorKind::InvalidValue {
        key: "FwMark",
        expected,
    })?;
    Ok((mark != 0).then_some(mark))
}

/// A prefix, or a bare address meaning a single host (`/32` or `/128`).
fn parse_net(key: &'static str, item: &str) -> Result<IpNet, WgQuickErrorKind> {
    let net = if item.contains('/') {
        item.parse::<IpNet>().ok()
    } else {
        item.parse::<IpAddr>().ok().map(IpNet::from)
    };
    let expected = "ip addresses with an optional /prefix";
    net.ok_or(WgQuickErrorKind::InvalidValue { key, expected })
}

/// wg-quick's rule: items made of digits and dots, or holding a colon, are resolvers.
fn parse_dns(item: &str) -> Result<DnsEntry, WgQuickErrorKind> {
    if let Ok(addr) = item.parse::<IpAddr>() {
        return Ok(DnsEntry::Server(addr));
    }
    if looks_like_ip(item) {
        let expected = "ip addresses or search domains";
        return Err(WgQuickErrorKind::InvalidValue {
            key: "DNS",
            expected,
        });
    }
    Ok(DnsEntry::SearchDomain(item.to_owned()))
}

pub(super) fn looks_like_ip(item: &str) -> bool {
    item.contains(':') || item.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// One word: no whitespace, comma or `#`, which the file syntax would split or cut.
fn parse_token<'a>(
    key: &'static str,
    value: &'a str,
    expected: &'static str,
) -> Result<&'a str, WgQuickErrorKind> {
    if !is_token(value) {
        return Err(WgQuickErrorKind::InvalidValue { key, expected });
    }
    Ok(value)
}

pub(super) fn is_token(value: &str) -> bool {
    !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || c == ',' || c == '#')
}

pub(super) fn is_host(value: &str) -> bool {
    is_token(value) && !value.contains([':', '[', ']'])
}

/// `addr:port`, `[v6]:port`, `host:port` or `[host]:port`, as wg(8) reads them. An IPv6
/// address needs brackets: wg(8) splits `2001:db8::1:51820` at the last colon, which is a guess.
fn parse_endpoint(value: &str) -> Result<Endpoint, WgQuickErrorKind> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(Endpoint::Addr(addr));
    }
    let invalid = || WgQuickErrorKind::InvalidValue {
        key: "Endpoint",
        expected: "host:port or [ipv6]:port",
    };
    let (host, port) = match value.strip_prefix('[') {
        Some(rest) => rest.split_once("]:").ok_or_else(invalid)?,
        None => value
            .rsplit_once(':')
            .filter(|(host, _)| !host.contains(':'))
            .ok_or_else(invalid)?,
    };
    let port = parse_number::<u16>("Endpoint", port).map_err(|_| invalid())?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Endpoint::Addr(SocketAddr::new(ip, port)));
    }
    if !is_host(host) {
        return Err(invalid());
    }
    let host = host.to_owned();
    Ok(Endpoint::Host { host, port })
}

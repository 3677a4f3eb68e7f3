//! `gatehouse-edge`'s configuration file (TOML).
//!
//! ```toml
//! private_key_file = "/etc/gatehouse/edge.key"  # or private_key = "<base64>"
//! listen = "0.0.0.0:51820"          # default [::]:51820 (dual stack)
//! interface = "ghe0"                # TUN device name, default "ghe0"
//! address = ["100.64.0.1/10"]       # the edge's tunnel addresses; their prefixes route to it
//! mtu = 1420                        # default 1420 (1500 - 80, WireGuard's default)
//! endpoint = "edge.example.com:51820" # advertised in generated client configs (optional)
//!
//! [[peers]]
//! name = "alice-laptop"
//! public_key = "<base64>"
//! addresses = ["100.64.0.2/32"]
//!
//! [[policy]]                          # ordered; first match wins; no match = deny
//! action = "allow"                    # allow | deny
//! peers = ["alice-laptop"]            # default: any peer
//! destinations = ["10.0.0.0/8"]       # default: anywhere
//! protocol = "tcp"                    # tcp | udp | icmp | any (default)
//! ports = "80-443"                    # destination ports, default: all
//!
//! [identity]                          # optional: follow identity's config feed
//! url = "http://127.0.0.1:8080"       # identity's base URL
//! token_file = "edge.token"           # the edge's service token (kind edge)
//! cache = "feed-cache.json"           # default: feed-cache.json beside this file
//!
//! [connectors]                        # optional: accept connectors (QUIC) and route to them
//! listen = "0.0.0.0:7844"             # UDP; default [::]:7844
//! cert_file = "edge.pem"              # edge certificate (chain) from the deployment CA
//! key_file = "edge.key"               # its private key (PKCS#8, SEC1 or PKCS#1 PEM)
//! issuer = "https://id.example.com"   # identity's public_url: the `iss` of connector credentials
//! jwks_file = "connector-keys.json"   # optional static JWKS; with [identity] the feed's
//!                                     # signing keys are trusted as well
//! tproxy_port = 7845                  # transparent TCP listener (TPROXY), default 7845
//! name = "fra1"                       # the edge's name sent to connectors, default "edge"
//! http_listen = ["100.64.0.1:80"]     # the application front for hostname routes (HTTP,
//!                                     # each request decided); default <first address>:80
//! tls_listen = ["100.64.0.1:443"]     # TLS passed through by SNI; default <first address>:443
//! threads = 2                         # worker threads for connector traffic (QUIC, splices,
//!                                     # fronts); default one per core; 0: share the
//!                                     # WireGuard thread
//!
//! [access]                            # optional
//! policy_file = "access.toml"         # edge-policy file deciding hostname requests when
//!                                     # identity's feed carries no policy; none: deny all
//!
//! [clientless]                        # optional, needs [identity] and [connectors]: HTTPS
//!                                     # for browsers and machines without the client
//! listen = ["0.0.0.0:443"]            # default [::]:443
//! login_url = "https://id.example.com" # identity as browsers reach it; default [identity] url
//! issuer = "https://id.example.com"   # identity's public_url (`iss` of its tokens); default
//!                                     # [identity] url
//! [[clientless.certificates]]         # one or more; picked by SNI (wildcards work)
//! cert_file = "apps.pem"              # chain, leaf first
//! key_file = "apps.key"
//! ```

use anyhow::{bail, Context as _};
use edge_core::{Action, EdgePeer, PortRange, Rule, RulePolicy};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use wg::keys::{PresharedKey, PrivateKey, PublicKey};
use wg::PeerConfig;

/// The parsed file, before keys are decoded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    private_key: Option<String>,
    private_key_file: Option<PathBuf>,
    #[serde(default = "default_listen")]
    pub(crate) listen: SocketAddr,
    #[serde(default = "default_interface")]
    pub(crate) interface: String,
    #[serde(default)]
    pub(crate) address: Vec<IpNet>,
    #[serde(default = "default_mtu")]
    pub(crate) mtu: u16,
    pub(crate) endpoint: Option<String>,
    /// Handshake messages per second before cookies are required (default 100).
    #[serde(default = "default_load_limit")]
    pub(crate) handshake_load_limit: u64,
    #[serde(default)]
    peers: Vec<PeerEntry>,
    #[serde(default)]
    policy: Vec<RuleEntry>,
    pub(crate) identity: Option<IdentityEntry>,
    pub(crate) connectors: Option<ConnectorsEntry>,
    pub(crate) access: Option<AccessEntry>,
    pub(crate) clientless: Option<ClientlessEntry>,
}

/// The `[clientless]` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientlessEntry {
    #[serde(default = "default_clientless_listen")]
    listen: Vec<SocketAddr>,
    login_url: Option<String>,
    issuer: Option<String>,
    #[serde(default)]
    certificates: Vec<CertificateEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateEntry {
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// The `[access]` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessEntry {
    /// An edge-policy file (TOML, or YAML by extension).
    pub(crate) policy_file: Option<PathBuf>,
}

/// The `[connectors]` section: the QUIC listener for connectors and the TPROXY path to them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectorsEntry {
    /// UDP address of the QUIC listener; default `[::]:7844`.
    #[serde(default = "default_connector_listen")]
    pub(crate) listen: SocketAddr,
    /// PEM certificate chain, leaf first, signed by the deployment CA.
    pub(crate) cert_file: PathBuf,
    /// PEM private key of the certificate.
    pub(crate) key_file: PathBuf,
    /// The `iss` connector credentials must carry (identity's public URL).
    pub(crate) issuer: String,
    /// Optional static JWKS (file) of keys that sign connector credentials.
    pub(crate) jwks_file: Option<PathBuf>,
    /// TCP port of the transparent listener that TPROXY hands flows to; default 7845.
    #[serde(default = "default_tproxy_port")]
    pub(crate) tproxy_port: u16,
    /// The edge's name, sent to connectors in `Registered`; default "edge".
    #[serde(default = "default_edge_name")]
    pub(crate) name: String,
    /// The HTTP application front; default port 80 of the first tunnel address; `[]`: off.
    pub(crate) http_listen: Option<Vec<SocketAddr>>,
    /// The TLS (SNI) application front; default port 443 of the first tunnel address.
    pub(crate) tls_listen: Option<Vec<SocketAddr>>,
    /// Worker threads for connector traffic; default one per core; 0: the WireGuard thread.
    pub(crate) threads: Option<usize>,
}

/// `[connectors]`, with its files read.
pub(crate) struct ConnectorSettings {
    pub(crate) listen: SocketAddr,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) issuer: String,
    /// The static keys (empty without `jwks_file`).
    pub(crate) jwks: identity_claims::Jwks,
    pub(crate) tproxy_port: u16,
    pub(crate) name: String,
    pub(crate) http_listen: Vec<SocketAddr>,
    pub(crate) tls_listen: Vec<SocketAddr>,
    /// Worker threads of the connector runtime; 0: none (the WireGuard thread's runtime).
    pub(crate) threads: usize,
    /// `[clientless]`: its listeners and what they serve with.
    pub(crate) clientless: Option<(
        Vec<SocketAddr>,
        std::sync::Arc<crate::app_front::clientless::Clientless>,
    )>,
}

/// The `[identity]` section: where the config feed comes from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityEntry {
    pub(crate) url: String,
    pub(crate) token_file: PathBuf,
    pub(crate) cache: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerEntry {
    name: String,
    public_key: String,
    #[serde(default)]
    addresses: Vec<IpNet>,
    preshared_key: Option<String>,
    /// Seconds; default off.
    persistent_keepalive: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    action: String,
    #[serde(default)]
    peers: Vec<String>,
    #[serde(default)]
    destinations: Vec<IpNet>,
    protocol: Option<String>,
    ports: Option<String>,
}

/// The configuration, decoded and checked.
pub(crate) struct EdgeSettings {
    pub(crate) file: FileConfig,
    pub(crate) private_key: PrivateKey,
    pub(crate) peers: Vec<EdgePeer>,
    pub(crate) policy: RulePolicy,
    pub(crate) feed: Option<crate::identity_feed::FeedSource>,
    pub(crate) connectors: Option<ConnectorSettings>,
    /// The `[access] policy_file` policy, loaded and tested.
    pub(crate) access_policy: Option<edge_policy::PolicySet>,
}

fn default_connector_listen() -> SocketAddr {
    SocketAddr::from(([0u16; 8], 7844))
}

fn default_clientless_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([0u16; 8], 443))]
}

fn default_tproxy_port() -> u16 {
    7845
}

fn default_edge_name() -> String {
    "edge".to_string()
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0u16; 8], 51820))
}

fn default_interface() -> String {
    "ghe0".to_string()
}

fn default_mtu() -> u16 {
    1420
}

fn default_load_limit() -> u64 {
    wg::DEFAULT_HANDSHAKE_LOAD_LIMIT
}

/// Reads and checks the configuration file.
///
/// # Errors
/// Unreadable file, TOML errors (with line and column), bad keys, duplicate peers, bad rules.
pub(crate) fn load(path: &Path) -> anyhow::Result<EdgeSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    parse(&text, path.parent().unwrap_or(Path::new(".")))
        .with_context(|| format!("invalid configuration {}", path.display()))
}

pub(crate) fn parse(text: &str, base: &Path) -> anyhow::Result<EdgeSettings> {
    let file: FileConfig = toml::from_str(text)?;
    let private_key = match (&file.private_key, &file.private_key_file) {
        (Some(key), None) => PrivateKey::from_base64(key).context("private_key")?,
        (None, Some(p)) => {
            let path = base.join(p);
            let key = std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            PrivateKey::from_base64(&key).context("private_key_file")?
        }
        (Some(_), Some(_)) => bail!("set private_key or private_key_file, not both"),
        (None, None) => bail!("missing private_key or private_key_file"),
    };
    if file.interface.is_empty() || file.interface.len() > 15 {
        bail!("interface name must be 1 to 15 characters");
    }
    if !(1280..=65_000).contains(&file.mtu) {
        bail!("mtu must be between 1280 and 65000");
    }
    let mut peers = Vec::with_capacity(file.peers.len());
    let mut seen = std::collections::BTreeSet::new();
    for entry in &file.peers {
        let public_key = PublicKey::from_base64(&entry.public_key)
            .with_context(|| format!("peer {:?}: public_key", entry.name))?;
        private_key
            .check_peer(&public_key)
            .with_context(|| format!("peer {:?}: public_key", entry.name))?;
        if !seen.insert(public_key) {
            bail!("peer {:?}: public key listed twice", entry.name);
        }
        let preshared_key = entry
            .preshared_key
            .as_deref()
            .map(PresharedKey::from_base64)
            .transpose()
            .with_context(|| format!("peer {:?}: preshared_key", entry.name))?;
        peers.push(EdgePeer {
            name: entry.name.clone(),
            config: PeerConfig {
                public_key,
                preshared_key,
                endpoint: None,
                allowed_ips: entry.addresses.clone(),
                persistent_keepalive: entry.persistent_keepalive.filter(|k| *k > 0),
            },
        });
    }
    let rules = file
        .policy
        .iter()
        .enumerate()
        .map(|(i, r)| rule(r).with_context(|| format!("policy rule {}", i + 1)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let feed = match &file.identity {
        None => None,
        Some(entry) => {
            if !(entry.url.starts_with("http://") || entry.url.starts_with("https://")) {
                bail!("identity.url must start with http:// or https://");
            }
            Some(crate::identity_feed::FeedSource {
                identity_url: entry.url.clone(),
                token: read_token(&base.join(&entry.token_file)).context("identity.token_file")?,
                cache: base.join(
                    entry
                        .cache
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("feed-cache.json")),
                ),
            })
        }
    };
    let mut connectors = file
        .connectors
        .as_ref()
        .map(|entry| connector_settings(entry, base, &file.address))
        .transpose()
        .context("[connectors]")?;
    if let Some(entry) = &file.clientless {
        let (Some(connectors), Some(identity)) = (connectors.as_mut(), &file.identity) else {
            bail!("[clientless] needs [identity] (sessions, keys and tokens come from its feed) and [connectors] (the applications are behind connectors)");
        };
        connectors.clientless =
            Some(clientless_settings(entry, base, &identity.url).context("[clientless]")?);
    }
    let access_policy = file
        .access
        .as_ref()
        .and_then(|a| a.policy_file.as_ref())
        .map(|p| crate::access_state::load_policy_file(&base.join(p)))
        .transpose()
        .context("[access] policy_file")?;
    Ok(EdgeSettings {
        file,
        private_key,
        peers,
        policy: RulePolicy { rules },
        feed,
        connectors,
        access_policy,
    })
}

fn connector_settings(
    entry: &ConnectorsEntry,
    base: &Path,
    addresses: &[IpNet],
) -> anyhow::Result<ConnectorSettings> {
    let read = |p: &Path, what: &str| {
        let path = base.join(p);
        std::fs::read_to_string(&path)
            .with_context(|| format!("{what}: failed to read {}", path.display()))
    };
    if entry.issuer.is_empty() {
        bail!("issuer must not be empty");
    }
    if entry.tproxy_port == 0 {
        bail!("tproxy_port must not be 0");
    }
    if entry.threads.is_some_and(|t| t > 256) {
        bail!("threads must be at most 256");
    }
    let jwks = match &entry.jwks_file {
        None => identity_claims::Jwks::default(),
        Some(p) => serde_json::from_str(&read(p, "jwks_file")?).context("jwks_file")?,
    };
    Ok(ConnectorSettings {
        listen: entry.listen,
        cert_pem: read(&entry.cert_file, "cert_file")?,
        key_pem: read(&entry.key_file, "key_file")?,
        issuer: entry.issuer.clone(),
        jwks,
        tproxy_port: entry.tproxy_port,
        name: entry.name.clone(),
        http_listen: front_listen(entry.http_listen.as_deref(), addresses, 80),
        tls_listen: front_listen(entry.tls_listen.as_deref(), addresses, 443),
        threads: entry.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }),
        clientless: None,
    })
}

fn clientless_settings(
    entry: &ClientlessEntry,
    base: &Path,
    identity_url: &str,
) -> anyhow::Result<(
    Vec<SocketAddr>,
    std::sync::Arc<crate::app_front::clientless::Clientless>,
)> {
    let login_url = entry
        .login_url
        .clone()
        .unwrap_or_else(|| identity_url.to_owned());
    if !(login_url.starts_with("http://") || login_url.starts_with("https://")) {
        bail!("login_url must start with http:// or https://");
    }
    if entry.listen.is_empty() {
        bail!("listen must name at least one address (leave [clientless] out to turn it off)");
    }
    let mut pairs = Vec::with_capacity(entry.certificates.len());
    for cert in &entry.certificates {
        let read = |p: &Path| {
            let path = base.join(p);
            std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read {}", path.display()))
        };
        pairs.push(crate::app_front::certs::CertificatePem {
            label: format!("certificate {}", cert.cert_file.display()),
            chain: read(&cert.cert_file)?,
            key: read(&cert.key_file)?,
        });
    }
    let tls = crate::app_front::certs::server_config(&pairs)?;
    Ok((
        entry.listen.clone(),
        std::sync::Arc::new(crate::app_front::clientless::Clientless {
            login_url: login_url.trim_end_matches('/').to_owned(),
            issuer: entry
                .issuer
                .clone()
                .unwrap_or_else(|| identity_url.trim_end_matches('/').to_owned()),
            tls,
        }),
    ))
}

/// The configured front addresses, or `port` on the first tunnel address (IPv4 preferred).
fn front_listen(
    configured: Option<&[SocketAddr]>,
    addresses: &[IpNet],
    port: u16,
) -> Vec<SocketAddr> {
    if let Some(list) = configured {
        return list.to_vec();
    }
    let first = addresses
        .iter()
        .find(|n| n.addr().is_ipv4())
        .or_else(|| addresses.first());
    first
        .map(|net| SocketAddr::new(net.addr(), port))
        .into_iter()
        .collect()
}

/// Reads a token file (one line, surrounding whitespace ignored).
///
/// # Errors
/// Unreadable or empty file.
pub(crate) fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(token.to_string())
}

fn rule(entry: &RuleEntry) -> anyhow::Result<Rule> {
    let action = match entry.action.as_str() {
        "allow" => Action::Allow,
        "deny" => Action::Deny,
        other => bail!("action must be allow or deny, got {other:?}"),
    };
    let protocol = match entry.protocol.as_deref() {
        None | Some("any") => None,
        Some("tcp") => Some(wire::Protocol::Tcp),
        Some("udp") => Some(wire::Protocol::Udp),
        Some("icmp") => Some(wire::Protocol::Icmp),
        Some(other) => bail!("protocol must be tcp, udp, icmp or any, got {other:?}"),
    };
    let ports = match entry.ports.as_deref() {
        None => None,
        Some(text) => Some(
            PortRange::parse(text)
                .with_context(|| format!("ports must be N or N-M, got {text:?}"))?,
        ),
    };
    Ok(Rule {
        action,
        peers: entry.peers.clone(),
        destinations: entry.destinations.clone(),
        protocol,
        ports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "YFr3Kd1wGQfGg8b9fgm2Kj5rjIWo6zbI8/W2gDeZ0mU=";

    fn peer_key(seed: u8) -> String {
        PrivateKey::from_bytes([seed; 32]).public_key().to_base64()
    }

    #[test]
    fn a_full_file_parses() {
        let text = format!(
            r#"
private_key = "{KEY}"
listen = "0.0.0.0:51820"
address = ["100.64.0.1/10"]
[[peers]]
name = "alice"
public_key = "{}"
addresses = ["100.64.0.2/32"]
[[policy]]
action = "allow"
peers = ["alice"]
protocol = "tcp"
ports = "80"
"#,
            peer_key(3)
        );
        let settings = parse(&text, Path::new(".")).expect("valid");
        assert_eq!(settings.peers.len(), 1);
        assert_eq!(settings.peers[0].name, "alice");
        assert_eq!(settings.policy.rules.len(), 1);
        assert_eq!(settings.file.interface, "ghe0");
        assert_eq!(settings.file.mtu, 1420);
    }

    #[test]
    fn unknown_fields_bad_keys_and_bad_rules_are_named() {
        let err = |text: &str| format!("{:#}", parse(text, Path::new(".")).err().expect("error"));
        assert!(err(&format!("private_key = \"{KEY}\"\nlisten_port = 1")).contains("listen_port"));
        assert!(err("").contains("missing private_key"));
        let low_order = format!(
            "private_key = \"{KEY}\"\n[[peers]]\nname = \"z\"\npublic_key = \"{}\"",
            PublicKey::from_bytes([0; 32]).to_base64()
        );
        assert!(err(&low_order).contains("low-order"));
        let bad_rule = format!("private_key = \"{KEY}\"\n[[policy]]\naction = \"maybe\"");
        assert!(err(&bad_rule).contains("policy rule 1"));
        let twice = format!(
            "private_key = \"{KEY}\"\n[[peers]]\nname = \"a\"\npublic_key = \"{0}\"\n[[peers]]\nname = \"b\"\npublic_key = \"{0}\"",
            peer_key(4)
        );
        assert!(err(&twice).contains("listed twice"));
    }

    #[test]
    fn a_connectors_section_reads_its_files_and_rejects_unknown_fields() {
        let dir = std::env::temp_dir().join(format!("gh-edge-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("edge.pem"), "CERT").expect("write");
        std::fs::write(dir.join("edge.key"), "KEY").expect("write");
        std::fs::write(dir.join("keys.json"), r#"{"keys":[]}"#).expect("write");
        let text = format!(
            "private_key = \"{KEY}\"\n[connectors]\ncert_file = \"edge.pem\"\nkey_file = \"edge.key\"\n\
             issuer = \"https://id.test\"\njwks_file = \"keys.json\"\n"
        );
        let settings = parse(&text, &dir).expect("valid");
        let connectors = settings.connectors.expect("connectors");
        assert_eq!(connectors.listen, default_connector_listen());
        assert_eq!(connectors.tproxy_port, 7845);
        assert_eq!(connectors.cert_pem, "CERT");
        assert_eq!(connectors.issuer, "https://id.test");
        // No tunnel address: no default front.
        assert!(connectors.http_listen.is_empty() && connectors.tls_listen.is_empty());
        let with_address = text.replace(
            "[connectors]",
            "address = [\"fd00::1/64\", \"100.64.0.1/10\"]\n[connectors]",
        );
        let connectors = parse(&with_address, &dir)
            .expect("valid")
            .connectors
            .expect("connectors");
        assert_eq!(
            connectors.http_listen,
            ["100.64.0.1:80".parse().expect("addr")]
        );
        assert_eq!(
            connectors.tls_listen,
            ["100.64.0.1:443".parse().expect("addr")]
        );
        let off = parse(&format!("{text}http_listen = []\n"), &dir)
            .expect("valid")
            .connectors
            .expect("connectors");
        assert!(off.http_listen.is_empty());
        let unknown = format!("{text}tproxy = 1\n");
        let err = format!("{:#}", parse(&unknown, &dir).err().expect("error"));
        assert!(err.contains("tproxy"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn an_access_policy_file_is_loaded_and_its_errors_are_named() {
        let dir = std::env::temp_dir().join(format!("gh-edge-access-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(
            dir.join("access.toml"),
            "version = 1\n[[applications]]\nname = \"app\"\n\
             destinations = [{ host = \"app.test\" }]\n[[applications.policies]]\n\
             name = \"all\"\naction = \"bypass\"\n",
        )
        .expect("write");
        std::fs::write(
            dir.join("bad.toml"),
            "version = 1\n[[applications]]\nnme = 1\n",
        )
        .expect("write");
        let text =
            |file: &str| format!("private_key = \"{KEY}\"\n[access]\npolicy_file = \"{file}\"\n");
        let settings = parse(&text("access.toml"), &dir).expect("valid");
        assert!(settings.access_policy.is_some());
        let err = format!("{:#}", parse(&text("bad.toml"), &dir).err().expect("error"));
        assert!(
            err.contains("[access] policy_file") && err.contains("bad.toml"),
            "{err}"
        );
        let missing = format!(
            "{:#}",
            parse(&text("nope.toml"), &dir).err().expect("error")
        );
        assert!(missing.contains("failed to read"), "{missing}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_clientless_section_needs_identity_and_connectors_and_loads_its_certificates() {
        let dir = std::env::temp_dir().join(format!("gh-edge-clientless-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cert =
            rcgen::generate_simple_self_signed(vec!["*.apps.test".to_owned()]).expect("cert");
        std::fs::write(dir.join("apps.pem"), cert.cert.pem()).expect("write");
        std::fs::write(dir.join("apps.key"), cert.key_pair.serialize_pem()).expect("write");
        std::fs::write(dir.join("edge.token"), "ghst_x\n").expect("write");
        let clientless = "[clientless]\nlisten = [\"127.0.0.1:8443\"]\n\
             [[clientless.certificates]]\ncert_file = \"apps.pem\"\nkey_file = \"apps.key\"\n";
        let connectors = "[connectors]\ncert_file = \"apps.pem\"\nkey_file = \"apps.key\"\n\
             issuer = \"https://connectors.test\"\n";
        let identity = "[identity]\nurl = \"https://id.test/\"\ntoken_file = \"edge.token\"\n";
        let text = format!("private_key = \"{KEY}\"\n{identity}{connectors}{clientless}");
        let settings = parse(&text, &dir).expect("valid");
        let (listen, site) = settings
            .connectors
            .and_then(|c| c.clientless)
            .expect("clientless");
        assert_eq!(listen, ["127.0.0.1:8443".parse().expect("addr")]);
        assert_eq!(site.login_url, "https://id.test");
        assert_eq!(
            site.issuer, "https://id.test",
            "identity's URL, not the connectors' issuer"
        );

        let err = |text: &str| format!("{:#}", parse(text, &dir).err().expect("error"));
        let alone = format!("private_key = \"{KEY}\"\n{connectors}{clientless}");
        assert!(err(&alone).contains("needs [identity]"), "{}", err(&alone));
        let no_certs = text.replace(
            "[[clientless.certificates]]\ncert_file = \"apps.pem\"\nkey_file = \"apps.key\"\n",
            "",
        );
        assert!(
            err(&no_certs).contains("[clientless]"),
            "{}",
            err(&no_certs)
        );
        let missing = text.replace(
            "[[clientless.certificates]]\ncert_file = \"apps.pem\"",
            "[[clientless.certificates]]\ncert_file = \"nope.pem\"",
        );
        assert!(err(&missing).contains("nope.pem"), "{}", err(&missing));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}

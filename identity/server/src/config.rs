//! `gatehouse-identity`'s configuration file (`identity.toml`).
//!
//! Precedence: command line > environment > file > defaults. Unknown fields are errors. Every
//! field below shows its default; relative paths are relative to the file's directory.
//!
//! ```toml
//! listen = "127.0.0.1:8080"               # default 127.0.0.1:8080
//! public_url = "https://id.example.com"   # default http://<listen>; the issuer of our tokens
//! database = "identity.db"                # default "identity.db" (SQLite, WAL)
//! admin_token_file = "admin.token"        # or env GATEHOUSE_IDENTITY_ADMIN_TOKEN; no default:
//!                                         # without one the admin API answers 401 to everyone
//! admin_group = "admins"                  # no default: members of this group may also call the
//!                                         # admin API with their user-session token
//! key_rotation = "7d"                     # default 7d: a new signing key this often
//! routes = ["10.0.0.0/8"]                 # default []: routes clients send through the tunnel
//! dns = ["10.0.0.53"]                     # default []: DNS servers handed to clients
//! decision_retention_days = 30            # default 30 (1 to 3650): access decisions edges
//!                                         # report are deleted this many days after they happened
//!
//! [addresses]                             # tunnel address pools (defaults shown)
//! ipv4 = "100.64.0.0/10"
//! ipv6 = "fd7a:6768:0000::/48"
//!
//! [tokens]                                # lifetimes (defaults shown)
//! session = "12h"                         # user-session JWT (`/oauth/token`)
//! device = "30d"                          # device token (`/v1/enroll`)
//! browser_session = "12h"                 # `gh_session` cookie
//! access_session = "8h"                   # clientless access token for one application host
//!                                         # (`/v1/access/authorize`), at most the browser
//!                                         # session's remaining lifetime
//! device_code = "10m"                     # RFC 8628 device code
//! device_poll_interval = "5s"             # RFC 8628 §3.2 `interval`
//! clock_skew = "1m"                       # accepted `iat`/`exp` skew of upstream ID tokens
//!
//! [[edges]]                               # default []
//! name = "fra1"
//! endpoint = "fra1.example.com:51820"
//! public_key = "<base64 X25519>"
//! region = "eu-central"
//!
//! [[providers]]                           # an external OpenID Connect provider
//! id = "corp"                             # [a-z0-9_-]+; redirect URI is <public_url>/callback/corp
//! kind = "oidc"
//! display_name = "Corp SSO"               # default: the id
//! issuer = "https://login.example.com"
//! client_id = "gatehouse"
//! client_secret = "…"                     # or client_secret_file; omit for a public client
//! scopes = ["openid", "email", "profile"] # default; "openid" is always sent
//! groups_claim = "groups"                 # default "groups" (read from the ID token)
//! sync_groups = "5m"                      # default off: at login ask for a refresh token
//!                                         # (scope offline_access, prompt=consent) and re-read
//!                                         # the user's groups this often (at least 1s); a
//!                                         # refused refresh (invalid_grant) revokes that login's
//!                                         # sessions and the devices enrolled with them
//!
//! [[providers]]                           # the built-in local provider (at most one)
//! id = "local"
//! kind = "local"
//! users_file = "users.toml"               # see `local_idp::users`
//! ```

use anyhow::{bail, Context as _};
use ipnet::{Ipv4Net, Ipv6Net};
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// The file as written, before paths are resolved and secrets read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    #[serde(default = "default_listen")]
    pub(crate) listen: SocketAddr,
    pub(crate) public_url: Option<Url>,
    #[serde(default = "default_database")]
    pub(crate) database: PathBuf,
    pub(crate) admin_token: Option<SecretString>,
    pub(crate) admin_token_file: Option<PathBuf>,
    pub(crate) admin_group: Option<String>,
    #[serde(default = "default_key_rotation", with = "humantime_serde")]
    pub(crate) key_rotation: Duration,
    #[serde(default)]
    pub(crate) routes: Vec<String>,
    #[serde(default)]
    pub(crate) dns: Vec<String>,
    #[serde(default = "default_decision_retention_days")]
    pub(crate) decision_retention_days: u32,
    #[serde(default)]
    pub(crate) addresses: AddressPools,
    #[serde(default)]
    pub(crate) tokens: Lifetimes,
    #[serde(default)]
    pub(crate) edges: Vec<EdgeEntry>,
    #[serde(default)]
    pub(crate) providers: Vec<ProviderEntry>,
}

/// Tunnel address pools devices get one address from each.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddressPools {
    /// Default 100.64.0.0/10 (RFC 6598 shared address space, as CGNAT VPNs use it).
    #[serde(default = "default_ipv4_pool")]
    pub(crate) ipv4: Ipv4Net,
    /// Default fd7a:6768::/48 (an RFC 4193 unique local prefix).
    #[serde(default = "default_ipv6_pool")]
    pub(crate) ipv6: Ipv6Net,
}

impl Default for AddressPools {
    fn default() -> Self {
        Self {
            ipv4: default_ipv4_pool(),
            ipv6: default_ipv6_pool(),
        }
    }
}

/// Token and flow lifetimes, human-readable (`"15m"`, `"12h"`, `"30d"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Lifetimes {
    #[serde(default = "default_session", with = "humantime_serde")]
    pub(crate) session: Duration,
    #[serde(default = "default_device", with = "humantime_serde")]
    pub(crate) device: Duration,
    #[serde(default = "default_session", with = "humantime_serde")]
    pub(crate) browser_session: Duration,
    #[serde(default = "default_access_session", with = "humantime_serde")]
    pub(crate) access_session: Duration,
    #[serde(default = "default_device_code", with = "humantime_serde")]
    pub(crate) device_code: Duration,
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub(crate) device_poll_interval: Duration,
    #[serde(default = "default_clock_skew", with = "humantime_serde")]
    pub(crate) clock_skew: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            session: default_session(),
            device: default_device(),
            browser_session: default_session(),
            access_session: default_access_session(),
            device_code: default_device_code(),
            device_poll_interval: default_poll_interval(),
            clock_skew: default_clock_skew(),
        }
    }
}

/// One edge as clients see it in their profile.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct EdgeEntry {
    pub(crate) name: String,
    /// `host:port` clients send WireGuard to.
    pub(crate) endpoint: String,
    /// The edge's X25519 public key, base64.
    pub(crate) public_key: String,
    #[serde(default)]
    pub(crate) region: String,
}

/// Which kind of identity provider a `[[providers]]` entry is.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProviderKind {
    /// An external OpenID Connect provider, found by discovery at `issuer`.
    Oidc,
    /// The built-in provider at `<public_url>/local-idp`, users from `users_file`.
    Local,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderEntry {
    pub(crate) id: String,
    pub(crate) kind: ProviderKind,
    pub(crate) display_name: Option<String>,
    pub(crate) issuer: Option<Url>,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret: Option<SecretString>,
    pub(crate) client_secret_file: Option<PathBuf>,
    #[serde(default = "default_scopes")]
    pub(crate) scopes: Vec<String>,
    #[serde(default = "default_groups_claim")]
    pub(crate) groups_claim: String,
    pub(crate) users_file: Option<PathBuf>,
    /// Group re-sync through the provider's refresh tokens; `None` (the default) is off.
    #[serde(default, with = "humantime_serde")]
    pub(crate) sync_groups: Option<Duration>,
}

/// Command-line and environment overrides (clap fills them, `None` = not given).
#[derive(Debug, Default, Clone)]
pub(crate) struct Overrides {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) public_url: Option<Url>,
    pub(crate) database: Option<PathBuf>,
    pub(crate) admin_token: Option<SecretString>,
    pub(crate) admin_token_file: Option<PathBuf>,
}

/// The configuration, resolved and checked: what the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) listen: SocketAddr,
    /// Without a trailing slash.
    pub(crate) public_url: Url,
    pub(crate) database: PathBuf,
    pub(crate) admin_token: Option<SecretString>,
    /// Members of this group may call the admin API with a user-session token.
    pub(crate) admin_group: Option<String>,
    pub(crate) key_rotation: Duration,
    pub(crate) routes: Vec<String>,
    pub(crate) dns: Vec<String>,
    /// How long access decisions are kept, in days.
    pub(crate) decision_retention_days: u32,
    pub(crate) addresses: AddressPools,
    pub(crate) tokens: Lifetimes,
    pub(crate) edges: Vec<EdgeEntry>,
    pub(crate) providers: Vec<Provider>,
}

/// A provider, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Provider {
    pub(crate) id: String,
    pub(crate) kind: ProviderKind,
    pub(crate) display_name: String,
    /// For `local`: `<public_url>/local-idp`.
    pub(crate) issuer: Url,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<SecretString>,
    pub(crate) scopes: Vec<String>,
    pub(crate) groups_claim: String,
    pub(crate) users_file: Option<PathBuf>,
    /// How often the groups of a login are re-read with its refresh token (`None`: never).
    pub(crate) sync_groups: Option<Duration>,
}

/// The client id identity's relying party uses at its own local provider.
pub(crate) const LOCAL_CLIENT_ID: &str = "gatehouse-identity";
/// Where the local provider is mounted, below `public_url`.
pub(crate) const LOCAL_IDP_PATH: &str = "/local-idp";

impl Config {
    /// The address the server listens on.
    #[must_use]
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// `public_url` joined with an absolute path (`"/oauth/token"`).
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.as_str().trim_end_matches('/'))
    }

    /// Our issuer string (`public_url` without a trailing slash).
    pub(crate) fn issuer(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_string()
    }

    /// The longest lifetime of any token identity signs (how long a retired key stays
    /// published).
    pub(crate) fn longest_token_lifetime(&self) -> Duration {
        let t = &self.tokens;
        t.session
            .max(t.device)
            .max(t.browser_session)
            .max(t.access_session)
    }

    pub(crate) fn local_provider(&self) -> Option<&Provider> {
        self.providers
            .iter()
            .find(|p| p.kind == ProviderKind::Local)
    }
}

/// Reads, resolves and checks a configuration file.
///
/// # Errors
/// Unreadable file, TOML errors (with line and column), unknown fields, bad values.
pub(crate) fn load(path: &Path, overrides: &Overrides) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, overrides)
        .with_context(|| format!("invalid configuration {}", path.display()))
}

/// Parses and resolves a configuration text; relative paths are taken relative to `base`.
///
/// # Errors
/// TOML errors, unknown fields, bad values, unreadable secret files.
pub(crate) fn parse(text: &str, base: &Path, overrides: &Overrides) -> anyhow::Result<Config> {
    let file: FileConfig = toml::from_str(text)?;
    resolve(file, base, overrides)
}

pub(crate) fn resolve(
    file: FileConfig,
    base: &Path,
    overrides: &Overrides,
) -> anyhow::Result<Config> {
    let listen = overrides.listen.unwrap_or(file.listen);
    let public_url = match overrides.public_url.clone().or(file.public_url) {
        Some(url) => url,
        None => Url::parse(&format!("http://{listen}")).context("public_url from listen")?,
    };
    if !matches!(public_url.scheme(), "http" | "https") {
        bail!("public_url must be http or https");
    }
    if public_url.query().is_some() || public_url.fragment().is_some() {
        bail!("public_url must not have a query or fragment");
    }
    let database = base.join(overrides.database.clone().unwrap_or(file.database));
    let admin_token = match (
        overrides.admin_token.clone(),
        overrides.admin_token_file.clone(),
        file.admin_token,
        file.admin_token_file,
    ) {
        (Some(token), _, _, _) => Some(token),
        (None, Some(path), _, _) => Some(read_secret(&path)?),
        (None, None, Some(_), Some(_)) => bail!("set admin_token or admin_token_file, not both"),
        (None, None, Some(token), None) => Some(token),
        (None, None, None, Some(path)) => Some(read_secret(&base.join(path))?),
        (None, None, None, None) => None,
    };
    if !(1..=MAX_DECISION_RETENTION_DAYS).contains(&file.decision_retention_days) {
        bail!("decision_retention_days must be 1 to {MAX_DECISION_RETENTION_DAYS}");
    }
    if file.key_rotation < Duration::from_secs(60) {
        bail!("key_rotation must be at least 1m");
    }
    for edge in &file.edges {
        let key = base64_decode(&edge.public_key)
            .with_context(|| format!("edge {:?}: public_key", edge.name))?;
        if key.len() != 32 {
            bail!("edge {:?}: public_key must be 32 bytes", edge.name);
        }
    }
    let mut providers = Vec::with_capacity(file.providers.len());
    for entry in file.providers {
        let id = entry.id.clone();
        providers.push(
            resolve_provider(entry, base, &public_url)
                .with_context(|| format!("provider {id:?}"))?,
        );
    }
    let mut ids = std::collections::BTreeSet::new();
    for p in &providers {
        if !ids.insert(p.id.as_str()) {
            bail!("provider {:?} listed twice", p.id);
        }
    }
    if providers
        .iter()
        .filter(|p| p.kind == ProviderKind::Local)
        .count()
        > 1
    {
        bail!("at most one provider of kind \"local\"");
    }
    Ok(Config {
        listen,
        public_url,
        database,
        admin_token,
        admin_group: file.admin_group.filter(|g| !g.is_empty()),
        key_rotation: file.key_rotation,
        routes: file.routes,
        dns: file.dns,
        decision_retention_days: file.decision_retention_days,
        addresses: file.addresses,
        tokens: file.tokens,
        edges: file.edges,
        providers,
    })
}

fn resolve_provider(
    entry: ProviderEntry,
    base: &Path,
    public_url: &Url,
) -> anyhow::Result<Provider> {
    if entry.id.is_empty()
        || !entry
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        bail!("id must be non-empty [a-z0-9_-]");
    }
    let display_name = entry.display_name.unwrap_or_else(|| entry.id.clone());
    let mut scopes = entry.scopes;
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".to_string());
    }
    match entry.kind {
        ProviderKind::Oidc => {
            if entry.users_file.is_some() {
                bail!("users_file is only for kind = \"local\"");
            }
            if entry
                .sync_groups
                .is_some_and(|d| d < Duration::from_secs(1))
            {
                bail!("sync_groups must be at least 1s");
            }
            let issuer = entry.issuer.context("missing issuer")?;
            let client_id = entry.client_id.context("missing client_id")?;
            let client_secret = match (entry.client_secret, entry.client_secret_file) {
                (Some(_), Some(_)) => bail!("set client_secret or client_secret_file, not both"),
                (Some(s), None) => Some(s),
                (None, Some(path)) => Some(read_secret(&base.join(path))?),
                (None, None) => None,
            };
            Ok(Provider {
                id: entry.id,
                kind: ProviderKind::Oidc,
                display_name,
                issuer,
                client_id,
                client_secret,
                scopes,
                groups_claim: entry.groups_claim,
                users_file: None,
                sync_groups: entry.sync_groups,
            })
        }
        ProviderKind::Local => {
            if entry.issuer.is_some() || entry.client_id.is_some() {
                bail!("issuer and client_id are fixed for kind = \"local\"");
            }
            if entry.client_secret.is_some() || entry.client_secret_file.is_some() {
                bail!("client_secret is generated for kind = \"local\"");
            }
            if entry.sync_groups.is_some() {
                bail!("sync_groups is only for kind = \"oidc\" (local groups are read at login)");
            }
            let users_file = base.join(entry.users_file.context("missing users_file")?);
            let issuer = Url::parse(&format!(
                "{}{LOCAL_IDP_PATH}",
                public_url.as_str().trim_end_matches('/')
            ))
            .context("local issuer")?;
            Ok(Provider {
                id: entry.id,
                kind: ProviderKind::Local,
                display_name,
                issuer,
                client_id: LOCAL_CLIENT_ID.to_string(),
                client_secret: None,
                scopes,
                groups_claim: entry.groups_claim,
                users_file: Some(users_file),
                sync_groups: None,
            })
        }
    }
}

/// Reads a secret from a file, trimming surrounding whitespace.
fn read_secret(path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(SecretString::from(trimmed.to_string()))
}

fn base64_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD.decode(text.trim())?)
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_database() -> PathBuf {
    PathBuf::from("identity.db")
}

/// Ten years: beyond that a deployment wants an archive, not this table.
const MAX_DECISION_RETENTION_DAYS: u32 = 3650;

fn default_decision_retention_days() -> u32 {
    30
}

fn default_key_rotation() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

fn default_ipv4_pool() -> Ipv4Net {
    // RFC 6598 §7: 100.64.0.0/10, shared address space.
    Ipv4Net::new(std::net::Ipv4Addr::new(100, 64, 0, 0), 10).unwrap_or_default()
}

fn default_ipv6_pool() -> Ipv6Net {
    // RFC 4193 §3.1: fd00::/8 unique local; 0x7a67_68 spells "zgh" and is fixed for the default.
    Ipv6Net::new(
        std::net::Ipv6Addr::new(0xfd7a, 0x6768, 0, 0, 0, 0, 0, 0),
        48,
    )
    .unwrap_or_default()
}

fn default_session() -> Duration {
    Duration::from_secs(12 * 3600)
}

fn default_access_session() -> Duration {
    Duration::from_secs(8 * 3600)
}

fn default_device() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

fn default_device_code() -> Duration {
    Duration::from_secs(600)
}

fn default_poll_interval() -> Duration {
    // RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default."
    Duration::from_secs(5)
}

fn default_clock_skew() -> Duration {
    Duration::from_secs(60)
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}

fn default_groups_claim() -> String {
    "groups".to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn empty_file_takes_every_default() {
        let config = parse("", Path::new("/etc/gh"), &Overrides::default()).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.public_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(config.database, PathBuf::from("/etc/gh/identity.db"));
        assert!(config.admin_token.is_none());
        assert_eq!(config.tokens.device_poll_interval, Duration::from_secs(5));
        assert_eq!(config.tokens.access_session, Duration::from_secs(8 * 3600));
        assert_eq!(config.addresses.ipv4.to_string(), "100.64.0.0/10");
        assert_eq!(config.addresses.ipv6.to_string(), "fd7a:6768::/48");
        assert_eq!(config.key_rotation, Duration::from_secs(604_800));
        assert_eq!(config.decision_retention_days, 30);
    }

    #[test]
    fn decision_retention_must_be_at_least_a_day() {
        let config = parse(
            "decision_retention_days = 7",
            Path::new("."),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.decision_retention_days, 7);
        let err = parse(
            "decision_retention_days = 0",
            Path::new("."),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("decision_retention_days"),
            "{err:#}"
        );
    }

    #[test]
    fn unknown_field_is_rejected_with_its_name() {
        let err = parse(
            "listne = \"1.2.3.4:1\"",
            Path::new("."),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("listne"), "{err:#}");
    }

    #[test]
    fn human_durations_parse() {
        let config = parse(
            "[tokens]\nsession = \"15m\"\ndevice = \"2days\"\n",
            Path::new("."),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.tokens.session, Duration::from_secs(900));
        assert_eq!(config.tokens.device, Duration::from_secs(172_800));
    }

    #[test]
    fn overrides_beat_the_file() {
        let overrides = Overrides {
            listen: Some("127.0.0.1:9999".parse().unwrap()),
            admin_token: Some(SecretString::from("from-cli")),
            ..Overrides::default()
        };
        let config = parse(
            "listen = \"127.0.0.1:1111\"\nadmin_token = \"from-file\"\n",
            Path::new("."),
            &overrides,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.public_url.as_str(), "http://127.0.0.1:9999/");
        assert_eq!(
            config.admin_token.as_ref().unwrap().expose_secret(),
            "from-cli"
        );
    }

    #[test]
    fn providers_resolve_with_defaults() {
        let text = r#"
public_url = "https://id.example.com/"
[[providers]]
id = "corp"
kind = "oidc"
issuer = "https://login.example.com"
client_id = "gh"
client_secret = "s"
[[providers]]
id = "local"
kind = "local"
users_file = "users.toml"
"#;
        let config = parse(text, Path::new("/cfg"), &Overrides::default()).unwrap();
        let corp = &config.providers[0];
        assert_eq!(corp.groups_claim, "groups");
        assert_eq!(corp.scopes, ["openid", "email", "profile"]);
        assert_eq!(corp.display_name, "corp");
        let local = config.local_provider().unwrap();
        assert_eq!(local.issuer.as_str(), "https://id.example.com/local-idp");
        assert_eq!(
            local.users_file.as_deref(),
            Some(Path::new("/cfg/users.toml"))
        );
    }

    #[test]
    fn sync_groups_is_off_by_default_and_parses_a_duration() {
        let base = "[[providers]]\nid = \"x\"\nkind = \"oidc\"\nclient_id = \"c\"\nissuer = \"https://a\"\n";
        let off = parse(base, Path::new("."), &Overrides::default()).unwrap();
        assert_eq!(off.providers[0].sync_groups, None);
        let on = parse(
            &format!("{base}sync_groups = \"5m\"\n"),
            Path::new("."),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(on.providers[0].sync_groups, Some(Duration::from_secs(300)));
        let err = parse(
            &format!("{base}sync_groups = \"10ms\"\n"),
            Path::new("."),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("at least 1s"), "{err:#}");
    }

    #[test]
    fn oidc_provider_without_issuer_is_rejected() {
        let text = "[[providers]]\nid = \"x\"\nkind = \"oidc\"\nclient_id = \"c\"\n";
        let err = parse(text, Path::new("."), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("missing issuer"), "{err:#}");
    }

    #[test]
    fn duplicate_provider_ids_are_rejected() {
        let one = "[[providers]]\nid = \"x\"\nkind = \"oidc\"\nclient_id = \"c\"\nissuer = \"https://a\"\n";
        let err = parse(
            &format!("{one}{one}"),
            Path::new("."),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("twice"), "{err:#}");
    }

    #[test]
    fn bad_edge_key_is_rejected() {
        let text = "[[edges]]\nname = \"e\"\nendpoint = \"e:1\"\npublic_key = \"AAAA\"\n";
        let err = parse(text, Path::new("."), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("32 bytes"), "{err:#}");
    }
}

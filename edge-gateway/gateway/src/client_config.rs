//! wg-quick files for the edge's peers: any stock WireGuard client can connect with one.

use crate::config::EdgeSettings;
use anyhow::{bail, Context as _};
use client_core::wg_quick::{self, Endpoint, InterfaceSection, PeerSection, WgQuickConfig};
use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::Path;
use wg::keys::PrivateKey;

/// Keeps NAT mappings alive for roaming clients; the interval wg-quick's docs suggest.
const CLIENT_KEEPALIVE_SECS: u16 = 25;

/// Renders the wg-quick configuration of peer `name`, whose private key is in `key_file`.
///
/// # Errors
/// Unknown peer, unreadable or mismatched key, no endpoint.
pub(crate) fn render(
    settings: &EdgeSettings,
    name: &str,
    key_file: &Path,
    endpoint: Option<&str>,
    allowed_ips: &[IpNet],
) -> anyhow::Result<String> {
    let peer = settings
        .peers
        .iter()
        .find(|p| p.name == name)
        .with_context(|| format!("no peer named {name:?} in the configuration"))?;
    let key_text = std::fs::read_to_string(key_file)
        .with_context(|| format!("failed to read {}", key_file.display()))?;
    let private_key = PrivateKey::from_base64(&key_text).context("invalid private key")?;
    if private_key.public_key() != peer.config.public_key {
        bail!("the private key does not belong to peer {name:?}");
    }
    let endpoint = endpoint
        .or(settings.file.endpoint.as_deref())
        .context("no endpoint: pass --endpoint or set `endpoint` in the configuration")?;
    let allowed_ips = if allowed_ips.is_empty() {
        vec![
            "0.0.0.0/0".parse().context("literal prefix")?,
            "::/0".parse().context("literal prefix")?,
        ]
    } else {
        allowed_ips.to_vec()
    };
    let config = WgQuickConfig {
        interface: InterfaceSection {
            mtu: Some(settings.file.mtu),
            ..InterfaceSection::new(private_key, peer.config.allowed_ips.clone())
        },
        peers: vec![PeerSection {
            public_key: settings.private_key.public_key(),
            preshared_key: peer.config.preshared_key.clone(),
            allowed_ips,
            endpoint: Some(parse_endpoint(endpoint)?),
            persistent_keepalive: Some(CLIENT_KEEPALIVE_SECS),
        }],
    };
    Ok(wg_quick::to_string(&config)?)
}

fn parse_endpoint(text: &str) -> anyhow::Result<Endpoint> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(Endpoint::Addr(addr));
    }
    let (host, port) = text
        .rsplit_once(':')
        .with_context(|| format!("endpoint {text:?} must be host:port"))?;
    let port = port
        .parse()
        .with_context(|| format!("endpoint {text:?}: bad port"))?;
    Ok(Endpoint::Host {
        host: host.to_string(),
        port,
    })
}

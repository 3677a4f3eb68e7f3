//! `originRequest`: how the connector dials and talks to an origin. Set at the top level as
//! defaults and per ingress rule as overrides, merged key by key as cloudflared does.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::GoDuration;

/// The effective origin settings of one rule: its own `originRequest`, then the top-level one,
/// then cloudflared's built-in defaults, key by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginRequest {
    /// `connectTimeout`: how long to wait for the TCP (or unix socket) connection. Default 30 s.
    pub connect_timeout: Duration,
    /// `tlsTimeout`: how long to wait for the origin's TLS handshake. Default 10 s.
    pub tls_timeout: Duration,
    /// `tcpKeepAlive`: TCP keep-alive interval on origin connections. Default 30 s.
    pub tcp_keep_alive: Duration,
    /// `noHappyEyeballs`: dial the first resolved address only, no IPv4/IPv6 racing. Default false.
    pub no_happy_eyeballs: bool,
    /// `keepAliveConnections`: idle HTTP connections kept per origin. Default 100.
    pub keep_alive_connections: u32,
    /// `keepAliveTimeout`: how long an idle HTTP connection is kept. Default 1 m 30 s.
    pub keep_alive_timeout: Duration,
    /// `httpHostHeader`: the `Host` header sent to the origin. Default: the request's.
    pub http_host_header: Option<String>,
    /// `originServerName`: the TLS server name expected of the origin. Default: the service host.
    pub origin_server_name: Option<String>,
    /// `caPool`: a PEM file of CAs trusted for the origin, added to the system roots.
    pub ca_pool: Option<PathBuf>,
    /// `noTLSVerify`: accept any origin certificate. Default false. Weakens TLS to the origin.
    pub insecure_no_tls_verify: bool,
    /// `disableChunkedEncoding`: never send chunked request bodies to the origin. Default false.
    pub disable_chunked_encoding: bool,
    /// `proxyProtocol` (Gatehouse): prefix each stream to a `tcp://` origin with a PROXY protocol
    /// v2 header carrying the client address and the identity assertion TLV. Default false; a
    /// top-level `true` applies to `tcp://` rules only.
    pub proxy_protocol: bool,
}

impl Default for OriginRequest {
    /// cloudflared's defaults (docs, "Origin configuration parameters").
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            tls_timeout: Duration::from_secs(10),
            tcp_keep_alive: Duration::from_secs(30),
            no_happy_eyeballs: false,
            keep_alive_connections: 100,
            keep_alive_timeout: Duration::from_secs(90),
            http_host_header: None,
            origin_server_name: None,
            ca_pool: None,
            insecure_no_tls_verify: false,
            disable_chunked_encoding: false,
            proxy_protocol: false,
        }
    }
}

/// One `originRequest` block as written: every key optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawOriginRequest {
    pub(crate) connect_timeout: Option<GoDuration>,
    pub(crate) tls_timeout: Option<GoDuration>,
    pub(crate) tcp_keep_alive: Option<GoDuration>,
    pub(crate) no_happy_eyeballs: Option<bool>,
    pub(crate) keep_alive_connections: Option<u32>,
    pub(crate) keep_alive_timeout: Option<GoDuration>,
    pub(crate) http_host_header: Option<String>,
    pub(crate) origin_server_name: Option<String>,
    pub(crate) ca_pool: Option<PathBuf>,
    #[serde(rename = "noTLSVerify")]
    pub(crate) no_tls_verify: Option<bool>,
    pub(crate) disable_chunked_encoding: Option<bool>,
    pub(crate) proxy_protocol: Option<bool>,
}

impl RawOriginRequest {
    /// `self` over `base`, key by key (cloudflared's `setConfig`).
    pub(crate) fn over(&self, base: &OriginRequest) -> OriginRequest {
        let duration = |own: Option<GoDuration>, base: Duration| own.map_or(base, |d| d.0);
        OriginRequest {
            connect_timeout: duration(self.connect_timeout, base.connect_timeout),
            tls_timeout: duration(self.tls_timeout, base.tls_timeout),
            tcp_keep_alive: duration(self.tcp_keep_alive, base.tcp_keep_alive),
            no_happy_eyeballs: self.no_happy_eyeballs.unwrap_or(base.no_happy_eyeballs),
            keep_alive_connections: self
                .keep_alive_connections
                .unwrap_or(base.keep_alive_connections),
            keep_alive_timeout: duration(self.keep_alive_timeout, base.keep_alive_timeout),
            http_host_header: text_over(&self.http_host_header, &base.http_host_header),
            origin_server_name: text_over(&self.origin_server_name, &base.origin_server_name),
            ca_pool: match &self.ca_pool {
                Some(path) if path.as_os_str().is_empty() => None,
                Some(path) => Some(path.clone()),
                None => base.ca_pool.clone(),
            },
            insecure_no_tls_verify: self.no_tls_verify.unwrap_or(base.insecure_no_tls_verify),
            disable_chunked_encoding: self
                .disable_chunked_encoding
                .unwrap_or(base.disable_chunked_encoding),
            proxy_protocol: self.proxy_protocol.unwrap_or(base.proxy_protocol),
        }
    }
}

/// A key set on the rule wins, and an empty string there clears the default: cloudflared copies a
/// present override as is and treats an empty value as unset.
fn text_over(own: &Option<String>, base: &Option<String>) -> Option<String> {
    match own {
        Some(text) if text.is_empty() => None,
        Some(text) => Some(text.clone()),
        None => base.clone(),
    }
}

//! quinn configurations: the edge's server side and the connector's client side.
//!
//! Both speak TLS 1.3 only (QUIC requires it, RFC 9001 §4.2) with ring as the crypto provider
//! and offer exactly one ALPN, [`tunnel_proto::ALPN`]; a peer offering another fails the
//! handshake with `no_application_protocol`. The connector trusts only the deployment CA it is
//! given, never the system roots, and checks the edge's name.

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Streams a connector may have open toward an edge, and the edge toward it, at once. One
/// proxied TCP flow or HTTP request is one stream.
pub const DEFAULT_MAX_BIDI_STREAMS: u32 = 1024;

/// A connection with no packets for this long is dead (RFC 9000 §10.1); five keep-alives fit.
/// cloudflared's tunnel uses the same 5 s and 1 s (its `quic/constants.go`). It bounds how long
/// an edge keeps giving new flows to a connector that died without a `Drain` (SIGKILL, power
/// loss): in the e2e test of a killed replica, a 30 s timeout left flows hanging on the dead
/// connection for 25 s after the kill. Also how long a dial to a dead edge takes to fail.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// QUIC PING interval, so that NAT bindings in front of a connector stay open and a dead path is
/// seen well within [`IDLE_TIMEOUT`]; a few bytes a second per connection.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(1);

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid tls configuration")]
    Tls(#[from] rustls::Error),
    #[error("tls configuration has no tls 1.3 cipher suite usable for quic initial packets")]
    NoInitialCipherSuite,
    #[error("invalid pem")]
    Pem(#[source] rustls::pki_types::pem::Error),
    #[error("pem has no certificate")]
    NoCertificate,
    #[error("idle timeout exceeds 2^62 milliseconds")]
    IdleTimeoutTooLarge,
    #[error("ca certificate not accepted as a trust anchor")]
    BadTrustAnchor(#[source] rustls::Error),
}

/// Limits of the edge's QUIC server.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    /// Concurrent bidirectional streams per connection; default [`DEFAULT_MAX_BIDI_STREAMS`].
    pub max_bidi_streams: u32,
    /// Default [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// Default [`KEEP_ALIVE_INTERVAL`].
    pub keep_alive: Duration,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            max_bidi_streams: DEFAULT_MAX_BIDI_STREAMS,
            idle_timeout: IDLE_TIMEOUT,
            keep_alive: KEEP_ALIVE_INTERVAL,
        }
    }
}

/// The edge's server configuration: `cert_chain` (leaf first) and its `key`, ALPN
/// `gatehouse-tunnel/1` only, TLS 1.3 only, `limits`, QUIC datagrams enabled.
///
/// # Errors
/// The key does not match the certificate or is of an unsupported type.
pub fn edge_server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    limits: &EdgeLimits,
) -> Result<quinn::ServerConfig, ConfigError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(cert_chain, key)?;
    tls.alpn_protocols = vec![tunnel_proto::ALPN.to_vec()];
    // 0-RTT data is replayable; nothing here needs it.
    tls.max_early_data_size = 0;
    let crypto = QuicServerConfig::try_from(tls).map_err(|_| ConfigError::NoInitialCipherSuite)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport(limits)?));
    Ok(config)
}

/// [`edge_server_config`] from PEM text: a certificate chain and a PKCS#8, SEC1 or PKCS#1 key.
///
/// # Errors
/// The PEM is invalid or empty, or see [`edge_server_config`].
pub fn edge_server_config_from_pem(
    cert_chain_pem: &str,
    key_pem: &str,
    limits: &EdgeLimits,
) -> Result<quinn::ServerConfig, ConfigError> {
    let chain = certs_from_pem(cert_chain_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(ConfigError::Pem)?;
    edge_server_config(chain, key, limits)
}

/// The connector's client configuration: trusts only the CA certificate(s) in `ca_pem`, ALPN
/// `gatehouse-tunnel/1` only, TLS 1.3 only, keep-alive and idle timeout as the edge's defaults.
/// The server name is checked against the name given to [`quinn::Endpoint::connect`].
///
/// # Errors
/// The PEM holds no certificate or one that is not a usable trust anchor.
pub fn connector_client_config(ca_pem: &str) -> Result<quinn::ClientConfig, ConfigError> {
    client_config_with_alpn(ca_pem, vec![tunnel_proto::ALPN.to_vec()])
}

/// Like [`connector_client_config`] with other ALPN ids: only for tests of the edge's refusal.
///
/// # Errors
/// See [`connector_client_config`].
pub fn insecure_client_config_with_alpn(
    ca_pem: &str,
    alpn: Vec<Vec<u8>>,
) -> Result<quinn::ClientConfig, ConfigError> {
    client_config_with_alpn(ca_pem, alpn)
}

fn client_config_with_alpn(
    ca_pem: &str,
    alpn: Vec<Vec<u8>>,
) -> Result<quinn::ClientConfig, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs_from_pem(ca_pem)? {
        roots.add(cert).map_err(ConfigError::BadTrustAnchor)?;
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = alpn;
    tls.enable_early_data = false;
    let crypto = QuicClientConfig::try_from(tls).map_err(|_| ConfigError::NoInitialCipherSuite)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport(&EdgeLimits::default())?));
    Ok(config)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(ConfigError::Pem)?;
    if certs.is_empty() {
        return Err(ConfigError::NoCertificate);
    }
    Ok(certs)
}

fn transport(limits: &EdgeLimits) -> Result<TransportConfig, ConfigError> {
    let mut transport = TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(limits.max_bidi_streams))
        // The protocol uses no unidirectional streams.
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .max_idle_timeout(Some(
            IdleTimeout::try_from(limits.idle_timeout)
                .map_err(|_| ConfigError::IdleTimeoutTooLarge)?,
        ))
        .keep_alive_interval(Some(limits.keep_alive))
        .datagram_receive_buffer_size(Some(1024 * 1024));
    Ok(transport)
}

/// A QUIC endpoint on a UDP socket with large buffers (the WireGuard socket's setup: 7 MiB,
/// forced past `net.core.rmem_max` when the process may). quinn's own bind keeps the 208 KiB
/// default, which overflowed under a single bulk flow (receive-buffer drops become QUIC
/// losses and shrink the congestion window).
///
/// # Errors
/// The socket cannot be bound. Must be called inside a tokio runtime.
pub fn endpoint(
    addr: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let socket = wg_driver::udp::bind(addr, None)
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?
        .into_std()?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
}

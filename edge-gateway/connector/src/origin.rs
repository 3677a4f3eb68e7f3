//! Dialing origins: for a matched rule's service, a bidirectional byte stream to the origin,
//! honouring the rule's `originRequest` (`connectTimeout`, `tcpKeepAlive`, `noHappyEyeballs`,
//! `tlsTimeout`, `caPool`, `noTLSVerify`, `originServerName`, `proxyProtocol`).
//!
//! What the stream carries is the transport's business: the edge's HTTP request for HTTP
//! services, raw bytes for `tcp://`. `http_status:NNN` is answered here, on an in-memory stream.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use connector_config::{OriginRequest, Rule, Service};
use rustls::pki_types::ServerName;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

use crate::origin_tls;
use crate::proxy_protocol::{self, HeaderTooLong, ProxyHeader};

/// RFC 8305 §5 "Connection Attempt Delay": start the next address when the previous attempt has
/// not finished after this long (the recommended default).
const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// The longest request head the local `http_status:` responder reads before it answers anyway.
const MAX_STATUS_REQUEST_HEAD: usize = 16 * 1024;

/// What the edge told the connector about the stream's client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientInfo<'a> {
    /// The client's address (its tunnel address), for PROXY protocol.
    pub source: Option<SocketAddr>,
    /// The identity assertion (JWT), for PROXY protocol's identity TLV.
    pub assertion: Option<&'a str>,
}

/// Why an origin could not be dialed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The origin's name did not resolve.
    #[error("failed to resolve the origin's address")]
    Resolve(#[source] io::Error),
    /// The name resolved to nothing.
    #[error("the origin's name resolved to no address")]
    NoAddress,
    /// `connectTimeout` passed before a connection was made.
    #[error("connecting to the origin timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The origin refused or the network failed.
    #[error("failed to connect to the origin")]
    Connect(#[source] io::Error),
    /// `tlsTimeout` passed before the origin finished its TLS handshake.
    #[error("the origin's TLS handshake timed out after {0:?}")]
    TlsTimeout(Duration),
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol error).
    #[error("the origin's TLS handshake failed")]
    Tls(#[source] io::Error),
    /// `originServerName` (or the service host) is not a DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// The TLS client for the rule could not be built (`caPool` unreadable or empty).
    #[error(transparent)]
    TlsConfig(#[from] origin_tls::TlsConfigError),
    /// The PROXY protocol header does not fit (an oversized assertion).
    #[error(transparent)]
    ProxyHeaderTooLong(#[from] HeaderTooLong),
    /// Writing the PROXY protocol header failed.
    #[error("failed to send the PROXY protocol header")]
    ProxyHeader(#[source] io::Error),
}

/// A connected origin: TCP, unix socket, TLS over either, or the local `http_status:` responder.
pub struct OriginStream {
    inner: Pin<Box<dyn Duplex>>,
    peer: Option<SocketAddr>,
}

impl OriginStream {
    /// The origin's TCP address; `None` for unix sockets and `http_status:`.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    fn new(inner: impl Duplex + 'static, peer: Option<SocketAddr>) -> Self {
        Self {
            inner: Box::pin(inner),
            peer,
        }
    }
}

impl std::fmt::Debug for OriginStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginStream")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for OriginStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().inner.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for OriginStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().inner.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner.as_mut().poll_shutdown(cx)
    }
}

/// Anything [`OriginStream`] can wrap.
trait Duplex: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> Duplex for T {}

/// Dials origins. Cheap to clone; clones share the cache of TLS client configurations (one per
/// `caPool` and `noTLSVerify` pair), which [`Self::forget_tls_configs`] empties after a reload.
#[derive(Debug, Clone, Default)]
pub struct OriginDialer {
    tls: Arc<Mutex<BTreeMap<TlsKey, Arc<rustls::ClientConfig>>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TlsKey {
    ca_pool: Option<PathBuf>,
    insecure_no_tls_verify: bool,
}

impl OriginDialer {
    /// A dialer with an empty TLS cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects to `rule`'s origin with the rule's effective `originRequest`.
    ///
    /// # Errors
    /// See [`DialError`].
    pub async fn connect(
        &self,
        rule: &Rule,
        client: &ClientInfo<'_>,
    ) -> Result<OriginStream, DialError> {
        self.connect_service(rule.service(), rule.origin_request(), client)
            .await
    }

    /// Connects to `service` with `options`.
    ///
    /// # Errors
    /// See [`DialError`].
    pub async fn connect_service(
        &self,
        service: &Service,
        options: &OriginRequest,
        client: &ClientInfo<'_>,
    ) -> Result<OriginStream, DialError> {
        match service {
            Service::Http { tls: false, origin } | Service::Tcp { origin } => {
                self.connect_tcp(&origin.host, origin.port, options, client)
                    .await
            }
            Service::Http { tls: true, origin } => {
                let tcp = connect_tcp(&origin.host, origin.port, options).await?;
                let peer = tcp.peer_addr().ok();
                let name = options
                    .origin_server_name
                    .as_deref()
                    .unwrap_or(&origin.host);
                let tls = self.handshake(tcp, name, options).await?;
                Ok(OriginStream::new(tls, peer))
            }
            Service::Unix { path, tls } => {
                let connect = UnixStream::connect(path);
                let unix = tokio::time::timeout(options.connect_timeout, connect)
                    .await
                    .map_err(|_| DialError::ConnectTimeout(options.connect_timeout))?
                    .map_err(DialError::Connect)?;
                if *tls {
                    let name = options.origin_server_name.as_deref().unwrap_or("localhost");
                    let tls = self.handshake(unix, name, options).await?;
                    Ok(OriginStream::new(tls, None))
                } else {
                    Ok(OriginStream::new(unix, None))
                }
            }
            Service::HttpStatus(code) => Ok(OriginStream::new(status_responder(*code), None)),
        }
    }

    /// Connects to `host:port` over TCP: a `tcp://` or `http://` service, or a private-route
    /// destination (with the ingress defaults as `options`). With `options.proxy_protocol`, the
    /// stream starts with a PROXY protocol v2 header carrying `client`.
    ///
    /// # Errors
    /// See [`DialError`].
    pub async fn connect_tcp(
        &self,
        host: &str,
        port: u16,
        options: &OriginRequest,
        client: &ClientInfo<'_>,
    ) -> Result<OriginStream, DialError> {
        let mut tcp = connect_tcp(host, port, options).await?;
        let peer = tcp.peer_addr().map_err(DialError::Connect)?;
        if options.proxy_protocol {
            let header = proxy_protocol::encode(&ProxyHeader {
                source: client.source,
                destination: peer,
                assertion: client.assertion.map(str::as_bytes),
            })?;
            tcp.write_all(&header)
                .await
                .map_err(DialError::ProxyHeader)?;
        }
        Ok(OriginStream::new(tcp, Some(peer)))
    }

    /// Empties the TLS cache, so `caPool` files are read again.
    pub fn forget_tls_configs(&self) {
        self.tls_cache().clear();
    }

    async fn handshake<S>(
        &self,
        stream: S,
        server_name: &str,
        options: &OriginRequest,
    ) -> Result<tokio_rustls::client::TlsStream<S>, DialError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| DialError::ServerName(server_name.to_owned()))?;
        let config = self.tls_config(options)?;
        let handshake = TlsConnector::from(config).connect(name, stream);
        tokio::time::timeout(options.tls_timeout, handshake)
            .await
            .map_err(|_| DialError::TlsTimeout(options.tls_timeout))?
            .map_err(DialError::Tls)
    }

    fn tls_config(&self, options: &OriginRequest) -> Result<Arc<rustls::ClientConfig>, DialError> {
        let key = TlsKey {
            ca_pool: options.ca_pool.clone(),
            insecure_no_tls_verify: options.insecure_no_tls_verify,
        };
        if let Some(config) = self.tls_cache().get(&key) {
            return Ok(Arc::clone(config));
        }
        let config = Arc::new(origin_tls::client_config(
            key.ca_pool.as_deref(),
            key.insecure_no_tls_verify,
        )?);
        self.tls_cache().insert(key, Arc::clone(&config));
        Ok(config)
    }

    fn tls_cache(&self) -> std::sync::MutexGuard<'_, BTreeMap<TlsKey, Arc<rustls::ClientConfig>>> {
        self.tls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Resolves and connects within `connectTimeout`, then sets `tcpKeepAlive` and `TCP_NODELAY`.
async fn connect_tcp(
    host: &str,
    port: u16,
    options: &OriginRequest,
) -> Result<TcpStream, DialError> {
    let attempt = async {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(DialError::Resolve)?
            .collect();
        connect_addresses(addresses, options.no_happy_eyeballs).await
    };
    let stream = tokio::time::timeout(options.connect_timeout, attempt)
        .await
        .map_err(|_| DialError::ConnectTimeout(options.connect_timeout))??;
    // Splicing small writes (SSH keystrokes, database round trips) must not wait for Nagle.
    stream.set_nodelay(true).map_err(DialError::Connect)?;
    if !options.tcp_keep_alive.is_zero() {
        let keepalive = TcpKeepalive::new()
            .with_time(options.tcp_keep_alive)
            .with_interval(options.tcp_keep_alive);
        SockRef::from(&stream)
            .set_tcp_keepalive(&keepalive)
            .map_err(DialError::Connect)?;
    }
    Ok(stream)
}

/// The first address only with `no_happy_eyeballs`; otherwise RFC 8305 style: families
/// interleaved, a new attempt every [`CONNECTION_ATTEMPT_DELAY`] (or as soon as one fails), the
/// first to connect wins and the others are dropped.
pub(crate) async fn connect_addresses(
    addresses: Vec<SocketAddr>,
    no_happy_eyeballs: bool,
) -> Result<TcpStream, DialError> {
    if no_happy_eyeballs {
        let first = addresses.first().ok_or(DialError::NoAddress)?;
        return TcpStream::connect(first).await.map_err(DialError::Connect);
    }
    let mut pending = interleave_families(addresses).into_iter();
    let mut attempts = JoinSet::new();
    let mut last_error = None;
    loop {
        if attempts.is_empty() {
            match pending.next() {
                Some(address) => {
                    attempts.spawn(TcpStream::connect(address));
                }
                None => {
                    return Err(last_error.map_or(DialError::NoAddress, DialError::Connect));
                }
            }
        }
        tokio::select! {
            finished = attempts.join_next() => match finished {
                Some(Ok(Ok(stream))) => return Ok(stream),
                Some(Ok(Err(error))) => {
                    last_error = Some(error);
                    if let Some(address) = pending.next() {
                        attempts.spawn(TcpStream::connect(address));
                    }
                }
                Some(Err(join)) => last_error = Some(io::Error::other(join)),
                None => {}
            },
            () = tokio::time::sleep(CONNECTION_ATTEMPT_DELAY), if pending.len() > 0 => {
                if let Some(address) = pending.next() {
                    attempts.spawn(TcpStream::connect(address));
                }
            }
        }
    }
}

/// RFC 8305 §4: alternate address families, starting with the family of the first address.
pub(crate) fn interleave_families(addresses: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addresses.first() else {
        return addresses;
    };
    let first_is_v6 = first.is_ipv6();
    let (mut primary, mut secondary): (Vec<_>, Vec<_>) = addresses
        .into_iter()
        .partition(|a| a.is_ipv6() == first_is_v6);
    let mut out = Vec::with_capacity(primary.len() + secondary.len());
    primary.reverse();
    secondary.reverse();
    loop {
        match (primary.pop(), secondary.pop()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

/// The response `http_status:NNN` gives every request: the status, no body, then close.
pub fn status_response(code: u16) -> String {
    let reason = axum::http::StatusCode::from_u16(code)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("");
    format!("HTTP/1.1 {code} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
}

/// An in-memory origin that reads one request head and answers [`status_response`].
fn status_responder(code: u16) -> tokio::io::DuplexStream {
    let (ours, mut theirs) = tokio::io::duplex(MAX_STATUS_REQUEST_HEAD);
    tokio::spawn(async move {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while head.len() < MAX_STATUS_REQUEST_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match theirs.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let response = status_response(code);
        if let Err(error) = theirs.write_all(response.as_bytes()).await {
            tracing::debug!(%error, "the http_status client went away");
        }
        let _ = theirs.shutdown().await;
    });
    ours
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn families_alternate_from_the_first_one() {
        let input = vec![
            addr("[2001:db8::1]:80"),
            addr("[2001:db8::2]:80"),
            addr("[2001:db8::3]:80"),
            addr("192.0.2.1:80"),
        ];
        assert_eq!(
            interleave_families(input),
            [
                addr("[2001:db8::1]:80"),
                addr("192.0.2.1:80"),
                addr("[2001:db8::2]:80"),
                addr("[2001:db8::3]:80"),
            ]
        );
    }

    #[test]
    fn status_response_has_the_reason_phrase() {
        assert_eq!(
            status_response(404),
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(
            status_response(599),
            "HTTP/1.1 599 \r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
    }

    /// An address that refuses connections: a port that was just released.
    async fn refusing() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }

    #[tokio::test]
    async fn no_happy_eyeballs_dials_only_the_first_address() {
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addresses = vec![refusing().await, open.local_addr().unwrap()];
        assert!(matches!(
            connect_addresses(addresses.clone(), true).await,
            Err(DialError::Connect(_))
        ));
        let stream = connect_addresses(addresses, false).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap(), open.local_addr().unwrap());
    }

    #[tokio::test]
    async fn no_address_is_an_error() {
        assert!(matches!(
            connect_addresses(Vec::new(), false).await,
            Err(DialError::NoAddress)
        ));
        assert!(matches!(
            connect_addresses(Vec::new(), true).await,
            Err(DialError::NoAddress)
        ));
    }
}

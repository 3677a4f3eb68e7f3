//! [`TunnelTransport`]: the connector's QUIC tunnel to the edges, on `edge-gateway/tunnel`.
//!
//! At start it reads the credentials file ([`crate::credentials`]), the edge CA
//! (`edge-ca-file`) and the edges (`edges`, `host:port`, the host being the TLS server name),
//! and, for a `Secret`, exchanges it for a connector credential (renewed at 80 % of its
//! lifetime with [`Dialer::set_credential`]). It keeps `ha-connections` connections, spread
//! round-robin over the edges, each re-dialed with full-jitter backoff; a registered one holds a
//! [`Metrics::connection_registered`] guard (what `/ready` counts). A reload announces the new
//! routes to every live session with `UpdateRoutes`, without reconnecting.
//!
//! Streams ([`OriginHandler`]): `Tcp` goes to a `private-routes` address directly, else to the
//! ingress rule of the destination host; a destination no rule serves (an `http_status:` rule)
//! is refused `no_route`. `Http` is accepted, its request head read (the rule is matched by the
//! destination host and the request path), rewritten ([`crate::http_request`]) and forwarded; an
//! origin that cannot be dialed is answered `502`, an `http_status:` rule with its status.
//! UDP flows (QUIC datagrams) go to a `private-routes` address ([`crate::udp_origin`]).
//!
//! On drain every session sends `Drain`, waits for its streams (up to `grace-period`), says
//! `Goodbye` and closes; the transport returns when all have.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use connector_config::{Config, Rule, Service};
use rand::rngs::StdRng;
use rand::SeedableRng as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn, Instrument as _};
use tunnel::backoff::{backoff_delay, BACKOFF_BASE, BACKOFF_CAP};
use tunnel::connector::{
    accept_stream, refuse_stream, run_sessions, shutdown_requested, DialError, Dialer,
    DialerConfig, IncomingStream, IncomingUdpFlow, Session, SessionEnd, StreamHandler,
};
use tunnel_proto::{Credential, Destination, Protocol, RefuseCode, Route};

use crate::credentials::{self, CredentialSource, Credentials};
use crate::http_request::{self, parse_head, HeadError, MAX_REQUEST_HEAD};
use crate::live_config::LiveConfig;
use crate::metrics::Metrics;
use crate::origin::{self, ClientInfo, OriginDialer};
use crate::transport::{Transport, TransportContext};

/// The QUIC transport to the edges; see the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct TunnelTransport;

impl Transport for TunnelTransport {
    async fn run(self, context: TransportContext) -> anyhow::Result<()> {
        let TransportContext {
            config,
            metrics,
            origins,
            mut drain,
            local_http: _,
        } = context;
        let startup = config.current();
        let setup = Setup::load(&startup).await?;
        let http = reqwest::Client::builder()
            .build()
            .context("failed to build the HTTP client for identity")?;

        let (credential, renewal) = match &setup.credentials.source {
            CredentialSource::Fixed(jwt) => {
                use secrecy::ExposeSecret as _;
                (Credential(jwt.expose_secret().to_owned()), None)
            }
            CredentialSource::Exchange { identity, secret } => {
                let issued = tokio::select! {
                    issued = exchange_until_issued(&http, identity, secret) => issued,
                    () = drain.requested() => return Ok(()),
                };
                let next = credentials::refresh_after(issued.expires_in);
                (issued.credential, Some(next))
            }
        };

        let routes = wire_routes(&startup);
        let mut dialers = Vec::new();
        let count = usize::try_from(startup.ha_connections.get()).unwrap_or(usize::MAX);
        for slot in 0..count {
            let (addr, server_name) = &setup.edges[slot % setup.edges.len()];
            let mut dialer = DialerConfig::new(
                *addr,
                server_name.clone(),
                setup.client_config.clone(),
                setup.credentials.tunnel_id.clone(),
                setup.credentials.connector_id.clone(),
                credential.clone(),
            );
            dialer.routes = routes.clone();
            dialer.drain_grace = startup.grace_period;
            dialer.udp_counters = metrics.udp_tunnel();
            let dialer = Dialer::new(dialer).context("failed to bind a UDP socket for QUIC")?;
            dialers.push(Arc::new(dialer));
        }
        info!(
            connections = count,
            edges = setup.edges.len(),
            "connecting to edges"
        );
        drop(startup);

        let live = Arc::new(LiveSessions::default());
        let handler: Arc<dyn StreamHandler> = Arc::new(OriginHandler {
            config: config.clone(),
            metrics: Arc::clone(&metrics),
            origins,
        });
        let (stop, stopped) = watch::channel(false);
        let mut slots = JoinSet::new();
        for (slot, dialer) in dialers.iter().enumerate() {
            let task = keep_connected(
                Slot {
                    index: slot,
                    dialer: Arc::clone(dialer),
                    handler: Arc::clone(&handler),
                    live: Arc::clone(&live),
                    metrics: Arc::clone(&metrics),
                    config: config.clone(),
                },
                stopped.clone(),
            );
            slots.spawn(task.instrument(tracing::info_span!("edge_connection", slot)));
        }
        let _announcer = AbortOnDrop(tokio::spawn(announce_routes(
            config.clone(),
            dialers.clone(),
            Arc::clone(&live),
        )));
        let mut _renewer = None;
        if let (CredentialSource::Exchange { identity, secret }, Some(after)) =
            (&setup.credentials.source, renewal)
        {
            let task = renew_credentials(http, identity.clone(), secret.clone(), after, dialers);
            _renewer = Some(AbortOnDrop(tokio::spawn(task)));
        }

        let stopped_unasked = tokio::select! {
            () = drain.requested() => None,
            Some(ended) = slots.join_next() => Some(ended),
        };
        if let Some(ended) = stopped_unasked {
            let _ = stop.send(true);
            return match ended {
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("the edge refused this connector")),
                Ok(Ok(())) => Err(anyhow::anyhow!("an edge connection stopped unasked")),
                Err(e) => Err(anyhow::Error::new(e).context("an edge connection task failed")),
            };
        }
        info!("draining edge connections");
        let _ = stop.send(true);
        while slots.join_next().await.is_some() {}
        Ok(())
    }
}

/// What `run` reads once at start.
struct Setup {
    credentials: Credentials,
    client_config: quinn::ClientConfig,
    /// Each edge's first resolved address and its TLS server name.
    edges: Vec<(SocketAddr, String)>,
}

impl Setup {
    async fn load(config: &Config) -> anyhow::Result<Self> {
        let path = config
            .credentials_file
            .as_deref()
            .context("`credentials-file` is required to reach the edges")?;
        let credentials = Credentials::load(path)?;
        let ca_path = config
            .edge_ca_file
            .as_deref()
            .context("`edge-ca-file` is required to reach the edges")?;
        let ca_pem = tokio::fs::read_to_string(ca_path)
            .await
            .with_context(|| format!("failed to read the edge CA {}", ca_path.display()))?;
        let client_config = tunnel::config::connector_client_config(&ca_pem)
            .with_context(|| format!("invalid edge CA {}", ca_path.display()))?;
        if config.edges.is_empty() {
            anyhow::bail!("`edges` lists no edge to dial");
        }
        let mut edges = Vec::new();
        for edge in &config.edges {
            let addr = tokio::net::lookup_host((edge.host.as_str(), edge.port))
                .await
                .with_context(|| format!("failed to resolve the edge {edge}"))?
                .next()
                .with_context(|| format!("the edge {edge} resolved to no address"))?;
            edges.push((addr, edge.host.clone()));
        }
        Ok(Self {
            credentials,
            client_config,
            edges,
        })
    }
}

/// The routes of `config` as the tunnel protocol carries them.
pub fn wire_routes(config: &Config) -> Vec<Route> {
    config
        .routes()
        .into_iter()
        .map(|route| match route {
            connector_config::Route::Hostname {
                hostname,
                path_prefix,
            } => Route::Hostname {
                pattern: hostname,
                path_prefix,
            },
            connector_config::Route::Private(net) => Route::Cidr(net),
        })
        .collect()
}

/// The registered sessions by slot, and the routes of the latest reload (re-announced to every
/// session that registers after one).
#[derive(Default)]
struct LiveSessions {
    inner: Mutex<LiveInner>,
}

#[derive(Default)]
struct LiveInner {
    sessions: BTreeMap<usize, Arc<Session>>,
    routes: Option<Vec<Route>>,
}

impl LiveSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, LiveInner> {
        // Every critical section leaves the map whole.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One of the `ha-connections`.
struct Slot {
    index: usize,
    dialer: Arc<Dialer>,
    handler: Arc<dyn StreamHandler>,
    live: Arc<LiveSessions>,
    metrics: Arc<Metrics>,
    config: LiveConfig,
}

/// Keeps the slot's connection registered until `stop` turns true, then drains it with the
/// grace period in force: [`tunnel::connector::run_sessions`], serving each session by
/// counting it for `/ready`, listing it for route announcements and, when a reload happened
/// since the connector started, re-announcing the current routes (a reload during the dial may
/// have missed it; an extra `UpdateRoutes` is harmless).
///
/// # Errors
/// The edge rejected the registration as `revoked`.
async fn keep_connected(slot: Slot, stop: watch::Receiver<bool>) -> Result<(), DialError> {
    let result = run_sessions(
        &slot.dialer,
        Arc::clone(&slot.handler),
        stop,
        |session, mut stop| {
            let slot = &slot;
            async move {
                let session = Arc::new(session);
                let _registered = slot.metrics.connection_registered();
                let routes = {
                    let mut live = slot.live.lock();
                    live.sessions.insert(slot.index, Arc::clone(&session));
                    live.routes.clone()
                };
                if let Some(routes) = routes {
                    let _ = session.update_routes(routes).await;
                }
                let ended = tokio::select! {
                    e = session.closed() => Some(e),
                    () = shutdown_requested(&mut stop) => None,
                };
                slot.live.lock().sessions.remove(&slot.index);
                match ended {
                    Some(e) => SessionEnd::Closed(e),
                    None => {
                        let grace = slot.config.current().grace_period;
                        let _ = session.drain(grace).await;
                        SessionEnd::Shutdown
                    }
                }
            }
        },
    )
    .await;
    if let Err(DialError::Rejected { code, .. }) = &result {
        error!(%code, "the edge says this connector is revoked");
    }
    result
}

/// After each reload: the new routes for the next `Register` of every dialer, and
/// `UpdateRoutes` on every live session.
async fn announce_routes(
    mut config: LiveConfig,
    dialers: Vec<Arc<Dialer>>,
    live: Arc<LiveSessions>,
) {
    while let Some(new) = config.changed().await {
        let routes = wire_routes(&new);
        let sessions: Vec<Arc<Session>> = {
            let mut inner = live.lock();
            for dialer in &dialers {
                dialer.set_routes(routes.clone());
            }
            inner.routes = Some(routes.clone());
            inner.sessions.values().cloned().collect()
        };
        for session in sessions {
            match session.update_routes(routes.clone()).await {
                Ok(()) => debug!(connection = session.connection_id().0, "routes announced"),
                Err(e) => debug!(error = %e, "failed to announce routes; the re-dial will"),
            }
        }
        info!(
            routes = routes.len(),
            "announced the reloaded routes to the edges"
        );
    }
}

/// Exchanges the secret until identity issues a credential, backing off between failures.
async fn exchange_until_issued(
    http: &reqwest::Client,
    identity: &url::Url,
    secret: &secrecy::SecretString,
) -> credentials::IssuedCredential {
    let mut rng = StdRng::from_entropy();
    let mut attempt = 0u32;
    loop {
        match credentials::exchange(http, identity, secret).await {
            Ok(issued) => {
                info!(expires_in = ?issued.expires_in, "identity issued a connector credential");
                return issued;
            }
            Err(e) => warn!(
                error = %crate::error_chain(&e),
                attempt,
                "failed to get a connector credential from identity"
            ),
        }
        let delay = backoff_delay(attempt, BACKOFF_BASE, BACKOFF_CAP, &mut rng);
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(delay).await;
    }
}

/// Renews the credential at 80 % of each one's lifetime and hands it to every dialer (sessions
/// already registered keep going; the next `Register` uses it).
async fn renew_credentials(
    http: reqwest::Client,
    identity: url::Url,
    secret: secrecy::SecretString,
    mut after: Duration,
    dialers: Vec<Arc<Dialer>>,
) {
    loop {
        tokio::time::sleep(after).await;
        let issued = exchange_until_issued(&http, &identity, &secret).await;
        for dialer in &dialers {
            dialer.set_credential(issued.credential.clone());
        }
        after = credentials::refresh_after(issued.expires_in);
    }
}

/// Serves flow streams: matches the rule, dials the origin, splices.
struct OriginHandler {
    config: LiveConfig,
    metrics: Arc<Metrics>,
    origins: OriginDialer,
}

impl StreamHandler for OriginHandler {
    fn handle(&self, stream: IncomingStream) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        // Looked up once: a reload never changes a stream's rule mid-way.
        let config = self.config.current();
        let metrics = Arc::clone(&self.metrics);
        let origins = self.origins.clone();
        let span = tracing::debug_span!("stream", request = stream.header.request_id.0);
        Box::pin(serve_stream(stream, config, metrics, origins).instrument(span))
    }

    fn handle_udp(
        &self,
        flow: IncomingUdpFlow,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        // Looked up once, like a stream's rule.
        let config = self.config.current();
        let metrics = Arc::clone(&self.metrics);
        Box::pin(crate::udp_origin::serve_udp(flow, config, metrics))
    }
}

async fn serve_stream(
    stream: IncomingStream,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    origins: OriginDialer,
) {
    let _open = metrics.stream_opened();
    match stream.header.protocol {
        Protocol::Tcp => serve_tcp(stream, &config, &metrics, &origins).await,
        Protocol::Http => serve_http(stream, &config, &metrics, &origins).await,
        Protocol::Udp => {
            let mut send = stream.send;
            let message = "udp flows are served as datagrams, not over streams";
            let _ = refuse_stream(&mut send, RefuseCode::PROTOCOL_ERROR, message).await;
        }
    }
}

/// Where a TCP flow goes.
enum TcpTarget<'a> {
    /// A `private-routes` address, dialed as is.
    Private(SocketAddr),
    /// An ingress rule (0-based index).
    Rule(usize, &'a Rule),
}

/// A private-route address first, else the rule of the destination's host; `None` when no rule
/// with an origin takes it (only an `http_status:` rule matched).
fn tcp_target<'a>(config: &'a Config, destination: &Destination) -> Option<TcpTarget<'a>> {
    let host = match destination {
        Destination::Addr(addr) => {
            if is_private(config, addr.ip()) {
                return Some(TcpTarget::Private(*addr));
            }
            addr.ip().to_string()
        }
        Destination::Host { host, .. } => host.clone(),
    };
    let (index, rule) = config.ingress.matching_rule(&host, "/");
    match rule.service() {
        Service::HttpStatus(_) => None,
        Service::Http { .. } | Service::Tcp { .. } | Service::Unix { .. } => {
            Some(TcpTarget::Rule(index, rule))
        }
    }
}

async fn serve_tcp(
    stream: IncomingStream,
    config: &Config,
    metrics: &Metrics,
    origins: &OriginDialer,
) {
    let IncomingStream {
        header,
        mut send,
        recv,
    } = stream;
    let client = ClientInfo {
        source: header.source,
        assertion: header.assertion.as_ref().map(|a| a.0.as_str()),
    };
    let (origin, counters) = match tcp_target(config, &header.destination) {
        None => {
            debug!("no rule or private route for the destination");
            let message = "no ingress rule or private route covers the destination";
            let _ = refuse_stream(&mut send, RefuseCode::NO_ROUTE, message).await;
            return;
        }
        Some(TcpTarget::Private(addr)) => {
            let host = addr.ip().to_string();
            let options = config.ingress.defaults();
            let origin = origins
                .connect_tcp(&host, addr.port(), options, &client)
                .await;
            (origin, None)
        }
        Some(TcpTarget::Rule(index, rule)) => {
            let counters = metrics.rule(index + 1);
            counters.record_request();
            (origins.connect(rule, &client).await, Some(counters))
        }
    };
    let mut origin = match origin {
        Ok(origin) => origin,
        Err(e) => {
            if let Some(counters) = &counters {
                counters.record_error();
            }
            debug!(error = %crate::error_chain(&e), "failed to dial the origin");
            let (code, message) = refusal(&e);
            let _ = refuse_stream(&mut send, code, message).await;
            return;
        }
    };
    if accept_stream(&mut send).await.is_err() {
        return;
    }
    let mut tunnel = tokio::io::join(recv, send);
    splice(&mut tunnel, &mut origin).await;
}

async fn serve_http(
    stream: IncomingStream,
    config: &Config,
    metrics: &Metrics,
    origins: &OriginDialer,
) {
    let IncomingStream {
        header,
        mut send,
        mut recv,
    } = stream;
    if accept_stream(&mut send).await.is_err() {
        return;
    }
    let (head, buffered) = match read_head(&mut recv).await {
        Ok(read) => read,
        Err(ReadHeadError::Head(HeadError::TooLarge)) => {
            let response = http_request::status_response(431, "Request Header Fields Too Large");
            answer(&mut send, &response).await;
            return;
        }
        Err(ReadHeadError::Head(HeadError::Invalid)) => {
            answer(
                &mut send,
                &http_request::status_response(400, "Bad Request"),
            )
            .await;
            return;
        }
        Err(ReadHeadError::Stream) => return,
    };
    let host = match &header.destination {
        Destination::Host { host, .. } => host.clone(),
        Destination::Addr(addr) => addr.ip().to_string(),
    };
    let (index, rule) = config.ingress.matching_rule(&host, head.path());
    let counters = metrics.rule(index + 1);
    counters.record_request();
    let assertion = header.assertion.as_ref().map(|a| a.0.as_str());
    let client = ClientInfo {
        source: header.source,
        assertion,
    };
    let mut origin = match origins.connect(rule, &client).await {
        Ok(origin) => origin,
        Err(e) => {
            counters.record_error();
            debug!(error = %crate::error_chain(&e), "failed to dial the origin");
            answer(
                &mut send,
                &http_request::status_response(502, "Bad Gateway"),
            )
            .await;
            return;
        }
    };
    let mut first = head.rewrite(
        rule.origin_request().http_host_header.as_deref(),
        &config.assertion_header,
        assertion,
    );
    first.extend_from_slice(&buffered[head.len..]);
    if let Err(e) = origin.write_all(&first).await {
        counters.record_error();
        debug!(error = %e, "failed to send the request to the origin");
        answer(
            &mut send,
            &http_request::status_response(502, "Bad Gateway"),
        )
        .await;
        return;
    }
    let mut tunnel = tokio::io::join(recv, send);
    splice(&mut tunnel, &mut origin).await;
}

enum ReadHeadError {
    Head(HeadError),
    /// The stream failed or ended before a complete head.
    Stream,
}

/// Reads until the request head is complete; returns it with every byte read (head and the
/// start of the body).
async fn read_head(
    recv: &mut (impl AsyncRead + Unpin),
) -> Result<(http_request::RequestHead, Vec<u8>), ReadHeadError> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0; 4096];
    loop {
        let room = (MAX_REQUEST_HEAD + 1)
            .saturating_sub(buf.len())
            .min(chunk.len());
        let n = match recv.read(&mut chunk[..room]).await {
            Ok(0) | Err(_) => return Err(ReadHeadError::Stream),
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        match parse_head(&buf) {
            Ok(Some(head)) => return Ok((head, buf)),
            Ok(None) => {}
            Err(e) => return Err(ReadHeadError::Head(e)),
        }
    }
}

/// Writes a local response and finishes the stream.
async fn answer(send: &mut quinn::SendStream, response: &[u8]) {
    if send.write_all(response).await.is_ok() {
        // Finishing twice is the only failure; the bytes are queued either way.
        let _ = send.finish();
    }
}

/// Copies both ways until both sides finished; each side's end is passed on as a clean finish
/// (QUIC `FIN`, TCP shutdown of the write half).
async fn splice(
    tunnel: &mut (impl AsyncRead + AsyncWrite + Unpin),
    origin: &mut (impl AsyncRead + AsyncWrite + Unpin),
) {
    match tokio::io::copy_bidirectional(tunnel, origin).await {
        Ok((to_origin, to_edge)) => debug!(to_origin, to_edge, "stream finished"),
        Err(e) => debug!(error = %e, "stream failed"),
    }
}

/// The `StreamRefuse` code and message for an origin that could not be dialed.
fn refusal(error: &origin::DialError) -> (RefuseCode, &'static str) {
    use origin::DialError as E;
    match error {
        E::Resolve(_) | E::NoAddress => (RefuseCode::DNS_FAILED, "origin name did not resolve"),
        E::ConnectTimeout(_) | E::TlsTimeout(_) => (RefuseCode::TIMED_OUT, "origin timed out"),
        E::Connect(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => (
            RefuseCode::CONNECTION_REFUSED,
            "origin refused the connection",
        ),
        E::Connect(e) if is_unreachable(e) => (RefuseCode::UNREACHABLE, "origin unreachable"),
        E::Connect(_)
        | E::Tls(_)
        | E::ServerName(_)
        | E::TlsConfig(_)
        | E::ProxyHeaderTooLong(_)
        | E::ProxyHeader(_) => (RefuseCode::UNREACHABLE, "failed to connect to the origin"),
    }
}

fn is_unreachable(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable
    )
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn is_private(config: &Config, ip: IpAddr) -> bool {
    config.private_routes.iter().any(|net| net.contains(&ip))
}

//! Connectors on this edge: the QUIC listener they dial, the keys their credentials are checked
//! with, and the path of WireGuard clients' TCP flows to their CIDR routes.
//!
//! # The stream path
//! A client's packet is decrypted and checked against the flow policy by the edge core, as every
//! packet is, and written to the TUN device. When its destination is in a connector's CIDR
//! route, nftables TPROXY ([`crate::tproxy`]) delivers it to a transparent listener in this
//! process, so the kernel's TCP stack terminates the client's connection. For each accepted
//! connection the original destination is the socket's local address; the edge picks a
//! connector connection for it ([`tunnel::Target::Ip`]), opens a flow stream with a
//! [`StreamHeader`] (protocol TCP, the destination, the client's tunnel address as source) and
//! splices bytes both ways, half-closes included. No connector, a refused stream or a failed
//! splice resets the client's connection (`SO_LINGER` 0, then close), so a client never hangs.
//!
//! Why the kernel's TCP stack and not a userspace one (smoltcp and the like) fed from the TUN
//! loop: the kernel's TCP is fast (GRO/GSO, offloads, its congestion control and buffer tuning,
//! zero extra copies through our loop) and is the TCP implementation the host already trusts;
//! a userspace stack would be a new TCP to trust, tune and keep correct under loss and reordering,
//! and would put every connector byte through the single-threaded packet loop. What it costs:
//! root (CAP_NET_ADMIN for nftables and policy routing, IP_TRANSPARENT), nftables with
//! `CONFIG_NFT_TPROXY`, and a table and an `ip rule` in the edge's network namespace.
//!
//! Hostname routes (HTTP by `Host`, each request decided; TLS by SNI) are reached through the
//! application front ([`crate::app_front`]) on the edge's own tunnel address.

use crate::config::ConnectorSettings;
use crate::live_flows::{FlowTarget, LiveFlows};
use crate::tproxy::Tproxy;
use anyhow::Context as _;
use identity_claims::{Jwks, KeySet};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tunnel::config::{edge_server_config_from_pem, EdgeLimits};
use tunnel::edge::{EdgeEvent, ListenerOptions, PickedOpenError, TunnelListener};
use tunnel::{JwtVerifier, Target};
use tunnel_proto::{Destination, Protocol, RequestId, Route, StreamHeader};

/// How long the connector may take to accept a stream (it dials the origin first) before the
/// client's connection is reset. Above the typical 10 s origin connect timeout, so the
/// connector's own answer (refused, timed out) normally comes first.
const OPEN_STREAM_TIMEOUT: Duration = Duration::from_secs(15);

/// Pending connections on the transparent listener (the kernel's default `somaxconn`).
const TPROXY_BACKLOG: i32 = 4096;

/// The running connector side of the edge; stops its tasks and removes its rules on `Drop`.
pub(crate) struct Connectors {
    listener: Arc<TunnelListener>,
    keys: Arc<ConnectorKeys>,
    tasks: Vec<JoinHandle<()>>,
    // Dropped after the tasks are aborted (fields drop in order): rules go last.
    _tproxy: Arc<tokio::sync::Mutex<Tproxy>>,
}

/// The keys connector credentials are verified with: the static `jwks_file` ones plus the
/// config feed's signing keys.
pub(crate) struct ConnectorKeys {
    verifier: Arc<JwtVerifier>,
    static_keys: Jwks,
}

impl ConnectorKeys {
    /// Trusts `feed` (the replica's `signing_keys`) and the static keys from now on.
    pub(crate) fn set_feed_keys(&self, feed: &Jwks) {
        self.verifier.set_keys(merged(&self.static_keys, feed));
    }
}

impl Connectors {
    /// Binds the QUIC listener and the transparent TCP listeners, and installs the (empty)
    /// TPROXY rules for `interface`; `feed_keys` are the cached feed's signing keys, if any.
    ///
    /// # Errors
    /// Bad certificate or key, a socket cannot be bound, `nft`/`ip` fail.
    pub(crate) fn start(
        settings: &ConnectorSettings,
        interface: &str,
        feed_keys: Option<&Jwks>,
        access: Arc<crate::access_state::SharedAccess>,
        live: Arc<LiveFlows>,
        assertions: Option<Arc<crate::assertions::AssertionCache>>,
        audit: Arc<crate::decision_audit::DecisionAudit>,
    ) -> anyhow::Result<Self> {
        let verifier = Arc::new(JwtVerifier::new(
            settings.issuer.clone(),
            merged(&settings.jwks, feed_keys.unwrap_or(&Jwks::default())),
        ));
        let keys = Arc::new(ConnectorKeys {
            verifier: verifier.clone(),
            static_keys: settings.jwks.clone(),
        });
        let server = edge_server_config_from_pem(
            &settings.cert_pem,
            &settings.key_pem,
            &EdgeLimits::default(),
        )
        .context("[connectors]: bad cert_file or key_file")?;
        let listener = Arc::new(
            TunnelListener::bind(
                settings.listen,
                server,
                verifier,
                ListenerOptions::new(settings.name.clone()),
            )
            .with_context(|| {
                format!("failed to bind the connector listener {}", settings.listen)
            })?,
        );
        // Subscribed before anything can register, so no route announcement is missed.
        let events = listener.subscribe();
        let tproxy = Arc::new(tokio::sync::Mutex::new(Tproxy::install(
            interface,
            settings.tproxy_port,
        )?));
        let mut tasks = vec![tokio::spawn(follow_routes(
            listener.clone(),
            events,
            tproxy.clone(),
        ))];
        let next_request = Arc::new(AtomicU64::new(1));
        for tcp in transparent_listeners(settings.tproxy_port)? {
            tasks.push(tokio::spawn(accept_flows(
                tcp,
                listener.clone(),
                next_request.clone(),
                live.clone(),
            )));
        }
        // UDP to the same routes: datagram flows (crate::udp_flows).
        tasks.extend(crate::udp_flows::start(
            settings.tproxy_port,
            listener.clone(),
            live.clone(),
        )?);
        // Hostname routes: the HTTP and TLS application front (crate::app_front).
        let front = Arc::new(crate::app_front::FrontContext::new(
            listener.clone(),
            access,
            live,
            assertions,
            audit,
            next_request.clone(),
        ));
        tasks.extend(crate::app_front::start(
            &settings.http_listen,
            &settings.tls_listen,
            settings.clientless.as_ref(),
            &front,
        )?);
        tracing::info!(
            listen = %listener.local_addr().context("failed to read the connector listener address")?,
            tproxy_port = settings.tproxy_port,
            "connector listener up"
        );
        Ok(Self {
            listener,
            keys,
            tasks,
            _tproxy: tproxy,
        })
    }

    /// The key set, for the config feed to update.
    pub(crate) fn keys(&self) -> Arc<ConnectorKeys> {
        self.keys.clone()
    }

    /// Tells connectors the edge is going away and waits until they were told.
    pub(crate) async fn shutdown(&self) {
        for task in &self.tasks {
            task.abort();
        }
        self.listener.shutdown().await;
    }
}

impl Drop for Connectors {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The runtime connector traffic runs on, with `workers` threads; `None` for 0 (it then
/// shares the WireGuard thread's runtime).
///
/// # Errors
/// The runtime cannot be built (threads cannot be spawned).
pub(crate) fn proxy_runtime(workers: usize) -> anyhow::Result<Option<tokio::runtime::Runtime>> {
    if workers == 0 {
        return Ok(None);
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("gh-edge-proxy")
        .enable_all()
        .build()
        .map(Some)
        .context("failed to start the connector runtime")
}

fn merged(static_keys: &Jwks, feed: &Jwks) -> KeySet {
    let mut all = static_keys.clone();
    all.keys.extend(feed.keys.iter().cloned());
    KeySet::from_jwks(&all)
}

/// Keeps the TPROXY table covering every CIDR route a registered connection announced.
async fn follow_routes(
    listener: Arc<TunnelListener>,
    mut events: tokio::sync::broadcast::Receiver<EdgeEvent>,
    tproxy: Arc<tokio::sync::Mutex<Tproxy>>,
) {
    loop {
        match events.recv().await {
            Ok(EdgeEvent::Registered { .. } | EdgeEvent::RoutesUpdated { .. })
            | Err(RecvError::Lagged(_)) => {}
            Ok(
                EdgeEvent::Rejected { .. }
                | EdgeEvent::HeartbeatAnswered { .. }
                | EdgeEvent::Draining { .. }
                | EdgeEvent::Closed { .. },
            ) => continue,
            Err(RecvError::Closed) => return,
        }
        let routes: BTreeSet<ipnet::IpNet> = listener.with_registry(|registry| {
            registry
                .connections()
                .flat_map(|(_, info)| info.routes.iter())
                .filter_map(|route| match route {
                    Route::Cidr(net) => Some(*net),
                    Route::Hostname { .. } => None,
                })
                .collect()
        });
        match tproxy.lock().await.add_routes(routes) {
            Ok(true) => tracing::info!("connector routes installed"),
            Ok(false) => {}
            Err(e) => tracing::error!("failed to install connector routes: {e:#}"),
        }
    }
}

/// The transparent listeners: IPv4 (required) and IPv6 (when the host has it).
fn transparent_listeners(port: u16) -> anyhow::Result<Vec<TcpListener>> {
    let v4 = transparent_listener(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
        .with_context(|| format!("failed to bind the transparent listener on port {port}"))?;
    let mut listeners = vec![v4];
    match transparent_listener(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))) {
        Ok(v6) => listeners.push(v6),
        Err(e) => tracing::warn!("no IPv6 transparent listener: {e:#}"),
    }
    Ok(listeners)
}

/// A TCP listener that accepts connections to any address (`IP_TRANSPARENT` /
/// `IPV6_TRANSPARENT`, set before bind as TPROXY requires). The IPv6 one is v6-only, so the
/// IPv4 one gets the IPv4 flows.
fn transparent_listener(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = crate::transparent::socket(addr, socket2::Type::STREAM, socket2::Protocol::TCP)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("failed to bind {addr}"))?;
    socket.listen(TPROXY_BACKLOG).context("failed to listen")?;
    TcpListener::from_std(socket.into()).context("failed to register the listener")
}

async fn accept_flows(
    tcp: TcpListener,
    listener: Arc<TunnelListener>,
    next: Arc<AtomicU64>,
    live: Arc<LiveFlows>,
) {
    loop {
        match tcp.accept().await {
            Ok((stream, client)) => {
                let request_id = RequestId(next.fetch_add(1, Ordering::Relaxed));
                let span = tracing::debug_span!("flow", request = request_id.0);
                tokio::spawn(tracing::Instrument::instrument(
                    flow(listener.clone(), live.clone(), stream, client, request_id),
                    span,
                ));
            }
            Err(e) => {
                // EMFILE and the like: back off a little instead of spinning.
                tracing::warn!("transparent listener: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One client TCP connection to a connector route: pick, open, splice; reset on any failure.
async fn flow(
    listener: Arc<TunnelListener>,
    live: Arc<LiveFlows>,
    mut tcp: TcpStream,
    client: SocketAddr,
    request_id: RequestId,
) {
    let destination = match tcp.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::debug!("no original destination: {e}");
            reset(tcp);
            return;
        }
    };
    let header = StreamHeader {
        request_id,
        protocol: Protocol::Tcp,
        destination: Destination::Addr(destination),
        source: Some(client),
        assertion: None,
    };
    let opened = tokio::time::timeout(
        OPEN_STREAM_TIMEOUT,
        listener.open_stream_for(Target::Ip(destination.ip()), header),
    )
    .await;
    let (connection, stream) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(PickedOpenError::NoConnection)) => {
            tracing::debug!(%client, %destination, "no connector for the destination: reset");
            reset(tcp);
            return;
        }
        Ok(Err(PickedOpenError::Open(e))) => {
            tracing::debug!(%client, %destination, "stream not opened: {e}");
            reset(tcp);
            return;
        }
        Err(_) => {
            tracing::debug!(%client, %destination, "connector did not answer in time: reset");
            reset(tcp);
            return;
        }
    };
    tracing::trace!(%client, %destination, connection = connection.0, "flow to connector");
    // Closed at once if the policy or the device's identity stops allowing it.
    let live_flow = live.register(
        client.ip(),
        FlowTarget::Ip {
            addr: destination.ip(),
            port: destination.port(),
            protocol: edge_policy::Protocol::Tcp,
        },
    );
    let (send, recv, _guard) = stream.into_parts();
    let mut quic = tokio::io::join(recv, send);
    let outcome = tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut tcp, &mut quic) => copied.map_err(|e| e.to_string()),
        () = live_flow.closed() => Err("no longer allowed: closed".to_owned()),
    };
    match outcome {
        Ok((up, down)) => tracing::trace!(up, down, "flow finished"),
        Err(e) => {
            tracing::debug!(%client, %destination, "flow ended: {e}");
            let (mut recv, mut send) = quic.into_inner();
            let _ = send.reset(quinn::VarInt::from_u32(0));
            let _ = recv.stop(quinn::VarInt::from_u32(0));
            reset(tcp);
        }
    }
}

/// Closes with an RST: `SO_LINGER` 0 makes close abort the connection.
fn reset(tcp: TcpStream) {
    if let Err(e) = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO)) {
        tracing::debug!("SO_LINGER: {e}");
    }
    drop(tcp);
}

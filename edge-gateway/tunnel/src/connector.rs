//! The connector's end: dial an edge, register, heartbeat, serve flow streams, drain, re-dial.
//!
//! [`Dialer::connect`] makes one [`Session`]: it dials the edge, opens the control stream,
//! sends `Register` and waits for `Registered` or `Rejected`. The session then runs three tasks:
//! the control reader (answers the edge's heartbeats, takes our acks, follows the edge's
//! `Drain` and `Goodbye`), the heartbeat sender (every [`HEARTBEAT_INTERVAL`]; the connection
//! is closed after [`MAX_MISSED_HEARTBEATS`] unanswered ones) and the stream acceptor, which
//! reads each flow stream's `StreamHeader` and hands the stream to the [`StreamHandler`].
//! A `UdpFlowOpen` from the edge enters the session's UDP flow table ([`crate::udp`]; a fourth
//! task reads the connection's datagrams) and goes to [`StreamHandler::handle_udp`].
//! [`run_connection_forever`] re-dials with [`backoff_delay`] until shut down.

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use quinn::{RecvStream, SendStream, VarInt};
use rand::rngs::StdRng;
use rand::SeedableRng as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, trace, warn, Instrument as _};
use tunnel_proto::{
    ConnectionId, ConnectorId, Credential, Frame, FrameType, RefuseCode, Register, RejectCode,
    Route, StreamHeader, TunnelId, UdpFlowOpen,
};

use crate::backoff::{backoff_delay, BACKOFF_BASE, BACKOFF_CAP, BACKOFF_RESET_AFTER};
use crate::close_code;
use crate::frames::{read_flow_frame, write_frame, ControlReader, FrameIoError};
use crate::udp::{FlowTable, UdpCounters, UdpFlow, UdpLimits, EARLY_DATAGRAMS};

/// How often a connector sends `Heartbeat`.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Unanswered heartbeats after which the connection is considered dead (15 s at the default
/// interval): the backstop for an edge whose QUIC stack still acknowledges packets while its
/// control loop is stuck; a silent edge is noticed first by the QUIC idle timeout (5 s).
pub const MAX_MISSED_HEARTBEATS: u32 = 3;

/// How long the connector waits for `Registered` or `Rejected`.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long in-flight streams may run after a drain on shutdown.
pub const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// How long, after `Goodbye`, the connector waits for the edge to close.
const GOODBYE_LINGER: Duration = Duration::from_secs(1);

/// What a [`Dialer`] dials and how it registers.
#[derive(Debug, Clone)]
pub struct DialerConfig {
    pub edge_addr: SocketAddr,
    /// The name the edge's certificate must carry.
    pub server_name: String,
    /// From [`crate::config::connector_client_config`].
    pub client_config: quinn::ClientConfig,
    pub tunnel_id: TunnelId,
    pub connector_id: ConnectorId,
    /// Sent in `Register`; the connector binary's version.
    pub connector_version: String,
    /// The connector credential; replace with [`Dialer::set_credential`] when it is renewed.
    pub credential: Credential,
    pub routes: Vec<Route>,
    /// Default [`HEARTBEAT_INTERVAL`].
    pub heartbeat_interval: Duration,
    /// Default [`MAX_MISSED_HEARTBEATS`].
    pub max_missed_heartbeats: u32,
    /// Default [`REGISTER_TIMEOUT`].
    pub register_timeout: Duration,
    /// Default [`DRAIN_GRACE`].
    pub drain_grace: Duration,
    /// Limits of each session's UDP flows; default [`UdpLimits::default`].
    pub udp: UdpLimits,
    /// Where every session of this dialer counts its UDP flows and drops.
    pub udp_counters: Arc<UdpCounters>,
}

impl DialerConfig {
    /// A config with the default timings and no routes.
    pub fn new(
        edge_addr: SocketAddr,
        server_name: impl Into<String>,
        client_config: quinn::ClientConfig,
        tunnel_id: TunnelId,
        connector_id: ConnectorId,
        credential: Credential,
    ) -> Self {
        Self {
            edge_addr,
            server_name: server_name.into(),
            client_config,
            tunnel_id,
            connector_id,
            connector_version: env!("CARGO_PKG_VERSION").to_owned(),
            credential,
            routes: Vec::new(),
            heartbeat_interval: HEARTBEAT_INTERVAL,
            max_missed_heartbeats: MAX_MISSED_HEARTBEATS,
            register_timeout: REGISTER_TIMEOUT,
            drain_grace: DRAIN_GRACE,
            udp: UdpLimits::default(),
            udp_counters: Arc::new(UdpCounters::new()),
        }
    }
}

/// One flow stream from the edge, after its header.
pub struct IncomingStream {
    pub header: StreamHeader,
    /// Answer first with [`accept_stream`] or [`refuse_stream`].
    pub send: SendStream,
    /// Raw bytes from the edge (the header is already read; nothing after it is).
    pub recv: RecvStream,
}

/// One UDP flow the edge announced with `UdpFlowOpen`.
pub struct IncomingUdpFlow {
    /// The flow id, destination and assertion from the edge.
    pub open: UdpFlowOpen,
    /// Datagrams of the flow both ways; dropping it forgets the flow.
    pub flow: UdpFlow,
}

/// Serves flow streams: dials the origin, answers with [`accept_stream`] or
/// [`refuse_stream`], then splices. Each stream runs in its own task; the session counts it as
/// in flight until the returned future ends.
pub trait StreamHandler: Send + Sync + 'static {
    fn handle(&self, stream: IncomingStream) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

    /// Serves one UDP flow until its `recv` returns `None` (idle expiry, connection end) or
    /// the handler gives up; runs in its own task and is not counted as in flight, so a drain
    /// does not wait for flows that only expire when idle. The default drops the flow: its
    /// datagrams are then counted as for an unknown flow.
    fn handle_udp(
        &self,
        flow: IncomingUdpFlow,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        debug!(
            flow = flow.open.flow_id.get(),
            "udp flows not served, dropped"
        );
        drop(flow);
        Box::pin(async {})
    }
}

impl<F, Fut> StreamHandler for F
where
    F: Fn(IncomingStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn handle(&self, stream: IncomingStream) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(self(stream))
    }
}

/// Writes `StreamAccept`: the origin is connected, raw bytes follow.
///
/// # Errors
/// The stream failed.
pub async fn accept_stream(send: &mut SendStream) -> Result<(), FrameIoError> {
    write_frame(send, &Frame::StreamAccept).await
}

/// Writes `StreamRefuse` and finishes the stream.
///
/// # Errors
/// The stream failed.
pub async fn refuse_stream(
    send: &mut SendStream,
    code: RefuseCode,
    message: &str,
) -> Result<(), FrameIoError> {
    let frame = Frame::StreamRefuse {
        code,
        message: message.to_owned(),
    };
    write_frame(send, &frame).await?;
    // Finishing an already finished stream is the only failure; nothing is lost then.
    let _ = send.finish();
    Ok(())
}

/// Why a connection attempt ended without a session.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("failed to start connecting")]
    Connect(#[from] quinn::ConnectError),
    #[error("connection failed")]
    Connection(#[from] quinn::ConnectionError),
    #[error("control stream failed")]
    Control(#[from] FrameIoError),
    #[error("edge did not answer register within {0:?}")]
    RegisterTimeout(Duration),
    #[error("edge rejected the registration: {message} ({code})")]
    Rejected { code: RejectCode, message: String },
    #[error("edge answered register with {0:?}")]
    UnexpectedReply(FrameType),
    #[error("edge finished the control stream before answering register")]
    ControlClosed,
}

/// Dials one edge.
pub struct Dialer {
    config: DialerConfig,
    credential: Mutex<Credential>,
    routes: Mutex<Vec<Route>>,
    endpoint: quinn::Endpoint,
}

impl Dialer {
    /// Binds a client endpoint on an ephemeral port of the edge address's family.
    ///
    /// # Errors
    /// The UDP socket cannot be bound. Must be called inside a tokio runtime.
    pub fn new(config: DialerConfig) -> std::io::Result<Self> {
        let bind: SocketAddr = if config.edge_addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let endpoint = crate::config::endpoint(bind, None)?;
        Ok(Self {
            credential: Mutex::new(config.credential.clone()),
            routes: Mutex::new(config.routes.clone()),
            config,
            endpoint,
        })
    }

    pub fn config(&self) -> &DialerConfig {
        &self.config
    }

    /// The credential for the next `Register` (a session already registered keeps going).
    pub fn set_credential(&self, credential: Credential) {
        *self
            .credential
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = credential;
    }

    /// The routes for the next `Register`; a live session is told with
    /// [`Session::update_routes`].
    pub fn set_routes(&self, routes: Vec<Route>) {
        *self.routes.lock().unwrap_or_else(PoisonError::into_inner) = routes;
    }

    /// Dials the edge and registers; the session serves flow streams and UDP flows with
    /// `handler`.
    ///
    /// # Errors
    /// The handshake failed, the edge rejected the registration or did not answer in time.
    pub async fn connect(&self, handler: Arc<dyn StreamHandler>) -> Result<Session, DialError> {
        let config = &self.config;
        let conn = self
            .endpoint
            .connect_with(
                config.client_config.clone(),
                config.edge_addr,
                &config.server_name,
            )?
            .await?;
        let register = Frame::Register(Register {
            tunnel_id: config.tunnel_id.clone(),
            connector_id: config.connector_id.clone(),
            connector_version: config.connector_version.clone(),
            credential: self
                .credential
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            routes: self
                .routes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        });
        let answer = tokio::time::timeout(config.register_timeout, async {
            let (mut send, recv) = conn.open_bi().await?;
            write_frame(&mut send, &register).await?;
            let mut reader = ControlReader::new(recv);
            let answer = reader.next().await?;
            Ok::<_, DialError>((send, reader, answer))
        })
        .await;
        let (send, reader, answer) = match answer {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                conn.close(
                    VarInt::from_u32(close_code::PROTOCOL_ERROR),
                    b"register failed",
                );
                return Err(e);
            }
            Err(_) => {
                conn.close(
                    VarInt::from_u32(close_code::REGISTER_TIMEOUT),
                    b"register timeout",
                );
                return Err(DialError::RegisterTimeout(config.register_timeout));
            }
        };
        let (edge_name, connection_id) = match answer {
            Some(Frame::Registered {
                edge_name,
                connection_id,
            }) => (edge_name, connection_id),
            Some(Frame::Rejected { code, message }) => {
                conn.close(VarInt::from_u32(close_code::REJECTED), b"rejected");
                return Err(DialError::Rejected { code, message });
            }
            Some(other) => {
                conn.close(
                    VarInt::from_u32(close_code::PROTOCOL_ERROR),
                    b"unexpected frame",
                );
                return Err(DialError::UnexpectedReply(other.frame_type()));
            }
            None => {
                conn.close(
                    VarInt::from_u32(close_code::PROTOCOL_ERROR),
                    b"control closed",
                );
                return Err(DialError::ControlClosed);
            }
        };
        info!(connection = connection_id.0, "registered with edge");
        debug!(edge = %edge_name, "registered");
        Ok(Session::start(
            conn,
            send,
            reader,
            edge_name,
            connection_id,
            handler,
            config,
        ))
    }
}

/// One registered connection to an edge. Dropping it closes the connection.
pub struct Session {
    inner: Arc<SessionInner>,
    tasks: Vec<JoinHandle<()>>,
}

struct SessionInner {
    conn: quinn::Connection,
    control: tokio::sync::Mutex<SendStream>,
    edge_name: String,
    connection_id: ConnectionId,
    draining: AtomicBool,
    /// Streams handed to the handler and not yet finished.
    in_flight: watch::Sender<usize>,
    /// Highest `seq` the edge acknowledged (0: none; heartbeats start at 1).
    acked: AtomicU64,
    acks_seen: AtomicU64,
    udp: Arc<FlowTable>,
    udp_counters: Arc<UdpCounters>,
}

impl Session {
    fn start(
        conn: quinn::Connection,
        control: SendStream,
        reader: ControlReader,
        edge_name: String,
        connection_id: ConnectionId,
        handler: Arc<dyn StreamHandler>,
        config: &DialerConfig,
    ) -> Self {
        let (udp, datagrams) = FlowTable::spawn(
            conn.clone(),
            config.udp,
            EARLY_DATAGRAMS,
            Arc::clone(&config.udp_counters),
        );
        let inner = Arc::new(SessionInner {
            conn,
            control: tokio::sync::Mutex::new(control),
            edge_name,
            connection_id,
            draining: AtomicBool::new(false),
            in_flight: watch::Sender::new(0),
            acked: AtomicU64::new(0),
            acks_seen: AtomicU64::new(0),
            udp,
            udp_counters: Arc::clone(&config.udp_counters),
        });
        let span = tracing::debug_span!("session", connection = connection_id.0);
        let tasks = vec![
            tokio::spawn(
                control_reader(inner.clone(), reader, handler.clone()).instrument(span.clone()),
            ),
            tokio::spawn(
                heartbeats(
                    inner.clone(),
                    config.heartbeat_interval,
                    config.max_missed_heartbeats,
                )
                .instrument(span.clone()),
            ),
            tokio::spawn(accept_streams(inner.clone(), handler).instrument(span)),
            datagrams,
        ];
        Self { inner, tasks }
    }

    pub fn edge_name(&self) -> &str {
        &self.inner.edge_name
    }

    /// The edge's number for this connection.
    pub fn connection_id(&self) -> ConnectionId {
        self.inner.connection_id
    }

    /// How many `HeartbeatAck`s the edge sent.
    pub fn heartbeat_acks(&self) -> u64 {
        self.inner.acks_seen.load(Ordering::Relaxed)
    }

    /// Whether this side or the edge started a drain.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    /// Flow streams being served.
    pub fn in_flight(&self) -> usize {
        *self.inner.in_flight.borrow()
    }

    /// UDP flows open now.
    pub fn udp_flows(&self) -> usize {
        self.inner.udp.len()
    }

    /// Waits until the connection ends, for whatever reason (a heartbeat timeout shows as
    /// locally closed with [`close_code::HEARTBEAT_TIMEOUT`]).
    pub async fn closed(&self) -> quinn::ConnectionError {
        self.inner.conn.closed().await
    }

    /// Sends `UpdateRoutes` with the full route set.
    ///
    /// # Errors
    /// The control stream failed.
    pub async fn update_routes(&self, routes: Vec<Route>) -> Result<(), FrameIoError> {
        let mut control = self.inner.control.lock().await;
        write_frame(&mut control, &Frame::UpdateRoutes { routes }).await
    }

    /// Sends `Drain`, refuses new streams (`unavailable`), waits up to `grace` for the streams
    /// in flight, then says `Goodbye` and closes.
    ///
    /// # Errors
    /// The control stream failed before `Drain` was sent; the connection is closed anyway.
    pub async fn drain(&self, grace: Duration) -> Result<(), FrameIoError> {
        self.inner.draining.store(true, Ordering::Relaxed);
        let grace_ms = u32::try_from(grace.as_millis()).unwrap_or(u32::MAX);
        let sent = {
            let mut control = self.inner.control.lock().await;
            write_frame(&mut control, &Frame::Drain { grace_ms }).await
        };
        if sent.is_ok() {
            let mut in_flight = self.inner.in_flight.subscribe();
            let _ = tokio::time::timeout(grace, in_flight.wait_for(|n| *n == 0)).await;
            let mut control = self.inner.control.lock().await;
            if write_frame(&mut control, &Frame::Goodbye).await.is_ok() {
                let _ = control.finish();
                // The edge closes on `Goodbye`; closing first could discard it.
                let _ = tokio::time::timeout(GOODBYE_LINGER, self.inner.conn.closed()).await;
            }
        }
        self.inner
            .conn
            .close(VarInt::from_u32(close_code::NORMAL), b"goodbye");
        sent
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.inner
            .conn
            .close(VarInt::from_u32(close_code::NORMAL), b"session dropped");
    }
}

async fn control_reader(
    inner: Arc<SessionInner>,
    mut reader: ControlReader,
    handler: Arc<dyn StreamHandler>,
) {
    loop {
        let frame = match reader.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                debug!("edge finished the control stream");
                inner
                    .conn
                    .close(VarInt::from_u32(close_code::NORMAL), b"control finished");
                return;
            }
            Err(e) => {
                debug!(error = %e, "control stream failed");
                inner.conn.close(
                    VarInt::from_u32(close_code::PROTOCOL_ERROR),
                    b"control stream",
                );
                return;
            }
        };
        match frame {
            Frame::HeartbeatAck { seq } => {
                inner.acked.fetch_max(seq, Ordering::Relaxed);
                inner.acks_seen.fetch_add(1, Ordering::Relaxed);
                trace!(seq, "heartbeat acknowledged");
            }
            Frame::Heartbeat { seq } => {
                let mut control = inner.control.lock().await;
                if write_frame(&mut control, &Frame::HeartbeatAck { seq })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Frame::Drain { grace_ms } => {
                info!(grace_ms, "edge draining");
                inner.draining.store(true, Ordering::Relaxed);
            }
            Frame::Goodbye => {
                debug!("edge said goodbye");
                inner
                    .conn
                    .close(VarInt::from_u32(close_code::NORMAL), b"goodbye");
                return;
            }
            Frame::UdpFlowOpen(open) => open_udp_flow(&inner, &handler, open),
            other @ (Frame::Register(_)
            | Frame::Registered { .. }
            | Frame::Rejected { .. }
            | Frame::UpdateRoutes { .. }
            | Frame::StreamHeader(_)
            | Frame::StreamAccept
            | Frame::StreamRefuse { .. }) => {
                debug!(frame = ?other.frame_type(), "unexpected control message");
                inner.conn.close(
                    VarInt::from_u32(close_code::PROTOCOL_ERROR),
                    b"unexpected frame",
                );
                return;
            }
        }
    }
}

/// Enters an announced flow and hands it to the handler; a draining session, a full table or
/// a duplicate id refuses it (counted; its datagrams are then dropped as unknown).
fn open_udp_flow(inner: &SessionInner, handler: &Arc<dyn StreamHandler>, open: UdpFlowOpen) {
    let id = open.flow_id;
    if inner.draining.load(Ordering::Relaxed) {
        inner.udp_counters.record_refused();
        debug!(flow = id.get(), "udp flow refused: draining");
        return;
    }
    match inner.udp.insert(id) {
        Ok(flow) => {
            trace!(flow = id.get(), "udp flow");
            let served = handler.handle_udp(IncomingUdpFlow { open, flow });
            let span = tracing::debug_span!("udp_flow", flow = id.get());
            tokio::spawn(served.instrument(span));
        }
        Err(e) => debug!(flow = id.get(), error = %e, "udp flow refused"),
    }
}

async fn heartbeats(inner: Arc<SessionInner>, interval: Duration, max_missed: u32) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick completes at once; the first heartbeat goes one interval after register.
    ticker.tick().await;
    let mut seq = 0u64;
    loop {
        ticker.tick().await;
        let missed = seq.saturating_sub(inner.acked.load(Ordering::Relaxed));
        if missed >= u64::from(max_missed) {
            warn!(missed, "edge stopped answering heartbeats");
            inner.conn.close(
                VarInt::from_u32(close_code::HEARTBEAT_TIMEOUT),
                b"heartbeat timeout",
            );
            return;
        }
        seq += 1;
        let mut control = inner.control.lock().await;
        if let Err(e) = write_frame(&mut control, &Frame::Heartbeat { seq }).await {
            debug!(error = %e, "failed to send heartbeat");
            return;
        }
    }
}

async fn accept_streams(inner: Arc<SessionInner>, handler: Arc<dyn StreamHandler>) {
    loop {
        let (send, recv) = match inner.conn.accept_bi().await {
            Ok(streams) => streams,
            Err(e) => {
                debug!(error = %e, "connection ended");
                return;
            }
        };
        tokio::spawn(serve_stream(inner.clone(), handler.clone(), send, recv));
    }
}

/// Error code for resetting a flow stream whose header was invalid.
const STREAM_PROTOCOL_ERROR: u32 = 1;

async fn serve_stream(
    inner: Arc<SessionInner>,
    handler: Arc<dyn StreamHandler>,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let header = match read_flow_frame(&mut recv).await {
        Ok(Frame::StreamHeader(header)) => header,
        Ok(other) => {
            debug!(frame = ?other.frame_type(), "flow stream without header");
            let _ = send.reset(VarInt::from_u32(STREAM_PROTOCOL_ERROR));
            return;
        }
        Err(e) => {
            debug!(error = %e, "bad flow stream header");
            let _ = send.reset(VarInt::from_u32(STREAM_PROTOCOL_ERROR));
            let _ = recv.stop(VarInt::from_u32(STREAM_PROTOCOL_ERROR));
            return;
        }
    };
    if inner.draining.load(Ordering::Relaxed) {
        let _ = refuse_stream(&mut send, RefuseCode::UNAVAILABLE, "connector draining").await;
        return;
    }
    trace!(request = header.request_id.0, "flow stream");
    inner.in_flight.send_modify(|n| *n += 1);
    handler.handle(IncomingStream { header, send, recv }).await;
    inner.in_flight.send_modify(|n| *n = n.saturating_sub(1));
}

/// How a session handed to [`run_sessions`]'s `serve` ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The connection ended; the loop re-dials after a backoff.
    Closed(quinn::ConnectionError),
    /// Shutdown was requested (and the session drained); the loop returns.
    Shutdown,
}

/// Keeps one connection to the edge registered until `shutdown` turns true (a dropped sender
/// counts too), draining it then: [`run_sessions`] with a `serve` that waits for the session
/// to end and drains it with the dialer's grace period.
///
/// # Errors
/// Only when the edge rejects the registration as `revoked`: re-dialing cannot help.
pub async fn run_connection_forever(
    dialer: &Dialer,
    handler: Arc<dyn StreamHandler>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), DialError> {
    let grace = dialer.config.drain_grace;
    run_sessions(
        dialer,
        handler,
        shutdown,
        |session, mut shutdown| async move {
            tokio::select! {
                e = session.closed() => SessionEnd::Closed(e),
                () = shutdown_requested(&mut shutdown) => {
                    let _ = session.drain(grace).await;
                    SessionEnd::Shutdown
                }
            }
        },
    )
    .await
}

/// The reconnect loop: dials, hands each registered session to `serve` (which returns when the
/// session ended or, after draining it, when shutdown was requested), and re-dials with
/// full-jitter exponential backoff (base [`BACKOFF_BASE`], cap [`BACKOFF_CAP`], reset after a
/// session that stayed up [`BACKOFF_RESET_AFTER`]).
///
/// # Errors
/// Only when the edge rejects the registration as `revoked`: re-dialing cannot help.
pub async fn run_sessions<F, Fut>(
    dialer: &Dialer,
    handler: Arc<dyn StreamHandler>,
    mut shutdown: watch::Receiver<bool>,
    mut serve: F,
) -> Result<(), DialError>
where
    F: FnMut(Session, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = SessionEnd>,
{
    let mut rng = StdRng::from_entropy();
    let mut attempt = 0u32;
    loop {
        let started = Instant::now();
        let session = tokio::select! {
            session = dialer.connect(handler.clone()) => session,
            () = shutdown_requested(&mut shutdown) => return Ok(()),
        };
        match session {
            Ok(session) => {
                match serve(session, shutdown.clone()).await {
                    SessionEnd::Shutdown => return Ok(()),
                    SessionEnd::Closed(e) => info!(error = %e, "connection to edge ended"),
                }
                if started.elapsed() >= BACKOFF_RESET_AFTER {
                    attempt = 0;
                }
            }
            Err(DialError::Rejected { code, message }) if code == RejectCode::REVOKED => {
                return Err(DialError::Rejected { code, message });
            }
            Err(e) => {
                // `{:#}` of a thiserror type shows no sources, and the cause (a TLS alert such
                // as an unknown CA, a timeout) is what tells an operator what is wrong.
                let chain: Vec<String> =
                    std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                        .map(ToString::to_string)
                        .collect();
                warn!(error = %chain.join(": "), attempt, "failed to connect to edge");
            }
        }
        let delay = backoff_delay(attempt, BACKOFF_BASE, BACKOFF_CAP, &mut rng);
        attempt = attempt.saturating_add(1);
        debug!(?delay, "re-dialing after backoff");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown_requested(&mut shutdown) => return Ok(()),
        }
    }
}

/// Waits until shutdown is requested (or its sender is gone).
pub async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    // A dropped sender also means shut down.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

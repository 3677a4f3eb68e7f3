//! The edge's end: accept connectors' connections, register them, open flow streams.
//!
//! One task accepts connections; each connection gets a task that reads its control stream:
//! `Register` within [`ListenerOptions::register_timeout`], verified by the
//! [`CredentialVerifier`], answered `Registered` (the connection enters the [`Registry`]) or
//! `Rejected` (then closed). Afterwards it answers `Heartbeat`, applies `UpdateRoutes`, marks
//! the connection draining on `Drain` and closes on `Goodbye`. When the connection ends it
//! leaves the registry. Flow streams are opened by [`TunnelListener::open_stream`], UDP flows
//! (QUIC datagrams, [`crate::udp`]) by [`TunnelListener::open_udp_flow`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use quinn::{RecvStream, SendStream, VarInt};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tracing::{debug, info, trace, Instrument as _};
use tunnel_proto::{
    Assertion, ConnectionId, ConnectorId, Destination, FlowId, Frame, FrameType, RefuseCode,
    Register, RejectCode, StreamHeader, UdpFlowOpen,
};

use crate::frames::{read_flow_frame, write_frame, ControlReader, FrameIoError};
use crate::registry::{Registry, Target};
use crate::udp::{FlowTable, UdpCounters, UdpFlow, UdpFlowError, UdpLimits, UdpStats};
use crate::{close_code, CredentialVerifier, Rejection};

/// How long a new connection may take to open its control stream and send `Register`.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the edge waits, after `Rejected`, for the connector to read it and hang up.
const REJECT_LINGER: Duration = Duration::from_secs(2);

/// Settings of a [`TunnelListener`] beyond its QUIC configuration.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// The edge's name, sent in `Registered`.
    pub edge_name: String,
    /// Default [`REGISTER_TIMEOUT`].
    pub register_timeout: Duration,
    /// Limits of each connection's UDP flows; default [`UdpLimits::default`].
    pub udp: UdpLimits,
}

impl ListenerOptions {
    pub fn new(edge_name: impl Into<String>) -> Self {
        Self {
            edge_name: edge_name.into(),
            register_timeout: REGISTER_TIMEOUT,
            udp: UdpLimits::default(),
        }
    }
}

/// What happened on the listener, for status, metrics and tests. Identities appear here;
/// whoever logs them keeps them at DEBUG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeEvent {
    Registered {
        connection_id: ConnectionId,
        connector_id: ConnectorId,
    },
    Rejected {
        connection_id: ConnectionId,
        code: RejectCode,
    },
    HeartbeatAnswered {
        connection_id: ConnectionId,
        seq: u64,
    },
    RoutesUpdated {
        connection_id: ConnectionId,
    },
    Draining {
        connection_id: ConnectionId,
        grace: Duration,
    },
    /// A registered connection ended and left the registry.
    Closed {
        connection_id: ConnectionId,
    },
}

/// Why a flow stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenStreamError {
    #[error("no registered connection {0:?}")]
    UnknownConnection(ConnectionId),
    #[error("connection {0:?} is draining")]
    Draining(ConnectionId),
    #[error("failed to open stream")]
    Open(#[from] quinn::ConnectionError),
    #[error("failed to exchange stream header")]
    Frame(#[from] FrameIoError),
    #[error("connector refused the stream: {message} ({code})")]
    Refused { code: RefuseCode, message: String },
    #[error("connector answered the stream header with {0:?}")]
    UnexpectedReply(FrameType),
}

/// Why [`TunnelListener::open_stream_for`] opened no stream.
#[derive(Debug, thiserror::Error)]
pub enum PickedOpenError {
    #[error("no connector connection serves the destination")]
    NoConnection,
    #[error(transparent)]
    Open(OpenStreamError),
}

/// Connections [`TunnelListener::open_stream_for`] tries before giving up.
pub const OPEN_ATTEMPTS: usize = 3;

/// Why a UDP flow could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenUdpFlowError {
    #[error("no registered connection {0:?}")]
    UnknownConnection(ConnectionId),
    #[error("connection {0:?} is draining")]
    Draining(ConnectionId),
    #[error("udp flow refused")]
    Flow(#[from] UdpFlowError),
    #[error("failed to announce the udp flow")]
    Frame(#[from] FrameIoError),
}

/// Why a control message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendControlError {
    #[error("no registered connection {0:?}")]
    UnknownConnection(ConnectionId),
    #[error("failed to write control message")]
    Frame(#[from] FrameIoError),
}

/// The edge's QUIC endpoint for connectors.
pub struct TunnelListener {
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

/// An accepted flow stream; dropping it (or the guard from [`into_parts`](Self::into_parts))
/// counts the stream as ended for load balancing.
pub struct FlowStream {
    pub send: SendStream,
    pub recv: RecvStream,
    guard: StreamGuard,
}

/// Counts one open stream on a connection in the registry until dropped.
pub struct StreamGuard {
    shared: Arc<Shared>,
    connection_id: ConnectionId,
}

struct Shared {
    options: ListenerOptions,
    verifier: Arc<dyn CredentialVerifier>,
    registry: Mutex<Registry>,
    connections: Mutex<BTreeMap<ConnectionId, ConnHandle>>,
    next_id: AtomicU64,
    events: broadcast::Sender<EdgeEvent>,
    udp_counters: Arc<UdpCounters>,
}

#[derive(Clone)]
struct ConnHandle {
    conn: quinn::Connection,
    control: Arc<tokio::sync::Mutex<SendStream>>,
    udp: Arc<FlowTable>,
    /// The next flow id on this connection; ids are never reused.
    next_flow: Arc<AtomicU64>,
}

impl TunnelListener {
    /// Binds a UDP socket on `addr` and starts accepting connections.
    ///
    /// # Errors
    /// The socket cannot be bound. Must be called inside a tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        server_config: quinn::ServerConfig,
        verifier: Arc<dyn CredentialVerifier>,
        options: ListenerOptions,
    ) -> std::io::Result<Self> {
        let endpoint = crate::config::endpoint(addr, Some(server_config))?;
        let (events, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            options,
            verifier,
            registry: Mutex::new(Registry::new()),
            connections: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            events,
            udp_counters: Arc::new(UdpCounters::new()),
        });
        let accept = tokio::spawn(accept_loop(endpoint.clone(), shared.clone()));
        Ok(Self {
            endpoint,
            shared,
            accept,
        })
    }

    /// The bound address (with the port chosen when `addr` had port 0).
    ///
    /// # Errors
    /// The socket's address cannot be read.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Events from now on. A receiver that falls behind by 256 events loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<EdgeEvent> {
        self.shared.events.subscribe()
    }

    /// Runs `f` on the registry under its lock; keep `f` short.
    pub fn with_registry<R>(&self, f: impl FnOnce(&Registry) -> R) -> R {
        f(&self.shared.registry())
    }

    /// The connection a new flow to `target` should use ([`Registry::pick`]).
    pub fn pick(&self, target: Target<'_>) -> Option<ConnectionId> {
        self.shared.registry().pick(target)
    }

    /// Opens a flow stream on `connection_id`: writes `header`, then waits for the connector's
    /// `StreamAccept` (the stream is returned, raw bytes follow) or `StreamRefuse`.
    ///
    /// # Errors
    /// The connection is unknown or draining, the stream failed, or the connector refused.
    pub async fn open_stream(
        &self,
        connection_id: ConnectionId,
        header: StreamHeader,
    ) -> Result<FlowStream, OpenStreamError> {
        let handle = self
            .shared
            .connection(connection_id)
            .ok_or(OpenStreamError::UnknownConnection(connection_id))?;
        if self
            .shared
            .registry()
            .connection(connection_id)
            .is_some_and(|c| c.draining)
        {
            return Err(OpenStreamError::Draining(connection_id));
        }
        let (mut send, mut recv) = handle.conn.open_bi().await?;
        self.shared.registry().stream_opened(connection_id);
        let guard = StreamGuard {
            shared: self.shared.clone(),
            connection_id,
        };
        let request = header.request_id;
        write_frame(&mut send, &Frame::StreamHeader(header)).await?;
        match read_flow_frame(&mut recv).await? {
            Frame::StreamAccept => {
                trace!(request = request.0, "stream accepted");
                Ok(FlowStream { send, recv, guard })
            }
            Frame::StreamRefuse { code, message } => {
                debug!(request = request.0, %code, "stream refused");
                Err(OpenStreamError::Refused { code, message })
            }
            // The flow decoder yields only flow-stream frames; a header is the edge's own.
            other @ (Frame::StreamHeader(_)
            | Frame::Register(_)
            | Frame::Registered { .. }
            | Frame::Rejected { .. }
            | Frame::Heartbeat { .. }
            | Frame::HeartbeatAck { .. }
            | Frame::UpdateRoutes { .. }
            | Frame::Drain { .. }
            | Frame::Goodbye
            | Frame::UdpFlowOpen(_)) => Err(OpenStreamError::UnexpectedReply(other.frame_type())),
        }
    }

    /// Opens a UDP flow toward `destination` on `connection_id`: allocates a flow id, enters it
    /// in the connection's flow table and announces it with `UdpFlowOpen`. Datagrams may be
    /// sent at once; the connector answers nothing (a flow it refuses just gets no replies).
    ///
    /// # Errors
    /// The connection is unknown or draining, it carries the most flows it may, or the control
    /// stream failed.
    pub async fn open_udp_flow(
        &self,
        connection_id: ConnectionId,
        destination: Destination,
        assertion: Option<Assertion>,
    ) -> Result<UdpFlow, OpenUdpFlowError> {
        let handle = self
            .shared
            .connection(connection_id)
            .ok_or(OpenUdpFlowError::UnknownConnection(connection_id))?;
        if self
            .shared
            .registry()
            .connection(connection_id)
            .is_some_and(|c| c.draining)
        {
            self.shared.udp_counters.record_refused();
            return Err(OpenUdpFlowError::Draining(connection_id));
        }
        let raw = handle.next_flow.fetch_add(1, Ordering::Relaxed);
        // 2^62 ids at one per nanosecond last 146 years; a wrapped id is a closed connection.
        let flow_id = FlowId::new(raw).map_err(|_| UdpFlowError::Closed)?;
        let flow = handle.udp.insert(flow_id)?;
        let frame = Frame::UdpFlowOpen(UdpFlowOpen {
            flow_id,
            destination,
            assertion,
        });
        {
            let mut control = handle.control.lock().await;
            write_frame(&mut control, &frame).await?;
        }
        trace!(flow = flow_id.get(), "udp flow opened");
        Ok(flow)
    }

    /// The UDP counters of every connection of this listener.
    pub fn udp_stats(&self) -> UdpStats {
        self.shared.udp_counters.snapshot()
    }

    /// UDP flows open on `connection_id` now (0 for an unknown connection).
    pub fn udp_flows(&self, connection_id: ConnectionId) -> usize {
        self.shared
            .connection(connection_id)
            .map_or(0, |handle| handle.udp.len())
    }

    /// Picks a connection for `target` and opens a stream on it. A connection that fails
    /// (gone, draining, closed under the stream) is skipped and the next best tried, up to
    /// [`OPEN_ATTEMPTS`] connections, so a connector that died without a word costs a retry
    /// rather than the request. A refusal by a live connector is final.
    ///
    /// # Errors
    /// No connection serves the target, or the last attempt's error.
    pub async fn open_stream_for(
        &self,
        target: Target<'_>,
        header: StreamHeader,
    ) -> Result<(ConnectionId, FlowStream), PickedOpenError> {
        let mut tried = Vec::with_capacity(OPEN_ATTEMPTS);
        let mut last_error = None;
        loop {
            let picked = self.shared.registry().pick_excluding(target, &tried);
            let Some(connection) = picked else {
                return Err(last_error.map_or(PickedOpenError::NoConnection, PickedOpenError::Open));
            };
            match self.open_stream(connection, header.clone()).await {
                Ok(stream) => return Ok((connection, stream)),
                Err(
                    e @ (OpenStreamError::Refused { .. } | OpenStreamError::UnexpectedReply(_)),
                ) => {
                    return Err(PickedOpenError::Open(e));
                }
                Err(
                    e @ (OpenStreamError::UnknownConnection(_)
                    | OpenStreamError::Draining(_)
                    | OpenStreamError::Open(_)
                    | OpenStreamError::Frame(_)),
                ) => {
                    debug!(
                        connection = connection.0,
                        "stream not opened, trying another connection: {e}"
                    );
                    tried.push(connection);
                    if tried.len() >= OPEN_ATTEMPTS {
                        return Err(PickedOpenError::Open(e));
                    }
                    last_error = Some(e);
                }
            }
        }
    }

    /// Sends a control message (`Drain`, `Heartbeat`, `UdpFlowOpen`, `Goodbye`) on a registered
    /// connection's control stream.
    ///
    /// # Errors
    /// The connection is unknown or its control stream failed.
    pub async fn send_control(
        &self,
        connection_id: ConnectionId,
        frame: &Frame,
    ) -> Result<(), SendControlError> {
        let handle = self
            .shared
            .connection(connection_id)
            .ok_or(SendControlError::UnknownConnection(connection_id))?;
        let mut control = handle.control.lock().await;
        write_frame(&mut control, frame).await?;
        Ok(())
    }

    /// Closes every connection and stops accepting; waits until the peers were told.
    pub async fn shutdown(&self) {
        self.accept.abort();
        self.endpoint
            .close(VarInt::from_u32(close_code::NORMAL), b"shutdown");
        self.endpoint.wait_idle().await;
    }
}

impl Drop for TunnelListener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FlowStream {
    /// The streams and the load-balancing guard, to be held as long as the flow lasts.
    pub fn into_parts(self) -> (SendStream, RecvStream, StreamGuard) {
        (self.send, self.recv, self.guard)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.shared.registry().stream_closed(self.connection_id);
    }
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Registry methods leave it consistent at every return; a panic elsewhere under the
        // lock does not make its contents wrong.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn connections(&self) -> MutexGuard<'_, BTreeMap<ConnectionId, ConnHandle>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn connection(&self, id: ConnectionId) -> Option<ConnHandle> {
        self.connections().get(&id).cloned()
    }

    fn emit(&self, event: EdgeEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let id = ConnectionId(shared.next_id.fetch_add(1, Ordering::Relaxed));
        let span = tracing::debug_span!("connection", connection = id.0);
        tokio::spawn(handle_connection(shared.clone(), incoming, id).instrument(span));
    }
}

async fn handle_connection(shared: Arc<Shared>, incoming: quinn::Incoming, id: ConnectionId) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => {
            debug!(%remote, error = %e, "handshake failed");
            return;
        }
    };
    let registered = serve(&shared, &conn, id).await;
    if registered {
        shared.registry().remove(id);
        shared.connections().remove(&id);
        info!("connector connection closed");
        shared.emit(EdgeEvent::Closed { connection_id: id });
    }
}

/// Registers the connection and runs its control stream; returns whether it was registered.
async fn serve(shared: &Arc<Shared>, conn: &quinn::Connection, id: ConnectionId) -> bool {
    let first = tokio::time::timeout(shared.options.register_timeout, async {
        let (send, recv) = conn.accept_bi().await?;
        let mut reader = ControlReader::new(recv);
        let frame = reader.next().await?;
        Ok::<_, FrameIoError>((send, reader, frame))
    })
    .await;
    let (mut send, reader, frame) = match first {
        Ok(Ok(first)) => first,
        Ok(Err(e)) => {
            debug!(error = %e, "no register");
            conn.close(VarInt::from_u32(close_code::PROTOCOL_ERROR), b"no register");
            return false;
        }
        Err(_) => {
            debug!("register timed out");
            conn.close(
                VarInt::from_u32(close_code::REGISTER_TIMEOUT),
                b"register timeout",
            );
            return false;
        }
    };
    let register = match frame {
        Some(Frame::Register(register)) => register,
        Some(_) | None => {
            let rejection = Rejection::new(RejectCode::PROTOCOL_ERROR, "expected register");
            reject(shared, conn, id, send, rejection).await;
            return false;
        }
    };
    let connector_id = match check_register(shared.verifier.as_ref(), &register) {
        Ok(connector_id) => connector_id,
        Err(rejection) => {
            reject(shared, conn, id, send, rejection).await;
            return false;
        }
    };

    let skipped = shared
        .registry()
        .insert(id, connector_id.clone(), register.routes);
    let registered = Frame::Registered {
        edge_name: shared.options.edge_name.clone(),
        connection_id: id,
    };
    if let Err(e) = write_frame(&mut send, &registered).await {
        debug!(error = %e, "failed to answer register");
        shared.registry().remove(id);
        return false;
    }
    let control = Arc::new(tokio::sync::Mutex::new(send));
    // The datagram task ends with the connection.
    let (udp, _datagrams) = FlowTable::spawn(
        conn.clone(),
        shared.options.udp,
        0,
        shared.udp_counters.clone(),
    );
    shared.connections().insert(
        id,
        ConnHandle {
            conn: conn.clone(),
            control: control.clone(),
            udp,
            next_flow: Arc::new(AtomicU64::new(1)),
        },
    );
    info!(skipped_routes = skipped, "connector registered");
    debug!(connector = %connector_id.0, version = %register.connector_version, "registered");
    shared.emit(EdgeEvent::Registered {
        connection_id: id,
        connector_id,
    });
    control_loop(shared, conn, id, reader, &control).await;
    true
}

/// Checks the credential and that it names the same connector (and tunnel) as the `Register`.
fn check_register(
    verifier: &dyn CredentialVerifier,
    register: &Register,
) -> Result<ConnectorId, Rejection> {
    let identity = verifier.verify(&register.credential.0)?;
    if identity.connector_id != register.connector_id {
        return Err(Rejection::new(
            RejectCode::ID_MISMATCH,
            "connector_id differs from the credential's",
        ));
    }
    if identity
        .tunnel_id
        .as_ref()
        .is_some_and(|t| *t != register.tunnel_id)
    {
        return Err(Rejection::new(
            RejectCode::ID_MISMATCH,
            "tunnel_id differs from the credential's",
        ));
    }
    Ok(identity.connector_id)
}

async fn reject(
    shared: &Shared,
    conn: &quinn::Connection,
    id: ConnectionId,
    mut send: SendStream,
    rejection: Rejection,
) {
    debug!(code = %rejection.code, message = %rejection.message, "registration rejected");
    shared.emit(EdgeEvent::Rejected {
        connection_id: id,
        code: rejection.code,
    });
    let frame = Frame::Rejected {
        code: rejection.code,
        message: rejection.message,
    };
    if write_frame(&mut send, &frame).await.is_ok() && send.finish().is_ok() {
        // Closing at once would discard the frame; wait until it is acknowledged (or the
        // connector hangs up after reading it).
        let _ = tokio::time::timeout(REJECT_LINGER, async {
            tokio::select! {
                _ = send.stopped() => {}
                _ = conn.closed() => {}
            }
        })
        .await;
    }
    conn.close(VarInt::from_u32(close_code::REJECTED), b"rejected");
}

async fn control_loop(
    shared: &Shared,
    conn: &quinn::Connection,
    id: ConnectionId,
    mut reader: ControlReader,
    control: &tokio::sync::Mutex<SendStream>,
) {
    loop {
        let frame = tokio::select! {
            frame = reader.next() => frame,
            e = conn.closed() => {
                debug!(error = %e, "connection ended");
                return;
            }
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                debug!("control stream finished");
                conn.close(
                    VarInt::from_u32(close_code::NORMAL),
                    b"control stream finished",
                );
                return;
            }
            Err(e) => {
                debug!(error = %e, "control stream failed");
                conn.close(
                    VarInt::from_u32(close_code::PROTOCOL_ERROR),
                    b"control stream",
                );
                return;
            }
        };
        match frame {
            Frame::Heartbeat { seq } => {
                let mut send = control.lock().await;
                if let Err(e) = write_frame(&mut send, &Frame::HeartbeatAck { seq }).await {
                    debug!(error = %e, "failed to answer heartbeat");
                    return;
                }
                trace!(seq, "heartbeat answered");
                shared.emit(EdgeEvent::HeartbeatAnswered {
                    connection_id: id,
                    seq,
                });
            }
            Frame::HeartbeatAck { seq } => trace!(seq, "heartbeat acknowledged"),
            Frame::UpdateRoutes { routes } => {
                let skipped = shared.registry().update_routes(id, routes);
                debug!(skipped_routes = ?skipped, "routes updated");
                shared.emit(EdgeEvent::RoutesUpdated { connection_id: id });
            }
            Frame::Drain { grace_ms } => {
                shared.registry().set_draining(id);
                info!(grace_ms, "connector draining");
                shared.emit(EdgeEvent::Draining {
                    connection_id: id,
                    grace: Duration::from_millis(u64::from(grace_ms)),
                });
            }
            Frame::Goodbye => {
                debug!("goodbye");
                conn.close(VarInt::from_u32(close_code::NORMAL), b"goodbye");
                return;
            }
            other @ (Frame::Register(_)
            | Frame::Registered { .. }
            | Frame::Rejected { .. }
            | Frame::UdpFlowOpen(_)
            | Frame::StreamHeader(_)
            | Frame::StreamAccept
            | Frame::StreamRefuse { .. }) => {
                debug!(frame = ?other.frame_type(), "unexpected control message");
                conn.close(
                    VarInt::from_u32(close_code::PROTOCOL_ERROR),
                    b"unexpected frame",
                );
                return;
            }
        }
    }
}

//! The seam between the connector's process (configuration, signals, local endpoints, origin
//! dialing) and its tunnel to the edges. [`crate::run`] takes a [`Transport`] and hands it a
//! [`TransportContext`]; [`crate::TunnelTransport`] (QUIC, on `edge-gateway/tunnel`) implements it.
//!
//! A transport's contract:
//! - It runs until [`DrainSignal::requested`] completes, then stops taking new streams, lets
//!   in-flight ones finish and returns. `run` drops it when the grace period runs out or a second
//!   shutdown signal arrives.
//! - For each stream it looks up the rule in [`LiveConfig::current`] (once per stream, keeping the
//!   `Arc` so a reload never changes a stream's rule mid-way), counts it in
//!   [`Metrics::rule`] (`ingress rule`'s 1-based number) and [`Metrics::stream_opened`], and dials
//!   with [`OriginDialer`].
//! - It holds a [`Metrics::connection_registered`] guard per registered edge connection, which is
//!   what makes `/ready` answer 200.
//! - It re-announces routes after [`LiveConfig::changed`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::live_config::LiveConfig;
use crate::metrics::Metrics;
use crate::origin::OriginDialer;

/// What [`crate::run`] gives the transport.
#[derive(Debug)]
pub struct TransportContext {
    /// The configuration in force; replaced on reload.
    pub config: LiveConfig,
    /// Counters for `/ready` and `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Connects to origins for matched rules (and private-route destinations).
    pub origins: OriginDialer,
    /// Completes when the connector starts its graceful drain.
    pub drain: DrainSignal,
    /// Where `/ready` and `/metrics` are served (the bound address, useful with port 0).
    pub local_http: SocketAddr,
}

/// The tunnel to the edges, plugged into [`crate::run`].
pub trait Transport: Send + 'static {
    /// Serves streams until drained (see the module documentation). An `Err` is logged and
    /// makes the process exit with a failure.
    fn run(self, context: TransportContext) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Any `FnOnce(TransportContext) -> impl Future` is a transport (tests, small adapters).
impl<F, Fut> Transport for F
where
    F: FnOnce(TransportContext) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    fn run(self, context: TransportContext) -> impl Future<Output = anyhow::Result<()>> + Send {
        self(context)
    }
}

/// Tells the transport that a graceful drain began.
#[derive(Debug, Clone)]
pub struct DrainSignal {
    receiver: watch::Receiver<bool>,
}

impl DrainSignal {
    /// A signal and the handle that raises it.
    pub fn new() -> (DrainHandle, Self) {
        let (sender, receiver) = watch::channel(false);
        (DrainHandle { sender }, Self { receiver })
    }

    /// Whether the drain began.
    pub fn is_requested(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Completes once the drain begins (or the connector is gone).
    pub async fn requested(&mut self) {
        // An error means the handle was dropped: the connector is stopping anyway.
        let _ = self.receiver.wait_for(|drain| *drain).await;
    }
}

/// Raises the [`DrainSignal`].
#[derive(Debug)]
pub struct DrainHandle {
    sender: watch::Sender<bool>,
}

impl DrainHandle {
    /// Begins the drain.
    pub fn start(&self) {
        self.sender.send_replace(true);
    }
}

/// The transport of a build without a tunnel: serves nothing to edges, so `/ready` stays 503,
/// while configuration reloads, `/metrics` and signals work as in production. It ends when the
/// drain begins.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOnly;

impl Transport for LocalOnly {
    async fn run(self, mut context: TransportContext) -> anyhow::Result<()> {
        tracing::warn!(
            "this build has no tunnel transport: no edge is dialed and /ready stays 503"
        );
        context.drain.requested().await;
        Ok(())
    }
}

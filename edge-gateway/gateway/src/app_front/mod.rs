//! The application front: where WireGuard clients reach connectors' **hostname** routes.
//!
//! A client resolves an application's name to one of the edge's tunnel addresses and connects
//! to it; the kernel delivers the connection to these listeners (no TPROXY: the address is the
//! edge's own).
//! - **HTTP** ([`http`], default port 80 of the edge's first tunnel address): every request on
//!   a keep-alive connection is parsed (hyper), decided on its own with the access policy (the
//!   device behind the source address, `Host`, path, now) and, when allowed, sent to a
//!   connector that serves the host on a stream of its own (protocol `Http`), with the
//!   application assertion for the device's user ([`crate::assertions`]) in the stream header
//!   for the connector to pass to the origin. Denied requests get a 403 page with a reference
//!   id; the connection stays usable.
//! - **TLS** ([`tls`], default port 443): the edge reads the ClientHello (rustls's `Acceptor`
//!   parses it), decides on the SNI name with path `/` (applications scoped to a narrower path
//!   never match a TLS flow: the edge cannot see paths inside TLS) and passes the whole TLS
//!   connection through to the connector (protocol `Tcp`, destination `sni:443`; the ingress
//!   rule's service should be `tcp://`). A denied flow gets a TLS `access_denied` alert.

pub(crate) mod certs;
pub(crate) mod clientless;
pub(crate) mod http;
pub(crate) mod pages;
pub(crate) mod tls;

use crate::access_state::SharedAccess;
use crate::assertions::AssertionCache;
use crate::decision_audit::{DecisionAudit, Who};
use crate::live_flows::LiveFlows;
use anyhow::Context as _;
use edge_core::access::Verdict;
use edge_core::clientless::Caller;
use identity_claims::DecisionKind;
use pages::Reference;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tunnel::edge::TunnelListener;
use tunnel_proto::RequestId;

/// How long the connector may take to accept a stream (it dials the origin first).
pub(crate) const OPEN_STREAM_TIMEOUT: Duration = Duration::from_secs(15);

/// What the front's tasks share.
pub(crate) struct FrontContext {
    pub(crate) listener: Arc<TunnelListener>,
    pub(crate) access: Arc<SharedAccess>,
    /// Requests and TLS flows in progress, closed when no longer allowed.
    pub(crate) live: Arc<LiveFlows>,
    /// Application assertions for allowed requests; `None` without `[identity]`.
    pub(crate) assertions: Option<Arc<AssertionCache>>,
    /// Where every request and TLS decision is recorded.
    pub(crate) audit: Arc<DecisionAudit>,
    next_request: Arc<AtomicU64>,
}

impl FrontContext {
    pub(crate) fn new(
        listener: Arc<TunnelListener>,
        access: Arc<SharedAccess>,
        live: Arc<LiveFlows>,
        assertions: Option<Arc<AssertionCache>>,
        audit: Arc<DecisionAudit>,
        next_request: Arc<AtomicU64>,
    ) -> Self {
        Self {
            listener,
            access,
            live,
            assertions,
            audit,
            next_request,
        }
    }

    /// Decides a request (`kind` HTTP) or TLS flow (path `/`) from `source` to `host`, records
    /// it in the audit and logs a denial with `reference`: the application, policy and reason
    /// at INFO, the full explanation at DEBUG.
    pub(crate) fn decide(
        &self,
        kind: DecisionKind,
        source: IpAddr,
        host: &str,
        path: &str,
        reference: Reference,
    ) -> Verdict {
        let access = self.access.current();
        let target = edge_policy::Target::Http { host, path };
        let now = policy_now();
        let verdict = access.decide(source, target, now);
        self.record(
            &verdict,
            access.device(source).into(),
            kind,
            source,
            target,
            reference,
        );
        if !verdict.allowed {
            tracing::debug!(
                %reference,
                explanation = %access.explain(source, target, now),
                "why the request was denied"
            );
        }
        verdict
    }

    /// [`FrontContext::decide`] for a clientless request by a verified `caller`.
    pub(crate) fn decide_caller(
        &self,
        caller: &Caller,
        source: IpAddr,
        host: &str,
        path: &str,
        reference: Reference,
    ) -> Verdict {
        let access = self.access.current();
        let target = edge_policy::Target::Http { host, path };
        let now = policy_now();
        let verdict = access.decide_caller(caller, source, target, now);
        let kind = DecisionKind::Http;
        self.record(&verdict, caller.into(), kind, source, target, reference);
        if !verdict.allowed {
            tracing::debug!(
                %reference,
                explanation = %access.explain_caller(caller, source, target, now),
                "why the request was denied"
            );
        }
        verdict
    }

    /// Audits a decision and logs a denial at INFO (no personal data).
    fn record(
        &self,
        verdict: &Verdict,
        who: Who<'_>,
        kind: DecisionKind,
        source: IpAddr,
        target: edge_policy::Target<'_>,
        reference: Reference,
    ) {
        self.audit.record_verdict(
            verdict,
            who,
            kind,
            source,
            target,
            (!verdict.allowed).then(|| reference.to_string()),
        );
        if !verdict.allowed {
            let host = match target {
                edge_policy::Target::Http { host, .. } => host,
                edge_policy::Target::Ip { .. } => "-",
            };
            tracing::info!(
                %reference,
                host,
                kind = ?kind,
                application = verdict.application.as_deref().unwrap_or("-"),
                policy = verdict.policy.as_deref().unwrap_or("-"),
                device = verdict.device_id.as_deref().unwrap_or("-"),
                reason = verdict.summary,
                "request denied"
            );
        }
    }

    pub(crate) fn request_id(&self) -> RequestId {
        RequestId(self.next_request.fetch_add(1, Ordering::Relaxed))
    }
}

/// Binds the HTTP and TLS listeners and spawns their accept loops.
///
/// # Errors
/// A listener cannot be bound.
pub(crate) fn start(
    http_listen: &[SocketAddr],
    tls_listen: &[SocketAddr],
    clientless: Option<&(Vec<SocketAddr>, Arc<clientless::Clientless>)>,
    context: &Arc<FrontContext>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for addr in http_listen {
        let tcp = bind(*addr).with_context(|| format!("failed to bind http_listen {addr}"))?;
        tracing::info!(listen = %addr, "application front (HTTP) up");
        tasks.push(tokio::spawn(http::serve(tcp, context.clone())));
    }
    for addr in tls_listen {
        let tcp = bind(*addr).with_context(|| format!("failed to bind tls_listen {addr}"))?;
        tracing::info!(listen = %addr, "application front (TLS by SNI) up");
        tasks.push(tokio::spawn(tls::serve(tcp, context.clone())));
    }
    if let Some((listen, site)) = clientless {
        for addr in listen {
            let tcp = bind(*addr)
                .with_context(|| format!("failed to bind [clientless] listen {addr}"))?;
            tracing::info!(listen = %addr, login = %site.login_url, "clientless access (HTTPS) up");
            tasks.push(tokio::spawn(clientless::serve(
                tcp,
                context.clone(),
                site.clone(),
            )));
        }
    }
    Ok(tasks)
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

/// Waits a little after a failed `accept` (EMFILE and the like) instead of spinning.
pub(crate) async fn accept_failed(error: &std::io::Error) {
    tracing::warn!("application front: accept failed: {error}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Now, as the policy language counts time.
pub(crate) fn policy_now() -> edge_policy::UnixTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    edge_policy::UnixTime(i64::try_from(secs).unwrap_or(i64::MAX))
}

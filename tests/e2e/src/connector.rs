//! An in-test connector: the `tunnel` crate's [`Dialer`] run on a thread inside a namespace,
//! splicing each TCP flow stream from the edge to the origin address in its header.
//!
//! A connector the test controls step by step (register, drain, come back) with no process or
//! config file in between; tests of the real `gatehouse-connector` binary run that instead. It
//! keeps to the connector's contract: outbound only, announces CIDR routes, refuses destinations
//! outside them, accepts a stream only after the origin answered.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use identity_claims::claims::{Audience, CommonClaims};
use identity_claims::{ConnectorCredential, Jwks, SigningKey, UnixTime};
use ipnet::IpNet;
use tokio::sync::oneshot;
use tunnel::connector::{accept_stream, refuse_stream, Dialer, DialerConfig, IncomingStream};
use tunnel_proto::{ConnectorId, Credential, Destination, RefuseCode, Route, TunnelId};

use crate::netns::Netns;

/// How long an origin may take to accept a connection.
const ORIGIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the connector waits for the edge's `Registered`.
const REGISTER_WAIT: Duration = Duration::from_secs(10);

/// A signing key for connector credentials and the JWKS the edge trusts it with.
pub struct CredentialKey {
    key: SigningKey,
    /// The issuer the edge expects (`[connectors] issuer`).
    pub issuer: String,
}

impl CredentialKey {
    /// A fresh random key for `issuer`.
    pub fn new(issuer: &str) -> Self {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut seed);
        Self {
            key: SigningKey::from_seed(&seed),
            issuer: issuer.to_owned(),
        }
    }

    /// The JWKS (JSON) for the edge's `jwks_file`.
    ///
    /// # Errors
    /// Serialization failed.
    pub fn jwks_json(&self) -> anyhow::Result<String> {
        serde_json::to_string(&Jwks::from_signing_keys([&self.key])).context("jwks")
    }

    /// A connector credential JWT for `connector_id` on tunnel `tunnel_id`, valid for an hour.
    pub fn credential(&self, connector_id: &str, tunnel_id: &str) -> String {
        let now = UnixTime::from_system_time(SystemTime::now());
        let claims = ConnectorCredential {
            common: CommonClaims {
                iss: self.issuer.clone(),
                sub: connector_id.into(),
                aud: Audience::one(tunnel::EDGE_AUDIENCE),
                exp: now.plus(3600),
                iat: now,
                nbf: None,
                jti: crate::random_suffix(12),
            },
            connector_id: connector_id.into(),
            tunnel_id: tunnel_id.into(),
        };
        identity_claims::sign(&claims, &self.key)
    }
}

/// Where and how the in-test connector dials.
pub struct ConnectorSpec<'a> {
    pub edge: SocketAddr,
    /// The name the edge certificate must carry (an IP address in text form works).
    pub edge_name: &'a str,
    pub ca_pem_file: &'a Path,
    pub credential: String,
    pub connector_id: &'a str,
    pub tunnel_id: &'a str,
    pub routes: Vec<IpNet>,
}

/// A registered in-test connector; [`stop`](Self::stop) drains and closes it.
pub struct InTestConnector {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl InTestConnector {
    /// Starts the connector in `netns` and waits until the edge accepted its registration.
    ///
    /// # Errors
    /// The namespace cannot be entered, the CA is unreadable, or registration fails.
    pub fn start(netns: &Netns, spec: ConnectorSpec<'_>) -> anyhow::Result<Self> {
        Self::start_with(netns, spec, None)
    }

    /// Like [`start`](Self::start), but a misbehaving connector: every flow stream is answered
    /// with `reply` (raw bytes, typically a malformed frame) and finished, instead of being
    /// spliced to an origin.
    ///
    /// # Errors
    /// See [`start`](Self::start).
    pub fn start_replying(
        netns: &Netns,
        spec: ConnectorSpec<'_>,
        reply: Vec<u8>,
    ) -> anyhow::Result<Self> {
        Self::start_with(netns, spec, Some(reply))
    }

    fn start_with(
        netns: &Netns,
        spec: ConnectorSpec<'_>,
        reply: Option<Vec<u8>>,
    ) -> anyhow::Result<Self> {
        let ns_file = File::open(format!("/var/run/netns/{}", netns.name()))
            .with_context(|| format!("failed to open namespace {}", netns.name()))?;
        let ca_pem = std::fs::read_to_string(spec.ca_pem_file)
            .with_context(|| format!("failed to read {}", spec.ca_pem_file.display()))?;
        let mut config = DialerConfig::new(
            spec.edge,
            spec.edge_name,
            tunnel::config::connector_client_config(&ca_pem).context("edge CA")?,
            TunnelId(spec.tunnel_id.into()),
            ConnectorId(spec.connector_id.into()),
            Credential(spec.credential),
        );
        config.routes = spec.routes.iter().map(|net| Route::Cidr(*net)).collect();
        let routes = spec.routes.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let result = run_in(&ns_file, config, routes, reply, &ready_tx, stop_rx);
            if let Err(e) = result {
                let _ = ready_tx.send(Err(e));
            }
        });
        let mut connector = Self {
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(REGISTER_WAIT + Duration::from_secs(2)) {
            Ok(Ok(())) => Ok(connector),
            Ok(Err(e)) => {
                connector.stop();
                Err(e)
            }
            Err(_) => {
                connector.stop();
                bail!("the in-test connector did not register in time")
            }
        }
    }

    /// Drains the session (the edge stops picking it), says goodbye and joins the thread.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for InTestConnector {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run_in(
    ns_file: &File,
    config: DialerConfig,
    routes: Vec<IpNet>,
    reply: Option<Vec<u8>>,
    ready: &std::sync::mpsc::Sender<anyhow::Result<()>>,
    stop: oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let runtime = runtime_in(ns_file)?;
    runtime.block_on(async move {
        let dialer = Dialer::new(config).context("failed to bind the connector socket")?;
        let routes = Arc::new(routes);
        let reply = reply.map(Arc::new);
        let handler = Arc::new(move |stream: IncomingStream| {
            let routes = routes.clone();
            let reply = reply.clone();
            async move {
                match reply {
                    Some(reply) => answer_raw(stream, &reply).await,
                    None => splice(stream, routes).await,
                }
            }
        });
        let session = tokio::time::timeout(REGISTER_WAIT, dialer.connect(handler))
            .await
            .context("register timed out")?
            .context("failed to register")?;
        let _ = ready.send(Ok(()));
        let _ = stop.await;
        let _ = session.drain(Duration::from_millis(200)).await;
        drop(session);
        Ok(())
    })
}

/// Enters the namespace on this thread and builds a current-thread runtime there.
fn runtime_in(ns_file: &File) -> anyhow::Result<tokio::runtime::Runtime> {
    // SAFETY: setns on this thread only, with a descriptor of a namespace file held open by the
    // caller.
    let rc = unsafe { libc::setns(ns_file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!("setns failed: {}", std::io::Error::last_os_error());
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("runtime")
}

async fn answer_raw(mut stream: IncomingStream, reply: &[u8]) {
    let _ = stream.send.write_all(reply).await;
    let _ = stream.send.finish();
    // Keep the stream until the edge is done with it.
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.send.stopped()).await;
}

async fn splice(mut stream: IncomingStream, routes: Arc<Vec<IpNet>>) {
    let Destination::Addr(addr) = stream.header.destination else {
        let _ = refuse_stream(
            &mut stream.send,
            RefuseCode::NO_ROUTE,
            "host destinations unsupported",
        )
        .await;
        return;
    };
    if !routes.iter().any(|net| net.contains(&addr.ip())) {
        let _ = refuse_stream(
            &mut stream.send,
            RefuseCode::NO_ROUTE,
            "not a private route",
        )
        .await;
        return;
    }
    let origin =
        match tokio::time::timeout(ORIGIN_CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
        {
            Ok(Ok(origin)) => origin,
            Ok(Err(_)) => {
                let _ = refuse_stream(&mut stream.send, RefuseCode::CONNECTION_REFUSED, "refused")
                    .await;
                return;
            }
            Err(_) => {
                let _ = refuse_stream(&mut stream.send, RefuseCode::TIMED_OUT, "timed out").await;
                return;
            }
        };
    if accept_stream(&mut stream.send).await.is_err() {
        return;
    }
    let mut origin = origin;
    let mut quic = tokio::io::join(stream.recv, stream.send);
    let _ = tokio::io::copy_bidirectional(&mut origin, &mut quic).await;
}

/// Opens one QUIC connection per payload to `edge` from inside `netns` (trusting the CA in
/// `ca_pem_file`), writes the payload as the first bytes of the control stream, and reports
/// what came back: `"closed: <reason>"`, `"reply: <n> bytes"` or `"timeout"` (after 15 s: the
/// edge's register timeout is 10 s). A raw sender of malformed control frames.
///
/// # Errors
/// The namespace cannot be entered or the CA is unreadable.
pub fn send_raw_control(
    netns: &Netns,
    edge: SocketAddr,
    server_name: &str,
    ca_pem_file: &Path,
    payloads: Vec<Vec<u8>>,
) -> anyhow::Result<Vec<String>> {
    let ns_file = File::open(format!("/var/run/netns/{}", netns.name()))
        .with_context(|| format!("failed to open namespace {}", netns.name()))?;
    let ca_pem = std::fs::read_to_string(ca_pem_file)
        .with_context(|| format!("failed to read {}", ca_pem_file.display()))?;
    let client = tunnel::config::connector_client_config(&ca_pem).context("edge CA")?;
    let server_name = server_name.to_owned();
    let thread = std::thread::spawn(move || -> anyhow::Result<Vec<String>> {
        let runtime = runtime_in(&ns_file)?;
        runtime.block_on(async move {
            let mut outcomes = Vec::new();
            for payload in payloads {
                let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([0, 0, 0, 0], 0)))
                    .context("failed to bind")?;
                endpoint.set_default_client_config(client.clone());
                let outcome = tokio::time::timeout(
                    Duration::from_secs(15),
                    raw_exchange(&endpoint, edge, &server_name, &payload),
                )
                .await
                .unwrap_or_else(|_| "timeout".to_owned());
                endpoint.close(0u32.into(), b"done");
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })
    });
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("the raw sender panicked"))?
}

async fn raw_exchange(
    endpoint: &quinn::Endpoint,
    edge: SocketAddr,
    server_name: &str,
    payload: &[u8],
) -> String {
    let conn = match endpoint.connect(edge, server_name) {
        Ok(connecting) => match connecting.await {
            Ok(conn) => conn,
            Err(e) => return format!("handshake: {e}"),
        },
        Err(e) => return format!("connect: {e}"),
    };
    let (mut send, mut recv) = match conn.open_bi().await {
        Ok(streams) => streams,
        Err(e) => return format!("closed: {e}"),
    };
    if let Err(e) = send.write_all(payload).await {
        return format!("closed: {e}");
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            read = recv.read(&mut buf) => match read {
                Ok(Some(n)) => got.extend_from_slice(&buf[..n]),
                Ok(None) | Err(_) => break,
            },
            e = conn.closed() => return format!("closed: {e} (after {} reply bytes)", got.len()),
        }
    }
    let e = conn.closed().await;
    format!("closed: {e} (after {} reply bytes)", got.len())
}

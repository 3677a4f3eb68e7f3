//! `TunnelTransport` against a real edge listener on loopback QUIC: registration and `/ready`,
//! TCP to a private route, HTTP with the assertion header and `httpHostHeader`, refusals,
//! route announcements on reload, a drain that lets an in-flight stream finish, and the
//! secret-for-credential exchange with identity.
#![allow(clippy::unwrap_used, clippy::wildcard_enum_match_arm, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use connector::live_config::ConfigSource;
use connector::metrics::Metrics;
use connector::origin::OriginDialer;
use connector::transport::{DrainHandle, DrainSignal};
use connector::{Transport as _, TransportContext, TunnelTransport};
use identity_claims::claims::{Audience, CommonClaims};
use identity_claims::{ConnectorCredential, Jwks, KeySet, SigningKey, UnixTime};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tunnel::ca::DeploymentCa;
use tunnel::config::{edge_server_config, EdgeLimits};
use tunnel::edge::{EdgeEvent, ListenerOptions, OpenStreamError, TunnelListener};
use tunnel::{JwtVerifier, Target, EDGE_AUDIENCE};
use tunnel_proto::{
    Assertion, ConnectionId, Destination, Protocol, RefuseCode, RequestId, Route, StreamHeader,
};

const ISSUER: &str = "https://identity.test";
const LIMIT: Duration = Duration::from_secs(10);
const ASSERTION: &str = "eyJ.e30.sig";

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

struct Edge {
    ca: DeploymentCa,
    listener: TunnelListener,
    key: SigningKey,
    events: broadcast::Receiver<EdgeEvent>,
}

impl Edge {
    fn start() -> Self {
        let ca = DeploymentCa::generate().unwrap();
        let cert = ca.issue_edge_cert(&["127.0.0.1".into()]).unwrap();
        let server = edge_server_config(
            cert.cert_chain(),
            cert.private_key(),
            &EdgeLimits::default(),
        )
        .unwrap();
        let key = SigningKey::from_seed(&[7; 32]);
        let verifier =
            JwtVerifier::new(ISSUER, KeySet::from_jwks(&Jwks::from_signing_keys([&key])));
        let listener = TunnelListener::bind(
            "127.0.0.1:0".parse().unwrap(),
            server,
            Arc::new(verifier),
            ListenerOptions::new("fra1"),
        )
        .unwrap();
        let events = listener.subscribe();
        Self {
            ca,
            listener,
            key,
            events,
        }
    }

    /// Waits for `n` events matching `f` and returns their connection ids.
    async fn events(
        &mut self,
        n: usize,
        f: impl Fn(&EdgeEvent) -> Option<ConnectionId>,
    ) -> Vec<ConnectionId> {
        bounded(async {
            let mut ids = Vec::new();
            while ids.len() < n {
                if let Some(id) = f(&self.events.recv().await.unwrap()) {
                    ids.push(id);
                }
            }
            ids.sort();
            ids
        })
        .await
    }

    fn registered_ids(&self) -> Vec<ConnectionId> {
        self.listener
            .with_registry(|r| r.connections().map(|(id, _)| id).collect())
    }

    fn routes_of(&self, id: ConnectionId) -> Vec<Route> {
        self.listener
            .with_registry(|r| r.connection(id).unwrap().routes.clone())
    }
}

fn credential(key: &SigningKey) -> String {
    let now = UnixTime::from_system_time(SystemTime::now());
    let claims = ConnectorCredential {
        common: CommonClaims {
            iss: ISSUER.into(),
            sub: "c1".into(),
            aud: Audience::one(EDGE_AUDIENCE),
            exp: now.plus(3600),
            iat: now,
            nbf: None,
            jti: "jti-1".into(),
        },
        connector_id: "c1".into(),
        tunnel_id: "t1".into(),
    };
    identity_claims::sign(&claims, key)
}

/// Origins: a TCP echo server and an HTTP server answering with the request head it received.
struct Origins {
    echo: SocketAddr,
    http: SocketAddr,
}

impl Origins {
    async fn start() -> Self {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origins = Self {
            echo: echo.local_addr().unwrap(),
            http: http.local_addr().unwrap(),
        };
        tokio::spawn(async move {
            loop {
                let (mut tcp, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut read, mut write) = tcp.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                    let _ = write.shutdown().await;
                });
            }
        });
        tokio::spawn(async move {
            loop {
                let (mut tcp, _) = http.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if tcp.read(&mut byte).await.unwrap() == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        head.len()
                    );
                    tcp.write_all(response.as_bytes()).await.unwrap();
                    tcp.write_all(&head).await.unwrap();
                    let _ = tcp.shutdown().await;
                });
            }
        });
        origins
    }
}

fn config_yaml(dir: &Path, edge: SocketAddr, origins: &Origins, extra_rule: &str) -> String {
    format!(
        "tunnel: t1
credentials-file: {dir}/credentials.json
edge-ca-file: {dir}/edge-ca.pem
edges: [\"{edge}\"]
ha-connections: 2
metrics: 127.0.0.1:0
grace-period: 10s
private-routes: [127.0.0.0/8]
ingress:
  - hostname: app.example.com
    service: http://{http}
    originRequest:
      httpHostHeader: internal.test
{extra_rule}  - service: http_status:404
",
        dir = dir.display(),
        http = origins.http,
    )
}

/// `connector::run`'s wiring without its signal handling: the test holds the drain handle and
/// reloads the file itself.
struct Connector {
    source: ConfigSource,
    metrics: Arc<Metrics>,
    local_http: SocketAddr,
    drain: DrainHandle,
    transport: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Connector {
    async fn start(config_path: &Path) -> Self {
        let (source, config) = ConfigSource::load(config_path).unwrap();
        let metrics = Arc::new(Metrics::new());
        let (local_http, serve) = connector::local_http::bind(
            "127.0.0.1:0".parse().unwrap(),
            Arc::clone(&metrics),
            std::future::pending(),
        )
        .await
        .unwrap();
        tokio::spawn(serve);
        let (drain, signal) = DrainSignal::new();
        let context = TransportContext {
            config,
            metrics: Arc::clone(&metrics),
            origins: OriginDialer::new(),
            drain: signal,
            local_http,
        };
        let transport = tokio::spawn(TunnelTransport.run(context));
        Self {
            source,
            metrics,
            local_http,
            drain,
            transport,
        }
    }

    async fn ready_status(&self) -> u16 {
        let mut stream = tokio::net::TcpStream::connect(self.local_http)
            .await
            .unwrap();
        stream
            .write_all(b"GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response[9..12].parse().unwrap()
    }
}

/// An edge, origins, and a connector registered with two connections.
async fn setup(
    credentials: impl FnOnce(&Edge) -> String,
) -> (
    tempfile::TempDir,
    Edge,
    Origins,
    Connector,
    Vec<ConnectionId>,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut edge = Edge::start();
    let origins = Origins::start().await;
    std::fs::write(dir.path().join("edge-ca.pem"), edge.ca.cert_pem()).unwrap();
    std::fs::write(dir.path().join("credentials.json"), credentials(&edge)).unwrap();
    let edge_addr = edge.listener.local_addr().unwrap();
    let config_path = dir.path().join("config.yml");
    std::fs::write(
        &config_path,
        config_yaml(dir.path(), edge_addr, &origins, ""),
    )
    .unwrap();
    let connector = Connector::start(&config_path).await;
    let ids = edge
        .events(2, |e| match e {
            EdgeEvent::Registered { connection_id, .. } => Some(*connection_id),
            _ => None,
        })
        .await;
    // The edge counts a connection registered when it sends `Registered`; the connector when it
    // has read it.
    wait_until(|| connector.metrics.ha_connections() == 2).await;
    (dir, edge, origins, connector, ids)
}

/// Polls `condition` every 10 ms, bounded by the test limit: for state with no event to await.
async fn wait_until(condition: impl Fn() -> bool) {
    bounded(async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

fn fixed_credentials(edge: &Edge) -> String {
    format!(
        r#"{{"TunnelID":"t1","ConnectorID":"c1","Credential":"{}"}}"#,
        credential(&edge.key)
    )
}

fn tcp_header(id: u64, destination: Destination) -> StreamHeader {
    StreamHeader {
        request_id: RequestId(id),
        protocol: Protocol::Tcp,
        destination,
        assertion: Some(Assertion(ASSERTION.into())),
        source: Some("100.64.0.2:51000".parse().unwrap()),
    }
}

#[tokio::test]
async fn connector_registers_its_routes_and_turns_ready() {
    let (_dir, edge, _origins, connector, ids) = setup(fixed_credentials).await;

    assert_eq!(edge.registered_ids(), ids);
    for id in &ids {
        assert_eq!(
            edge.routes_of(*id),
            [
                Route::Hostname {
                    pattern: "app.example.com".into(),
                    path_prefix: None
                },
                Route::Cidr("127.0.0.0/8".parse().unwrap()),
            ]
        );
    }
    assert_eq!(connector.metrics.ha_connections(), 2);
    assert_eq!(bounded(connector.ready_status()).await, 200);
}

#[tokio::test]
async fn tcp_stream_to_a_private_route_reaches_the_origin() {
    let (_dir, edge, origins, _connector, _) = setup(fixed_credentials).await;
    let id = edge.listener.pick(Target::Ip(origins.echo.ip())).unwrap();

    let stream = bounded(
        edge.listener
            .open_stream(id, tcp_header(1, Destination::Addr(origins.echo))),
    )
    .await
    .unwrap();
    let (mut send, mut recv, _guard) = stream.into_parts();
    send.write_all(b"ping through the connector").await.unwrap();
    send.finish().unwrap();

    let echoed = bounded(recv.read_to_end(1024)).await.unwrap();
    assert_eq!(echoed, b"ping through the connector");
}

#[tokio::test]
async fn http_stream_carries_the_assertion_and_the_host_header() {
    let (_dir, edge, _origins, connector, _) = setup(fixed_credentials).await;
    let id = edge
        .listener
        .pick(Target::Host {
            host: "app.example.com",
            path: Some("/"),
        })
        .unwrap();
    let header = StreamHeader {
        protocol: Protocol::Http,
        ..tcp_header(
            2,
            Destination::Host {
                host: "app.example.com".into(),
                port: 443,
            },
        )
    };

    let stream = bounded(edge.listener.open_stream(id, header))
        .await
        .unwrap();
    let (mut send, mut recv, _guard) = stream.into_parts();
    send.write_all(
        b"GET /hello?x=1 HTTP/1.1\r\nHost: app.example.com\r\nGatehouse-Assertion: forged\r\n\r\n",
    )
    .await
    .unwrap();
    send.finish().unwrap();
    let response = bounded(recv.read_to_end(64 * 1024)).await.unwrap();

    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let (_, echoed_head) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        echoed_head.starts_with("GET /hello?x=1 HTTP/1.1\r\n"),
        "{echoed_head}"
    );
    assert!(
        echoed_head.contains("\r\nHost: internal.test\r\n"),
        "{echoed_head}"
    );
    assert!(echoed_head.contains(&format!("\r\nGatehouse-Assertion: {ASSERTION}\r\n")));
    assert!(!echoed_head.contains("forged"), "{echoed_head}");
    assert!(!echoed_head.contains("app.example.com"), "{echoed_head}");
    assert_eq!(connector.metrics.rule(1).requests(), 1);
}

#[tokio::test]
async fn destination_matching_no_rule_is_refused() {
    let (_dir, edge, _origins, _connector, ids) = setup(fixed_credentials).await;

    for destination in [
        Destination::Host {
            host: "other.example.com".into(),
            port: 22,
        },
        Destination::Addr("10.9.9.9:22".parse().unwrap()),
    ] {
        let err = bounded(
            edge.listener
                .open_stream(ids[0], tcp_header(3, destination)),
        )
        .await
        .err()
        .unwrap();
        assert!(
            matches!(&err, OpenStreamError::Refused { code, .. } if *code == RefuseCode::NO_ROUTE),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn reload_announces_new_routes_on_the_same_connections() {
    let (dir, mut edge, origins, mut connector, ids) = setup(fixed_credentials).await;
    let config_path = dir.path().join("config.yml");
    let edge_addr = edge.listener.local_addr().unwrap();
    let rule = format!(
        "  - hostname: new.example.com\n    service: tcp://{}\n",
        origins.echo
    );
    std::fs::write(
        &config_path,
        config_yaml(dir.path(), edge_addr, &origins, &rule),
    )
    .unwrap();

    assert!(matches!(
        connector.source.reload(&connector.metrics),
        connector::live_config::Reload::Applied
    ));
    let updated = edge
        .events(2, |e| match e {
            EdgeEvent::RoutesUpdated { connection_id } => Some(*connection_id),
            _ => None,
        })
        .await;

    assert_eq!(updated, ids);
    assert_eq!(edge.registered_ids(), ids);
    let new_route = Route::Hostname {
        pattern: "new.example.com".into(),
        path_prefix: None,
    };
    for id in &ids {
        assert!(edge.routes_of(*id).contains(&new_route));
    }
    let id = edge
        .listener
        .pick(Target::Host {
            host: "new.example.com",
            path: None,
        })
        .unwrap();
    let destination = Destination::Host {
        host: "new.example.com".into(),
        port: 22,
    };
    let stream = bounded(edge.listener.open_stream(id, tcp_header(4, destination)))
        .await
        .unwrap();
    let (mut send, mut recv, _guard) = stream.into_parts();
    send.write_all(b"new rule").await.unwrap();
    send.finish().unwrap();
    assert_eq!(bounded(recv.read_to_end(1024)).await.unwrap(), b"new rule");
    // The reloaded file is the one in force: the transport task is still running.
    assert!(!connector.transport.is_finished());
    connector.drain.start();
    bounded(&mut connector.transport).await.unwrap().unwrap();
}

#[tokio::test]
async fn drain_lets_an_in_flight_stream_finish_then_returns() {
    let (_dir, mut edge, origins, connector, ids) = setup(fixed_credentials).await;
    let id = edge.listener.pick(Target::Ip(origins.echo.ip())).unwrap();
    let stream = bounded(
        edge.listener
            .open_stream(id, tcp_header(5, Destination::Addr(origins.echo))),
    )
    .await
    .unwrap();
    let (mut send, mut recv, guard) = stream.into_parts();
    send.write_all(b"before ").await.unwrap();
    let mut buf = [0; 7];
    bounded(recv.read_exact(&mut buf)).await.unwrap();

    connector.drain.start();
    let draining = edge
        .events(2, |e| match e {
            EdgeEvent::Draining { connection_id, .. } => Some(*connection_id),
            _ => None,
        })
        .await;
    assert_eq!(draining, ids);
    assert!(matches!(
        bounded(
            edge.listener
                .open_stream(id, tcp_header(6, Destination::Addr(origins.echo)))
        )
        .await,
        Err(OpenStreamError::Draining(_))
    ));
    send.write_all(b"after drain").await.unwrap();
    send.finish().unwrap();
    let rest = bounded(recv.read_to_end(1024)).await.unwrap();
    assert_eq!(rest, b"after drain");
    drop(guard);

    bounded(connector.transport).await.unwrap().unwrap();
    // A connection without streams may close while the other still drains, so its `Closed`
    // can come before the second `Draining`: wait for the registry (emptied before `Closed`).
    bounded(async {
        while !edge.listener.with_registry(|r| r.is_empty()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(connector.metrics.ha_connections(), 0);
}

#[tokio::test]
async fn secret_is_exchanged_for_a_credential_and_renewed() {
    let (requests_tx, mut requests) = tokio::sync::mpsc::unbounded_channel::<String>();
    let token = Arc::new(std::sync::Mutex::new(String::new()));
    let app = axum::Router::new().route(
        "/v1/connector-credential",
        axum::routing::post({
            let token = Arc::clone(&token);
            move |headers: axum::http::HeaderMap| async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let _ = requests_tx.send(auth);
                let token = token.lock().unwrap().clone();
                // One second, so the renewal comes at 0.8 s.
                format!(r#"{{"token":"{token}","expires_in":1}}"#)
            }
        }),
    );
    let identity = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let identity_addr = identity.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(identity, app).await });

    let (_dir, _edge, _origins, connector, ids) = setup(|edge| {
        *token.lock().unwrap() = credential(&edge.key);
        format!(
            r#"{{"TunnelID":"t1","ConnectorID":"c1","Secret":"ghst_test","Identity":"http://{identity_addr}"}}"#
        )
    })
    .await;

    assert_eq!(ids.len(), 2);
    assert_eq!(bounded(requests.recv()).await.unwrap(), "Bearer ghst_test");
    assert_eq!(bounded(requests.recv()).await.unwrap(), "Bearer ghst_test");
    assert_eq!(connector.metrics.ha_connections(), 2);
}

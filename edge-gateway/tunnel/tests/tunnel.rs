//! Real QUIC on loopback: an edge listener and connector dialers, with throwaway certificates
//! and credentials signed from fixed seeds.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use identity_claims::SigningKey;
use support::{bounded, credential, EDGE_NAME};
use tokio::sync::broadcast;
use tunnel::ca::DeploymentCa;
use tunnel::config::{connector_client_config, insecure_client_config_with_alpn};
use tunnel::connector::{
    accept_stream, run_connection_forever, DialError, Dialer, DialerConfig, IncomingStream,
    StreamHandler,
};
use tunnel::edge::{EdgeEvent, ListenerOptions, OpenStreamError, TunnelListener};
use tunnel::Target;
use tunnel_proto::{
    ConnectorId, Credential, Destination, Protocol, RejectCode, RequestId, Route, StreamHeader,
    TunnelId,
};

struct Edge {
    ca: DeploymentCa,
    listener: TunnelListener,
    key: SigningKey,
    events: broadcast::Receiver<EdgeEvent>,
}

impl Edge {
    fn start() -> Self {
        let (ca, listener, key) = support::listener(ListenerOptions::new("fra1"));
        let events = listener.subscribe();
        Self {
            ca,
            listener,
            key,
            events,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    fn dialer(&self, connector_id: &str, credential: Credential) -> DialerConfig {
        let mut config = DialerConfig::new(
            self.addr(),
            EDGE_NAME,
            connector_client_config(self.ca.cert_pem()).unwrap(),
            TunnelId("t1".into()),
            ConnectorId(connector_id.into()),
            credential,
        );
        config.routes = vec![
            Route::Hostname {
                pattern: "app.example.com".into(),
                path_prefix: None,
            },
            Route::Cidr("10.1.0.0/16".parse().unwrap()),
        ];
        config
    }

    /// The next event matching `f`, skipping others.
    async fn event(&mut self, f: impl Fn(&EdgeEvent) -> bool) -> EdgeEvent {
        bounded(async {
            loop {
                let event = self.events.recv().await.unwrap();
                if f(&event) {
                    return event;
                }
            }
        })
        .await
    }
}

/// Accepts every stream and echoes its bytes until the edge finishes its half.
fn echo() -> Arc<dyn StreamHandler> {
    Arc::new(|mut stream: IncomingStream| async move {
        accept_stream(&mut stream.send).await.unwrap();
        let mut buf = [0; 1024];
        while let Some(n) = stream.recv.read(&mut buf).await.unwrap() {
            stream.send.write_all(&buf[..n]).await.unwrap();
        }
        stream.send.finish().unwrap();
    })
}

fn header(id: u64) -> StreamHeader {
    StreamHeader {
        request_id: RequestId(id),
        protocol: Protocol::Tcp,
        destination: Destination::Addr("10.1.2.3:22".parse().unwrap()),
        assertion: None,
        source: None,
    }
}

#[tokio::test]
async fn connector_registers_and_echoes_a_stream() {
    let mut edge = Edge::start();
    let dialer = Dialer::new(edge.dialer("c1", credential(&edge.key, "c1"))).unwrap();

    let session = bounded(dialer.connect(echo())).await.unwrap();

    assert_eq!(session.edge_name(), "fra1");
    let id = session.connection_id();
    edge.event(|e| matches!(e, EdgeEvent::Registered { .. }))
        .await;
    let info = edge
        .listener
        .with_registry(|r| r.connection(id).cloned())
        .unwrap();
    assert_eq!(info.connector_id, ConnectorId("c1".into()));
    assert_eq!(info.routes.len(), 2);
    assert_eq!(
        edge.listener.pick(Target::Host {
            host: "app.example.com",
            path: Some("/")
        }),
        Some(id)
    );
    let ip = "10.1.2.3".parse().unwrap();
    assert_eq!(edge.listener.pick(Target::Ip(ip)), Some(id));

    let stream = bounded(edge.listener.open_stream(id, header(1)))
        .await
        .unwrap();
    let (mut send, mut recv, _guard) = stream.into_parts();
    assert_eq!(
        edge.listener
            .with_registry(|r| r.connection(id).unwrap().open_streams),
        1
    );
    send.write_all(b"hello through the tunnel").await.unwrap();
    send.finish().unwrap();
    let echoed = bounded(recv.read_to_end(1024)).await.unwrap();
    assert_eq!(echoed, b"hello through the tunnel");
    drop(_guard);
    assert_eq!(
        edge.listener
            .with_registry(|r| r.connection(id).unwrap().open_streams),
        0
    );
}

#[tokio::test]
async fn credential_signed_by_unknown_key_is_rejected() {
    let mut edge = Edge::start();
    let other = SigningKey::from_seed(&[9; 32]);
    let dialer = Dialer::new(edge.dialer("c1", credential(&other, "c1"))).unwrap();

    let err = bounded(dialer.connect(echo())).await.err().unwrap();

    assert!(
        matches!(err, DialError::Rejected { code, .. } if code == RejectCode::INVALID_CREDENTIAL),
        "{err:?}"
    );
    edge.event(|e| matches!(e, EdgeEvent::Rejected { .. }))
        .await;
    assert!(edge.listener.with_registry(|r| r.is_empty()));
}

#[tokio::test]
async fn credential_for_another_connector_is_rejected() {
    let mut edge = Edge::start();
    let dialer = Dialer::new(edge.dialer("c1", credential(&edge.key, "c2"))).unwrap();

    let err = bounded(dialer.connect(echo())).await.err().unwrap();

    assert!(
        matches!(err, DialError::Rejected { code, .. } if code == RejectCode::ID_MISMATCH),
        "{err:?}"
    );
    edge.event(|e| matches!(e, EdgeEvent::Rejected { .. }))
        .await;
    assert!(edge.listener.with_registry(|r| r.is_empty()));
}

#[tokio::test]
async fn connector_trusting_another_ca_fails_the_handshake() {
    let edge = Edge::start();
    let other_ca = DeploymentCa::generate().unwrap();
    let mut config = edge.dialer("c1", credential(&edge.key, "c1"));
    config.client_config = connector_client_config(other_ca.cert_pem()).unwrap();
    let dialer = Dialer::new(config).unwrap();

    let err = bounded(dialer.connect(echo())).await.err().unwrap();

    assert!(matches!(err, DialError::Connection(_)), "{err:?}");
    assert!(edge.listener.with_registry(|r| r.is_empty()));
}

#[tokio::test]
async fn client_with_wrong_alpn_fails_the_handshake() {
    let edge = Edge::start();
    let client =
        insecure_client_config_with_alpn(edge.ca.cert_pem(), vec![b"h3".to_vec()]).unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();

    let result = bounded(async {
        endpoint
            .connect_with(client, edge.addr(), EDGE_NAME)
            .unwrap()
            .await
    })
    .await;

    assert!(result.is_err(), "handshake with alpn h3 succeeded");
}

#[tokio::test]
async fn heartbeats_are_acknowledged() {
    let mut edge = Edge::start();
    let mut config = edge.dialer("c1", credential(&edge.key, "c1"));
    config.heartbeat_interval = Duration::from_millis(50);
    let dialer = Dialer::new(config).unwrap();

    let session = bounded(dialer.connect(echo())).await.unwrap();

    edge.event(|e| matches!(e, EdgeEvent::HeartbeatAnswered { seq: 2, .. }))
        .await;
    bounded(async {
        while session.heartbeat_acks() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn update_routes_changes_the_registry() {
    let mut edge = Edge::start();
    let dialer = Dialer::new(edge.dialer("c1", credential(&edge.key, "c1"))).unwrap();
    let session = bounded(dialer.connect(echo())).await.unwrap();
    let (old, new) = ("10.1.0.1".parse().unwrap(), "192.168.0.9".parse().unwrap());
    assert_eq!(
        edge.listener.pick(Target::Ip(old)),
        Some(session.connection_id())
    );

    session
        .update_routes(vec![Route::Cidr("192.168.0.0/24".parse().unwrap())])
        .await
        .unwrap();

    edge.event(|e| matches!(e, EdgeEvent::RoutesUpdated { .. }))
        .await;
    assert_eq!(edge.listener.pick(Target::Ip(old)), None);
    assert_eq!(
        edge.listener.pick(Target::Ip(new)),
        Some(session.connection_id())
    );
}

#[tokio::test]
async fn drain_marks_the_connection_draining_and_waits_for_streams() {
    let mut edge = Edge::start();
    let dialer = Dialer::new(edge.dialer("c1", credential(&edge.key, "c1"))).unwrap();
    let session = Arc::new(bounded(dialer.connect(echo())).await.unwrap());
    let id = session.connection_id();
    let ip = "10.1.0.1".parse().unwrap();
    let (mut send, mut recv, guard) = bounded(edge.listener.open_stream(id, header(1)))
        .await
        .unwrap()
        .into_parts();

    let draining = tokio::spawn({
        let session = session.clone();
        async move { session.drain(Duration::from_secs(5)).await }
    });

    edge.event(|e| matches!(e, EdgeEvent::Draining { .. }))
        .await;
    assert!(edge
        .listener
        .with_registry(|r| r.connection(id).unwrap().draining));
    assert_eq!(edge.listener.pick(Target::Ip(ip)), None);
    let refused = bounded(edge.listener.open_stream(id, header(2))).await;
    assert!(matches!(refused, Err(OpenStreamError::Draining(_))));
    // The stream in flight still works; when it ends the drain completes.
    send.write_all(b"last").await.unwrap();
    send.finish().unwrap();
    assert_eq!(bounded(recv.read_to_end(64)).await.unwrap(), b"last");
    drop(guard);
    bounded(draining).await.unwrap().unwrap();
    edge.event(|e| matches!(e, EdgeEvent::Closed { .. })).await;
    assert!(edge.listener.with_registry(|r| r.is_empty()));
}

#[tokio::test]
async fn run_connection_forever_registers_and_drains_on_shutdown() {
    let mut edge = Edge::start();
    let mut config = edge.dialer("c1", credential(&edge.key, "c1"));
    config.heartbeat_interval = Duration::from_millis(20);
    let dialer = Dialer::new(config).unwrap();
    let (stop, shutdown) = tokio::sync::watch::channel(false);

    let run = tokio::spawn(async move { run_connection_forever(&dialer, echo(), shutdown).await });

    // A heartbeat means the session is up on the connector's side too (a shutdown during the
    // dial only stops dialing).
    edge.event(|e| matches!(e, EdgeEvent::HeartbeatAnswered { .. }))
        .await;
    stop.send(true).unwrap();
    edge.event(|e| matches!(e, EdgeEvent::Draining { .. }))
        .await;
    edge.event(|e| matches!(e, EdgeEvent::Closed { .. })).await;
    bounded(run).await.unwrap().unwrap();
}

//! UDP flows as QUIC datagrams on loopback: an edge listener and a connector session with
//! throwaway certificates and a credential signed from a fixed seed.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use identity_claims::SigningKey;
use support::{bounded, credential, EDGE_NAME};
use tokio::sync::mpsc;
use tunnel::ca::DeploymentCa;
use tunnel::config::connector_client_config;
use tunnel::connector::{Dialer, DialerConfig, IncomingStream, IncomingUdpFlow, StreamHandler};
use tunnel::edge::{ListenerOptions, OpenUdpFlowError, TunnelListener};
use tunnel::udp::{SendDatagramFailure, UdpFlowError, UdpLimits, UdpStats};
use tunnel_proto::{ConnectorId, Destination, Route, TunnelId, UdpFlowOpen};

struct Edge {
    ca: DeploymentCa,
    listener: TunnelListener,
    key: SigningKey,
}

impl Edge {
    fn start(udp: UdpLimits) -> Self {
        let mut options = ListenerOptions::new("fra1");
        options.udp = udp;
        let (ca, listener, key) = support::listener(options);
        Self { ca, listener, key }
    }

    fn dialer(&self, udp: UdpLimits) -> DialerConfig {
        let mut config = DialerConfig::new(
            self.listener.local_addr().unwrap(),
            EDGE_NAME,
            connector_client_config(self.ca.cert_pem()).unwrap(),
            TunnelId("t1".into()),
            ConnectorId("c1".into()),
            credential(&self.key, "c1"),
        );
        config.routes = vec![Route::Cidr("10.1.0.0/16".parse().unwrap())];
        config.udp = udp;
        config
    }
}

/// Polls `f` every 10 ms until it holds, for at most [`LIMIT`].
async fn eventually(mut f: impl FnMut() -> bool) {
    bounded(async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// What the connector's handler saw: each flow's `UdpFlowOpen`, and each flow's end.
enum Seen {
    Opened(UdpFlowOpen),
    Ended(u64),
}

/// Answers every datagram with `echo:` and the payload; `read` false never reads its queue.
struct UdpEcho {
    seen: mpsc::UnboundedSender<Seen>,
    read: bool,
}

impl StreamHandler for UdpEcho {
    fn handle(&self, _stream: IncomingStream) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async {})
    }

    fn handle_udp(&self, flow: IncomingUdpFlow) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let seen = self.seen.clone();
        let read = self.read;
        Box::pin(async move {
            let IncomingUdpFlow { open, mut flow } = flow;
            let id = open.flow_id.get();
            let _ = seen.send(Seen::Opened(open));
            if !read {
                std::future::pending::<()>().await;
            }
            while let Some(payload) = flow.recv().await {
                let mut answer = b"echo:".to_vec();
                answer.extend_from_slice(&payload);
                let _ = flow.send(&answer);
            }
            let _ = seen.send(Seen::Ended(id));
        })
    }
}

struct World {
    edge: Edge,
    dialer: Dialer,
    session: tunnel::connector::Session,
    seen: mpsc::UnboundedReceiver<Seen>,
}

async fn world(edge_udp: UdpLimits, connector_udp: UdpLimits, read: bool) -> World {
    let edge = Edge::start(edge_udp);
    let dialer = Dialer::new(edge.dialer(connector_udp)).unwrap();
    let (tx, seen) = mpsc::unbounded_channel();
    let handler = Arc::new(UdpEcho { seen: tx, read });
    let session = bounded(dialer.connect(handler)).await.unwrap();
    // The edge enters the connection in its table right after answering `Register`.
    let id = session.connection_id();
    eventually(|| edge.listener.with_registry(|r| r.connection(id).is_some())).await;
    World {
        edge,
        dialer,
        session,
        seen,
    }
}

fn dns() -> Destination {
    Destination::Addr("10.1.2.3:53".parse().unwrap())
}

fn connector_stats(world: &World) -> UdpStats {
    world.dialer.config().udp_counters.snapshot()
}

#[tokio::test]
async fn datagrams_flow_both_ways_on_separate_flows() {
    let mut w = world(UdpLimits::default(), UdpLimits::default(), true).await;
    let id = w.session.connection_id();

    let mut a = bounded(w.edge.listener.open_udp_flow(id, dns(), None))
        .await
        .unwrap();
    let mut b = bounded(w.edge.listener.open_udp_flow(id, dns(), None))
        .await
        .unwrap();
    assert_ne!(a.id(), b.id());
    // The first datagram may overtake `UdpFlowOpen`; the connector holds it for the flow.
    a.send(b"query a").unwrap();
    b.send(b"query b").unwrap();

    assert_eq!(&bounded(a.recv()).await.unwrap()[..], b"echo:query a");
    assert_eq!(&bounded(b.recv()).await.unwrap()[..], b"echo:query b");
    let Some(Seen::Opened(open)) = bounded(w.seen.recv()).await else {
        panic!("no open seen");
    };
    assert_eq!(open.destination, dns());
    assert_eq!(open.assertion, None);
    assert_eq!(w.session.udp_flows(), 2);
    assert_eq!(w.edge.listener.udp_flows(id), 2);
    let edge = w.edge.listener.udp_stats();
    assert_eq!((edge.flows_opened, edge.datagrams_sent), (2, 2));
    assert_eq!(edge.datagrams_received, 2);
    let connector = connector_stats(&w);
    assert_eq!(connector.datagrams_received, 2);
    assert_eq!(connector.dropped_unknown_flow, 0);
}

#[tokio::test]
async fn oversize_payloads_are_dropped_and_counted_without_closing_the_flow() {
    let w = world(UdpLimits::default(), UdpLimits::default(), true).await;
    let id = w.session.connection_id();
    let mut flow = bounded(w.edge.listener.open_udp_flow(id, dns(), None))
        .await
        .unwrap();
    let max = flow.max_payload().unwrap();
    assert!(max > 1000, "{max}");

    let too_big = vec![0xab; max + 1];
    assert_eq!(
        flow.send(&too_big),
        Err(SendDatagramFailure::TooLarge { size: max + 1, max })
    );
    assert_eq!(w.edge.listener.udp_stats().dropped_oversize, 1);

    // The largest payload that fits goes through, and the flow goes on. (Its echo is 5 bytes
    // longer: each side's datagram size is its own, so the echo may or may not fit.)
    let fits = vec![0xcd; max];
    flow.send(&fits).unwrap();
    flow.send(b"small").unwrap();
    loop {
        let answer = bounded(flow.recv()).await.unwrap();
        if &answer[..] == b"echo:small" {
            break;
        }
        assert_eq!(answer.len(), max + 5);
    }
    assert_eq!(connector_stats(&w).datagrams_received, 2);
}

#[tokio::test]
async fn datagrams_of_unknown_flows_are_dropped_and_counted() {
    let mut w = world(UdpLimits::default(), UdpLimits::default(), true).await;
    let id = w.session.connection_id();
    let mut flow = bounded(w.edge.listener.open_udp_flow(id, dns(), None))
        .await
        .unwrap();
    flow.send(b"one").unwrap();
    assert_eq!(&bounded(flow.recv()).await.unwrap()[..], b"echo:one");

    // The edge forgets the flow; the connector's answer to a late datagram has no taker.
    let Some(Seen::Opened(_)) = bounded(w.seen.recv()).await else {
        panic!("no open seen");
    };
    let late = flow.send(b"late");
    drop(flow);
    late.unwrap();
    eventually(|| w.edge.listener.udp_stats().dropped_unknown_flow == 1).await;
    assert_eq!(w.edge.listener.udp_flows(id), 0);
}

#[tokio::test]
async fn idle_flows_expire_on_both_sides() {
    let idle = UdpLimits {
        idle_timeout: Duration::from_millis(300),
        ..UdpLimits::default()
    };
    let mut w = world(idle, idle, true).await;
    let id = w.session.connection_id();
    let mut flow = bounded(w.edge.listener.open_udp_flow(id, dns(), None))
        .await
        .unwrap();
    flow.send(b"ping").unwrap();
    assert_eq!(&bounded(flow.recv()).await.unwrap()[..], b"echo:ping");

    // Nothing more either way: the edge's flow ends, and so does the connector's.
    assert_eq!(bounded(flow.recv()).await, None);
    assert_eq!(flow.send(b"too late"), Err(SendDatagramFailure::Closed));
    loop {
        match bounded(w.seen.recv()).await {
            Some(Seen::Ended(ended)) => {
                assert_eq!(ended, flow.id().get());
                break;
            }
            Some(Seen::Opened(_)) => {}
            None => panic!("handler gone"),
        }
    }
    assert_eq!(w.session.udp_flows(), 0);
    assert_eq!(w.edge.listener.udp_flows(id), 0);
    assert_eq!(w.edge.listener.udp_stats().flows_expired, 1);
    assert_eq!(connector_stats(&w).flows_expired, 1);
}

#[tokio::test]
async fn flows_beyond_the_limit_are_refused() {
    let two = UdpLimits {
        max_flows: 2,
        ..UdpLimits::default()
    };
    let w = world(two, UdpLimits::default(), true).await;
    let id = w.session.connection_id();
    let _a = bounded(w.edge.listener.open_udp_flow(id, dns(), None))
        .await
        .unwrap();
    let b = bounded(w.edge.listener.open_udp_flow(id, dns(), None))
        .await
        .unwrap();

    let third = bounded(w.edge.listener.open_udp_flow(id, dns(), None)).await;
    assert!(
        matches!(
            third,
            Err(OpenUdpFlowError::Flow(UdpFlowError::TooManyFlows(2)))
        ),
        "{third:?}"
    );
    assert_eq!(w.edge.listener.udp_stats().flows_refused, 1);

    // A closed flow frees its place.
    drop(b);
    bounded(w.edge.listener.open_udp_flow(id, dns(), None))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_full_flow_queue_drops_and_counts_its_datagrams() {
    let small = UdpLimits {
        queue: 4,
        ..UdpLimits::default()
    };
    // The connector never reads its flows' queues.
    let w = world(UdpLimits::default(), small, false).await;
    let id = w.session.connection_id();
    let slow = bounded(w.edge.listener.open_udp_flow(id, dns(), None))
        .await
        .unwrap();
    for _ in 0..20 {
        slow.send(b"x").unwrap();
    }
    eventually(|| {
        let stats = connector_stats(&w);
        stats.dropped_queue_full > 0 && stats.datagrams_received == 4
    })
    .await;
}

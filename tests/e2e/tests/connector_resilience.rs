//! The connector under stress, end to end: the real `gatehouse`, `gatehouse-edge` and
//! `gatehouse-connector` binaries in network namespaces ([`e2e::tunnel_world`]).
//!
//! Which edge a client's traffic enters: each *site* is one WireGuard client namespace whose
//! tunnel goes to one edge, so every request is known to have entered through that edge, and
//! failures are counted per edge. A client has no failover between edges (that is the
//! client's business, not the connector's), so the two-edge test asks what the connector owes:
//! killing edge A fails at most the requests in flight through A, while the requests through
//! edge B, served by the connector's other connection, keep succeeding throughout; and once A
//! is back the connector re-registers with it on its own.
//!
//! Each test builds its own world and removes it in `Drop`; each is bounded (waits are polls
//! with deadlines). Figures (reconnect and drain times, failure counts) are printed.

#![allow(clippy::print_stderr)] // Measured figures go to the test output.

use std::time::{Duration, Instant};

use e2e::connector::{send_raw_control, ConnectorSpec, CredentialKey, InTestConnector};
use e2e::tunnel_world::{
    epoch_now, other_ca, ConnectorOptions, LoadRun, Request, TunnelWorld, BLACKHOLE, BODY_LEN,
    ISSUER, ORIGIN_A, ORIGIN_B, ORIGIN_PORT, ROUTE_A, ROUTE_B, TUNNEL_ID,
};
use e2e::{http_get, skip_unless_root, wait_until};
use tunnel_proto::{ConnectorId, Credential, Frame, Register, Route, TunnelId};

const CONNECTOR_ID: &str = "conn-1";
const METRICS_PORT: u16 = 2000;

fn body_url(addr: &str) -> String {
    format!("http://{addr}:{ORIGIN_PORT}/body")
}

fn good<'a>(
    world: &TunnelWorld,
    name: &'a str,
    edges: Vec<usize>,
    ha: u32,
) -> ConnectorOptions<'a> {
    ConnectorOptions {
        name,
        connector_id: CONNECTOR_ID,
        credential: world.credential(CONNECTOR_ID),
        tunnel_id: TUNNEL_ID,
        edges,
        ha_connections: ha,
        private_routes: vec![ROUTE_A],
        grace_period: "10s",
        metrics_port: METRICS_PORT,
        edge_ca: None,
    }
}

/// GETs `/body` from site `site`'s client until one succeeds (the WireGuard handshake and the
/// route may take a moment).
fn warm_up(world: &TunnelWorld, site: usize, addr: &str) -> anyhow::Result<()> {
    let mut last = String::new();
    let ok = wait_until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || match http_get(
            &world.sites[site].client,
            &body_url(addr),
            Duration::from_secs(5),
        ) {
            Ok(body) => body.len() == BODY_LEN,
            Err(e) => {
                last = format!("{e:#}");
                false
            }
        },
    );
    anyhow::ensure!(ok, "no GET through site {site} to {addr}: {last}");
    Ok(())
}

fn failures(requests: &[Request]) -> Vec<&Request> {
    requests.iter().filter(|r| !r.ok).collect()
}

#[test]
fn killing_one_of_two_edges_fails_only_its_in_flight_requests_and_the_connector_comes_back(
) -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    const WORKERS: usize = 3;
    let mut world = TunnelWorld::new("connres-ha", 2)?;
    let connector = world.start_connector(&good(&world, "connector", vec![0, 1], 2))?;
    connector.wait_ready(&world.origin, 2, Duration::from_secs(20))?;
    for site in 0..2 {
        world.wait_for_route(site, ROUTE_A, Duration::from_secs(10))?;
        assert_eq!(world.registrations(site), 1, "one connection per edge");
        warm_up(&world, site, ORIGIN_A)?;
    }

    let url = body_url(ORIGIN_A);
    let load_a = LoadRun::start(&world.sites[0].client, &world.dir, &url, WORKERS, 8.0)?;
    let load_b = LoadRun::start(&world.sites[1].client, &world.dir, &url, WORKERS, 8.0)?;
    std::thread::sleep(Duration::from_secs(3));
    let killed_at = epoch_now();
    let kill_started = Instant::now();
    let edge = world.sites[0].edge_proc();
    edge.signal(libc::SIGKILL)?;
    let _ = edge.wait_exit(Duration::from_secs(5));
    // The connector notices the dead connection (QUIC idle timeout, heartbeats as backstop);
    // watched while the load runs.
    let origin = &world.origin;
    let (through_a, through_b, noticed) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            wait_until(Duration::from_secs(35), Duration::from_millis(100), || {
                connector.ready_connections(origin) == Some(1)
            })
            .then(|| kill_started.elapsed())
        });
        let through_a = load_a.finish(Duration::from_secs(40));
        let through_b = load_b.finish(Duration::from_secs(40));
        (through_a, through_b, watcher.join().ok().flatten())
    });
    let (through_a, through_b) = (through_a?, through_b?);

    // Through the surviving edge: nothing fails, before or after the kill.
    let b_failed = failures(&through_b);
    let b_after = through_b.iter().filter(|r| r.start > killed_at).count();
    assert!(
        b_failed.is_empty(),
        "requests through the surviving edge failed: {b_failed:?}"
    );
    assert!(
        b_after >= 5,
        "too few requests through the surviving edge after the kill: {b_after}"
    );
    // Through the killed edge: only those in flight at the kill (one per worker at most).
    let a_before: Vec<&Request> = through_a.iter().filter(|r| r.start < killed_at).collect();
    let a_in_flight_failed = a_before.iter().filter(|r| !r.ok).count();
    assert!(
        a_in_flight_failed <= WORKERS,
        "more failures than requests in flight through the killed edge: {:?}",
        failures(&through_a)
    );
    assert!(
        a_before.iter().filter(|r| r.ok).count() >= 5,
        "the killed edge served too little before the kill"
    );
    let detect = noticed.expect("the connector still counts the dead edge");

    // The edge comes back; the connector re-registers within the backoff bound.
    world.start_edge(0)?;
    let restarted = Instant::now();
    connector.wait_ready(&world.origin, 2, Duration::from_secs(45))?;
    let reconnect = restarted.elapsed();
    assert_eq!(world.registrations(0), 1, "{}", world.edge_log(0));
    world.start_client(0)?;
    world.wait_for_route(0, ROUTE_A, Duration::from_secs(10))?;
    warm_up(&world, 0, ORIGIN_A)?;

    eprintln!(
        "edge kill: through B {} ok, {} after the kill, 0 failed; through A {} before the kill, \
         {a_in_flight_failed} of them failed, {} failed after; dead connection noticed after \
         {detect:.1?}; re-registered {reconnect:.1?} after the restart",
        through_b.len(),
        b_after,
        a_before.len(),
        through_a
            .iter()
            .filter(|r| r.start >= killed_at && !r.ok)
            .count(),
    );
    Ok(())
}

#[test]
fn sigterm_drains_a_long_request_and_a_second_sigterm_exits_at_once() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let world = TunnelWorld::new("connres-drain", 1)?;
    let client = &world.sites[0].client;
    let mut connector = world.start_connector(&good(&world, "connector", vec![0], 1))?;
    connector.wait_ready(&world.origin, 1, Duration::from_secs(20))?;
    world.wait_for_route(0, ROUTE_A, Duration::from_secs(10))?;
    warm_up(&world, 0, ORIGIN_A)?;

    // A request the origin answers after 3 s; SIGTERM while it waits.
    let out = world.dir.join("slow.out");
    let out_text = out.to_string_lossy().to_string();
    let slow_url = format!("http://{ORIGIN_A}:{ORIGIN_PORT}/slow/3");
    let mut slow = client.spawn(
        "curl",
        &[
            "-sS",
            "--fail",
            "--max-time",
            "20",
            "-o",
            &out_text,
            &slow_url,
        ],
        &world.dir.join("slow.log"),
    )?;
    let asked = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        world.origin_log().contains("request /slow/3")
    });
    assert!(asked, "the slow request did not reach the origin");
    connector.proc.signal(libc::SIGTERM)?;
    let term = Instant::now();
    let drained = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        world.edge_log(0).contains("connector draining")
    });
    assert!(
        drained,
        "the edge never heard Drain:\n{}",
        world.edge_log(0)
    );

    // A new request is not given to the draining connector: the edge resets it at once.
    let started = Instant::now();
    let new = http_get(client, &body_url(ORIGIN_A), Duration::from_secs(5));
    let refused_in = started.elapsed();
    assert!(new.is_err(), "a new request went to the draining connector");
    assert!(
        world
            .edge_log(0)
            .contains("no connector for the destination"),
        "the new request was not refused by the edge:\n{}",
        world.edge_log(0)
    );

    // The long request completes in full, then the connector exits well within its grace.
    let status = slow.wait_exit(Duration::from_secs(15))?;
    let fetched = std::fs::read(&out).unwrap_or_default();
    assert!(status.success(), "the long request failed: {}", slow.log());
    assert_eq!(fetched.len(), BODY_LEN, "the long request's body was cut");
    let exit = connector.proc.wait_exit(Duration::from_secs(12))?;
    let drain_time = term.elapsed();
    assert!(exit.success(), "connector exit {exit}");
    assert!(
        connector.proc.log().contains("drained; exiting"),
        "{}",
        connector.proc.log()
    );

    // Again, with a request that outlives the grace period: a second SIGTERM exits at once.
    let mut connector = world.start_connector(&good(&world, "connector-2", vec![0], 1))?;
    connector.wait_ready(&world.origin, 1, Duration::from_secs(20))?;
    let hung_url = format!("http://{ORIGIN_A}:{ORIGIN_PORT}/slow/30");
    let mut hung = client.spawn(
        "curl",
        &["-sS", "--max-time", "40", "-o", "/dev/null", &hung_url],
        &world.dir.join("hung.log"),
    )?;
    let asked = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        world.origin_log().contains("request /slow/30")
    });
    assert!(asked, "the hung request did not reach the origin");
    connector.proc.signal(libc::SIGTERM)?;
    connector
        .proc
        .wait_for_log("draining:", Duration::from_secs(5))?;
    let second = Instant::now();
    connector.proc.signal(libc::SIGTERM)?;
    connector.proc.wait_exit(Duration::from_secs(2))?;
    let forced = second.elapsed();
    assert!(
        connector.proc.log().contains("second shutdown signal"),
        "{}",
        connector.proc.log()
    );
    let _ = hung.stop();
    eprintln!(
        "drain: new request refused in {refused_in:.2?}, connector exited {drain_time:.2?} after \
         SIGTERM (long request 3 s, grace 10 s); second SIGTERM exit in {forced:.2?}"
    );
    Ok(())
}

#[test]
fn a_reload_adding_a_route_fails_no_request_and_keeps_the_connections() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let world = TunnelWorld::new("connres-reload", 1)?;
    let mut options = good(&world, "connector", vec![0], 2);
    let connector = world.start_connector(&options)?;
    connector.wait_ready(&world.origin, 2, Duration::from_secs(20))?;
    world.wait_for_route(0, ROUTE_A, Duration::from_secs(10))?;
    warm_up(&world, 0, ORIGIN_A)?;
    let registered = world.registrations(0);
    let dialed = connector.proc.log().matches("registered with edge").count();
    assert_eq!((registered, dialed), (2, 2));
    let client = &world.sites[0].client;
    assert!(
        http_get(client, &body_url(ORIGIN_B), Duration::from_secs(2)).is_err(),
        "route B answered before it was configured"
    );

    let load = LoadRun::start(client, &world.dir, &body_url(ORIGIN_A), 2, 10.0)?;
    std::thread::sleep(Duration::from_secs(2));
    // An atomic replace (write and rename), as editors and config management do.
    options.private_routes = vec![ROUTE_A, ROUTE_B];
    let staged = world.write_connector_config(&ConnectorOptions {
        name: "connector-staged",
        credential: options.credential.clone(),
        edges: options.edges.clone(),
        private_routes: options.private_routes.clone(),
        ..options
    })?;
    std::fs::rename(&staged, &connector.config)?;
    world.wait_for_route(0, ROUTE_B, Duration::from_secs(10))?;
    warm_up(&world, 0, ORIGIN_B)?;
    let reloads = wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        connector.metric(&world.origin, "gatehouse_connector_config_reloads_total") == Some(1)
    });
    assert!(reloads, "reload not counted");
    // And an in-place write (same inode) of a changed file.
    let text = std::fs::read_to_string(&connector.config)?;
    std::fs::write(
        &connector.config,
        text.replace("grace-period: 10s", "grace-period: 9s"),
    )?;
    let reloads = wait_until(Duration::from_secs(6), Duration::from_millis(100), || {
        connector.metric(&world.origin, "gatehouse_connector_config_reloads_total") == Some(2)
    });
    assert!(
        reloads,
        "in-place write not reloaded:\n{}",
        connector.proc.log()
    );

    let requests = load.finish(Duration::from_secs(30))?;
    let failed = failures(&requests);
    assert!(
        failed.is_empty(),
        "requests failed across the reload: {failed:?}"
    );
    assert!(requests.len() >= 10, "too little load: {}", requests.len());
    http_get(client, &body_url(ORIGIN_B), Duration::from_secs(5))?;
    assert_eq!(
        world.registrations(0),
        registered,
        "the edge saw a re-registration"
    );
    assert_eq!(
        connector.proc.log().matches("registered with edge").count(),
        dialed,
        "the connector re-dialed"
    );
    assert_eq!(connector.ready_connections(&world.origin), Some(2));
    eprintln!(
        "reload: {} requests on route A across two reloads, 0 failed; route B served; \
         {registered} registrations before and after",
        requests.len()
    );
    Ok(())
}

#[test]
fn connectors_with_a_bad_credential_or_the_wrong_ca_are_kept_out() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let world = TunnelWorld::new("connres-badcred", 1)?;
    let connector = world.start_connector(&good(&world, "connector", vec![0], 1))?;
    connector.wait_ready(&world.origin, 1, Duration::from_secs(20))?;
    world.wait_for_route(0, ROUTE_A, Duration::from_secs(10))?;
    warm_up(&world, 0, ORIGIN_A)?;
    let client = &world.sites[0].client;
    let load = LoadRun::start(client, &world.dir, &body_url(ORIGIN_A), 2, 8.0)?;

    let stranger = CredentialKey::new(ISSUER);
    let other_ca_pem = other_ca(&world.dir.join("pki-other"))?;
    let bad = [
        ConnectorOptions {
            name: "wrong-key",
            connector_id: "conn-bad",
            credential: stranger.credential("conn-bad", TUNNEL_ID),
            metrics_port: 2001,
            ..good(&world, "", vec![0], 1)
        },
        ConnectorOptions {
            name: "wrong-tunnel",
            tunnel_id: "tun-other",
            metrics_port: 2002,
            ..good(&world, "", vec![0], 1)
        },
        ConnectorOptions {
            name: "wrong-ca",
            metrics_port: 2003,
            edge_ca: Some(&other_ca_pem),
            ..good(&world, "", vec![0], 1)
        },
    ];
    let bad: Vec<_> = bad
        .iter()
        .map(|options| world.start_connector(options))
        .collect::<anyhow::Result<_>>()?;
    for connector in &bad {
        let refused = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            connector.proc.log().contains("failed to connect to edge")
        });
        assert!(refused, "{}", connector.proc.log());
    }
    let rejections = wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        world.edge_log(0).matches("registration rejected").count() >= 2
    });
    assert!(rejections, "{}", world.edge_log(0));
    let requests = load.finish(Duration::from_secs(30))?;
    for connector in &bad {
        assert_eq!(
            connector.ready_connections(&world.origin),
            Some(0),
            "{}",
            connector.proc.log()
        );
    }
    assert!(
        bad[2].proc.log().contains("UnknownIssuer") || bad[2].proc.log().contains("certificate"),
        "wrong CA: {}",
        bad[2].proc.log()
    );
    assert_eq!(
        world.registrations(0),
        1,
        "only the good connector registered"
    );
    let failed = failures(&requests);
    assert!(
        failed.is_empty(),
        "the good connector's traffic failed: {failed:?}"
    );
    eprintln!(
        "bad credentials: 3 connectors kept out, {} requests through the good one, 0 failed; \
         wrong CA logs: {}",
        requests.len(),
        bad[2]
            .proc
            .log()
            .lines()
            .find(|line| line.contains("failed to connect to edge"))
            .unwrap_or_default()
    );
    Ok(())
}

#[test]
fn malformed_frames_do_not_crash_the_edge() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let mut world = TunnelWorld::new("connres-frames", 1)?;
    let connector = world.start_connector(&good(&world, "connector", vec![0], 1))?;
    connector.wait_ready(&world.origin, 1, Duration::from_secs(20))?;
    world.wait_for_route(0, ROUTE_A, Duration::from_secs(10))?;
    warm_up(&world, 0, ORIGIN_A)?;
    let edge_addr = TunnelWorld::edge_endpoint(0).parse()?;
    let edge_ip = TunnelWorld::edge_endpoint(0)
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned();

    // Control streams from unregistered raw QUIC clients.
    let register = |credential: &str, routes: Vec<Route>| -> anyhow::Result<Vec<u8>> {
        Ok(Frame::Register(Register {
            tunnel_id: TunnelId(TUNNEL_ID.into()),
            connector_id: ConnectorId("raw".into()),
            connector_version: "0".into(),
            credential: Credential(credential.into()),
            routes,
        })
        .encode()?)
    };
    let mut too_many_routes = vec![1, 0x01, 0, 0, 0x3f, 0xff];
    too_many_routes.extend([0, 1, b't', 0, 1, b'c', 0, 1, b'v', 0, 1, b'x', 0xff, 0xff]);
    too_many_routes.resize(6 + 0x3fff, 0xff);
    let payloads = vec![
        vec![0xff; 64],                                           // unsupported version
        vec![1, 0x01, 0xff, 0xff, 0xff, 0xff, 1, 2],              // length over MAX_FRAME
        vec![1, 0x01, 0, 0, 0, 10, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8], // truncated Register
        too_many_routes,                                          // route count over MAX_ROUTES
        vec![1, 0x40, 0, 0, 0, 0],                                // a flow frame on control
        vec![1, 0x08, 0, 0, 0, 0],                                // Goodbye before Register
        register("eyJ.e30.sig", vec![])?,                         // a credential that is no JWT
        register(
            &world.credential("raw"),
            vec![Route::Hostname {
                pattern: "*".repeat(200),
                path_prefix: Some("no-slash".into()),
            }],
        )?, // registered with a malformed route, then the stream stays open
        vec![],                                                   // nothing at all
    ];
    let count = payloads.len();
    let outcomes = send_raw_control(&world.origin, edge_addr, &edge_ip, &world.ca_pem, payloads)?;
    assert_eq!(outcomes.len(), count);
    assert!(world.sites[0].edge_proc().is_running(), "the edge died");
    warm_up(&world, 0, ORIGIN_A)?;

    // A registered connector that answers flow streams with malformed frames.
    let evil_route = "10.99.2.0/24";
    let replies: Vec<Vec<u8>> = vec![
        vec![1, 0x41, 0xff, 0xff, 0xff, 0xff], // StreamAccept longer than MAX_FRAME
        vec![1, 0x99, 0, 0, 0, 0],             // unknown flow frame type
        vec![1, 0x08, 0, 0, 0, 0],             // a control frame on a flow stream
        vec![1, 0x42, 0, 0, 0, 10, 0, 1],      // truncated StreamRefuse
        vec![7, 7, 7],                         // shorter than a header
    ];
    for reply in replies {
        let spec = ConnectorSpec {
            edge: edge_addr,
            edge_name: &edge_ip,
            ca_pem_file: &world.ca_pem,
            credential: world.credential("evil"),
            connector_id: "evil",
            tunnel_id: TUNNEL_ID,
            routes: vec![evil_route.parse()?],
        };
        let mut evil = InTestConnector::start_replying(&world.origin, spec, reply.clone())?;
        world.wait_for_route(0, evil_route, Duration::from_secs(10))?;
        let started = Instant::now();
        let got = http_get(
            &world.sites[0].client,
            &format!("http://10.99.2.5:{ORIGIN_PORT}/body"),
            Duration::from_secs(10),
        );
        assert!(got.is_err(), "reply {reply:?} made a request succeed");
        assert!(
            started.elapsed() < Duration::from_secs(9),
            "reply {reply:?}: the edge did not reset the flow"
        );
        assert!(world.sites[0].edge_proc().is_running(), "the edge died");
        evil.stop();
    }
    warm_up(&world, 0, ORIGIN_A)?;
    assert_eq!(connector.ready_connections(&world.origin), Some(1));
    eprintln!("malformed frames: raw control outcomes {outcomes:#?}; edge alive");
    Ok(())
}

#[test]
fn a_slow_origin_does_not_hold_up_other_streams_and_is_bounded() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let world = TunnelWorld::new("connres-slowloris", 1)?;
    let connector = world.start_connector(&good(&world, "connector", vec![0], 1))?;
    connector.wait_ready(&world.origin, 1, Duration::from_secs(20))?;
    world.wait_for_route(0, ROUTE_A, Duration::from_secs(10))?;
    warm_up(&world, 0, ORIGIN_A)?;
    let client = &world.sites[0].client;

    // An origin that dribbles one byte a second; the client gives up after 4 s.
    let drip_url = format!("http://{ORIGIN_A}:{ORIGIN_PORT}/drip/100");
    let mut drips = Vec::new();
    for n in 0..3 {
        drips.push(client.spawn(
            "curl",
            &["-sS", "--max-time", "4", "-o", "/dev/null", &drip_url],
            &world.dir.join(format!("drip{n}.log")),
        )?);
    }
    let dripping = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        connector.metric(&world.origin, "gatehouse_connector_active_streams") >= Some(3)
    });
    assert!(dripping, "the slow streams did not open");
    let load = LoadRun::start(client, &world.dir, &body_url(ORIGIN_A), 2, 4.0)?;
    let requests = load.finish(Duration::from_secs(30))?;
    let failed = failures(&requests);
    assert!(failed.is_empty(), "other streams failed: {failed:?}");
    for drip in &mut drips {
        let status = drip.wait_exit(Duration::from_secs(10))?;
        assert!(!status.success(), "the dribbling response completed?");
    }
    // Once the client gave up, the connector's streams end too: none is left behind.
    let released = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        connector.metric(&world.origin, "gatehouse_connector_active_streams") == Some(0)
    });
    assert!(
        released,
        "streams to the slow origin outlived the client: {:?}",
        connector.metric(&world.origin, "gatehouse_connector_active_streams")
    );

    // An origin that never completes the TCP handshake: the connector's connect timeout (2 s)
    // refuses the stream and the edge resets the client, long before the client's 10 s.
    let started = Instant::now();
    let out = client.exec(&[
        "curl",
        "-sS",
        "--max-time",
        "10",
        "-o",
        "/dev/null",
        &format!("http://{BLACKHOLE}:{ORIGIN_PORT}/body"),
    ]);
    let refused_in = started.elapsed();
    assert!(!out.status.success(), "the black hole answered");
    assert_ne!(
        out.status.code(),
        Some(28),
        "the client timed out instead of being reset: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "slow origin: {} other requests ok while 3 streams dribbled; streams released; \
         black-holed origin refused in {refused_in:.2?} ({})",
        requests.len(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Two connector replicas (separate processes, separate ids) serve the same route through one
/// edge; one is SIGKILLed mid-load, so it never says `Drain` or `Goodbye`. The edge must stop
/// giving new flows to the dead connection soon, not only at the QUIC idle timeout.
#[test]
fn a_killed_replica_costs_only_a_few_requests() -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    const WORKERS: usize = 3;
    let world = TunnelWorld::new("connres-replica", 1)?;
    let mut first = world.start_connector(&good(&world, "replica-1", vec![0], 1))?;
    first.wait_ready(&world.origin, 1, Duration::from_secs(20))?;
    let second = world.start_connector(&ConnectorOptions {
        connector_id: "conn-2",
        credential: world.credential("conn-2"),
        metrics_port: 2001,
        ..good(&world, "replica-2", vec![0], 1)
    })?;
    second.wait_ready(&world.origin, 1, Duration::from_secs(20))?;
    world.wait_for_route(0, ROUTE_A, Duration::from_secs(10))?;
    warm_up(&world, 0, ORIGIN_A)?;

    let client = &world.sites[0].client;
    let load = LoadRun::start(client, &world.dir, &body_url(ORIGIN_A), WORKERS, 20.0)?;
    std::thread::sleep(Duration::from_secs(3));
    let killed_at = epoch_now();
    first.proc.signal(libc::SIGKILL)?;
    let requests = load.finish(Duration::from_secs(60))?;
    let failed = failures(&requests);
    let after: Vec<&Request> = requests.iter().filter(|r| r.start > killed_at).collect();
    let last_failure = failed
        .iter()
        .map(|r| r.end - killed_at)
        .fold(0.0_f64, f64::max);
    let slowest = after
        .iter()
        .map(|r| r.end - r.start)
        .fold(0.0_f64, f64::max);
    eprintln!(
        "replica kill: {} requests, {} after the kill, {} failed (last failure {last_failure:.1} s \
         after the kill, slowest request after it {slowest:.1} s): {:?}",
        requests.len(),
        after.len(),
        failed.len(),
        failed.iter().map(|r| &r.detail).collect::<Vec<_>>()
    );
    assert!(
        failed.len() <= WORKERS,
        "more failures than requests in flight on the killed replica: {failed:?}"
    );
    assert!(
        after.iter().filter(|r| r.ok).count() >= 20,
        "the surviving replica served too little after the kill"
    );
    Ok(())
}

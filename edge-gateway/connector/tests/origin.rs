//! Origin dialing against real local listeners: TCP, unix sockets, TLS with a throwaway
//! certificate, `http_status:`, PROXY protocol, and a bounded connect timeout.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use connector::origin::{ClientInfo, DialError, OriginDialer};
use connector::proxy_protocol::SIGNATURE;
use connector_config::{Config, Rule};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, UnixListener};

/// The single non-catch-all rule of a config with `service` and `origin_request` (YAML flow map).
fn rule(service: &str, origin_request: &str) -> Rule {
    let text = format!(
        "ingress:\n  - hostname: a.example.com\n    service: {service}\n    originRequest: \
         {origin_request}\n  - service: http_status:404\n"
    );
    let config = Config::from_yaml(&text).unwrap();
    config.ingress.rule(0).unwrap().clone()
}

/// Echoes one connection's bytes back until EOF.
async fn echo_once(listener: TcpListener) {
    let (mut stream, _) = listener.accept().await.unwrap();
    let (mut read, mut write) = stream.split();
    tokio::io::copy(&mut read, &mut write).await.unwrap();
}

async fn round_trip(mut stream: connector::origin::OriginStream) {
    stream.write_all(b"ping over the origin").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"ping over the origin");
}

#[tokio::test]
async fn tcp_origin_round_trips_bytes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(echo_once(listener));
    let rule = rule(&format!("tcp://{address}"), "{tcpKeepAlive: 15s}");
    let stream = OriginDialer::new()
        .connect(&rule, &ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(stream.peer_addr(), Some(address));
    round_trip(stream).await;
    server.await.unwrap();
}

#[tokio::test]
async fn http_origin_by_name_with_no_happy_eyeballs() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(echo_once(listener));
    // `localhost` may resolve to ::1 first on some hosts; 127.0.0.1 is certain.
    let rule = rule(
        &format!("http://127.0.0.1:{port}"),
        "{noHappyEyeballs: true}",
    );
    let stream = OriginDialer::new()
        .connect(&rule, &ClientInfo::default())
        .await
        .unwrap();
    round_trip(stream).await;
    server.await.unwrap();
}

#[tokio::test]
async fn unix_socket_origin_round_trips_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("origin.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let (mut read, mut write) = stream.split();
        tokio::io::copy(&mut read, &mut write).await.unwrap();
    });
    let rule = rule(&format!("unix:{}", path.display()), "{}");
    let stream = OriginDialer::new()
        .connect(&rule, &ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(stream.peer_addr(), None);
    round_trip(stream).await;
    server.await.unwrap();
}

#[tokio::test]
async fn connect_timeout_is_honoured() {
    // A listener whose accept queue is full drops further SYNs, so a connect hangs: a
    // blackholed origin without needing a network.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(0).unwrap();
    let address: SocketAddr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => break,
        }
        assert!(fillers.len() < 64, "the accept queue never filled");
    }
    let rule = rule(&format!("tcp://{address}"), "{connectTimeout: 300ms}");
    let started = Instant::now();
    let result = OriginDialer::new()
        .connect(&rule, &ClientInfo::default())
        .await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(DialError::ConnectTimeout(d)) if d == Duration::from_millis(300)),
        "{result:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    drop(socket);
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let address = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let rule = rule(&format!("tcp://{address}"), "{}");
    let result = OriginDialer::new()
        .connect(&rule, &ClientInfo::default())
        .await;
    assert!(matches!(result, Err(DialError::Connect(_))), "{result:?}");
}

/// A TLS echo origin with a self-signed certificate for `origin.internal`; returns its address
/// and the certificate's PEM.
async fn tls_origin(connections: usize) -> (SocketAddr, String, tokio::task::JoinHandle<()>) {
    let certified = rcgen::generate_simple_self_signed(vec!["origin.internal".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        for _ in 0..connections {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that rejects the certificate ends the handshake: not an error here.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let (mut read, mut write) = tokio::io::split(tls);
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                    let _ = write.shutdown().await;
                }
            });
        }
    });
    (address, cert_pem, server)
}

#[tokio::test]
async fn https_origin_with_a_self_signed_certificate_needs_trust() {
    let (address, cert_pem, server) = tls_origin(3).await;
    let service = format!("https://{address}");
    let dialer = OriginDialer::new();

    let untrusted = rule(&service, "{originServerName: origin.internal}");
    let result = dialer.connect(&untrusted, &ClientInfo::default()).await;
    assert!(matches!(result, Err(DialError::Tls(_))), "{result:?}");

    let insecure = rule(
        &service,
        "{originServerName: origin.internal, noTLSVerify: true}",
    );
    let stream = dialer
        .connect(&insecure, &ClientInfo::default())
        .await
        .unwrap();
    round_trip(stream).await;

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert_pem).unwrap();
    let pinned = rule(
        &service,
        &format!(
            "{{originServerName: origin.internal, caPool: {}}}",
            ca.display()
        ),
    );
    let stream = dialer
        .connect(&pinned, &ClientInfo::default())
        .await
        .unwrap();
    round_trip(stream).await;
    server.await.unwrap();
}

#[tokio::test]
async fn https_origin_checks_the_server_name() {
    let (address, cert_pem, server) = tls_origin(1).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert_pem).unwrap();
    // Trusted CA, but the SNI (the service's IP address) is not in the certificate.
    let rule = rule(
        &format!("https://{address}"),
        &format!("{{caPool: {}}}", ca.display()),
    );
    let result = OriginDialer::new()
        .connect(&rule, &ClientInfo::default())
        .await;
    assert!(matches!(result, Err(DialError::Tls(_))), "{result:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn missing_ca_pool_is_a_tls_config_error() {
    // An open port, so dialing reaches the TLS step.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let rule = rule(
        &format!("https://{address}"),
        "{caPool: /nonexistent/ca.pem}",
    );
    let result = OriginDialer::new()
        .connect(&rule, &ClientInfo::default())
        .await;
    assert!(matches!(result, Err(DialError::TlsConfig(_))), "{result:?}");
}

#[tokio::test]
async fn http_status_answers_locally() {
    let rule = rule("http_status:418", "{}");
    let mut stream = OriginDialer::new()
        .connect(&rule, &ClientInfo::default())
        .await
        .unwrap();
    stream
        .write_all(b"GET /teapot HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert_eq!(
        response,
        "HTTP/1.1 418 I'm a teapot\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
}

#[tokio::test]
async fn proxy_protocol_header_precedes_the_client_bytes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        stream.read_to_end(&mut received).await.unwrap();
        received
    });
    let rule = rule(&format!("tcp://{address}"), "{proxyProtocol: true}");
    let client = ClientInfo {
        source: Some("100.64.0.7:40000".parse().unwrap()),
        assertion: Some("eyJ.x.y"),
    };
    let mut stream = OriginDialer::new().connect(&rule, &client).await.unwrap();
    stream.write_all(b"hello").await.unwrap();
    stream.shutdown().await.unwrap();
    drop(stream);
    let received = server.await.unwrap();
    let port = address.port().to_be_bytes();
    let expected: Vec<u8> = [
        &SIGNATURE[..],
        &[0x21, 0x11, 0x00, 12 + 3 + 7],
        &[100, 64, 0, 7, 127, 0, 0, 1],
        &40000u16.to_be_bytes(),
        &port,
        b"\xE0\x00\x07eyJ.x.y",
        b"hello",
    ]
    .concat();
    assert_eq!(received, expected);
}

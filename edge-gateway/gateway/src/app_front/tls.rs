//! The TLS side of the application front: a decision on the ClientHello's SNI name, then the
//! whole TLS connection passed through to a connector (the edge holds no keys for it).

use super::pages::Reference;
use super::{accept_failed, FrontContext, OPEN_STREAM_TIMEOUT};
use crate::live_flows::FlowTarget;
use edge_core::http_host::normalize_host;
use identity_claims::DecisionKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tunnel::Target;
use tunnel_proto::{Destination, Protocol, StreamHeader};

/// The ClientHello must arrive within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes read while looking for the end of the ClientHello (a post-quantum key share
/// makes it ~1.8 KiB; a hello is at most one 16 KiB record more than that in practice).
const MAX_HELLO_BYTES: usize = 32 * 1024;

/// TLS alert descriptions (RFC 8446 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Alert {
    HandshakeFailure = 40,
    AccessDenied = 49,
    InternalError = 80,
    UnrecognizedName = 112,
}

pub(crate) async fn serve(tcp: TcpListener, context: Arc<FrontContext>) {
    loop {
        match tcp.accept().await {
            Ok((stream, client)) => {
                tokio::spawn(flow(stream, client, context.clone()));
            }
            Err(e) => accept_failed(&e).await,
        }
    }
}

async fn flow(mut tcp: TcpStream, client: SocketAddr, context: Arc<FrontContext>) {
    let Ok(local) = tcp.local_addr() else {
        return;
    };
    let reference = Reference::random();
    let (hello, server_name) =
        match tokio::time::timeout(HELLO_TIMEOUT, read_client_hello(&mut tcp)).await {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                tracing::debug!(%client, "no ClientHello: {e}");
                alert(&mut tcp, Alert::HandshakeFailure).await;
                return;
            }
            Err(_) => {
                tracing::debug!(%client, "no ClientHello in time");
                return;
            }
        };
    let Some(host) = server_name.as_deref().and_then(normalize_host) else {
        tracing::info!(%reference, %client, "TLS flow without a usable SNI name refused");
        alert(&mut tcp, Alert::UnrecognizedName).await;
        return;
    };
    let verdict = context.decide(DecisionKind::Tls, client.ip(), &host, "/", reference);
    if !verdict.allowed {
        alert(&mut tcp, Alert::AccessDenied).await;
        return;
    }
    let header = StreamHeader {
        request_id: context.request_id(),
        protocol: Protocol::Tcp,
        destination: Destination::Host {
            host: host.clone(),
            port: local.port(),
        },
        source: Some(client),
        assertion: None,
    };
    let target = Target::Host {
        host: &host,
        path: None,
    };
    let opened = tokio::time::timeout(
        OPEN_STREAM_TIMEOUT,
        context.listener.open_stream_for(target, header),
    )
    .await;
    let Ok(Ok((_, stream))) = opened else {
        tracing::info!(%reference, %host, "no connector took the TLS flow");
        alert(&mut tcp, Alert::InternalError).await;
        return;
    };
    let live_flow = context.live.register(
        client.ip(),
        FlowTarget::Http {
            host: host.clone(),
            path: "/".to_owned(),
        },
    );
    let (mut send, recv, _guard) = stream.into_parts();
    if send.write_all(&hello).await.is_err() {
        return;
    }
    let mut quic = tokio::io::join(recv, send);
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut tcp, &mut quic) => match copied {
            Ok((up, down)) => tracing::trace!(up, down, "TLS flow finished"),
            Err(e) => tracing::debug!("TLS flow broke: {e}"),
        },
        () = live_flow.closed() => {
            tracing::debug!(%host, "TLS flow no longer allowed: closed");
            let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Reads until rustls has a whole ClientHello; returns every byte read (to be replayed to the
/// origin) and the SNI name, if any.
async fn read_client_hello(tcp: &mut TcpStream) -> std::io::Result<(Vec<u8>, Option<String>)> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut seen = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        seen.extend_from_slice(&chunk[..n]);
        if seen.len() > MAX_HELLO_BYTES {
            return Err(invalid("ClientHello too long"));
        }
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            if acceptor.read_tls(&mut rest)? == 0 {
                return Err(invalid("ClientHello does not fit"));
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let name = accepted.client_hello().server_name().map(str::to_owned);
                return Ok((seen, name));
            }
            Ok(None) => {}
            Err((e, _)) => return Err(invalid(&format!("not a TLS ClientHello: {e}"))),
        }
    }
}

fn invalid(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_owned())
}

/// Sends a fatal alert in a plaintext TLS 1.2-framed record (what a server sends before any
/// key is agreed) and closes.
async fn alert(tcp: &mut TcpStream, alert: Alert) {
    let record = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, alert as u8];
    let _ = tcp.write_all(&record).await;
    let _ = tcp.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc as StdArc;

    /// The first flight of a real rustls client for `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        let config = rustls::ClientConfig::builder_with_provider(StdArc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).expect("name");
        let mut client =
            rustls::ClientConnection::new(StdArc::new(config), server_name).expect("client");
        let mut out = Vec::new();
        client.write_tls(&mut out).expect("write_tls");
        out
    }

    async fn read_from(bytes: Vec<u8>, chunk: usize) -> std::io::Result<(Vec<u8>, Option<String>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let writer = tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            for piece in bytes.chunks(chunk) {
                tcp.write_all(piece).await.expect("write");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            tcp.shutdown().await.expect("shutdown");
        });
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let read = read_client_hello(&mut tcp).await;
        writer.await.expect("writer");
        read
    }

    #[tokio::test]
    async fn the_sni_name_is_read_and_every_byte_kept_for_the_origin() {
        let hello = client_hello("app.example");
        for chunk in [hello.len(), 7] {
            let (seen, name) = read_from(hello.clone(), chunk).await.expect("hello");
            assert_eq!(name.as_deref(), Some("app.example"));
            assert_eq!(seen, hello);
        }
    }

    #[tokio::test]
    async fn plain_http_and_truncated_hellos_are_refused() {
        let http = read_from(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), 64).await;
        assert!(http.is_err(), "{http:?}");
        let mut hello = client_hello("app.example");
        hello.truncate(hello.len() / 2);
        let truncated = read_from(hello, 64).await;
        assert!(truncated.is_err(), "{truncated:?}");
    }
}

//! The HTTP side of the application front: per-request decisions and one connector stream per
//! allowed request.
//!
//! hyper parses the client's keep-alive connection (framing, chunked bodies, `Expect`,
//! pipelining) so that every request is seen and decided on its own; an allowed request is
//! written by hyper's client onto a fresh `Http` flow stream (the connector reads its head,
//! matches its ingress rule by path and adds the application assertion the edge put in the
//! stream header, when identity gave one: [`crate::assertions`]) and the response streams
//! back. Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded either way. Upgrades
//! (WebSocket) are not proxied yet: `Upgrade` is hop-by-hop and dropped.

use super::pages::{Page, Reference};
use super::{accept_failed, FrontContext, OPEN_STREAM_TIMEOUT};
use crate::assertions::Subject;
use crate::live_flows::FlowTarget;
use bytes::Bytes;
use edge_core::http_host::request_host;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use identity_claims::DecisionKind;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tunnel::edge::PickedOpenError;
use tunnel::Target;
use tunnel_proto::{Assertion, Destination, Protocol, StreamHeader};

/// A client must send a whole request head within this time (slowloris bound).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// hyper's read buffer per connection, which bounds a request head (the connector takes heads
/// of up to 16 KiB).
const MAX_BUF: usize = 32 * 1024;

pub(super) type Body = BoxBody<Bytes, hyper::Error>;

pub(crate) async fn serve(tcp: TcpListener, context: Arc<FrontContext>) {
    loop {
        match tcp.accept().await {
            Ok((stream, client)) => {
                tokio::spawn(connection(stream, client, context.clone()));
            }
            Err(e) => accept_failed(&e).await,
        }
    }
}

async fn connection(stream: TcpStream, client: SocketAddr, context: Arc<FrontContext>) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
    let service = hyper::service::service_fn(move |request| {
        let context = context.clone();
        async move { Ok::<_, Infallible>(handle(&context, client, local, request).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUF)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(%client, "front connection ended: {e}");
    }
}

/// Decides one request and, if allowed, proxies it; never fails (errors are pages).
async fn handle(
    context: &FrontContext,
    client: SocketAddr,
    local: SocketAddr,
    request: Request<Incoming>,
) -> Response<Body> {
    let reference = Reference::random();
    let host = request_host(
        request.uri().authority().map(|a| a.as_str()),
        request
            .headers()
            .get(header::HOST)
            .map(HeaderValue::as_bytes),
    );
    let Some(host) = host else {
        return page(Page::BadRequest, reference);
    };
    let path = request.uri().path().to_owned();
    let verdict = context.decide(DecisionKind::Http, client.ip(), &host, &path, reference);
    if !verdict.allowed {
        return page(
            Page::Denied {
                summary: verdict.summary,
            },
            reference,
        );
    }
    let assertion = match (
        &context.assertions,
        &verdict.device_id,
        &verdict.application,
    ) {
        (Some(cache), Some(device), Some(application)) => {
            cache
                .assertion(Subject::Device(device.clone()), application)
                .await
        }
        _ => None,
    };
    let live = Some(FlowTarget::Http {
        host: host.clone(),
        path: path.clone(),
    });
    let to = Forward {
        client,
        port: local.port(),
        host,
        path,
        reference,
        assertion,
        live,
    };
    forward(context, to, request).await
}

/// An allowed request's way to the connector.
pub(super) struct Forward {
    pub(super) client: SocketAddr,
    /// The port the client connected to (the connector's ingress rules may name it).
    pub(super) port: u16,
    pub(super) host: String,
    pub(super) path: String,
    pub(super) reference: Reference,
    /// The application assertion for the origin, when identity gave one.
    pub(super) assertion: Option<String>,
    /// Registered as a live flow under this target (closed when the tunnel client's device is
    /// no longer allowed); `None` for clientless requests, which are decided per request.
    pub(super) live: Option<FlowTarget>,
}

/// Sends an allowed request to a connector on a stream of its own and streams the response
/// back; failures are pages.
pub(super) async fn forward(
    context: &FrontContext,
    to: Forward,
    mut request: Request<Incoming>,
) -> Response<Body> {
    let Forward {
        client,
        port,
        host,
        path,
        reference,
        assertion,
        live,
    } = to;
    let header = StreamHeader {
        request_id: context.request_id(),
        protocol: Protocol::Http,
        destination: Destination::Host {
            host: host.clone(),
            port,
        },
        source: Some(client),
        assertion: assertion.map(Assertion),
    };
    let request_id = header.request_id.0;
    let target = Target::Host {
        host: &host,
        path: Some(&path),
    };
    let opened = tokio::time::timeout(
        OPEN_STREAM_TIMEOUT,
        context.listener.open_stream_for(target, header),
    )
    .await;
    let stream = match opened {
        Ok(Ok((_, stream))) => stream,
        Ok(Err(PickedOpenError::NoConnection)) => {
            tracing::info!(%reference, %host, "no connector serves the host");
            return page(Page::NoConnector, reference);
        }
        Ok(Err(e)) => {
            tracing::info!(%reference, %host, request = request_id, "stream not opened: {e}");
            return page(Page::BadGateway, reference);
        }
        Err(_) => {
            tracing::info!(%reference, %host, request = request_id, "connector did not answer in time");
            return page(Page::Timeout, reference);
        }
    };
    let (send, recv, guard) = stream.into_parts();
    let io = TokioIo::new(tokio::io::join(recv, send));
    let (mut sender, exchange) = match hyper::client::conn::http1::handshake(io).await {
        Ok(parts) => parts,
        Err(e) => {
            tracing::debug!(%reference, "stream handshake: {e}");
            return page(Page::BadGateway, reference);
        }
    };
    // Closed (the response cut off) if the policy or the device's identity stops allowing it.
    let live_flow = live.map(|target| context.live.register(client.ip(), target));
    tokio::spawn(async move {
        // Counts the stream for load balancing until the response body is through.
        let _guard = guard;
        let closed = async {
            match &live_flow {
                Some(flow) => flow.closed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = exchange => if let Err(e) = ended {
                tracing::debug!(request = request_id, "stream exchange ended: {e}");
            },
            () = closed => {
                tracing::debug!(request = request_id, "request no longer allowed: closed");
            }
        }
    });
    to_origin_form(&mut request);
    remove_hop_by_hop(request.headers_mut());
    // One request per stream: the connector finishes the stream after the response.
    request
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::info!(%reference, %host, request = request_id, "request through the connector failed: {e}");
            return page(Page::BadGateway, reference);
        }
    };
    tracing::debug!(%reference, %host, request = request_id, status = response.status().as_u16(), "request allowed");
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body.boxed())
}

/// An absolute-form target (`GET http://host/path`) becomes origin form with `Host` set from
/// it, as origins expect.
fn to_origin_form(request: &mut Request<Incoming>) {
    let Some(authority) = request.uri().authority().cloned() else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
        request.headers_mut().insert(header::HOST, value);
    }
    let origin_form = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("/"));
    *request.uri_mut() = origin_form;
}

/// Drops the hop-by-hop headers: the fixed list and every name `Connection` lists.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<header::HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| header::HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

pub(super) fn page(page: Page<'_>, reference: Reference) -> Response<Body> {
    let body = Full::new(Bytes::from(page.html(reference)))
        .map_err(|never: Infallible| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(page.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&reference.to_string()) {
        headers.insert("gatehouse-reference", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("host", "app.example"),
            ("content-length", "3"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        remove_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(header::HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "host"]);
    }

    #[test]
    fn pages_are_html_with_the_reference_header() {
        let response = page(Page::Denied { summary: "no" }, Reference(7));
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response
                .headers()
                .get("gatehouse-reference")
                .map(HeaderValue::as_bytes),
            Some(&b"0000000000000007"[..])
        );
        assert_eq!(
            response
                .headers()
                .get(header::CACHE_CONTROL)
                .map(HeaderValue::as_bytes),
            Some(&b"no-store"[..])
        );
    }
}

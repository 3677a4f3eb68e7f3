//! The connector's local HTTP endpoints on the `metrics` address: `/ready` (cloudflared's
//! readiness probe: 200 once at least one edge connection is registered, 503 before) and
//! `/metrics` (Prometheus text).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// The Prometheus text exposition format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `address` and returns the bound address and the server, which runs until `shutdown`
/// completes. Binding happens here so a taken port is an error at startup, not later.
///
/// # Errors
/// The address cannot be bound.
pub async fn bind(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, impl Future<Output = anyhow::Result<()>>)> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("failed to bind the metrics address {address}"))?;
    let bound = listener
        .local_addr()
        .context("failed to read the metrics address")?;
    let app = router(metrics);
    let serve = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("the metrics server failed")
    };
    Ok((bound, serve))
}

/// `/ready` and `/metrics` over `metrics`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(prometheus))
        .with_state(metrics)
}

/// The `/ready` status and body for `connections` registered edge connections, in cloudflared's
/// shape: `{"status":200,"readyConnections":N}`, 503 while N is 0.
pub fn readiness(connections: u64) -> (u16, String) {
    let status = if connections >= 1 { 200 } else { 503 };
    (
        status,
        format!("{{\"status\":{status},\"readyConnections\":{connections}}}"),
    )
}

async fn ready(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    let (status, body) = readiness(metrics.ha_connections());
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

async fn prometheus(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], metrics.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_one_connection() {
        assert_eq!(
            readiness(0),
            (503, "{\"status\":503,\"readyConnections\":0}".to_owned())
        );
        assert_eq!(
            readiness(4),
            (200, "{\"status\":200,\"readyConnections\":4}".to_owned())
        );
    }
}

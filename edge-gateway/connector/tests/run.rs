//! `connector::run` with a test transport: `/ready`, `/metrics`, and configuration reloads.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use connector::{RunOptions, TransportContext};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

fn config(catch_all: &str) -> String {
    format!(
        "metrics: 127.0.0.1:0\ningress:\n  - hostname: app.example.com\n    service: \
         http://localhost:8001\n  - service: {catch_all}\n"
    )
}

/// Replaces the file the way editors do (write a sibling, rename it over), so the watcher never
/// reads a half-written file.
fn replace(path: &Path, text: &str) {
    let next = path.with_extension("yml.next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// Starts `run` on `path` with a transport that hands its context to the test and then idles.
async fn start(
    path: &Path,
    poll_interval: Duration,
) -> (
    TransportContext,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (sender, receiver) = oneshot::channel();
    let options = RunOptions {
        config_path: path.to_owned(),
        poll_interval,
    };
    let task = tokio::spawn(async move {
        connector::run(options, move |context: TransportContext| async move {
            let _ = sender.send(context);
            std::future::pending::<anyhow::Result<()>>().await
        })
        .await
        .map(|_| ())
    });
    (receiver.await.unwrap(), task)
}

/// One HTTP/1.1 GET; returns the status code and the body.
async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap();
    (status, body)
}

fn catch_all_service(context: &TransportContext) -> String {
    let config = context.config.current();
    let (_, rule) = config.ingress.matching_rule("other.test", "/");
    rule.service().to_string()
}

#[tokio::test]
async fn ready_turns_200_once_an_edge_connection_registers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config("http_status:404")).unwrap();
    let (context, task) = start(&path, Duration::from_secs(3600)).await;

    assert_eq!(
        get(context.local_http, "/ready").await,
        (503, "{\"status\":503,\"readyConnections\":0}".to_owned())
    );
    let connection = context.metrics.connection_registered();
    assert_eq!(
        get(context.local_http, "/ready").await,
        (200, "{\"status\":200,\"readyConnections\":1}".to_owned())
    );
    drop(connection);
    assert_eq!(get(context.local_http, "/ready").await.0, 503);
    task.abort();
}

#[tokio::test]
async fn metrics_lists_the_series() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config("http_status:404")).unwrap();
    let (context, task) = start(&path, Duration::from_secs(3600)).await;
    let _connection = context.metrics.connection_registered();
    let _stream = context.metrics.stream_opened();
    context.metrics.rule(1).record_request();
    context.metrics.rule(2).record_request();
    context.metrics.rule(2).record_error();

    let (status, text) = get(context.local_http, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "gatehouse_connector_ha_connections 1",
        "gatehouse_connector_active_streams 1",
        "gatehouse_connector_requests_total{rule=\"1\"} 1",
        "gatehouse_connector_requests_total{rule=\"2\"} 1",
        "gatehouse_connector_request_errors_total{rule=\"1\"} 0",
        "gatehouse_connector_request_errors_total{rule=\"2\"} 1",
        "gatehouse_connector_config_reloads_total 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
    task.abort();
}

#[tokio::test]
async fn a_changed_file_replaces_the_ingress_within_five_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config("http_status:404")).unwrap();
    // The production interval (2 s).
    let (mut context, task) = start(&path, connector::live_config::CONFIG_POLL_INTERVAL).await;
    let before = context.config.current();
    assert_eq!(catch_all_service(&context), "http_status:404");

    replace(&path, &config("http_status:503"));
    let changed = tokio::time::timeout(Duration::from_secs(5), context.config.changed())
        .await
        .expect("no reload within 5 s")
        .unwrap();
    let (_, rule) = changed.ingress.matching_rule("other.test", "/");
    assert_eq!(rule.service().to_string(), "http_status:503");
    assert_eq!(catch_all_service(&context), "http_status:503");
    // A request that looked up its rule before the reload keeps the old rules.
    let (_, old_rule) = before.ingress.matching_rule("other.test", "/");
    assert_eq!(old_rule.service().to_string(), "http_status:404");
    assert_eq!(context.metrics.config_reloads(), 1);
    task.abort();
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_previous_ingress() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config("http_status:404")).unwrap();
    let (context, task) = start(&path, Duration::from_millis(100)).await;

    replace(
        &path,
        "ingress:\n  - hostname: app.example.com\n    service: http://x\n",
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while context.metrics.config_reload_errors() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no reload attempt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(catch_all_service(&context), "http_status:404");
    assert_eq!(context.metrics.config_reloads(), 0);

    // The next valid edit is applied.
    replace(&path, &config("http_status:410"));
    let mut config = context.config.clone();
    tokio::time::timeout(Duration::from_secs(5), config.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(catch_all_service(&context), "http_status:410");
    task.abort();
}

#[tokio::test]
async fn an_invalid_file_at_start_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, "ingress: []\n").unwrap();
    let result = connector::run(RunOptions::new(path), |_context: TransportContext| async {
        Ok(())
    })
    .await;
    let error = format!("{:#}", result.unwrap_err());
    assert!(
        error.ends_with("the config file doesn't contain any ingress rules"),
        "{error}"
    );
}

#[tokio::test]
async fn a_transport_stopping_unasked_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config("http_status:404")).unwrap();
    let result = connector::run(RunOptions::new(path), |_context: TransportContext| async {
        anyhow::bail!("edge rejected the credential")
    })
    .await;
    assert_eq!(
        format!("{:#}", result.unwrap_err()),
        "edge rejected the credential"
    );
}

//! Parsing: a real cloudflared file, Gatehouse's keys and their defaults, unknown keys.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use connector_config::{
    Config, ConfigError, HostPort, Notice, Service, TunnelRef, DEFAULT_ASSERTION_HEADER,
};

const CLOUDFLARED: &str = include_str!("../testdata/cloudflared.yml");

fn parse(text: &str) -> Config {
    match Config::from_yaml(text) {
        Ok(config) => config,
        Err(error) => panic!("rejected:\n{error}"),
    }
}

fn syntax_error(text: &str) -> (String, Option<usize>) {
    match Config::from_yaml(text) {
        Err(ConfigError::Syntax { message, line, .. }) => (message, line),
        Err(other) => panic!("expected a syntax error, got: {other}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn a_cloudflared_config_parses() {
    let config = parse(CLOUDFLARED);

    assert_eq!(
        config.tunnel,
        Some(TunnelRef::Id("6ff42ae2-765d-4adf-8112-31c55c1551ef".into()))
    );
    assert_eq!(
        config.credentials_file,
        Some(PathBuf::from(
            "/root/.cloudflared/6ff42ae2-765d-4adf-8112-31c55c1551ef.json"
        ))
    );
    assert_eq!(
        config.metrics,
        "127.0.0.1:2000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.ingress.rule_count(), 8);
    let services: Vec<String> = config
        .ingress
        .rules()
        .map(|r| r.service().to_string())
        .collect();
    assert_eq!(
        services,
        [
            "http://localhost:80",
            "tcp://localhost:22",
            "https://localhost:8001",
            "https://localhost:8002",
            "http://127.0.0.1:9000",
            "tcp://10.0.0.5:5432",
            "unix:/var/run/app.sock",
            "http_status:404",
        ]
    );
}

#[test]
fn cloudflared_only_keys_become_notices_in_file_order_of_the_schema() {
    let config = parse(CLOUDFLARED);

    let keys: Vec<&str> = config.notices.iter().map(|n| n.key).collect();
    assert_eq!(
        keys,
        ["warp-routing", "loglevel", "no-autoupdate", "protocol"]
    );
    assert_eq!(
        config.notices[0].to_string(),
        "`warp-routing` is ignored: private networks are announced with `private-routes`"
    );
}

#[test]
fn gatehouse_keys_have_documented_defaults() {
    let config = parse("ingress:\n  - service: http_status:503\n");

    assert_eq!(config.tunnel, None);
    assert!(config.edges.is_empty());
    assert_eq!(config.ha_connections.get(), 4);
    assert!(config.private_routes.is_empty());
    assert_eq!(config.grace_period, Duration::from_secs(30));
    assert_eq!(
        config.metrics,
        "127.0.0.1:2000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.edge_ca_file, None);
    assert_eq!(config.assertion_header, DEFAULT_ASSERTION_HEADER);
    assert_eq!(config.notices, Vec::<Notice>::new());
}

#[test]
fn gatehouse_keys_parse() {
    let config = parse(
        r#"
tunnel: office-connector
edges: ["edge-1.gatehouse.example:443", "[2001:db8::1]:7844", "192.0.2.10:443"]
ha-connections: 2
private-routes: [10.0.0.0/8, "fd00::/64"]
grace-period: 1m30s
metrics: "[::1]:9300"
edge-ca-file: /etc/gatehouse/edge-ca.pem
assertion-header: X-Identity
ingress:
  - service: http_status:404
"#,
    );

    assert_eq!(
        config.tunnel,
        Some(TunnelRef::Name("office-connector".into()))
    );
    assert_eq!(
        config.edges,
        [
            HostPort {
                host: "edge-1.gatehouse.example".into(),
                port: 443
            },
            HostPort {
                host: "2001:db8::1".into(),
                port: 7844
            },
            HostPort {
                host: "192.0.2.10".into(),
                port: 443
            },
        ]
    );
    assert_eq!(config.edges[1].to_string(), "[2001:db8::1]:7844");
    assert_eq!(config.ha_connections.get(), 2);
    assert_eq!(
        config.private_routes,
        ["10.0.0.0/8".parse().unwrap(), "fd00::/64".parse().unwrap()]
    );
    assert_eq!(config.grace_period, Duration::from_secs(90));
    assert_eq!(config.metrics, "[::1]:9300".parse::<SocketAddr>().unwrap());
    assert_eq!(
        config.edge_ca_file,
        Some(PathBuf::from("/etc/gatehouse/edge-ca.pem"))
    );
    assert_eq!(config.assertion_header, "X-Identity");
}

#[test]
fn service_forms_parse() {
    let config = parse(
        r#"
ingress:
  - {hostname: a.example, service: "https://[::1]"}
  - {hostname: b.example, service: "wss://Origin.Internal"}
  - {hostname: c.example, service: "rdp://10.1.1.1"}
  - {hostname: d.example, service: "unix+tls:/run/tls.sock"}
  - service: http_status:418
"#,
    );
    let services: Vec<&Service> = config.ingress.rules().map(|r| r.service()).collect();
    let origin = |host: &str, port| HostPort {
        host: host.into(),
        port,
    };

    assert_eq!(
        services[0],
        &Service::Http {
            tls: true,
            origin: origin("::1", 443)
        }
    );
    assert_eq!(
        services[1],
        &Service::Http {
            tls: true,
            origin: origin("origin.internal", 443)
        }
    );
    assert_eq!(
        services[2],
        &Service::Tcp {
            origin: origin("10.1.1.1", 3389)
        }
    );
    assert_eq!(
        services[3],
        &Service::Unix {
            path: PathBuf::from("/run/tls.sock"),
            tls: true
        }
    );
    assert_eq!(services[4], &Service::HttpStatus(418));
}

#[test]
fn durations_take_go_syntax_and_bare_seconds() {
    let config = parse(
        r#"
originRequest:
  connectTimeout: 1.5s
  tlsTimeout: 250ms
  tcpKeepAlive: 15
  keepAliveTimeout: 2h
ingress:
  - service: http_status:404
"#,
    );
    let defaults = config.ingress.defaults();

    assert_eq!(defaults.connect_timeout, Duration::from_millis(1500));
    assert_eq!(defaults.tls_timeout, Duration::from_millis(250));
    assert_eq!(defaults.tcp_keep_alive, Duration::from_secs(15));
    assert_eq!(defaults.keep_alive_timeout, Duration::from_secs(7200));
}

#[test]
fn an_unknown_top_level_key_names_the_key_and_its_line() {
    let (message, line) = syntax_error("tunnel: x\ncredential-file: /x.json\ningress: []\n");

    assert_eq!(line, Some(2));
    assert!(
        message.starts_with("unknown field `credential-file`, expected one of"),
        "{message}"
    );
    assert!(message.ends_with("at line 2 column 1"), "{message}");
}

#[test]
fn an_unknown_rule_key_names_the_rule_the_key_and_its_line() {
    let (message, line) = syntax_error(
        "ingress:\n  - hostname: a.example.com\n    servic: http://localhost\n  - service: http_status:404\n",
    );

    assert_eq!(line, Some(3));
    assert!(
        message.starts_with("ingress[0]: unknown field `servic`"),
        "{message}"
    );
    assert!(message.ends_with("at line 3 column 5"), "{message}");
}

#[test]
fn an_unknown_origin_request_key_names_the_key_and_its_line() {
    let (message, line) = syntax_error(
        "ingress:\n  - service: http_status:404\n    originRequest:\n      http2Origin: true\n",
    );

    assert_eq!(line, Some(4));
    assert!(
        message.starts_with("ingress[0].originRequest: unknown field `http2Origin`"),
        "{message}"
    );
    assert!(message.ends_with("at line 4 column 7"), "{message}");
}

#[test]
fn a_bad_value_names_its_line() {
    let (message, line) = syntax_error(
        "originRequest:\n  connectTimeout: 30\n  tlsTimeout: soon\ningress:\n  - service: http_status:404\n",
    );
    assert_eq!(line, Some(3));
    assert!(
        message.starts_with("originRequest.tlsTimeout: invalid duration \"soon\""),
        "{message}"
    );

    let (message, line) = syntax_error("edges: [edge.example]\ningress: []\n");
    assert_eq!(line, Some(1));
    assert!(
        message.contains("invalid edge address \"edge.example\": expected host:port"),
        "{message}"
    );

    let (message, line) = syntax_error("\nprivate-routes: [10.0.0.0/33]\ningress: []\n");
    assert_eq!(line, Some(2));
    assert!(message.starts_with("private-routes[0]: "), "{message}");
}

#[test]
fn not_yaml_is_a_syntax_error_with_a_line() {
    let (_, line) = syntax_error("ingress:\n  - service: [\n");
    assert!(line.is_some());
}

#[test]
fn load_reads_a_file() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cloudflared.yml");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.ingress.rule_count(), 8);

    let missing = Config::load(std::path::Path::new("/nonexistent/config.yml")).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "failed to read /nonexistent/config.yml"
    );
}

//! Matching: which rule takes a request, and with which origin settings.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use connector_config::{Config, OriginRequest, Route};

const RULES: &str = r#"
originRequest:
  connectTimeout: 5s
  httpHostHeader: default.internal
  caPool: /etc/ca.pem
ingress:
  - hostname: app.example.com
    service: http://localhost:8000
  - hostname: app.example.com
    path: ^/api/
    service: http://localhost:8001
  - hostname: static.example.com
    path: \.(css|js)$
    service: http://localhost:8002
    originRequest:
      connectTimeout: 1s
      httpHostHeader: ""
  - hostname: "*.example.com"
    service: http://localhost:8003
    originRequest:
      noTLSVerify: true
      keepAliveConnections: 7
  - hostname: Mixed.Example.ORG
    service: http://localhost:8004
  - path: ^/health$
    service: http_status:204
  - hostname: "bücher.example.net"
    service: http://localhost:8005
  - service: http_status:404
"#;

fn config() -> Config {
    Config::from_yaml(RULES).unwrap()
}

#[test]
fn requests_take_the_first_matching_rule() {
    let config = config();
    // (host, path, 0-based rule index)
    let table: &[(&str, &str, usize)] = &[
        // exact hostname; an earlier rule shadows a later, more specific one, as in cloudflared
        ("app.example.com", "/", 0),
        ("app.example.com", "/api/users", 0),
        // path regex, unanchored unless written with ^
        ("static.example.com", "/site.css", 2),
        ("static.example.com", "/site.css.map", 3),
        ("static.example.com", "/js/app.js", 2),
        // wildcard: one or more labels before the suffix, never the apex or a look-alike
        ("www.example.com", "/", 3),
        ("a.b.example.com", "/", 3),
        ("example.com", "/", 7),
        ("badexample.com", "/", 7),
        // hostnames ignore case on both sides
        ("APP.Example.Com", "/", 0),
        ("mixed.example.org", "/", 4),
        ("WWW.EXAMPLE.COM", "/", 3),
        // a port on the request host is ignored
        ("app.example.com:8443", "/", 0),
        ("mixed.example.org:80", "/", 4),
        ("[::1]:8080", "/health", 5),
        // path-only rule, any host
        ("unknown.test", "/health", 5),
        ("unknown.test", "/healthz", 7),
        // internationalized names match in Unicode and in punycode
        ("bücher.example.net", "/", 6),
        ("xn--bcher-kva.example.net", "/", 6),
        // the catch-all takes everything else, including odd input
        ("", "", 7),
        ("unknown.test", "/", 7),
        (":::", "/", 7),
    ];
    for &(host, path, expected) in table {
        let (index, _) = config.ingress.matching_rule(host, path);
        assert_eq!(index, expected, "{host} {path}");
    }
}

#[test]
fn a_later_rule_for_the_same_host_needs_to_come_first_to_win() {
    let config = Config::from_yaml(
        "ingress:\n  - {hostname: app.example.com, path: ^/api/, service: http://api}\n  - \
         {hostname: app.example.com, service: http://web}\n  - service: http_status:404\n",
    )
    .unwrap();

    assert_eq!(
        config.ingress.matching_rule("app.example.com", "/api/x").0,
        0
    );
    assert_eq!(
        config.ingress.matching_rule("app.example.com", "/apix").0,
        1
    );
}

#[test]
fn the_matched_rule_carries_merged_origin_settings() {
    let config = config();

    let (_, exact) = config.ingress.matching_rule("app.example.com", "/");
    assert_eq!(
        exact.origin_request(),
        &OriginRequest {
            connect_timeout: Duration::from_secs(5),
            http_host_header: Some("default.internal".into()),
            ca_pool: Some(PathBuf::from("/etc/ca.pem")),
            ..OriginRequest::default()
        }
    );

    // A rule key wins over the top level; an empty string clears the top-level value.
    let (_, static_files) = config.ingress.matching_rule("static.example.com", "/a.css");
    assert_eq!(
        static_files.origin_request().connect_timeout,
        Duration::from_secs(1)
    );
    assert_eq!(static_files.origin_request().http_host_header, None);
    assert_eq!(
        static_files.origin_request().ca_pool,
        Some(PathBuf::from("/etc/ca.pem"))
    );

    // Keys the rule does not set come from the top level, then from cloudflared's defaults.
    let (_, wildcard) = config.ingress.matching_rule("x.example.com", "/");
    let merged = wildcard.origin_request();
    assert!(merged.insecure_no_tls_verify);
    assert_eq!(merged.keep_alive_connections, 7);
    assert_eq!(merged.connect_timeout, Duration::from_secs(5));
    assert_eq!(merged.tls_timeout, Duration::from_secs(10));
    assert_eq!(merged.keep_alive_timeout, Duration::from_secs(90));
    assert_eq!(merged.tcp_keep_alive, Duration::from_secs(30));
}

#[test]
fn defaults_without_any_origin_request_are_cloudflareds() {
    let config = Config::from_yaml("ingress:\n  - service: http://localhost\n").unwrap();
    let (_, rule) = config.ingress.matching_rule("any", "/");

    assert_eq!(rule.origin_request(), &OriginRequest::default());
    assert_eq!(config.ingress.defaults(), &OriginRequest::default());
    assert_eq!(
        OriginRequest::default().connect_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(OriginRequest::default().keep_alive_connections, 100);
}

#[test]
fn routes_announce_hostnames_and_private_networks() {
    let mut text = String::from("private-routes: [10.0.0.0/8, 192.168.1.0/24, 10.0.0.0/8]\n");
    text.push_str(RULES);
    let config = Config::from_yaml(&text).unwrap();
    let hostname = |name: &str, prefix: Option<&str>| Route::Hostname {
        hostname: name.into(),
        path_prefix: prefix.map(Into::into),
    };

    assert_eq!(
        config.routes(),
        [
            hostname("app.example.com", None),
            hostname("app.example.com", Some("/api/")),
            hostname("static.example.com", None),
            hostname("*.example.com", None),
            hostname("mixed.example.org", None),
            hostname("bücher.example.net", None),
            Route::Private("10.0.0.0/8".parse().unwrap()),
            Route::Private("192.168.1.0/24".parse().unwrap()),
        ]
    );
}

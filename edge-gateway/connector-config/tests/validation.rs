//! Validation: every problem, with cloudflared's rule numbers and wording, all reported at once.
#![allow(clippy::unwrap_used)]

use connector_config::{Config, ConfigError, Problem};

fn problems(text: &str) -> Vec<String> {
    match Config::from_yaml(text) {
        Err(ConfigError::Invalid(problems)) => problems.0.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("expected validation problems, got: {other}"),
        Ok(_) => panic!("accepted"),
    }
}

/// The one problem of `rules` (an ingress list).
fn problem(rules: &str) -> String {
    let found = problems(&format!("ingress:\n{rules}"));
    assert_eq!(found.len(), 1, "{found:#?}");
    found.into_iter().next().unwrap_or_default()
}

#[test]
fn no_ingress_rules() {
    assert_eq!(
        problems("tunnel: x\n"),
        ["the config file doesn't contain any ingress rules"]
    );
    assert_eq!(
        problems("ingress: []\n"),
        ["the config file doesn't contain any ingress rules"]
    );
}

#[test]
fn the_last_rule_must_be_a_catch_all() {
    assert_eq!(
        problem("  - hostname: a.example.com\n    service: http://localhost:8000\n"),
        "rule #1: the last ingress rule must match all URLs (i.e. it should not have a hostname \
         or path filter)"
    );
    assert_eq!(
        problem(
            "  - {hostname: a.example.com, service: http://x}\n  - {path: /, service: http://y}\n"
        ),
        "rule #2: the last ingress rule must match all URLs (i.e. it should not have a hostname \
         or path filter)"
    );
}

#[test]
fn only_the_last_rule_may_be_a_catch_all() {
    assert_eq!(
        problem("  - {hostname: \"*\", service: http://x}\n  - service: http_status:404\n"),
        "rule #1 is matching the hostname '*', but this will match every hostname, meaning the \
         rules which follow it will never be triggered"
    );
    assert_eq!(
        problem("  - service: http://x\n  - service: http_status:404\n"),
        "rule #1 is matching the hostname '', but this will match every hostname, meaning the \
         rules which follow it will never be triggered"
    );
}

#[test]
fn wildcards_only_as_a_leading_label() {
    let expected =
        "rule #1: hostname patterns can have at most one wildcard character (\"*\") and \
                    it can only be used for subdomains, e.g. \"*.example.com\"";
    for hostname in [
        "a.*.example.com",
        "*.*.example.com",
        "wiki.*",
        "*example.com",
    ] {
        assert_eq!(
            problem(&format!(
                "  - {{hostname: \"{hostname}\", service: http://x}}\n  - service: http_status:404\n"
            )),
            expected,
            "{hostname}"
        );
    }
}

#[test]
fn hostnames_cannot_carry_a_port() {
    for hostname in ["a.example.com:8080", "[::1]:80"] {
        assert_eq!(
            problem(&format!(
                "  - {{hostname: \"{hostname}\", service: http://x}}\n  - service: http_status:404\n"
            )),
            "rule #1: hostname cannot contain a port"
        );
    }
}

#[test]
fn a_path_regex_must_compile() {
    let message =
        problem("  - {path: \"^/(api\", service: http://x}\n  - service: http_status:404\n");
    assert!(
        message.starts_with("rule #1 has an invalid regex: "),
        "{message}"
    );
    assert!(message.contains("unclosed group"), "{message}");
}

#[test]
fn a_service_needs_a_scheme_and_a_host() {
    for service in ["localhost:8080", "http://", "unix:", "8080"] {
        assert_eq!(
            problem(&format!("  - service: \"{service}\"\n")),
            format!(
                "rule #1: {service} is an invalid address, please make sure it has a scheme and \
                 a hostname"
            )
        );
    }
}

#[test]
fn a_service_url_cannot_have_a_path() {
    for service in ["http://localhost:8080/", "https://origin/app"] {
        assert_eq!(
            problem(&format!("  - service: {service}\n")),
            format!(
                "rule #1: {service} is an invalid address, ingress rules don't support proxying \
                 to a different path on the origin service. The path will be the same as the \
                 eyeball request's path"
            )
        );
    }
}

#[test]
fn a_service_url_cannot_have_a_query() {
    assert_eq!(
        problem("  - service: http://localhost:8080?x=1\n"),
        "rule #1: http://localhost:8080?x=1 is an invalid address, a service URL cannot have a \
         query or fragment"
    );
}

#[test]
fn http_status_needs_three_digits() {
    for code in ["abc", "99", "1000", "", "+404", "0404", "40 4"] {
        assert_eq!(
            problem(&format!("  - service: \"http_status:{code}\"\n")),
            format!("rule #1: invalid HTTP status code: {code}"),
            "{code}"
        );
    }
}

#[test]
fn built_in_cloudflared_services_are_rejected() {
    for service in [
        "hello_world",
        "hello-world",
        "helloworld",
        "bastion",
        "socks-proxy",
        "ftp://x:21",
    ] {
        assert_eq!(
            problem(&format!("  - service: \"{service}\"\n")),
            format!(
                "rule #1: service '{service}' is not supported by gatehouse-connector (use \
                 http://, https://, tcp://, unix:, unix+tls: or http_status:)"
            )
        );
    }
}

#[test]
fn tcp_services_need_a_port() {
    assert_eq!(
        problem("  - service: tcp://db.internal\n"),
        "rule #1: tcp://db.internal is an invalid address, a tcp:// service needs a port"
    );
}

#[test]
fn proxy_protocol_on_a_rule_needs_a_tcp_service() {
    assert_eq!(
        problem("  - service: http://localhost:80\n    originRequest: {proxyProtocol: true}\n"),
        "rule #1: proxyProtocol is only supported for tcp:// services, not http://localhost:80"
    );
}

#[test]
fn top_level_proxy_protocol_applies_to_tcp_rules_only() {
    let config = Config::from_yaml(
        "originRequest: {proxyProtocol: true}\ningress:\n  - {hostname: db.example, service: \
         tcp://db:5432}\n  - service: http://localhost\n",
    )
    .unwrap();
    let flags: Vec<bool> = config
        .ingress
        .rules()
        .map(|r| r.origin_request().proxy_protocol)
        .collect();
    assert_eq!(flags, [true, false]);
}

#[test]
fn gatehouse_keys_are_checked() {
    assert_eq!(
        problems(
            "ha-connections: 0\nprivate-routes: [10.1.2.3/8]\nassertion-header: \"Bad Header\"\n\
             ingress:\n  - service: http_status:404\n"
        ),
        [
            "ha-connections must be at least 1",
            "private route 10.1.2.3/8 has host bits set (did you mean 10.0.0.0/8?)",
            "assertion-header \"Bad Header\" is not a valid HTTP header name",
        ]
    );
}

#[test]
fn every_problem_is_reported_with_its_rule_number() {
    let found = problems(
        r#"
ingress:
  - hostname: "a.*.example.com"
    service: http://localhost:8000/app
  - hostname: ok.example.com
    service: http://localhost:8001
  - path: "("
    service: http_status:42
  - hostname: last.example.com
    service: hello_world
"#,
    );

    let numbers: Vec<&str> = found.iter().map(|m| &m[..8]).collect();
    assert_eq!(
        numbers,
        ["rule #1:", "rule #1:", "rule #3:", "rule #3 ", "rule #4:", "rule #4:"],
        "{found:#?}"
    );
}

#[test]
fn problems_are_values_that_display_one_per_line() {
    let error = Config::from_yaml("ingress:\n  - service: http_status:1\n  - service: bastion\n")
        .unwrap_err();
    let ConfigError::Invalid(problems) = &error else {
        panic!("{error}")
    };

    assert_eq!(
        problems.0[..2],
        [
            Problem::InvalidStatusCode {
                rule: 1,
                code: "1".into()
            },
            Problem::CatchAllNotLast {
                rule: 1,
                hostname: String::new()
            },
        ]
    );
    assert_eq!(error.to_string().lines().count(), 3);
}

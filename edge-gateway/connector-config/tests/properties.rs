//! Properties over generated rule lists and requests.
#![allow(clippy::unwrap_used)]

use connector_config::Config;
use proptest::prelude::*;

/// Hostnames, valid and not, as operators write them.
fn hostname() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some("*".to_owned())),
        1 => Just(Some("".to_owned())),
        4 => Just(Some("app.example.com".to_owned())),
        4 => Just(Some("*.example.com".to_owned())),
        4 => Just(Some("bücher.example".to_owned())),
        1 => Just(Some("a.*.example.com".to_owned())),
        1 => Just(Some("app.example.com:80".to_owned())),
        1 => "[a-zA-Z0-9.*:-]{0,12}".prop_map(Some),
    ]
}

fn path() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => Just(None),
        4 => Just(Some("^/api/".to_owned())),
        4 => Just(Some(r"\.(css|js)$".to_owned())),
        1 => Just(Some("(".to_owned())),
        1 => "[a-z/^$.*()\\[\\]\\\\|+?]{0,8}".prop_map(Some),
    ]
}

fn service() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("http://localhost:8080".to_owned()),
        4 => Just("tcp://db:5432".to_owned()),
        4 => Just("unix:/run/app.sock".to_owned()),
        4 => Just("http_status:404".to_owned()),
        1 => Just("hello_world".to_owned()),
        1 => Just("http://localhost/path".to_owned()),
        1 => "[a-z:/_0-9]{0,16}",
    ]
}

/// A YAML single-quoted scalar.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn yaml(rules: &[(Option<String>, Option<String>, String)]) -> String {
    let mut text = String::from("ingress:\n");
    for (hostname, path, service) in rules {
        text.push_str(&format!("  - service: {}\n", quoted(service)));
        if let Some(hostname) = hostname {
            text.push_str(&format!("    hostname: {}\n", quoted(hostname)));
        }
        if let Some(path) = path {
            text.push_str(&format!("    path: {}\n", quoted(path)));
        }
    }
    text
}

proptest! {
    #[test]
    fn accepted_configs_always_match_some_rule(
        rules in prop::collection::vec((hostname(), path(), service()), 0..6),
        catch_all in any::<bool>(),
        requests in prop::collection::vec((any::<String>(), any::<String>()), 1..8),
    ) {
        let mut rules = rules;
        if catch_all {
            rules.push((None, None, "http_status:404".to_owned()));
        }
        let Ok(config) = Config::from_yaml(&yaml(&rules)) else {
            return Ok(());
        };
        // About one generated list in five is accepted (measured), lengths 1 to 6 among them.

        let last = config.ingress.rule(config.ingress.rule_count() - 1).unwrap();
        prop_assert!(last.hostname().is_none() && last.path().is_none());
        for (host, path) in &requests {
            let (index, rule) = config.ingress.matching_rule(host, path);
            prop_assert!(index < config.ingress.rule_count());
            prop_assert!(std::ptr::eq(rule, config.ingress.rule(index).unwrap()));
            if let Some(regex) = rule.path() {
                prop_assert!(regex.is_match(path));
            }
        }
        let _ = config.routes();
    }

    #[test]
    fn matching_never_panics_on_arbitrary_requests(host in any::<String>(), path in any::<String>()) {
        let config = Config::from_yaml(
            "ingress:\n  - {hostname: '*.example.com', service: http://x}\n  - {hostname: 'bücher.example', service: http://y}\n  - {path: '^/a', service: http://z}\n  - service: http_status:404\n",
        ).unwrap();
        let (index, _) = config.ingress.matching_rule(&host, &path);
        prop_assert!(index < 4);
    }

    #[test]
    fn parsing_never_panics(text in any::<String>()) {
        let _ = Config::from_yaml(&text);
    }
}

//! Scenarios through the public API: every selector, every action, destination specificity and
//! explain output.
#![allow(clippy::unwrap_used, clippy::type_complexity)]

use edge_policy::{
    load, Action, Decision, DenyReason, Device, Format, PolicySet, Protocol, Request, Target,
    UnixTime, User,
};
use std::net::IpAddr;

/// 2026-01-05T10:00:00Z, a Monday.
const MONDAY_10Z: UnixTime = UnixTime(1_767_607_200);

fn set(toml: &str) -> PolicySet {
    load(toml, Format::Toml, "policy.toml").unwrap()
}

/// One application `app` on host `app.example` with one allow policy `p` over `rule`.
fn single_rule(rule: &str) -> PolicySet {
    set(&format!(
        "version = 1\n[[applications]]\nname = \"app\"\ndestinations = [{{ host = \"app.example\" }}]\n\
         [[applications.policies]]\nname = \"p\"\naction = \"allow\"\ninclude = [{rule}]\n"
    ))
}

struct Ask {
    email: &'static str,
    groups: Vec<String>,
    idp: Option<&'static str>,
    login: Option<&'static str>,
    auth_time: Option<UnixTime>,
    user: bool,
    token: Option<&'static str>,
    device: Option<Device<'static>>,
    source_ip: Option<IpAddr>,
}

impl Ask {
    fn user() -> Self {
        Self {
            email: "ada@corp.example",
            groups: vec!["eng".into(), "oncall".into()],
            idp: Some("okta"),
            login: Some("hwk"),
            auth_time: Some(UnixTime(MONDAY_10Z.0 - 600)),
            user: true,
            token: None,
            device: Some(Device {
                os: Some("Linux"),
                os_version: Some("6.1.0-27-amd64"),
                client_version: Some("0.3.1"),
            }),
            source_ip: Some("192.0.2.10".parse().unwrap()),
        }
    }

    fn anonymous() -> Self {
        Self {
            user: false,
            device: None,
            ..Self::user()
        }
    }

    fn request<'a>(&'a self, target: Target<'a>) -> Request<'a> {
        Request {
            user: self.user.then_some(User {
                email: self.email,
                groups: &self.groups,
                idp: self.idp,
                login_method: self.login,
                auth_time: self.auth_time,
            }),
            service_token: self.token,
            device: self.device,
            source_ip: self.source_ip,
            target,
        }
    }

    fn decide<'p>(&self, set: &'p PolicySet, host: &str) -> Decision<'p> {
        set.evaluate(&self.request(Target::Http { host, path: "/" }), MONDAY_10Z)
    }

    fn allowed(&self, set: &PolicySet) -> bool {
        self.decide(set, "app.example").is_allow()
    }
}

#[test]
fn every_selector_allows_the_matching_user_and_not_another() {
    // (rule, a change to the user that makes it fail)
    let cases: Vec<(&str, fn(&mut Ask))> = vec![
        ("{ everyone = true }", |a| a.user = false),
        ("{ email = \"ADA@corp.example\" }", |a| {
            a.email = "bob@corp.example"
        }),
        ("{ email_domain = \"corp.example\" }", |a| {
            a.email = "ada@evil.example"
        }),
        ("{ group = \"oncall\" }", |a| {
            a.groups = vec!["Oncall".into()]
        }),
        ("{ idp = \"okta\" }", |a| a.idp = Some("local")),
        ("{ login_method = \"hwk\" }", |a| a.login = Some("pwd")),
        ("{ os = \"linux\" }", |a| {
            a.device = Some(Device {
                os: Some("macos"),
                ..a.device.unwrap()
            })
        }),
        ("{ os_version = \"6.1\" }", |a| {
            a.device = Some(Device {
                os_version: Some("5.15"),
                ..a.device.unwrap()
            })
        }),
        ("{ client_version = \"0.3\" }", |a| {
            a.device = Some(Device {
                client_version: Some("0.2.9"),
                ..a.device.unwrap()
            })
        }),
        ("{ os = \"linux\" }", |a| a.device = None),
        ("{ ip = \"192.0.2.0/24\" }", |a| {
            a.source_ip = Some("198.51.100.1".parse().unwrap())
        }),
        ("{ ip = \"192.0.2.0/24\" }", |a| a.source_ip = None),
        ("{ max_auth_age = 3600 }", |a| {
            a.auth_time = Some(UnixTime(MONDAY_10Z.0 - 7200))
        }),
        ("{ max_auth_age = 3600 }", |a| a.auth_time = None),
        (
            "{ time = { days = [\"mon\"], hours = \"09:00-17:00\" } }",
            |a| a.email = "x",
        ),
        (
            "{ time = { days = [\"mon\"], hours = \"11:00-12:00\", utc_offset = \"+01:00\" } }",
            |a| a.email = "x",
        ),
    ];
    for (rule, break_it) in cases {
        let set = single_rule(rule);
        let mut ask = Ask::user();
        assert!(ask.allowed(&set), "{rule} should allow the user");
        break_it(&mut ask);
        let still = ask.allowed(&set);
        // Time rules do not look at the email: the change keeps them allowed.
        assert_eq!(still, rule.contains("time"), "{rule} after the change");
    }
}

#[test]
fn time_window_outside_its_hours_or_days_denies() {
    let ask = Ask::user();
    let set = single_rule("{ time = { days = [\"tue\", \"wed\"] } }");
    assert!(!ask.allowed(&set));
    let set = single_rule("{ time = { hours = \"11:00-12:00\" } }");
    assert!(!ask.allowed(&set));
    // 10:00Z is 12:00 at +02:00: the end is exclusive.
    let set = single_rule("{ time = { hours = \"11:00-12:00\", utc_offset = \"+02:00\" } }");
    assert!(!ask.allowed(&set));
}

#[test]
fn service_token_selectors_need_the_token_and_service_auth_needs_one() {
    let file = "version = 1\n[[applications]]\nname = \"api\"\ndestinations = [{ host = \"app.example\" }]\n\
        [[applications.policies]]\nname = \"ci\"\naction = \"service_auth\"\ninclude = [{ service_token = \"tok-ci\" }]\n\
        [[applications.policies]]\nname = \"bots\"\naction = \"service_auth\"\ninclude = [{ any_service_token = true }]\n\
        require = [{ ip = \"10.0.0.0/8\" }]\n";
    let set = set(file);
    let mut ask = Ask::anonymous();
    assert_eq!(
        ask.decide(&set, "app.example"),
        Decision::Deny(DenyReason::ServiceAuthRequired { application: "api" })
    );
    ask.token = Some("tok-ci");
    assert_eq!(
        ask.decide(&set, "app.example"),
        Decision::Allow {
            application: "api",
            policy: "ci",
            action: Action::ServiceAuth
        }
    );
    ask.token = Some("tok-other");
    assert_eq!(
        ask.decide(&set, "app.example"),
        Decision::Deny(DenyReason::NoPolicyMatched { application: "api" })
    );
    ask.source_ip = Some("10.1.2.3".parse().unwrap());
    assert_eq!(ask.decide(&set, "app.example").policy(), Some("bots"));
    // A user without a token does not pass service_auth.
    let user = Ask {
        source_ip: Some("10.1.2.3".parse().unwrap()),
        ..Ask::user()
    };
    assert!(!user.allowed(&set));
}

#[test]
fn actions_block_bypass_and_allow_are_decided_in_order() {
    let file = "version = 1\n[[applications]]\nname = \"app\"\ndestinations = [{ host = \"app.example\" }]\n\
        [[applications.policies]]\nname = \"health\"\naction = \"bypass\"\ninclude = [{ ip = \"203.0.113.0/24\" }]\n\
        [[applications.policies]]\nname = \"no-contractors\"\naction = \"block\"\ninclude = [{ group = \"contractors\" }]\n\
        [[applications.policies]]\nname = \"staff\"\naction = \"allow\"\ninclude = [{ email_domain = \"corp.example\" }]\n";
    let set = set(file);
    let health = Ask {
        source_ip: Some("203.0.113.7".parse().unwrap()),
        ..Ask::anonymous()
    };
    assert_eq!(
        health.decide(&set, "app.example"),
        Decision::Allow {
            application: "app",
            policy: "health",
            action: Action::Bypass
        }
    );
    let staff = Ask::user();
    assert_eq!(staff.decide(&set, "app.example").policy(), Some("staff"));
    let contractor = Ask {
        groups: vec!["contractors".into()],
        ..Ask::user()
    };
    assert_eq!(
        contractor.decide(&set, "app.example"),
        Decision::Deny(DenyReason::Blocked {
            application: "app",
            policy: "no-contractors"
        })
    );
    assert_eq!(
        Ask::anonymous().decide(&set, "app.example"),
        Decision::Deny(DenyReason::AuthenticationRequired { application: "app" })
    );
    assert_eq!(
        Ask::user().decide(&set, "other.example"),
        Decision::Deny(DenyReason::NoApplication)
    );
}

#[test]
fn bypass_without_include_allows_everyone_and_an_app_without_policies_denies() {
    let file = "version = 1\n[[applications]]\nname = \"open\"\ndestinations = [{ host = \"app.example\" }]\n\
        [[applications.policies]]\nname = \"all\"\naction = \"bypass\"\n\
        [[applications]]\nname = \"closed\"\ndestinations = [{ host = \"closed.example\" }]\n";
    let set = set(file);
    assert!(Ask::anonymous().allowed(&set));
    assert_eq!(
        Ask::user().decide(&set, "closed.example"),
        Decision::Deny(DenyReason::NoPolicyMatched {
            application: "closed"
        })
    );
}

#[test]
fn require_and_exclude_narrow_include() {
    let set = single_rule("{ email_domain = \"corp.example\" }]\nrequire = [{ group = \"eng\" }, { os = \"linux\" }]\nexclude = [{ email = \"ada@corp.example\" }");
    assert!(!Ask::user().allowed(&set));
    assert!(Ask {
        email: "bob@corp.example",
        ..Ask::user()
    }
    .allowed(&set));
    assert!(!Ask {
        email: "bob@corp.example",
        groups: vec![],
        ..Ask::user()
    }
    .allowed(&set));
}

const SPECIFIC: &str = r#"
version = 1
[[applications]]
name = "all-corp"
destinations = [{ host = "*.corp.example" }]
[[applications.policies]]
name = "p"
action = "allow"
include = [{ everyone = true }]

[[applications]]
name = "deep"
destinations = [{ host = "*.eu.corp.example" }]
[[applications.policies]]
name = "p"
action = "allow"
include = [{ everyone = true }]

[[applications]]
name = "wiki"
destinations = [{ host = "wiki.corp.example" }]
[[applications.policies]]
name = "p"
action = "allow"
include = [{ everyone = true }]

[[applications]]
name = "wiki-admin"
destinations = [{ host = "wiki.corp.example", path = "/admin" }]
[[applications.policies]]
name = "p"
action = "allow"
include = [{ everyone = true }]

[[applications]]
name = "wiki-again"
destinations = [{ host = "wiki.corp.example" }]
[[applications.policies]]
name = "p"
action = "allow"
include = [{ everyone = true }]

[[applications]]
name = "net"
destinations = [{ cidr = "10.0.0.0/8" }]
[[applications.policies]]
name = "p"
action = "allow"
include = [{ everyone = true }]

[[applications]]
name = "db"
destinations = [{ cidr = "10.1.0.0/16", ports = [5432, "6000-6010"], protocol = "tcp" }]
[[applications.policies]]
name = "p"
action = "allow"
include = [{ everyone = true }]

[[applications]]
name = "v6"
destinations = [{ cidr = "fd00::/8", protocol = "udp" }]
[[applications.policies]]
name = "p"
action = "allow"
include = [{ everyone = true }]

[[applications]]
name = "web"
destinations = [{ internet = true }]
[[applications.policies]]
name = "p"
action = "allow"
include = [{ everyone = true }]
"#;

#[test]
fn the_most_specific_destination_wins_and_file_order_breaks_ties() {
    let set = set(SPECIFIC);
    let ask = Ask::user();
    let app = |host: &str, path: &str| {
        let request = ask.request(Target::Http { host, path });
        set.evaluate(&request, MONDAY_10Z)
            .application()
            .map(str::to_owned)
    };
    assert_eq!(app("wiki.corp.example", "/"), Some("wiki".into()));
    assert_eq!(app("WIKI.corp.example.", "/"), Some("wiki".into()));
    assert_eq!(
        app("wiki.corp.example", "/admin/users"),
        Some("wiki-admin".into())
    );
    assert_eq!(
        app("wiki.corp.example", "/administrator"),
        Some("wiki".into())
    );
    assert_eq!(app("git.corp.example", "/"), Some("all-corp".into()));
    assert_eq!(app("a.b.eu.corp.example", "/"), Some("deep".into()));
    assert_eq!(app("corp.example", "/"), Some("web".into()));
    let ip = |addr: &str, port: u16, protocol: Protocol| {
        let request = ask.request(Target::Ip {
            addr: addr.parse().unwrap(),
            port,
            protocol,
        });
        set.evaluate(&request, MONDAY_10Z)
            .application()
            .map(str::to_owned)
    };
    assert_eq!(ip("10.1.2.3", 5432, Protocol::Tcp), Some("db".into()));
    assert_eq!(ip("10.1.2.3", 6005, Protocol::Tcp), Some("db".into()));
    assert_eq!(
        ip("::ffff:10.1.2.3", 5432, Protocol::Tcp),
        Some("db".into())
    );
    assert_eq!(ip("10.1.2.3", 5432, Protocol::Udp), Some("net".into()));
    assert_eq!(ip("10.1.2.3", 22, Protocol::Tcp), Some("net".into()));
    assert_eq!(ip("fd12::1", 53, Protocol::Udp), Some("v6".into()));
    assert_eq!(ip("fd12::1", 53, Protocol::Tcp), Some("web".into()));
    assert_eq!(ip("8.8.8.8", 53, Protocol::Udp), Some("web".into()));
}

const WIKI: &str = r#"
version = 1
[[applications]]
name = "wiki"
destinations = [{ host = "wiki.corp.example" }, { host = "*.wiki.corp.example", path = "/docs" }]

[[applications.policies]]
name = "eng"
action = "allow"
include = [{ email_domain = "corp.example" }]
require = [{ group = "eng" }]

[[applications.policies]]
name = "interns"
action = "block"
include = [{ group = "interns" }, { email = "eve@corp.example" }]
exclude = [{ idp = "okta" }]
"#;

#[test]
fn explain_names_the_application_policy_and_rule() {
    let set = set(WIKI);
    let explain = |ask: &Ask, host: &str, path: &str| {
        set.explain(&ask.request(Target::Http { host, path }), MONDAY_10Z)
            .to_string()
    };
    let ops = Ask {
        groups: vec!["ops".into()],
        ..Ask::user()
    };
    assert_eq!(
        explain(&ops, "wiki.corp.example", "/"),
        "deny: application `wiki` matched host wiki.corp.example; policy `eng` skipped: require \
         rule 1 (group = eng) not met; policy `interns` skipped: no include rule met; no policy matched"
    );
    assert_eq!(
        explain(&Ask::user(), "a.wiki.corp.example", "/docs/x"),
        "allow: application `wiki` matched host a.wiki.corp.example path /docs/x (destination \
         `*.wiki.corp.example/docs`); policy `eng` (allow) matched: include rule 1 \
         (email_domain = corp.example) met"
    );
    let eve = Ask {
        email: "eve@evil.example",
        groups: vec!["interns".into()],
        idp: Some("local"),
        ..Ask::user()
    };
    assert_eq!(
        explain(&eve, "wiki.corp.example", "/"),
        "deny: application `wiki` matched host wiki.corp.example; policy `eng` skipped: no include \
         rule met; policy `interns` (block) matched: include rule 1 (group = interns) met"
    );
    let eve_okta = Ask {
        idp: Some("okta"),
        ..eve
    };
    assert_eq!(
        explain(&eve_okta, "wiki.corp.example", "/"),
        "deny: application `wiki` matched host wiki.corp.example; policy `eng` skipped: no include \
         rule met; policy `interns` skipped: exclude rule 1 (idp = okta) met; no policy matched"
    );
    assert_eq!(
        explain(&Ask::anonymous(), "wiki.corp.example", "/"),
        "deny: application `wiki` matched host wiki.corp.example; policy `eng` skipped: no \
         authenticated user; policy `interns` skipped: no include rule met; no policy matched (no \
         authenticated user)"
    );
    assert_eq!(
        explain(&Ask::user(), "git.corp.example", "/x"),
        "deny: no application matches host git.corp.example path /x"
    );
    let ada = Ask::user();
    let request = ada.request(Target::Ip {
        addr: "10.0.0.1".parse().unwrap(),
        port: 22,
        protocol: Protocol::Tcp,
    });
    assert_eq!(
        set.explain(&request, MONDAY_10Z).to_string(),
        "deny: no application matches 10.0.0.1 tcp port 22"
    );
}

#[test]
fn explain_agrees_with_evaluate() {
    let set = set(WIKI);
    for ask in [
        Ask::user(),
        Ask::anonymous(),
        Ask {
            groups: vec!["interns".into()],
            idp: None,
            ..Ask::user()
        },
    ] {
        let request = ask.request(Target::Http {
            host: "wiki.corp.example",
            path: "/",
        });
        assert_eq!(
            set.explain(&request, MONDAY_10Z).decision,
            set.evaluate(&request, MONDAY_10Z)
        );
    }
}

#[test]
fn many_groups_spill_to_the_heap_and_still_match() {
    let set = single_rule("{ group = \"g39\" }");
    let groups: Vec<String> = (0..40).map(|i| format!("g{i}")).collect();
    let ask = Ask {
        groups,
        ..Ask::user()
    };
    assert!(ask.allowed(&set));
}

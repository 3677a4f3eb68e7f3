//! Arbitrary bytes (lossy UTF-8) as a TOML and as a YAML policy file: parsing never panics; a
//! file that parses compiles, decides a few fixed requests (HTTP, IPv4, IPv6, with and without a
//! user or token) exactly as `explain` does, runs its own tests, and is never allowed by default
//! for a host no application names.

#![no_main]

use edge_policy::{
    load, parse, run_tests, Device, Format, PolicySet, Protocol, Request, Target, UnixTime, User,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for format in [Format::Toml, Format::Yaml] {
        let _ = load(&text, format, "fuzz");
        let Ok(file) = parse(&text, format, "fuzz") else {
            continue;
        };
        let set = PolicySet::compile(&file);
        let _ = run_tests(&set, &file.tests);
        let groups = vec!["eng".to_owned(), "ops".to_owned()];
        let user = User {
            email: "Ada@Corp.Example",
            groups: &groups,
            idp: Some("okta"),
            login_method: Some("hwk"),
            auth_time: Some(UnixTime(1_000)),
        };
        let targets = [
            Target::Http {
                host: "wiki.corp.example",
                path: "/docs/a",
            },
            Target::Http {
                host: "A.B.EXAMPLE.",
                path: "/",
            },
            Target::Ip {
                addr: [10, 1, 2, 3].into(),
                port: 443,
                protocol: Protocol::Tcp,
            },
            Target::Ip {
                addr: "fd00::1".parse().expect("literal"),
                port: 53,
                protocol: Protocol::Udp,
            },
            Target::Ip {
                addr: [192, 0, 2, 1].into(),
                port: 0,
                protocol: Protocol::Icmp,
            },
        ];
        for target in targets {
            for (user, token) in [(Some(user), None), (None, Some("tok")), (None, None)] {
                let request = Request {
                    user,
                    service_token: token,
                    device: Some(Device {
                        os: Some("linux"),
                        os_version: Some("6.1"),
                        client_version: None,
                    }),
                    source_ip: Some([192, 0, 2, 9].into()),
                    target,
                };
                for now in [
                    UnixTime(0),
                    UnixTime(1_767_607_200),
                    UnixTime(i64::MIN),
                    UnixTime(i64::MAX),
                ] {
                    let decision = set.evaluate(&request, now);
                    let explanation = set.explain(&request, now);
                    assert_eq!(decision, explanation.decision);
                    let _ = explanation.to_string();
                }
            }
        }
    }
});

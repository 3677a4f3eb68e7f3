//! Benchmark: ns per decision of [`PolicySet::evaluate`] on a generated 1,000-rule file (250
//! applications × 4 policies, one rule each on average across include/require/exclude), against
//! the naive linear scan of `tests/support/reference.rs` over the same file, in the same run.
//! Bounded: a fixed number of decisions per run, 5 runs, median reported. Run with
//! `bench/policy.sh` (release build). The last line is
//! `policy: rules=1000 ns_per_decision=<x> naive_ns=<y>`.
#![allow(clippy::print_stdout, clippy::unwrap_used)]
// A benchmark measures wall time: this example is the one place in the crate reading a clock.
#![allow(clippy::disallowed_methods)]

#[path = "../tests/support/reference.rs"]
mod reference;

use edge_policy::{parse, Format, PolicySet, Protocol, Request, Target, UnixTime, User};
use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

const APPLICATIONS: usize = 250;
const RUNS: usize = 5;
const DECISIONS_PER_RUN: usize = 200_000;
const NAIVE_DECISIONS_PER_RUN: usize = 20_000;

fn main() {
    let source = generate();
    let file = parse(&source, Format::Toml, "bench.toml").unwrap();
    let set = PolicySet::compile(&file);
    let rules = set.rule_count();

    let users: Vec<(String, Vec<String>)> = (0..64)
        .map(|i| {
            (
                format!(
                    "user{i}@{}",
                    if i % 3 == 0 {
                        "corp.example"
                    } else {
                        "partner.example"
                    }
                ),
                vec![
                    format!("team{}", i % 40),
                    format!("team{}", (i * 7) % 40),
                    "staff".into(),
                ],
            )
        })
        .collect();
    let hosts: Vec<String> = (0..APPLICATIONS)
        .map(|a| format!("app{a}.corp.example"))
        .collect();
    let mut requests: Vec<Request<'_>> = Vec::new();
    for i in 0..1024usize {
        let (email, groups) = &users[i % users.len()];
        let user = Some(User {
            email,
            groups,
            idp: Some(if i % 2 == 0 { "okta" } else { "local" }),
            login_method: Some(if i % 5 == 0 { "hwk" } else { "pwd" }),
            auth_time: Some(UnixTime(1_767_600_000)),
        });
        let target = match i % 4 {
            0 | 1 => Target::Http {
                host: &hosts[(i * 31) % APPLICATIONS],
                path: "/docs/page",
            },
            2 => Target::Ip {
                addr: IpAddr::from([10, ((i * 13) % APPLICATIONS) as u8, 1, 7]),
                port: 443,
                protocol: Protocol::Tcp,
            },
            _ => Target::Http {
                host: "unknown.example",
                path: "/",
            },
        };
        requests.push(Request {
            user,
            service_token: None,
            device: None,
            source_ip: Some(IpAddr::from([192, 0, 2, (i % 250) as u8])),
            target,
        });
    }
    let now = UnixTime(1_767_607_200);

    // Both evaluators must agree on the mixed set before they are timed.
    let allowed = requests
        .iter()
        .filter(|r| set.evaluate(r, now).is_allow())
        .count();
    for request in &requests {
        assert_eq!(
            set.evaluate(request, now),
            reference::evaluate(&file, request, now)
        );
    }

    let indexed = median_ns(DECISIONS_PER_RUN, |i| {
        black_box(set.evaluate(black_box(&requests[i % requests.len()]), now));
    });
    let naive = median_ns(NAIVE_DECISIONS_PER_RUN, |i| {
        black_box(reference::evaluate(
            &file,
            black_box(&requests[i % requests.len()]),
            now,
        ));
    });
    println!(
        "file: {} bytes, {APPLICATIONS} applications, {rules} rules",
        source.len()
    );
    println!("requests: {} mixed ({allowed} allowed)", requests.len());
    println!("indexed: median {indexed:.1} ns/decision over {RUNS} runs of {DECISIONS_PER_RUN}");
    println!(
        "naive:   median {naive:.1} ns/decision over {RUNS} runs of {NAIVE_DECISIONS_PER_RUN}"
    );
    println!("policy: rules={rules} ns_per_decision={indexed:.1} naive_ns={naive:.1}");
}

/// Warm-up run, then the median of [`RUNS`] timed runs of `count` calls.
fn median_ns(count: usize, mut decide: impl FnMut(usize)) -> f64 {
    for i in 0..count / 10 {
        decide(i);
    }
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for i in 0..count {
                decide(i);
            }
            start.elapsed().as_nanos() as f64 / count as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

/// 250 applications (hostnames, wildcards with paths, networks) × 4 policies with mixed
/// selectors: 1,000 rules in all.
fn generate() -> String {
    let mut out = String::from("version = 1\n");
    for a in 0..APPLICATIONS {
        let destination = match a % 3 {
            0 => format!("{{ host = \"app{a}.corp.example\" }}, {{ cidr = \"10.{a}.0.0/16\", ports = [443], protocol = \"tcp\" }}"),
            1 => format!("{{ host = \"app{a}.corp.example\", path = \"/docs\" }}, {{ cidr = \"10.{a}.1.0/24\" }}"),
            _ => format!("{{ host = \"*.app{a}.corp.example\" }}, {{ host = \"app{a}.corp.example\" }}"),
        };
        out.push_str(&format!(
            "[[applications]]\nname = \"app{a}\"\ndestinations = [{destination}]\n"
        ));
        let policies = [
            format!("name = \"block-interns\"\naction = \"block\"\ninclude = [{{ group = \"interns{}\" }}]", a % 7),
            format!("name = \"team\"\naction = \"allow\"\ninclude = [{{ group = \"team{}\" }}]", a % 40),
            format!("name = \"owner\"\naction = \"allow\"\ninclude = [{{ email = \"user{}@corp.example\" }}]", a % 64),
            "name = \"office\"\naction = \"bypass\"\ninclude = [{ ip = \"203.0.113.0/24\" }]".to_owned(),
        ];
        for policy in policies {
            out.push_str(&format!("[[applications.policies]]\n{policy}\n"));
        }
    }
    out
}

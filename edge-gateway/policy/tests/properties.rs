//! Properties on random policy files and requests: the indexed evaluator agrees with the naive
//! reference, a matching exclude always denies, and block/allow order decides.
#![allow(clippy::unwrap_used, clippy::type_complexity)]

mod support {
    pub(crate) mod reference;
}

use edge_policy::{
    load, parse, Decision, DenyReason, Device, Format, Protocol, Request, Target, UnixTime, User,
};
use proptest::prelude::*;
use proptest::sample::select;
use std::net::IpAddr;

const HOSTS: &[&str] = &[
    "a.example",
    "*.example",
    "b.a.example",
    "*.a.example",
    "c.example",
    "*.b.a.example",
];
const PATHS: &[&str] = &["/", "/docs", "/docs/x", "/api"];
const CIDRS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "0.0.0.0/0",
    "fd00::/8",
    "fd00:1::/32",
    "10.1.2.3",
];
const PORTS: &[&str] = &["[]", "[22]", "[80, 443]", "[\"1000-2000\"]"];
const PROTOCOLS: &[&str] = &["tcp", "udp", "icmp", "any"];
const EMAILS: &[&str] = &["ada@corp.example", "bob@corp.example", "eve@evil.example"];
const GROUPS: &[&str] = &["eng", "ops", "interns"];
const IDPS: &[&str] = &["okta", "local"];
const LOGINS: &[&str] = &["pwd", "hwk", "otp"];
const OSES: &[&str] = &["linux", "macos"];
const VERSIONS: &[&str] = &["1", "1.2", "1.10.0", "2.0.1"];
const SOURCES: &[&str] = &["192.0.2.0/24", "198.51.100.7", "10.0.0.0/8"];
const TOKENS: &[&str] = &["tok-a", "tok-b"];
const WINDOWS: &[&str] = &[
    "{ days = [\"mon\", \"tue\"] }",
    "{ hours = \"09:00-17:00\" }",
    "{ days = [\"thu\"], hours = \"00:00-01:00\", utc_offset = \"-05:00\" }",
];

fn identity_rule() -> impl Strategy<Value = String> {
    prop_oneof![
        select(EMAILS).prop_map(|v| format!("{{ email = \"{}\" }}", v.to_uppercase())),
        select(&["corp.example", "evil.example"][..])
            .prop_map(|v| format!("{{ email_domain = \"{v}\" }}")),
        select(GROUPS).prop_map(|v| format!("{{ group = \"{v}\" }}")),
        select(IDPS).prop_map(|v| format!("{{ idp = \"{v}\" }}")),
        select(LOGINS).prop_map(|v| format!("{{ login_method = \"{v}\" }}")),
        select(OSES).prop_map(|v| format!("{{ os = \"{v}\" }}")),
        select(VERSIONS).prop_map(|v| format!("{{ os_version = \"{v}\" }}")),
        select(VERSIONS).prop_map(|v| format!("{{ client_version = \"{v}\" }}")),
        select(TOKENS).prop_map(|v| format!("{{ service_token = \"{v}\" }}")),
        Just("{ any_service_token = true }".to_owned()),
        (0u64..2000).prop_map(|v| format!("{{ max_auth_age = {v} }}")),
    ]
}

fn anonymous_rule() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{ everyone = true }".to_owned()),
        select(SOURCES).prop_map(|v| format!("{{ ip = \"{v}\" }}")),
        select(WINDOWS).prop_map(|v| format!("{{ time = {v} }}")),
    ]
}

fn rules(bypass: bool, min: usize) -> BoxedStrategy<Vec<String>> {
    if bypass {
        prop::collection::vec(anonymous_rule(), min..3).boxed()
    } else {
        prop::collection::vec(
            prop_oneof![3 => identity_rule(), 1 => anonymous_rule()],
            min..3,
        )
        .boxed()
    }
}

fn policy() -> impl Strategy<Value = String> {
    select(&["allow", "block", "bypass", "service_auth"][..]).prop_flat_map(|action| {
        let bypass = action == "bypass";
        (
            rules(bypass, usize::from(!bypass)),
            rules(bypass, 0),
            rules(bypass, 0),
        )
            .prop_map(move |(include, require, exclude)| {
                format!(
                    "action = \"{action}\"\ninclude = [{}]\nrequire = [{}]\nexclude = [{}]\n",
                    include.join(", "),
                    require.join(", "),
                    exclude.join(", ")
                )
            })
    })
}

fn destination() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (select(HOSTS), prop::option::of(select(PATHS))).prop_map(|(h, p)| match p {
            Some(p) => format!("{{ host = \"{h}\", path = \"{p}\" }}"),
            None => format!("{{ host = \"{h}\" }}"),
        }),
        4 => (select(CIDRS), select(PORTS), select(PROTOCOLS)).prop_map(|(c, ports, proto)| {
            let ports = if proto == "icmp" { "[]" } else { ports };
            format!("{{ cidr = \"{c}\", ports = {ports}, protocol = \"{proto}\" }}")
        }),
        1 => Just("{ internet = true }".to_owned()),
    ]
}

/// A TOML policy file of up to 6 applications.
fn policy_file() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::collection::vec(destination(), 1..3),
            prop::collection::vec(policy(), 0..4),
        ),
        0..6,
    )
    .prop_map(|apps| render(&apps))
}

fn render(apps: &[(Vec<String>, Vec<String>)]) -> String {
    let mut out = String::from("version = 1\n");
    for (a, (destinations, policies)) in apps.iter().enumerate() {
        out.push_str(&format!(
            "[[applications]]\nname = \"app{a}\"\ndestinations = [{}]\n",
            destinations.join(", ")
        ));
        for (p, policy) in policies.iter().enumerate() {
            out.push_str(&format!(
                "[[applications.policies]]\nname = \"p{p}\"\n{policy}"
            ));
        }
    }
    out
}

/// Owned request parts, borrowed by [`Ask::request`].
#[derive(Debug, Clone)]
struct Ask {
    user: Option<(
        String,
        Vec<String>,
        Option<&'static str>,
        Option<&'static str>,
        Option<i64>,
    )>,
    token: Option<&'static str>,
    device: Option<(
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    )>,
    source_ip: Option<IpAddr>,
    http: Option<(String, &'static str)>,
    ip: (IpAddr, u16, Protocol),
    now: i64,
}

impl Ask {
    fn request(&self) -> Request<'_> {
        Request {
            user: self
                .user
                .as_ref()
                .map(|(email, groups, idp, login, auth)| User {
                    email,
                    groups,
                    idp: *idp,
                    login_method: *login,
                    auth_time: auth.map(UnixTime),
                }),
            service_token: self.token,
            device: self.device.map(|(os, os_version, client_version)| Device {
                os,
                os_version,
                client_version,
            }),
            source_ip: self.source_ip,
            target: match &self.http {
                Some((host, path)) => Target::Http { host, path },
                None => Target::Ip {
                    addr: self.ip.0,
                    port: self.ip.1,
                    protocol: self.ip.2,
                },
            },
        }
    }
}

fn ask() -> impl Strategy<Value = Ask> {
    let user = prop::option::of((
        select(EMAILS).prop_map(|e| {
            if e.starts_with('b') {
                e.to_uppercase()
            } else {
                e.to_owned()
            }
        }),
        prop::collection::vec(select(GROUPS).prop_map(str::to_owned), 0..3),
        prop::option::of(select(IDPS)),
        prop::option::of(select(&["PWD", "hwk", "otp", "sms"][..])),
        prop::option::of(0i64..4000),
    ));
    let device = prop::option::of((
        prop::option::of(select(&["Linux", "macos", "windows"][..])),
        prop::option::of(select(
            &["1.2", "1.9", "1.10", "2", "6.1.0-27-amd64", "x"][..],
        )),
        prop::option::of(select(&["1", "1.10.0", "2.0.1", "0.9"][..])),
    ));
    let host = select(
        &[
            "a.example",
            "A.Example.",
            "b.a.example",
            "x.b.a.example",
            "c.example",
            "example",
            "zz.a.example",
        ][..],
    );
    let http = prop::option::of((
        host.prop_map(str::to_owned),
        select(&["/", "/docs", "/docs/x/y", "/docsx", "/api/v1"][..]),
    ));
    let addr = select(
        &[
            "10.1.2.3",
            "10.1.9.9",
            "10.200.0.1",
            "8.8.8.8",
            "::ffff:10.1.2.3",
            "fd00:1::5",
            "fd77::1",
            "2001:db8::1",
        ][..],
    )
    .prop_map(|a| a.parse::<IpAddr>().unwrap());
    let ip = (
        addr,
        select(&[22u16, 80, 443, 1500, 5000][..]),
        select(&[Protocol::Tcp, Protocol::Udp, Protocol::Icmp][..]),
    );
    let source = prop::option::of(
        select(
            &[
                "192.0.2.9",
                "198.51.100.7",
                "10.3.3.3",
                "::ffff:198.51.100.7",
            ][..],
        )
        .prop_map(|a| a.parse::<IpAddr>().unwrap()),
    );
    (
        user,
        prop::option::of(select(&["tok-a", "tok-b", "tok-unknown"][..])),
        device,
        source,
        http,
        ip,
        0i64..700_000,
    )
        .prop_map(|(user, token, device, source_ip, http, ip, now)| Ask {
            user,
            token,
            device,
            source_ip,
            http,
            ip,
            now,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn evaluation_equals_the_naive_reference(source in policy_file(), asks in prop::collection::vec(ask(), 1..8)) {
        let file = parse(&source, Format::Toml, "random.toml").unwrap();
        let set = edge_policy::PolicySet::compile(&file);
        for ask in &asks {
            let request = ask.request();
            let now = UnixTime(ask.now);
            let expected = support::reference::evaluate(&file, &request, now);
            prop_assert_eq!(set.evaluate(&request, now), expected, "{:?}", ask);
            prop_assert_eq!(set.explain(&request, now).decision, expected);
        }
    }

    #[test]
    fn a_matching_exclude_always_denies(source in policy_file(), ask in ask()) {
        prop_assume!(ask.source_ip.is_some());
        let source_ip = ask.source_ip.unwrap().to_canonical();
        let source = source.replace("exclude = [", &format!("exclude = [{{ ip = \"{source_ip}\" }}, "));
        let set = load(&source, Format::Toml, "random.toml").unwrap();
        let decision = set.evaluate(&ask.request(), UnixTime(ask.now));
        prop_assert!(!decision.is_allow(), "{:?}", decision);
        let blocked = matches!(decision, Decision::Deny(DenyReason::Blocked { .. }));
        prop_assert!(!blocked);
    }

    #[test]
    fn block_before_allow_denies_and_after_allows(rule in select(&[
        "{ email = \"ada@corp.example\" }", "{ email_domain = \"corp.example\" }",
        "{ group = \"eng\" }", "{ everyone = true }",
    ][..]), tail in prop::collection::vec(policy(), 0..3)) {
        let block = format!("action = \"block\"\ninclude = [{rule}]\n");
        let allow = format!("action = \"allow\"\ninclude = [{rule}]\n");
        let destinations = vec!["{ host = \"a.example\" }".to_owned()];
        let groups = vec!["eng".to_owned()];
        let request = Request {
            user: Some(User { email: "Ada@corp.example", groups: &groups, idp: None, login_method: None, auth_time: None }),
            service_token: None,
            device: None,
            source_ip: None,
            target: Target::Http { host: "a.example", path: "/" },
        };
        let mut first = vec![block.clone(), allow.clone()];
        first.extend(tail.iter().cloned());
        let set = load(&render(&[(destinations.clone(), first)]), Format::Toml, "t.toml").unwrap();
        prop_assert_eq!(
            set.evaluate(&request, UnixTime(0)),
            Decision::Deny(DenyReason::Blocked { application: "app0", policy: "p0" })
        );
        let mut second = vec![allow, block];
        second.extend(tail);
        let set = load(&render(&[(destinations, second)]), Format::Toml, "t.toml").unwrap();
        prop_assert!(set.evaluate(&request, UnixTime(0)).is_allow());
    }
}

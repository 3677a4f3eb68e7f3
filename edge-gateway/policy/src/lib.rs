//! `edge-policy`: the Gatehouse policy language: file model, compile, evaluate, explain.
//!
//! Admins describe **applications** (hostnames with optional `*.` wildcards and path prefixes,
//! CIDRs with ports and protocols, or `internet`) and, per application, **ordered policies**
//! (`allow`, `block`, `bypass`, `service_auth`) whose rules `include` (any), `require` (all) and
//! `exclude` (none) select on email, email domain, group, identity provider, login method,
//! device posture, source address, service token, a weekly time window, or `everyone`. The file
//! format (TOML or YAML) and the semantics are documented in the crate's README.
//!
//! It is a pure library: no IO, no clock, no randomness. The caller passes the source text and
//! the time (`now`, [`UnixTime`]); decisions are values ([`Decision`]), never errors. It is driven
//! by the edge (`edge-core`, once per new flow or HTTP request) and by the identity service
//! (applying a file with its tests, `explain` in the admin API and CLI). It verifies nothing: the
//! [`Request`] carries facts the caller has already authenticated.
//!
//! ```
//! use edge_policy::{load, Format, Request, Target, UnixTime, User};
//!
//! let set = load(r#"
//! version = 1
//! [[applications]]
//! name = "wiki"
//! destinations = [{ host = "wiki.corp.example" }]
//! [[applications.policies]]
//! name = "eng"
//! action = "allow"
//! include = [{ group = "eng" }]
//! "#, Format::Toml, "policy.toml")?;
//!
//! let groups = vec!["eng".to_owned()];
//! let request = Request {
//!     user: Some(User { email: "ada@corp.example", groups: &groups, idp: None,
//!                       login_method: None, auth_time: None }),
//!     service_token: None,
//!     device: None,
//!     source_ip: None,
//!     target: Target::Http { host: "wiki.corp.example", path: "/" },
//! };
//! assert!(set.evaluate(&request, UnixTime(0)).is_allow());
//! assert_eq!(
//!     set.explain(&request, UnixTime(0)).to_string(),
//!     "allow: application `wiki` matched host wiki.corp.example; \
//!      policy `eng` (allow) matched: include rule 1 (group = eng) met",
//! );
//! # Ok::<(), edge_policy::LoadError>(())
//! ```
//!
//! - [`parse`] reads and validates a file ([`PolicyFile`]); errors name the file, line, column
//!   and field ([`PolicyError`]).
//! - [`PolicySet::compile`] builds the immutable, indexed set; [`PolicySet::evaluate`] decides a
//!   request without allocating; [`PolicySet::explain`] says why ([`Explanation`]).
//! - [`load`] parses, compiles and runs the in-file tests, rejecting the file on the first failing
//!   test with its name and explanation ([`LoadError`]); [`run_tests`] reports every test.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod explain;
mod file;
mod load;
mod parse;
mod request;
mod set;
mod values;

pub use explain::Explanation;
pub use file::{
    Action, Application, Destination, Expectation, FileVersion, Policy, PolicyFile, PolicyTest,
    Selector, TestDevice, TestRequest, TestSubject, True,
};
pub use load::{load, run_tests, LoadError, TestOutcome};
pub use parse::{parse, Format, PolicyError, MAX_SOURCE_BYTES};
pub use request::{Decision, DenyReason, Device, Request, Target, User};
pub use set::{PolicySet, INLINE_GROUPS};
pub use values::{
    Cidr, HostPattern, PathPrefix, PortRange, Protocol, Rfc3339Time, TimeWindow, UnixTime, Version,
};

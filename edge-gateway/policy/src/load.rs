//! The loader: parse, compile, run the in-file tests, and accept the file only if all pass.

use crate::file::{Expectation, PolicyTest, TestRequest};
use crate::parse::{parse, Format, PolicyError};
use crate::request::{Device, Request, Target, User};
use crate::set::PolicySet;
use crate::values::UnixTime;

/// Why a policy file was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Invalid(#[from] PolicyError),
    /// `explanation` is the [`Explanation`](crate::Explanation) of the failing request.
    #[error("{file}: test `{test}` failed: expected {expected}, got {explanation}")]
    TestFailed {
        file: String,
        test: String,
        expected: Expectation,
        explanation: String,
    },
}

/// The result of one in-file test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    pub name: String,
    pub expected: Expectation,
    pub passed: bool,
    /// The explanation of the decision the request got.
    pub explanation: String,
}

/// Parses `source`, compiles it and runs its tests.
///
/// # Errors
///
/// [`LoadError::Invalid`] for a file that does not parse or validate, [`LoadError::TestFailed`]
/// for the first test (in file order) whose expectation is not met.
pub fn load(source: &str, format: Format, file_name: &str) -> Result<PolicySet, LoadError> {
    let file = parse(source, format, file_name)?;
    let set = PolicySet::compile(&file);
    if let Some(failed) = run_tests(&set, &file.tests).into_iter().find(|o| !o.passed) {
        return Err(LoadError::TestFailed {
            file: file_name.into(),
            test: failed.name,
            expected: failed.expected,
            explanation: failed.explanation,
        });
    }
    Ok(set)
}

/// Runs every test against `set`, in order (for reports that list all of them).
pub fn run_tests(set: &PolicySet, tests: &[PolicyTest]) -> Vec<TestOutcome> {
    tests
        .iter()
        .map(|test| {
            let explanation = set.explain(&test.as_request(), test.time());
            let allowed = explanation.decision.is_allow();
            TestOutcome {
                name: test.name.clone(),
                expected: test.expect,
                passed: allowed == (test.expect == Expectation::Allow),
                explanation: explanation.to_string(),
            }
        })
        .collect()
}

impl PolicyTest {
    /// The request this test describes.
    pub fn as_request(&self) -> Request<'_> {
        let subject = &self.subject;
        Request {
            user: subject.email.as_deref().map(|email| User {
                email,
                groups: &subject.groups,
                idp: subject.idp.as_deref(),
                login_method: subject.login_method.as_deref(),
                auth_time: subject.auth_time.map(UnixTime),
            }),
            service_token: subject.service_token.as_deref(),
            device: self.device.as_ref().map(|d| Device {
                os: d.os.as_deref(),
                os_version: d.os_version.as_deref(),
                client_version: d.client_version.as_deref(),
            }),
            source_ip: self.source_ip,
            target: match &self.request {
                TestRequest::Http { host, path } => Target::Http { host, path },
                TestRequest::Ip { ip, port, protocol } => Target::Ip {
                    addr: *ip,
                    port: *port,
                    protocol: *protocol,
                },
            },
        }
    }

    /// `at`, or 1970-01-01T00:00:00Z.
    pub fn time(&self) -> UnixTime {
        self.at.map_or(UnixTime(0), |at| at.0)
    }
}

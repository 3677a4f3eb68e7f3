//! `explain`: the decision and how it came about, in words, from the same code path as
//! [`PolicySet::evaluate`].

use crate::file::{Destination, Selector};
use crate::request::{Decision, DenyReason, Request, Target};
use crate::set::{CompiledApp, CompiledPolicy, Hit, PolicySet, Skip, Trace};
use crate::values::UnixTime;
use std::fmt;

/// A decision with its reasons. `Display` gives one line, e.g.
/// ``deny: application `wiki` matched host wiki.corp.example; policy `eng` skipped: require rule 1
/// (group = eng) not met; no policy matched``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation<'p> {
    pub decision: Decision<'p>,
    steps: Vec<String>,
}

impl PolicySet {
    /// Evaluates `request` like [`evaluate`](Self::evaluate) and records why. Allocates; meant for
    /// the CLI, the admin API, audit details and failing in-file tests.
    pub fn explain(&self, request: &Request<'_>, now: UnixTime) -> Explanation<'_> {
        let mut recorder = Recorder {
            target: request.target,
            steps: Vec::new(),
        };
        let decision = self.run(request, now, &mut recorder);
        let mut steps = recorder.steps;
        match decision {
            Decision::Deny(DenyReason::NoApplication) => {
                steps.push(format!("no application matches {}", request.target));
            }
            Decision::Deny(DenyReason::NoPolicyMatched { .. }) => {
                steps.push("no policy matched".into());
            }
            Decision::Deny(DenyReason::AuthenticationRequired { .. }) => {
                steps.push("no policy matched (no authenticated user)".into());
            }
            Decision::Deny(DenyReason::ServiceAuthRequired { .. }) => {
                steps.push("no policy matched (no service token)".into());
            }
            Decision::Allow { .. } | Decision::Deny(DenyReason::Blocked { .. }) => {}
        }
        Explanation { decision, steps }
    }
}

impl Explanation<'_> {
    /// The reasons in evaluation order, without the leading verdict.
    pub fn steps(&self) -> &[String] {
        &self.steps
    }
}

impl fmt::Display for Explanation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.decision.is_allow() {
            "allow"
        } else {
            "deny"
        })?;
        for (i, step) in self.steps.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            f.write_str(step)?;
        }
        Ok(())
    }
}

struct Recorder<'r> {
    target: Target<'r>,
    steps: Vec<String>,
}

impl Trace for Recorder<'_> {
    fn application(&mut self, app: &CompiledApp, destination: &Destination) {
        let mut step = format!("application `{}` matched {}", app.name, self.target);
        let exact = matches!(
            (destination, self.target),
            (Destination::Host { host, path: None }, Target::Http { host: asked, .. })
                if host.to_string().eq_ignore_ascii_case(asked.trim_end_matches('.'))
        );
        if !exact {
            step.push_str(&format!(" (destination `{destination}`)"));
        }
        self.steps.push(step);
    }

    fn policy(&mut self, policy: &CompiledPolicy, outcome: Result<Hit, Skip>) {
        let source = &policy.source;
        let name = &source.name;
        let rule = |list: &[Selector], i: usize| {
            list.get(i)
                .map_or_else(|| "?".to_owned(), ToString::to_string)
        };
        self.steps.push(match outcome {
            Ok(Hit::Include(i)) => format!(
                "policy `{name}` ({}) matched: include rule {} ({}) met",
                source.action,
                i + 1,
                rule(&source.include, i)
            ),
            Ok(Hit::Everyone) => {
                format!(
                    "policy `{name}` ({}) matched: no include rules (everyone)",
                    source.action
                )
            }
            Err(Skip::NoUser) => format!("policy `{name}` skipped: no authenticated user"),
            Err(Skip::NoServiceToken) => format!("policy `{name}` skipped: no service token"),
            Err(Skip::NoIncludeMet) => format!("policy `{name}` skipped: no include rule met"),
            Err(Skip::RequireNotMet(i)) => format!(
                "policy `{name}` skipped: require rule {} ({}) not met",
                i + 1,
                rule(&source.require, i)
            ),
            Err(Skip::ExcludeMet(i)) => format!(
                "policy `{name}` skipped: exclude rule {} ({}) met",
                i + 1,
                rule(&source.exclude, i)
            ),
        });
    }
}

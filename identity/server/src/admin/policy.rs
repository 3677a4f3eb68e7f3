//! Policy routes: apply a file (parse, compile, run its in-file tests with `edge-policy`, then
//! store it as the next version), show the active one, list versions, explain a request.

use super::api::{audited_event, body, check_name, now, Admin};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use edge_policy::{
    Decision, DenyReason, Destination, Format, HostPattern, PolicyFile, PolicySet, Rfc3339Time,
    Target, TestDevice, TestRequest, TestSubject,
};
use identity_store::{AuditAction, AuditOutcome, NewPolicy, Policy, PolicyFormat};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::IpAddr;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/policy", get(active).post(apply))
        .route("/admin/v1/policies", get(versions))
        .route("/admin/v1/policy/explain", post(explain))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyIn {
    format: Format,
    source: String,
    /// Labels errors (`policy.toml:3:1: …`); default `policy.<format>`.
    file_name: Option<String>,
}

/// A stored version without its source.
#[derive(Serialize)]
struct VersionOut {
    version: u64,
    format: PolicyFormat,
    sha256: String,
    applied_at: identity_store::UnixTime,
    applied_by: String,
}

impl From<Policy> for VersionOut {
    fn from(p: Policy) -> Self {
        Self {
            version: p.version,
            format: p.format,
            sha256: p.sha256,
            applied_at: p.applied_at,
            applied_by: p.applied_by,
        }
    }
}

async fn apply(
    State(state): State<AppState>,
    admin: Admin,
    request: Result<Json<PolicyIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let PolicyIn {
        format,
        source,
        file_name,
    } = body(request)?;
    let file_name = file_name.unwrap_or_else(|| format!("policy.{format}"));
    check_name("file_name", &file_name)?;
    let checked = {
        let (source, file_name) = (source.clone(), file_name.clone());
        // Compiling and running the tests is CPU work proportional to the file.
        tokio::task::spawn_blocking(move || check(&source, format, &file_name))
            .await
            .map_err(|e| ApiError::internal(format!("policy check failed: {e}")))?
    };
    let tests = match checked {
        Ok(tests) => tests,
        Err(rejection) => {
            let text = rejection.to_string();
            let detail = json!({ "file_name": file_name, "bytes": source.len(), "error": text });
            audited_event(
                &state,
                &admin,
                AuditAction::PolicyReject,
                None,
                AuditOutcome::Failure,
                detail,
            )
            .await?;
            tracing::debug!("admin: policy rejected: {text}");
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "policy_rejected",
                text,
            ));
        }
    };
    let new = NewPolicy {
        format: match format {
            Format::Toml => PolicyFormat::Toml,
            Format::Yaml => PolicyFormat::Yaml,
        },
        source,
        applied_by: admin.actor.clone(),
    };
    let actor = admin.actor.clone();
    let at = now();
    let policy = state
        .db(move |store| {
            Ok(store.write(|w| {
                let policy = w.apply_policy(&new, at)?;
                w.record_audit(&identity_store::NewAuditEvent {
                    at,
                    actor,
                    action: AuditAction::PolicyApply,
                    target: Some(policy.version.to_string()),
                    outcome: AuditOutcome::Success,
                    detail: json!({ "file_name": file_name, "sha256": policy.sha256, "tests": tests }),
                })?;
                Ok::<_, identity_store::StoreError>(policy)
            })?)
        })
        .await?;
    tracing::info!(version = policy.version, "admin: policy applied");
    let mut answer = json!(VersionOut::from(policy));
    answer["tests_passed"] = json!(tests);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `edge_policy::load`, keeping the parsed file to count its tests: the number of tests, or why
/// the file is rejected.
fn check(source: &str, format: Format, file_name: &str) -> Result<usize, edge_policy::LoadError> {
    let file = edge_policy::parse(source, format, file_name)?;
    let set = PolicySet::compile(&file);
    let outcomes = edge_policy::run_tests(&set, &file.tests);
    if let Some(failed) = outcomes.into_iter().find(|o| !o.passed) {
        return Err(edge_policy::LoadError::TestFailed {
            file: file_name.to_owned(),
            test: failed.name,
            expected: failed.expected,
            explanation: failed.explanation,
        });
    }
    Ok(file.tests.len())
}

async fn active(State(state): State<AppState>, _: Admin) -> Result<Json<Policy>, ApiError> {
    state
        .db(|store| Ok(store.active_policy()?))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no policy is applied"))
}

async fn versions(State(state): State<AppState>, _: Admin) -> Result<Json<Value>, ApiError> {
    let policies = state.db(|store| Ok(store.policies()?)).await?;
    let versions: Vec<VersionOut> = policies.into_iter().map(VersionOut::from).collect();
    Ok(Json(json!({ "policies": versions })))
}

/// An in-file `[[tests]]` entry without `name` and `expect`; see the module docs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainIn {
    #[serde(default)]
    subject: TestSubject,
    device: Option<TestDevice>,
    source_ip: Option<IpAddr>,
    request: TestRequest,
    /// Default: now.
    at: Option<Rfc3339Time>,
}

async fn explain(
    State(state): State<AppState>,
    _: Admin,
    request: Result<Json<ExplainIn>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let input = body(request)?;
    let policy = state
        .db(|store| Ok(store.active_policy()?))
        .await?
        .ok_or_else(|| ApiError::not_found("no policy is applied"))?;
    let set = tokio::task::spawn_blocking(move || {
        parse_stored(&policy).map(|file| (PolicySet::compile(&file), policy.version))
    })
    .await
    .map_err(|e| ApiError::internal(format!("policy compile failed: {e}")))?
    // The stored file passed these checks when it was applied.
    .map_err(|e| ApiError::internal(format!("stored policy no longer parses: {e}")))?;
    let (set, version) = set;
    Ok(Json(explanation(&set, version, &input)))
}

/// Parses a stored policy version (it passed every check when it was applied).
///
/// # Errors
/// The parse error, should the stored text no longer parse (a newer `edge-policy`).
pub(crate) fn parse_stored(policy: &Policy) -> Result<PolicyFile, edge_policy::PolicyError> {
    let format = match policy.format {
        PolicyFormat::Toml => Format::Toml,
        PolicyFormat::Yaml => Format::Yaml,
    };
    let file_name = format!("policy-v{}.{format}", policy.version);
    edge_policy::parse(&policy.source, format, &file_name)
}

/// The hostname patterns (exact or `*.suffix`) of every application's destinations, in file
/// order: the hosts a browser may be sent to for clientless access.
pub(crate) fn application_hosts(file: &PolicyFile) -> Vec<HostPattern> {
    file.applications
        .iter()
        .flat_map(|app| &app.destinations)
        .filter_map(|d| match d {
            Destination::Host { host, .. } => Some(host.clone()),
            Destination::Network { .. } | Destination::Internet => None,
        })
        .collect()
}

/// Explains `input` against `set` and renders the answer.
fn explanation(set: &PolicySet, version: u64, input: &ExplainIn) -> Value {
    let subject = &input.subject;
    let request = edge_policy::Request {
        user: subject.email.as_deref().map(|email| edge_policy::User {
            email,
            groups: &subject.groups,
            idp: subject.idp.as_deref(),
            login_method: subject.login_method.as_deref(),
            auth_time: subject.auth_time.map(edge_policy::UnixTime),
        }),
        service_token: subject.service_token.as_deref(),
        device: input.device.as_ref().map(|d| edge_policy::Device {
            os: d.os.as_deref(),
            os_version: d.os_version.as_deref(),
            client_version: d.client_version.as_deref(),
        }),
        source_ip: input.source_ip,
        target: match &input.request {
            TestRequest::Http { host, path } => Target::Http { host, path },
            TestRequest::Ip { ip, port, protocol } => Target::Ip {
                addr: *ip,
                port: *port,
                protocol: *protocol,
            },
        },
    };
    let at = input
        .at
        .map_or_else(|| edge_policy::UnixTime(now().0), |at| at.0);
    let explanation = set.explain(&request, at);
    let decision = explanation.decision;
    let (action, reason) = match decision {
        Decision::Allow { action, .. } => (Some(action.to_string()), None),
        Decision::Deny(reason) => (None, Some(deny_reason(reason))),
    };
    json!({
        "decision": if decision.is_allow() { "allow" } else { "deny" },
        "action": action,
        "application": decision.application(),
        "policy": decision.policy(),
        "reason": reason,
        "policy_version": version,
        "explanation": explanation.to_string(),
        "steps": explanation.steps(),
    })
}

fn deny_reason(reason: DenyReason<'_>) -> &'static str {
    match reason {
        DenyReason::NoApplication => "no_application",
        DenyReason::NoPolicyMatched { .. } => "no_policy_matched",
        DenyReason::AuthenticationRequired { .. } => "authentication_required",
        DenyReason::ServiceAuthRequired { .. } => "service_auth_required",
        DenyReason::Blocked { .. } => "blocked",
    }
}

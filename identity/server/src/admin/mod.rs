//! Admin API (`/admin/v1/…`) and the `gatehouse-identity admin …` command line.
//!
//! Every route needs `Authorization: Bearer <admin token>` (compared in constant time), or, when
//! `admin_group` is configured, a user-session token of a member of that group (membership as
//! the store has it now). Request bodies are JSON and reject unknown fields (400 naming the
//! field); errors are the usual `{"error", "error_description"}`: 400 invalid input, 401 no or a
//! wrong credential, 403 not in the admin group, 404 unknown id, 409 conflict, 422 a rejected
//! policy file. Every mutation writes its audit event (actor `admin`, or the user id of a group
//! admin) in the same store transaction and answers with the new state; a mutation that changes
//! nothing (revoking twice) records nothing.
//!
//! | Route | Body | Answer |
//! |---|---|---|
//! | `GET /users` | | `{"users":[user + "groups"]}` |
//! | `POST /users/{id}/disable`, `/enable` | | the user |
//! | `POST /users/{id}/sync` | | `{"user_id","before","after","grants":[…]}`: groups re-read from the upstream provider now (`{id}` may be an e-mail); 409 `no_upstream_grant` without a login with a refresh token |
//! | `GET /groups` | | `{"groups":[{"name","members","created_at"}]}` |
//! | `POST /groups/{name}/members` | `{"user_id"}` | `{"group","user_id","added","groups"}` |
//! | `DELETE /groups/{name}/members/{user_id}` | | `{"group","user_id","removed","groups"}` |
//! | `GET /devices[?user=ID]` | | `{"devices":[…]}` |
//! | `POST /devices/{id}/revoke` | | the device |
//! | `GET /sessions?user=ID` | | `{"sessions":[…]}` |
//! | `POST /sessions/{id}/revoke` | | the session |
//! | `GET /service-tokens` | | `{"service_tokens":[…]}` (never a secret) |
//! | `POST /service-tokens` | `{"name","kind":"machine"\|"edge","expires_in_secs"?}` | 201 `{"token_id","secret","token"}` |
//! | `POST /service-tokens/{id}/revoke` | | the token |
//! | `GET /connectors` | | `{"connectors":[…]}` |
//! | `POST /connectors` | `{"name","routes":[…]}` | 201 `{"connector","token_id","secret"}` |
//! | `PUT /connectors/{id}/routes` | `{"routes":[…]}` | the connector |
//! | `POST /connectors/{id}/revoke` | | the connector |
//! | `POST /policy` | `{"format":"toml"\|"yaml","source","file_name"?}` | 201 the version, or 422 `policy_rejected` |
//! | `GET /policy` | | the active version with its source |
//! | `GET /policies` | | `{"policies":[…]}` without sources, newest first |
//! | `POST /policy/explain` | see below | `{"decision","explanation",…}` |
//! | `GET /audit?action=&since=&limit=` | | `{"events":[…]}` newest first |
//! | `GET /decisions?user=&email=&device=&decision=&application=&reference=&since=&until=&before=&limit=` | | `{"decisions":[…],"next_cursor"}` newest first |
//!
//! Secrets (`secret`) appear only in the answer that creates them (`Cache-Control: no-store`).
//! Routes are CIDRs (`10.0.0.0/8`, host bits zero, or a bare address) or hostnames
//! (`db.corp.example`, `*.corp.example`), stored lowercase.
//!
//! # Explain
//! The body is an in-file `[[tests]]` entry without `name` and `expect`:
//!
//! ```json
//! {
//!   "subject": { "email": "ada@corp.example", "groups": ["eng"], "idp": "okta",
//!                "login_method": "hwk", "auth_time": 1767600000, "service_token": "tok_…" },
//!   "device": { "os": "linux", "os_version": "6.5", "client_version": "0.3.1" },
//!   "source_ip": "192.0.2.10",
//!   "request": { "host": "wiki.corp.example", "path": "/docs" },
//!   "at": "2026-01-05T10:00:00Z"
//! }
//! ```
//!
//! `request` is `{"host", "path"?}` or `{"ip", "port", "protocol": "tcp"|"udp"|"icmp"}` (no port
//! for icmp). Every other field is optional: without `subject.email` there is no user, `at`
//! defaults to the server's clock. The answer, from the active policy:
//!
//! ```json
//! { "decision": "allow", "action": "allow", "application": "wiki", "policy": "eng",
//!   "reason": null, "policy_version": 3,
//!   "explanation": "allow: application `wiki` matched host wiki.corp.example; policy `eng` (allow) matched: include rule 1 (group = eng) met",
//!   "steps": ["application `wiki` matched host wiki.corp.example", "policy `eng` (allow) matched: …"] }
//! ```
//!
//! `reason` is set on a deny: `no_application`, `no_policy_matched`, `authentication_required`,
//! `service_auth_required` or `blocked`.
//!
//! # Decisions
//! Access decisions edges reported (`POST /v1/decisions`), newest first by the edge's time,
//! then by arrival. Every filter is optional and exact: `user` (user id), `email`, `device`
//! (device id), `decision` (`allow`|`deny`), `application`, `reference` (the 16-hex-digit id of
//! a deny page), `since` (Unix seconds, inclusive), `until` (Unix seconds, exclusive); `limit`
//! 1 to 1000 (default 100). `next_cursor` is set when the page is full: pass it as `before` for
//! the next page. Each decision is the edge's record (`at_ms`, `edge`, `reference`,
//! `decision`, `kind`, `source_ip`, `device_id`, `user_id`, `email`, `destination`,
//! `application`, `policy`, `reason`) plus `id`, `received_at_ms` and `token_id` (the edge
//! service token that sent it).

mod api;
mod cli;
mod decisions;
pub(crate) mod policy;
mod sync;
mod table;

use crate::state::AppState;
use axum::Router;

pub(crate) use cli::{cli, AdminArgs};

/// The admin API routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(api::router())
        .merge(policy::router())
        .merge(decisions::router())
        .merge(sync::router())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            crate::http::REQUEST_TIMEOUT,
        ))
}

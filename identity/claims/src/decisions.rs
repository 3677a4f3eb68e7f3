//! Access decision records: what an edge decided for one flow or request, sent to identity in
//! batches (`POST /v1/decisions`) so admins can query them (`GET /admin/v1/decisions`).
//!
//! ```json
//! {"records":[{"at_ms":1767600000123,"edge":"fra1","reference":"00c0ffee00c0ffee",
//!   "decision":"deny","kind":"http","source_ip":"100.64.0.2","device_id":"dev_…",
//!   "user_id":"usr_…","email":"ada@corp.example","destination":"wiki.corp.example/admin",
//!   "application":"wiki","policy":"eng","reason":"no policy allows this request"}]}
//! ```
//!
//! Receivers ignore unknown fields; a record with an unknown `decision` or `kind` does not
//! parse. [`DecisionRecord::validate`] checks the bounds identity enforces on ingest;
//! [`DecisionRecord::fit`] makes a record the edge built satisfy them (it truncates, never
//! fails), so a sender never loses a batch to an over-long path. Records hold personal data
//! (email, user id, source address): they go to identity only, never into logs above DEBUG.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Most records in one [`DecisionBatch`].
pub const MAX_BATCH_RECORDS: usize = 1000;
/// Longest `edge`, `device_id`, `user_id`, `application` and `policy` (bytes).
pub const MAX_NAME_LEN: usize = 128;
/// Longest `email` (bytes): RFC 5321 §4.5.3.1 allows 64 + 1 + 255 octets.
pub const MAX_EMAIL_LEN: usize = 320;
/// Longest `destination` (bytes): a hostname (253, RFC 1035 §2.3.4) and a path prefix; longer
/// paths are cut, the rest of a URL says nothing about the decision.
pub const MAX_DESTINATION_LEN: usize = 1024;
/// Longest `reason` (bytes).
pub const MAX_REASON_LEN: usize = 256;
/// A reference id is 16 lowercase hex digits (the id on the edge's deny pages).
pub const REFERENCE_LEN: usize = 16;

/// Allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionOutcome {
    Allow,
    Deny,
}

/// What was decided: a new IP flow, an HTTP request on the application front, or a TLS
/// connection by its SNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Flow,
    Http,
    Tls,
}

/// One access decision at an edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// When the edge decided (Unix milliseconds, the edge's clock).
    pub at_ms: u64,
    /// The edge's name (its `[connectors] name`).
    pub edge: String,
    /// The 16-hex-digit reference shown on the deny page, when there was one.
    #[serde(default)]
    pub reference: Option<String>,
    pub decision: DecisionOutcome,
    pub kind: DecisionKind,
    /// The tunnel address the flow or request came from.
    pub source_ip: String,
    /// The enrolled device behind `source_ip`, if any.
    #[serde(default)]
    pub device_id: Option<String>,
    /// The device's user, if any.
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// `10.1.2.3:5432/tcp`, `[fd00::1]:53/udp`, `10.1.2.3/icmp`, `app.example.com/path`.
    pub destination: String,
    /// The application that decided, if one matched.
    #[serde(default)]
    pub application: Option<String>,
    /// The policy that decided, if one matched.
    #[serde(default)]
    pub policy: Option<String>,
    /// Why, in one short phrase.
    pub reason: String,
}

/// What `POST /v1/decisions` carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionBatch {
    pub records: Vec<DecisionRecord>,
}

/// Why a record or batch is rejected; `field` names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    #[error("a batch holds at most {MAX_BATCH_RECORDS} records, this one {0}")]
    TooManyRecords(usize),
    #[error("records[{index}].{field}: {problem}")]
    Record {
        index: usize,
        field: &'static str,
        problem: &'static str,
    },
}

impl DecisionOutcome {
    /// The JSON and stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

impl std::str::FromStr for DecisionOutcome {
    type Err = UnknownDecisionValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            _ => Err(UnknownDecisionValue(s.to_owned())),
        }
    }
}

impl DecisionKind {
    /// The JSON and stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flow => "flow",
            Self::Http => "http",
            Self::Tls => "tls",
        }
    }
}

impl std::str::FromStr for DecisionKind {
    type Err = UnknownDecisionValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "flow" => Ok(Self::Flow),
            "http" => Ok(Self::Http),
            "tls" => Ok(Self::Tls),
            _ => Err(UnknownDecisionValue(s.to_owned())),
        }
    }
}

/// A text that is no [`DecisionOutcome`] or [`DecisionKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownDecisionValue(pub String);

impl DecisionBatch {
    /// Checks the record count and every record.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), DecisionError> {
        if self.records.len() > MAX_BATCH_RECORDS {
            return Err(DecisionError::TooManyRecords(self.records.len()));
        }
        for (index, record) in self.records.iter().enumerate() {
            record
                .check()
                .map_err(|(field, problem)| DecisionError::Record {
                    index,
                    field,
                    problem,
                })?;
        }
        Ok(())
    }
}

impl DecisionRecord {
    /// Checks the bounds identity enforces: lengths, no control characters, a parseable
    /// `source_ip`, a 16-hex-digit `reference`, a non-empty `edge` and `destination`, and an
    /// `at_ms` that fits a signed 64-bit column.
    ///
    /// # Errors
    /// The first problem, as a `Record` error at index 0.
    pub fn validate(&self) -> Result<(), DecisionError> {
        self.check()
            .map_err(|(field, problem)| DecisionError::Record {
                index: 0,
                field,
                problem,
            })
    }

    /// The record cut to the bounds [`Self::validate`] checks: over-long texts truncated at a
    /// character boundary, control characters replaced by `?`, an empty `edge` or
    /// `destination` replaced by `-`, a malformed `reference` dropped. A `source_ip` that is no
    /// address cannot be repaired and still fails validation.
    #[must_use]
    pub fn fit(mut self) -> Self {
        self.at_ms = self.at_ms.min(i64::MAX as u64);
        fit_text(&mut self.edge, MAX_NAME_LEN, true);
        fit_text(&mut self.destination, MAX_DESTINATION_LEN, true);
        fit_text(&mut self.reason, MAX_REASON_LEN, false);
        fit_text(&mut self.source_ip, MAX_NAME_LEN, false);
        for (field, max) in [
            (&mut self.device_id, MAX_NAME_LEN),
            (&mut self.user_id, MAX_NAME_LEN),
            (&mut self.email, MAX_EMAIL_LEN),
            (&mut self.application, MAX_NAME_LEN),
            (&mut self.policy, MAX_NAME_LEN),
        ] {
            if let Some(text) = field {
                fit_text(text, max, false);
            }
        }
        if self.reference.as_deref().is_some_and(|r| !is_reference(r)) {
            self.reference = None;
        }
        self
    }

    fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if i64::try_from(self.at_ms).is_err() {
            return Err(("at_ms", "out of range"));
        }
        text("edge", &self.edge, MAX_NAME_LEN, true)?;
        text("destination", &self.destination, MAX_DESTINATION_LEN, true)?;
        text("reason", &self.reason, MAX_REASON_LEN, false)?;
        if self.source_ip.parse::<IpAddr>().is_err() {
            return Err(("source_ip", "not an IP address"));
        }
        if let Some(reference) = &self.reference {
            if !is_reference(reference) {
                return Err(("reference", "must be 16 lowercase hex digits"));
            }
        }
        for (field, value, max) in [
            ("device_id", &self.device_id, MAX_NAME_LEN),
            ("user_id", &self.user_id, MAX_NAME_LEN),
            ("email", &self.email, MAX_EMAIL_LEN),
            ("application", &self.application, MAX_NAME_LEN),
            ("policy", &self.policy, MAX_NAME_LEN),
        ] {
            if let Some(value) = value {
                text(field, value, max, false)?;
            }
        }
        Ok(())
    }
}

fn text(
    field: &'static str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<(), (&'static str, &'static str)> {
    if required && value.is_empty() {
        return Err((field, "must not be empty"));
    }
    if value.len() > max {
        return Err((field, "too long"));
    }
    if value.chars().any(char::is_control) {
        return Err((field, "contains control characters"));
    }
    Ok(())
}

fn fit_text(value: &mut String, max: usize, required: bool) {
    if value.chars().any(char::is_control) {
        *value = value
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
    }
    if value.len() > max {
        let mut end = max;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
    }
    if required && value.is_empty() {
        value.push('-');
    }
}

fn is_reference(value: &str) -> bool {
    value.len() == REFERENCE_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> DecisionRecord {
        DecisionRecord {
            at_ms: 1_767_600_000_123,
            edge: "fra1".into(),
            reference: Some("00c0ffee00c0ffee".into()),
            decision: DecisionOutcome::Deny,
            kind: DecisionKind::Http,
            source_ip: "100.64.0.2".into(),
            device_id: Some("dev_1".into()),
            user_id: Some("usr_1".into()),
            email: Some("ada@corp.example".into()),
            destination: "wiki.corp.example/admin".into(),
            application: Some("wiki".into()),
            policy: None,
            reason: "no policy allows this request".into(),
        }
    }

    #[test]
    fn a_record_parses_from_literal_json_ignoring_unknown_fields() {
        let json = r#"{"records":[{"at_ms":5,"edge":"e","decision":"allow","kind":"flow",
            "source_ip":"fd00::2","destination":"[fd00::1]:53/udp","reason":"allowed",
            "future_field":{"x":1}}]}"#;
        let batch: DecisionBatch = serde_json::from_str(json).unwrap();
        assert_eq!(batch.records[0].decision, DecisionOutcome::Allow);
        assert_eq!(batch.records[0].kind, DecisionKind::Flow);
        assert_eq!(batch.records[0].email, None);
        batch.validate().unwrap();
    }

    #[test]
    fn unknown_decisions_and_kinds_do_not_parse() {
        let json = r#"{"at_ms":5,"edge":"e","decision":"maybe","kind":"flow",
            "source_ip":"10.0.0.1","destination":"d","reason":"r"}"#;
        assert!(serde_json::from_str::<DecisionRecord>(json).is_err());
    }

    #[test]
    fn a_round_trip_keeps_every_field() {
        let text = serde_json::to_string(&record()).unwrap();
        assert!(text.contains(r#""decision":"deny""#), "{text}");
        assert_eq!(
            serde_json::from_str::<DecisionRecord>(&text).unwrap(),
            record()
        );
    }

    #[test]
    fn validation_names_the_record_and_field() {
        let mut bad = record();
        bad.source_ip = "not-an-ip".into();
        let batch = DecisionBatch {
            records: vec![record(), bad],
        };
        assert_eq!(
            batch.validate().unwrap_err().to_string(),
            "records[1].source_ip: not an IP address"
        );
        let mut long = record();
        long.destination = "x".repeat(MAX_DESTINATION_LEN + 1);
        assert!(long.validate().is_err());
        let mut reference = record();
        reference.reference = Some("00C0FFEE00C0FFEE".into());
        assert!(reference.validate().is_err());
        let mut control = record();
        control.reason = "a\nb".into();
        assert!(control.validate().is_err());
    }

    #[test]
    fn too_many_records_are_rejected() {
        let batch = DecisionBatch {
            records: vec![record(); MAX_BATCH_RECORDS + 1],
        };
        assert_eq!(
            batch.validate(),
            Err(DecisionError::TooManyRecords(MAX_BATCH_RECORDS + 1))
        );
    }

    #[test]
    fn fit_makes_an_oversized_record_valid() {
        let mut r = record();
        r.destination = format!("app.example/{}", "é".repeat(MAX_DESTINATION_LEN));
        r.edge = String::new();
        r.email = Some("a\u{7}b@example.com".into());
        r.reference = Some("short".into());
        let fitted = r.fit();
        fitted.validate().unwrap();
        assert!(fitted.destination.len() <= MAX_DESTINATION_LEN);
        assert!(fitted.destination.starts_with("app.example/é"));
        assert_eq!(fitted.edge, "-");
        assert_eq!(fitted.email.as_deref(), Some("a?b@example.com"));
        assert_eq!(fitted.reference, None);
    }
}

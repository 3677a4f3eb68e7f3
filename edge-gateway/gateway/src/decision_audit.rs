//! The audit trail of access decisions: every flow, HTTP request and TLS connection the edge
//! decides becomes an [`identity_claims::DecisionRecord`] that identity stores for admins
//! (`POST /v1/decisions`, queried with `GET /admin/v1/decisions`).
//!
//! The data path calls [`DecisionAudit::record`] (or [`DecisionAudit::record_verdict`]), which
//! never blocks: a bounded channel of [`QUEUE_BOUND`] records; when it is full the record is
//! dropped and counted, with one WARN per minute at most. A background task moves records into
//! an [`Outbox`] (at most [`QUEUE_BOUND`] too) and posts batches of at most [`MAX_BATCH`]
//! records and [`MAX_BATCH_BYTES`], one second after the first record of a batch arrives or
//! as soon as a batch is full. While identity is unreachable it retries with full-jitter
//! exponential backoff and, when the outbox is full, drops the oldest records (counted, WARN
//! once a minute). A batch identity rejects as malformed (400, 413) is dropped, not retried.
//!
//! Without an `[identity]` section records are only logged at DEBUG. Records carry personal
//! data (email, user id, source address): they go to identity only; logs above DEBUG carry
//! counts, never record contents.
//!
//! The batching logic is the sans-IO [`Outbox`] (explicit instants, unit-tested below); the
//! upload is tested against the real identity server in-process (`identity` is a
//! dev-dependency), which checks the request shape against the handler that parses it.

use crate::identity_feed::FeedSource;
use edge_core::access::Verdict;
use edge_core::clientless::Caller;
use edge_policy::{Protocol, Target};
use identity_claims::feed::Device;
use identity_claims::{DecisionKind, DecisionOutcome, DecisionRecord};
use rand::Rng as _;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// Records waiting in the channel, and separately in the outbox (~0.5 KB each: ≤ 10 MB in
/// all while identity is down).
pub(crate) const QUEUE_BOUND: usize = 10_000;
/// Records per upload: half of identity's 1,000 per batch.
pub(crate) const MAX_BATCH: usize = 500;
/// Encoded body per upload: half of identity's 1 MiB limit for `POST /v1/decisions`.
pub(crate) const MAX_BATCH_BYTES: usize = 512 * 1024;
/// How long the first record of a batch waits for company.
const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// Most one WARN about dropped records per this interval.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Upload retry backoff: full jitter over an exponential ceiling from 500 ms to 30 s.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// One upload may take this long.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The edge's decision recorder; shared by every flow and request task.
pub(crate) struct DecisionAudit {
    edge: String,
    /// `None` without `[identity]`: records are logged at DEBUG only.
    tx: Option<mpsc::Sender<DecisionRecord>>,
    dropped: DropCounter,
}

/// Where and how the uploader sends; tests shorten the timings.
#[derive(Clone)]
struct UploadTarget {
    identity_url: String,
    token: String,
    flush_after: Duration,
    backoff_base: Duration,
}

impl DecisionAudit {
    /// Starts the uploader task when `feed_source` (the `[identity]` section) is given. Call
    /// it inside the tokio runtime.
    pub(crate) fn start(feed_source: Option<&FeedSource>, edge_name: String) -> Arc<Self> {
        let target = feed_source.map(|s| UploadTarget {
            identity_url: s.identity_url.clone(),
            token: s.token.clone(),
            flush_after: FLUSH_AFTER,
            backoff_base: BACKOFF_BASE,
        });
        Self::start_with(target, edge_name)
    }

    fn start_with(target: Option<UploadTarget>, edge: String) -> Arc<Self> {
        let tx = target.map(|target| {
            let (tx, rx) = mpsc::channel(QUEUE_BOUND);
            tokio::spawn(upload_loop(target, rx));
            tx
        });
        Arc::new(Self {
            edge,
            tx,
            dropped: DropCounter::default(),
        })
    }

    /// The edge name records carry.
    #[cfg(test)]
    pub(crate) fn edge(&self) -> &str {
        &self.edge
    }

    /// Queues one record for identity; never blocks (a full queue drops it and counts).
    pub(crate) fn record(&self, record: DecisionRecord) {
        let Some(tx) = &self.tx else {
            log_record(&record);
            return;
        };
        tracing::trace!(decision = record.decision.as_str(), "decision queued");
        if tx.try_send(record).is_err() {
            self.dropped
                .add(1, Instant::now(), "the decision audit queue is full");
        }
    }

    /// Records `verdict` on `target` from `source` now; `who` is the device behind the source
    /// or the clientless caller, `reference` the deny page's id when one is shown.
    pub(crate) fn record_verdict(
        &self,
        verdict: &Verdict,
        who: Who<'_>,
        kind: DecisionKind,
        source: IpAddr,
        target: Target<'_>,
        reference: Option<String>,
    ) {
        let at_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.record(decision_record(
            &self.edge,
            verdict,
            who,
            kind,
            source,
            &destination(target),
            reference,
            at_ms,
        ));
    }
}

/// Who a decision was about, as the record names them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Who<'a> {
    pub(crate) device_id: Option<&'a str>,
    pub(crate) user_id: Option<&'a str>,
    pub(crate) email: Option<&'a str>,
}

impl<'a> From<Option<&'a Device>> for Who<'a> {
    fn from(device: Option<&'a Device>) -> Self {
        device.map_or_else(Self::default, |d| Self {
            device_id: Some(&d.device_id),
            user_id: Some(&d.user.user_id),
            email: Some(&d.user.email),
        })
    }
}

impl<'a> From<&'a Caller> for Who<'a> {
    /// A browser's user; a service token is named by its id in `user_id`.
    fn from(caller: &'a Caller) -> Self {
        match caller {
            Caller::User(session) => Self {
                device_id: None,
                user_id: Some(&session.common.sub),
                email: Some(&session.user.email),
            },
            Caller::Service { token_id } => Self {
                device_id: None,
                user_id: Some(token_id),
                email: None,
            },
        }
    }
}

/// The record of one decision, cut to identity's bounds ([`DecisionRecord::fit`]).
#[allow(
    clippy::too_many_arguments,
    reason = "one argument per record field the caller knows"
)]
pub(crate) fn decision_record(
    edge: &str,
    verdict: &Verdict,
    who: Who<'_>,
    kind: DecisionKind,
    source: IpAddr,
    destination: &str,
    reference: Option<String>,
    at_ms: u64,
) -> DecisionRecord {
    let non_empty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
    DecisionRecord {
        at_ms,
        edge: edge.to_owned(),
        reference,
        decision: if verdict.allowed {
            DecisionOutcome::Allow
        } else {
            DecisionOutcome::Deny
        },
        kind,
        source_ip: source.to_canonical().to_string(),
        device_id: verdict
            .device_id
            .clone()
            .or_else(|| non_empty(who.device_id)),
        user_id: non_empty(who.user_id),
        email: non_empty(who.email),
        destination: destination.to_owned(),
        application: verdict.application.clone(),
        policy: verdict.policy.clone(),
        reason: verdict.summary.to_owned(),
    }
    .fit()
}

/// `10.1.2.3:5432/tcp`, `[fd00::1]:53/udp`, `10.1.2.3/icmp`, `app.example.com/path`, and for
/// TLS (empty path) `app.example.com`.
pub(crate) fn destination(target: Target<'_>) -> String {
    match target {
        // A TLS decision has no path: pass `path: ""` and the destination is the SNI host.
        Target::Http { host, path: "" } => host.to_owned(),
        Target::Http { host, path } if path.starts_with('/') => format!("{host}{path}"),
        Target::Http { host, path } => format!("{host}/{path}"),
        Target::Ip {
            addr,
            port,
            protocol,
        } => {
            let protocol = match protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
                Protocol::Icmp => return format!("{addr}/icmp"),
            };
            format!("{}/{protocol}", std::net::SocketAddr::new(addr, port))
        }
    }
}

/// Without identity: the whole record at DEBUG (personal data allowed there).
fn log_record(r: &DecisionRecord) {
    tracing::debug!(
        decision = r.decision.as_str(),
        kind = r.kind.as_str(),
        source = %r.source_ip,
        destination = %r.destination,
        device = r.device_id.as_deref().unwrap_or("-"),
        email = r.email.as_deref().unwrap_or("-"),
        application = r.application.as_deref().unwrap_or("-"),
        policy = r.policy.as_deref().unwrap_or("-"),
        reference = r.reference.as_deref().unwrap_or("-"),
        reason = %r.reason,
        "access decision"
    );
}

/// Counts dropped records and WARNs about them at most once per [`WARN_EVERY`].
#[derive(Default)]
struct DropCounter {
    since_warn: AtomicU64,
    last_warn: Mutex<Option<Instant>>,
}

impl DropCounter {
    fn add(&self, n: u64, now: Instant, why: &str) {
        if n == 0 {
            return;
        }
        self.since_warn.fetch_add(n, Ordering::Relaxed);
        // `try_lock`: a contended counter skips the check, the data path never waits.
        let Ok(mut last) = self.last_warn.try_lock() else {
            return;
        };
        if last.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return;
        }
        *last = Some(now);
        let dropped = self.since_warn.swap(0, Ordering::Relaxed);
        tracing::warn!(dropped, "{why}: access decision records dropped");
    }
}

/// The uploader's queue: sans-IO, driven with explicit instants.
///
/// Records are [`Outbox::push`]ed; [`Outbox::poll_timeout`] says when to look again and
/// [`Outbox::take_batch`] hands out the next batch when one is due (full, or the oldest record
/// waited `flush_after`) and no backoff is pending. The driver reports the upload with
/// [`Outbox::sent`] or [`Outbox::failed`] (which puts the batch back in front and sets the
/// backoff). Beyond `cap` records the oldest are dropped and counted ([`Outbox::take_evicted`]).
pub(crate) struct Outbox {
    queue: VecDeque<DecisionRecord>,
    cap: usize,
    flush_after: Duration,
    /// When the oldest waiting record arrived (or was put back).
    first_at: Option<Instant>,
    /// No upload before this (backoff after a failure).
    not_before: Option<Instant>,
    evicted: u64,
}

/// Records taken for one upload and their encoded body.
pub(crate) struct Batch {
    pub(crate) records: Vec<DecisionRecord>,
    /// `{"records":[…]}`.
    pub(crate) body: Vec<u8>,
}

impl Outbox {
    pub(crate) fn new(cap: usize, flush_after: Duration) -> Self {
        Self {
            queue: VecDeque::new(),
            cap: cap.max(1),
            flush_after,
            first_at: None,
            not_before: None,
            evicted: 0,
        }
    }

    /// Queues a record, dropping the oldest beyond the cap.
    pub(crate) fn push(&mut self, record: DecisionRecord, now: Instant) {
        if self.queue.is_empty() {
            self.first_at = Some(now);
        }
        self.queue.push_back(record);
        self.trim();
    }

    /// Records waiting.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// When the next batch is due; `None` while empty.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let first_at = self.first_at?;
        let due = if self.queue.len() >= MAX_BATCH {
            first_at
        } else {
            first_at + self.flush_after
        };
        Some(self.not_before.map_or(due, |nb| nb.max(due)))
    }

    /// The next batch, if one is due at `now`: up to [`MAX_BATCH`] records from the front,
    /// within [`MAX_BATCH_BYTES`] (at least one record).
    pub(crate) fn take_batch(&mut self, now: Instant) -> Option<Batch> {
        if self.poll_timeout().is_none_or(|due| now < due) {
            return None;
        }
        let mut records = Vec::new();
        let mut body = b"{\"records\":[".to_vec();
        while records.len() < MAX_BATCH {
            let Some(record) = self.queue.front() else {
                break;
            };
            // Records hold strings and integers only; encoding cannot fail. One that did
            // would be dropped rather than block the queue.
            let Ok(encoded) = serde_json::to_vec(record) else {
                self.queue.pop_front();
                continue;
            };
            if !records.is_empty() && body.len() + encoded.len() + 3 > MAX_BATCH_BYTES {
                break;
            }
            if !records.is_empty() {
                body.push(b',');
            }
            body.extend_from_slice(&encoded);
            records.extend(self.queue.pop_front());
        }
        body.extend_from_slice(b"]}");
        self.first_at = (!self.queue.is_empty()).then_some(now);
        (!records.is_empty()).then_some(Batch { records, body })
    }

    /// The upload of a batch succeeded (or was given up): no backoff.
    pub(crate) fn sent(&mut self) {
        self.not_before = None;
    }

    /// The upload failed: the batch goes back in front (oldest first, so the cap drops it
    /// first) and nothing is sent before `retry_at`.
    pub(crate) fn failed(&mut self, batch: Batch, now: Instant, retry_at: Instant) {
        for record in batch.records.into_iter().rev() {
            self.queue.push_front(record);
        }
        self.first_at = Some(self.first_at.map_or(now, |at| at.min(now)));
        self.not_before = Some(retry_at);
        self.trim();
    }

    /// Records dropped for the cap since the last call.
    pub(crate) fn take_evicted(&mut self) -> u64 {
        std::mem::take(&mut self.evicted)
    }

    fn trim(&mut self) {
        while self.queue.len() > self.cap {
            self.queue.pop_front();
            self.evicted += 1;
        }
    }
}

/// How an upload ended.
enum Upload {
    Stored,
    /// Identity will never take this batch (400, 413): drop it.
    Rejected(String),
    /// Try again later (identity down, 5xx, 401 while a token is being fixed).
    Retry(String),
}

/// Moves records from the channel into the outbox and uploads batches until every
/// [`DecisionAudit`] is gone (then one last attempt to send what is left).
async fn upload_loop(target: UploadTarget, mut rx: mpsc::Receiver<DecisionRecord>) {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(UPLOAD_TIMEOUT)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let url = format!("{}/v1/decisions", target.identity_url.trim_end_matches('/'));
    let mut outbox = Outbox::new(QUEUE_BOUND, target.flush_after);
    let evictions = DropCounter::default();
    let mut failures: u32 = 0;
    let mut open = true;
    while open || outbox.len() > 0 {
        let wake = outbox.poll_timeout();
        tokio::select! {
            received = rx.recv(), if open => match received {
                Some(record) => outbox.push(record, Instant::now()),
                None => open = false,
            },
            () = sleep_until(wake), if wake.is_some() => {}
        }
        while let Ok(record) = rx.try_recv() {
            outbox.push(record, Instant::now());
        }
        let now = Instant::now();
        let batch = if open {
            outbox.take_batch(now)
        } else {
            // Shutting down: whatever is left, once, without waiting for the timer.
            outbox.sent();
            outbox.take_batch(now + target.flush_after)
        };
        if let Some(batch) = batch {
            let count = batch.records.len();
            match upload(&client, &url, &target.token, &batch.body).await {
                Upload::Stored => {
                    tracing::trace!(count, "decision batch stored");
                    failures = 0;
                    outbox.sent();
                }
                Upload::Rejected(why) => {
                    tracing::warn!(count, "identity rejected a decision batch: {why}");
                    outbox.sent();
                }
                Upload::Retry(why) if open => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(target.backoff_base, failures);
                    tracing::debug!(count, ?wait, "decision upload failed: {why}");
                    let now = Instant::now();
                    outbox.failed(batch, now, now + wait);
                }
                Upload::Retry(why) => {
                    tracing::warn!(count, "decision upload at shutdown failed: {why}");
                }
            }
        }
        evictions.add(
            outbox.take_evicted(),
            Instant::now(),
            "identity is unreachable and the decision outbox is full",
        );
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }
}

async fn upload(client: &reqwest::Client, url: &str, token: &str, body: &[u8]) -> Upload {
    let sent = client
        .post(url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => return Upload::Retry(format!("{e}")),
    };
    let status = response.status();
    if status.is_success() {
        return Upload::Stored;
    }
    let text = response.text().await.unwrap_or_default();
    let why = format!("identity answered {status}: {}", text.trim());
    match status.as_u16() {
        400 | 413 | 422 => Upload::Rejected(why),
        _ => Upload::Retry(why),
    }
}

fn backoff(base: Duration, failures: u32) -> Duration {
    let ceiling = base
        .saturating_mul(1u32 << failures.min(16))
        .min(BACKOFF_CAP);
    rand::thread_rng().gen_range(Duration::ZERO..=ceiling)
}

#[cfg(test)]
#[path = "decision_audit_tests.rs"]
mod tests;

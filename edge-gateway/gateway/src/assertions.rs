//! Application assertions for origins: the identity-signed JWT (`kind: app_assertion`,
//! `aud` = the application) the edge puts in the stream header of every allowed HTTP request,
//! which the connector adds to the origin request (docs/origin-assertions.md).
//!
//! [`AssertionCache`] asks identity (`POST /v1/assertions` with the edge's service token) once
//! per (device, application) and keeps the token until 80 % of its lifetime has passed, so a
//! busy application costs identity one call per device every four minutes. Concurrent requests
//! for the same pair share one call. The cache is bounded ([`MAX_ENTRIES`], oldest entry out
//! first) and follows the config feed: a device's entries go when the device changes or leaves
//! the feed, everything goes on a revoked session or a new snapshot of other devices.
//!
//! **When identity fails** (unreachable, slow beyond [`FETCH_TIMEOUT`], or answering an
//! error), the request is still forwarded, without an assertion: the edge's own decision was
//! already made with the replica's facts, and an origin that relies on the assertion rejects a
//! request that has none. A token fetched earlier and not yet expired is used meanwhile, and a
//! failed pair is not asked for again for [`RETRY_AFTER_FAILURE`], so an outage of identity
//! does not add its timeout to every request. Failures are logged at WARN, at most once per
//! [`WARN_INTERVAL`]. Tokens are never logged.
//!
//! The bookkeeping ([`CacheState`]) takes explicit instants; only [`AssertionCache::assertion`]
//! reads the clock.

use crate::identity_feed::{FeedSource, Update};
use anyhow::{bail, Context as _};
use identity_claims::feed::{Applied, Change};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// The most (device, application) pairs kept: about 20 MB of tokens at 2 KiB each.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// How long one call to identity may take before the request goes on without an assertion;
/// identity answers from its local store in milliseconds.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a pair whose fetch failed is not asked for again.
pub(crate) const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// The shortest time between two WARN lines about failed fetches.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// A cached token is refreshed after this share (in percent) of its lifetime, leaving the rest
/// for the request's way to the origin and clock differences.
const REFRESH_PERCENT: u32 = 80;

/// A stale token is used while a refresh fails only until this long before its expiry.
const STALE_MARGIN: Duration = Duration::from_secs(10);

/// The longest lifetime believed, whatever identity says (it issues 300 s).
const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// Application assertions from identity, cached per (device, application).
pub(crate) struct AssertionCache {
    client: reqwest::Client,
    /// `{identity}/v1/assertions`.
    url: String,
    /// The edge's service token.
    token: String,
    state: Mutex<CacheState>,
}

impl AssertionCache {
    /// A cache asking the identity of `source` with its edge token.
    pub(crate) fn new(source: &FeedSource) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            client,
            url: format!(
                "{}/v1/assertions",
                source.identity_url.trim_end_matches('/')
            ),
            token: source.token.clone(),
            state: Mutex::new(CacheState::new(MAX_ENTRIES)),
        }
    }

    /// The assertion for `subject`'s user towards `application`, from the cache or from
    /// identity; `None` when identity cannot give one (see the module doc).
    pub(crate) async fn assertion(&self, subject: Subject, application: &str) -> Option<String> {
        let key = AssertionKey {
            subject,
            application: application.to_owned(),
        };
        let cell = {
            let mut state = self.lock();
            match state.lookup(&key, Instant::now()) {
                Lookup::Hit(jwt) => return Some(jwt),
                Lookup::Backoff(stale) => return stale,
                Lookup::Miss => state.inflight.entry(key.clone()).or_default().clone(),
            }
        };
        // One call per pair: later callers wait on the first one's cell (and take the call
        // over if the first caller's request goes away).
        let fetched = cell.get_or_init(|| self.fetch(&key)).await;
        let now = Instant::now();
        let mut state = self.lock();
        let first = state
            .inflight
            .get(&key)
            .is_some_and(|c| Arc::ptr_eq(c, &cell));
        if !first {
            return match fetched {
                Fetched::Token { jwt, .. } => Some(jwt.clone()),
                Fetched::Failed(_) => state.stale(&key, now),
            };
        }
        state.inflight.remove(&key);
        if let Fetched::Failed(error) = fetched {
            if state.warn_due(now) {
                tracing::warn!(
                    application,
                    suppressed = state.take_suppressed(),
                    "no application assertion from identity, the request goes on without one: {error}"
                );
            }
            tracing::debug!(subject = ?key.subject, application, "assertion fetch failed");
        }
        state.store(key, fetched, now)
    }

    /// Drops what the feed change `update` makes stale.
    pub(crate) fn apply_feed(&self, update: &Update<'_>) {
        let mut state = self.lock();
        match &update.applied {
            Applied::Replaced => {
                let devices: BTreeSet<String> = update
                    .replica
                    .devices()
                    .map(|d| d.device_id.clone())
                    .collect();
                state.retain_devices(&devices);
            }
            Applied::Changed(Change::DeviceUpserted { device }) => {
                state.forget_device(&device.device_id);
            }
            Applied::Changed(Change::DeviceRemoved { device_id, .. }) => {
                state.forget_device(device_id);
            }
            Applied::Changed(Change::SessionRevoked { .. }) => state.clear(),
            Applied::Changed(
                Change::PolicyApplied { .. }
                | Change::ServiceTokenUpserted { .. }
                | Change::ServiceTokenRevoked { .. }
                | Change::ConnectorUpserted { .. }
                | Change::ConnectorRemoved { .. }
                | Change::SigningKeys { .. }
                | Change::Unknown,
            )
            | Applied::Skipped
            | Applied::InSync
            | Applied::Behind { .. } => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn fetch(&self, key: &AssertionKey) -> Fetched {
        match self.request(key).await {
            Ok(answer) => Fetched::Token {
                jwt: answer.token,
                lifetime: Duration::from_secs(answer.expires_in).min(MAX_LIFETIME),
            },
            Err(e) => Fetched::Failed(format!("{e:#}")),
        }
    }

    async fn request(&self, key: &AssertionKey) -> anyhow::Result<AssertionAnswer> {
        let body = match &key.subject {
            Subject::Device(id) => serde_json::json!({
                "audience": key.application,
                "device_id": id,
            }),
            Subject::Session(sid) => serde_json::json!({
                "audience": key.application,
                "session_id": sid,
            }),
        };
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .context("failed to reach identity")?;
        let status = response.status();
        if !status.is_success() {
            bail!("identity answered {status}");
        }
        let bytes = response
            .bytes()
            .await
            .context("failed to read identity's answer")?;
        serde_json::from_slice(&bytes).context("identity's answer is not an assertion")
    }
}

/// `POST /v1/assertions`'s answer.
#[derive(Deserialize)]
struct AssertionAnswer {
    token: String,
    expires_in: u64,
}

/// Whose user an assertion speaks for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Subject {
    /// An enrolled device (tunnel traffic).
    Device(String),
    /// A clientless access session (browsers), by session id.
    Session(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct AssertionKey {
    subject: Subject,
    application: String,
}

impl AssertionKey {
    /// Sessions are kept: they end only by revocation, which clears the cache.
    fn kept_with(&self, devices: &BTreeSet<String>) -> bool {
        match &self.subject {
            Subject::Device(id) => devices.contains(id),
            Subject::Session(_) => true,
        }
    }

    fn is_device(&self, device_id: &str) -> bool {
        matches!(&self.subject, Subject::Device(id) if id == device_id)
    }
}

/// The outcome of one call to identity, shared by the requests that waited for it.
enum Fetched {
    Token { jwt: String, lifetime: Duration },
    Failed(String),
}

enum Lookup {
    /// A fresh token.
    Hit(String),
    /// A recent fetch failed: do not ask again yet; a still-valid older token, if any.
    Backoff(Option<String>),
    /// Ask identity.
    Miss,
}

/// The cache's bookkeeping, with explicit instants.
struct CacheState {
    entries: BTreeMap<AssertionKey, Entry>,
    /// Entries by insertion sequence, oldest first, for eviction.
    order: BTreeMap<u64, AssertionKey>,
    next_seq: u64,
    capacity: usize,
    inflight: BTreeMap<AssertionKey, Arc<OnceCell<Fetched>>>,
    last_warn: Option<Instant>,
    suppressed: u64,
}

struct Entry {
    seq: u64,
    token: Option<CachedToken>,
    retry_at: Option<Instant>,
}

struct CachedToken {
    jwt: String,
    refresh_at: Instant,
    expires_at: Instant,
}

impl CacheState {
    fn new(capacity: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            capacity,
            inflight: BTreeMap::new(),
            last_warn: None,
            suppressed: 0,
        }
    }

    fn lookup(&self, key: &AssertionKey, now: Instant) -> Lookup {
        let Some(entry) = self.entries.get(key) else {
            return Lookup::Miss;
        };
        if let Some(token) = entry.token.as_ref().filter(|t| now < t.refresh_at) {
            return Lookup::Hit(token.jwt.clone());
        }
        if entry.retry_at.is_some_and(|at| now < at) {
            return Lookup::Backoff(self.stale(key, now));
        }
        Lookup::Miss
    }

    /// A token of `key` still valid for a while, past its refresh time.
    fn stale(&self, key: &AssertionKey, now: Instant) -> Option<String> {
        self.entries
            .get(key)?
            .token
            .as_ref()
            .filter(|t| now + STALE_MARGIN < t.expires_at)
            .map(|t| t.jwt.clone())
    }

    /// Records a fetch's outcome and returns the token to use for the request.
    fn store(&mut self, key: AssertionKey, fetched: &Fetched, now: Instant) -> Option<String> {
        let previous = self.remove(&key);
        let entry = match fetched {
            Fetched::Token { jwt, lifetime } => Entry {
                seq: 0,
                token: Some(CachedToken {
                    jwt: jwt.clone(),
                    refresh_at: now + *lifetime * REFRESH_PERCENT / 100,
                    expires_at: now + *lifetime,
                }),
                retry_at: None,
            },
            Fetched::Failed(_) => Entry {
                seq: 0,
                token: previous
                    .and_then(|p| p.token)
                    .filter(|t| now + STALE_MARGIN < t.expires_at),
                retry_at: Some(now + RETRY_AFTER_FAILURE),
            },
        };
        let usable = match fetched {
            Fetched::Token { jwt, .. } => Some(jwt.clone()),
            Fetched::Failed(_) => entry.token.as_ref().map(|t| t.jwt.clone()),
        };
        self.insert(key, entry);
        usable
    }

    fn insert(&mut self, key: AssertionKey, mut entry: Entry) {
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        entry.seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(entry.seq, key.clone());
        self.entries.insert(key, entry);
    }

    fn remove(&mut self, key: &AssertionKey) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.order.remove(&entry.seq);
        Some(entry)
    }

    /// Keeps only the entries of `devices`.
    fn retain_devices(&mut self, devices: &BTreeSet<String>) {
        self.entries.retain(|k, _| k.kept_with(devices));
        self.order.retain(|_, k| k.kept_with(devices));
    }

    fn forget_device(&mut self, device_id: &str) {
        self.entries.retain(|k, _| !k.is_device(device_id));
        self.order.retain(|_, k| !k.is_device(device_id));
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// Whether a WARN line may be written now; counts the ones held back otherwise.
    fn warn_due(&mut self, now: Instant) -> bool {
        let due = self
            .last_warn
            .is_none_or(|at| now.saturating_duration_since(at) >= WARN_INTERVAL);
        if due {
            self.last_warn = Some(now);
        } else {
            self.suppressed += 1;
        }
        due
    }

    fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn key(device: &str, app: &str) -> AssertionKey {
        AssertionKey {
            subject: Subject::Device(device.into()),
            application: app.into(),
        }
    }

    fn token(jwt: &str) -> Fetched {
        Fetched::Token {
            jwt: jwt.into(),
            lifetime: Duration::from_secs(300),
        }
    }

    fn hit(state: &CacheState, k: &AssertionKey, now: Instant) -> Option<String> {
        match state.lookup(k, now) {
            Lookup::Hit(jwt) => Some(jwt),
            Lookup::Backoff(_) | Lookup::Miss => None,
        }
    }

    #[test]
    fn a_token_is_served_until_80_percent_of_its_lifetime() {
        let t0 = Instant::now();
        let mut state = CacheState::new(10);
        let k = key("d1", "wiki");
        assert!(matches!(state.lookup(&k, t0), Lookup::Miss));
        assert_eq!(
            state.store(k.clone(), &token("jwt1"), t0).as_deref(),
            Some("jwt1")
        );
        assert_eq!(
            hit(&state, &k, t0 + Duration::from_secs(239)).as_deref(),
            Some("jwt1")
        );
        assert!(matches!(
            state.lookup(&k, t0 + Duration::from_secs(240)),
            Lookup::Miss
        ));
        assert!(hit(&state, &key("d1", "other"), t0).is_none());
    }

    #[test]
    fn a_failed_refresh_serves_the_old_token_until_near_expiry_and_backs_off() {
        let t0 = Instant::now();
        let mut state = CacheState::new(10);
        let k = key("d1", "wiki");
        state.store(k.clone(), &token("jwt1"), t0);
        let t1 = t0 + Duration::from_secs(250);
        let failed = Fetched::Failed("down".into());
        assert_eq!(state.store(k.clone(), &failed, t1).as_deref(), Some("jwt1"));
        assert!(matches!(
            state.lookup(&k, t1 + Duration::from_secs(1)),
            Lookup::Backoff(Some(_))
        ));
        assert!(matches!(
            state.lookup(&k, t1 + RETRY_AFTER_FAILURE),
            Lookup::Miss
        ));
        // Too close to the old token's expiry: nothing.
        let t2 = t0 + Duration::from_secs(295);
        assert_eq!(state.store(k.clone(), &failed, t2), None);
        assert!(matches!(state.lookup(&k, t2), Lookup::Backoff(None)));
    }

    #[test]
    fn the_oldest_entry_goes_when_the_cache_is_full() {
        let t0 = Instant::now();
        let mut state = CacheState::new(2);
        state.store(key("d1", "a"), &token("1"), t0);
        state.store(key("d2", "a"), &token("2"), t0);
        // Refreshing d1 makes it the newest.
        state.store(key("d1", "a"), &token("1b"), t0);
        state.store(key("d3", "a"), &token("3"), t0);
        assert_eq!(state.entries.len(), 2);
        assert!(hit(&state, &key("d2", "a"), t0).is_none());
        assert_eq!(hit(&state, &key("d1", "a"), t0).as_deref(), Some("1b"));
        assert!(hit(&state, &key("d3", "a"), t0).is_some());
        assert_eq!(state.order.len(), 2);
    }

    #[test]
    fn devices_that_leave_the_feed_lose_their_entries() {
        let t0 = Instant::now();
        let mut state = CacheState::new(10);
        for (d, a) in [("d1", "a"), ("d1", "b"), ("d2", "a"), ("d3", "a")] {
            state.store(key(d, a), &token("t"), t0);
        }
        state.retain_devices(&BTreeSet::from(["d1".to_owned(), "d3".to_owned()]));
        assert!(hit(&state, &key("d2", "a"), t0).is_none());
        assert!(hit(&state, &key("d1", "b"), t0).is_some());
        state.forget_device("d1");
        assert_eq!(state.entries.len(), 1);
        assert_eq!(state.order.len(), 1);
    }

    #[test]
    fn warnings_are_rate_limited_and_count_the_held_back_ones() {
        let t0 = Instant::now();
        let mut state = CacheState::new(1);
        assert!(state.warn_due(t0));
        assert!(!state.warn_due(t0 + Duration::from_secs(1)));
        assert!(!state.warn_due(t0 + Duration::from_secs(2)));
        assert!(state.warn_due(t0 + WARN_INTERVAL));
        assert_eq!(state.take_suppressed(), 2);
    }

    /// A fake identity answering every `POST /v1/assertions` after `delay`; counts calls and
    /// checks the bearer token.
    async fn fake_identity(status: u16, delay: Duration) -> (FeedSource, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        tokio::spawn(async move {
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = tcp.read(&mut buf).await.unwrap();
                    let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                    assert!(head.starts_with("post /v1/assertions "), "{head}");
                    assert!(head.contains("authorization: bearer ghst_edge"), "{head}");
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    let body = r#"{"token":"eyJ.fake.jwt","expires_in":300}"#;
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(answer.as_bytes()).await;
                });
            }
        });
        let source = FeedSource {
            identity_url: format!("http://{addr}/"),
            token: "ghst_edge".into(),
            cache: std::path::PathBuf::from("/nonexistent"),
        };
        (source, calls)
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_call_and_later_ones_hit_the_cache() {
        let (source, calls) = fake_identity(200, Duration::from_millis(100)).await;
        let cache = Arc::new(AssertionCache::new(&source));
        let waiting: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    cache
                        .assertion(Subject::Device("dev_1".into()), "wiki")
                        .await
                })
            })
            .collect();
        for task in waiting {
            assert_eq!(task.await.unwrap().as_deref(), Some("eyJ.fake.jwt"));
        }
        assert_eq!(
            cache
                .assertion(Subject::Device("dev_1".into()), "wiki")
                .await
                .as_deref(),
            Some("eyJ.fake.jwt")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(cache
            .assertion(Subject::Device("dev_2".into()), "wiki")
            .await
            .is_some());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_identity_error_means_no_assertion_and_no_immediate_retry() {
        let (source, calls) = fake_identity(404, Duration::ZERO).await;
        let cache = AssertionCache::new(&source);
        assert_eq!(
            cache
                .assertion(Subject::Device("dev_gone".into()), "wiki")
                .await,
            None
        );
        assert_eq!(
            cache
                .assertion(Subject::Device("dev_gone".into()), "wiki")
                .await,
            None
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}

//! Follows identity's config feed (`GET /v1/feed?since=N`, NDJSON) and keeps a replica of it,
//! cached on disk so the edge keeps enforcing its last copy while identity is unreachable.
//!
//! The replica logic (snapshot, consecutive deltas, gaps) is the pure
//! [`identity_claims::feed::FeedReplica`]; this module is its IO driver: one HTTP stream at a
//! time, resumed from the last applied revision, re-dialled with full-jitter exponential backoff.

use anyhow::{bail, Context as _};
use identity_claims::feed::{Applied, FeedMessage, FeedReplica};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the feed comes from and where its copy is kept.
#[derive(Clone)]
pub(crate) struct FeedSource {
    /// Identity's base URL, e.g. `http://127.0.0.1:8080`.
    pub(crate) identity_url: String,
    /// The edge's service token (`ghst_…`), sent as a bearer token.
    pub(crate) token: String,
    /// The cache file (JSON); written atomically after every applied batch.
    pub(crate) cache: PathBuf,
}

/// One applied feed message, as reported to the caller.
pub(crate) struct Update<'a> {
    pub(crate) replica: &'a FeedReplica,
    pub(crate) applied: Applied,
}

/// Reconnect backoff: full jitter over an exponential ceiling (AWS architecture blog, "Exponential
/// Backoff And Jitter"), from 250 ms up to 8 s, so a restarted identity is not hit by every edge
/// at once yet a short outage costs well under a second.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(8);
/// A server sends a heartbeat every 15 s; three missed ones mean the stream is dead.
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// One NDJSON line may not exceed this (a snapshot with many devices is one line).
const MAX_LINE: usize = 64 * 1024 * 1024;
/// Version of the cache file's layout (STYLE.md: persisted state carries a version).
const CACHE_VERSION: u32 = 1;

/// Loads the cached replica, or an empty one when there is no cache.
///
/// # Errors
/// A cache file that exists but cannot be read or parsed (it is never silently discarded).
pub(crate) fn load_cache(path: &Path) -> anyhow::Result<FeedReplica> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FeedReplica::default()),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    };
    let cache: CacheFile = serde_json::from_slice(&bytes)
        .with_context(|| format!("failed to parse the feed cache {}", path.display()))?;
    if cache.version != CACHE_VERSION {
        bail!(
            "feed cache {} has version {}, this edge reads version {CACHE_VERSION}",
            path.display(),
            cache.version
        );
    }
    let mut replica = FeedReplica::new();
    replica
        .apply(cache.snapshot)
        .with_context(|| format!("feed cache {} holds no snapshot", path.display()))?;
    Ok(replica)
}

/// A short name for what a message did, for logs and the `feed` subcommand.
pub(crate) fn applied_kind(applied: &Applied) -> &'static str {
    match applied {
        Applied::Replaced => "snapshot",
        Applied::Changed(_) => "delta",
        Applied::Skipped => "skipped",
        Applied::InSync => "heartbeat",
        Applied::Behind { .. } => "behind",
    }
}

/// Follows the feed forever, calling `on_update` after each applied message.
///
/// Never returns an error: connection failures, bad lines and gaps are logged and lead to a
/// reconnect from the last applied revision.
pub(crate) async fn follow(
    source: FeedSource,
    mut replica: FeedReplica,
    mut on_update: impl FnMut(Update<'_>),
) -> ! {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let mut failures: u32 = 0;
    loop {
        match stream_once(&client, &source, &mut replica, &mut on_update).await {
            Ok(()) => {
                tracing::info!(revision = replica.revision().0, "identity closed the feed");
                failures = 0;
            }
            Err(e) => {
                tracing::warn!(revision = replica.revision().0, "identity feed: {e:#}");
                failures = failures.saturating_add(1);
            }
        }
        tokio::time::sleep(backoff(failures)).await;
    }
}

async fn stream_once(
    client: &reqwest::Client,
    source: &FeedSource,
    replica: &mut FeedReplica,
    on_update: &mut impl FnMut(Update<'_>),
) -> anyhow::Result<()> {
    let url = format!(
        "{}/v1/feed?since={}",
        source.identity_url.trim_end_matches('/'),
        replica.revision()
    );
    let mut response = client
        .get(&url)
        .bearer_auth(&source.token)
        .send()
        .await
        .context("failed to connect to identity")?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!("identity answered {status}: {}", body.trim());
    }
    tracing::info!(revision = replica.revision().0, "identity feed connected");
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let chunk = tokio::time::timeout(STREAM_IDLE_TIMEOUT, response.chunk())
            .await
            .context("no heartbeat from identity")?
            .context("the feed stream broke")?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        buffer.extend_from_slice(&chunk);
        let mut changed = false;
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let message = FeedMessage::from_json_line(line).context("bad feed line")?;
            let applied = replica.apply(message).context("feed out of order")?;
            if let Applied::Behind { local, remote } = applied {
                bail!("identity is at revision {remote}, this edge at {local}: resubscribing");
            }
            changed |= matches!(applied, Applied::Replaced | Applied::Changed(_));
            on_update(Update { replica, applied });
        }
        if buffer.len() > MAX_LINE {
            bail!("a feed line exceeds {MAX_LINE} bytes");
        }
        if changed {
            if let Err(e) = store_cache(&source.cache, replica).await {
                tracing::warn!("{e:#}");
            }
        }
    }
}

async fn store_cache(path: &Path, replica: &FeedReplica) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(&CacheFileRef {
        version: CACHE_VERSION,
        snapshot: &replica.to_snapshot(),
    })
    .context("failed to encode the feed cache")?;
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, &bytes)
        .await
        .with_context(|| format!("failed to write {}", tmp.display()))?;
    tokio::fs::rename(&tmp, path)
        .await
        .with_context(|| format!("failed to replace {}", path.display()))
}

fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return BACKOFF_BASE;
    }
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << failures.min(16))
        .min(BACKOFF_CAP);
    rand::thread_rng().gen_range(Duration::ZERO..=ceiling)
}

#[derive(Deserialize)]
struct CacheFile {
    version: u32,
    snapshot: FeedMessage,
}

#[derive(Serialize)]
struct CacheFileRef<'a> {
    version: u32,
    snapshot: &'a FeedMessage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_the_cap() {
        for failures in 0..40 {
            assert!(backoff(failures) <= BACKOFF_CAP);
        }
    }

    #[test]
    fn a_missing_cache_is_an_empty_replica_and_a_corrupt_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("gh-feed-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("feed.json");
        let _ = std::fs::remove_file(&path);
        assert_eq!(load_cache(&path).expect("empty").revision().0, 0);
        std::fs::write(&path, b"{not json").expect("write");
        let err = format!("{:#}", load_cache(&path).expect_err("corrupt cache"));
        assert!(err.contains("failed to parse the feed cache"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}

//! The configuration while the connector runs: loaded once at start, then reloaded when the file
//! changes (its modification time, size or inode, polled) or on SIGHUP. A valid new file replaces
//! the whole [`Config`] at once, so a request that already looked up its rule finishes on the old
//! rules and the next one sees the new ones; an invalid file is logged and ignored.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use connector_config::{Config, LoadError};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// How often the file's metadata is compared: cheap enough to poll, quick enough for an operator
/// watching `ingress rule` and the logs; no inotify dependency.
pub const CONFIG_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// A reader's view of the current configuration. Clone one per task.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    current: watch::Receiver<Arc<Config>>,
}

impl LiveConfig {
    /// The configuration in force. Keep the `Arc` for the life of one request so it finishes on
    /// the rules it started with.
    pub fn current(&self) -> Arc<Config> {
        Arc::clone(&self.current.borrow())
    }

    /// Waits until a new configuration is applied (for example to announce new routes) and
    /// returns it; `None` once the connector is stopping and no more reloads will come.
    pub async fn changed(&mut self) -> Option<Arc<Config>> {
        self.current.changed().await.ok()?;
        Some(Arc::clone(&self.current.borrow_and_update()))
    }
}

/// The writer side: owns the file path and replaces the configuration.
#[derive(Debug)]
pub struct ConfigSource {
    path: PathBuf,
    stamp: Option<FileStamp>,
    current: watch::Sender<Arc<Config>>,
}

/// What one reload did.
#[derive(Debug)]
pub enum Reload {
    /// The file was valid and replaced the configuration.
    Applied,
    /// The file was rejected; the previous configuration stays.
    Rejected(LoadError),
}

impl ConfigSource {
    /// Loads and validates `path`, logging the notices of cloudflared keys that have no effect.
    ///
    /// # Errors
    /// The file cannot be read or is invalid.
    pub fn load(path: &Path) -> anyhow::Result<(Self, LiveConfig)> {
        let stamp = FileStamp::of(path);
        let config = Config::load(path).context("failed to load the configuration")?;
        log_notices(&config);
        let (current, receiver) = watch::channel(Arc::new(config));
        let source = Self {
            path: path.to_owned(),
            stamp,
            current,
        };
        Ok((source, LiveConfig { current: receiver }))
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Config> {
        Arc::clone(&self.current.borrow())
    }

    /// Another reader.
    pub fn subscribe(&self) -> LiveConfig {
        LiveConfig {
            current: self.current.subscribe(),
        }
    }

    /// Reloads if the file's metadata changed since the last load; `None` if it did not (or the
    /// file is missing for a moment, as while an editor replaces it).
    pub fn poll(&mut self, metrics: &Metrics) -> Option<Reload> {
        let stamp = FileStamp::of(&self.path)?;
        if self.stamp.as_ref() == Some(&stamp) {
            return None;
        }
        tracing::debug!(path = %self.path.display(), "configuration file changed");
        Some(self.reload(metrics))
    }

    /// Reads and validates the file now (SIGHUP, or a change seen by [`Self::poll`]).
    pub fn reload(&mut self, metrics: &Metrics) -> Reload {
        self.stamp = FileStamp::of(&self.path);
        // The file is small and local: reading it inline does not stall the loop noticeably.
        match Config::load(&self.path) {
            Ok(config) => {
                log_notices(&config);
                warn_about_restart_keys(&self.current(), &config);
                let rules = config.ingress.rule_count();
                self.current.send_replace(Arc::new(config));
                metrics.record_config_reload(true);
                tracing::info!(rules, "configuration reloaded");
                Reload::Applied
            }
            Err(error) => {
                metrics.record_config_reload(false);
                tracing::error!(
                    "{}; keeping the previous configuration",
                    crate::error_chain(&error)
                );
                Reload::Rejected(error)
            }
        }
    }
}

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
        })
    }
}

fn log_notices(config: &Config) {
    for notice in &config.notices {
        tracing::warn!("{notice}");
    }
}

/// Keys the running connector reads only at start.
fn warn_about_restart_keys(old: &Config, new: &Config) {
    let changed = [
        ("tunnel", old.tunnel != new.tunnel),
        (
            "credentials-file",
            old.credentials_file != new.credentials_file,
        ),
        ("edges", old.edges != new.edges),
        ("ha-connections", old.ha_connections != new.ha_connections),
        ("metrics", old.metrics != new.metrics),
        ("edge-ca-file", old.edge_ca_file != new.edge_ca_file),
    ];
    for (key, _) in changed.iter().filter(|(_, changed)| *changed) {
        tracing::warn!("`{key}` changed; it takes effect after a restart");
    }
}

//! `AppState`: what every handler shares.

use crate::config::Config;
use crate::keys::KeyRing;
use crate::local_idp::LocalIdp;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Shared server state; cheap to clone (one `Arc`).
#[derive(Clone)]
pub(crate) struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    /// Identity's own signing keys (in memory until `identity-store` persists them).
    keys: Mutex<KeyRing>,
    /// The built-in provider, when configured.
    local_idp: Option<LocalIdp>,
    /// The latest committed store revision. Every handler that commits a store mutation calls
    /// [`AppState::notify`] afterwards; the feed holds a receiver and pushes on change.
    changes: watch::Sender<u64>,
}

impl AppState {
    /// # Errors
    /// An invalid local users file or a key that fails to encode.
    pub(crate) fn new(config: Config, revision: u64, now: u64) -> anyhow::Result<Self> {
        let (changes, _) = watch::channel(revision);
        let local_idp = match config.local_provider() {
            Some(p) => Some(LocalIdp::new(p, config.public_url.as_str(), now)?),
            None => None,
        };
        let overlap = config.tokens.device.max(config.tokens.session).as_secs();
        let keys = Mutex::new(KeyRing::new(
            crate::flows::random_seed(),
            config.key_rotation.as_secs(),
            overlap,
            now,
        )?);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                keys,
                local_idp,
                changes,
            }),
        })
    }

    pub(crate) fn local_idp(&self) -> Option<&LocalIdp> {
        self.inner.local_idp.as_ref()
    }

    /// The published JWKS, rotating first when the schedule says so.
    pub(crate) fn jwks(&self, now: u64) -> serde_json::Value {
        match self.inner.keys.lock() {
            Ok(mut keys) => {
                if keys.rotation_due(now) {
                    if let Err(e) = keys.rotate(crate::flows::random_seed(), now) {
                        tracing::error!("failed to rotate the signing key: {e}");
                    }
                }
                keys.jwks()
            }
            Err(_) => serde_json::json!({ "keys": [] }),
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Signals subscribers that the store committed up to `revision`.
    pub(crate) fn notify(&self, revision: u64) {
        self.inner.changes.send_if_modified(|current| {
            let newer = revision > *current;
            if newer {
                *current = revision;
            }
            newer
        });
    }

    /// A receiver that wakes after each [`AppState::notify`].
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }
}

//! `AppState`: what every handler shares.

use crate::config::Config;
use crate::error::ApiError;
use crate::keys::{self, Keys};
use crate::local_idp::LocalIdp;
use identity_claims::{UnixTime, UserSession};
use identity_core::authcode::AuthCodes;
use identity_core::device::{DeviceFlow, DeviceFlowConfig};
use identity_core::login::LoginAttempts;
use identity_core::rotation::RotationPolicy;
use identity_store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// Shared server state; cheap to clone (one `Arc`).
#[derive(Clone)]
pub(crate) struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<Store>,
    /// Identity's signing keys; replaced by the rotation task.
    keys: RwLock<Keys>,
    rotation: RotationPolicy,
    /// Login attempts, device grants and authorization codes in flight (memory only: a restart
    /// asks users to start a login again, which is the safe failure).
    flows: Mutex<Flows>,
    /// The built-in provider, when configured.
    local_idp: Option<LocalIdp>,
    /// Outgoing HTTP (discovery, JWKS, code exchange at upstream providers).
    http: reqwest::Client,
    /// Discovered provider metadata, by provider id.
    providers: tokio::sync::Mutex<crate::rp::Discovered>,
    /// When the next retention pass over stored decisions is due (unix ms); taken by the
    /// first `POST /v1/decisions` after it.
    next_decision_prune_ms: AtomicU64,
    /// The latest committed store revision. Every handler that commits a store mutation calls
    /// [`AppState::notify`] afterwards; feed streams wait on a receiver.
    changes: watch::Sender<u64>,
    /// The application hostnames of the active policy, by policy version: parsed once per
    /// version, not per `/v1/access/authorize`.
    application_hosts: Mutex<Option<(u64, Arc<[edge_policy::HostPattern]>)>>,
}

/// What an approved device grant or an issued authorization code hands to the token endpoint:
/// the browser session that approved it.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) browser: UserSession,
}

pub(crate) struct Flows {
    pub(crate) login: LoginAttempts,
    pub(crate) device: DeviceFlow<Grant>,
    pub(crate) codes: AuthCodes<Grant>,
}

impl AppState {
    /// Opens nothing itself: `store` is open and migrated.
    ///
    /// # Errors
    /// An invalid local users file, store failures while preparing signing keys.
    pub(crate) fn new(config: Config, store: Store, now: u64) -> anyhow::Result<Self> {
        let revision = store.current_revision()?.0;
        let (changes, _) = watch::channel(revision);
        let local_idp = match config.local_provider() {
            Some(p) => Some(LocalIdp::new(p, config.public_url.as_str())?),
            None => None,
        };
        let rotation = RotationPolicy {
            rotate_after: config.key_rotation.as_secs().max(60),
            token_lifetime: config.longest_token_lifetime().as_secs(),
        };
        let (keys, _) = keys::reconcile(&store, rotation, now)?;
        let flows = Flows {
            login: LoginAttempts::default(),
            device: DeviceFlow::new(DeviceFlowConfig {
                expires_in: config.tokens.device_code.as_secs(),
                interval: config.tokens.device_poll_interval.as_secs().max(1),
                ..DeviceFlowConfig::default()
            }),
            codes: AuthCodes::default(),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let state = Self {
            inner: Arc::new(Inner {
                config,
                store: Arc::new(store),
                keys: RwLock::new(keys),
                rotation,
                flows: Mutex::new(flows),
                local_idp,
                http,
                providers: tokio::sync::Mutex::new(crate::rp::Discovered::default()),
                changes,
                next_decision_prune_ms: AtomicU64::new(0),
                application_hosts: Mutex::new(None),
            }),
        };
        let revision = state.inner.store.current_revision()?.0;
        state.notify(revision);
        Ok(state)
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn local_idp(&self) -> Option<&LocalIdp> {
        self.inner.local_idp.as_ref()
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn providers(&self) -> &tokio::sync::Mutex<crate::rp::Discovered> {
        &self.inner.providers
    }

    /// The in-flight flows. A poisoned lock is taken over: every flow operation leaves the maps
    /// consistent between statements.
    pub(crate) fn flows(&self) -> MutexGuard<'_, Flows> {
        self.inner
            .flows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The current signing keys.
    pub(crate) fn keys(&self) -> Keys {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `f` on the store in the blocking pool (SQLite calls block), then notifies feed
    /// subscribers of whatever revision the store reached.
    ///
    /// # Errors
    /// What `f` returns; a panicked or cancelled task is an internal error.
    pub(crate) async fn db<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    {
        let store = Arc::clone(&self.inner.store);
        let (out, revision) = tokio::task::spawn_blocking(move || {
            let out = f(&store);
            (out, store.current_revision().map(|r| r.0))
        })
        .await
        .map_err(|e| ApiError::internal(format!("store task failed: {e}")))?;
        if let Ok(revision) = revision {
            self.notify(revision);
        }
        out
    }

    /// The cached application hostnames if they belong to policy `version`.
    pub(crate) fn application_hosts(
        &self,
        version: u64,
    ) -> Option<Arc<[edge_policy::HostPattern]>> {
        let slot = self
            .inner
            .application_hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.as_ref()
            .filter(|(v, _)| *v == version)
            .map(|(_, hosts)| Arc::clone(hosts))
    }

    /// Caches the application hostnames of policy `version`.
    pub(crate) fn cache_application_hosts(
        &self,
        version: u64,
        hosts: Arc<[edge_policy::HostPattern]>,
    ) {
        *self
            .inner
            .application_hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((version, hosts));
    }

    /// Whether the caller should prune old decisions now: true at most once per `interval_ms`
    /// across all callers.
    pub(crate) fn take_decision_prune(&self, now_ms: u64, interval_ms: u64) -> bool {
        let due = &self.inner.next_decision_prune_ms;
        let next = due.load(Ordering::Relaxed);
        now_ms >= next
            && due
                .compare_exchange(
                    next,
                    now_ms.saturating_add(interval_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
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

    /// Reconciles the signing keys with the rotation policy now; returns when to check next.
    async fn rotate_keys(&self) -> Result<u64, ApiError> {
        let rotation = self.inner.rotation;
        let now = crate::flows::unix_now();
        let (keys, changed) = self
            .db(move |store| Ok(keys::reconcile(store, rotation, now)?))
            .await?;
        if changed {
            tracing::info!(kid = keys.signing.kid(), "signing keys rotated");
        }
        let next = keys.next_check;
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(next)
    }

    /// Rotates keys on schedule and purges expired flow entries, until the process ends.
    pub(crate) fn spawn_maintenance(&self) {
        let state = self.clone();
        tokio::spawn(async move {
            loop {
                let next = match state.rotate_keys().await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::error!("signing key rotation failed: {e}");
                        0
                    }
                };
                {
                    let now = UnixTime(crate::flows::unix_now());
                    let mut flows = state.flows();
                    flows.login.purge(now);
                    flows.device.purge(now);
                    flows.codes.purge(now);
                }
                let wait = next.saturating_sub(crate::flows::unix_now()).clamp(1, 60);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
        });
    }
}

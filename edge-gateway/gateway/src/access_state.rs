//! The edge's current [`Access`] (devices and policy), shared by every flow and request task
//! and replaced whole when identity's feed changes.
//!
//! The policy is identity's (the feed's `policy`) when there is one, else the edge's own
//! `[access] policy_file`, else none: everything is denied. A feed policy is compiled once per
//! version; one this edge cannot load (a newer language version, say) denies everything until
//! a loadable one arrives, rather than falling back to something the admin replaced.

use anyhow::Context as _;
use edge_core::access::Access;
use edge_policy::{Format, PolicySet};
use identity_claims::feed::{FeedReplica, PolicyFormat};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

pub(crate) struct SharedAccess {
    current: RwLock<Arc<Access>>,
    file_policy: Option<Arc<PolicySet>>,
    /// The last feed policy version compiled, and its result.
    compiled: Mutex<Option<(u64, Option<Arc<PolicySet>>)>>,
}

impl SharedAccess {
    /// Starts with the file's policy (or none) and no devices.
    pub(crate) fn new(file_policy: Option<PolicySet>) -> Self {
        let file_policy = file_policy.map(Arc::new);
        let access = file_policy
            .clone()
            .map_or_else(Access::deny_all, Access::with_policy);
        Self {
            current: RwLock::new(Arc::new(access)),
            file_policy,
            compiled: Mutex::new(None),
        }
    }

    /// What decisions use now.
    pub(crate) fn current(&self) -> Arc<Access> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Rebuilds from the replica: its devices, and its policy (compiled if its version is new).
    pub(crate) fn update_from_replica(&self, replica: &FeedReplica) {
        let policy = match replica.policy() {
            None => self.file_policy.clone(),
            Some(feed_policy) => {
                let mut compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
                match &*compiled {
                    Some((version, set)) if *version == feed_policy.version => set.clone(),
                    _ => {
                        let set = compile_feed_policy(feed_policy);
                        *compiled = Some((feed_policy.version, set.clone()));
                        set
                    }
                }
            }
        };
        let access = Arc::new(Access::from_replica(replica, policy));
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = access;
    }
}

fn compile_feed_policy(policy: &identity_claims::feed::Policy) -> Option<Arc<PolicySet>> {
    let format = match policy.format {
        PolicyFormat::Toml => Format::Toml,
        PolicyFormat::Yaml => Format::Yaml,
    };
    let name = format!("identity policy v{}", policy.version);
    match edge_policy::load(&policy.source, format, &name) {
        Ok(set) => {
            tracing::info!(
                version = policy.version,
                "access policy from identity loaded"
            );
            Some(Arc::new(set))
        }
        Err(e) => {
            tracing::error!(
                version = policy.version,
                "identity's access policy does not load here; denying every request: {e}"
            );
            None
        }
    }
}

/// Reads an edge-policy file; the format follows the extension (`.yaml`/`.yml`, else TOML).
///
/// # Errors
/// Unreadable file, or the policy does not parse or one of its tests fails.
pub(crate) fn load_policy_file(path: &Path) -> anyhow::Result<PolicySet> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => Format::Yaml,
        _ => Format::Toml,
    };
    let name = path.display().to_string();
    edge_policy::load(&text, format, &name).map_err(|e| anyhow::anyhow!("{e}"))
}

//! The flows this process terminates (connector TCP and UDP flows, application front requests
//! and TLS flows), so that a change of policy or identity can close the ones no longer allowed.
//!
//! Each flow task registers what it was allowed to reach and from where, and holds the
//! returned [`LiveFlow`] while it runs, selecting on [`LiveFlow::closed`]. After every access
//! update the driver calls [`LiveFlows::recheck`], which decides each entry again and cancels
//! those now denied: the task then resets its client connection at once.

use edge_policy::{Protocol, Target};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio_util::sync::CancellationToken;

/// What a live flow reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FlowTarget {
    Ip {
        addr: IpAddr,
        port: u16,
        protocol: Protocol,
    },
    /// An HTTP request (path from `/`) or a TLS flow (path `/`).
    Http { host: String, path: String },
}

impl FlowTarget {
    pub(crate) fn as_policy_target(&self) -> Target<'_> {
        match self {
            Self::Ip {
                addr,
                port,
                protocol,
            } => Target::Ip {
                addr: *addr,
                port: *port,
                protocol: *protocol,
            },
            Self::Http { host, path } => Target::Http { host, path },
        }
    }
}

struct Entry {
    source: IpAddr,
    target: FlowTarget,
    cancel: CancellationToken,
}

#[derive(Default)]
pub(crate) struct LiveFlows {
    next: AtomicU64,
    entries: Mutex<BTreeMap<u64, Entry>>,
}

/// A registered flow; unregistered when dropped.
pub(crate) struct LiveFlow {
    id: u64,
    flows: Arc<LiveFlows>,
    cancel: CancellationToken,
}

impl LiveFlows {
    /// Registers a flow from `source` to `target`.
    pub(crate) fn register(self: &Arc<Self>, source: IpAddr, target: FlowTarget) -> LiveFlow {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        self.entries().insert(
            id,
            Entry {
                source,
                target,
                cancel: cancel.clone(),
            },
        );
        LiveFlow {
            id,
            flows: self.clone(),
            cancel,
        }
    }

    /// Decides every live flow again with `allowed` (the same decision a new flow gets);
    /// cancels and forgets the denied ones. Returns how many were closed.
    pub(crate) fn recheck(&self, allowed: impl Fn(IpAddr, &FlowTarget) -> bool) -> usize {
        let mut entries = self.entries();
        let before = entries.len();
        entries.retain(|_, entry| {
            let allowed = allowed(entry.source, &entry.target);
            if !allowed {
                entry.cancel.cancel();
            }
            allowed
        });
        before - entries.len()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries().len()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LiveFlow {
    /// Completes when the flow must be closed (no longer allowed).
    pub(crate) async fn closed(&self) {
        self.cancel.cancelled().await;
    }
}

impl Drop for LiveFlow {
    fn drop(&mut self) {
        self.flows.entries().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_core::access::Access;
    use edge_policy::UnixTime;

    fn policy(host: &str) -> Access {
        let text = format!(
            "version = 1\n[[applications]]\nname = \"a\"\ndestinations = [{{ host = \"{host}\" }}]\n\
             [[applications.policies]]\nname = \"p\"\naction = \"bypass\"\ninclude = [{{ everyone = true }}]\n"
        );
        Access::with_policy(Arc::new(
            edge_policy::load(&text, edge_policy::Format::Toml, "t.toml").expect("policy"),
        ))
    }

    #[tokio::test]
    async fn denied_flows_are_cancelled_and_forgotten_allowed_ones_stay() {
        let flows = Arc::new(LiveFlows::default());
        let source: IpAddr = "100.64.0.2".parse().expect("ip");
        let target = |host: &str| FlowTarget::Http {
            host: host.to_owned(),
            path: "/".to_owned(),
        };
        let a = flows.register(source, target("a.test"));
        let b = flows.register(source, target("b.test"));
        let access = policy("a.test");
        let decide = |source: IpAddr, target: &FlowTarget| {
            access
                .decide(source, target.as_policy_target(), UnixTime(0))
                .allowed
        };
        assert_eq!(flows.recheck(decide), 1);
        assert_eq!(flows.len(), 1);
        tokio::time::timeout(std::time::Duration::from_secs(1), b.closed())
            .await
            .expect("b is closed");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), a.closed())
                .await
                .is_err(),
            "a stays open"
        );
        drop(a);
        assert_eq!(flows.len(), 0, "dropping unregisters");
        drop(b);
    }
}

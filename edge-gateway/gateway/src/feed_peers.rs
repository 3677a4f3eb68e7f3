//! WireGuard peers from identity's feed: every enrolled device's key becomes a peer with its
//! tunnel addresses; a device that leaves the feed (revoked, its user disabled) loses its peer,
//! its session and its flows.
//!
//! The feed task computes the wanted set ([`wanted_peers`]) and hands it over
//! ([`FeedPeers::publish`]); the packet loop takes it on its next wake and applies the
//! difference to the edge core ([`FeedPeers::apply`]). Peers from the edge's own `[[peers]]`
//! are never touched.

use edge_core::{Edge, EdgePeer};
use identity_claims::feed::FeedReplica;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use wg::keys::PublicKey;
use wg::PeerConfig;

/// How long removals wait after a change is published, so that the resets of flows the
/// change closed (written by this process's sockets) still reach the device first.
const RESET_GRACE: Duration = Duration::from_millis(100);

/// The hand-over between the feed task and the packet loop.
#[derive(Default)]
pub(crate) struct FeedPeers {
    wanted: Mutex<Option<BTreeMap<PublicKey, EdgePeer>>>,
    /// The keys of the last published set, to tell whether a publication removes a peer.
    published: Mutex<BTreeSet<PublicKey>>,
    wake: Arc<Notify>,
}

/// What one [`FeedPeers::apply`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) added: usize,
    pub(crate) removed: usize,
    pub(crate) failed: usize,
}

impl FeedPeers {
    /// The signal the packet loop waits on.
    pub(crate) fn wake_signal(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Replaces the wanted set and wakes the loop: at once, or after [`RESET_GRACE`] when a
    /// peer goes away.
    pub(crate) fn publish(&self, wanted: BTreeMap<PublicKey, EdgePeer>) {
        let keys: BTreeSet<PublicKey> = wanted.keys().copied().collect();
        let removes = {
            let mut published = self
                .published
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let removes = !published.is_subset(&keys);
            *published = keys;
            removes
        };
        *self.wanted.lock().unwrap_or_else(PoisonError::into_inner) = Some(wanted);
        if !removes {
            self.wake.notify_one();
            return;
        }
        let wake = self.wake.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RESET_GRACE).await;
            wake.notify_one();
        });
    }

    /// Applies the last published set to `edge`: adds new or changed peers, removes the ones
    /// no longer wanted. `managed` is what earlier calls added; `fixed` the file's peers.
    pub(crate) fn apply(
        &self,
        edge: &mut Edge,
        managed: &mut BTreeMap<PublicKey, EdgePeer>,
        fixed: &BTreeSet<PublicKey>,
        now: Instant,
    ) -> Option<Applied> {
        let wanted = self
            .wanted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        let mut applied = Applied::default();
        let gone: Vec<PublicKey> = managed
            .keys()
            .filter(|key| !wanted.contains_key(key))
            .copied()
            .collect();
        for key in gone {
            edge.remove_peer(&key, now);
            managed.remove(&key);
            applied.removed += 1;
        }
        for (key, peer) in wanted {
            if fixed.contains(&key) {
                continue;
            }
            let unchanged = managed
                .get(&key)
                .is_some_and(|p| p.config.allowed_ips == peer.config.allowed_ips);
            if unchanged {
                continue;
            }
            match edge.add_peer(peer.clone()) {
                Ok(()) => {
                    managed.insert(key, peer);
                    applied.added += 1;
                }
                Err(e) => {
                    tracing::warn!(peer = %peer.name, "device key not usable as a peer: {e}");
                    applied.failed += 1;
                }
            }
        }
        Some(applied)
    }
}

/// The peers the replica's devices ask for, named `device:<id>`. Keys that do not decode are
/// skipped with a warning (identity checked them at enrollment).
pub(crate) fn wanted_peers(replica: &FeedReplica) -> BTreeMap<PublicKey, EdgePeer> {
    let mut peers = BTreeMap::new();
    for device in replica.devices() {
        let Ok(public_key) = PublicKey::from_base64(&device.public_key) else {
            tracing::warn!(device = %device.device_id, "device key in the feed does not decode");
            continue;
        };
        peers.insert(
            public_key,
            EdgePeer {
                name: format!("device:{}", device.device_id),
                config: PeerConfig {
                    public_key,
                    preshared_key: None,
                    endpoint: None,
                    allowed_ips: device.addresses.clone(),
                    persistent_keepalive: None,
                },
            },
        );
    }
    peers
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_core::{EdgeConfig, FlowTimeouts, RulePolicy};
    use identity_claims::feed::{Device, DeviceUser, FeedState, Revision};
    use wg::keys::PrivateKey;
    use wg::NodeConfig;

    fn device(id: &str, seed: u8, address: &str) -> Device {
        Device {
            device_id: id.to_owned(),
            public_key: PrivateKey::from_bytes([seed; 32]).public_key().to_base64(),
            addresses: vec![address.parse().expect("net")],
            user: DeviceUser {
                user_id: "u".to_owned(),
                email: "u@test".to_owned(),
                groups: vec![],
                idp: "local".to_owned(),
            },
            posture: identity_claims::Posture::default(),
            enrolled_at: identity_claims::UnixTime(1),
            login_method: String::new(),
            auth_time: identity_claims::UnixTime(1),
        }
    }

    fn replica(devices: Vec<Device>) -> FeedReplica {
        FeedReplica::from_snapshot(
            Revision(1),
            FeedState {
                devices,
                ..FeedState::default()
            },
        )
    }

    #[tokio::test]
    async fn devices_become_peers_and_leave_with_the_feed() {
        let now = Instant::now();
        let mut edge = Edge::new(
            EdgeConfig {
                node: NodeConfig {
                    private_key: PrivateKey::from_bytes([9; 32]),
                    listen_port: 0,
                    fwmark: None,
                    handshake_load_limit: 100,
                },
                peers: vec![],
                policy: Box::new(RulePolicy::default()),
                flow_timeouts: FlowTimeouts::default(),
            },
            now,
        )
        .expect("edge");
        let peers = FeedPeers::default();
        let mut managed = BTreeMap::new();
        let fixed: BTreeSet<PublicKey> = [PrivateKey::from_bytes([3; 32]).public_key()].into();
        let a = device("a", 1, "100.64.0.2/32");
        let b = device("b", 2, "100.64.0.3/32");
        let pinned = device("pinned", 3, "100.64.0.4/32");

        assert_eq!(
            peers.apply(&mut edge, &mut managed, &fixed, now),
            None,
            "nothing published"
        );
        peers.publish(wanted_peers(&replica(vec![a.clone(), b.clone(), pinned])));
        let applied = peers
            .apply(&mut edge, &mut managed, &fixed, now)
            .expect("applied");
        assert_eq!(
            applied,
            Applied {
                added: 2,
                removed: 0,
                failed: 0
            }
        );
        let key = |d: &Device| PublicKey::from_base64(&d.public_key).expect("key");
        assert!(edge.has_peer(&key(&a)) && edge.has_peer(&key(&b)));

        // b is revoked; a is unchanged and kept as it is.
        peers.publish(wanted_peers(&replica(vec![a.clone()])));
        let applied = peers
            .apply(&mut edge, &mut managed, &fixed, now)
            .expect("applied");
        assert_eq!(
            applied,
            Applied {
                added: 0,
                removed: 1,
                failed: 0
            }
        );
        assert!(edge.has_peer(&key(&a)) && !edge.has_peer(&key(&b)));
        assert_eq!(managed.len(), 1);
    }
}

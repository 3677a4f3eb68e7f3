//! UDP flows over QUIC datagrams (RFC 9221), the same on both ends of a connection.
//!
//! The edge announces a flow with `UdpFlowOpen` on the control stream
//! ([`crate::edge::TunnelListener::open_udp_flow`]); the connector's session hands it to
//! [`crate::connector::StreamHandler::handle_udp`]. Either way each side then holds a
//! [`UdpFlow`]: [`UdpFlow::send`] puts one payload in one datagram (prefixed by the flow id,
//! [`tunnel_proto::encode_datagram`]), [`UdpFlow::recv`] yields the payloads the peer sent.
//!
//! One task per connection ([`FlowTable::spawn`]) reads `read_datagram`, decodes the flow id and
//! puts the payload in that flow's bounded queue; it also expires flows idle (nothing sent or
//! received) for [`UdpLimits::idle_timeout`]. Nothing here waits on a flow: a full queue, an
//! unknown flow id, a malformed or oversize datagram is dropped and counted in
//! [`UdpCounters`], so one slow flow never stalls the others. When the connection ends every
//! flow's `recv` returns `None`.
//!
//! A datagram can overtake the `UdpFlowOpen` that announces its flow (they travel in different
//! QUIC frames, and the control stream is read by another task). The connector's table
//! therefore holds up to [`EARLY_DATAGRAMS`] datagrams of ids above the highest it was told
//! about, for at most [`EARLY_HOLD`], and hands them to the flow when its `UdpFlowOpen` comes.
//! The edge allocates ids in increasing order, so a datagram of a lower id is known to belong
//! to a flow that is gone and is dropped at once.
//!
//! The protocol has no message that closes a flow: each side forgets a flow when it has been
//! idle for its idle timeout, or when the holder drops its [`UdpFlow`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::SendDatagramError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, trace};
use tunnel_proto::{datagram_overhead, decode_datagram, encode_datagram, FlowId};

/// Most UDP flows one connection carries at once. A flow costs a queue and, at the connector,
/// a socket; 4,096 is as many as one connection's streams (`DEFAULT_MAX_BIDI_STREAMS` × 4).
pub const DEFAULT_MAX_UDP_FLOWS: usize = 4096;

/// A flow with no datagram either way for this long is forgotten. 60 s is above the usual
/// request/response gaps of DNS, NTP or QUIC keep-alives (QUIC's default idle timeout is 30 s)
/// and below the 120 s of the Linux conntrack UDP stream timeout.
pub const UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Datagrams queued per flow before new ones are dropped: 256 × 1,200 bytes is 300 KiB, a few
/// milliseconds of a fast flow, enough to ride out a scheduling hiccup of its task.
pub const UDP_FLOW_QUEUE: usize = 256;

/// Datagrams a connector holds for flows not announced yet, over all of a connection's flows.
/// A new flow's first datagram is usually the only one that can overtake its announcement.
pub const EARLY_DATAGRAMS: usize = 64;

/// How long such a datagram is held before it is dropped as unknown: well above the one-way
/// delay between the two QUIC frames of one send.
pub const EARLY_HOLD: Duration = Duration::from_secs(1);

/// Limits of the UDP flows of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpLimits {
    /// Default [`DEFAULT_MAX_UDP_FLOWS`].
    pub max_flows: usize,
    /// Default [`UDP_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// Datagrams, default [`UDP_FLOW_QUEUE`].
    pub queue: usize,
}

impl Default for UdpLimits {
    fn default() -> Self {
        Self {
            max_flows: DEFAULT_MAX_UDP_FLOWS,
            idle_timeout: UDP_IDLE_TIMEOUT,
            queue: UDP_FLOW_QUEUE,
        }
    }
}

/// Counters of the UDP flows of every connection that shares them (a listener's, a dialer's).
#[derive(Debug, Default)]
pub struct UdpCounters {
    flows_opened: AtomicU64,
    flows_refused: AtomicU64,
    flows_expired: AtomicU64,
    datagrams_sent: AtomicU64,
    datagrams_received: AtomicU64,
    dropped_oversize: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_unknown_flow: AtomicU64,
    dropped_malformed: AtomicU64,
    dropped_send_failed: AtomicU64,
}

/// A copy of [`UdpCounters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Flows that entered a connection's table.
    pub flows_opened: u64,
    /// Flows refused: over [`UdpLimits::max_flows`], a duplicate id, a draining or closed
    /// connection.
    pub flows_refused: u64,
    /// Flows forgotten after [`UdpLimits::idle_timeout`].
    pub flows_expired: u64,
    pub datagrams_sent: u64,
    /// Datagrams queued to a flow.
    pub datagrams_received: u64,
    /// Payloads over the connection's `max_datagram_size` (never sent).
    pub dropped_oversize: u64,
    /// Datagrams for a flow whose queue was full.
    pub dropped_queue_full: u64,
    /// Datagrams for a flow id this side does not know (never opened, expired, refused).
    pub dropped_unknown_flow: u64,
    /// Datagrams too short to hold a flow id.
    pub dropped_malformed: u64,
    /// Sends the connection refused (peer without datagrams, connection lost).
    pub dropped_send_failed: u64,
}

impl UdpCounters {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> UdpStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        UdpStats {
            flows_opened: get(&self.flows_opened),
            flows_refused: get(&self.flows_refused),
            flows_expired: get(&self.flows_expired),
            datagrams_sent: get(&self.datagrams_sent),
            datagrams_received: get(&self.datagrams_received),
            dropped_oversize: get(&self.dropped_oversize),
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_unknown_flow: get(&self.dropped_unknown_flow),
            dropped_malformed: get(&self.dropped_malformed),
            dropped_send_failed: get(&self.dropped_send_failed),
        }
    }

    /// Counts a flow refused before it reached a table (a draining connection).
    pub(crate) fn record_refused(&self) {
        bump(&self.flows_refused);
    }
}

/// Why a flow could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdpFlowError {
    #[error("connection has {0} udp flows, the most it carries")]
    TooManyFlows(usize),
    #[error("udp flow {0} is already open")]
    Duplicate(u64),
    #[error("connection closed")]
    Closed,
}

/// Why a datagram was not sent. Each is counted in [`UdpCounters`] too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendDatagramFailure {
    #[error("payload of {size} bytes exceeds the {max} bytes a datagram can carry")]
    TooLarge { size: usize, max: usize },
    #[error("peer does not accept datagrams")]
    Unsupported,
    #[error("flow expired or connection closed")]
    Closed,
}

/// One UDP flow on one connection; see the module documentation. Dropping it forgets the flow
/// on this side.
pub struct UdpFlow {
    id: FlowId,
    conn: quinn::Connection,
    rx: mpsc::Receiver<Bytes>,
    state: Arc<FlowState>,
    table: Weak<FlowTable>,
    counters: Arc<UdpCounters>,
}

impl UdpFlow {
    pub fn id(&self) -> FlowId {
        self.id
    }

    /// The largest payload a datagram of this flow carries now (the path's datagram size less
    /// the flow id); `None` when the peer does not accept datagrams.
    pub fn max_payload(&self) -> Option<usize> {
        let max = self.conn.max_datagram_size()?;
        Some(max.saturating_sub(datagram_overhead(self.id)))
    }

    /// Sends `payload` as one datagram. Does not wait: QUIC drops the oldest queued datagrams
    /// when its send buffer is full.
    ///
    /// # Errors
    /// The payload does not fit one datagram (dropped), the peer does not accept datagrams, the
    /// flow expired or the connection ended.
    pub fn send(&self, payload: &[u8]) -> Result<(), SendDatagramFailure> {
        if self.state.closed.load(Ordering::Relaxed) {
            bump(&self.counters.dropped_send_failed);
            return Err(SendDatagramFailure::Closed);
        }
        let Some(max) = self.conn.max_datagram_size() else {
            bump(&self.counters.dropped_send_failed);
            return Err(SendDatagramFailure::Unsupported);
        };
        let size = payload.len() + datagram_overhead(self.id);
        if size > max {
            bump(&self.counters.dropped_oversize);
            trace!(flow = self.id.get(), size, max, "oversize datagram dropped");
            return Err(SendDatagramFailure::TooLarge {
                size: payload.len(),
                max: max.saturating_sub(datagram_overhead(self.id)),
            });
        }
        let mut datagram = Vec::with_capacity(size);
        encode_datagram(self.id, payload, &mut datagram);
        match self.conn.send_datagram(Bytes::from(datagram)) {
            Ok(()) => {
                bump(&self.counters.datagrams_sent);
                if let Some(table) = self.table.upgrade() {
                    self.state.touch(table.elapsed(Instant::now()));
                }
                Ok(())
            }
            Err(SendDatagramError::TooLarge) => {
                // The path's datagram size shrank between the check and the send.
                bump(&self.counters.dropped_oversize);
                Err(SendDatagramFailure::TooLarge {
                    size: payload.len(),
                    max: self.max_payload().unwrap_or(0),
                })
            }
            Err(SendDatagramError::UnsupportedByPeer | SendDatagramError::Disabled) => {
                bump(&self.counters.dropped_send_failed);
                Err(SendDatagramFailure::Unsupported)
            }
            Err(SendDatagramError::ConnectionLost(_)) => {
                bump(&self.counters.dropped_send_failed);
                Err(SendDatagramFailure::Closed)
            }
        }
    }

    /// The next payload from the peer; `None` once the flow expired, was refused by this side's
    /// table, or the connection ended.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }
}

impl std::fmt::Debug for UdpFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpFlow")
            .field("id", &self.id.get())
            .field("closed", &self.state.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Drop for UdpFlow {
    fn drop(&mut self) {
        if let Some(table) = self.table.upgrade() {
            table.remove(self.id, &self.state);
        }
    }
}

/// The UDP flows of one connection, by flow id, and the task that feeds them.
pub(crate) struct FlowTable {
    conn: quinn::Connection,
    limits: UdpLimits,
    /// Capacity of `Flows::early`: [`EARLY_DATAGRAMS`] at the connector, 0 at the edge.
    early: usize,
    counters: Arc<UdpCounters>,
    epoch: Instant,
    flows: Mutex<Flows>,
}

#[derive(Default)]
struct Flows {
    by_id: BTreeMap<FlowId, Entry>,
    /// Set when the connection ended: no flow enters any more.
    closed: bool,
    /// The highest id entered so far.
    highest: Option<FlowId>,
    /// Datagrams of ids above `highest`, with when they came, oldest first.
    early: VecDeque<(FlowId, Bytes, Duration)>,
}

struct Entry {
    tx: mpsc::Sender<Bytes>,
    state: Arc<FlowState>,
}

struct FlowState {
    /// Milliseconds since the table's epoch of the last datagram either way.
    last_active: AtomicU64,
    /// Set when the table forgot the flow (expired, connection ended).
    closed: AtomicBool,
}

impl FlowState {
    fn touch(&self, elapsed: Duration) {
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.last_active.fetch_max(ms, Ordering::Relaxed);
    }
}

impl FlowTable {
    /// A table for `conn` and the task that reads its datagrams and expires idle flows until
    /// the connection ends; `early` datagrams of flows not entered yet are held (see the module
    /// documentation).
    pub(crate) fn spawn(
        conn: quinn::Connection,
        limits: UdpLimits,
        early: usize,
        counters: Arc<UdpCounters>,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let table = Arc::new(Self {
            conn,
            limits,
            early,
            counters,
            epoch: Instant::now(),
            flows: Mutex::new(Flows::default()),
        });
        let task = tokio::spawn(run(Arc::clone(&table)));
        (table, task)
    }

    /// Enters flow `id`.
    ///
    /// # Errors
    /// The table is full, `id` is already open, or the connection ended. Counted as refused.
    pub(crate) fn insert(self: &Arc<Self>, id: FlowId) -> Result<UdpFlow, UdpFlowError> {
        let now = self.elapsed(Instant::now());
        let (rx, state) = self.insert_at(id, now).inspect_err(|_| {
            bump(&self.counters.flows_refused);
        })?;
        bump(&self.counters.flows_opened);
        Ok(UdpFlow {
            id,
            conn: self.conn.clone(),
            rx,
            state,
            table: Arc::downgrade(self),
            counters: Arc::clone(&self.counters),
        })
    }

    /// Flows open now.
    pub(crate) fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    fn insert_at(
        &self,
        id: FlowId,
        now: Duration,
    ) -> Result<(mpsc::Receiver<Bytes>, Arc<FlowState>), UdpFlowError> {
        let mut flows = self.lock();
        if flows.closed {
            return Err(UdpFlowError::Closed);
        }
        if flows.by_id.contains_key(&id) {
            return Err(UdpFlowError::Duplicate(id.get()));
        }
        if flows.by_id.len() >= self.limits.max_flows {
            return Err(UdpFlowError::TooManyFlows(flows.by_id.len()));
        }
        let (tx, rx) = mpsc::channel(self.limits.queue.max(1));
        let state = Arc::new(FlowState {
            last_active: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        state.touch(now);
        flows.highest = flows.highest.max(Some(id));
        if flows.early.iter().any(|(early, _, _)| *early == id) {
            let held = std::mem::take(&mut flows.early);
            for (early, payload, at) in held {
                if early != id {
                    flows.early.push_back((early, payload, at));
                } else if tx.try_send(payload).is_ok() {
                    bump(&self.counters.datagrams_received);
                } else {
                    bump(&self.counters.dropped_queue_full);
                }
            }
        }
        flows.by_id.insert(
            id,
            Entry {
                tx,
                state: Arc::clone(&state),
            },
        );
        Ok((rx, state))
    }

    /// Routes one received datagram to its flow's queue, or drops and counts it.
    fn dispatch(&self, datagram: Bytes, now: Duration) {
        let (id, prefix) = match decode_datagram(&datagram) {
            Ok((id, payload)) => (id, datagram.len() - payload.len()),
            Err(e) => {
                bump(&self.counters.dropped_malformed);
                trace!(error = %e, "malformed datagram dropped");
                return;
            }
        };
        let mut flows = self.lock();
        let Some(entry) = flows.by_id.get(&id) else {
            let ahead = flows.highest.is_none_or(|highest| id > highest);
            if ahead && flows.early.len() < self.early {
                trace!(flow = id.get(), "datagram ahead of its flow held");
                flows.early.push_back((id, datagram.slice(prefix..), now));
            } else {
                bump(&self.counters.dropped_unknown_flow);
                trace!(flow = id.get(), "datagram for an unknown flow dropped");
            }
            return;
        };
        entry.state.touch(now);
        match entry.tx.try_send(datagram.slice(prefix..)) {
            Ok(()) => bump(&self.counters.datagrams_received),
            Err(mpsc::error::TrySendError::Full(_)) => {
                bump(&self.counters.dropped_queue_full);
                trace!(flow = id.get(), "flow queue full, datagram dropped");
            }
            // The holder is dropping its `UdpFlow`, which removes the entry next.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                bump(&self.counters.dropped_unknown_flow);
            }
        }
    }

    /// Forgets the flows idle for the idle timeout at `now`; returns how many.
    fn expire(&self, now: Duration) -> usize {
        let idle = u64::try_from(self.limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let now = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let mut flows = self.lock();
        let before = flows.by_id.len();
        flows.by_id.retain(|_, entry| {
            let last = entry.state.last_active.load(Ordering::Relaxed);
            let keep = now.saturating_sub(last) < idle;
            if !keep {
                entry.state.closed.store(true, Ordering::Relaxed);
            }
            keep
        });
        let expired = before - flows.by_id.len();
        for _ in 0..expired {
            bump(&self.counters.flows_expired);
        }
        let hold = u64::try_from(EARLY_HOLD.as_millis()).unwrap_or(u64::MAX);
        while let Some((_, _, at)) = flows.early.front() {
            let at = u64::try_from(at.as_millis()).unwrap_or(u64::MAX);
            if now.saturating_sub(at) < hold {
                break;
            }
            flows.early.pop_front();
            bump(&self.counters.dropped_unknown_flow);
        }
        expired
    }

    /// Forgets every flow and takes no new ones: their `recv` returns `None`.
    fn close(&self) {
        let mut flows = self.lock();
        flows.closed = true;
        for entry in flows.by_id.values() {
            entry.state.closed.store(true, Ordering::Relaxed);
        }
        flows.by_id.clear();
        flows.early.clear();
    }

    /// Removes `id` if it is still the flow of `state` (not a later one with the same id).
    fn remove(&self, id: FlowId, state: &Arc<FlowState>) {
        let mut flows = self.lock();
        if flows
            .by_id
            .get(&id)
            .is_some_and(|e| Arc::ptr_eq(&e.state, state))
        {
            flows.by_id.remove(&id);
        }
    }

    fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.epoch)
    }

    fn lock(&self) -> MutexGuard<'_, Flows> {
        // Every critical section leaves the map whole.
        self.flows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How often idle flows are looked for: a quarter of the idle timeout, between 10 ms and 1 s,
/// so a flow lives at most a quarter longer than its timeout.
fn sweep_interval(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

async fn run(table: Arc<FlowTable>) {
    let mut sweep = tokio::time::interval(sweep_interval(table.limits.idle_timeout));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            datagram = table.conn.read_datagram() => match datagram {
                Ok(datagram) => table.dispatch(datagram, table.elapsed(Instant::now())),
                Err(e) => {
                    debug!(error = %e, "datagrams ended");
                    table.close();
                    return;
                }
            },
            _ = sweep.tick() => {
                let expired = table.expire(table.elapsed(Instant::now()));
                if expired > 0 {
                    trace!(expired, "idle udp flows expired");
                }
            }
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_interval_is_a_quarter_of_the_idle_timeout_within_bounds() {
        assert_eq!(sweep_interval(UDP_IDLE_TIMEOUT), Duration::from_secs(1));
        assert_eq!(
            sweep_interval(Duration::from_millis(400)),
            Duration::from_millis(100)
        );
        assert_eq!(sweep_interval(Duration::ZERO), Duration::from_millis(10));
    }

    #[test]
    fn default_limits_are_the_documented_ones() {
        let limits = UdpLimits::default();
        assert_eq!(limits.max_flows, 4096);
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(limits.queue, 256);
    }

    #[test]
    fn flow_state_keeps_the_latest_activity() {
        let state = FlowState {
            last_active: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        };
        state.touch(Duration::from_millis(50));
        state.touch(Duration::from_millis(20));
        assert_eq!(state.last_active.load(Ordering::Relaxed), 50);
    }
}

//! The mesh engine's state: its events, the exchanges (one call through a sidecar,
//! retries included) and their attempts, connections and pools, clusters, replicas and
//! jobs, and the generational slab they live in.

use std::cmp::Ordering;
use std::collections::VecDeque;

use super::Nanos;
use crate::emulator::envoy::{self, ms};
use crate::emulator::Scenario;
use crate::mesh::rules::DestinationPolicy;

#[derive(Clone, Copy, Debug)]
pub(super) enum Ev {
    /// The open loop's next arrival.
    Arrival,
    /// A closed-loop worker sends its next call.
    Send {
        worker: u32,
    },
    /// A request reaches its caller's sidecar.
    AtSidecar {
        ex: u32,
    },
    Retry {
        ex: u32,
        gen: u32,
    },
    ConnectDone {
        conn: u32,
    },
    ConnectFailed {
        conn: u32,
    },
    AtReplica {
        att: u32,
    },
    SleepDone {
        job: u32,
    },
    /// A replica's answer reaches the calling sidecar.
    Answer {
        att: u32,
        status: u16,
    },
    ConnFree {
        conn: u32,
    },
    /// The final answer reaches the caller.
    AtCaller {
        ex: u32,
    },
    PerTryTimeout {
        ex: u32,
        gen: u32,
        attempt_no: u16,
    },
    RouteTimeout {
        ex: u32,
        gen: u32,
    },
    Tick,
}

/// An event, keyed by its time (high 64 bits) and scheduling order (low 64 bits): one
/// integer comparison orders two events, ties by order.
pub(super) struct Event {
    pub(super) key: u128,
    pub(super) ev: Ev,
}
impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Event {
    // The heap is a max-heap: the earliest event first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.key.cmp(&self.key)
    }
}

/// How an exchange (one call through a sidecar, retries included) ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Outcome {
    Ok,
    /// Local 503 UO: pending queue full, `http2MaxRequests` reached.
    Overflow,
    /// Local 503 UH: every host ejected.
    NoHealthy,
    /// The replica answered a 5xx (`status`).
    Upstream(u16),
    /// Local 504 UT: the route or per-try timeout.
    Timeout,
    /// Local 503 UF: the connection could not be made.
    Connect,
}

#[derive(Clone, Copy)]
pub(super) enum Caller {
    /// The load generator (a closed-loop worker, or `NONE` for the open loop).
    Load {
        worker: u32,
    },
    Job {
        job: u32,
    },
}

pub(super) struct Exchange {
    pub(super) cluster: u32,
    /// The Envoy worker serving the caller's connection to its sidecar.
    pub(super) worker: u32,
    pub(super) caller: Caller,
    pub(super) sent_at: Nanos,
    pub(super) gen: u32,
    pub(super) retry: envoy::RetryState,
    pub(super) tried: u64,
    pub(super) attempt: u32,
    pub(super) attempt_no: u16,
    pub(super) done: bool,
    pub(super) outcome: Outcome,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum AttState {
    Pending,
    Sent,
    /// Given up on after it was sent: its answer is dropped when it comes.
    Abandoned,
    /// Given up on while pending: skipped when its pool reaches it.
    AbandonedPending,
}

pub(super) struct Attempt {
    pub(super) ex: u32,
    /// Its cluster: the exchange may be gone (given up on) when the request arrives.
    pub(super) cluster: u32,
    pub(super) host: u32,
    pub(super) conn: u32,
    pub(super) state: AttState,
    /// The job serving it at the replica, while there is one.
    pub(super) job: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnState {
    Connecting,
    Idle,
    Busy { att: u32 },
    Freed,
    Closed,
}

pub(super) struct Conn {
    pub(super) pool: u32,
    pub(super) state: ConnState,
    pub(super) served: u32,
    /// When a freed connection is ready for the next request (the next event-loop turn).
    pub(super) ready_at: Nanos,
    /// A `ConnFree` event is scheduled for it (only while its pool has pending requests).
    pub(super) wake_scheduled: bool,
}

/// One HTTP/1.1 connection pool: per sidecar cluster, Envoy worker and host.
#[derive(Default)]
pub(super) struct Pool {
    pub(super) cluster: u32,
    /// The host's outlier and load state, shared by the cluster's workers.
    pub(super) host_index: u32,
    /// Envoy's pool, queueing attempts.
    pub(super) envoy: envoy::ConnPool<u32>,
    /// Connections freed by an answer, waiting for the next event-loop turn, in the order
    /// they become ready. Each becomes idle when a request next looks at the pool, or at its
    /// turn by an event if requests are pending (an event per freed connection would be
    /// one heap operation per hop for nothing, most of the time).
    pub(super) freeing: VecDeque<u32>,
}

/// One sidecar's cluster for one destination service. Its circuit breakers and outlier
/// detection are shared by the sidecar's Envoy workers; pools and round robin are per worker.
pub(super) struct Cluster {
    pub(super) dest: u32,
    pub(super) edge: u32,
    /// First of its hosts in `outliers` and `active` (one per destination replica).
    pub(super) first_host: u32,
    /// First of its pools in `pools` (worker-major: worker x hosts + host), and of its
    /// round-robin counters (one per worker).
    pub(super) first_pool: u32,
    pub(super) first_rr: u32,
    pub(super) breakers: envoy::Breakers,
}

pub(super) struct Replica {
    pub(super) service: u32,
    pub(super) busy: u32,
    pub(super) queue: VecDeque<u32>,
    pub(super) error_count: u64,
}

pub(super) struct Job {
    pub(super) replica: u32,
    pub(super) att: u32,
    pub(super) arrived: Nanos,
    pub(super) step: u16,
    pub(super) waiting: u16,
    pub(super) failed: bool,
    pub(super) has_slot: bool,
    pub(super) started: bool,
    pub(super) cancelled: bool,
    /// The scenario's fault hit it: it does its work, then answers 503 (as the
    /// single-service emulator's replica does).
    pub(super) fault: bool,
}

/// A service's counters and time integrals.
#[derive(Default, Clone)]
pub(super) struct ServiceRun {
    pub(super) arrivals: u64,
    pub(super) rejected: u64,
    pub(super) completed: u64,
    pub(super) sojourn_ns: u128,
    pub(super) in_system: u64,
    pub(super) busy: u64,
    pub(super) queued: u64,
    pub(super) area_in_system: u128,
    pub(super) area_busy: u128,
    pub(super) since: Nanos,
}

pub(super) struct Worker {
    pub(super) remaining: u32,
    pub(super) next_at: Nanos,
    /// The Envoy worker of this Fortio connection (drawn again when it reconnects).
    pub(super) envoy_worker: u32,
    /// Envoy closed the connection after a local reply: the next call opens a new one, and
    /// Fortio counts that time in the call's latency.
    pub(super) reconnect: bool,
}

/// The scenario's fixed latencies, scaled by the run's speed factor, in ns.
pub(super) struct Hops {
    /// Caller to its sidecar, through the filter chain.
    pub(super) to_sidecar: Nanos,
    /// Sidecar to replica (network and the server's sidecar), each way.
    pub(super) upstream: Nanos,
    /// An upstream answer from the sidecar back to the caller.
    pub(super) answer_to_caller: Nanos,
    /// A local reply (overflow, no healthy host, timeout) back to the caller.
    pub(super) local_reply: Nanos,
    pub(super) event_loop_turn: Nanos,
    pub(super) reconnect: Nanos,
}

impl Hops {
    /// The delays events are scheduled at most often: each gets a lane of the event queue.
    pub(super) fn fixed_delays(&self) -> [Nanos; 5] {
        [self.to_sidecar, self.upstream, self.answer_to_caller, self.local_reply, self.event_loop_turn]
    }

    pub(super) fn of(sc: &Scenario, speed: f64) -> Hops {
        let at = |median_ms: f64| ms(median_ms * speed);
        Hops {
            to_sidecar: at(sc.downstream_hop_ms + sc.sidecar_processing_ms),
            upstream: at(sc.upstream_hop_ms),
            answer_to_caller: at(sc.sidecar_processing_ms + sc.downstream_hop_ms),
            local_reply: at(sc.downstream_hop_ms),
            event_loop_turn: at(sc.event_loop_turn_ms),
            reconnect: at(sc.reconnect_ms),
        }
    }
}

/// Per-destination settings the hot path reads, converted once.
pub(super) struct Dest {
    pub(super) policy: DestinationPolicy,
    pub(super) replicas: u32,
    pub(super) concurrency: u32,
    pub(super) queue_limit: u32,
    pub(super) limits: envoy::PoolLimits,
    pub(super) max_retries: u32,
    pub(super) timeout: Option<Nanos>,
    pub(super) per_try: Option<Nanos>,
    pub(super) connect_timeout: Nanos,
    pub(super) outlier_rules: envoy::OutlierRules,
    pub(super) retry_attempts: u16,
}

/// A generational slab: ids are reused, and events that outlive their object carry its
/// generation.
pub(super) struct Slab<T> {
    pub(super) items: Vec<T>,
    pub(super) free: Vec<u32>,
}
impl<T> Slab<T> {
    pub(super) fn new() -> Self {
        Slab { items: Vec::new(), free: Vec::new() }
    }
    pub(super) fn insert(&mut self, t: T) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.items[i as usize] = t;
                i
            }
            None => {
                self.items.push(t);
                self.items.len() as u32 - 1
            }
        }
    }
    pub(super) fn remove(&mut self, i: u32) {
        self.free.push(i);
    }
}

//! The mesh's discrete-event engine: a load on the entry service, a client sidecar beside
//! every calling replica (and the load generator), and each service's replicas running
//! their Isotope scripts. Times are integer nanoseconds; ties break by scheduling order, so
//! a run is a pure function of its inputs and seed.
//!
//! What a hop does, in order (semantics in docs/mesh.md):
//! 1. The caller's request reaches its sidecar (`downstream_hop_ms` + `sidecar_processing_ms`);
//!    the route timeout starts.
//! 2. The sidecar's cluster for the destination picks a host (round robin, least request or
//!    random over the hosts outlier detection has not ejected; all of them in panic mode),
//!    then a connection of that host's pool: an idle one, a new one (handshake), or the
//!    pending queue; past `http1MaxPendingRequests` or `http2MaxRequests` a local 503 (UO).
//! 3. The request crosses to the replica (`upstream_hop_ms`), which serves it if a slot is
//!    free, queues it within `queueLimit`, or answers 503 at once.
//! 4. The replica runs its script: Isotope's error counter first, then sleeps and calls;
//!    a failed call makes it answer 500.
//! 5. The answer crosses back; outlier detection counts it; the router retries it if the
//!    route's `retryOn`, its attempts and the retry breaker (or budget) allow, after Envoy's
//!    jittered back-off; else it goes back to the caller.
//!
//! When a per-try or route timeout fires, Envoy resets the attempt (closing its HTTP/1.1
//! connection) and the replica keeps working on it, unless `cancel_abandoned` is set.

use std::cmp::Ordering;
use std::collections::VecDeque;

use dary_heap::QuaternaryHeap;

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, StandardNormal};

use super::load::{Arrivals, MeshLoad};
use super::result::{EdgeStats, EntryStats, Latency, MeshResult, Recovery, SecondRow, ServiceStats, TimeSeries};
use super::rules::{DestinationPolicy, MeshRules};
use super::topology::{ServiceTime, Step, Topology};
use crate::emulator::envoy;
use crate::emulator::{LoadBalancer, Scenario};

type Nanos = u64;
const NONE: u32 = u32::MAX;
const SECOND: Nanos = 1_000_000_000;

/// The switches of a mesh run beyond topology, rules, load and scenario.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MeshOptions {
    /// A replica stops working on a request its caller's sidecar gave up on (at the
    /// request's next step), as a server that watches its client's connection would.
    /// Default false: Isotope ignores the cancellation, and that wasted work is what
    /// sustains a retry storm.
    pub cancel_abandoned: bool,
    /// Record the per-second time series.
    pub time_series: bool,
}

#[derive(Clone, Copy, Debug)]
enum Ev {
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
struct Event {
    key: u128,
    ev: Ev,
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
enum Outcome {
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
enum Caller {
    /// The load generator (a closed-loop worker, or `NONE` for the open loop).
    Load {
        worker: u32,
    },
    Job {
        job: u32,
    },
}

struct Exchange {
    cluster: u32,
    /// The Envoy worker serving the caller's connection to its sidecar.
    worker: u32,
    caller: Caller,
    sent_at: Nanos,
    gen: u32,
    retry: envoy::RetryState,
    tried: u64,
    attempt: u32,
    attempt_no: u16,
    done: bool,
    outcome: Outcome,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AttState {
    Pending,
    Sent,
    /// Given up on after it was sent: its answer is dropped when it comes.
    Abandoned,
    /// Given up on while pending: skipped when its pool reaches it.
    AbandonedPending,
}

struct Attempt {
    ex: u32,
    /// Its cluster: the exchange may be gone (given up on) when the request arrives.
    cluster: u32,
    host: u32,
    conn: u32,
    state: AttState,
    /// The job serving it at the replica, while there is one.
    job: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Connecting,
    Idle,
    Busy { att: u32 },
    Freed,
    Closed,
}

struct Conn {
    pool: u32,
    state: ConnState,
    served: u32,
    /// When a freed connection is ready for the next request (the next event-loop turn).
    ready_at: Nanos,
    /// A `ConnFree` event is scheduled for it (only while its pool has pending requests).
    wake_scheduled: bool,
}

/// One HTTP/1.1 connection pool: per sidecar cluster, Envoy worker and host.
#[derive(Default)]
struct Pool {
    cluster: u32,
    /// The host's outlier and load state, shared by the cluster's workers.
    host_index: u32,
    idle: Vec<u32>,
    pending: VecDeque<u32>,
    pending_live: u32,
    /// Connections freed by an answer, waiting for the next event-loop turn, in the order
    /// they become ready. Each becomes idle when a request next looks at the pool, or at its
    /// turn by an event if requests are pending (an event per freed connection would be
    /// one heap operation per hop for nothing, most of the time).
    freeing: VecDeque<u32>,
    conns: u32,
    connecting: u32,
}

/// One sidecar's cluster for one destination service. Its circuit breakers and outlier
/// detection are shared by the sidecar's Envoy workers; pools and round robin are per worker.
struct Cluster {
    dest: u32,
    edge: u32,
    /// First of its hosts in `outliers` and `active` (one per destination replica).
    first_host: u32,
    /// First of its pools in `pools` (worker-major: worker x hosts + host), and of its
    /// round-robin counters (one per worker).
    first_pool: u32,
    first_rr: u32,
    total_conns: u32,
    total_pending: u32,
    total_active: u32,
    active_retries: u32,
}

struct Replica {
    service: u32,
    busy: u32,
    queue: VecDeque<u32>,
    error_count: u64,
}

struct Job {
    replica: u32,
    att: u32,
    arrived: Nanos,
    step: u16,
    waiting: u16,
    failed: bool,
    has_slot: bool,
    started: bool,
    cancelled: bool,
    /// The scenario's fault hit it: it does its work, then answers 503 (as the
    /// single-service emulator's replica does).
    fault: bool,
}

/// A service's counters and time integrals.
#[derive(Default, Clone)]
struct ServiceRun {
    arrivals: u64,
    rejected: u64,
    completed: u64,
    sojourn_ns: u128,
    in_system: u64,
    busy: u64,
    queued: u64,
    area_in_system: u128,
    area_busy: u128,
    since: Nanos,
}

struct Worker {
    remaining: u32,
    next_at: Nanos,
    /// The Envoy worker of this Fortio connection (drawn again when it reconnects).
    envoy_worker: u32,
    /// Envoy closed the connection after a local reply: the next call opens a new one, and
    /// Fortio counts that time in the call's latency.
    reconnect: bool,
}

/// The scenario's fixed latencies, scaled by the run's speed factor, in ns.
struct Hops {
    /// Caller to its sidecar, through the filter chain.
    to_sidecar: Nanos,
    /// Sidecar to replica (network and the server's sidecar), each way.
    upstream: Nanos,
    /// An upstream answer from the sidecar back to the caller.
    answer_to_caller: Nanos,
    /// A local reply (overflow, no healthy host, timeout) back to the caller.
    local_reply: Nanos,
    event_loop_turn: Nanos,
    reconnect: Nanos,
}

impl Hops {
    fn of(sc: &Scenario, speed: f64) -> Hops {
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
struct Dest {
    policy: DestinationPolicy,
    replicas: u32,
    concurrency: u32,
    queue_limit: u32,
    max_requests: u32,
    max_retries: u32,
    timeout: Option<Nanos>,
    per_try: Option<Nanos>,
    connect_timeout: Nanos,
    outlier_rules: envoy::OutlierRules,
    retry_attempts: u16,
}

/// A generational slab: ids are reused, and events that outlive their object carry its
/// generation.
struct Slab<T> {
    items: Vec<T>,
    free: Vec<u32>,
}
impl<T> Slab<T> {
    fn new() -> Self {
        Slab { items: Vec::new(), free: Vec::new() }
    }
    fn insert(&mut self, t: T) -> u32 {
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
    fn remove(&mut self, i: u32) {
        self.free.push(i);
    }
}

/// The histogram of a run's entry latencies, in ns: 1 ns to 1 h at three significant
/// digits, so memory does not grow with the run.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600 * SECOND, 3).expect("fixed, valid histogram bounds")
}

/// A latency in ms as a mesh run reports its percentiles: the highest value of its bucket.
pub fn reported_ms(ms_value: f64) -> f64 {
    latency_histogram().highest_equivalent(ms(ms_value).max(1)) as f64 / 1e6
}

/// Runs one load on the mesh. Deterministic in its inputs and `seed`.
pub fn run(topology: &Topology, rules: &MeshRules, load: &MeshLoad, sc: &Scenario, options: MeshOptions, seed: u64) -> MeshResult {
    Mesh::new(topology, rules, load, sc, options, seed).simulate()
}

struct Mesh<'a> {
    topology: &'a Topology,
    load: &'a MeshLoad,
    sc: &'a Scenario,
    options: MeshOptions,
    seed: u64,
    rng: ChaCha8Rng,
    speed: f64,
    hops: Hops,
    handshake_scale: f64,
    fault_share: f64,
    now: Nanos,
    seq: u64,
    generation: u32,
    events: QuaternaryHeap<Event>,
    dests: Vec<Dest>,
    /// Distinct callees of each service, in script order.
    callees: Vec<Vec<u32>>,
    /// First cluster of each client (0: the load generator; 1 + r: replica r).
    cluster_base: Vec<u32>,
    clusters: Vec<Cluster>,
    pools: Vec<Pool>,
    /// Per host of every cluster (shared by the cluster's workers): outlier detection, and
    /// requests attached to a connection to it (what least request compares).
    outliers: Vec<envoy::Outlier>,
    active: Vec<u32>,
    round_robin: Vec<u32>,
    envoy_workers: u32,
    replica_base: Vec<u32>,
    replicas: Vec<Replica>,
    conns: Slab<Conn>,
    exchanges: Slab<Exchange>,
    attempts: Slab<Attempt>,
    jobs: Slab<Job>,
    workers: Vec<Worker>,
    eligible: Vec<u32>,
    services: Vec<ServiceRun>,
    edges: Vec<EdgeStats>,
    // The load generator's view.
    entry_outstanding: u64,
    load_over: bool,
    segment: usize,
    segment_end: Nanos,
    entry_requests: u64,
    entry_ok: u64,
    entry_latency: Histogram<u64>,
    latency_sum: u128,
    last_answer: Nanos,
    series: Option<TimeSeries>,
    second: SecondRow,
    second_latencies: Vec<Nanos>,
}

use envoy::ms;

impl<'a> Mesh<'a> {
    fn new(topology: &'a Topology, rules: &MeshRules, load: &'a MeshLoad, sc: &'a Scenario, options: MeshOptions, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let z_speed: f64 = rng.sample(StandardNormal);
        let z_fault: f64 = rng.sample(StandardNormal);
        let z_handshake: f64 = rng.sample(StandardNormal);
        let speed = (sc.run_speed_sigma * z_speed).exp();
        let n = topology.services.len();
        let dests: Vec<Dest> = (0..n)
            .map(|s| {
                let svc = &topology.services[s];
                let p = rules.destinations[s];
                Dest {
                    policy: p,
                    replicas: svc.replicas,
                    concurrency: svc.concurrency.unwrap_or(u32::MAX),
                    queue_limit: svc.queue_limit.unwrap_or(u32::MAX),
                    max_requests: p.rules.http2_max_requests.unwrap_or(u32::MAX),
                    max_retries: p.rules.max_retries.unwrap_or(u32::MAX),
                    timeout: p.timeout_ms.map(ms),
                    per_try: p.per_try_timeout_ms.map(ms),
                    connect_timeout: ms(p.rules.connect_timeout_ms),
                    outlier_rules: envoy::OutlierRules {
                        consecutive_5xx: p.rules.consecutive_errors,
                        max_ejection_percent: p.rules.max_ejection_percent,
                        base_ejection_time_s: p.rules.ejection_time_s,
                        interval_ns: ms(p.rules.interval_s * 1e3).max(1),
                        ejection_rule: sc.ejection_rule,
                    },
                    retry_attempts: if p.rules.retries.attempts == 0 { 0 } else { p.rules.retries.attempts.min(u16::MAX as u32) as u16 },
                }
            })
            .collect();
        let callees: Vec<Vec<u32>> = (0..n)
            .map(|s| {
                let mut v: Vec<u32> = Vec::new();
                for c in topology.callees(s) {
                    if !v.contains(&(c as u32)) {
                        v.push(c as u32);
                    }
                }
                v
            })
            .collect();
        let mut edge_base = Vec::with_capacity(n);
        let mut edges = vec![EdgeStats::new("load", &topology.services[topology.entry].name)];
        for (s, cs) in callees.iter().enumerate() {
            edge_base.push(edges.len() as u32);
            for &d in cs {
                edges.push(EdgeStats::new(&topology.services[s].name, &topology.services[d as usize].name));
            }
        }
        let mut replica_base = Vec::with_capacity(n);
        let mut replicas = Vec::new();
        for (s, svc) in topology.services.iter().enumerate() {
            replica_base.push(replicas.len() as u32);
            for _ in 0..svc.replicas {
                replicas.push(Replica { service: s as u32, busy: 0, queue: VecDeque::new(), error_count: 0 });
            }
        }
        // Clusters: the load generator's one, then each replica's, one per callee.
        let mut cluster_base = Vec::with_capacity(replicas.len() + 1);
        let mut clusters = Vec::new();
        let mut pools = Vec::new();
        let mut outliers = Vec::new();
        let workers = sc.envoy_workers.max(1);
        let mut round_robin = Vec::new();
        let mut add_cluster = |dest: u32, edge: u32, clusters: &mut Vec<Cluster>| {
            let hosts = topology.services[dest as usize].replicas;
            let (first_host, first_pool) = (outliers.len() as u32, pools.len() as u32);
            clusters.push(Cluster {
                dest,
                edge,
                first_host,
                first_pool,
                first_rr: round_robin.len() as u32,
                total_conns: 0,
                total_pending: 0,
                total_active: 0,
                active_retries: 0,
            });
            let cluster = clusters.len() as u32 - 1;
            round_robin.resize(round_robin.len() + workers as usize, 0);
            for _ in 0..workers {
                for h in 0..hosts {
                    pools.push(Pool { cluster, host_index: first_host + h, ..Pool::default() });
                }
            }
            outliers.extend((0..hosts).map(|_| envoy::Outlier::default()));
        };
        cluster_base.push(0);
        add_cluster(topology.entry as u32, 0, &mut clusters);
        for r in &replicas {
            cluster_base.push(clusters.len() as u32);
            let s = r.service as usize;
            for (k, &d) in callees[s].iter().enumerate() {
                add_cluster(d, edge_base[s] + k as u32, &mut clusters);
            }
        }
        let entry_latency = latency_histogram();
        // A spike's recovery is read off the series.
        let series = (options.time_series || load.spike().is_some())
            .then(|| TimeSeries::new(topology.services.iter().map(|s| s.name.clone()).collect()));
        let services_n = topology.services.len();
        Mesh {
            topology,
            load,
            sc,
            options,
            seed,
            rng,
            speed,
            hops: Hops::of(sc, speed),
            handshake_scale: (sc.run_handshake_sigma * z_handshake).exp(),
            fault_share: (sc.fault_share * (sc.run_fault_sigma * z_fault).exp()).min(1.0),
            now: 0,
            seq: 0,
            generation: 0,
            events: QuaternaryHeap::new(),
            dests,
            callees,
            cluster_base,
            clusters,
            pools,
            active: vec![0; outliers.len()],
            outliers,
            round_robin,
            envoy_workers: workers,
            replica_base,
            replicas,
            conns: Slab::new(),
            exchanges: Slab::new(),
            attempts: Slab::new(),
            jobs: Slab::new(),
            workers: Vec::new(),
            eligible: Vec::new(),
            services: vec![ServiceRun::default(); services_n],
            edges,
            entry_outstanding: 0,
            load_over: false,
            segment: 0,
            segment_end: 0,
            entry_requests: 0,
            entry_ok: 0,
            entry_latency,
            latency_sum: 0,
            last_answer: 0,
            series,
            second: SecondRow::new(services_n),
            second_latencies: Vec::new(),
        }
    }

    fn schedule(&mut self, after: Nanos, ev: Ev) {
        self.seq += 1;
        let at = self.now + after;
        self.events.push(Event { key: (u128::from(at) << 64) | u128::from(self.seq), ev });
    }

    fn simulate(mut self) -> MeshResult {
        self.start_load();
        if self.series.is_some() {
            self.schedule(SECOND, Ev::Tick);
        }
        while let Some(e) = self.events.pop() {
            self.now = (e.key >> 64) as Nanos;
            self.handle(e.ev);
            if self.load_over && self.entry_outstanding == 0 {
                break;
            }
        }
        self.finish()
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Arrival => self.on_arrival(),
            Ev::Send { worker } => self.send_from_worker(worker),
            Ev::AtSidecar { ex } => self.on_sidecar(ex),
            Ev::Retry { ex, gen } => {
                if self.exchanges.items[ex as usize].gen == gen && !self.exchanges.items[ex as usize].done {
                    self.route(ex);
                }
            }
            Ev::ConnectDone { conn } => self.on_connected(conn),
            Ev::ConnectFailed { conn } => self.on_connect_failed(conn),
            Ev::AtReplica { att } => self.on_replica_arrival(att),
            Ev::SleepDone { job } => {
                self.jobs.items[job as usize].step += 1;
                self.run_script(job);
            }
            Ev::Answer { att, status } => self.on_answer(att, status),
            Ev::ConnFree { conn } => {
                let p = self.conns.items[conn as usize].pool as usize;
                self.conns.items[conn as usize].wake_scheduled = false;
                self.pools[p].freeing.retain(|&c| c != conn);
                self.serve_pending_or_idle(conn);
            }
            Ev::AtCaller { ex } => self.on_caller(ex),
            Ev::PerTryTimeout { ex, gen, attempt_no } => {
                let x = &self.exchanges.items[ex as usize];
                if x.gen == gen && !x.done && x.attempt_no == attempt_no && x.attempt != NONE {
                    self.abandon_attempt(ex);
                    self.attempt_done(ex, Outcome::Timeout, true);
                }
            }
            Ev::RouteTimeout { ex, gen } => {
                let x = &self.exchanges.items[ex as usize];
                if x.gen == gen && !x.done {
                    if x.attempt != NONE {
                        self.abandon_attempt(ex);
                    }
                    self.release_retry(ex);
                    // A global timeout is never retried.
                    self.exchange_done(ex, Outcome::Timeout);
                }
            }
            Ev::Tick => self.on_tick(),
        }
    }

    // ---- The load ----

    fn start_load(&mut self) {
        match self.load {
            MeshLoad::Closed { threads, calls, .. } => {
                let threads = *threads;
                for w in 0..threads {
                    let remaining = match calls {
                        Some(c) => c / threads + if w == 0 { c % threads } else { 0 },
                        None => u32::MAX,
                    };
                    // Fortio's goroutines start within a few microseconds of each other.
                    let jitter = if remaining > 0 { self.rng.random_range(0..20_000) } else { 0 };
                    let envoy_worker = self.random_envoy_worker();
                    self.workers.push(Worker { remaining, next_at: jitter, envoy_worker, reconnect: false });
                    if remaining > 0 {
                        self.schedule(jitter, Ev::Send { worker: w });
                    }
                }
                if self.workers.iter().all(|w| w.remaining == 0) {
                    self.load_over = true;
                }
            }
            MeshLoad::Open { schedule, .. } => {
                self.segment = 0;
                self.segment_end = ms(schedule[0].duration_s * 1e3);
                self.next_arrival();
            }
        }
    }

    /// Schedules the open loop's next arrival, walking over segments whose rate is 0 or that
    /// end before the next gap does (exponential gaps are memoryless, so redrawing at a
    /// boundary keeps the Poisson process exact; fixed gaps restart at a segment's start).
    fn next_arrival(&mut self) {
        let MeshLoad::Open { arrivals, schedule } = self.load else { return };
        let mut t = self.now;
        loop {
            while t >= self.segment_end {
                self.segment += 1;
                if self.segment >= schedule.len() {
                    self.load_over = true;
                    return;
                }
                t = t.max(self.segment_end);
                self.segment_end += ms(schedule[self.segment].duration_s * 1e3);
            }
            let qps = schedule[self.segment].qps;
            if qps <= 0.0 {
                t = self.segment_end;
                continue;
            }
            let gap = match arrivals {
                Arrivals::Poisson => {
                    let g: f64 = Exp::new(qps).map(|e| e.sample(&mut self.rng)).unwrap_or(f64::INFINITY);
                    (g * 1e9).round() as Nanos
                }
                Arrivals::Uniform => (1e9 / qps).round() as Nanos,
            };
            let at = t.saturating_add(gap.max(1));
            if at >= self.segment_end {
                t = self.segment_end;
                continue;
            }
            self.schedule(at - self.now, Ev::Arrival);
            return;
        }
    }

    fn on_arrival(&mut self) {
        self.send_entry(NONE);
        self.next_arrival();
    }

    fn send_from_worker(&mut self, worker: u32) {
        if let MeshLoad::Closed { duration_s: Some(d), .. } = self.load {
            if self.now >= ms(d * 1e3) {
                self.workers[worker as usize].remaining = 0;
                self.check_closed_loop_over();
                return;
            }
        }
        if let MeshLoad::Closed { threads, qps: Some(q), .. } = self.load {
            let interval = (1e9 * f64::from(*threads) / q).round() as Nanos;
            // Fortio's targets run from the start: a late worker catches up without sleeping.
            let w = &mut self.workers[worker as usize];
            w.next_at += interval;
        }
        self.send_entry(worker);
    }

    fn check_closed_loop_over(&mut self) {
        if self.workers.iter().all(|w| w.remaining == 0) {
            self.load_over = true;
        }
    }

    /// The load generator sends one request to the entry, through its own sidecar.
    fn send_entry(&mut self, worker: u32) {
        self.entry_requests += 1;
        self.entry_outstanding += 1;
        self.second.arrivals += 1;
        // Fortio keeps its connection (and so its Envoy worker); each open-loop arrival is a
        // connection of its own.
        let (envoy_worker, connect) = if worker == NONE {
            (self.random_envoy_worker(), 0)
        } else {
            let w = &mut self.workers[worker as usize];
            let reconnect = std::mem::take(&mut w.reconnect);
            (w.envoy_worker, if reconnect { self.hops.reconnect } else { 0 })
        };
        self.new_exchange(0, Caller::Load { worker }, envoy_worker, connect);
    }

    /// A uniform draw among the sidecar's workers; none with one worker.
    fn random_envoy_worker(&mut self) -> u32 {
        if self.envoy_workers > 1 {
            self.rng.random_range(0..self.envoy_workers)
        } else {
            0
        }
    }

    /// A caller's request to the destination of `cluster` leaves for its sidecar, where
    /// Envoy worker `worker` serves it, after `connect` ns to open its connection.
    fn new_exchange(&mut self, cluster: u32, caller: Caller, worker: u32, connect: Nanos) {
        let gen = self.next_gen();
        let ex = self.exchanges.insert(Exchange {
            cluster,
            worker,
            caller,
            sent_at: self.now,
            gen,
            retry: envoy::RetryState::default(),
            tried: 0,
            attempt: NONE,
            attempt_no: 0,
            done: false,
            outcome: Outcome::Ok,
        });
        self.edges[self.clusters[cluster as usize].edge as usize].requests += 1;
        let to_sidecar = self.hops.to_sidecar;
        self.schedule(connect + to_sidecar, Ev::AtSidecar { ex });
    }

    /// Exchanges share one counter of generations: a reused slot never repeats one.
    fn next_gen(&mut self) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        self.generation
    }

    // ---- The client sidecar ----

    fn dest_of(&self, ex: u32) -> usize {
        self.clusters[self.exchanges.items[ex as usize].cluster as usize].dest as usize
    }

    fn on_sidecar(&mut self, ex: u32) {
        let d = self.dest_of(ex);
        let (attempts, timeout) = (self.dests[d].retry_attempts, self.dests[d].timeout);
        let x = &mut self.exchanges.items[ex as usize];
        x.retry = envoy::RetryState::start(attempts);
        let gen = x.gen;
        if let Some(t) = timeout {
            self.schedule(t, Ev::RouteTimeout { ex, gen });
        }
        self.route(ex);
    }

    /// The load balancer's pick among the cluster's healthy hosts, avoiding `avoid` (the
    /// hosts a retry already tried) up to `host_selection_retry_max_attempts` times.
    fn choose_host(&mut self, c: usize, worker: u32, avoid: u64) -> Option<u32> {
        let cl = &self.clusters[c];
        let (first, d) = (cl.first_host as usize, cl.dest as usize);
        let rr = (cl.first_rr + worker) as usize;
        let n = self.dests[d].replicas as usize;
        let (healthy, panic) = envoy::healthy_hosts(&mut self.outliers[first..first + n], self.now, self.sc.panic_threshold_percent);
        if healthy == 0 && !panic {
            return None;
        }
        if n == 1 {
            // One host: every balancer picks it (without Envoy's draws).
            return Some(0);
        }
        self.eligible.clear();
        for h in 0..n as u32 {
            if panic || !self.outliers[first + h as usize].ejected {
                self.eligible.push(h);
            }
        }
        let rules = &self.dests[d].policy.rules;
        let picks = if avoid == 0 { 1 } else { 1 + rules.retries.host_selection_retry_max_attempts };
        let lb = rules.load_balancer;
        let mut pick = 0;
        for _ in 0..picks {
            pick = match lb {
                LoadBalancer::RoundRobin => {
                    let outliers = &self.outliers[first..first + n];
                    envoy::round_robin_pick(&mut self.round_robin[rr], n, |h| panic || !outliers[h].ejected).unwrap_or(0) as u32
                }
                LoadBalancer::LeastRequest => {
                    let active = &self.active[first..first + n];
                    envoy::least_request_pick(&mut self.rng, &self.eligible, |h| active[h]) as u32
                }
                LoadBalancer::Random => self.eligible[self.rng.random_range(0..self.eligible.len())],
            };
            if avoid & (1u64 << (pick % 64)) == 0 {
                break;
            }
        }
        Some(pick)
    }

    /// A first try or a retry: pick a host, then a connection of its pool.
    fn route(&mut self, ex: u32) {
        let c = self.exchanges.items[ex as usize].cluster as usize;
        let d = self.clusters[c].dest as usize;
        let previous_hosts = self.dests[d].retry_attempts > 0 && self.dests[d].policy.rules.retries.previous_hosts;
        let avoid = if previous_hosts { self.exchanges.items[ex as usize].tried } else { 0 };
        let worker = self.exchanges.items[ex as usize].worker;
        let Some(host) = self.choose_host(c, worker, avoid) else {
            return self.attempt_done(ex, Outcome::NoHealthy, false);
        };
        let x = &mut self.exchanges.items[ex as usize];
        x.tried |= 1u64 << (host % 64);
        x.attempt_no = x.attempt_no.wrapping_add(1);
        let (gen, attempt_no) = (x.gen, x.attempt_no);
        let att = self.attempts.insert(Attempt { ex, cluster: c as u32, host, conn: NONE, state: AttState::Pending, job: NONE });
        self.exchanges.items[ex as usize].attempt = att;
        if let Some(t) = self.dests[d].per_try {
            self.schedule(t, Ev::PerTryTimeout { ex, gen, attempt_no });
        }
        let p = self.pool_of(c, worker, host);
        self.promote_freed(p);
        if let Some(conn) = self.pools[p].idle.pop() {
            if self.clusters[c].total_active >= self.dests[d].max_requests {
                self.pools[p].idle.push(conn);
                return self.overflow(ex);
            }
            return self.attach(conn, att);
        }
        if self.clusters[c].total_pending < self.dests[d].policy.rules.max_pending_requests {
            self.pools[p].pending.push_back(att);
            self.pools[p].pending_live += 1;
            self.clusters[c].total_pending += 1;
            self.wake_freed(p);
            self.maybe_connect(p, c);
        } else {
            self.overflow(ex);
        }
    }

    /// A circuit breaker refused the attempt: local 503 UO, never retried.
    fn overflow(&mut self, ex: u32) {
        let att = self.exchanges.items[ex as usize].attempt;
        if att != NONE {
            self.attempts.remove(att);
            self.exchanges.items[ex as usize].attempt = NONE;
        }
        self.attempt_done(ex, Outcome::Overflow, false);
    }

    /// Opens connections while pending requests outnumber those being opened, within
    /// `maxConnections` cluster-wide (a pool with none may always open one).
    fn maybe_connect(&mut self, p: usize, c: usize) {
        let d = self.clusters[c].dest as usize;
        while self.pools[p].pending_live > self.pools[p].connecting {
            if self.clusters[c].total_conns >= self.dests[d].policy.rules.max_connections && self.pools[p].conns > 0 {
                break;
            }
            let conn =
                self.conns.insert(Conn { pool: p as u32, state: ConnState::Connecting, served: 0, ready_at: 0, wake_scheduled: false });
            self.pools[p].conns += 1;
            self.pools[p].connecting += 1;
            self.clusters[c].total_conns += 1;
            let median = self.sc.handshake_ms * self.handshake_scale * self.speed;
            let mut at = if median > 0.0 {
                let z: f64 = self.rng.sample(StandardNormal);
                ms(median * (self.sc.handshake_sigma * z).exp())
            } else {
                0
            };
            let mut up = true;
            if at > self.dests[d].connect_timeout {
                at = self.dests[d].connect_timeout;
                up = false;
            }
            self.schedule(at, if up { Ev::ConnectDone { conn } } else { Ev::ConnectFailed { conn } });
        }
    }

    fn pool_of(&self, c: usize, worker: u32, host: u32) -> usize {
        let cl = &self.clusters[c];
        cl.first_pool as usize + (worker * self.dests[cl.dest as usize].replicas + host) as usize
    }

    fn cluster_of_pool(&self, p: usize) -> usize {
        self.pools[p].cluster as usize
    }

    fn attach(&mut self, conn: u32, att: u32) {
        let p = self.conns.items[conn as usize].pool as usize;
        let c = self.cluster_of_pool(p);
        let cn = &mut self.conns.items[conn as usize];
        cn.state = ConnState::Busy { att };
        cn.served += 1;
        let hs = self.pools[p].host_index as usize;
        self.active[hs] += 1;
        self.clusters[c].total_active += 1;
        let a = &mut self.attempts.items[att as usize];
        a.conn = conn;
        a.state = AttState::Sent;
        let hop = self.hops.upstream;
        self.schedule(hop, Ev::AtReplica { att });
    }

    /// Freed connections whose turn has come, and that no event will wake, become idle (in
    /// the order they became ready, as their events would have made them).
    fn promote_freed(&mut self, p: usize) {
        let mut i = 0;
        while i < self.pools[p].freeing.len() {
            let conn = self.pools[p].freeing[i];
            let cn = &self.conns.items[conn as usize];
            if cn.ready_at > self.now {
                break;
            }
            if cn.wake_scheduled {
                i += 1;
                continue;
            }
            self.pools[p].freeing.remove(i);
            self.conns.items[conn as usize].state = ConnState::Idle;
            self.pools[p].idle.push(conn);
        }
    }

    /// Requests are pending: every freed connection wakes at its turn to take one.
    fn wake_freed(&mut self, p: usize) {
        for i in 0..self.pools[p].freeing.len() {
            let conn = self.pools[p].freeing[i];
            let cn = &mut self.conns.items[conn as usize];
            if !cn.wake_scheduled {
                cn.wake_scheduled = true;
                let after = cn.ready_at.saturating_sub(self.now);
                self.schedule(after, Ev::ConnFree { conn });
            }
        }
    }

    /// The oldest pending attempt of pool `p` (of cluster `c`) still wanted, out of the
    /// queue and the counts; those given up on while they waited are dropped on the way.
    fn pop_pending(&mut self, p: usize, c: usize) -> Option<u32> {
        while let Some(att) = self.pools[p].pending.pop_front() {
            if self.attempts.items[att as usize].state == AttState::AbandonedPending {
                self.attempts.remove(att);
                continue;
            }
            self.pools[p].pending_live -= 1;
            self.clusters[c].total_pending -= 1;
            return Some(att);
        }
        None
    }

    /// A ready connection takes its pool's oldest live pending request, or goes idle.
    fn serve_pending_or_idle(&mut self, conn: u32) {
        if self.conns.items[conn as usize].state == ConnState::Closed {
            return;
        }
        let p = self.conns.items[conn as usize].pool as usize;
        let c = self.cluster_of_pool(p);
        let d = self.clusters[c].dest as usize;
        while let Some(att) = self.pop_pending(p, c) {
            if self.clusters[c].total_active >= self.dests[d].max_requests {
                let ex = self.attempts.items[att as usize].ex;
                self.overflow(ex);
                continue;
            }
            return self.attach(conn, att);
        }
        self.conns.items[conn as usize].state = ConnState::Idle;
        self.pools[p].idle.push(conn);
    }

    fn on_connected(&mut self, conn: u32) {
        let p = self.conns.items[conn as usize].pool as usize;
        self.pools[p].connecting -= 1;
        self.serve_pending_or_idle(conn);
    }

    /// A connection failed: the pool's pending requests all fail (UF), each counted by
    /// outlier detection, each then retried or answered 503.
    fn on_connect_failed(&mut self, conn: u32) {
        let p = self.conns.items[conn as usize].pool as usize;
        let c = self.cluster_of_pool(p);
        self.conns.items[conn as usize].state = ConnState::Closed;
        self.conns.remove(conn);
        self.pools[p].connecting -= 1;
        self.pools[p].conns -= 1;
        self.clusters[c].total_conns -= 1;
        while let Some(att) = self.pop_pending(p, c) {
            let ex = self.attempts.items[att as usize].ex;
            self.attempts.remove(att);
            self.exchanges.items[ex as usize].attempt = NONE;
            self.record_outlier(c, self.pools[p].host_index as usize, true);
            self.attempt_done(ex, Outcome::Connect, false);
        }
    }

    /// Envoy gives up on the exchange's current attempt: a pending one leaves its queue; a
    /// sent one has its connection reset, and its replica keeps working (unless
    /// `cancel_abandoned`).
    fn abandon_attempt(&mut self, ex: u32) {
        let att = self.exchanges.items[ex as usize].attempt;
        self.exchanges.items[ex as usize].attempt = NONE;
        let c = self.exchanges.items[ex as usize].cluster as usize;
        let p = self.pool_of(c, self.exchanges.items[ex as usize].worker, self.attempts.items[att as usize].host);
        let hs = self.pools[p].host_index as usize;
        let a = &mut self.attempts.items[att as usize];
        match a.state {
            AttState::Pending => {
                a.state = AttState::AbandonedPending;
                self.pools[p].pending_live -= 1;
                self.clusters[c].total_pending -= 1;
            }
            AttState::Sent => {
                a.state = AttState::Abandoned;
                let (conn, job) = (a.conn, a.job);
                self.record_outlier(c, hs, true);
                self.active[hs] -= 1;
                self.clusters[c].total_active -= 1;
                self.conns.items[conn as usize].state = ConnState::Closed;
                self.conns.remove(conn);
                self.pools[p].conns -= 1;
                self.clusters[c].total_conns -= 1;
                if self.options.cancel_abandoned && job != NONE {
                    self.jobs.items[job as usize].cancelled = true;
                }
                self.maybe_connect(p, c);
            }
            AttState::Abandoned | AttState::AbandonedPending => {}
        }
    }

    /// Outlier detection ([`envoy::record_outlier`]) of host `p` (its index in `outliers`)
    /// of this sidecar's cluster `c`.
    fn record_outlier(&mut self, c: usize, p: usize, is_5xx: bool) {
        let (first, d) = (self.clusters[c].first_host as usize, self.clusters[c].dest as usize);
        let n = self.dests[d].replicas as usize;
        envoy::record_outlier(&mut self.outliers[first..first + n], p - first, is_5xx, self.now, &self.dests[d].outlier_rules);
    }

    fn release_retry(&mut self, ex: u32) {
        let x = &mut self.exchanges.items[ex as usize];
        x.retry.release(&mut self.clusters[x.cluster as usize].active_retries);
    }

    /// Whether the retry breaker (or the retry budget, which replaces it) has room.
    fn retry_room(&self, c: usize) -> bool {
        let cl = &self.clusters[c];
        let dest = &self.dests[cl.dest as usize];
        let limit = match dest.policy.retry_budget {
            Some(b) => {
                let share = (b.percent / 100.0 * f64::from(cl.total_active + cl.total_pending)) as u32;
                share.max(b.min_concurrency)
            }
            None => dest.max_retries,
        };
        cl.active_retries < limit
    }

    /// One attempt ended with `outcome`: retried if the route's conditions, its attempts
    /// and the retry breaker allow; else the exchange is over.
    fn attempt_done(&mut self, ex: u32, outcome: Outcome, was_reset: bool) {
        self.release_retry(ex);
        let c = self.exchanges.items[ex as usize].cluster as usize;
        let d = self.clusters[c].dest as usize;
        let on = self.dests[d].policy.retry_on;
        let retriable = match outcome {
            Outcome::Upstream(status) => on.status(status),
            Outcome::Timeout => was_reset && on.reset(),
            Outcome::Connect => on.connect_failure(),
            Outcome::Ok | Outcome::Overflow | Outcome::NoHealthy => false,
        };
        let room = self.retry_room(c);
        let x = &mut self.exchanges.items[ex as usize];
        if let Some(k) = x.retry.should_retry(retriable, room, &mut self.clusters[c].active_retries) {
            let gen = x.gen;
            let edge = self.clusters[c].edge as usize;
            self.edges[edge].retries += 1;
            let wait = envoy::backoff_ms(&mut self.rng, self.dests[d].policy.rules.retries.backoff_base_ms, k) * 1_000_000;
            return self.schedule(wait, Ev::Retry { ex, gen });
        }
        self.exchange_done(ex, outcome);
    }

    fn exchange_done(&mut self, ex: u32, outcome: Outcome) {
        let x = &mut self.exchanges.items[ex as usize];
        x.done = true;
        x.outcome = outcome;
        let edge = &mut self.edges[self.clusters[x.cluster as usize].edge as usize];
        match outcome {
            Outcome::Ok => edge.ok += 1,
            Outcome::Overflow => edge.overflow += 1,
            Outcome::NoHealthy => edge.no_healthy += 1,
            Outcome::Upstream(_) => edge.upstream += 1,
            Outcome::Timeout => edge.timeout += 1,
            Outcome::Connect => edge.connect += 1,
        }
        // An upstream answer passes back through the sidecar; a local reply starts there.
        let back = match outcome {
            Outcome::Ok | Outcome::Upstream(_) => self.hops.answer_to_caller,
            _ => self.hops.local_reply,
        };
        self.schedule(back, Ev::AtCaller { ex });
    }

    fn on_answer(&mut self, att: u32, status: u16) {
        let a = &self.attempts.items[att as usize];
        if a.state == AttState::Abandoned {
            self.attempts.remove(att);
            return;
        }
        let (ex, conn, host) = (a.ex, a.conn, a.host);
        self.attempts.remove(att);
        self.exchanges.items[ex as usize].attempt = NONE;
        let (c, worker) = (self.exchanges.items[ex as usize].cluster as usize, self.exchanges.items[ex as usize].worker);
        let p = self.pool_of(c, worker, host);
        let hs = self.pools[p].host_index as usize;
        self.record_outlier(c, hs, status >= 500);
        self.active[hs] -= 1;
        self.clusters[c].total_active -= 1;
        self.attempt_done(ex, if status == 200 { Outcome::Ok } else { Outcome::Upstream(status) }, false);
        let d = self.clusters[c].dest as usize;
        if self.conns.items[conn as usize].served >= self.dests[d].policy.rules.max_requests_per_connection {
            self.conns.items[conn as usize].state = ConnState::Closed;
            self.conns.remove(conn);
            self.pools[p].conns -= 1;
            self.clusters[c].total_conns -= 1;
            self.maybe_connect(p, c);
        } else {
            let cn = &mut self.conns.items[conn as usize];
            cn.state = ConnState::Freed;
            cn.ready_at = self.now + self.hops.event_loop_turn;
            self.pools[p].freeing.push_back(conn);
            if self.pools[p].pending_live > 0 {
                self.wake_freed(p);
            }
        }
    }

    fn on_caller(&mut self, ex: u32) {
        let x = &self.exchanges.items[ex as usize];
        let (caller, outcome, sent_at) = (x.caller, x.outcome, x.sent_at);
        self.exchanges.remove(ex);
        match caller {
            Caller::Job { job } => self.call_returned(job, outcome == Outcome::Ok),
            Caller::Load { worker } => self.entry_answered(worker, outcome, sent_at),
        }
    }

    fn entry_answered(&mut self, worker: u32, outcome: Outcome, sent_at: Nanos) {
        let took = self.now - sent_at;
        self.entry_outstanding -= 1;
        self.last_answer = self.now;
        self.latency_sum += u128::from(took);
        self.entry_latency.saturating_record(took.max(1));
        if outcome == Outcome::Ok {
            self.entry_ok += 1;
            self.second.ok += 1;
        } else {
            self.second.failed += 1;
        }
        if self.series.is_some() {
            self.second_latencies.push(took);
        }
        if worker == NONE {
            return;
        }
        let w = &mut self.workers[worker as usize];
        if w.remaining != u32::MAX {
            w.remaining -= 1;
        }
        if w.remaining == 0 {
            self.check_closed_loop_over();
            return;
        }
        let delay = w.next_at.saturating_sub(self.now);
        if matches!(outcome, Outcome::Overflow | Outcome::NoHealthy | Outcome::Connect) {
            // Envoy closes the downstream connection after a local reply; Fortio reconnects,
            // maybe to another Envoy worker.
            let envoy_worker = self.random_envoy_worker();
            let w = &mut self.workers[worker as usize];
            w.envoy_worker = envoy_worker;
            w.reconnect = true;
        }
        self.schedule(delay, Ev::Send { worker });
    }

    // ---- The replicas ----

    fn service_change(&mut self, s: usize, d_in: i64, d_busy: i64, d_queued: i64) {
        let now = self.now;
        let sv = &mut self.services[s];
        let dt = u128::from(now - sv.since);
        sv.area_in_system += u128::from(sv.in_system) * dt;
        sv.area_busy += u128::from(sv.busy) * dt;
        sv.since = now;
        sv.in_system = (sv.in_system as i64 + d_in) as u64;
        sv.busy = (sv.busy as i64 + d_busy) as u64;
        sv.queued = (sv.queued as i64 + d_queued) as u64;
    }

    fn on_replica_arrival(&mut self, att: u32) {
        let c = self.attempts.items[att as usize].cluster as usize;
        let d = self.clusters[c].dest as usize;
        let r = self.replica_base[d] + self.attempts.items[att as usize].host;
        self.services[d].arrivals += 1;
        let rep = &self.replicas[r as usize];
        let dest = &self.dests[d];
        let has_room = rep.busy < dest.concurrency;
        if !has_room && rep.queue.len() as u32 >= dest.queue_limit {
            // Overloaded: 503 at once.
            self.services[d].rejected += 1;
            let hop = self.hops.upstream;
            return self.schedule(hop, Ev::Answer { att, status: 503 });
        }
        let job = self.jobs.insert(Job {
            replica: r,
            att,
            arrived: self.now,
            step: 0,
            waiting: 0,
            failed: false,
            has_slot: false,
            started: false,
            fault: false,
            // A request given up on while it crossed to the replica.
            cancelled: self.options.cancel_abandoned && self.attempts.items[att as usize].state == AttState::Abandoned,
        });
        self.attempts.items[att as usize].job = job;
        self.service_change(d, 1, 0, 0);
        if has_room {
            self.take_slot(job);
            self.run_script(job);
        } else {
            self.replicas[r as usize].queue.push_back(job);
            self.service_change(d, 0, 0, 1);
        }
    }

    fn take_slot(&mut self, job: u32) {
        let r = self.jobs.items[job as usize].replica as usize;
        self.replicas[r].busy += 1;
        self.jobs.items[job as usize].has_slot = true;
        let s = self.replicas[r].service as usize;
        self.service_change(s, 0, 1, 0);
    }

    /// The job gives up its slot; the replica's next queued request takes it.
    fn release_slot(&mut self, job: u32) {
        let r = self.jobs.items[job as usize].replica as usize;
        self.jobs.items[job as usize].has_slot = false;
        self.replicas[r].busy -= 1;
        let s = self.replicas[r].service as usize;
        self.service_change(s, 0, -1, 0);
        if let Some(next) = self.replicas[r].queue.pop_front() {
            self.service_change(s, 0, 0, -1);
            self.take_slot(next);
            self.run_script(next);
        }
    }

    /// Runs `job`'s script from its current step until it sleeps, calls, waits for a slot,
    /// or ends.
    fn run_script(&mut self, job: u32) {
        let r = self.jobs.items[job as usize].replica as usize;
        let s = self.replicas[r].service as usize;
        let topology = self.topology;
        let svc = &topology.services[s];
        if !self.jobs.items[job as usize].started {
            self.jobs.items[job as usize].started = true;
            // Isotope's error counter, before the script: every N-th request fails.
            if let Some(every) = svc.error_every {
                self.replicas[r].error_count += 1;
                if self.replicas[r].error_count >= every {
                    self.replicas[r].error_count = 0;
                    return self.end_job(job, 500);
                }
            }
            if self.fault_share > 0.0 && self.rng.random::<f64>() < self.fault_share {
                self.jobs.items[job as usize].fault = true;
            }
        }
        loop {
            let j = &self.jobs.items[job as usize];
            if j.cancelled {
                return self.end_job(job, 500);
            }
            let step = j.step as usize;
            let Some(st) = svc.script.get(step) else {
                let status = if j.failed {
                    500
                } else if j.fault {
                    503
                } else {
                    200
                };
                return self.end_job(job, status);
            };
            match st {
                Step::Sleep(time) => {
                    if !j.has_slot {
                        let rep = &self.replicas[r];
                        if rep.busy < self.dests[s].concurrency {
                            self.take_slot(job);
                        } else {
                            // Back in line for a slot (already admitted: no queue limit).
                            self.replicas[r].queue.push_back(job);
                            self.service_change(s, 0, 0, 1);
                            return;
                        }
                    }
                    let t = self.service_time(*time);
                    return self.schedule(t, Ev::SleepDone { job });
                }
                Step::Calls(calls) => {
                    let mut made = 0u16;
                    let first_cluster = self.cluster_base[1 + r];
                    for call in calls {
                        if call.probability < 100 && self.rng.random_range(0..100u8) >= call.probability {
                            continue;
                        }
                        let k = self.callees[s].iter().position(|&d| d as usize == call.service).unwrap_or(0) as u32;
                        made += 1;
                        let worker = self.random_envoy_worker();
                        self.new_exchange(first_cluster + k, Caller::Job { job }, worker, 0);
                    }
                    if made == 0 {
                        self.jobs.items[job as usize].step += 1;
                        continue;
                    }
                    self.jobs.items[job as usize].waiting = made;
                    if self.jobs.items[job as usize].has_slot && !svc.hold_while_calling {
                        self.release_slot(job);
                    }
                    return;
                }
            }
        }
    }

    fn service_time(&mut self, time: ServiceTime) -> Nanos {
        let seconds = match time {
            ServiceTime::Constant(s) => s,
            ServiceTime::Exponential { mean } => {
                let u: f64 = self.rng.random();
                -mean * (1.0 - u).ln()
            }
            ServiceTime::Lognormal { median, sigma } => {
                let z: f64 = self.rng.sample(StandardNormal);
                median * (sigma * z).exp()
            }
        };
        // Isotope's sleeps are timers: the run's speed factor (a busy node, a slow CPU)
        // stretches the testbed's latencies, not them.
        ms(seconds * 1e3)
    }

    fn call_returned(&mut self, job: u32, ok: bool) {
        let j = &mut self.jobs.items[job as usize];
        j.waiting -= 1;
        if !ok {
            j.failed = true;
        }
        if j.waiting > 0 {
            return;
        }
        if j.failed {
            // Isotope stops the script at a failed call and answers 500.
            return self.end_job(job, 500);
        }
        j.step += 1;
        self.run_script(job);
    }

    fn end_job(&mut self, job: u32, status: u16) {
        if self.jobs.items[job as usize].has_slot {
            self.release_slot(job);
        }
        let j = &self.jobs.items[job as usize];
        let (att, arrived, r) = (j.att, j.arrived, j.replica as usize);
        let s = self.replicas[r].service as usize;
        self.services[s].completed += 1;
        self.services[s].sojourn_ns += u128::from(self.now - arrived);
        self.service_change(s, -1, 0, 0);
        self.jobs.remove(job);
        self.attempts.items[att as usize].job = NONE;
        let hop = self.hops.upstream;
        self.schedule(hop, Ev::Answer { att, status });
    }

    // ---- Output ----

    fn on_tick(&mut self) {
        // The row covers the second that just ended: [second, second + 1).
        let second = (self.now / SECOND) as u32 - 1;
        self.second_latencies.sort_unstable();
        let p99 = if self.second_latencies.is_empty() {
            f64::NAN
        } else {
            let n = self.second_latencies.len();
            self.second_latencies[((0.99 * n as f64).ceil() as usize).clamp(1, n) - 1] as f64 / 1e6
        };
        self.second_latencies.clear();
        let mut row = std::mem::replace(&mut self.second, SecondRow::new(self.services.len()));
        row.second = second;
        row.p99_ms = p99;
        for (s, sv) in self.services.iter().enumerate() {
            row.in_flight[s] = sv.in_system;
            row.queued[s] = sv.queued;
        }
        if let Some(series) = &mut self.series {
            series.rows.push(row);
        }
        if !(self.load_over && self.entry_outstanding == 0) {
            self.schedule(SECOND, Ev::Tick);
        }
    }

    fn finish(mut self) -> MeshResult {
        let end = self.now;
        for s in 0..self.services.len() {
            self.service_change(s, 0, 0, 0);
        }
        let duration_s = self.last_answer as f64 / 1e9;
        let requests = self.entry_requests;
        let failed = requests - self.entry_ok;
        let q = |p: f64| self.entry_latency.value_at_quantile(p) as f64 / 1e6;
        let latency_ms = if requests > 0 {
            Latency { mean: self.latency_sum as f64 / requests as f64 / 1e6, p50: q(0.50), p90: q(0.90), p99: q(0.99) }
        } else {
            Latency::default()
        };
        let entry = EntryStats {
            requests,
            ok: self.entry_ok,
            failed,
            failure_share: if requests > 0 { failed as f64 / requests as f64 } else { 0.0 },
            goodput_per_s: if duration_s > 0.0 { self.entry_ok as f64 / duration_s } else { 0.0 },
            latency_ms,
        };
        let span = end.max(1) as f64;
        let services = self
            .topology
            .services
            .iter()
            .zip(&self.services)
            .enumerate()
            .map(|(s, (svc, sv))| {
                let capacity = f64::from(svc.replicas) * svc.concurrency.map_or(1.0, f64::from);
                ServiceStats {
                    name: svc.name.clone(),
                    arrivals: sv.arrivals,
                    rejected: sv.rejected,
                    utilisation: sv.area_busy as f64 / span / capacity,
                    mean_sojourn_ms: if sv.completed > 0 { sv.sojourn_ns as f64 / sv.completed as f64 / 1e6 } else { 0.0 },
                    mean_in_system: sv.area_in_system as f64 / span,
                    completed: sv.completed,
                    replicas: self.dests[s].replicas,
                }
            })
            .collect();
        let recovery = match (self.load.spike(), &self.series) {
            (Some(spike), Some(series)) => Some(Recovery::of(series, &spike, self.load.offered_s().unwrap_or(0.0))),
            _ => None,
        };
        let series = if self.options.time_series { self.series } else { None };
        MeshResult { seed: self.seed, duration_s, entry, edges: self.edges, services, recovery, series }
    }
}

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
//!
//! This file holds the run (setup, event loop, the load, the output); `sidecar.rs` steps 1,
//! 2 and 5, `replica.rs` steps 3 and 4, `state.rs` the types they share, `queue.rs` the event queue.

mod queue;
mod replica;
mod sidecar;
mod state;

use std::collections::VecDeque;

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, StandardNormal};

use super::load::{Arrivals, MeshLoad};
use super::result::{EdgeStats, EntryStats, Latency, MeshResult, Recovery, SecondRow, ServiceStats, TimeSeries};
use super::rules::MeshRules;
use super::topology::Topology;
use crate::emulator::envoy;
use crate::emulator::Scenario;
use queue::EventQueue;
use state::*;

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
    /// One sick replica (issue 29's states); `None`: every replica as its service.
    pub sick: Option<SickReplica>,
    /// Count the entry's 200s answered within this many ms too (`goodput_within_bound_per_s`
    /// and the time series' `ok_within`); `None`: not counted.
    pub latency_bound_ms: Option<f64>,
    /// Record each edge's latency percentiles (`EdgeStats::latency_ms`), as the source
    /// sidecar's `istio_request_duration_milliseconds` shows them.
    pub edge_latency: bool,
}

/// One replica of one service made sick, as a pod on a failing node: each of its sleeps
/// `slowdown` times longer, and a `fail_share` of the requests it admits answered 500 at
/// once (drawn before the script, as Isotope's own errors).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SickReplica {
    /// Index of the service in the topology.
    pub service: usize,
    /// Which of its replicas (0-based).
    pub replica: u32,
    pub slowdown: f64,
    pub fail_share: f64,
}

impl SickReplica {
    /// Checks the numbers against the topology; the message names the field.
    pub fn validate(&self, topology: &Topology) -> std::result::Result<(), String> {
        let Some(service) = topology.services.get(self.service) else {
            return Err(format!("sick replica: no service number {}", self.service));
        };
        if self.replica >= service.replicas {
            return Err(format!(
                "sick replica: `{}` has {} replica(s), so there is no replica {}",
                service.name, service.replicas, self.replica
            ));
        }
        if !(self.slowdown.is_finite() && self.slowdown > 0.0) {
            return Err(format!("sick replica: slowdown must be a number > 0, but is {}", self.slowdown));
        }
        if !(0.0..=1.0).contains(&self.fail_share) {
            return Err(format!("sick replica: fail_share must be in [0, 1], but is {}", self.fail_share));
        }
        Ok(())
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

/// The mean and percentiles, ms, of a histogram of ns whose values sum to `sum_ns`.
fn latency_of(histogram: &Histogram<u64>, sum_ns: u128) -> Latency {
    let n = histogram.len();
    if n == 0 {
        return Latency::default();
    }
    let q = |p: f64| histogram.value_at_quantile(p) as f64 / 1e6;
    Latency { mean: sum_ns as f64 / n as f64 / 1e6, p50: q(0.50), p90: q(0.90), p99: q(0.99) }
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
    generation: u32,
    events: EventQueue,
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
    /// 200s within `options.latency_bound_ms`.
    entry_ok_within: u64,
    entry_latency: Histogram<u64>,
    /// Per edge when `options.edge_latency` (empty otherwise): the exchanges' latencies, ns,
    /// and their sum.
    edge_latency: Vec<(Histogram<u64>, u128)>,
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
                    limits: envoy::PoolLimits {
                        max_connections: p.rules.max_connections,
                        max_pending: p.rules.max_pending_requests,
                        max_requests: p.rules.http2_max_requests.unwrap_or(u32::MAX),
                    },
                    max_retries: p.rules.max_retries.unwrap_or(u32::MAX),
                    timeout: p.timeout_ms.map(ms),
                    // Istio drops a route's whole retry policy, its per-try timeout with
                    // it, when `attempts` is 0.
                    per_try: p.per_try_timeout_ms.filter(|_| p.rules.retries.attempts > 0).map(ms),
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
                breakers: envoy::Breakers::default(),
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
        let edge_latency = if options.edge_latency { vec![(latency_histogram(), 0); edges.len()] } else { Vec::new() };
        // A spike's recovery is read off the series.
        let series = (options.time_series || load.spike().is_some())
            .then(|| TimeSeries::new(topology.services.iter().map(|s| s.name.clone()).collect()));
        let services_n = topology.services.len();
        let hops = Hops::of(sc, speed);
        let events = EventQueue::new(&hops.fixed_delays());
        Mesh {
            topology,
            load,
            sc,
            options,
            seed,
            rng,
            speed,
            hops,
            handshake_scale: (sc.run_handshake_sigma * z_handshake).exp(),
            fault_share: (sc.fault_share * (sc.run_fault_sigma * z_fault).exp()).min(1.0),
            now: 0,
            generation: 0,
            events,
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
            entry_ok_within: 0,
            entry_latency,
            edge_latency,
            latency_sum: 0,
            last_answer: 0,
            series,
            second: SecondRow::new(services_n),
            second_latencies: Vec::new(),
        }
    }

    #[inline]
    fn schedule(&mut self, after: Nanos, ev: Ev) {
        self.events.push(self.now, after, ev);
    }

    fn simulate(mut self) -> MeshResult {
        self.start_load();
        if self.series.is_some() {
            self.schedule(SECOND, Ev::Tick);
        }
        while let Some((at, ev)) = self.events.pop() {
            self.now = at;
            self.handle(ev);
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
        let latency_ms = latency_of(&self.entry_latency, self.latency_sum);
        let entry = EntryStats {
            requests,
            ok: self.entry_ok,
            failed,
            failure_share: if requests > 0 { failed as f64 / requests as f64 } else { 0.0 },
            goodput_per_s: if duration_s > 0.0 { self.entry_ok as f64 / duration_s } else { 0.0 },
            goodput_within_bound_per_s: self.options.latency_bound_ms.map(|_| {
                if duration_s > 0.0 {
                    self.entry_ok_within as f64 / duration_s
                } else {
                    0.0
                }
            }),
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
        for (edge, (histogram, sum_ns)) in self.edges.iter_mut().zip(&self.edge_latency) {
            edge.latency_ms = Some(latency_of(histogram, *sum_ns));
        }
        let series = if self.options.time_series { self.series } else { None };
        MeshResult { seed: self.seed, duration_s, entry, edges: self.edges, services, recovery, series }
    }
}

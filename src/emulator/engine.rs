//! The discrete-event core: one Fortio load test against one Envoy client sidecar and its
//! upstream replicas. Times are integer nanoseconds so that event order is exact and
//! reproducible; ties break by scheduling order.
//!
//! The DestinationRule knobs of issue 15 (`http2_max_requests`, `max_retries`, retries, the
//! load balancer, the connect timeout, misbehaving replicas) follow Envoy's code paths named
//! in `knobs.rs`. Each one, at its default, takes no random draw and schedules no event, so
//! a default rule on a default scenario replays the engine as it was before them, draw for
//! draw (the test `default_knobs_replay_the_engine_bit_for_bit` holds a digest). With every
//! knob off, `run` uses the engine compiled without their checks (`Sim<false>`), so the
//! datasets' path costs what it did.
//!
//! Longer than the 700 lines of non-test code a file keeps to: one event loop whose handlers
//! share the simulation's state, split only when the mesh emulator reshapes it (a split now
//! would have to keep S1-S5 byte-identical for no design gain).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::envoy;
use super::knobs::LoadBalancer;
use super::scenario::Scenario;
use super::{RunDetails, RunResult};
use crate::rules::{Load, TrafficRules};

type Nanos = u64;

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A Fortio worker's request reaches the client sidecar (after hop and filter chain).
    AtSidecar { worker: u32 },
    /// An upstream connection finished its handshake.
    ConnectDone { conn: u32 },
    /// An upstream connection attempt failed: refused, or its connect timeout fired.
    ConnectFailed { conn: u32 },
    /// A retry's back-off timer fired: the router picks a host again.
    Retry { worker: u32 },
    /// A request reaches its replica.
    AtReplica { conn: u32 },
    /// A replica finished serving the request on `conn`.
    ServiceDone { conn: u32 },
    /// The upstream response reaches the client sidecar.
    ResponseAtSidecar { conn: u32 },
    /// The next event-loop turn after `conn` was freed by a response.
    ConnFree { conn: u32 },
    /// A response (upstream or local reply) reaches the Fortio worker.
    AtClient { worker: u32 },
}

struct Event {
    at: Nanos,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    // Reversed: BinaryHeap is a max-heap, we want the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Ok,
    /// Local 503, pending queue full (Envoy flag UO).
    Overflow,
    /// Local 503, every host ejected (Envoy flag UH).
    NoHealthy,
    /// 503 answered by the replica (injected fault or overload).
    Upstream,
    /// Local 503, the upstream connection failed or timed out (Envoy flag UF).
    ConnectFail,
}

struct Worker {
    /// Envoy worker thread serving this Fortio worker's current downstream connection.
    envoy_worker: u32,
    remaining: u32,
    sent_at: Nanos,
    outcome: Outcome,
    /// The current request's retries.
    retry: envoy::RetryState,
    /// Hosts the current request tried, one bit per host (mod 64): previous_hosts.
    tried: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ConnState {
    Connecting,
    Idle,
    /// Carrying `worker`'s request; `fault` once the replica decided to answer 503.
    Busy {
        worker: u32,
        fault: bool,
    },
    /// Freed by a response, waiting for the next event-loop turn.
    Freed,
    Closed,
}

struct Conn {
    pool: u32,
    /// The upstream host (`pool % replicas`, kept to spare a division per event).
    host: u32,
    state: ConnState,
    served: u32,
}

#[derive(Default)]
struct Host {
    busy: u32,
    queue: VecDeque<u32>,
    /// Requests attached to a connection to this host, all Envoy workers together (Envoy's
    /// host stat `rq_active`, which LEAST_REQUEST compares).
    active: u32,
    /// Share of served requests answered 503 (the run's fault share, combined with this
    /// replica's own).
    fault_share: f64,
    /// Median service time, ms (the scenario's times this replica's slowdown).
    service_ms: f64,
    /// Shares of new connections refused and slow (lost SYN).
    connect_fail: f64,
    slow_connect: f64,
}

/// Per-run draws fixed at the start: the run-to-run noise of a real testbed.
struct RunNoise {
    speed: f64,
    handshake: f64,
    fault_share: f64,
}

/// One load test in progress. `KNOBS` is false when every issue-15 knob is off (no retries,
/// round robin, no `max_requests`, no connect faults): that engine is compiled without the
/// knobs' checks, so the datasets' path costs what it did before them.
struct Sim<'a, const KNOBS: bool> {
    rules: &'a TrafficRules,
    sc: &'a Scenario,
    rng: ChaCha8Rng,
    noise: RunNoise,
    now: Nanos,
    seq: u64,
    events: BinaryHeap<Event>,
    workers: Vec<Worker>,
    conns: Vec<Conn>,
    free_conns: Vec<u32>,
    /// One HTTP/1.1 connection pool per Envoy worker and upstream host, queueing workers.
    pools: Vec<envoy::ConnPool<u32>>,
    hosts: Vec<Host>,
    /// Each host's outlier-detection state, beside `hosts`.
    outliers: Vec<envoy::Outlier>,
    outlier_rules: envoy::OutlierRules,
    round_robin: Vec<u32>,
    /// Eligible hosts of the current pick (LEAST_REQUEST, RANDOM); reused, no allocation.
    eligible: Vec<u32>,
    /// The cluster's breakers; `active` is counted only when `track_active`.
    breakers: envoy::Breakers,
    limits: envoy::PoolLimits,
    max_retries: u32,
    /// Requests in flight are counted (for LEAST_REQUEST and `max_requests`).
    track_active: bool,
    /// Retries a request may make (0 when the policy is off: no retry state is kept).
    retry_attempts: u16,
    /// Retries pick hosts this request has not tried (previous_hosts).
    avoid_tried_hosts: bool,
    /// Some replica has connect faults (else no connect draws a fault).
    connect_faults: bool,
    connect_timeout: Nanos,
    latencies: Vec<Nanos>,
    details: RunDetails,
    finished_at: Nanos,
}

use envoy::ms;

/// A host's bit in a request's set of tried hosts (hosts 64 apart share a bit).
fn host_bit(h: usize) -> u64 {
    1u64 << (h % 64)
}

/// Runs one load test. Deterministic in (`rules`, `load`, `scenario`, `seed`).
pub fn run(rules: &TrafficRules, load: &Load, sc: &Scenario, seed: u64) -> RunResult {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let z_speed: f64 = rng.sample(StandardNormal);
    let z_fault: f64 = rng.sample(StandardNormal);
    let z_handshake: f64 = rng.sample(StandardNormal);
    let noise = RunNoise {
        speed: (sc.run_speed_sigma * z_speed).exp(),
        handshake: (sc.run_handshake_sigma * z_handshake).exp(),
        fault_share: (sc.fault_share * (sc.run_fault_sigma * z_fault).exp()).min(1.0),
    };
    let replicas = sc.replicas as usize;
    let hosts = (0..replicas)
        .map(|i| {
            let b = sc.replica_behaviour.get(i);
            let own_faults = b.map_or(0.0, |b| b.fault_share);
            Host {
                // Either fault fails the request; no replica fault keeps the run's share as is.
                fault_share: if own_faults > 0.0 { 1.0 - (1.0 - noise.fault_share) * (1.0 - own_faults) } else { noise.fault_share },
                service_ms: sc.service_time_ms * b.map_or(1.0, |b| b.slowdown),
                connect_fail: b.map_or(0.0, |b| b.connect_fail_share),
                slow_connect: b.map_or(0.0, |b| b.slow_connect_share),
                ..Host::default()
            }
        })
        .collect();
    if uses_knobs(rules, sc) {
        start::<true>(rules, sc, load, rng, noise, hosts).simulate(load)
    } else {
        start::<false>(rules, sc, load, rng, noise, hosts).simulate(load)
    }
}

/// Active requests are counted only where a knob reads them.
fn tracks_active(rules: &TrafficRules) -> bool {
    rules.load_balancer == LoadBalancer::LeastRequest || rules.http2_max_requests.is_some()
}

fn retry_attempts(rules: &TrafficRules) -> u16 {
    if rules.retries.is_off() {
        0
    } else {
        rules.retries.attempts.min(u16::MAX as u32) as u16
    }
}

fn has_connect_faults(sc: &Scenario) -> bool {
    sc.replica_behaviour.iter().any(|b| b.connect_fail_share + b.slow_connect_share > 0.0)
}

/// Whether any knob is on; if none is, the engine compiled without their checks runs.
fn uses_knobs(rules: &TrafficRules, sc: &Scenario) -> bool {
    tracks_active(rules) || retry_attempts(rules) > 0 || has_connect_faults(sc) || rules.load_balancer != LoadBalancer::RoundRobin
}

/// A run's state before its first event, for the engine with or without the knobs' checks.
fn start<'a, const KNOBS: bool>(
    rules: &'a TrafficRules,
    sc: &'a Scenario,
    load: &Load,
    rng: ChaCha8Rng,
    noise: RunNoise,
    hosts: Vec<Host>,
) -> Sim<'a, KNOBS> {
    let n_pools = sc.envoy_workers as usize * sc.replicas as usize;
    Sim {
        rules,
        sc,
        rng,
        noise,
        now: 0,
        seq: 0,
        events: BinaryHeap::with_capacity(4 * load.threads as usize + 16),
        workers: Vec::with_capacity(load.threads as usize),
        conns: Vec::new(),
        free_conns: Vec::new(),
        pools: (0..n_pools).map(|_| envoy::ConnPool::default()).collect(),
        outliers: vec![envoy::Outlier::default(); hosts.len()],
        outlier_rules: envoy::OutlierRules {
            consecutive_5xx: rules.consecutive_errors,
            max_ejection_percent: rules.max_ejection_percent,
            base_ejection_time_s: rules.ejection_time_s,
            interval_ns: ms(rules.interval_s * 1e3).max(1),
            ejection_rule: sc.ejection_rule,
        },
        hosts,
        round_robin: vec![0; sc.envoy_workers as usize],
        eligible: Vec::new(),
        breakers: envoy::Breakers::default(),
        limits: envoy::PoolLimits {
            max_connections: rules.max_connections,
            max_pending: rules.max_pending_requests,
            max_requests: rules.http2_max_requests.unwrap_or(u32::MAX),
        },
        track_active: tracks_active(rules),
        retry_attempts: retry_attempts(rules),
        avoid_tried_hosts: retry_attempts(rules) > 0 && rules.retries.previous_hosts,
        connect_faults: has_connect_faults(sc),
        max_retries: rules.max_retries.unwrap_or(u32::MAX),
        connect_timeout: ms(rules.connect_timeout_ms),
        latencies: Vec::with_capacity(load.calls as usize),
        details: RunDetails::default(),
        finished_at: 0,
    }
}

impl<'a, const KNOBS: bool> Sim<'a, KNOBS> {
    fn simulate(mut self, load: &Load) -> RunResult {
        self.start(load);
        while let Some(ev) = self.events.pop() {
            self.now = ev.at;
            self.handle(ev.kind);
        }
        self.finish(load)
    }

    fn schedule(&mut self, after: Nanos, kind: Kind) {
        self.seq += 1;
        self.events.push(Event { at: self.now + after, seq: self.seq, kind });
    }

    /// A latency of the testbed in ns, scaled by this run's speed factor.
    fn latency(&self, median_ms: f64) -> Nanos {
        ms(median_ms * self.noise.speed)
    }

    fn lognormal_latency(&mut self, median_ms: f64, sigma: f64) -> Nanos {
        let z: f64 = self.rng.sample(StandardNormal);
        ms(median_ms * self.noise.speed * (sigma * z).exp())
    }

    fn random_envoy_worker(&mut self) -> u32 {
        self.rng.random_range(0..self.sc.envoy_workers)
    }

    /// Fortio: THREADS workers, CALLS / THREADS calls each, worker 0 takes the remainder.
    fn start(&mut self, load: &Load) {
        let threads = load.threads.max(1);
        let per_worker = load.calls / threads;
        let remainder = load.calls % threads;
        let to_sidecar = self.latency(self.sc.downstream_hop_ms + self.sc.sidecar_processing_ms);
        for w in 0..threads {
            let calls = per_worker + if w == 0 { remainder } else { 0 };
            let envoy_worker = self.random_envoy_worker();
            self.workers.push(Worker {
                envoy_worker,
                remaining: calls,
                sent_at: 0,
                outcome: Outcome::Ok,
                retry: envoy::RetryState::default(),
                tried: 0,
            });
            if calls > 0 {
                self.details.sockets += 1;
                // Fortio's goroutines start within a few microseconds of each other.
                let jitter = self.rng.random_range(0..20_000);
                self.workers[w as usize].sent_at = jitter;
                self.schedule(jitter + to_sidecar, Kind::AtSidecar { worker: w });
            }
        }
    }

    fn handle(&mut self, kind: Kind) {
        match kind {
            Kind::AtSidecar { worker } => self.on_request(worker),
            Kind::ConnectDone { conn } => self.on_connected(conn),
            Kind::ConnectFailed { conn } => self.on_connect_failed(conn),
            Kind::Retry { worker } => self.route(worker),
            Kind::AtReplica { conn } => self.on_replica_arrival(conn),
            Kind::ServiceDone { conn } => self.on_service_done(conn),
            Kind::ResponseAtSidecar { conn } => self.on_upstream_response(conn),
            Kind::ConnFree { conn } => self.on_conn_free(conn),
            Kind::AtClient { worker } => self.on_client_response(worker),
        }
    }

    /// The load balancer's pick among the healthy hosts (all hosts in panic mode); `None`
    /// means "no healthy upstream". A retry with previous_hosts passes the hosts it tried in
    /// `avoid`: like Envoy's `chooseHost`, the pick is redone while it lands on one of them,
    /// at most `host_selection_retry_max_attempts` times, and the last pick stands.
    fn choose_host(&mut self, envoy_worker: usize, avoid: u64) -> Option<usize> {
        if KNOBS && (avoid != 0 || self.rules.load_balancer != LoadBalancer::RoundRobin) {
            return self.choose_host_with_knobs(envoy_worker, avoid);
        }
        let (healthy, panic) = self.healthy_hosts();
        if healthy == 0 && !panic {
            return None;
        }
        self.round_robin_once(envoy_worker, panic)
    }

    /// The number of healthy hosts (returning the ejected ones whose time is up) and
    /// whether the cluster is in panic mode.
    #[inline]
    fn healthy_hosts(&mut self) -> (usize, bool) {
        envoy::healthy_hosts(&mut self.outliers, self.now, self.sc.panic_threshold_percent)
    }

    /// `choose_host` for LEAST_REQUEST, RANDOM, or a retry avoiding the hosts it tried.
    #[cold]
    #[inline(never)]
    fn choose_host_with_knobs(&mut self, envoy_worker: usize, avoid: u64) -> Option<usize> {
        let (healthy, panic) = self.healthy_hosts();
        if healthy == 0 && !panic {
            return None;
        }
        let n = self.hosts.len();
        let lb = self.rules.load_balancer;
        if lb != LoadBalancer::RoundRobin {
            self.eligible.clear();
            self.eligible.extend((0..n as u32).filter(|&h| panic || !self.outliers[h as usize].ejected));
        }
        let picks = if avoid == 0 { 1 } else { 1 + self.rules.retries.host_selection_retry_max_attempts };
        let mut pick = None;
        for _ in 0..picks {
            let h = match lb {
                LoadBalancer::RoundRobin => self.round_robin_once(envoy_worker, panic)?,
                LoadBalancer::LeastRequest => self.least_request_once(),
                LoadBalancer::Random => self.eligible[self.rng.random_range(0..self.eligible.len())] as usize,
            };
            pick = Some(h);
            if avoid & host_bit(h) == 0 {
                break;
            }
        }
        pick
    }

    /// Round robin over healthy hosts, per Envoy worker ([`envoy::round_robin_pick`]).
    #[inline]
    fn round_robin_once(&mut self, envoy_worker: usize, panic: bool) -> Option<usize> {
        let outliers = &self.outliers;
        envoy::round_robin_pick(&mut self.round_robin[envoy_worker], outliers.len(), |h| panic || !outliers[h].ejected)
    }

    /// Envoy's power of two choices among the eligible hosts ([`envoy::least_request_pick`]).
    fn least_request_once(&mut self) -> usize {
        let hosts = &self.hosts;
        envoy::least_request_pick(&mut self.rng, &self.eligible, |h| hosts[h].active)
    }

    fn local_reply(&mut self, worker: u32, outcome: Outcome) {
        self.workers[worker as usize].outcome = outcome;
        let back = self.latency(self.sc.downstream_hop_ms);
        self.schedule(back, Kind::AtClient { worker });
    }

    /// A new request reaches the router: its retry state starts afresh.
    fn on_request(&mut self, worker: u32) {
        if KNOBS && self.retry_attempts > 0 {
            let w = &mut self.workers[worker as usize];
            w.retry = envoy::RetryState::start(self.retry_attempts);
            w.tried = 0;
        }
        self.route(worker);
    }

    /// Envoy's router, for a first try or a retry: pick a host, then that host's pool on
    /// this worker.
    fn route(&mut self, worker: u32) {
        let w = &self.workers[worker as usize];
        let envoy_worker = w.envoy_worker as usize;
        let avoid = if KNOBS && self.avoid_tried_hosts { w.tried } else { 0 };
        let Some(host) = self.choose_host(envoy_worker, avoid) else {
            return self.attempt_done(worker, Outcome::NoHealthy);
        };
        if KNOBS && self.avoid_tried_hosts {
            self.workers[worker as usize].tried |= host_bit(host);
        }
        let p = envoy_worker * self.hosts.len() + host;
        let had_idle = !self.pools[p].idle.is_empty();
        match self.pools[p].admit(worker, &mut self.breakers, &self.limits) {
            envoy::Admission::Attach(conn) => self.attach(conn, worker),
            envoy::Admission::Queued => self.maybe_connect(p),
            // A ready connection was refused by http2MaxRequests; else the pending queue is full.
            envoy::Admission::Overflow if had_idle => self.max_requests_overflow(worker, host),
            envoy::Admission::Overflow => self.attempt_done(worker, Outcome::Overflow),
        }
    }

    /// The `max_requests` circuit breaker (http2MaxRequests) refused a request about to be
    /// attached to a connection to `host`: local 503 (UO), never retried. Envoy < 1.26 also
    /// reported it to outlier detection (scenario `overflow_counts_for_outliers`).
    #[cold]
    #[inline(never)]
    fn max_requests_overflow(&mut self, worker: u32, host: usize) {
        if self.sc.overflow_counts_for_outliers {
            self.record_outlier(host, true);
        }
        self.attempt_done(worker, Outcome::Overflow);
    }

    fn retriable(&self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Upstream => self.rules.retries.on_503,
            Outcome::ConnectFail => self.rules.retries.on_connect_failure,
            // Envoy never retries an overflow (a reset of reason overflow) nor its own
            // "no healthy upstream" reply.
            Outcome::Ok | Outcome::Overflow | Outcome::NoHealthy => false,
        }
    }

    /// Envoy's jittered back-off of retry `k` (0-based), in ns ([`envoy::backoff_ms`]).
    fn backoff(&mut self, k: u32) -> Nanos {
        envoy::backoff_ms(&mut self.rng, self.rules.retries.backoff_base_ms, k) * 1_000_000
    }

    /// One upstream attempt of `worker`'s request ended with `outcome`: Envoy's router
    /// retries it if the policy and the `max_retries` circuit breaker allow, else the
    /// response goes back to Fortio.
    #[inline]
    fn attempt_done(&mut self, worker: u32, outcome: Outcome) {
        if KNOBS && self.retry_attempts > 0 && self.retried(worker, outcome) {
            return;
        }
        match outcome {
            Outcome::Ok | Outcome::Upstream => {
                self.workers[worker as usize].outcome = outcome;
                let back = self.latency(self.sc.sidecar_processing_ms + self.sc.downstream_hop_ms);
                self.schedule(back, Kind::AtClient { worker });
            }
            Outcome::Overflow | Outcome::NoHealthy | Outcome::ConnectFail => self.local_reply(worker, outcome),
        }
    }

    /// Envoy's `RetryStateImpl::shouldRetry`: releases the request's hold on the
    /// `max_retries` circuit breaker, then schedules a retry after its back-off if the
    /// outcome is retriable, retries remain and the circuit breaker has room.
    #[cold]
    #[inline(never)]
    fn retried(&mut self, worker: u32, outcome: Outcome) -> bool {
        let i = worker as usize;
        self.workers[i].retry.release(&mut self.breakers.retries);
        let (retriable, room) = (self.retriable(outcome), self.breakers.retries < self.max_retries);
        match self.workers[i].retry.should_retry(retriable, room, &mut self.breakers.retries) {
            Some(k) => {
                self.details.retries += 1;
                let wait = self.backoff(k);
                self.schedule(wait, Kind::Retry { worker });
                true
            }
            None => false,
        }
    }

    /// Opens the connections pool `p` wants ([`envoy::ConnPool::open_connection`]), each
    /// with its handshake drawn.
    #[inline(always)]
    fn maybe_connect(&mut self, p: usize) {
        while self.pools[p].open_connection(&mut self.breakers, &self.limits) {
            let host = p % self.hosts.len();
            let conn = Conn { pool: p as u32, host: host as u32, state: ConnState::Connecting, served: 0 };
            let id = match self.free_conns.pop() {
                Some(id) => {
                    self.conns[id as usize] = conn;
                    id
                }
                None => {
                    self.conns.push(conn);
                    self.conns.len() as u32 - 1
                }
            };
            let median = self.sc.handshake_ms * self.noise.handshake;
            let mut at = self.lognormal_latency(median, self.sc.handshake_sigma);
            let mut up = true;
            if KNOBS && self.connect_faults {
                (at, up) = self.connect_fault(host, at);
            }
            // Envoy's connect timer covers TCP and the TLS handshake (it stops at Connected).
            if at > self.connect_timeout {
                at = self.connect_timeout;
                up = false;
            }
            let kind = if up { Kind::ConnectDone { conn: id } } else { Kind::ConnectFailed { conn: id } };
            self.schedule(at, kind);
        }
    }

    /// A connect to `host` that would take `handshake`: refused after a round trip, slowed
    /// by a lost SYN, or unharmed, at the host's shares (one draw if it has any).
    #[cold]
    #[inline(never)]
    fn connect_fault(&mut self, host: usize, handshake: Nanos) -> (Nanos, bool) {
        let (refused, slow) = (self.hosts[host].connect_fail, self.hosts[host].slow_connect);
        if refused + slow <= 0.0 {
            return (handshake, true);
        }
        let u: f64 = self.rng.random();
        if u < refused {
            // A reset comes back after one round trip.
            (self.latency(2.0 * self.sc.upstream_hop_ms), false)
        } else if u < refused + slow {
            (handshake + ms(self.sc.slow_connect_ms), true)
        } else {
            (handshake, true)
        }
    }

    #[inline]
    fn attach(&mut self, conn: u32, worker: u32) {
        let c = &mut self.conns[conn as usize];
        c.state = ConnState::Busy { worker, fault: false };
        c.served += 1;
        if KNOBS && self.track_active {
            let h = c.host as usize;
            self.hosts[h].active += 1;
            self.breakers.active += 1;
        }
        let hop = self.latency(self.sc.upstream_hop_ms);
        self.schedule(hop, Kind::AtReplica { conn });
    }

    /// Give a ready connection the oldest pending request of its pool, or park it idle. At
    /// the `max_requests` limit each pending request it would take fails instead (Envoy's
    /// `onUpstreamReady` attaches pending streams while a client is ready).
    fn serve_pending_or_idle(&mut self, conn: u32) {
        let p = self.conns[conn as usize].pool as usize;
        while let Some(worker) = self.pools[p].take_pending(&mut self.breakers, |_| false) {
            if KNOBS && self.breakers.active >= self.limits.max_requests {
                self.max_requests_overflow(worker, self.conns[conn as usize].host as usize);
                continue;
            }
            return self.attach(conn, worker);
        }
        self.conns[conn as usize].state = ConnState::Idle;
        self.pools[p].idle.push(conn);
    }

    fn on_connected(&mut self, conn: u32) {
        let p = self.conns[conn as usize].pool as usize;
        self.pools[p].connected();
        self.serve_pending_or_idle(conn);
    }

    /// A connection attempt failed. Envoy's pool purges every pending request of the pool
    /// (`purgePendingStreams`); the router reports each one to outlier detection as a
    /// local-origin connect failure, which counts as a 5xx of the host
    /// (`split_external_local_origin_errors` is false by default), then retries it or
    /// answers 503 UF.
    #[cold]
    #[inline(never)]
    fn on_connect_failed(&mut self, conn: u32) {
        let p = self.conns[conn as usize].pool as usize;
        self.conns[conn as usize].state = ConnState::Closed;
        self.free_conns.push(conn);
        self.pools[p].connect_failed(&mut self.breakers);
        self.details.connect_failures += 1;
        let h = self.conns[conn as usize].host as usize;
        while let Some(worker) = self.pools[p].take_pending(&mut self.breakers, |_| false) {
            self.record_outlier(h, true);
            self.attempt_done(worker, Outcome::ConnectFail);
        }
    }

    fn host_of(&self, conn: u32) -> usize {
        self.conns[conn as usize].host as usize
    }

    fn set_fault(&mut self, conn: u32, is_fault: bool) {
        if let ConnState::Busy { fault, .. } = &mut self.conns[conn as usize].state {
            *fault = is_fault;
        }
    }

    fn on_replica_arrival(&mut self, conn: u32) {
        let h = self.host_of(conn);
        let host = &mut self.hosts[h];
        if host.busy < self.sc.replica_concurrency {
            self.start_service(conn);
        } else if (host.queue.len() as u32) < self.sc.replica_queue_limit {
            host.queue.push_back(conn);
        } else {
            // Overloaded replica: immediate 503, which outlier detection sees.
            self.set_fault(conn, true);
            let hop = self.latency(self.sc.upstream_hop_ms);
            self.schedule(hop, Kind::ResponseAtSidecar { conn });
        }
    }

    fn start_service(&mut self, conn: u32) {
        let h = self.host_of(conn);
        self.hosts[h].busy += 1;
        let fault = self.rng.random::<f64>() < self.hosts[h].fault_share;
        self.set_fault(conn, fault);
        let t = self.lognormal_latency(self.hosts[h].service_ms, self.sc.service_time_sigma);
        self.schedule(t, Kind::ServiceDone { conn });
    }

    fn on_service_done(&mut self, conn: u32) {
        let h = self.host_of(conn);
        self.hosts[h].busy -= 1;
        if let Some(next) = self.hosts[h].queue.pop_front() {
            self.start_service(next);
        }
        let hop = self.latency(self.sc.upstream_hop_ms);
        self.schedule(hop, Kind::ResponseAtSidecar { conn });
    }

    /// Outlier detection: consecutive 5xx per host, ejection within the budget
    /// ([`envoy::record_outlier`]).
    #[inline(always)]
    fn record_outlier(&mut self, h: usize, is_5xx: bool) {
        if envoy::record_outlier(&mut self.outliers, h, is_5xx, self.now, &self.outlier_rules) {
            self.details.ejections += 1;
        }
    }

    fn on_upstream_response(&mut self, conn: u32) {
        let ConnState::Busy { worker, fault } = self.conns[conn as usize].state else {
            unreachable!("a response arrived on a connection that carries no request");
        };
        let h = self.host_of(conn);
        self.record_outlier(h, fault);
        if KNOBS && self.track_active {
            self.hosts[h].active -= 1;
            self.breakers.active -= 1;
        }
        self.attempt_done(worker, if fault { Outcome::Upstream } else { Outcome::Ok });

        let p = self.conns[conn as usize].pool as usize;
        if self.conns[conn as usize].served >= self.rules.max_requests_per_connection {
            self.conns[conn as usize].state = ConnState::Closed;
            self.free_conns.push(conn);
            self.pools[p].closed(&mut self.breakers);
            self.maybe_connect(p);
        } else {
            self.conns[conn as usize].state = ConnState::Freed;
            let turn = self.latency(self.sc.event_loop_turn_ms);
            self.schedule(turn, Kind::ConnFree { conn });
        }
    }

    fn on_conn_free(&mut self, conn: u32) {
        self.serve_pending_or_idle(conn);
    }

    fn on_client_response(&mut self, worker: u32) {
        let w = &mut self.workers[worker as usize];
        self.latencies.push(self.now - w.sent_at);
        let outcome = w.outcome;
        w.remaining -= 1;
        match outcome {
            Outcome::Ok => self.details.ok_count += 1,
            Outcome::Overflow => self.details.fail_overflow += 1,
            Outcome::NoHealthy => self.details.fail_no_healthy += 1,
            Outcome::Upstream => self.details.fail_upstream += 1,
            Outcome::ConnectFail => self.details.fail_connect += 1,
        }
        if w.remaining == 0 {
            self.finished_at = self.finished_at.max(self.now);
            return;
        }
        w.sent_at = self.now;
        let mut delay = self.latency(self.sc.downstream_hop_ms + self.sc.sidecar_processing_ms);
        if matches!(outcome, Outcome::Overflow | Outcome::NoHealthy | Outcome::ConnectFail) {
            // Envoy closes the downstream connection after a local reply; Fortio reconnects,
            // and the new connection may land on another Envoy worker.
            self.details.sockets += 1;
            delay += self.latency(self.sc.reconnect_ms);
            self.workers[worker as usize].envoy_worker = self.random_envoy_worker();
        }
        self.schedule(delay, Kind::AtSidecar { worker });
    }

    fn finish(mut self, load: &Load) -> RunResult {
        let duration_s = self.finished_at as f64 / 1e9;
        let calls = self.latencies.len();
        debug_assert_eq!(calls as u32, load.calls);
        let mut d = self.details;
        d.duration_s = duration_s;
        if calls > 0 {
            self.latencies.sort_unstable();
            let to_ms = |ns: Nanos| ns as f64 / 1e6;
            d.latency_mean_ms = to_ms(self.latencies.iter().sum::<Nanos>()) / calls as f64;
            let rank = |q: f64| self.latencies[((q * calls as f64).ceil() as usize).clamp(1, calls) - 1];
            d.latency_p50_ms = to_ms(rank(0.50));
            d.latency_p90_ms = to_ms(rank(0.90));
            d.latency_p99_ms = to_ms(rank(0.99));
        }
        let failed = d.fail_overflow + d.fail_no_healthy + d.fail_upstream + d.fail_connect;
        RunResult {
            qps: if duration_s > 0.0 { calls as f64 / duration_s } else { 0.0 },
            failure_rate: if calls > 0 { failed as f64 / calls as f64 } else { 0.0 },
            details: d,
        }
    }
}

//! The discrete-event core: one Fortio load test against one Envoy client sidecar and its
//! upstream replicas. Times are integer nanoseconds so that event order is exact and
//! reproducible; ties break by scheduling order.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::scenario::{EjectionRule, Scenario};
use super::{RunDetails, RunResult};
use crate::rules::{Load, TrafficRules};

type Nanos = u64;

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A Fortio worker's request reaches the client sidecar (after hop and filter chain).
    AtSidecar { worker: u32 },
    /// An upstream connection finished its handshake.
    ConnectDone { conn: u32 },
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
}

struct Worker {
    /// Envoy worker thread serving this Fortio worker's current downstream connection.
    envoy_worker: u32,
    remaining: u32,
    sent_at: Nanos,
    outcome: Outcome,
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
    state: ConnState,
    served: u32,
}

/// One HTTP/1.1 connection pool: per Envoy worker and per upstream host.
#[derive(Default)]
struct Pool {
    idle: Vec<u32>,
    pending: VecDeque<u32>,
    /// Connections of this pool, connecting or connected.
    conns: u32,
    connecting: u32,
}

#[derive(Default)]
struct Host {
    consecutive_5xx: u32,
    ejections: u32,
    ejected: bool,
    returns_at: Nanos,
    busy: u32,
    queue: VecDeque<u32>,
}

/// Per-run draws fixed at the start: the run-to-run noise of a real testbed.
struct RunNoise {
    speed: f64,
    handshake: f64,
    fault_share: f64,
}

struct Sim<'a> {
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
    pools: Vec<Pool>,
    hosts: Vec<Host>,
    round_robin: Vec<u32>,
    total_conns: u32,
    total_pending: u32,
    interval: Nanos,
    latencies: Vec<Nanos>,
    details: RunDetails,
    finished_at: Nanos,
}

fn ms(x: f64) -> Nanos {
    (x * 1e6).round().max(0.0) as Nanos
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
    let n_pools = sc.envoy_workers as usize * replicas;
    let mut sim = Sim {
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
        pools: (0..n_pools).map(|_| Pool::default()).collect(),
        hosts: (0..replicas).map(|_| Host::default()).collect(),
        round_robin: vec![0; sc.envoy_workers as usize],
        total_conns: 0,
        total_pending: 0,
        interval: ms(rules.interval_s * 1e3).max(1),
        latencies: Vec::with_capacity(load.calls as usize),
        details: RunDetails::default(),
        finished_at: 0,
    };
    sim.start(load);
    while let Some(ev) = sim.events.pop() {
        sim.now = ev.at;
        sim.handle(ev.kind);
    }
    sim.finish(load)
}

impl<'a> Sim<'a> {
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
            self.workers.push(Worker { envoy_worker, remaining: calls, sent_at: 0, outcome: Outcome::Ok });
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
            Kind::AtReplica { conn } => self.on_replica_arrival(conn),
            Kind::ServiceDone { conn } => self.on_service_done(conn),
            Kind::ResponseAtSidecar { conn } => self.on_upstream_response(conn),
            Kind::ConnFree { conn } => self.on_conn_free(conn),
            Kind::AtClient { worker } => self.on_client_response(worker),
        }
    }

    fn host_healthy(&mut self, h: usize) -> bool {
        let host = &mut self.hosts[h];
        if host.ejected && self.now >= host.returns_at {
            host.ejected = false;
        }
        !host.ejected
    }

    /// Round robin over healthy hosts, per Envoy worker; `None` means "no healthy upstream".
    fn choose_host(&mut self, envoy_worker: usize) -> Option<usize> {
        let n = self.hosts.len();
        let healthy = (0..n).filter(|&h| self.host_healthy(h)).count();
        let panic = (healthy as f64) * 100.0 < self.sc.panic_threshold_percent * n as f64;
        if healthy == 0 && !panic {
            return None;
        }
        for _ in 0..n {
            let h = self.round_robin[envoy_worker] as usize % n;
            self.round_robin[envoy_worker] = self.round_robin[envoy_worker].wrapping_add(1);
            if panic || !self.hosts[h].ejected {
                return Some(h);
            }
        }
        None
    }

    fn local_reply(&mut self, worker: u32, outcome: Outcome) {
        self.workers[worker as usize].outcome = outcome;
        let back = self.latency(self.sc.downstream_hop_ms);
        self.schedule(back, Kind::AtClient { worker });
    }

    /// Envoy's router: pick a host, then that host's pool on this worker.
    fn on_request(&mut self, worker: u32) {
        let envoy_worker = self.workers[worker as usize].envoy_worker as usize;
        let Some(host) = self.choose_host(envoy_worker) else {
            return self.local_reply(worker, Outcome::NoHealthy);
        };
        let p = envoy_worker * self.hosts.len() + host;
        if let Some(conn) = self.pools[p].idle.pop() {
            return self.attach(conn, worker);
        }
        if self.total_pending < self.rules.max_pending_requests {
            self.pools[p].pending.push_back(worker);
            self.total_pending += 1;
            self.maybe_connect(p);
        } else {
            self.local_reply(worker, Outcome::Overflow);
        }
    }

    /// Open connections while pending requests outnumber those being opened, within
    /// `max_connections` cluster-wide, except that a pool with no connection may always
    /// open one (Envoy's guard against starving a pool).
    fn maybe_connect(&mut self, p: usize) {
        while self.pools[p].pending.len() as u32 > self.pools[p].connecting {
            let pool = &self.pools[p];
            if self.total_conns >= self.rules.max_connections && pool.conns > 0 {
                break;
            }
            let conn = Conn { pool: p as u32, state: ConnState::Connecting, served: 0 };
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
            self.pools[p].conns += 1;
            self.pools[p].connecting += 1;
            self.total_conns += 1;
            let median = self.sc.handshake_ms * self.noise.handshake;
            let handshake = self.lognormal_latency(median, self.sc.handshake_sigma);
            self.schedule(handshake, Kind::ConnectDone { conn: id });
        }
    }

    fn attach(&mut self, conn: u32, worker: u32) {
        let c = &mut self.conns[conn as usize];
        c.state = ConnState::Busy { worker, fault: false };
        c.served += 1;
        let hop = self.latency(self.sc.upstream_hop_ms);
        self.schedule(hop, Kind::AtReplica { conn });
    }

    /// Give a ready connection the oldest pending request of its pool, or park it idle.
    fn serve_pending_or_idle(&mut self, conn: u32) {
        let p = self.conns[conn as usize].pool as usize;
        if let Some(worker) = self.pools[p].pending.pop_front() {
            self.total_pending -= 1;
            self.attach(conn, worker);
        } else {
            self.conns[conn as usize].state = ConnState::Idle;
            self.pools[p].idle.push(conn);
        }
    }

    fn on_connected(&mut self, conn: u32) {
        let p = self.conns[conn as usize].pool as usize;
        self.pools[p].connecting -= 1;
        self.serve_pending_or_idle(conn);
    }

    fn host_of(&self, conn: u32) -> usize {
        self.conns[conn as usize].pool as usize % self.hosts.len()
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
        let fault = self.rng.random::<f64>() < self.noise.fault_share;
        self.set_fault(conn, fault);
        let t = self.lognormal_latency(self.sc.service_time_ms, self.sc.service_time_sigma);
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

    /// Outlier detection: consecutive 5xx per host, ejection within the budget.
    fn record_outlier(&mut self, h: usize, is_5xx: bool) {
        if !is_5xx {
            self.hosts[h].consecutive_5xx = 0;
            return;
        }
        self.hosts[h].consecutive_5xx += 1;
        if self.hosts[h].consecutive_5xx < self.rules.consecutive_errors || !self.host_healthy(h) {
            return;
        }
        let n = self.hosts.len();
        let active = (0..n).filter(|&i| !self.host_healthy(i)).count() as f64;
        let pct = self.rules.max_ejection_percent;
        let allowed = match self.sc.ejection_rule {
            EjectionRule::AtLeastOne => 100.0 * active / (n as f64) < pct,
            EjectionRule::Strict => 100.0 * (active + 1.0) / (n as f64) <= pct,
        };
        if !allowed {
            return;
        }
        let host = &mut self.hosts[h];
        host.ejected = true;
        host.ejections += 1;
        host.consecutive_5xx = 0;
        // Ejection time grows with the number of ejections; the host comes back only at
        // an interval tick after that time is up.
        let until = self.now + ms(self.rules.ejection_time_s * 1e3 * host.ejections as f64);
        host.returns_at = until.div_ceil(self.interval) * self.interval;
        self.details.ejections += 1;
    }

    fn on_upstream_response(&mut self, conn: u32) {
        let ConnState::Busy { worker, fault } = self.conns[conn as usize].state else {
            unreachable!("a response arrived on a connection that carries no request");
        };
        let h = self.host_of(conn);
        self.record_outlier(h, fault);
        self.workers[worker as usize].outcome = if fault { Outcome::Upstream } else { Outcome::Ok };
        let back = self.latency(self.sc.sidecar_processing_ms + self.sc.downstream_hop_ms);
        self.schedule(back, Kind::AtClient { worker });

        let p = self.conns[conn as usize].pool as usize;
        if self.conns[conn as usize].served >= self.rules.max_requests_per_connection {
            self.conns[conn as usize].state = ConnState::Closed;
            self.free_conns.push(conn);
            self.pools[p].conns -= 1;
            self.total_conns -= 1;
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
        }
        if w.remaining == 0 {
            self.finished_at = self.finished_at.max(self.now);
            return;
        }
        w.sent_at = self.now;
        let mut delay = self.latency(self.sc.downstream_hop_ms + self.sc.sidecar_processing_ms);
        if matches!(outcome, Outcome::Overflow | Outcome::NoHealthy) {
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
        let failed = d.fail_overflow + d.fail_no_healthy + d.fail_upstream;
        RunResult {
            qps: if duration_s > 0.0 { calls as f64 / duration_s } else { 0.0 },
            failure_rate: if calls > 0 { failed as f64 / calls as f64 } else { 0.0 },
            details: d,
        }
    }
}

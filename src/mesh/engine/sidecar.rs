//! The client sidecar: a cluster per destination picks a host, a connection of its pool
//! (idle, new, or pending), applies the circuit breakers, outlier detection, timeouts and
//! retries, and hands the answer back to the caller.

use rand::Rng;
use rand_distr::StandardNormal;

use super::state::*;
use super::{Mesh, Nanos, NONE};
use crate::emulator::envoy::{self, ms};
use crate::emulator::LoadBalancer;

impl Mesh<'_> {
    pub(super) fn dest_of(&self, ex: u32) -> usize {
        self.clusters[self.exchanges.items[ex as usize].cluster as usize].dest as usize
    }

    pub(super) fn on_sidecar(&mut self, ex: u32) {
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
    pub(super) fn choose_host(&mut self, c: usize, worker: u32, avoid: u64) -> Option<u32> {
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
    pub(super) fn route(&mut self, ex: u32) {
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
        match self.pools[p].envoy.admit(att, &mut self.clusters[c].breakers, &self.dests[d].limits) {
            envoy::Admission::Attach(conn) => self.attach(conn, att),
            envoy::Admission::Queued => {
                self.wake_freed(p);
                self.maybe_connect(p, c);
            }
            envoy::Admission::Overflow => self.overflow(ex),
        }
    }

    /// A circuit breaker refused the attempt: local 503 UO, never retried.
    pub(super) fn overflow(&mut self, ex: u32) {
        let att = self.exchanges.items[ex as usize].attempt;
        if att != NONE {
            self.attempts.remove(att);
            self.exchanges.items[ex as usize].attempt = NONE;
        }
        self.attempt_done(ex, Outcome::Overflow, false);
    }

    /// Opens the connections pool `p` (of cluster `c`) wants
    /// ([`envoy::ConnPool::open_connection`]), each with its handshake drawn.
    pub(super) fn maybe_connect(&mut self, p: usize, c: usize) {
        let d = self.clusters[c].dest as usize;
        while self.pools[p].envoy.open_connection(&mut self.clusters[c].breakers, &self.dests[d].limits) {
            let conn =
                self.conns.insert(Conn { pool: p as u32, state: ConnState::Connecting, served: 0, ready_at: 0, wake_scheduled: false });
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

    pub(super) fn pool_of(&self, c: usize, worker: u32, host: u32) -> usize {
        let cl = &self.clusters[c];
        cl.first_pool as usize + (worker * self.dests[cl.dest as usize].replicas + host) as usize
    }

    pub(super) fn cluster_of_pool(&self, p: usize) -> usize {
        self.pools[p].cluster as usize
    }

    pub(super) fn attach(&mut self, conn: u32, att: u32) {
        let p = self.conns.items[conn as usize].pool as usize;
        let c = self.cluster_of_pool(p);
        let cn = &mut self.conns.items[conn as usize];
        cn.state = ConnState::Busy { att };
        cn.served += 1;
        let hs = self.pools[p].host_index as usize;
        self.active[hs] += 1;
        self.clusters[c].breakers.active += 1;
        let a = &mut self.attempts.items[att as usize];
        a.conn = conn;
        a.state = AttState::Sent;
        let hop = self.hops.upstream;
        self.schedule(hop, Ev::AtReplica { att });
    }

    /// Freed connections whose turn has come, and that no event will wake, become idle (in
    /// the order they became ready, as their events would have made them).
    pub(super) fn promote_freed(&mut self, p: usize) {
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
            self.pools[p].envoy.idle.push(conn);
        }
    }

    /// Requests are pending: every freed connection wakes at its turn to take one.
    pub(super) fn wake_freed(&mut self, p: usize) {
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

    /// The oldest pending attempt of pool `p` (of cluster `c`) still wanted
    /// ([`envoy::ConnPool::take_pending`]); those given up on while they waited are freed.
    pub(super) fn pop_pending(&mut self, p: usize, c: usize) -> Option<u32> {
        let attempts = &mut self.attempts;
        self.pools[p].envoy.take_pending(&mut self.clusters[c].breakers, |&att| {
            let abandoned = attempts.items[att as usize].state == AttState::AbandonedPending;
            if abandoned {
                attempts.remove(att);
            }
            abandoned
        })
    }

    /// A ready connection takes its pool's oldest live pending request, or goes idle.
    pub(super) fn serve_pending_or_idle(&mut self, conn: u32) {
        if self.conns.items[conn as usize].state == ConnState::Closed {
            return;
        }
        let p = self.conns.items[conn as usize].pool as usize;
        let c = self.cluster_of_pool(p);
        let d = self.clusters[c].dest as usize;
        while let Some(att) = self.pop_pending(p, c) {
            if self.clusters[c].breakers.active >= self.dests[d].limits.max_requests {
                let ex = self.attempts.items[att as usize].ex;
                self.overflow(ex);
                continue;
            }
            return self.attach(conn, att);
        }
        self.conns.items[conn as usize].state = ConnState::Idle;
        self.pools[p].envoy.idle.push(conn);
    }

    pub(super) fn on_connected(&mut self, conn: u32) {
        let p = self.conns.items[conn as usize].pool as usize;
        self.pools[p].envoy.connected();
        self.serve_pending_or_idle(conn);
    }

    /// A connection failed: the pool's pending requests all fail (UF), each counted by
    /// outlier detection, each then retried or answered 503.
    pub(super) fn on_connect_failed(&mut self, conn: u32) {
        let p = self.conns.items[conn as usize].pool as usize;
        let c = self.cluster_of_pool(p);
        self.conns.items[conn as usize].state = ConnState::Closed;
        self.conns.remove(conn);
        self.pools[p].envoy.connect_failed(&mut self.clusters[c].breakers);
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
    pub(super) fn abandon_attempt(&mut self, ex: u32) {
        let att = self.exchanges.items[ex as usize].attempt;
        self.exchanges.items[ex as usize].attempt = NONE;
        let c = self.exchanges.items[ex as usize].cluster as usize;
        let p = self.pool_of(c, self.exchanges.items[ex as usize].worker, self.attempts.items[att as usize].host);
        let hs = self.pools[p].host_index as usize;
        let a = &mut self.attempts.items[att as usize];
        match a.state {
            AttState::Pending => {
                a.state = AttState::AbandonedPending;
                self.pools[p].envoy.abandon_pending(&mut self.clusters[c].breakers);
            }
            AttState::Sent => {
                a.state = AttState::Abandoned;
                let (conn, job) = (a.conn, a.job);
                self.record_outlier(c, hs, true);
                self.active[hs] -= 1;
                self.clusters[c].breakers.active -= 1;
                self.conns.items[conn as usize].state = ConnState::Closed;
                self.conns.remove(conn);
                self.pools[p].envoy.closed(&mut self.clusters[c].breakers);
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
    pub(super) fn record_outlier(&mut self, c: usize, p: usize, is_5xx: bool) {
        let (first, d) = (self.clusters[c].first_host as usize, self.clusters[c].dest as usize);
        let n = self.dests[d].replicas as usize;
        envoy::record_outlier(&mut self.outliers[first..first + n], p - first, is_5xx, self.now, &self.dests[d].outlier_rules);
    }

    pub(super) fn release_retry(&mut self, ex: u32) {
        let x = &mut self.exchanges.items[ex as usize];
        x.retry.release(&mut self.clusters[x.cluster as usize].breakers.retries);
    }

    /// Whether the retry breaker (or the retry budget, which replaces it) has room.
    pub(super) fn retry_room(&self, c: usize) -> bool {
        let cl = &self.clusters[c];
        let dest = &self.dests[cl.dest as usize];
        let limit = match dest.policy.retry_budget {
            Some(b) => {
                let share = (b.percent / 100.0 * f64::from(cl.breakers.active + cl.breakers.pending)) as u32;
                share.max(b.min_concurrency)
            }
            None => dest.max_retries,
        };
        cl.breakers.retries < limit
    }

    /// One attempt ended with `outcome`: retried if the route's conditions, its attempts
    /// and the retry breaker allow; else the exchange is over.
    pub(super) fn attempt_done(&mut self, ex: u32, outcome: Outcome, was_reset: bool) {
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
        if let Some(k) = x.retry.should_retry(retriable, room, &mut self.clusters[c].breakers.retries) {
            let gen = x.gen;
            let edge = self.clusters[c].edge as usize;
            self.edges[edge].retries += 1;
            let wait = envoy::backoff_ms(&mut self.rng, self.dests[d].policy.rules.retries.backoff_base_ms, k) * 1_000_000;
            return self.schedule(wait, Ev::Retry { ex, gen });
        }
        self.exchange_done(ex, outcome);
    }

    pub(super) fn exchange_done(&mut self, ex: u32, outcome: Outcome) {
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

    pub(super) fn on_answer(&mut self, att: u32, status: u16) {
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
        self.clusters[c].breakers.active -= 1;
        self.attempt_done(ex, if status == 200 { Outcome::Ok } else { Outcome::Upstream(status) }, false);
        let d = self.clusters[c].dest as usize;
        if self.conns.items[conn as usize].served >= self.dests[d].policy.rules.max_requests_per_connection {
            self.conns.items[conn as usize].state = ConnState::Closed;
            self.conns.remove(conn);
            self.pools[p].envoy.closed(&mut self.clusters[c].breakers);
            self.maybe_connect(p, c);
        } else {
            let cn = &mut self.conns.items[conn as usize];
            cn.state = ConnState::Freed;
            cn.ready_at = self.now + self.hops.event_loop_turn;
            self.pools[p].freeing.push_back(conn);
            if self.pools[p].envoy.pending_live > 0 {
                self.wake_freed(p);
            }
        }
    }

    pub(super) fn on_caller(&mut self, ex: u32) {
        let x = &self.exchanges.items[ex as usize];
        let (caller, outcome, sent_at) = (x.caller, x.outcome, x.sent_at);
        if let Some((histogram, sum_ns)) = self.edge_latency.get_mut(self.clusters[x.cluster as usize].edge as usize) {
            let took = self.now - sent_at;
            histogram.saturating_record(took.max(1));
            *sum_ns += u128::from(took);
        }
        self.exchanges.remove(ex);
        match caller {
            Caller::Job { job } => self.call_returned(job, outcome == Outcome::Ok),
            Caller::Load { worker } => self.entry_answered(worker, outcome, sent_at),
        }
    }

    pub(super) fn entry_answered(&mut self, worker: u32, outcome: Outcome, sent_at: Nanos) {
        let took = self.now - sent_at;
        self.entry_outstanding -= 1;
        self.last_answer = self.now;
        self.latency_sum += u128::from(took);
        self.entry_latency.saturating_record(took.max(1));
        if outcome == Outcome::Ok {
            self.entry_ok += 1;
            self.second.ok += 1;
            if self.options.latency_bound_ms.is_some_and(|bound| took <= ms(bound)) {
                self.entry_ok_within += 1;
                self.second.ok_within += 1;
            }
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
}

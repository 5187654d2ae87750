//! Envoy's client-side rules that the single-service engine (`engine.rs`) and the mesh
//! engine (`crate::mesh::engine`) share, written once. Each takes the random generator (if
//! it draws) and draws exactly what Envoy's code path draws, so the single-service engine
//! replays the datasets S1-S5 byte for byte (`tests.rs` holds digests of many runs).
//!
//! Sources: Envoy `source/common/router/retry_state_impl.cc` and
//! `source/common/common/backoff_strategy.cc` (back-off), `source/common/upstream/outlier_detection_impl.cc`
//! (ejection), `source/common/upstream/load_balancer_impl.cc` (`LeastRequestLoadBalancer`),
//! `source/common/conn_pool/conn_pool_base.cc` (`ConnPoolImplBase`: the pool and its breakers).

use std::collections::VecDeque;

use rand::Rng;

use super::knobs::LEAST_REQUEST_CHOICE_COUNT;
use super::scenario::EjectionRule;

/// Milliseconds to whole nanoseconds, as both engines count time.
pub fn ms(x: f64) -> u64 {
    (x * 1e6).round().max(0.0) as u64
}

/// One host's outlier-detection state in one Envoy cluster.
#[derive(Debug, Clone, Default)]
pub struct Outlier {
    pub consecutive_5xx: u32,
    pub ejected: bool,
    /// Times this host was ejected: each ejection lasts that many base ejection times.
    pub ejections: u32,
    pub returns_at: u64,
}

impl Outlier {
    /// Whether the host is in the load balancer's healthy set at `now`; an ejected host
    /// whose time is up comes back first. No draw.
    pub fn healthy(&mut self, now: u64) -> bool {
        if self.ejected && now >= self.returns_at {
            self.ejected = false;
        }
        !self.ejected
    }
}

/// What outlier detection reads of a rule and a scenario.
#[derive(Debug, Clone, Copy)]
pub struct OutlierRules {
    /// `consecutive5xxErrors` (`u32::MAX`: detection off).
    pub consecutive_5xx: u32,
    pub max_ejection_percent: f64,
    pub base_ejection_time_s: f64,
    pub interval_ns: u64,
    pub ejection_rule: EjectionRule,
}

/// The number of healthy `hosts` at `now` (returning those whose time is up), and whether
/// the cluster is in panic mode (healthy share below `panic_threshold_percent`).
pub fn healthy_hosts(hosts: &mut [Outlier], now: u64, panic_threshold_percent: f64) -> (usize, bool) {
    let n = hosts.len();
    let healthy = hosts.iter_mut().map(|h| h.healthy(now)).filter(|&up| up).count();
    (healthy, (healthy as f64) * 100.0 < panic_threshold_percent * n as f64)
}

/// Envoy's consecutive-5xx detector: one answer of host `h` (`is_5xx`: a 5xx, a connect
/// failure, a reset); at the limit the host is ejected if the cap allows, for the base
/// ejection time times its ejections, until the next interval tick. Returns whether it
/// ejected. No draw.
pub fn record_outlier(hosts: &mut [Outlier], h: usize, is_5xx: bool, now: u64, rules: &OutlierRules) -> bool {
    if !is_5xx {
        hosts[h].consecutive_5xx = 0;
        return false;
    }
    hosts[h].consecutive_5xx += 1;
    if hosts[h].consecutive_5xx < rules.consecutive_5xx || !hosts[h].healthy(now) {
        return false;
    }
    let n = hosts.len();
    let ejected = hosts.iter_mut().map(|o| o.healthy(now)).filter(|&up| !up).count();
    if !ejection_allowed(rules.ejection_rule, ejected, n, rules.max_ejection_percent) {
        return false;
    }
    let host = &mut hosts[h];
    host.ejected = true;
    host.ejections += 1;
    host.consecutive_5xx = 0;
    host.returns_at = ejection_returns_at(now, ms(rules.base_ejection_time_s * 1e3 * host.ejections as f64), rules.interval_ns);
    true
}

/// A cluster's circuit-breaker counters, shared by every worker's pools of the cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct Breakers {
    /// Connections open or opening (checked against `maxConnections`).
    pub conns: u32,
    /// Requests waiting in a pool (checked against `http1MaxPendingRequests`).
    pub pending: u32,
    /// Requests attached to a connection (Envoy's `rq_active`, checked against
    /// `http2MaxRequests`). An engine may leave it at 0 when no limit or balancer reads it.
    pub active: u32,
    /// Retries outstanding (checked against `maxRetries`, or the retry budget).
    pub retries: u32,
}

/// A cluster's connection-pool limits, from its DestinationRule.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    pub max_connections: u32,
    pub max_pending: u32,
    /// `http2MaxRequests` (`u32::MAX`: none).
    pub max_requests: u32,
}

/// Where a request routed to a pool goes ([`ConnPool::admit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// This idle connection takes it.
    Attach(u32),
    /// It waits in the pending queue.
    Queued,
    /// A circuit breaker refused it: local 503 UO, never retried.
    Overflow,
}

/// One Envoy worker's HTTP/1.1 connection pool to one host (`ConnPoolImplBase`): its idle
/// connections (by id), its pending requests (`T`, whatever the engine queues), and its
/// connections open or opening. The counts are kept with the cluster's [`Breakers`].
#[derive(Debug, Clone)]
pub struct ConnPool<T> {
    pub idle: Vec<u32>,
    pub pending: VecDeque<T>,
    /// Pending requests still wanted: an engine may leave a request it gave up on in the
    /// queue ([`ConnPool::abandon_pending`]) and drop it when the pool reaches it.
    pub pending_live: u32,
    pub conns: u32,
    pub connecting: u32,
}

impl<T> Default for ConnPool<T> {
    fn default() -> Self {
        ConnPool { idle: Vec::new(), pending: VecDeque::new(), pending_live: 0, conns: 0, connecting: 0 }
    }
}

impl<T> ConnPool<T> {
    /// A request routed to this pool (`newStreamImpl`): the last idle connection takes it,
    /// unless the cluster is at `max_requests` (then the connection stays ready and the
    /// request overflows); without one it waits if the pending breaker has room. After
    /// `Queued`, call [`ConnPool::open_connection`] in a loop. No draw.
    pub fn admit(&mut self, request: T, breakers: &mut Breakers, limits: &PoolLimits) -> Admission {
        if let Some(&conn) = self.idle.last() {
            if breakers.active >= limits.max_requests {
                return Admission::Overflow;
            }
            self.idle.pop();
            return Admission::Attach(conn);
        }
        if breakers.pending < limits.max_pending {
            self.pending.push_back(request);
            self.pending_live += 1;
            breakers.pending += 1;
            Admission::Queued
        } else {
            Admission::Overflow
        }
    }

    /// Whether to open one more connection now (`tryCreateNewConnections`): while live
    /// pending requests outnumber the connections being opened, within `maxConnections`
    /// cluster-wide, except that a pool with no connection may always open one (Envoy's
    /// guard against starving a pool). If so, the connection is counted as opening; the
    /// engine draws its handshake. No draw.
    pub fn open_connection(&mut self, breakers: &mut Breakers, limits: &PoolLimits) -> bool {
        if self.pending_live <= self.connecting || (breakers.conns >= limits.max_connections && self.conns > 0) {
            return false;
        }
        self.conns += 1;
        self.connecting += 1;
        breakers.conns += 1;
        true
    }

    /// The oldest pending request still wanted, out of the queue and the counts; those for
    /// which `abandoned` holds are dropped on the way (`abandoned` frees them).
    pub fn take_pending(&mut self, breakers: &mut Breakers, mut abandoned: impl FnMut(&T) -> bool) -> Option<T> {
        while let Some(request) = self.pending.pop_front() {
            if abandoned(&request) {
                continue;
            }
            self.pending_live -= 1;
            breakers.pending -= 1;
            return Some(request);
        }
        None
    }

    /// A pending request was given up on: it no longer counts, though it stays queued
    /// until [`ConnPool::take_pending`] drops it.
    pub fn abandon_pending(&mut self, breakers: &mut Breakers) {
        self.pending_live -= 1;
        breakers.pending -= 1;
    }

    /// A connection finished its handshake.
    pub fn connected(&mut self) {
        self.connecting -= 1;
    }

    /// A connection failed while opening.
    pub fn connect_failed(&mut self, breakers: &mut Breakers) {
        self.connecting -= 1;
        self.closed(breakers);
    }

    /// An open connection closed (reset, or at `maxRequestsPerConnection`).
    pub fn closed(&mut self, breakers: &mut Breakers) {
        self.conns -= 1;
        breakers.conns -= 1;
    }
}

/// One request's retry state in Envoy's router (`RetryStateImpl`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryState {
    /// Retries it may still make (`retries_remaining_`: the policy's attempts, at most 65 535).
    pub retries_left: u16,
    /// Retries it made (sets the back-off interval).
    pub retry_count: u16,
    /// It holds one unit of the cluster's retry breaker (`maxRetries`, or the retry budget),
    /// from the retry's scheduling until that attempt's outcome (Envoy's `resetRetry`).
    pub holds_retry: bool,
}

impl RetryState {
    /// A new request under a policy of `attempts` retries.
    pub fn start(attempts: u16) -> RetryState {
        RetryState { retries_left: attempts, retry_count: 0, holds_retry: false }
    }

    /// An attempt's outcome is known: a held unit of the retry breaker goes back.
    pub fn release(&mut self, active_retries: &mut u32) {
        if self.holds_retry {
            self.holds_retry = false;
            *active_retries -= 1;
        }
    }

    /// Envoy's `shouldRetry`, after [`RetryState::release`]: a `retriable` outcome spends a
    /// retry if any remain (before the breaker is checked), then takes a unit of the breaker
    /// if it has `room`. Returns the retry's index (0 for the first), which sets its
    /// back-off ([`backoff_ms`]), or `None`: no retry. No draw.
    pub fn should_retry(&mut self, retriable: bool, room: bool, active_retries: &mut u32) -> Option<u32> {
        if self.retries_left == 0 || !retriable {
            return None;
        }
        self.retries_left -= 1;
        if !room {
            return None;
        }
        *active_retries += 1;
        self.holds_retry = true;
        let k = self.retry_count;
        self.retry_count += 1;
        Some(u32::from(k))
    }
}

/// Envoy's fully jittered exponential back-off, in whole ms: retry `k` (0-based) waits a
/// whole number of ms drawn uniformly in [0, base x 2^k), the interval capped at 10 x base.
/// One draw.
pub fn backoff_ms<R: Rng>(rng: &mut R, base_ms: f64, k: u32) -> u64 {
    let base = base_ms.ceil().max(1.0) as u64;
    let interval = base.saturating_mul(1u64.checked_shl(k).unwrap_or(u64::MAX)).min(10 * base);
    rng.random_range(0..interval)
}

/// Whether outlier detection may eject one more of `hosts` hosts while `ejected` are out,
/// under `max_ejection_percent` and the release's rule. No draw.
pub fn ejection_allowed(rule: EjectionRule, ejected: usize, hosts: usize, max_ejection_percent: f64) -> bool {
    let (ejected, hosts) = (ejected as f64, hosts as f64);
    match rule {
        EjectionRule::AtLeastOne => 100.0 * ejected / hosts < max_ejection_percent,
        EjectionRule::Strict => 100.0 * (ejected + 1.0) / hosts <= max_ejection_percent,
    }
}

/// When an ejected host comes back, in ns: the ejection lasts the base ejection time times
/// the host's number of ejections (`ejection_ns`, that product), and the host returns only
/// at an interval tick after that.
pub fn ejection_returns_at(now: u64, ejection_ns: u64, interval_ns: u64) -> u64 {
    (now + ejection_ns).div_ceil(interval_ns) * interval_ns
}

/// Round robin over `hosts` hosts with one worker's `counter`, skipping those not `usable`
/// (ejected, outside panic mode); `None` if none is. No draw.
pub fn round_robin_pick(counter: &mut u32, hosts: usize, usable: impl Fn(usize) -> bool) -> Option<usize> {
    for _ in 0..hosts {
        let h = *counter as usize % hosts;
        *counter = counter.wrapping_add(1);
        if usable(h) {
            return Some(h);
        }
    }
    None
}

/// Envoy's `LeastRequestLoadBalancer::unweightedHostPick`: `choice_count` hosts of
/// `eligible` drawn with replacement; a later draw wins only with strictly fewer active
/// requests (`active(h)`). Two draws.
pub fn least_request_pick<R: Rng>(rng: &mut R, eligible: &[u32], active: impl Fn(usize) -> u32) -> usize {
    let len = eligible.len();
    let mut best = eligible[rng.random_range(0..len)] as usize;
    for _ in 1..LEAST_REQUEST_CHOICE_COUNT {
        let h = eligible[rng.random_range(0..len)] as usize;
        if active(h) < active(best) {
            best = h;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn backoff_stays_in_its_jittered_window_and_caps_at_ten_bases() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for k in 0..8 {
            let hi = (25u64 << k).min(250);
            let draws: Vec<u64> = (0..2000).map(|_| backoff_ms(&mut rng, 25.0, k)).collect();
            assert!(draws.iter().all(|&d| d < hi), "retry {k}");
            assert!(draws.iter().any(|&d| d >= hi * 9 / 10), "retry {k} never near its top {hi}");
        }
    }

    #[test]
    fn ejection_caps_follow_the_release() {
        // Two hosts, 10 %: before Envoy 1.28 one host may always go; since, none may.
        assert!(ejection_allowed(EjectionRule::AtLeastOne, 0, 2, 10.0));
        assert!(!ejection_allowed(EjectionRule::AtLeastOne, 1, 2, 10.0));
        assert!(!ejection_allowed(EjectionRule::Strict, 0, 2, 10.0));
        assert!(ejection_allowed(EjectionRule::Strict, 0, 2, 50.0));
        assert!(!ejection_allowed(EjectionRule::Strict, 1, 2, 50.0));
    }

    #[test]
    fn an_ejected_host_returns_at_the_next_interval_tick() {
        // 30 s x 2 ejections from t = 1.5 s, interval 10 s: back at 70 s, not 61.5 s.
        assert_eq!(ejection_returns_at(1_500_000_000, 60_000_000_000, 10_000_000_000), 70_000_000_000);
    }

    #[test]
    fn a_pool_queues_within_its_breakers_and_opens_within_max_connections() {
        let limits = PoolLimits { max_connections: 1, max_pending: 2, max_requests: u32::MAX };
        let (mut b, mut pool, mut other) = (Breakers::default(), ConnPool::<u32>::default(), ConnPool::<u32>::default());
        assert_eq!(pool.admit(1, &mut b, &limits), Admission::Queued);
        assert!(pool.open_connection(&mut b, &limits));
        assert!(!pool.open_connection(&mut b, &limits), "one opening already serves one pending");
        assert_eq!(other.admit(2, &mut b, &limits), Admission::Queued);
        // The cluster is at maxConnections, but a pool with none may always open one.
        assert!(other.open_connection(&mut b, &limits));
        assert_eq!(pool.admit(3, &mut b, &limits), Admission::Overflow, "pending breaker full");
        // A request given up on stops counting, and is dropped when the pool reaches it.
        pool.abandon_pending(&mut b);
        assert_eq!(pool.admit(5, &mut b, &limits), Admission::Queued);
        assert_eq!(pool.take_pending(&mut b, |&r| r == 1), Some(5));
        assert_eq!((b.pending, pool.pending_live), (1, 0));
        // An idle connection takes the next request unless the cluster is at http2MaxRequests.
        pool.connected();
        pool.idle.push(9);
        let full = PoolLimits { max_requests: 0, ..limits };
        assert_eq!(pool.admit(6, &mut b, &full), Admission::Overflow);
        assert_eq!(pool.idle, [9], "the ready connection stays ready");
        assert_eq!(pool.admit(7, &mut b, &limits), Admission::Attach(9));
    }

    #[test]
    fn least_request_prefers_the_idle_host() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let active = [5u32, 0];
        let picks = (0..1000).filter(|_| least_request_pick(&mut rng, &[0, 1], |h| active[h]) == 1).count();
        // Host 1 loses only when both draws land on host 0: a quarter of the time.
        assert!((700..800).contains(&picks), "{picks}");
    }
}

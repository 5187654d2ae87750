//! Envoy's client-side rules that the single-service engine (`engine.rs`) and the mesh
//! engine (`crate::mesh::engine`) share, written once. Each takes the random generator (if
//! it draws) and draws exactly what Envoy's code path draws, so the single-service engine
//! replays the datasets S1-S5 byte for byte (`tests.rs` holds digests of many runs).
//!
//! Sources: Envoy `source/common/router/retry_state_impl.cc` and
//! `source/common/common/backoff_strategy.cc` (back-off), `source/common/upstream/outlier_detection_impl.cc`
//! (ejection), `source/common/upstream/load_balancer_impl.cc` (`LeastRequestLoadBalancer`).

use rand::Rng;

use super::knobs::LEAST_REQUEST_CHOICE_COUNT;
use super::scenario::EjectionRule;

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
    fn least_request_prefers_the_idle_host() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let active = [5u32, 0];
        let picks = (0..1000).filter(|_| least_request_pick(&mut rng, &[0, 1], |h| active[h]) == 1).count();
        // Host 1 loses only when both draws land on host 0: a quarter of the time.
        assert!((700..800).contains(&picks), "{picks}");
    }
}

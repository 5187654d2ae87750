//! Hand-worked cases on a noiseless testbed, and the sanity properties of emulator.md
//! over many seeds.

use super::calibration::{calibration_rules, calibration_scenario, check_published, distribution};
use super::*;
use crate::rules::{Load, TrafficRules};

/// A testbed without randomness in latencies or faults: every time below is hand-computable.
fn noiseless() -> Scenario {
    Scenario {
        service_time_sigma: 0.0,
        handshake_sigma: 0.0,
        run_speed_sigma: 0.0,
        run_fault_sigma: 0.0,
        run_handshake_sigma: 0.0,
        fault_share: 0.0,
        ..Scenario::default()
    }
}

fn rules(pending: u32, conns: u32, per_conn: u32) -> TrafficRules {
    TrafficRules { max_pending_requests: pending, max_connections: conns, max_requests_per_connection: per_conn, ..calibration_rules() }
}

fn load(threads: u32, calls: u32) -> Load {
    Load { threads, calls }
}

/// Success path of one call in ms: hop, filters, [handshake], hop, service, hop, filters, hop.
fn call_ms(sc: &Scenario, handshake: bool) -> f64 {
    2.0 * (sc.downstream_hop_ms + sc.sidecar_processing_ms + sc.upstream_hop_ms)
        + sc.service_time_ms
        + if handshake { sc.handshake_ms } else { 0.0 }
}

#[test]
fn one_thread_without_keepalive_pays_a_handshake_per_call() {
    let sc = noiseless();
    let r = run_load_test(&rules(1, 1, 1), &load(1, 10), &sc, 7);
    assert_eq!(r.failure_rate, 0.0);
    assert_eq!(r.details.ok_count, 10);
    assert_eq!(r.details.sockets, 1);
    let expected = call_ms(&sc, true);
    assert!((r.details.latency_mean_ms - expected).abs() < 1e-3, "{} vs {expected}", r.details.latency_mean_ms);
    // Duration: ten calls back to back, plus a start-up jitter below 20 us.
    let duration_ms = r.details.duration_s * 1e3;
    assert!(duration_ms >= 10.0 * expected && duration_ms < 10.0 * expected + 0.021, "{duration_ms}");
    assert!((r.qps - 10.0 / r.details.duration_s).abs() < 1e-9);
}

#[test]
fn keepalive_saves_the_handshake_after_the_first_call() {
    let sc = noiseless();
    let r = run_load_test(&rules(1, 1, 100), &load(1, 10), &sc, 7);
    let expected = (call_ms(&sc, true) + 9.0 * call_ms(&sc, false)) / 10.0;
    assert!((r.details.latency_mean_ms - expected).abs() < 1e-3, "{} vs {expected}", r.details.latency_mean_ms);
}

#[test]
fn simultaneous_arrivals_beyond_the_pending_limit_overflow() {
    // Three workers, one Envoy worker, one call each: the first waits in the pending queue
    // for a connection, the other two find the queue full.
    let sc = Scenario { envoy_workers: 1, ..noiseless() };
    let r = run_load_test(&rules(1, 1, 1), &load(3, 3), &sc, 1);
    assert_eq!(r.details.ok_count, 1);
    assert_eq!(r.details.fail_overflow, 2);
    assert!((r.failure_rate - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(r.details.sockets, 3, "no reconnect after a worker's last call");
}

#[test]
fn first_upstream_error_ejects_the_only_host_and_the_rest_fails_fast() {
    let sc = Scenario { fault_share: 1.0, ..noiseless() };
    let r = run_load_test(&rules(10, 10, 100), &load(1, 5), &sc, 3);
    assert_eq!(r.details.fail_upstream, 1);
    assert_eq!(r.details.fail_no_healthy, 4);
    assert_eq!(r.details.ejections, 1);
    assert_eq!(r.details.sockets, 1 + 3, "a reconnect after each local reply but the last");
    assert_eq!(r.failure_rate, 1.0);
}

#[test]
fn lenient_rule_always_ejects_one_host_strict_rule_may_eject_none() {
    let r = TrafficRules { max_ejection_percent: 10.0, ..rules(10, 10, 100) };
    let lenient = Scenario { fault_share: 1.0, replicas: 3, ..noiseless() };
    let res = run_load_test(&r, &load(1, 30), &lenient, 3);
    assert_eq!(res.details.ejections, 1, "one host always; a second would exceed 10 %");
    assert_eq!(res.details.fail_no_healthy, 0);
    let strict = Scenario { ejection_rule: EjectionRule::Strict, ..lenient };
    let res = run_load_test(&r, &load(1, 30), &strict, 3);
    assert_eq!(res.details.ejections, 0, "33 % per host exceeds 10 %");
    assert_eq!(res.details.fail_upstream, 30);
}

#[test]
fn ejected_host_returns_at_a_tick_after_its_ejection_time() {
    let sc = Scenario { fault_share: 1.0, ..noiseless() };
    let long = run_load_test(&rules(10, 10, 100), &load(1, 200), &sc, 3);
    assert_eq!(long.details.ejections, 1, "3 minutes outlast the run");
    // 2 ms ejection, 10 ms interval: the host comes back at each tick, fails again, and
    // its ejection time grows (2, 4, 6 ... ms), so ejections keep happening.
    let short = TrafficRules { ejection_time_s: 0.002, interval_s: 0.01, ..rules(10, 10, 100) };
    let res = run_load_test(&short, &load(1, 200), &sc, 3);
    assert!(res.details.ejections >= 3, "{:?}", res.details);
    assert_eq!(res.details.fail_upstream, res.details.ejections);
}

#[test]
fn panic_threshold_keeps_traffic_flowing_to_ejected_hosts() {
    let sc = Scenario { fault_share: 1.0, panic_threshold_percent: 50.0, ..noiseless() };
    let res = run_load_test(&rules(10, 10, 100), &load(1, 20), &sc, 3);
    assert_eq!(res.details.fail_no_healthy, 0);
    assert_eq!(res.details.fail_upstream, 20);
}

#[test]
fn same_seed_same_result_other_seed_other_result() {
    let sc = Scenario::default();
    let (r, l) = (rules(2, 2, 3), load(5, 400));
    assert_eq!(run_load_test(&r, &l, &sc, 11), run_load_test(&r, &l, &sc, 11));
    assert_ne!(run_load_test(&r, &l, &sc, 11), run_load_test(&r, &l, &sc, 12));
}

#[test]
fn counts_add_up_over_many_random_configurations() {
    let sc = Scenario::default();
    for seed in 0..300u64 {
        let r = rules(1 + (seed % 7) as u32, 1 + (seed % 5) as u32, 1 + (seed % 4) as u32);
        let l = load(1 + (seed % 9) as u32, 50 + (seed * 7 % 400) as u32);
        let res = run_load_test(&TrafficRules { consecutive_errors: 1 + (seed % 3) as u32, ..r }, &l, &sc, seed);
        let d = res.details;
        assert_eq!(d.ok_count + d.fail_overflow + d.fail_no_healthy + d.fail_upstream, l.calls);
        assert!((0.0..=1.0).contains(&res.failure_rate) && res.qps > 0.0);
        assert!(d.latency_p50_ms <= d.latency_p90_ms && d.latency_p90_ms <= d.latency_p99_ms);
        assert!(d.sockets >= l.threads.min(l.calls));
    }
}

fn mean_failure(r: &TrafficRules, l: &Load, sc: &Scenario) -> f64 {
    distribution(r, l, sc, 200, 1000).failure_rate.mean
}

#[test]
fn threads_within_connections_and_pending_give_no_503() {
    let sc = calibration_scenario(&Scenario::default());
    for threads in 1..=5 {
        let f = mean_failure(&rules(5, 5, 100), &load(threads, 400), &sc);
        assert!(f < 0.005, "threads {threads}: 503 share {f}");
    }
}

#[test]
fn one_thread_never_fails_without_faults() {
    let sc = calibration_scenario(&Scenario::default());
    assert_eq!(distribution(&calibration_rules(), &load(1, 30), &sc, 200, 5).failure_rate.p95, 0.0);
}

#[test]
fn beyond_connections_plus_pending_503_share_grows_with_threads() {
    let sc = calibration_scenario(&Scenario::default());
    let shares: Vec<f64> = [3, 5, 8, 12].iter().map(|&t| mean_failure(&rules(1, 1, 1), &load(t, 200), &sc)).collect();
    assert!(shares.windows(2).all(|w| w[1] > w[0]), "{shares:?}");
}

#[test]
fn more_connections_or_pending_never_raise_the_503_share() {
    let sc = Scenario::default();
    let by_conns: Vec<f64> = (1..=6).map(|c| mean_failure(&rules(2, c, 5), &load(8, 300), &sc)).collect();
    let by_pending: Vec<f64> = (1..=6).map(|p| mean_failure(&rules(p, 2, 5), &load(8, 300), &sc)).collect();
    for shares in [&by_conns, &by_pending] {
        assert!(shares.windows(2).all(|w| w[1] <= w[0] + 0.01), "{shares:?}");
    }
}

#[test]
fn qps_grows_with_threads_until_the_upstream_saturates() {
    let sc = calibration_scenario(&Scenario::default());
    let r = rules(100, 100, 1000);
    // Successful responses per second, median over seeds.
    let ok_per_s = |threads: u32| {
        let mut v: Vec<f64> = (0..101)
            .map(|seed| {
                let res = run_load_test(&r, &load(threads, 1000), &sc, seed);
                res.details.ok_count as f64 / res.details.duration_s
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v[50]
    };
    let rates: Vec<f64> = [1, 2, 4, 8, 32, 64].iter().map(|&t| ok_per_s(t)).collect();
    assert!(rates[..4].windows(2).all(|w| w[1] > 1.5 * w[0]), "nearly linear while unsaturated: {rates:?}");
    // 4 replica slots of 1.5 ms: about 2 700 requests/s at most, whatever the threads.
    assert!(rates[5] < 1.1 * rates[4], "saturated: {rates:?}");
    assert!(rates[5] < 1.5 * sc.replica_concurrency as f64 / (sc.service_time_ms * 1e-3), "{rates:?}");
}

#[test]
fn with_faults_the_first_upstream_error_ejects_and_the_rest_fails_fast() {
    // Without the per-run speed noise a local reply takes a fixed 0.7 ms.
    let sc = Scenario { fault_share: 0.02, run_speed_sigma: 0.0, ..Scenario::default() };
    let mut seen = 0;
    for seed in 0..200 {
        let r = run_load_test(&calibration_rules(), &load(1, 400), &sc, seed);
        let d = r.details;
        if d.fail_upstream > 0 {
            seen += 1;
            assert_eq!((d.fail_upstream, d.ejections), (1, 1));
            assert_eq!(d.ok_count + 1 + d.fail_no_healthy, 400, "every call after the error fails");
            if d.fail_no_healthy > 200 {
                assert!(d.latency_p50_ms < 1.0, "failing fast: {d:?}");
            }
        }
    }
    assert!(seen > 100, "faults happened in {seen} of 200 runs");
}

#[test]
fn published_runs_fall_inside_the_emulated_band() {
    let checks = check_published(&Scenario::default(), 1000, 42);
    for c in &checks {
        assert!(
            c.misses().is_empty(),
            "{}: -c {} -n {} outside on {:?}: {:?}",
            c.published.source,
            c.published.threads,
            c.published.calls,
            c.misses(),
            c.emulated
        );
    }
    // Medians in the region the published runs describe.
    for c in &checks {
        let m = c.emulated.failure_rate.p50;
        let (lo, hi) = if c.published.threads == 2 { (0.02, 0.35) } else { (0.3, 0.7) };
        assert!((lo..=hi).contains(&m), "-c {}: median 503 share {m}", c.published.threads);
        assert!((100.0..1000.0).contains(&c.emulated.qps.p50), "qps median {}", c.emulated.qps.p50);
    }
}

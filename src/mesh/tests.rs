//! Known answers: with every latency, noise and fault of the scenario at zero, sidecars in
//! place, Poisson arrivals and exponential service times, the mesh is a queueing network
//! whose answers are formulas (`../shared/design/mesh.md`, section 8). Each check runs 20
//! seeds through [`crate::mesh::run_seeds`], the function `meshrl mesh run` calls, and
//! asks that the 99 % Student-t interval of the per-seed values lie within 2 % of the formula.

use super::engine::MeshOptions;
use super::load::{Arrivals, MeshLoad, Segment};
use super::result::MeshResult;
use super::rules::{IstioRelease, MeshRules};
use super::topology::Topology;
use crate::emulator::Scenario;
use crate::experiment::compare::t_interval_at;

const SEEDS: u64 = 20;

/// The scenario with every latency, noise and fault at zero.
pub(super) fn zero_scenario() -> Scenario {
    Scenario {
        downstream_hop_ms: 0.0,
        sidecar_processing_ms: 0.0,
        upstream_hop_ms: 0.0,
        handshake_ms: 0.0,
        handshake_sigma: 0.0,
        event_loop_turn_ms: 0.0,
        reconnect_ms: 0.0,
        run_speed_sigma: 0.0,
        run_handshake_sigma: 0.0,
        run_fault_sigma: 0.0,
        fault_share: 0.0,
        ..Scenario::default()
    }
}

/// 20 seeds of `requests` Poisson arrivals at `qps` on `yaml`, under Istio 1.30's defaults
/// (no retry on a 503, no outlier detection, no limits).
fn runs(yaml: &str, qps: f64, requests: f64) -> Vec<MeshResult> {
    let topology = Topology::parse(yaml, None).unwrap();
    let rules = MeshRules::defaults(&topology, IstioRelease::parse("1.30").unwrap());
    let load = MeshLoad::Open { arrivals: Arrivals::Poisson, schedule: vec![Segment { duration_s: requests / qps, qps }] };
    let results = super::run_seeds(&topology, &rules, &load, &zero_scenario(), MeshOptions::default(), 1, SEEDS);
    for r in &results {
        little_holds(r);
    }
    results
}

/// Little's law on every service: time-averaged requests in it = throughput x mean sojourn.
fn little_holds(r: &MeshResult) {
    let span = r.duration_s;
    for s in &r.services {
        if s.completed == 0 {
            continue;
        }
        let lambda_w = s.completed as f64 / span * s.mean_sojourn_ms / 1e3;
        let l = s.mean_in_system;
        assert!((l - lambda_w).abs() <= 1e-3 * l.max(1e-9), "seed {}: {}: L = {l}, lambda W = {lambda_w}", r.seed, s.name);
    }
}

fn assert_near(values: &[f64], formula: f64, what: &str) {
    let i = t_interval_at(values, 0.99);
    assert!(
        i.low >= 0.98 * formula && i.high <= 1.02 * formula,
        "{what}: 99 % interval [{:.5}, {:.5}] not within 2 % of {formula:.5}",
        i.low,
        i.high
    );
}

fn mean_latency_ms(results: &[MeshResult]) -> Vec<f64> {
    results.iter().map(|r| r.entry.latency_ms.mean).collect()
}

/// Erlang's B by its recursion: B_0 = 1, B_k = a B_{k-1} / (k + a B_{k-1}).
fn erlang_b(c: u32, a: f64) -> f64 {
    (1..=c).fold(1.0, |b, k| a * b / (f64::from(k) + a * b))
}

/// Erlang's C from B: C = c B / (c - a (1 - B)).
fn erlang_c(c: u32, a: f64) -> f64 {
    let b = erlang_b(c, a);
    f64::from(c) * b / (f64::from(c) - a * (1.0 - b))
}

#[test]
fn the_formulas_match_their_published_values() {
    assert!((erlang_b(2, 1.0) - 0.2).abs() < 1e-12);
    assert!((erlang_b(10, 5.0) - 0.018385).abs() < 1e-6);
    assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
    assert!((erlang_c(10, 8.0) - 0.409180).abs() < 1e-6);
}

#[test]
fn a_chain_of_single_server_stations_is_a_jackson_tandem() {
    // Three M/M/1 stations, mu = 1/ms, lambda = 0.5/ms: T = 3 / (mu - lambda) = 6 ms.
    let yaml = "
defaults: {concurrency: 1}
services:
- {name: a, isEntrypoint: true, script: [{sleep: {exponential: 1ms}}, {call: b}]}
- {name: b, script: [{sleep: {exponential: 1ms}}, {call: c}]}
- {name: c, script: [{sleep: {exponential: 1ms}}]}
";
    let results = runs(yaml, 500.0, 100_000.0);
    assert_near(&mean_latency_ms(&results), 6.0, "tandem T");
    for (s, name) in ["a", "b", "c"].iter().enumerate() {
        // Each station alone: utilisation rho = 0.5.
        let u: Vec<f64> = results.iter().map(|r| r.services[s].utilisation).collect();
        assert_near(&u, 0.5, &format!("{name} utilisation"));
    }
}

#[test]
fn a_multi_server_station_waits_as_erlang_c_says() {
    // M/M/c, mu = 1/ms: T = C(c, a) / (c mu - lambda) + 1 / mu.
    for (c, a) in [(2u32, 1.0), (10, 8.0)] {
        let yaml = format!("services:\n- {{name: s, isEntrypoint: true, concurrency: {c}, script: [{{sleep: {{exponential: 1ms}}}}]}}\n");
        let results = runs(&yaml, a * 1000.0, 100_000.0);
        let t = erlang_c(c, a) / (f64::from(c) - a) + 1.0;
        assert_near(&mean_latency_ms(&results), t, &format!("M/M/{c}, a = {a}: T"));
    }
}

#[test]
fn a_station_without_a_queue_blocks_as_erlang_b_says() {
    // M/M/c/c: queueLimit 0, retries off for a 503 (Istio >= 1.24): the failure share is B.
    for (c, a, requests) in [(2u32, 1.0, 100_000.0), (10, 5.0, 1_000_000.0)] {
        let yaml = format!(
            "services:\n- {{name: s, isEntrypoint: true, concurrency: {c}, queueLimit: 0, script: [{{sleep: {{exponential: 1ms}}}}]}}\n"
        );
        let results = runs(&yaml, a * 1000.0, requests);
        let shares: Vec<f64> = results.iter().map(|r| r.entry.failure_share).collect();
        assert_near(&shares, erlang_b(c, a), &format!("M/M/{c}/{c}, a = {a}: blocking"));
        assert!(results.iter().all(|r| r.edges[0].retries == 0 && r.edges[0].upstream == r.entry.failed));
    }
}

#[test]
fn two_concurrent_calls_are_a_fork_join_pair() {
    // Two M/M/1 branches fed by the same Poisson arrivals: R2 = (12 - rho) / 8 / (mu - lambda).
    let yaml = "
services:
- {name: front, isEntrypoint: true, script: [[{call: left}, {call: right}]]}
- {name: left, concurrency: 1, script: [{sleep: {exponential: 1ms}}]}
- {name: right, concurrency: 1, script: [{sleep: {exponential: 1ms}}]}
";
    let results = runs(yaml, 500.0, 100_000.0);
    assert_near(&mean_latency_ms(&results), (12.0 - 0.5) / 8.0 * 2.0, "fork-join R2");
}

// ---- One edge against the single-service emulator ----

use super::engine::reported_ms;
use super::rules::DestinationPolicy;
use crate::emulator::calibration::{calibration_rules, calibration_scenario, PUBLISHED_RUNS};
use crate::emulator::knobs::RetryOn;
use crate::emulator::{run_load_test, LoadBalancer, RetryPolicy};
use crate::rules::{Load, TrafficRules};

/// Runs per configuration and engine.
const KS_RUNS: u64 = 300;

/// The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical
/// distribution functions (ties handled by stepping over equal values together).
fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

/// The statistic above which two samples of sizes n and m differ at alpha 0.01.
fn ks_critical(n: usize, m: usize) -> f64 {
    let c = (-(0.01f64 / 2.0).ln() / 2.0).sqrt();
    c * ((n + m) as f64 / (n * m) as f64).sqrt()
}

#[test]
fn the_ks_statistic_tells_equal_from_shifted_samples() {
    let a: Vec<f64> = (0..200).map(|i| f64::from(i) / 200.0).collect();
    let same: Vec<f64> = (0..200).map(|i| (f64::from(i) + 0.5) / 200.0).collect();
    let shifted: Vec<f64> = a.iter().map(|x| x + 0.3).collect();
    assert!(ks_statistic(&a, &same) < ks_critical(200, 200));
    assert!((ks_statistic(&a, &shifted) - 0.3).abs() < 0.01);
    assert!((ks_critical(200, 200) - 0.1628).abs() < 1e-3);
}

/// One service as the single-service emulator sees it: the scenario's replicas, slots,
/// queue and log-normal service time, in Isotope's format with meshrl's extensions.
fn one_service(sc: &Scenario) -> Topology {
    let yaml = format!(
        "services:\n- {{name: httpbin, isEntrypoint: true, numReplicas: {}, concurrency: {}, queueLimit: {}, \
         script: [{{sleep: {{lognormal: {{median: {}us, sigma: {}}}}}}}]}}\n",
        sc.replicas,
        sc.replica_concurrency,
        sc.replica_queue_limit,
        sc.service_time_ms * 1e3,
        sc.service_time_sigma
    );
    Topology::parse(&yaml, None).unwrap()
}

/// `emulate` and a one-service mesh on the same rules, load and scenario (run noise off):
/// 503 share, qps, p50 and p99 pass a two-sample KS test at alpha 0.01.
fn same_distribution(label: &str, rules: &TrafficRules, load: Load, sc: &Scenario, seed: u64) {
    let sc = Scenario { run_speed_sigma: 0.0, run_handshake_sigma: 0.0, run_fault_sigma: 0.0, ..sc.clone() };
    let ks_runs: u64 = std::env::var("KS_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(KS_RUNS);
    let single: Vec<_> = (0..ks_runs).map(|i| run_load_test(rules, &load, &sc, seed + i)).collect();
    let topology = one_service(&sc);
    let retry_on = RetryOn { connect_failure: rules.retries.on_connect_failure, ..RetryOn::istio_default(rules.retries.on_503) };
    let policy = DestinationPolicy { rules: *rules, retry_on, retry_budget: None, timeout_ms: None, per_try_timeout_ms: None };
    let mesh_rules = MeshRules { release: IstioRelease::parse("1.30").unwrap(), destinations: vec![policy], files: Vec::new() };
    let mesh_load = MeshLoad::Closed { threads: load.threads, calls: Some(load.calls), duration_s: None, qps: None };
    let mesh = super::run_seeds(&topology, &mesh_rules, &mesh_load, &sc, MeshOptions::default(), seed + 1_000_000, ks_runs);
    let critical = ks_critical(single.len(), mesh.len());
    let metrics: [(&str, Vec<f64>, Vec<f64>); 4] = [
        ("503 share", single.iter().map(|r| r.failure_rate).collect(), mesh.iter().map(|r| r.entry.failure_share).collect()),
        ("qps", single.iter().map(|r| r.qps).collect(), mesh.iter().map(|r| r.entry.requests as f64 / r.duration_s).collect()),
        // The mesh keeps its latencies in a histogram (three significant digits): the
        // emulator's exact percentiles are compared at that resolution.
        (
            "p50",
            single.iter().map(|r| reported_ms(r.details.latency_p50_ms)).collect(),
            mesh.iter().map(|r| r.entry.latency_ms.p50).collect(),
        ),
        (
            "p99",
            single.iter().map(|r| reported_ms(r.details.latency_p99_ms)).collect(),
            mesh.iter().map(|r| r.entry.latency_ms.p99).collect(),
        ),
    ];
    for (name, a, b) in metrics {
        let d = ks_statistic(&a, &b);
        if std::env::var("KS_DEBUG").is_ok() {
            let q = |v: &[f64]| {
                let mut v = v.to_vec();
                v.sort_by(f64::total_cmp);
                [0.1, 0.25, 0.5, 0.75, 0.9].map(|p| v[(p * v.len() as f64) as usize])
            };
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            eprintln!("{label} {name}: single {:?} mesh {:?} means {:.4} {:.4} D {d:.3}", q(&a), q(&b), mean(&a), mean(&b));
        }
        assert!(d <= critical, "{label}: {name}: KS statistic {d:.3} > {critical:.3}");
    }
}

#[test]
fn one_edge_matches_the_single_service_emulator_in_distribution() {
    let base = calibration_scenario(&Scenario::default());
    for (i, run) in PUBLISHED_RUNS.iter().enumerate() {
        let load = Load { threads: run.threads, calls: run.calls };
        same_distribution(&format!("published run {i} ({})", run.source), &calibration_rules(), load, &base, 10_000 * i as u64);
    }
    let three = Scenario { replicas: 3, fault_share: 0.05, ..Scenario::default() };
    let loose = TrafficRules { max_pending_requests: 4, max_connections: 4, max_requests_per_connection: 10, ..TrafficRules::default() };
    let load = Load { threads: 4, calls: 200 };
    let retries = TrafficRules { retries: RetryPolicy::istio_default(), ..loose };
    same_distribution("retries", &retries, load, &three, 100_000);
    let least = TrafficRules { load_balancer: LoadBalancer::LeastRequest, ..loose };
    same_distribution("least request", &least, load, &three, 200_000);
    let ejection = TrafficRules { consecutive_errors: 1, max_ejection_percent: 100.0, ejection_time_s: 0.2, interval_s: 0.05, ..loose };
    same_distribution("ejection", &ejection, load, &Scenario { fault_share: 0.15, ..three }, 300_000);
}

/// A caller and a leaf of two replicas with constant 1 ms sleeps, under Istio 1.30's
/// defaults, with the zero scenario: every answer takes the sum of the sleeps.
fn sick_runs(sick: Option<super::engine::SickReplica>, bound_ms: Option<f64>) -> Vec<MeshResult> {
    let yaml = "
services:
- {name: a, isEntrypoint: true, script: [{sleep: 1ms}, {call: b}]}
- {name: b, numReplicas: 2, script: [{sleep: 1ms}]}
";
    let topology = Topology::parse(yaml, None).unwrap();
    let rules = MeshRules::defaults(&topology, IstioRelease::parse("1.30").unwrap());
    let load = MeshLoad::Open { arrivals: Arrivals::Poisson, schedule: vec![Segment { duration_s: 10.0, qps: 100.0 }] };
    let options = MeshOptions { sick, latency_bound_ms: bound_ms, ..MeshOptions::default() };
    if let Some(k) = &sick {
        k.validate(&topology).unwrap();
    }
    super::run_seeds(&topology, &rules, &load, &zero_scenario(), options, 1, 4)
}

#[test]
fn a_sick_replica_slows_or_fails_its_share_and_the_latency_bound_counts_what_is_in_time() {
    use super::engine::SickReplica;
    let healthy = sick_runs(None, Some(2.5));
    for r in &healthy {
        assert_eq!(r.entry.failed, 0);
        // 2 ms each, all within 2.5 ms.
        assert!((r.entry.latency_ms.mean - 2.0).abs() < 1e-6, "{}", r.entry.latency_ms.mean);
        assert_eq!(r.entry.goodput_within_bound_per_s, Some(r.entry.goodput_per_s));
    }
    // Replica 1 of b ten times slower: about half the requests (least-request balancing
    // sends fewer there) take 11 ms, and miss a 2.5 ms bound.
    let slow = sick_runs(Some(SickReplica { service: 1, replica: 1, slowdown: 10.0, fail_share: 0.0 }), Some(2.5));
    for r in &slow {
        assert_eq!(r.entry.failed, 0);
        let within = r.entry.goodput_within_bound_per_s.unwrap();
        assert!(within < 0.95 * r.entry.goodput_per_s && within > 0.3 * r.entry.goodput_per_s, "{within} of {}", r.entry.goodput_per_s);
        assert!(r.entry.latency_ms.p99 > 10.0, "{}", r.entry.latency_ms.p99);
    }
    // Replica 0 of b fails every request: with 1.30's retries on connect failures only,
    // what it receives fails at the entry.
    let failing = sick_runs(Some(SickReplica { service: 1, replica: 0, slowdown: 1.0, fail_share: 1.0 }), None);
    for r in &failing {
        assert!(r.entry.failure_share > 0.2 && r.entry.failure_share < 0.8, "{}", r.entry.failure_share);
        assert_eq!(r.entry.goodput_within_bound_per_s, None);
    }
    let topology = Topology::parse("services:\n- {name: a, isEntrypoint: true, script: [{sleep: 1ms}]}\n", None).unwrap();
    let bad = |k: SickReplica| k.validate(&topology).unwrap_err();
    assert!(bad(SickReplica { service: 0, replica: 1, slowdown: 1.0, fail_share: 0.0 }).contains("no replica 1"));
    assert!(bad(SickReplica { service: 0, replica: 0, slowdown: 0.0, fail_share: 0.0 }).contains("slowdown"));
    assert!(bad(SickReplica { service: 0, replica: 0, slowdown: 1.0, fail_share: 1.5 }).contains("fail_share"));
}

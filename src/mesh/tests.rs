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
    for (c, a, requests) in [(2u32, 1.0, 100_000.0), (10, 5.0, 400_000.0)] {
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

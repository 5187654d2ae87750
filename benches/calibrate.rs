//! The cost of a calibration: the default fit (300 candidate scenarios by CMA-ES after a
//! Latin hypercube, 20 emulated runs per configuration each, then a sweep of every field)
//! on 20 configurations x 5 runs emulated under a scenario the fit does not know; and the
//! intervals on top (200 bootstrap resamples over the evaluated candidates). Issue 28's
//! target: the fit under a minute on these 2 cores.
//!
//! cargo bench --bench calibrate

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use meshrl::calibrate::{emulate, fit, CalibrateConfig, Configuration, Metric, Observed};
use meshrl::emulator::calibration::calibration_rules;
use meshrl::emulator::Scenario;
use meshrl::rules::{Load, TrafficRules};

fn observed() -> Observed {
    let hidden = Scenario { service_time_ms: 3.0, handshake_ms: 1.2, fault_share: 0.0, ..Scenario::default() };
    let metrics = vec![Metric::FailureRate, Metric::Qps, Metric::LatencyMeanMs];
    let mut configurations = Vec::new();
    for n in [1, 4, 10, 100] {
        for threads in [1, 2, 4, 8, 16] {
            let rules = TrafficRules { max_connections: n, max_pending_requests: n, ..calibration_rules() };
            let mut c = Configuration { rules, load: Load { threads, calls: threads * 50 }, rows: (1..=5).collect(), values: vec![] };
            c.values = emulate(&hidden, std::slice::from_ref(&c), &metrics, 5, 4242 + configurations.len() as u64).remove(0);
            configurations.push(c);
        }
    }
    Observed { path: "hidden.csv".into(), metrics, configurations }
}

fn bench_calibrate(c: &mut Criterion) {
    let observed = observed();
    let base = Scenario { fault_share: 0.0, ..Scenario::default() };
    let mut group = c.benchmark_group("calibrate");
    group.sample_size(10).measurement_time(Duration::from_secs(60));
    group.bench_function("fit and intervals, 20 configurations x 5 runs, default config", |b| {
        b.iter(|| fit(observed.clone(), &base, &CalibrateConfig::default()).expect("a fit"))
    });
    group.bench_function("fit and intervals, without resamples beyond the minimum (10)", |b| {
        b.iter(|| fit(observed.clone(), &base, &CalibrateConfig { resamples: 10, ..CalibrateConfig::default() }).expect("a fit"))
    });
    group.finish();
}

criterion_group!(benches, bench_calibrate);
criterion_main!(benches);

//! Emulator speed on each dataset's scenario: load tests per second and simulated
//! requests per second, on one core (`generate` runs rows in parallel on all cores). The
//! last row exercises the DestinationRule knobs of issue 15: S3's settings on three
//! replicas, one of them misbehaving, under Istio's default retries and LEAST_REQUEST.
//!
//! cargo bench --bench emulator

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use meshrl::emulator::{run_load_test, LoadBalancer, ReplicaBehaviour, RetryPolicy, Scenario};
use meshrl::generate::{generate_row, DatasetPlan, DatasetsConfig};
use meshrl::rules::{Load, TrafficRules};

/// Rows per measured batch: a fixed, varied sample of each dataset's settings.
const BATCH: usize = 64;

/// S3's rows on three replicas, replica 0 answering 30 % of its requests with 503 and
/// twice as slow, with Istio's default retries (2, on 503 and connect failures, other hosts
/// preferred) and LEAST_REQUEST.
fn knob_rows(s3: &DatasetPlan, master_seed: u64) -> (Scenario, Vec<(TrafficRules, Load, u64)>) {
    let scenario = Scenario {
        replicas: 3,
        replica_behaviour: vec![ReplicaBehaviour { fault_share: 0.3, slowdown: 2.0, ..ReplicaBehaviour::default() }],
        ..s3.scenario.clone()
    };
    let rows = (0..BATCH)
        .map(|i| {
            let row = generate_row(s3, master_seed, i);
            let rules = TrafficRules { retries: RetryPolicy::istio_default(), load_balancer: LoadBalancer::LeastRequest, ..row.rules };
            (rules, row.load, row.seed)
        })
        .collect();
    (scenario, rows)
}

fn bench_datasets(c: &mut Criterion) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/datasets.toml");
    let (cfg, plans) = DatasetsConfig::load(&config).expect("configs/datasets.toml loads");
    let s3 = plans.iter().find(|p| p.spec.name == "S3").expect("configs/datasets.toml has S3");
    let (knob_scenario, knob_rows) = knob_rows(s3, cfg.seed);
    for (unit, per_row) in [("load_tests", false), ("requests", true)] {
        let mut group = c.benchmark_group(format!("emulator/{unit}"));
        group.sample_size(10).measurement_time(std::time::Duration::from_secs(3));
        for plan in &plans {
            let rows: Vec<usize> = (0..BATCH).collect();
            let calls: u64 = rows.iter().map(|&i| generate_row(plan, cfg.seed, i).load.calls as u64).sum();
            group.throughput(Throughput::Elements(if per_row { calls } else { BATCH as u64 }));
            group.bench_with_input(BenchmarkId::from_parameter(&plan.spec.name), &rows, |b, rows| {
                b.iter(|| rows.iter().map(|&i| generate_row(plan, cfg.seed, i).result.qps).sum::<f64>())
            });
        }
        let calls: u64 = knob_rows.iter().map(|(_, l, _)| l.calls as u64).sum();
        group.throughput(Throughput::Elements(if per_row { calls } else { BATCH as u64 }));
        group.bench_with_input(BenchmarkId::from_parameter("S3x3+retries"), &knob_rows, |b, rows| {
            b.iter(|| rows.iter().map(|(r, l, seed)| run_load_test(r, l, &knob_scenario, *seed).qps).sum::<f64>())
        });
        group.finish();
    }
}

criterion_group!(benches, bench_datasets);
criterion_main!(benches);

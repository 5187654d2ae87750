//! Emulator speed on each dataset's scenario: load tests per second and simulated
//! requests per second, on one core (`generate` runs rows in parallel on all cores).
//!
//! cargo bench --bench emulator

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use meshrl::generate::{generate_row, DatasetsConfig};

/// Rows per measured batch: a fixed, varied sample of each dataset's settings.
const BATCH: usize = 64;

fn bench_datasets(c: &mut Criterion) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/datasets.toml");
    let (cfg, plans) = DatasetsConfig::load(&config).expect("configs/datasets.toml loads");
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
        group.finish();
    }
}

criterion_group!(benches, bench_datasets);
criterion_main!(benches);

//! Simulator speed: one MLP training epoch and one random-forest fit on S3, and batched
//! prediction (rows per second) for each model.
//!
//! cargo bench --bench simulator

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meshrl::data::{load_table, split, to_array, Normalizer, TableSpec};
use meshrl::simulator::baselines::{ForestConfig, LogisticConfig, RidgeConfig, SvrConfig};
use meshrl::simulator::mlp::MlpConfig;
use meshrl::simulator::SimulatorParams;
use ndarray::Array2;

fn s3_train() -> (Array2<f64>, Array2<f64>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/S3.csv");
    let table = load_table(&path, &TableSpec::default()).expect("datasets/S3.csv loads");
    let (train, _) = split(table.n_rows(), 1, 0.8);
    let xn = Normalizer::fit_features(&table, &train).unwrap();
    let yn = Normalizer::fit_targets(&table, &train).unwrap();
    let (mut x, mut y) = (table.gather_features(&train), table.gather_targets(&train));
    xn.transform_rows(&mut x);
    yn.transform_rows(&mut y);
    (to_array(x, 9).unwrap(), to_array(y, 2).unwrap())
}

fn bench_simulators(c: &mut Criterion) {
    let (x, y) = s3_train();
    let mut group = c.benchmark_group("mlp_train");
    group.sample_size(10);
    // One epoch over the S3 training split (90 % of it; the rest is the early-stopping slice).
    group.throughput(Throughput::Elements((x.nrows() as f64 * 0.9) as u64));
    let one_epoch = MlpConfig { max_epochs: 1, ..MlpConfig::default() };
    group.bench_function("epoch_S3", |b| b.iter(|| one_epoch.train(&x, &y, 1).unwrap().history.len()));
    group.finish();

    // The default forest (120 trees per output, fully grown) on the whole S3 training split.
    let mut group = c.benchmark_group("forest_fit");
    group.sample_size(10).throughput(Throughput::Elements(x.nrows() as u64));
    group.bench_function("S3", |b| b.iter(|| ForestConfig::default().fit(&x, &y, 1).unwrap().name()));
    group.finish();

    let rows = 8192;
    let batch = x.slice(ndarray::s![..rows, ..]).to_owned();
    let (xs, ys) = (x.slice(ndarray::s![..2000, ..]).to_owned(), y.slice(ndarray::s![..2000, ..]).to_owned());
    let models: Vec<(&str, Box<dyn SimulatorParams>)> = vec![
        ("mlp", Box::new(MlpConfig { max_epochs: 1, ..MlpConfig::default() })),
        ("svr", Box::new(SvrConfig::default())),
        ("ridge", Box::new(RidgeConfig::default())),
        ("logistic", Box::new(LogisticConfig::default())),
        ("forest", Box::new(ForestConfig::default())),
    ];
    let mut group = c.benchmark_group("predict");
    group.sample_size(10).throughput(Throughput::Elements(rows as u64));
    for (name, params) in models {
        let fitted = params.fit(&xs, &ys, 1).unwrap();
        group.bench_function(name, |b| b.iter(|| fitted.predict(&batch).unwrap().nrows()));
    }
    group.finish();
}

criterion_group!(benches, bench_simulators);
criterion_main!(benches);

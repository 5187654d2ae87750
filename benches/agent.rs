//! DQN speed: environment steps per second with one gradient update (batch 32) per step,
//! for a single agent (`call`) and a five-service configuration (`call*5`), on S1.
//! Each step: the agents' forward passes, one simulator call, one update per role.
//! Each on one thread and on two (a cell alone on this 2-core machine).
//!
//! cargo bench --bench agent

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use indicatif::ProgressBar;
use meshrl::agent::dqn::DqnConfig;
use meshrl::env::load_search::Configuration;
use meshrl::experiment::table5::{load_context, run_cell, scenarios, Table5Config, Table5Dataset};
use meshrl::simulator::mlp::MlpConfig;

const STEPS: usize = 300;

fn config() -> Table5Config {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    Table5Config {
        kind: "table5".into(),
        seed: 1,
        repeats: 1,
        out_dir: repo.join("target/bench-agent"),
        epochs: 1,
        steps_per_epoch: STEPS,
        rolling_window: 1,
        beta: 0.5,
        configurations: vec![],
        datasets_config: repo.join("configs/datasets.toml"),
        // A quickly trained simulator of its own: its weights do not change the speed.
        simulators_dir: repo.join("target/bench-agent/models"),
        simulator_seed: 1,
        train_fraction: 0.8,
        validation_pairs: Some(1),
        oracle_validation_states: 1,
        oracle_runs: 1,
        // Speed of the training loop only: no oracle search.
        tie_margin: Default::default(),
        yardsticks: false,
        checkpoint_every: 0,
        learner: Default::default(),
        ppo: None,
        parallel_cells: Some(1),
        datasets: vec![Table5Dataset { name: "S1".into(), path: repo.join("datasets/S1.csv"), calls: None, threads: None }],
        simulator: MlpConfig { max_epochs: 1, ..MlpConfig::default() },
        // Updates from the first full batch on, one per step.
        dqn: DqnConfig { learning_starts: 32, train_every: 1, ..DqnConfig::default() },
    }
}

fn bench_agents(c: &mut Criterion) {
    // Candle's matrix products on one thread each, as `meshrl run` does; a cell's own
    // parallel work (agents, the two backward products, Adam's chunks) gets 1 or 2 threads.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let cfg = config();
    let ctx = load_context(&cfg, &cfg.datasets[0], &scenarios(&cfg).unwrap(), true).unwrap();
    let mut group = c.benchmark_group("dqn_steps");
    group.sample_size(10);
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for name in ["call", "call*5"] {
            let conf = Configuration::parse(name).unwrap();
            group.throughput(Throughput::Elements(STEPS as u64));
            group.bench_function(BenchmarkId::new(name, format!("{threads} thread(s)")), |b| {
                b.iter(|| pool.install(|| run_cell(&cfg, &ctx, &conf, 1, &ProgressBar::hidden(), None).unwrap().sim))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_agents);
criterion_main!(benches);

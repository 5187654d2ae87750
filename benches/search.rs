//! A search method's own cost per evaluation, against the cost of the evaluation itself:
//! each method spends 1 000 evaluations of a free objective (a hash of the point) over the
//! defender's default grid (8 fields, 17 280 rules), and one emulator load test of the
//! defend experiment's middle load is timed beside them. Issue 27's target: a method's
//! cost per evaluation under 10 % of a load test (Bayesian optimisation excepted). TPE's
//! step grows with its history, so one late step is timed too.
//!
//! cargo bench --bench search

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meshrl::emulator::{run_load_test, Scenario};
use meshrl::env::defend::grid::RuleGrid;
use meshrl::env::defend::objective::DefendObjective;
use meshrl::env::defend::{DefendEnv, DefendSpec, Mode};
use meshrl::env::Environment;
use meshrl::rules::Load;
use meshrl::search::model_based::ModelBased;
use meshrl::search::tpe::Tpe;
use meshrl::search::{Evaluator, Method};
use meshrl::seeding::mix;
use meshrl::simulator::baselines::ForestConfig;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const EVALUATIONS: usize = 1000;

fn bench_search(c: &mut Criterion) {
    let load = Load { threads: 16, calls: 1000 };
    let spec = DefendSpec {
        grid: RuleGrid::default(),
        loads: vec![load],
        weights: vec![1.0],
        scenario: Scenario::default(),
        objective: DefendObjective::default(),
        mode: Mode::PerLoad,
        sequential: false,
    };
    let env = DefendEnv::new(spec);
    let space = env.search_space();
    let mut group = c.benchmark_group("search");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(EVALUATIONS as u64));
    let methods = [
        Method::Random {},
        Method::SuccessiveHalving { eta: 2 },
        Method::CmaEs { sigma: 0.3 },
        Method::ModelBased(ModelBased::default()),
        Method::Tpe(Tpe::default()),
    ];
    let timed = |group: &mut criterion::BenchmarkGroup<_>, method: &Method, evaluations: usize| {
        group.throughput(Throughput::Elements(evaluations as u64));
        group.bench_function(format!("{} x {evaluations} free evaluations", method.name()), |b| {
            b.iter(|| {
                let mut free = |p: &[usize], seed: u64| {
                    Ok::<f64, meshrl::Error>(p.iter().fold(seed, |h, &v| mix(h, v as u64)) as f64 / u64::MAX as f64)
                };
                let mut eval = Evaluator::new(&mut free, 1, 1, evaluations);
                method.search(&space, &mut eval, &mut ChaCha8Rng::seed_from_u64(1)).expect("a search on a free objective")
            })
        });
    };
    for method in &methods {
        timed(&mut group, method, EVALUATIONS);
    }
    // The model-based route's cost is a forest fit and its scoring of the space, so its
    // cost per evaluation moves with the budget: the default (10 trees scoring 1 000 rules
    // drawn at random) and the earlier default (50 trees scoring all 17 280 rules), at 100,
    // 1 000 and 10 000 evaluations.
    let full = ModelBased {
        forest: ForestConfig { trees: 50, ..ModelBased::default().forest },
        simulator_points: 100_000,
        ..ModelBased::default()
    };
    for (method, budgets) in [(ModelBased::default(), [100, 10_000].as_slice()), (full, &[100, 1000, 10_000])] {
        for &evaluations in budgets {
            timed(&mut group, &Method::ModelBased(method.clone()), evaluations);
        }
    }
    // TPE's step grows with its history: one step after 100 evaluations, and after the 800
    // of its search phase at a budget of 1 000 (the check's 200 follow).
    group.throughput(Throughput::Elements(1));
    let (mut points, mut values) = (vec![], vec![]);
    {
        let mut record = |p: &[usize], seed: u64| {
            let v = p.iter().fold(seed, |h, &v| mix(h, v as u64)) as f64 / u64::MAX as f64;
            points.push(p.to_vec());
            values.push(v);
            Ok::<f64, meshrl::Error>(v)
        };
        let mut eval = Evaluator::new(&mut record, 1, 1, EVALUATIONS);
        Method::Tpe(Tpe::default()).search(&space, &mut eval, &mut ChaCha8Rng::seed_from_u64(1)).expect("a search on a free objective");
    }
    for history in [EVALUATIONS / 10, EVALUATIONS * 4 / 5] {
        group.bench_function(format!("tpe one step after {history} evaluations"), |b| {
            let mut rng = ChaCha8Rng::seed_from_u64(2);
            b.iter(|| Tpe::default().propose(&space, &points[..history], &values[..history], &mut rng))
        });
    }
    let rules = env.spec().grid.rule(&env.spec().grid.choice(0));
    group.bench_function("one emulator load test (16 threads, 1000 calls)", |b| {
        b.iter(|| run_load_test(&rules, &load, &Scenario::default(), 7))
    });
    group.finish();
}

criterion_group!(benches, bench_search);
criterion_main!(benches);

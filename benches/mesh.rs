//! Mesh emulator speed on one core: hop-requests per second (a hop-request is one request,
//! retries included, arriving at one replica) on the 11-service shop and the 100-service
//! tree, each under Istio 1.30's defaults and the default scenario; and the wall time of the
//! tree at 1 000 req/s for 60 simulated seconds (target: under 2 s). And the mesh
//! defender's ground truth: one evaluation of each of `experiments/mesh_defend.toml`'s six
//! states on the shop with capacity, under Istio's defaults and under a random rule set of
//! the grid, and one probe run (emulator runs per second = 6 / the time per iteration).
//!
//! cargo bench --bench mesh

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meshrl::emulator::Scenario;
use meshrl::mesh::engine::{run, MeshOptions};
use meshrl::mesh::load::{Arrivals, MeshLoad, Segment};
use meshrl::mesh::rules::{IstioRelease, MeshRules};
use meshrl::mesh::topology::Topology;

fn topology(name: &str) -> Topology {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies").join(name);
    Topology::load(&path, None).expect("a shipped topology loads")
}

fn bench_mesh(c: &mut Criterion) {
    let scenario = Scenario::default();
    let release = IstioRelease::parse("1.30").expect("a known release");
    let mut group = c.benchmark_group("mesh");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, qps, seconds) in [("shop11.yaml", 500.0, 20.0), ("tree100.yaml", 1000.0, 60.0)] {
        let topology = topology(name);
        let rules = MeshRules::defaults(&topology, release);
        let load = MeshLoad::Open { arrivals: Arrivals::Poisson, schedule: vec![Segment { duration_s: seconds, qps }] };
        let hops: u64 = run(&topology, &rules, &load, &scenario, MeshOptions::default(), 1).services.iter().map(|s| s.arrivals).sum();
        group.throughput(Throughput::Elements(hops));
        group.bench_function(format!("{name} {qps} req/s for {seconds} s"), |b| {
            b.iter(|| run(&topology, &rules, &load, &scenario, MeshOptions::default(), 1))
        });
    }
    group.finish();
}

fn bench_mesh_defend(c: &mut Criterion) {
    use meshrl::env::mesh_defend::probe::probe;
    use meshrl::env::mesh_defend::spec::MeshDefendSpec;
    use meshrl::env::mesh_defend::state::StatesConfig;
    use rand::{Rng, SeedableRng};
    let topology = topology("shop11-capacity.yaml");
    let spec = MeshDefendSpec {
        release: IstioRelease::parse("1.30").expect("a known release"),
        scenario: Scenario::default(),
        grid: Default::default(),
        states: StatesConfig { before_s: 10.0, after_s: 30.0, ..StatesConfig::default() },
        objective: Default::default(),
        topology,
    };
    let states = spec.draw_states(6, 1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let random: Vec<usize> = spec.grid.space(&spec.topology).sizes().iter().map(|&n| rng.random_range(0..n)).collect();
    let mut group = c.benchmark_group("mesh_defend");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, rules) in [("defaults", spec.defaults()), ("a random rule set", spec.rules(&random))] {
        group.bench_function(format!("six states under {name}"), |b| {
            b.iter(|| states.iter().map(|s| spec.outcome(&rules, s, 1).value).sum::<f64>())
        });
    }
    group.bench_function("a 10 s probe", |b| b.iter(|| probe(&spec, &states[0], 10.0, 1)));
    group.finish();
}

criterion_group!(benches, bench_mesh, bench_mesh_defend);
criterion_main!(benches);

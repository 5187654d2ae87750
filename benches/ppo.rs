//! PPO speed: full updates per second of one agent with stable-baselines3's defaults
//! (`PpoConfig::default()`: a rollout of 2048 transitions, 10 epochs of minibatches of 64,
//! so 320 Adam steps per update; separate policy and value networks of two tanh layers of 64).
//!
//! One update is `Agent::update`: the values of the rollout's 2048 observations and GAE, then
//! the 10 passes in a fresh random order, each minibatch a forward pass, the clipped loss, a
//! backward pass, gradient clipping and an Adam step; then the rollout is emptied. Two shapes:
//!
//!   obs1_actions30: one observation (the load), 30 actions (6 routing rules x 5 replicas),
//!                   the TNSM2023 control problem;
//!   obs8_actions16: eight observations, 16 actions, a load-search agent.
//!
//! The observations and rewards of the 2048 transitions are drawn once, seeded; before each
//! timed update the agent refills its rollout with them, drawing each action and its
//! log-probability from its current policy, as in training. The refill is not timed
//! (`iter_custom` times the update alone). Reported: `time` is one update, `thrpt` is Adam
//! (minibatch) steps per second; updates per second (1 / time) and steps per second are
//! also printed per benchmark from the timed updates.
//!
//! One thread, as `meshrl run` gives each cell one core (`RAYON_NUM_THREADS=1`, so candle's
//! matrix products run on the calling thread). An agent's update is sequential: its layers
//! are too small for the pool, so `PPO_BENCH_THREADS=1,2` (pool and candle's products on two
//! threads) is only for comparison with torch's intra-op threads.
//!
//!   cargo bench --bench ppo
//!   PPO_BENCH_THREADS=1,2 cargo bench --bench ppo
//!
//! The same measurement with stable-baselines3's PPO (its `PPO.train()` on a full rollout
//! buffer) is `benches/reference/ppo_update.py`; run both on the same machine in one sitting.

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use meshrl::agent::ppo::rollout::End;
use meshrl::agent::ppo::{Agent, PpoConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// (name, observation values, actions).
const SHAPES: [(&str, usize, usize); 2] = [("obs1_actions30", 1, 30), ("obs8_actions16", 8, 16)];

/// A rollout's observations and rewards, drawn once.
struct Transitions {
    observations: Vec<Vec<f32>>,
    rewards: Vec<f64>,
    next: Vec<f32>,
}

impl Transitions {
    fn draw(obs_dim: usize, n: usize, seed: u64) -> Transitions {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let observation = |rng: &mut ChaCha8Rng| (0..obs_dim).map(|_| rng.random::<f32>()).collect::<Vec<f32>>();
        let observations = (0..n).map(|_| observation(&mut rng)).collect();
        let rewards = (0..n).map(|_| rng.sample(StandardNormal)).collect();
        Transitions { observations, rewards, next: observation(&mut rng) }
    }

    /// The agent's rollout filled with them, each action drawn by its current policy.
    fn fill(&self, agent: &mut Agent) {
        for (obs, &reward) in self.observations.iter().zip(&self.rewards) {
            let (action, log_prob) = agent.sample(obs).unwrap();
            agent.remember(obs, action, log_prob, reward, End::Continues);
        }
    }
}

/// The thread counts to bench: `PPO_BENCH_THREADS` (e.g. `1,2`), 1 by default.
fn thread_counts() -> Vec<usize> {
    match std::env::var("PPO_BENCH_THREADS") {
        Ok(s) => s.split(',').map(|t| t.trim().parse().expect("PPO_BENCH_THREADS: thread counts, comma-separated")).collect(),
        Err(_) => vec![1],
    }
}

fn bench_ppo(c: &mut Criterion) {
    let cfg = PpoConfig::default();
    let minibatches = cfg.n_epochs * cfg.n_steps.div_ceil(cfg.batch_size);
    let mut group = c.benchmark_group("ppo_update");
    group.sample_size(10);
    group.throughput(Throughput::Elements(minibatches as u64));
    for threads in thread_counts() {
        // Candle's matrix products use as many threads as this says (read at each product).
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for (name, obs_dim, actions) in SHAPES {
            let transitions = Transitions::draw(obs_dim, cfg.n_steps, 1);
            let mut agent = Agent::new(&cfg, obs_dim, actions, 1).unwrap();
            let (timed, updates) = (Cell::new(Duration::ZERO), Cell::new(0u64));
            group.bench_function(BenchmarkId::new(name, format!("{threads} thread(s)")), |b| {
                b.iter_custom(|iters| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        transitions.fill(&mut agent);
                        let start = Instant::now();
                        let stats = pool.install(|| agent.update(&cfg, &transitions.next).unwrap());
                        elapsed += start.elapsed();
                        assert_eq!(black_box(stats).minibatches, minibatches);
                    }
                    timed.set(timed.get() + elapsed);
                    updates.set(updates.get() + iters);
                    elapsed
                })
            });
            // Over every timed update of this benchmark, warm-up included (none when filtered out).
            if updates.get() > 0 {
                let per_second = updates.get() as f64 / timed.get().as_secs_f64();
                println!(
                    "ppo_update/{name}/{threads} thread(s): {per_second:.3} updates/s, {:.0} gradient steps/s ({} updates, mean)",
                    per_second * minibatches as f64,
                    updates.get()
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_ppo);
criterion_main!(benches);

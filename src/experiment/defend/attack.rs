//! The attacker against the defender: the SFR2L load search, retrained against one rule,
//! looks for the load (Fortio threads and calls) that maximises its 503s per second. Here it
//! is one DQN agent over the joint (threads, calls) grid of `[attack]` (the paper splits the
//! choice between a thread agent and a call agent), trained on the emulator's mean 503/s of
//! every load, as a one-state bandit ([`ControlEnv`]). Its greedy load is scored on fresh
//! runs beside the exhaustive worst load (chosen on the selection runs, scored on the same
//! fresh runs).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::table::{istio_defaults, refined, Policy, Source, Tables};
use super::DefendConfig;
use crate::agent::LearnerKind;
use crate::emulator::run_load_test;
use crate::env::control::{ControlEnv, ControlTables};
use crate::env::defend::Mode;
use crate::error::Result;
use crate::rules::{Load, RetryPolicy, TrafficRules};
use crate::seeding::mix;
use crate::train::{train, Schedule};

/// The attack on one rule.
#[derive(Debug, Clone)]
pub struct Attack {
    /// Which rule ("recommended (robust, DQN seed 2)", "Istio defaults (>= 1.24)").
    pub target: String,
    pub objective: String,
    pub rules: TrafficRules,
    /// The exhaustive worst load and its fresh 503/s.
    pub worst_load: Load,
    pub worst_rate: f64,
    /// Per attacker seed: the load it found and its fresh 503/s.
    pub found: Vec<(u64, Load, f64)>,
}

const SELECT_STREAM: u64 = 11;
const FRESH_STREAM: u64 = 12;

fn mean_rate(cfg: &DefendConfig, rules: &TrafficRules, load: &Load, stream: u64, runs: usize, index: usize) -> f64 {
    let seed = |j: usize| mix(mix(cfg.seed, stream), ((index as u64) << 24) | j as u64);
    (0..runs).map(|j| run_load_test(rules, load, &cfg.scenario, seed(j)).reward()).sum::<f64>() / runs as f64
}

/// The rule the toolkit recommends for an objective: the best, by its worst load and then
/// by its mean over loads on the refine runs (never on the fresh runs it is scored on), of
/// the robust agents' rules and the exhaustive robust optimum (the best single rule by
/// the mean if the run has no robust mode).
pub fn recommended(cfg: &DefendConfig, tables: &Tables, objective: usize) -> (String, TrafficRules) {
    let t = &tables.objectives[objective];
    let (mode, search_name) = match t.modes.iter().find(|m| m.mode == Mode::Robust) {
        Some(m) => (m, "best single rule (worst load)"),
        None => (&t.modes[0], "best single rule (mean)"),
    };
    let weights = cfg.loads.weights();
    let judged = |p: &Policy| -> (f64, f64) {
        let values = p.grid.as_ref().map_or(vec![], |g| refined(cfg, objective, g[0]));
        let worst = values.iter().copied().fold(f64::INFINITY, f64::min);
        (worst, values.iter().zip(&weights).map(|(v, w)| v * w).sum())
    };
    let mut best: Option<((f64, f64), &Policy)> = None;
    // The search first, then the agents: an agent's rule is recommended only when it is
    // strictly better on the refine runs.
    let agents = mode.policies.iter().filter(|p| matches!(p.source, Source::Agent { .. }) && mode.mode == Mode::Robust);
    for p in mode.policies.iter().filter(|p| p.name == search_name).chain(agents) {
        let v = judged(p);
        if best.is_none_or(|(b, _)| v.0 > b.0 || (v.0 == b.0 && v.1 > b.1)) {
            best = Some((v, p));
        }
    }
    let p = best.expect("every mode has its best single rule").1;
    let label = match p.source {
        Source::Agent { .. } => format!("recommended (robust {})", p.name),
        _ => format!("recommended ({})", p.name),
    };
    (label, p.rules[0])
}

/// Attacks the recommended rule of every objective and Istio's defaults.
/// `recommended[o]` is objective o's ([`recommended`]).
pub fn run(cfg: &DefendConfig, recommended: &[(String, TrafficRules)]) -> Result<Vec<Attack>> {
    let mut targets: Vec<(String, String, TrafficRules)> =
        cfg.objectives.iter().zip(recommended).map(|(named, (name, rules))| (name.clone(), named.name.clone(), *rules)).collect();
    targets.push(("Istio defaults (>= 1.24)".into(), String::new(), istio_defaults(RetryPolicy::istio_1_24_default())));
    let grid = super::LoadGrid { threads: cfg.attack.threads.clone(), calls: cfg.attack.calls.clone(), weights: None };
    let loads = grid.loads();
    let seeds = cfg.seed_list();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| crate::error::Error::config(e.to_string()))?;
    let mut attacks = Vec::new();
    for (target, objective, rules) in targets {
        let (selected, fresh): (Vec<f64>, Vec<f64>) = pool.install(|| {
            loads
                .par_iter()
                .enumerate()
                .map(|(i, load)| {
                    (
                        mean_rate(cfg, &rules, load, SELECT_STREAM, cfg.select_runs, i),
                        mean_rate(cfg, &rules, load, FRESH_STREAM, cfg.score_runs, i),
                    )
                })
                .unzip()
        });
        let worst = (0..loads.len()).fold(0, |b, i| if selected[i] > selected[b] { i } else { b });
        // The agent learns from 503/s scaled into [0, 1]: its greedy choice does not change.
        let scale = selected.iter().copied().fold(1e-9, f64::max);
        let env = ControlEnv::new(ControlTables {
            loads: vec![1.0],
            weights: vec![1.0],
            actions: loads.iter().map(|l| format!("threads {}, calls {}", l.threads, l.calls)).collect(),
            model: vec![selected.iter().map(|r| r / scale).collect()],
            truth: vec![fresh.iter().map(|r| r / scale).collect()],
        })?;
        // Sequential: candle's kernels run on this thread (see `super::run`).
        let found = seeds
            .iter()
            .map(|&seed| {
                let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, 0xA77AC));
                let mut learner = LearnerKind::Dqn.spec(&cfg.dqn, &cfg.ppo).build(crate::env::Environment::layout(&env), &mut rng)?;
                let schedule = Schedule { epochs: cfg.attack.epochs, steps_per_epoch: cfg.attack.steps_per_epoch };
                train(&env, learner.as_mut(), schedule, &mut rng, &indicatif::ProgressBar::hidden(), None)?;
                let a = learner.act_greedy(0, &[env.observation(0)])?[0];
                Ok((seed, loads[a], fresh[a]))
            })
            .collect::<Result<Vec<_>>>()?;
        attacks.push(Attack { target, objective, rules, worst_load: loads[worst], worst_rate: fresh[worst], found });
    }
    Ok(attacks)
}

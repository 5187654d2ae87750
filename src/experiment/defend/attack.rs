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
use crate::env::defend::{mix, Mode};
use crate::error::Result;
use crate::rules::{Load, RetryPolicy, TrafficRules};
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

/// The rule the toolkit recommends for an objective: among the robust-mode agents, the rule
/// with the best worst load on the refine runs (never on the fresh runs it is scored on);
/// without robust cells, the exhaustive robust optimum.
pub fn recommended(cfg: &DefendConfig, tables: &Tables, objective: usize) -> (String, TrafficRules) {
    let t = &tables.objectives[objective];
    let robust = t.modes.iter().find(|m| m.mode == Mode::Robust);
    // Judged on the refine runs, never on the fresh runs the rule is scored on.
    let worst_refined =
        |p: &Policy| p.grid.as_ref().map_or(f64::NEG_INFINITY, |g| refined(cfg, objective, g[0]).into_iter().fold(f64::INFINITY, f64::min));
    if let Some(m) = robust {
        let agents: Vec<_> = m.policies.iter().filter(|p| matches!(p.source, Source::Agent { .. })).collect();
        // The first agent (config order of learners, then seeds) wins ties.
        let mut best: Option<(f64, &&Policy)> = None;
        for a in &agents {
            let v = worst_refined(a);
            if best.is_none_or(|(b, _)| v > b) {
                best = Some((v, a));
            }
        }
        if let Some((_, best)) = best {
            return (format!("recommended (robust {})", best.name), best.rules[0]);
        }
        if let Some(p) = m.policies.iter().find(|p| p.name.starts_with("best single rule (worst load)")) {
            return ("recommended (exhaustive robust optimum)".into(), p.rules[0]);
        }
    }
    let per_load = &t.modes[0];
    let p = per_load.policies.iter().find(|p| p.name.starts_with("best single rule")).expect("every mode has a best single rule");
    ("recommended (best single rule)".into(), p.rules[0])
}

/// Attacks the recommended rule of every objective and Istio's defaults.
pub fn run(cfg: &DefendConfig, tables: &Tables) -> Result<Vec<Attack>> {
    let mut targets: Vec<(String, String, TrafficRules)> = Vec::new();
    for (o, named) in cfg.objectives.iter().enumerate() {
        let (name, rules) = recommended(cfg, tables, o);
        targets.push((name, named.name.clone(), rules));
    }
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

//! The exhaustive search and the fresh scoring of every policy.
//!
//! Selection: every (load, joint rule) runs `select_runs` times, with the same seeds for
//! every rule at a load (common random numbers: two rules differ by their effect, not by
//! their luck), and every objective is computed from the same runs. Scoring: every policy's
//! rule at a load runs `score_runs` times on fresh seeds, the same for every policy, so the
//! choice is never scored on the runs that made it.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::{DefendCell, DefendConfig};
use crate::agent::LearnerKind;
use crate::emulator::run_load_test;
use crate::env::defend::objective::Outcome;
use crate::env::defend::{mix, Mode};
use crate::error::{Error, Result};
use crate::experiment::yardstick::argmax;
use crate::generate::DatasetsConfig;
use crate::rules::{LoadBalancer, RetryPolicy, TrafficRules};

/// Seed streams of the master seed: selection and fresh scoring never share a run.
const SELECT_STREAM: u64 = 1;
const FRESH_STREAM: u64 = 2;

fn run_seed(master: u64, stream: u64, load: usize, run: usize) -> u64 {
    mix(mix(master, stream), ((load as u64) << 24) | run as u64)
}

/// Istio's defaults for a service with no DestinationRule and a VirtualService without
/// `retries`: no connection-pool limits, no outlier detection, LEAST_REQUEST, and the
/// default retry policy of the given release line.
pub fn istio_defaults(retries: RetryPolicy) -> TrafficRules {
    TrafficRules { consecutive_errors: u32::MAX, load_balancer: LoadBalancer::ISTIO_DEFAULT, retries, ..TrafficRules::default() }
}

/// The midpoint rule of every dataset of a dataset config (`configs/datasets.toml`): each
/// of the seven ranges' midpoint (rounded down), the other settings as the datasets were
/// generated (no retries, round robin).
pub fn midpoint_rules(path: &Path) -> Result<Vec<(String, TrafficRules)>> {
    let (_, plans) = DatasetsConfig::load(path)?;
    let mid = |r: [u32; 2]| (r[0] + r[1]) / 2;
    Ok(plans
        .iter()
        .map(|p| {
            let s = &p.spec;
            let rules = TrafficRules {
                max_pending_requests: mid(s.max_pending_requests),
                max_connections: mid(s.max_connections),
                max_requests_per_connection: mid(s.max_requests_per_connection),
                ejection_time_s: f64::from(mid(s.ejection_time_s)),
                max_ejection_percent: f64::from(mid(s.max_ejection_percent)),
                interval_s: f64::from(mid(s.interval_s)),
                consecutive_errors: mid(s.consecutive_errors),
                ..TrafficRules::default()
            };
            (format!("{} midpoint", s.name), rules)
        })
        .collect())
}

/// Who a policy is.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Found by exhaustive search over the grid (oracle, best single rule).
    Search,
    /// A fixed rule from outside the grid's search (Istio's defaults, a dataset's midpoint).
    Fixed,
    Agent {
        learner: LearnerKind,
        seed: u64,
    },
}

/// A rule per load (the same at every load for a single rule), scored on fresh runs.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub source: Source,
    pub rules: Vec<TrafficRules>,
    /// The fresh mean outcome at each load.
    pub outcomes: Vec<Outcome>,
}

impl Policy {
    /// Weighted mean over the loads.
    pub fn mean(&self, weights: &[f64]) -> f64 {
        self.outcomes.iter().zip(weights).map(|(o, w)| o.value * w).sum()
    }

    pub fn worst(&self) -> f64 {
        self.outcomes.iter().map(|o| o.value).fold(f64::INFINITY, f64::min)
    }

    /// The summary a mode ranks by: the weighted mean per load, the worst load in robust mode.
    pub fn score(&self, mode: Mode, weights: &[f64]) -> f64 {
        match mode {
            Mode::PerLoad => self.mean(weights),
            Mode::Robust => self.worst(),
        }
    }
}

/// The policies of one objective and mode.
pub struct ModeTable {
    pub mode: Mode,
    pub policies: Vec<Policy>,
}

pub struct ObjectiveTable {
    pub name: String,
    /// Mean selection-run objective of every rule at every load: `selection[load][rule]`.
    pub selection: Vec<Vec<f64>>,
    pub modes: Vec<ModeTable>,
}

pub struct Tables {
    pub objectives: Vec<ObjectiveTable>,
    pub weights: Vec<f64>,
    /// Load tests run for the search and the scoring.
    pub runs: u64,
    pub seconds: f64,
}

fn pool() -> Result<rayon::ThreadPool> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| Error::config(format!("thread pool: {e}")))
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!("{what} {{wide_bar}} {{pos}}/{{len}} rules, eta {{eta}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Mean selection-run objective of every (objective, load, rule): `[objective][load][rule]`.
pub fn select(cfg: &DefendConfig) -> Result<Vec<Vec<Vec<f64>>>> {
    let loads = cfg.loads.loads();
    let rules = cfg.grid.joint_rules();
    let progress = bar(rules as u64, "exhaustive search");
    // One rule's values: [objective][load].
    let per_rule: Vec<Vec<Vec<f64>>> = pool()?.install(|| {
        (0..rules)
            .into_par_iter()
            .map(|k| {
                let rule = cfg.grid.rule(&cfg.grid.choice(k));
                let mut sums = vec![vec![0.0; loads.len()]; cfg.objectives.len()];
                for (l, load) in loads.iter().enumerate() {
                    for j in 0..cfg.select_runs {
                        let r = run_load_test(&rule, load, &cfg.scenario, run_seed(cfg.seed, SELECT_STREAM, l, j));
                        for (o, named) in cfg.objectives.iter().enumerate() {
                            sums[o][l] += named.objective.outcome(&r).value;
                        }
                    }
                }
                progress.inc(1);
                sums.iter().map(|row| row.iter().map(|s| s / cfg.select_runs as f64).collect()).collect()
            })
            .collect()
    });
    progress.finish_and_clear();
    Ok((0..cfg.objectives.len()).map(|o| (0..loads.len()).map(|l| per_rule.iter().map(|r| r[o][l]).collect()).collect()).collect())
}

/// The best rule of every load.
pub fn oracle(selection: &[Vec<f64>]) -> Vec<usize> {
    selection.iter().map(|row| argmax(row.iter().copied())).collect()
}

/// The best single rule by the weighted mean over loads.
pub fn best_single(selection: &[Vec<f64>], weights: &[f64]) -> usize {
    let n = selection[0].len();
    argmax((0..n).map(|k| selection.iter().zip(weights).map(|(row, w)| row[k] * w).sum::<f64>()))
}

/// The best single rule by its worst load.
pub fn robust_optimum(selection: &[Vec<f64>]) -> usize {
    let n = selection[0].len();
    argmax((0..n).map(|k| selection.iter().map(|row| row[k]).fold(f64::INFINITY, f64::min)))
}

/// Fresh mean outcome of `rules[l]` at every load `l`, for one objective.
pub fn score(cfg: &DefendConfig, objective: usize, rules: &[TrafficRules]) -> Vec<Outcome> {
    let loads = cfg.loads.loads();
    let o = &cfg.objectives[objective].objective;
    (0..loads.len())
        .into_par_iter()
        .map(|l| {
            let runs: Vec<Outcome> = (0..cfg.score_runs)
                .map(|j| o.outcome(&run_load_test(&rules[l], &loads[l], &cfg.scenario, run_seed(cfg.seed, FRESH_STREAM, l, j))))
                .collect();
            Outcome::mean(&runs)
        })
        .collect()
}

impl Tables {
    pub fn compute(cfg: &DefendConfig, midpoints: &[(String, TrafficRules)], cells: &[DefendCell]) -> Result<Tables> {
        let started = std::time::Instant::now();
        let loads = cfg.loads.loads().len();
        let weights = cfg.loads.weights();
        let selection = select(cfg)?;
        let grid = |k: usize| cfg.grid.rule(&cfg.grid.choice(k));
        let every = |r: TrafficRules| vec![r; loads];
        let pool = pool()?;
        let mut objectives = Vec::new();
        let mut scored_runs = 0u64;
        for (oi, named) in cfg.objectives.iter().enumerate() {
            let sel = &selection[oi];
            let oracle_rules: Vec<TrafficRules> = oracle(sel).into_iter().map(grid).collect();
            let mut modes = Vec::new();
            for &mode in &cfg.modes {
                let mut candidates: Vec<(String, Source, Vec<TrafficRules>)> = vec![
                    ("oracle (per load)".into(), Source::Search, oracle_rules.clone()),
                    ("best single rule (mean)".into(), Source::Search, every(grid(best_single(sel, &weights)))),
                ];
                if mode == Mode::Robust {
                    candidates.push(("best single rule (worst load)".into(), Source::Search, every(grid(robust_optimum(sel)))));
                }
                candidates.push((
                    "Istio defaults (>= 1.24)".into(),
                    Source::Fixed,
                    every(istio_defaults(RetryPolicy::istio_1_24_default())),
                ));
                candidates.push(("Istio defaults (1.14-1.23)".into(), Source::Fixed, every(istio_defaults(RetryPolicy::istio_default()))));
                for (name, rule) in midpoints {
                    candidates.push((name.clone(), Source::Fixed, every(*rule)));
                }
                for c in cells.iter().filter(|c| c.objective == named.name && c.mode == mode) {
                    let rules = match mode {
                        Mode::PerLoad => c.policy.iter().map(|&k| grid(k)).collect(),
                        Mode::Robust => every(grid(c.policy[0])),
                    };
                    candidates.push((
                        format!("{} seed {}", c.learner.label(), c.seed),
                        Source::Agent { learner: c.learner, seed: c.seed },
                        rules,
                    ));
                }
                let policies = pool.install(|| {
                    candidates
                        .into_iter()
                        .map(|(name, source, rules)| {
                            let outcomes = score(cfg, oi, &rules);
                            Policy { name, source, rules, outcomes }
                        })
                        .collect::<Vec<_>>()
                });
                scored_runs += (policies.len() * loads * cfg.score_runs) as u64;
                modes.push(ModeTable { mode, policies });
            }
            objectives.push(ObjectiveTable { name: named.name.clone(), selection: sel.clone(), modes });
        }
        let runs = (cfg.grid.joint_rules() * loads * cfg.select_runs) as u64 + scored_runs;
        Ok(Tables { objectives, weights, runs, seconds: started.elapsed().as_secs_f64() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_pick_the_best_rule_by_their_own_measure() {
        // Two loads, three rules: rule 0 is best at load 0, rule 2 at load 1, rule 1 never
        // best but never bad.
        let sel = vec![vec![10.0, 6.0, 0.0], vec![0.0, 6.0, 9.0]];
        assert_eq!(oracle(&sel), vec![0, 2]);
        assert_eq!(best_single(&sel, &[0.5, 0.5]), 1, "6 on average beats 5 and 4.5");
        assert_eq!(best_single(&sel, &[0.9, 0.1]), 0);
        assert_eq!(robust_optimum(&sel), 1);
    }

    #[test]
    fn istio_defaults_eject_nothing_and_balance_by_least_request() {
        let d = istio_defaults(RetryPolicy::istio_1_24_default());
        assert_eq!((d.consecutive_errors, d.max_connections, d.http2_max_requests), (u32::MAX, u32::MAX, None));
        assert_eq!((d.retries.attempts, d.retries.on_503, d.load_balancer), (2, false, LoadBalancer::LeastRequest));
    }

    #[test]
    fn midpoints_come_from_the_dataset_ranges() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/datasets.toml");
        let mids = midpoint_rules(&path).unwrap();
        assert_eq!(mids.len(), 5);
        assert_eq!(mids[0].0, "S1 midpoint");
        // S1: pending, connections and requests per connection in [1, 7].
        assert_eq!((mids[0].1.max_pending_requests, mids[0].1.max_connections, mids[0].1.consecutive_errors), (4, 4, 1));
    }
}

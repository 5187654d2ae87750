//! The exhaustive search and the fresh scoring of every policy.
//!
//! Selection: every (load, joint rule) runs `select_runs` times, with the same seeds for
//! every rule at a load (common random numbers: two rules differ by their effect, not by
//! their luck), and every objective is computed from the same runs. The maximum of 17 280
//! noisy means is mostly luck (the first version of this search picked per-load "optima"
//! that scored below the best single rule on fresh runs), so each search keeps its
//! `shortlist` best candidates, runs them `refine_runs` more times on seeds of their own,
//! and takes the best of those. Scoring: every policy's rule at a load runs `score_runs`
//! times on fresh seeds, the same for every policy, so the choice is never scored on the
//! runs that made it.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::{DefendCell, DefendConfig};
use crate::agent::LearnerKind;
use crate::emulator::run_load_test;
use crate::env::defend::objective::Outcome;
use crate::env::defend::Mode;
use crate::error::{Error, Result};
use crate::experiment::yardstick::argmax;
use crate::generate::DatasetsConfig;
use crate::rules::{LoadBalancer, RetryPolicy, TrafficRules};
use crate::seeding::mix;

/// Seed streams of the master seed: selection and fresh scoring never share a run.
const SELECT_STREAM: u64 = 1;
const FRESH_STREAM: u64 = 2;
const REFINE_STREAM: u64 = 3;

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
    /// The grid indices of the rules, when they are grid rules (searches and agents).
    pub grid: Option<Vec<usize>>,
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

/// The `n` best candidates by `scores` (the first on ties), best first.
fn shortlist(scores: &[f64], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(n);
    order
}

/// Mean objective of grid rule `k` at every load over `refine_runs` runs of their own seeds.
pub fn refined(cfg: &DefendConfig, objective: usize, k: usize) -> Vec<f64> {
    let rule = cfg.grid.rule(&cfg.grid.choice(k));
    let o = &cfg.objectives[objective].objective;
    cfg.loads
        .loads()
        .iter()
        .enumerate()
        .map(|(l, load)| {
            let total: f64 = (0..cfg.refine_runs)
                .map(|j| o.outcome(&run_load_test(&rule, load, &cfg.scenario, run_seed(cfg.seed, REFINE_STREAM, l, j))).value)
                .sum();
            total / cfg.refine_runs as f64
        })
        .collect()
}

fn weighted(values: &[f64], weights: &[f64]) -> f64 {
    values.iter().zip(weights).map(|(v, w)| v * w).sum()
}

fn worst(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

/// The rules the searches pick for one objective.
#[derive(Debug, Clone, PartialEq)]
pub struct Searched {
    /// The best rule of every load.
    pub oracle: Vec<usize>,
    /// The best single rule by the weighted mean over loads.
    pub best_single: usize,
    /// The best single rule by its worst load.
    pub robust: usize,
    /// Candidates run again.
    pub refined: usize,
}

/// Shortlists on the selection runs, then picks on the refine runs. The oracle's shortlist
/// at each load also holds the single rules' picks, so it is never worse than them on the
/// runs it is chosen on.
pub fn search(cfg: &DefendConfig, objective: usize, selection: &[Vec<f64>], weights: &[f64]) -> Searched {
    let rules = selection[0].len();
    let by_mean: Vec<f64> = (0..rules).map(|k| weighted(&selection.iter().map(|row| row[k]).collect::<Vec<_>>(), weights)).collect();
    let by_worst: Vec<f64> = (0..rules).map(|k| worst(&selection.iter().map(|row| row[k]).collect::<Vec<_>>())).collect();
    let mut candidates: Vec<usize> = shortlist(&by_mean, cfg.shortlist);
    candidates.extend(shortlist(&by_worst, cfg.shortlist));
    for row in selection {
        candidates.extend(shortlist(row, cfg.shortlist));
    }
    candidates.sort_unstable();
    candidates.dedup();
    let values: Vec<Vec<f64>> = candidates.par_iter().map(|&k| refined(cfg, objective, k)).collect();
    let pick = |pool: &[usize], score: &dyn Fn(&[f64]) -> f64| -> usize {
        let at = |k: usize| &values[candidates.binary_search(&k).expect("every pick is a candidate")];
        pool[argmax(pool.iter().map(|&k| score(at(k))))]
    };
    let best_single = pick(&shortlist(&by_mean, cfg.shortlist), &|v| weighted(v, weights));
    let robust = pick(&shortlist(&by_worst, cfg.shortlist), &worst);
    let oracle = selection
        .iter()
        .enumerate()
        .map(|(l, row)| {
            let mut pool = shortlist(row, cfg.shortlist);
            pool.extend([best_single, robust]);
            pick(&pool, &|v| v[l])
        })
        .collect();
    Searched { oracle, best_single, robust, refined: candidates.len() }
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
        let pool = pool()?;
        let mut objectives = Vec::new();
        let (mut scored_runs, mut refined_runs) = (0u64, 0u64);
        for (oi, named) in cfg.objectives.iter().enumerate() {
            let sel = &selection[oi];
            let found = pool.install(|| search(cfg, oi, sel, &weights));
            refined_runs += (found.refined * loads * cfg.refine_runs) as u64;
            let mut modes = Vec::new();
            for &mode in &cfg.modes {
                // Grid policies (searches, agents) keep their indices; fixed rules have none.
                let mut grid_policies: Vec<(String, Source, Vec<usize>)> = vec![
                    ("oracle (per load)".into(), Source::Search, found.oracle.clone()),
                    ("best single rule (mean)".into(), Source::Search, vec![found.best_single; loads]),
                ];
                if mode == Mode::Robust {
                    grid_policies.push(("best single rule (worst load)".into(), Source::Search, vec![found.robust; loads]));
                }
                let mut fixed: Vec<(String, TrafficRules)> = vec![
                    ("Istio defaults (>= 1.24)".into(), istio_defaults(RetryPolicy::istio_1_24_default())),
                    ("Istio defaults (1.14-1.23)".into(), istio_defaults(RetryPolicy::istio_default())),
                ];
                fixed.extend(midpoints.iter().cloned());
                let agents: Vec<(String, Source, Vec<usize>)> = cells
                    .iter()
                    .filter(|c| c.objective == named.name && c.mode == mode)
                    .map(|c| {
                        let indices = match mode {
                            Mode::PerLoad => c.policy.clone(),
                            Mode::Robust => vec![c.policy[0]; loads],
                        };
                        (format!("{} seed {}", c.learner.label(), c.seed), Source::Agent { learner: c.learner, seed: c.seed }, indices)
                    })
                    .collect();
                let as_grid = |(name, source, indices): (String, Source, Vec<usize>)| Policy {
                    name,
                    source,
                    rules: indices.iter().map(|&k| grid(k)).collect(),
                    grid: Some(indices),
                    outcomes: vec![],
                };
                let mut policies: Vec<Policy> = grid_policies.into_iter().map(as_grid).collect();
                policies.extend(fixed.into_iter().map(|(name, rule)| Policy {
                    name,
                    source: Source::Fixed,
                    rules: vec![rule; loads],
                    grid: None,
                    outcomes: vec![],
                }));
                policies.extend(agents.into_iter().map(as_grid));
                pool.install(|| policies.iter_mut().for_each(|p| p.outcomes = score(cfg, oi, &p.rules)));
                scored_runs += (policies.len() * loads * cfg.score_runs) as u64;
                modes.push(ModeTable { mode, policies });
            }
            objectives.push(ObjectiveTable { name: named.name.clone(), selection: sel.clone(), modes });
        }
        let runs = (cfg.grid.joint_rules() * loads * cfg.select_runs) as u64 + refined_runs + scored_runs;
        Ok(Tables { objectives, weights, runs, seconds: started.elapsed().as_secs_f64() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortlists_keep_the_best_first_and_break_ties_by_index() {
        assert_eq!(shortlist(&[1.0, 5.0, 3.0, 5.0, 0.0], 3), vec![1, 3, 2]);
        assert_eq!(shortlist(&[1.0, 2.0], 5), vec![1, 0]);
        assert_eq!((weighted(&[10.0, 0.0], &[0.25, 0.75]), worst(&[3.0, -1.0, 2.0])), (2.5, -1.0));
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

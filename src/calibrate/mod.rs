//! `meshrl calibrate <trace> --out scenario.toml` (issue 28): the emulator fitted to a
//! user's own cluster. Given a trace of Fortio runs (several configurations, normally with
//! repeated runs), it finds the scenario fields under which the emulator's distributions
//! of 503 share, qps and latency best match the observed runs, and says how well the data
//! pins each field down.
//!
//! - The criterion ([`distance`]): per configuration and response, the 1-Wasserstein
//!   distance between the observed and the emulated runs (a distance between
//!   distributions, not between means), averaged over configurations.
//! - Common random numbers: every candidate scenario is emulated on the same seeds, so two
//!   candidates differ by their fields, not by their luck.
//! - The optimiser is one of the equal-budget issue's search methods ([`crate::search`];
//!   default CMA-ES) over a grid of each field's values ([`fields`]), followed by a sweep
//!   of every field alone around the fit.
//! - Intervals ([`intervals`]): repeated fits over the scenarios the search evaluated, on
//!   bootstrap resamples of the observed runs (the runs of each configuration drawn with
//!   replacement); with one run per configuration, the single-run mode resamples
//!   pseudo-observations emulated at the fit instead (a parametric bootstrap), which is
//!   wider and says so.
//! - [`suggest`]: the configurations whose next runs would narrow the loose fields most.

pub mod distance;
pub mod fields;
pub mod intervals;
pub mod observed;
pub mod report;
pub mod suggest;

use std::collections::HashMap;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::emulator::{run_load_test, Scenario};
use crate::error::{Error, Result};
use crate::search::{Evaluator, Method};
use crate::seeding::mix;
pub use fields::{FieldBounds, FieldGrid};
pub use intervals::FieldInterval;
pub use observed::{read_observed, Configuration, Metric, Observed};

/// Every setting of a fit (`configs/calibrate.toml` documents each; all have defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalibrateConfig {
    /// Master seed: the emulator's common random numbers, the search and the resamples.
    pub seed: u64,
    /// The fitted fields and their bounds (default [`fields::default_fields`]).
    #[serde(rename = "field")]
    pub fields: Vec<FieldBounds>,
    /// Values per field on the search grid (default 25).
    pub levels: usize,
    /// Emulated runs of each configuration per candidate scenario (default 20).
    pub runs: usize,
    /// Candidate scenarios evaluated before the sweeps (default 300): a Latin hypercube of
    /// `design` of them, then the search method's.
    pub budget: usize,
    /// The Latin hypercube's share of the budget, in candidates (default 60).
    pub design: usize,
    /// The search method (default CMA-ES, `{ method = "cma_es" }`).
    pub method: Method,
    /// Resampled fits behind the intervals (default 200).
    pub resamples: usize,
    /// The responses compared (default all three).
    pub metrics: Vec<Metric>,
    /// A trace with fewer configurations is refused (default 2: one configuration cannot
    /// tell a slower pod from a slower handshake).
    pub min_configurations: usize,
    /// A field whose interval spans more than this share of its grid is loose (default 0.25).
    pub loose_share: f64,
    /// Threads of the loads `--suggest` considers (default 1, 2, 4, ..., 64).
    pub suggest_threads: Vec<u32>,
    /// Calls per thread of those loads (default 20 and 200).
    pub suggest_calls_per_thread: Vec<u32>,
}

impl Default for CalibrateConfig {
    fn default() -> Self {
        CalibrateConfig {
            seed: 1,
            fields: fields::default_fields(),
            levels: 25,
            runs: 20,
            budget: 300,
            design: 60,
            method: Method::CmaEs { sigma: 0.3 },
            resamples: 200,
            metrics: vec![Metric::FailureRate, Metric::Qps, Metric::LatencyMeanMs],
            min_configurations: 2,
            loose_share: 0.25,
            suggest_threads: vec![1, 2, 4, 8, 16, 32, 64],
            suggest_calls_per_thread: vec![20, 200],
        }
    }
}

impl CalibrateConfig {
    /// Reads a calibration config; errors name the file.
    pub fn load(path: &Path) -> Result<CalibrateConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        let cfg: CalibrateConfig = toml::from_str(&text).map_err(|e| Error::file(path, e.to_string()))?;
        cfg.validate().map_err(|m| Error::file(path, m))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, v, min) in [
            ("runs", self.runs, 2),
            ("budget", self.budget, 1),
            ("resamples", self.resamples, 10),
            ("min_configurations", self.min_configurations, 1),
        ] {
            if v < min {
                return Err(format!("{name} must be >= {min}, but is {v}"));
            }
        }
        if self.metrics.is_empty() {
            return Err("metrics is empty: compare at least one response".into());
        }
        if self.suggest_threads.iter().chain(&self.suggest_calls_per_thread).any(|&n| n == 0)
            || self.suggest_threads.is_empty()
            || self.suggest_calls_per_thread.is_empty()
        {
            return Err("suggest_threads and suggest_calls_per_thread must be non-empty lists of whole numbers >= 1".into());
        }
        if !(self.loose_share > 0.0 && self.loose_share < 1.0) {
            return Err(format!("loose_share must be in (0, 1), but is {}", self.loose_share));
        }
        self.method.validate()
    }
}

/// One evaluated candidate scenario.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub point: Vec<usize>,
    pub distance: f64,
    /// Per configuration and metric, the emulated runs' transformed values, sorted.
    pub emulated: Vec<Vec<Vec<f64>>>,
}

/// A finished fit.
#[derive(Debug, Clone)]
pub struct Fit {
    pub grid: FieldGrid,
    pub observed: Observed,
    /// Every scenario evaluated, the search's and the sweeps'.
    pub candidates: Vec<Candidate>,
    /// Index of the best candidate.
    pub best: usize,
    /// Candidates the search method evaluated (the rest are the sweeps').
    pub searched: usize,
    pub intervals: Vec<FieldInterval>,
    /// The resampled fits behind the intervals (indices into `candidates`).
    pub resampled: Vec<usize>,
    /// What the data cannot tell apart, in words.
    pub notes: Vec<String>,
    pub single_run: bool,
}

impl Fit {
    pub fn best(&self) -> &Candidate {
        &self.candidates[self.best]
    }

    /// The fitted scenario.
    pub fn scenario(&self) -> Scenario {
        self.grid.scenario(&self.best().point).expect("every evaluated point makes a valid scenario")
    }
}

/// Emulates `runs` runs of each configuration under `scenario`; the seed of run k of
/// configuration c is `mix(mix(seed, c), k)` whatever the scenario (common random
/// numbers). Per configuration and metric, the values in run order, transformed.
pub fn emulate(scenario: &Scenario, configurations: &[Configuration], metrics: &[Metric], runs: usize, seed: u64) -> Vec<Vec<Vec<f64>>> {
    configurations
        .par_iter()
        .enumerate()
        .map(|(c, conf)| {
            let results: Vec<_> =
                (0..runs).map(|k| run_load_test(&conf.rules, &conf.load, scenario, mix(mix(seed, c as u64), k as u64))).collect();
            metrics.iter().map(|m| results.iter().map(|r| m.transform(m.of(r))).collect()).collect()
        })
        .collect()
}

/// The observed runs, sorted per configuration and metric.
pub fn sorted_observed(observed: &Observed) -> Vec<Vec<Vec<f64>>> {
    observed.configurations.iter().map(|c| c.values.iter().map(|v| distance::sorted(v.clone())).collect()).collect()
}

/// Fits the grid's fields to the observed runs.
pub fn fit(observed: Observed, base: &Scenario, cfg: &CalibrateConfig) -> Result<Fit> {
    cfg.validate().map_err(Error::config)?;
    let file = observed.path.clone();
    if observed.configurations.len() < cfg.min_configurations {
        return Err(Error::file(
            &file,
            format!(
                "{} configuration(s) (rows with the same rule, knob and load columns); a fit needs at least {}: \
                 one configuration cannot tell the fields apart",
                observed.configurations.len(),
                cfg.min_configurations
            ),
        ));
    }
    // One run per configuration shows no run-to-run spread, and a distance to one point is
    // smallest for a distribution squeezed onto it: the spread fields stay at the base's.
    let single_run = observed.single_run();
    let (spread, fields): (Vec<FieldBounds>, Vec<FieldBounds>) =
        cfg.fields.iter().cloned().partition(|f| single_run && f.name.starts_with("run_") && f.name.ends_with("_sigma"));
    let grid = FieldGrid::new(base, &fields, cfg.levels).map_err(Error::config)?;
    let target = sorted_observed(&observed);
    let space = grid.space();
    let sweeps: usize = grid.values.iter().map(Vec::len).sum();
    let bar = ProgressBar::new((cfg.budget + sweeps) as u64).with_style(
        ProgressStyle::with_template("calibrate {bar:30} {pos}/{len} scenarios, best distance {msg} [{elapsed}<{eta}]")
            .expect("a valid template"),
    );
    let mut evaluated =
        Evaluated { grid: &grid, observed: &observed, target: &target, cfg, candidates: vec![], seen: HashMap::new(), bar: &bar };
    let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, 1));
    // A Latin hypercube first: the search starts from a view of the whole box, and the
    // intervals have candidates away from the search's path.
    for p in space.latin_hypercube(cfg.design.min(cfg.budget), &mut rng) {
        evaluated.evaluate(&p)?;
    }
    let recommended = {
        let mut objective = |p: &[usize], _replicate_seed: u64| evaluated.evaluate(p).map(|d| -d);
        let mut eval = Evaluator::new(&mut objective, cfg.seed, 1, cfg.budget - cfg.design.min(cfg.budget));
        cfg.method.search(&space, &mut eval, &mut rng)?
    };
    evaluated.evaluate(&recommended)?;
    let searched = evaluated.candidates.len();
    // Every field alone over its grid, the others at the best point: what the data says
    // about each field near the fit, and candidates for the intervals.
    let centre = evaluated.candidates[evaluated.best()].point.clone();
    for (f, values) in grid.values.iter().enumerate() {
        for level in 0..values.len() {
            let mut p = centre.clone();
            p[f] = level;
            evaluated.evaluate(&p)?;
        }
    }
    bar.finish_and_clear();
    let best = evaluated.best();
    let candidates = evaluated.candidates;
    let mut fit = Fit { grid, observed, candidates, best, searched, intervals: vec![], resampled: vec![], notes: vec![], single_run };
    intervals::estimate(&mut fit, cfg, &centre)?;
    for f in spread {
        fit.notes.push(format!(
            "single-run mode: `{}` is left at the base scenario's value; one run per configuration shows no run-to-run spread",
            f.name
        ));
    }
    Ok(fit)
}

/// The candidates evaluated so far; a point evaluated twice is emulated once (its runs
/// are the same common random numbers).
struct Evaluated<'a> {
    grid: &'a FieldGrid,
    observed: &'a Observed,
    target: &'a [Vec<Vec<f64>>],
    cfg: &'a CalibrateConfig,
    candidates: Vec<Candidate>,
    seen: HashMap<Vec<usize>, usize>,
    bar: &'a ProgressBar,
}

impl Evaluated<'_> {
    fn evaluate(&mut self, p: &[usize]) -> Result<f64> {
        if let Some(&i) = self.seen.get(p) {
            return Ok(self.candidates[i].distance);
        }
        let scenario = self.grid.scenario(p).map_err(Error::config)?;
        let emulated: Vec<Vec<Vec<f64>>> =
            emulate(&scenario, &self.observed.configurations, &self.observed.metrics, self.cfg.runs, self.cfg.seed)
                .into_iter()
                .map(|c| c.into_iter().map(distance::sorted).collect())
                .collect();
        let d = distance::criterion(self.target, &emulated);
        self.seen.insert(p.to_vec(), self.candidates.len());
        self.candidates.push(Candidate { point: p.to_vec(), distance: d, emulated });
        self.bar.inc(1);
        self.bar.set_message(format!("{:.4}", self.candidates[self.best()].distance));
        Ok(d)
    }

    /// The first candidate with the smallest distance.
    fn best(&self) -> usize {
        self.candidates.iter().enumerate().min_by(|a, b| a.1.distance.total_cmp(&b.1.distance)).map_or(0, |(i, _)| i)
    }
}

#[cfg(test)]
mod tests;

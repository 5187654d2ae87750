//! `meshrl calibrate ... --suggest N`: the next Fortio configurations whose runs would
//! narrow the loose fields most.
//!
//! The scenarios still plausible after the fit are the resampled fits' (its intervals come
//! from them). A configuration is worth running if those scenarios disagree on it: its
//! score is, summed over the responses, the variance of the scenarios' mean response over
//! the mean variance of one run within a scenario (a signal-to-noise ratio: how well one
//! run tells the plausible scenarios apart). Candidates are every rule of the trace, plus
//! the circuit-breaking task's rule with 1, 10 and 100 connections and pending requests, at
//! the config's loads (by default 1 to 64 threads, 20 or 200 calls per thread); the best N
//! are suggested.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use super::{emulate, CalibrateConfig, Configuration, Fit};
use crate::emulator::calibration::calibration_rules;
use crate::error::Result;
use crate::rules::{Load, TrafficRules};
use crate::seeding::mix;

/// Plausible scenarios taken into account, at most (the most frequent resampled fits).
const PLAUSIBLE: usize = 12;
/// Emulated runs of a candidate configuration under each plausible scenario.
const RUNS: usize = 10;

/// One suggested configuration and its score.
#[derive(Debug, Clone)]
pub struct Suggestion {
    pub rules: TrafficRules,
    pub load: Load,
    pub score: f64,
}

/// The candidate configurations: the trace's rules and three standard ones, at the config's
/// loads, less the configurations the trace has.
pub fn candidates(fit: &Fit, cfg: &CalibrateConfig) -> Vec<Configuration> {
    let mut rules: Vec<TrafficRules> = Vec::new();
    for c in &fit.observed.configurations {
        if !rules.contains(&c.rules) {
            rules.push(c.rules);
        }
    }
    for n in [1, 10, 100] {
        let r = TrafficRules { max_connections: n, max_pending_requests: n, ..calibration_rules() };
        if !rules.contains(&r) {
            rules.push(r);
        }
    }
    let mut out = Vec::new();
    for r in rules {
        for &threads in &cfg.suggest_threads {
            for &per_thread in &cfg.suggest_calls_per_thread {
                let load = Load { threads, calls: threads * per_thread };
                if fit.observed.configurations.iter().any(|c| c.rules == r && c.load == load) {
                    continue;
                }
                out.push(Configuration { rules: r, load, rows: vec![], values: vec![] });
            }
        }
    }
    out
}

/// The plausible scenarios: the distinct resampled fits, most frequent first, and the fit.
fn plausible(fit: &Fit) -> Vec<Vec<usize>> {
    let mut counts: BTreeMap<&Vec<usize>, usize> = BTreeMap::new();
    for &i in &fit.resampled {
        *counts.entry(&fit.candidates[i].point).or_default() += 1;
    }
    let mut ranked: Vec<(&Vec<usize>, usize)> = counts.into_iter().collect();
    ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
    let mut points = vec![fit.best().point.clone()];
    for (p, _) in ranked {
        if points.len() == PLAUSIBLE {
            break;
        }
        if !points.contains(p) {
            points.push(p.clone());
        }
    }
    points
}

/// Scores each candidate configuration (higher: its runs tell the plausible scenarios apart
/// better) and returns the best `n`.
pub fn suggest(fit: &Fit, candidates: &[Configuration], n: usize, seed: u64) -> Vec<Suggestion> {
    let scenarios: Vec<_> = plausible(fit).iter().map(|p| fit.grid.scenario(p).expect("an evaluated point")).collect();
    let metrics = &fit.observed.metrics;
    // Per scenario: [configuration][metric] runs.
    let runs: Vec<Vec<Vec<Vec<f64>>>> = scenarios.par_iter().map(|s| emulate(s, candidates, metrics, RUNS, mix(seed, 4))).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let var = |v: &[f64]| {
        let m = mean(v);
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64
    };
    let mut scored: Vec<Suggestion> = candidates
        .iter()
        .enumerate()
        .map(|(c, conf)| {
            let score = (0..metrics.len())
                .map(|m| {
                    let means: Vec<f64> = runs.iter().map(|s| mean(&s[c][m])).collect();
                    let within = mean(&runs.iter().map(|s| var(&s[c][m])).collect::<Vec<_>>());
                    if scenarios.len() < 2 {
                        0.0
                    } else {
                        var(&means) / (within + 1e-6)
                    }
                })
                .sum();
            Suggestion { rules: conf.rules, load: conf.load, score }
        })
        .collect();
    // Stable: among equal scores the candidate listed first wins.
    scored.sort_by(|a, b| b.score.total_cmp(&a.score));
    scored.truncate(n);
    scored
}

/// Writes one rule bundle per suggestion into `dir` (`suggest_<k>/`: DestinationRule,
/// VirtualService and the `fortio load` command), and returns the commands.
pub fn write_bundles(dir: &Path, host: &str, suggestions: &[Suggestion]) -> Result<Vec<String>> {
    let mut commands = Vec::new();
    for (k, s) in suggestions.iter().enumerate() {
        let name = format!("suggest-{}", k + 1);
        let bundle = dir.join(format!("suggest_{}", k + 1));
        crate::export::write_rule_bundle(&bundle, &name, host, &s.rules, &[s.load])?;
        commands.push(format!(
            "{}: kubectl apply -f {d}/destination-rule.yaml -f {d}/virtual-service.yaml; fortio load -c {} -qps 0 -n {} -json {d}/load_1.json http://{host}:8000/get",
            s.rules.describe(),
            s.load.threads,
            s.load.calls,
            d = bundle.display()
        ));
    }
    Ok(commands)
}

//! What a fit prints and writes: per configuration, observed against emulated (median and
//! 5-95 % band of each response); per field, its value, interval and verdict; and the fitted
//! scenario as a TOML file that names every field.

use std::fmt::Write as _;
use std::path::Path;

use super::{emulate, Configuration, Fit, Metric};
use crate::emulator::calibration::Band;
use crate::emulator::Scenario;
use crate::error::Result;

/// One configuration's comparison for one response (values untransformed).
#[derive(Debug, Clone)]
pub struct Comparison {
    pub configuration: String,
    pub metric: Metric,
    pub runs: usize,
    pub observed: Band,
    pub emulated: Band,
}

impl Comparison {
    /// Whether the observed median lies in the emulated band.
    pub fn inside(&self) -> bool {
        self.emulated.contains(self.observed.p50)
    }
}

/// Observed against emulated under `scenario`, for each configuration and response, on
/// `runs` emulated runs (the fit's seeds; held-out configurations get their own).
pub fn compare(scenario: &Scenario, configurations: &[Configuration], metrics: &[Metric], runs: usize, seed: u64) -> Vec<Comparison> {
    comparisons(configurations, metrics, &emulate(scenario, configurations, metrics, runs, seed))
}

/// Observed against the fit's prediction for configurations it did not see: `runs` runs
/// spread evenly over the resampled fits' scenarios (the fit's uncertainty included, as a
/// posterior predictive does), each on its own seed.
pub fn predict(fit: &Fit, configurations: &[Configuration], runs: usize, seed: u64) -> Vec<Comparison> {
    let metrics = &fit.observed.metrics;
    let fits = if fit.resampled.is_empty() { vec![fit.best] } else { fit.resampled.clone() };
    let mut emulated: Vec<Vec<Vec<f64>>> = vec![vec![vec![]; metrics.len()]; configurations.len()];
    let per = runs.div_ceil(fits.len());
    let mut by_point: std::collections::BTreeMap<&Vec<usize>, usize> = std::collections::BTreeMap::new();
    for &i in &fits {
        *by_point.entry(&fit.candidates[i].point).or_default() += per;
    }
    for (k, (point, n)) in by_point.into_iter().enumerate() {
        let scenario = fit.grid.scenario(point).expect("an evaluated point");
        let runs = emulate(&scenario, configurations, metrics, n, crate::seeding::mix(seed, k as u64));
        for (c, per_metric) in runs.into_iter().enumerate() {
            for (m, values) in per_metric.into_iter().enumerate() {
                emulated[c][m].extend(values);
            }
        }
    }
    comparisons(configurations, metrics, &emulated)
}

fn comparisons(configurations: &[Configuration], metrics: &[Metric], emulated: &[Vec<Vec<f64>>]) -> Vec<Comparison> {
    let mut out = Vec::new();
    for (c, conf) in configurations.iter().enumerate() {
        for (m, &metric) in metrics.iter().enumerate() {
            let back = |v: &[f64]| v.iter().map(|&x| metric.untransform(x)).collect::<Vec<_>>();
            out.push(Comparison {
                configuration: conf.label(),
                metric,
                runs: conf.runs(),
                observed: Band::of(back(&conf.values[m])),
                emulated: Band::of(back(&emulated[c][m])),
            });
        }
    }
    out
}

fn number(metric: Metric, v: f64) -> String {
    match metric {
        Metric::FailureRate => format!("{:.1} %", 100.0 * v),
        Metric::Qps => format!("{v:.0}"),
        Metric::LatencyMeanMs => format!("{v:.2} ms"),
    }
}

/// A Markdown table of comparisons.
pub fn comparison_table(rows: &[Comparison]) -> String {
    let mut t = String::from(
        "| configuration | response | runs | observed: median [5-95 %] | emulated: median [5-95 %] | inside |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let band = |b: &Band| format!("{} [{}, {}]", number(r.metric, b.p50), number(r.metric, b.p05), number(r.metric, b.p95));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} |",
            r.configuration,
            r.metric.column(),
            r.runs,
            band(&r.observed),
            band(&r.emulated),
            if r.inside() { "yes" } else { "**no**" }
        );
    }
    t
}

/// A Markdown table of the fitted fields.
pub fn field_table(fit: &Fit) -> String {
    let mut t = String::from("| field | fitted | 90 % interval | verdict |\n|---|---|---|---|\n");
    for i in &fit.intervals {
        let f = super::fields::format_value;
        let _ = writeln!(t, "| `{}` | {} | [{}, {}] | {} |", i.name, f(i.fitted), f(i.low), f(i.high), i.verdict());
    }
    t
}

/// The fitted scenario as TOML: every field of the scenario, the fitted ones annotated with
/// their intervals, and a header saying where it came from.
pub fn scenario_toml(fit: &Fit, source: &str) -> String {
    let scenario = fit.scenario();
    let mut table = scenario.full_table();
    let behaviour = table.remove("replica_behaviour");
    let mut text = format!(
        "# Scenario fitted by `meshrl calibrate` to {source}\n# {} configuration(s), {} run(s); distance {:.4} (mean 1-Wasserstein over configurations, summed over {});\n# {} scenarios evaluated.{}\n",
        fit.observed.configurations.len(),
        fit.observed.configurations.iter().map(Configuration::runs).sum::<usize>(),
        fit.best().distance,
        fit.observed.metrics.iter().map(|m| m.column()).collect::<Vec<_>>().join(", "),
        fit.candidates.len(),
        if fit.single_run { " Single-run mode: wide intervals." } else { "" }
    );
    for note in &fit.notes {
        let _ = writeln!(text, "# Note: {note}");
    }
    text.push_str("# Read by `meshrl emulate --scenario`, `validate --scenario`, and experiment configs' `scenario_file`.\n\n");
    for (key, value) in &table {
        let comment = fit
            .intervals
            .iter()
            .find(|i| &i.name == key)
            .map(|i| {
                let f = super::fields::format_value;
                format!("  # fitted: 90 % interval [{}, {}], {}", f(i.low), f(i.high), i.verdict())
            })
            .unwrap_or_default();
        let mut one = toml::Table::new();
        one.insert(key.clone(), value.clone());
        let line = toml::to_string(&one).expect("a value serialises");
        let _ = writeln!(text, "{}{comment}", line.trim_end());
    }
    match behaviour {
        Some(b) => {
            let mut rest = toml::Table::new();
            rest.insert("replica_behaviour".into(), b);
            text.push('\n');
            text.push_str(&toml::to_string(&rest).expect("replica behaviour serialises"));
        }
        None => text.push_str("replica_behaviour = []\n"),
    }
    text
}

/// Writes the fitted scenario atomically.
pub fn write_scenario(path: &Path, fit: &Fit, source: &str) -> Result<()> {
    crate::atomic::write_file(path, scenario_toml(fit, source))
}

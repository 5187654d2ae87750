//! The observed runs of a trace, grouped into configurations: a configuration is the set of
//! rows with identical rule, knob and load columns (normally repeated runs of one `fortio
//! load` under one DestinationRule).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{load_table, TableSpec};
use crate::emulator::RunResult;
use crate::error::{Error, Result};
use crate::rules::{Load, TrafficRules};

/// A response the fit compares, observed against emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The share of calls that were not 2xx (the 503 share), compared as is: a distance of
    /// 0.1 is 10 points of share.
    FailureRate,
    /// Fortio's ActualQPS, compared on a log scale: a distance of 0.1 is about 10 %.
    Qps,
    /// Fortio's mean latency (`latency_mean_ms`), on a log scale.
    LatencyMeanMs,
}

impl Metric {
    /// The trace column.
    pub fn column(self) -> &'static str {
        match self {
            Metric::FailureRate => "failure_rate",
            Metric::Qps => "qps",
            Metric::LatencyMeanMs => "latency_mean_ms",
        }
    }

    /// The emulated run's value, as the trace would record it.
    pub fn of(self, run: &RunResult) -> f64 {
        match self {
            Metric::FailureRate => run.failure_rate,
            Metric::Qps => run.qps,
            Metric::LatencyMeanMs => run.details.latency_mean_ms,
        }
    }

    /// The scale distances are taken on: shares as they are, rates and times in logs
    /// (floored at 1e-3, so that a zero does not become minus infinity).
    pub fn transform(self, value: f64) -> f64 {
        match self {
            Metric::FailureRate => value,
            Metric::Qps | Metric::LatencyMeanMs => value.max(1e-3).ln(),
        }
    }

    /// The inverse of [`Metric::transform`], for printing.
    pub fn untransform(self, value: f64) -> f64 {
        match self {
            Metric::FailureRate => value,
            Metric::Qps | Metric::LatencyMeanMs => value.exp(),
        }
    }
}

/// One configuration and its observed runs.
#[derive(Debug, Clone)]
pub struct Configuration {
    pub rules: TrafficRules,
    pub load: Load,
    /// The 1-based data rows of its runs.
    pub rows: Vec<usize>,
    /// Per metric (in the order of [`Observed::metrics`]), the runs' values, transformed.
    pub values: Vec<Vec<f64>>,
}

impl Configuration {
    pub fn runs(&self) -> usize {
        self.rows.len()
    }

    /// A short label: the rule's settings and the load.
    pub fn label(&self) -> String {
        format!("{}; -c {} -n {}", self.rules.describe(), self.load.threads, self.load.calls)
    }
}

/// A trace's configurations, in the order of their first row.
#[derive(Debug, Clone)]
pub struct Observed {
    pub path: PathBuf,
    pub metrics: Vec<Metric>,
    pub configurations: Vec<Configuration>,
}

impl Observed {
    /// One run per configuration everywhere: the fit's single-run mode.
    pub fn single_run(&self) -> bool {
        self.configurations.iter().all(|c| c.runs() == 1)
    }

    /// The configurations at the given indices (a held-out split).
    pub fn subset(&self, keep: &[usize]) -> Observed {
        Observed {
            path: self.path.clone(),
            metrics: self.metrics.clone(),
            configurations: keep.iter().map(|&i| self.configurations[i].clone()).collect(),
        }
    }
}

/// Reads a trace in the protocol schema and groups its rows. Every error names the file,
/// and the column or row at fault.
pub fn read_observed(path: &Path, metrics: &[Metric]) -> Result<Observed> {
    let table = load_table(path, &TableSpec::protocol())?;
    let mut columns = Vec::with_capacity(metrics.len());
    for m in metrics {
        let column = table.column_f64(m.column()).ok_or_else(|| {
            Error::file(
                path,
                format!(
                    "column `{}` is missing, and the fit compares it (set `metrics` in the calibration config to leave it out)",
                    m.column()
                ),
            )
        })?;
        if let Some(row) = column.iter().position(|v| !v.is_finite() || *v < 0.0) {
            return Err(Error::file(path, format!("row {}: `{}` is {}, not a finite number >= 0", row + 1, m.column(), column[row])));
        }
        columns.push(column);
    }
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut configurations: Vec<Configuration> = Vec::new();
    for i in 0..table.n_rows() {
        let rules = table.traffic_rules(i);
        let x = table.feature_row(i);
        let load = Load { threads: x[7] as u32, calls: x[8] as u32 };
        let key = serde_json::to_string(&(&rules, &load)).expect("rules and loads serialise");
        let k = *index.entry(key).or_insert_with(|| {
            configurations.push(Configuration { rules, load, rows: vec![], values: vec![vec![]; metrics.len()] });
            configurations.len() - 1
        });
        let c = &mut configurations[k];
        c.rows.push(i + 1);
        for (m, (metric, column)) in metrics.iter().zip(&columns).enumerate() {
            c.values[m].push(metric.transform(column[i]));
        }
    }
    Ok(Observed { path: path.to_path_buf(), metrics: metrics.to_vec(), configurations })
}

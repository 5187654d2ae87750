//! The measured side of a control problem: a testbed trace that is a full factorial grid of
//! settings (offered load x routing weight x blocking x replicas, a few samples of each),
//! such as the TNSM2023 framework's (seed 002).
//!
//! Rows where nothing completed in the monitoring window report a delay of 0. They are
//! censored, not fast: their delay is taken as `censored_delay_s` (by default the window
//! itself, a lower bound), so that they count as violations of any bound below it, in the
//! measured table and in the models' training rows alike.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{load_table, TableSpec};
use crate::error::{Error, Result};

/// Which trace column holds what (defaults: the TNSM2023 framework's names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceColumns {
    /// Offered load, requests per second (`max_l1`).
    pub load: String,
    /// Requests sent in the window (`l1`): measured, an input of the framework's own model.
    pub sent: String,
    /// Successful responses in the window (`cl1`): measured.
    pub completed: String,
    /// Routing weight: percent of requests sent to node 1 (`p1`).
    pub routing: String,
    /// Rate the front end's limiter admits, requests per second (`b1` = (1 - blocking) x load).
    pub admitted: String,
    /// Replicas of the service (`c1`).
    pub replicas: String,
    /// Mean response time of the successful requests, seconds (`d1`); 0 when none completed.
    pub delay: String,
}

impl Default for TraceColumns {
    fn default() -> Self {
        let s = |x: &str| x.to_string();
        TraceColumns {
            load: s("max_l1"),
            sent: s("l1"),
            completed: s("cl1"),
            routing: s("p1"),
            admitted: s("b1"),
            replicas: s("c1"),
            delay: s("d1"),
        }
    }
}

/// The trace and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    /// CSV or Parquet file.
    pub path: PathBuf,
    #[serde(default)]
    pub columns: TraceColumns,
    /// Length of one monitoring window, seconds (TNSM2023: 5); turns counts into rates.
    #[serde(default = "five")]
    pub window_s: f64,
    /// Delay given to a row where nothing completed (delay 0), seconds; default 5 (the window).
    #[serde(default = "five")]
    pub censored_delay_s: f64,
}

fn five() -> f64 {
    5.0
}

impl TraceConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.window_s > 0.0 && self.window_s.is_finite()) {
            return Err(Error::config(format!("trace.window_s must be > 0, but is {}", self.window_s)));
        }
        if !(self.censored_delay_s > 0.0 && self.censored_delay_s.is_finite()) {
            return Err(Error::config(format!("trace.censored_delay_s must be > 0, but is {}", self.censored_delay_s)));
        }
        Ok(())
    }
}

/// What a controller sets: routing weight (percent to node 1), blocking share, replicas.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Knobs {
    pub routing: f64,
    pub blocking: f64,
    pub replicas: u32,
}

/// One measured row, in the controller's terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub load: f64,
    pub knobs: Knobs,
    /// Requests sent and successful responses in the window (as measured).
    pub sent: f64,
    pub completed: f64,
    /// Mean delay, seconds; `censored_delay_s` where nothing completed.
    pub delay: f64,
    pub censored: bool,
}

/// The mean outcome of one setting over its samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Mean delay, seconds (censored samples at their censored delay).
    pub delay: f64,
    /// Successful responses per second; `None` where the source cannot tell (a model that
    /// takes the completed count as an input).
    pub carried: Option<f64>,
}

/// Grid values are matched at this resolution (a trace's 0.9999999999999998 is 1).
fn grid_key(x: f64) -> i64 {
    (x * 1000.0).round() as i64
}

/// A setting's place in the grid: load, routing, blocking, replicas.
pub type SettingKey = (i64, i64, i64, u32);

pub fn setting_key(load: f64, knobs: &Knobs) -> SettingKey {
    (grid_key(load), grid_key(knobs.routing), grid_key(knobs.blocking), knobs.replicas)
}

/// A trace read as a grid of settings.
pub struct ControlTrace {
    pub path: PathBuf,
    pub samples: Vec<Sample>,
    measured: BTreeMap<SettingKey, (Outcome, usize)>,
}

impl ControlTrace {
    /// Reads and checks the trace: every row's numbers in range (the error names the file,
    /// row and column), every setting's samples averaged.
    pub fn load(cfg: &TraceConfig) -> Result<ControlTrace> {
        cfg.validate()?;
        let c = &cfg.columns;
        let features = [&c.load, &c.sent, &c.completed, &c.routing, &c.admitted, &c.replicas].map(|s| s.to_string()).to_vec();
        let table = load_table(&cfg.path, &TableSpec { features, targets: vec![c.delay.clone()] })?;
        let mut samples = Vec::with_capacity(table.n_rows());
        for i in 0..table.n_rows() {
            let (f, delay) = (table.feature_row(i), table.target_row(i)[0]);
            let (load, sent, completed, routing, admitted, replicas) = (f[0], f[1], f[2], f[3], f[4], f[5]);
            let bad = |column: &str, message: String| Err(Error::field(&cfg.path, i + 1, column, message));
            if load <= 0.0 {
                return bad(&c.load, format!("offered load must be > 0, but is {load}"));
            }
            if !(0.0..=100.0).contains(&routing) {
                return bad(&c.routing, format!("routing weight must be a percent in [0, 100], but is {routing}"));
            }
            if admitted < 0.0 || admitted > load * (1.0 + 1e-6) {
                return bad(&c.admitted, format!("admitted rate must lie in [0, offered load {load}], but is {admitted}"));
            }
            if replicas < 1.0 || replicas.fract() != 0.0 {
                return bad(&c.replicas, format!("replicas must be a whole number >= 1, but is {replicas}"));
            }
            if sent < 0.0 || completed < 0.0 {
                return bad(&c.completed, format!("counts must be >= 0, but sent is {sent} and completed {completed}"));
            }
            if delay < 0.0 {
                return bad(&c.delay, format!("delay must be >= 0 (0 when nothing completed), but is {delay}"));
            }
            let censored = delay == 0.0;
            let blocking = ((1.0 - admitted / load) * 1000.0).round() / 1000.0;
            samples.push(Sample {
                load,
                knobs: Knobs { routing, blocking: blocking.max(0.0), replicas: replicas as u32 },
                sent,
                completed,
                delay: if censored { cfg.censored_delay_s } else { delay },
                censored,
            });
        }
        let mut sums: BTreeMap<SettingKey, (f64, f64, usize)> = BTreeMap::new();
        for s in &samples {
            let e = sums.entry(setting_key(s.load, &s.knobs)).or_default();
            e.0 += s.delay;
            e.1 += s.completed / cfg.window_s;
            e.2 += 1;
        }
        let measured = sums
            .into_iter()
            .map(|(k, (d, carried, n))| (k, (Outcome { delay: d / n as f64, carried: Some(carried / n as f64) }, n)))
            .collect();
        Ok(ControlTrace { path: cfg.path.clone(), samples, measured })
    }

    /// The measured mean outcome of a setting, if the trace has it.
    pub fn measured(&self, load: f64, knobs: &Knobs) -> Option<Outcome> {
        self.measured.get(&setting_key(load, knobs)).map(|(o, _)| *o)
    }

    /// The smallest and largest offered load in the trace.
    pub fn load_range(&self) -> (f64, f64) {
        let loads = self.samples.iter().map(|s| s.load);
        (loads.clone().fold(f64::INFINITY, f64::min), loads.fold(f64::NEG_INFINITY, f64::max))
    }

    /// Rows whose delay was censored.
    pub fn censored_rows(&self) -> usize {
        self.samples.iter().filter(|s| s.censored).count()
    }

    /// The distinct settings (routing, blocking, replicas) of the trace, in grid order.
    pub fn settings(&self) -> Vec<(i64, i64, u32)> {
        let mut set: Vec<(i64, i64, u32)> = self.measured.keys().map(|k| (k.1, k.2, k.3)).collect();
        set.sort_unstable();
        set.dedup();
        set
    }
}

/// The trace's place of a sample's setting, without its load (for holding settings out).
pub fn knobs_key(knobs: &Knobs) -> (i64, i64, u32) {
    (grid_key(knobs.routing), grid_key(knobs.blocking), knobs.replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, rows: &str) -> TraceConfig {
        let path = dir.join("t.csv");
        std::fs::write(&path, format!("max_l1,l1,cl1,p1,b1,c1,d1\n{rows}")).unwrap();
        TraceConfig { path, columns: TraceColumns::default(), window_s: 5.0, censored_delay_s: 5.0 }
    }

    #[test]
    fn settings_are_averaged_and_censored_rows_count_as_slow() {
        let dir = tempfile::tempdir().unwrap();
        // Load 5, all to node 1, 40 % blocked (b1 = 3, written as the trace writes it), one replica.
        let cfg = config(dir.path(), "5,25,10,100,2.9999999999999996,1,1.0\n5,24,0,100,3,1,0\n1,5,5,0,1,2,0.1\n");
        let t = ControlTrace::load(&cfg).unwrap();
        assert_eq!(t.censored_rows(), 1);
        let k = Knobs { routing: 100.0, blocking: 0.4, replicas: 1 };
        let o = t.measured(5.0, &k).unwrap();
        assert_eq!(o.delay, 3.0, "(1 + 5) / 2: the censored row at the window's length");
        assert_eq!(o.carried, Some(1.0), "(10 + 0) / 2 completions in 5 s");
        assert!(t.measured(4.0, &k).is_none());
        assert_eq!(t.load_range(), (1.0, 5.0));
        assert_eq!(t.settings().len(), 2);
    }

    #[test]
    fn bad_rows_name_the_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        for (rows, column) in
            [("1,5,5,0,1,1.5,0.1\n", "c1"), ("1,5,5,120,1,1,0.1\n", "p1"), ("1,5,5,0,2,1,0.1\n", "b1"), ("1,5,5,0,1,1,-1\n", "d1")]
        {
            let err = ControlTrace::load(&config(dir.path(), rows)).err().unwrap().to_string();
            assert!(err.contains("t.csv") && err.contains("row 1") && err.contains(column), "{err}");
        }
    }
}

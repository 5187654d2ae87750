//! The published real runs of Istio's circuit-breaking task (emulator.md, "Calibration")
//! and the distribution of the emulator's own runs of one configuration, so that a user
//! can compare with their own cluster.

use rayon::prelude::*;
use serde::Serialize;

use super::{run_load_test, RunResult, Scenario};
use crate::rules::{Load, TrafficRules};

/// One published run: `fortio load -c threads -qps 0 -n calls` under [`calibration_rules`].
#[derive(Debug, Clone, Copy)]
pub struct PublishedRun {
    pub source: &'static str,
    pub threads: u32,
    pub calls: u32,
    pub failure_rate: f64,
    pub qps: Option<f64>,
    pub latency_mean_ms: Option<f64>,
}

pub const PUBLISHED_RUNS: [PublishedRun; 7] = [
    PublishedRun {
        source: "Istio docs, Fortio 0.6.2 (2018)",
        threads: 2,
        calls: 20,
        failure_rate: 0.05,
        qps: Some(188.0),
        latency_mean_ms: Some(10.2),
    },
    PublishedRun {
        source: "Istio docs, Fortio 0.6.2 (2018)",
        threads: 3,
        calls: 30,
        failure_rate: 0.367,
        qps: Some(422.0),
        latency_mean_ms: Some(5.3),
    },
    PublishedRun {
        source: "Istio docs, Fortio 1.3.1 (2020)",
        threads: 2,
        calls: 20,
        failure_rate: 0.15,
        qps: Some(334.0),
        latency_mean_ms: Some(5.7),
    },
    PublishedRun {
        source: "Istio docs, Fortio 1.3.1 (2020)",
        threads: 3,
        calls: 30,
        failure_rate: 0.633,
        qps: Some(577.0),
        latency_mean_ms: Some(4.0),
    },
    PublishedRun {
        source: "2022 write-up, Fortio 1.17.1",
        threads: 2,
        calls: 20,
        failure_rate: 0.25,
        qps: Some(254.0),
        latency_mean_ms: Some(7.2),
    },
    PublishedRun {
        source: "2022 write-up, Fortio 1.17.1",
        threads: 3,
        calls: 30,
        failure_rate: 0.433,
        qps: Some(612.0),
        latency_mean_ms: Some(3.6),
    },
    PublishedRun { source: "2020 write-up, Istio 1.8.1", threads: 2, calls: 20, failure_rate: 0.25, qps: None, latency_mean_ms: None },
];

/// The DestinationRule of Istio's circuit-breaking task, used by every published run.
pub fn calibration_rules() -> TrafficRules {
    TrafficRules {
        max_pending_requests: 1,
        max_connections: 1,
        max_requests_per_connection: 1,
        ejection_time_s: 180.0,
        max_ejection_percent: 100.0,
        interval_s: 1.0,
        consecutive_errors: 1,
        ..TrafficRules::default()
    }
}

/// The published runs were made against httpbin answering 200: no injected faults.
pub fn calibration_scenario(base: &Scenario) -> Scenario {
    Scenario { fault_share: 0.0, ..base.clone() }
}

/// Percentiles of one measured quantity over many runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Band {
    pub p05: f64,
    pub p50: f64,
    pub p95: f64,
    pub mean: f64,
}

impl Band {
    pub fn of(mut values: Vec<f64>) -> Band {
        values.sort_by(f64::total_cmp);
        let n = values.len().max(1);
        let at = |q: f64| values.get(((q * (n - 1) as f64).round()) as usize).copied().unwrap_or(f64::NAN);
        Band { p05: at(0.05), p50: at(0.50), p95: at(0.95), mean: values.iter().sum::<f64>() / n as f64 }
    }
    pub fn contains(&self, x: f64) -> bool {
        self.p05 <= x && x <= self.p95
    }
}

/// The emulator's distribution of one configuration over `runs` seeds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Distribution {
    pub runs: usize,
    pub failure_rate: Band,
    pub qps: Band,
    pub latency_mean_ms: Band,
    pub reward: Band,
}

/// Runs one configuration `runs` times (seeds `seed`, `seed + 1`, ...), in parallel.
pub fn distribution(rules: &TrafficRules, load: &Load, scenario: &Scenario, runs: usize, seed: u64) -> Distribution {
    let results: Vec<RunResult> =
        (0..runs as u64).into_par_iter().map(|i| run_load_test(rules, load, scenario, seed.wrapping_add(i))).collect();
    let band = |f: fn(&RunResult) -> f64| Band::of(results.iter().map(f).collect());
    Distribution {
        runs,
        failure_rate: band(|r| r.failure_rate),
        qps: band(|r| r.qps),
        latency_mean_ms: band(|r| r.details.latency_mean_ms),
        reward: band(|r| r.reward()),
    }
}

/// For each published run: is its value inside the 5th-95th percentile band of the
/// emulator's runs of the same configuration?
#[derive(Debug, Clone)]
pub struct CalibrationCheck {
    pub published: PublishedRun,
    pub emulated: Distribution,
}

impl CalibrationCheck {
    /// Names of the published quantities that fall outside the emulator's band.
    pub fn misses(&self) -> Vec<&'static str> {
        let p = &self.published;
        let e = &self.emulated;
        let mut out = Vec::new();
        if !e.failure_rate.contains(p.failure_rate) {
            out.push("failure_rate");
        }
        if p.qps.is_some_and(|q| !e.qps.contains(q)) {
            out.push("qps");
        }
        if p.latency_mean_ms.is_some_and(|l| !e.latency_mean_ms.contains(l)) {
            out.push("latency_mean_ms");
        }
        out
    }
}

/// Checks every published run against `runs` emulated runs of the same configuration.
pub fn check_published(scenario: &Scenario, runs: usize, seed: u64) -> Vec<CalibrationCheck> {
    let rules = calibration_rules();
    let sc = calibration_scenario(scenario);
    PUBLISHED_RUNS
        .iter()
        .map(|p| CalibrationCheck {
            published: *p,
            emulated: distribution(&rules, &Load { threads: p.threads, calls: p.calls }, &sc, runs, seed),
        })
        .collect()
}

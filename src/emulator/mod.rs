//! The load-test emulator: a seeded discrete-event simulation of a Fortio load test
//! against an Envoy client sidecar (circuit breakers, pending queue, outlier detection)
//! and its upstream replicas. It writes the datasets and is the ground truth for
//! validating the agents' choices. Semantics: ../shared/design/emulator.md.

pub mod calibration;
mod engine;
pub mod envoy;
pub mod knobs;
pub mod scenario;

use serde::{Deserialize, Serialize};

pub use knobs::{LoadBalancer, RetryPolicy};
pub use scenario::{EjectionRule, ReplicaBehaviour, Scenario};

use crate::rules::{Load, TrafficRules};

/// What one load test measured, beyond qps and failure rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RunDetails {
    pub ok_count: u32,
    /// Local 503s of a circuit breaker (UO): pending queue full, or `http2_max_requests`
    /// requests already in flight.
    pub fail_overflow: u32,
    /// Local 503s: every host ejected (UH).
    pub fail_no_healthy: u32,
    /// 503s answered by a replica (injected fault or overload).
    pub fail_upstream: u32,
    /// Local 503s after an upstream connection failed: refused, or not up within the
    /// connect timeout (UF). Zero unless a scenario's replica has connect faults or a rule's
    /// connect timeout is shorter than a handshake.
    #[serde(default)]
    pub fail_connect: u32,
    /// Retries Envoy made (each a new upstream attempt, possibly on another host).
    #[serde(default)]
    pub retries: u32,
    /// Upstream connections that failed (refused or timed out), whether or not a request
    /// was waiting for them.
    #[serde(default)]
    pub connect_failures: u32,
    pub ejections: u32,
    /// Downstream sockets Fortio opened (threads, plus one per reconnect).
    pub sockets: u32,
    pub latency_mean_ms: f64,
    pub latency_p50_ms: f64,
    pub latency_p90_ms: f64,
    pub latency_p99_ms: f64,
    pub duration_s: f64,
}

/// The result of one load test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Fortio's ActualQPS: calls / elapsed time.
    pub qps: f64,
    /// Share of calls that were not 2xx.
    pub failure_rate: f64,
    pub details: RunDetails,
}

impl RunResult {
    /// The paper's reward: 503s per second.
    pub fn reward(&self) -> f64 {
        self.qps * self.failure_rate
    }
}

/// Runs one load test; the same inputs and seed give the same result.
pub fn run_load_test(rules: &TrafficRules, load: &Load, scenario: &Scenario, seed: u64) -> RunResult {
    engine::run(rules, load, scenario, seed)
}

#[cfg(test)]
mod tests;

//! What the defender wants of a load test: by default the most successful responses per
//! second while the p99 latency of all responses stays within a bound. Higher is better for
//! every objective; the failure and latency objectives are negated.

use serde::{Deserialize, Serialize};

use crate::emulator::RunResult;

/// The quantity an objective scores (config `objective.reward`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    /// Successful (2xx) responses per second, 0 when the p99 breaks the bound. A rule that
    /// rejects everything answers fast but serves nothing, so it cannot win.
    #[default]
    Goodput,
    /// Minus the share of responses that are 503s.
    #[serde(rename = "share_503")]
    Share503,
    /// Minus the 503s per second (the attacker's reward, negated).
    #[serde(rename = "rate_503")]
    Rate503,
    /// Minus the p99 latency of all responses, ms.
    P99,
    /// `goodput_weight x goodput - rate_503_weight x 503/s - p99_weight x p99 ms`.
    Weighted,
}

/// The objective of a defend experiment (config table `[objective]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DefendObjective {
    pub reward: RewardKind,
    /// Bound on the p99 latency of all responses, ms, for `goodput` (default 50 ms: the
    /// well-behaved replicas answer in about 5 ms at p99 unloaded).
    pub p99_bound_ms: f64,
    /// Weights of `weighted`.
    pub goodput_weight: f64,
    pub rate_503_weight: f64,
    pub p99_weight: f64,
    /// The agents learn from the objective divided by this (default 1000: goodput in
    /// thousands of responses per second keeps rewards near 1); tables show it undivided.
    pub reward_unit: f64,
}

impl Default for DefendObjective {
    fn default() -> Self {
        DefendObjective {
            reward: RewardKind::Goodput,
            p99_bound_ms: 50.0,
            goodput_weight: 1.0,
            rate_503_weight: 1.0,
            p99_weight: 0.0,
            reward_unit: 1000.0,
        }
    }
}

/// What one load test gives the report: the objective and its parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub value: f64,
    /// Successful responses per second.
    pub goodput: f64,
    pub share_503: f64,
    pub rate_503: f64,
    pub p99_ms: f64,
}

impl Outcome {
    /// The mean of several outcomes, field by field.
    pub fn mean(outcomes: &[Outcome]) -> Outcome {
        let n = outcomes.len().max(1) as f64;
        let sum = |f: fn(&Outcome) -> f64| outcomes.iter().map(f).sum::<f64>() / n;
        Outcome {
            value: sum(|o| o.value),
            goodput: sum(|o| o.goodput),
            share_503: sum(|o| o.share_503),
            rate_503: sum(|o| o.rate_503),
            p99_ms: sum(|o| o.p99_ms),
        }
    }
}

impl DefendObjective {
    pub fn validate(&self) -> Result<(), String> {
        let positive = [("p99_bound_ms", self.p99_bound_ms), ("reward_unit", self.reward_unit)];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("objective.{name} must be a finite number > 0, but is {v}"));
            }
        }
        for (name, v) in
            [("goodput_weight", self.goodput_weight), ("rate_503_weight", self.rate_503_weight), ("p99_weight", self.p99_weight)]
        {
            if !v.is_finite() {
                return Err(format!("objective.{name} must be a finite number, but is {v}"));
            }
        }
        Ok(())
    }

    /// The objective of one load test.
    pub fn outcome(&self, r: &RunResult) -> Outcome {
        let goodput = r.qps * (1.0 - r.failure_rate);
        let (share_503, rate_503, p99_ms) = (r.failure_rate, r.reward(), r.details.latency_p99_ms);
        let value = match self.reward {
            RewardKind::Goodput => {
                if p99_ms <= self.p99_bound_ms {
                    goodput
                } else {
                    0.0
                }
            }
            RewardKind::Share503 => -share_503,
            RewardKind::Rate503 => -rate_503,
            RewardKind::P99 => -p99_ms,
            RewardKind::Weighted => self.goodput_weight * goodput - self.rate_503_weight * rate_503 - self.p99_weight * p99_ms,
        };
        Outcome { value, goodput, share_503, rate_503, p99_ms }
    }

    /// What the objective is, for table captions.
    pub fn describe(&self) -> String {
        match self.reward {
            RewardKind::Goodput => format!("successful responses/s with the p99 of all responses <= {} ms (else 0)", self.p99_bound_ms),
            RewardKind::Share503 => "minus the 503 share".into(),
            RewardKind::Rate503 => "minus the 503s/s".into(),
            RewardKind::P99 => "minus the p99 latency (ms)".into(),
            RewardKind::Weighted => {
                format!("{} x successful/s - {} x 503/s - {} x p99 ms", self.goodput_weight, self.rate_503_weight, self.p99_weight)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::RunDetails;

    fn run(qps: f64, failure_rate: f64, p99: f64) -> RunResult {
        RunResult { qps, failure_rate, details: RunDetails { latency_p99_ms: p99, ..Default::default() } }
    }

    #[test]
    fn goodput_counts_successes_within_the_bound_only() {
        let o = DefendObjective::default();
        assert_eq!(o.outcome(&run(1000.0, 0.25, 10.0)).value, 750.0);
        assert_eq!(o.outcome(&run(1000.0, 0.0, 51.0)).value, 0.0, "beyond the 50 ms bound");
        // Rejecting everything is fast and serves nothing.
        assert_eq!(o.outcome(&run(50_000.0, 1.0, 0.2)).value, 0.0);
        let share = DefendObjective { reward: RewardKind::Share503, ..Default::default() };
        assert_eq!(share.outcome(&run(1000.0, 0.25, 10.0)).value, -0.25);
        let w = DefendObjective { reward: RewardKind::Weighted, p99_weight: 2.0, ..Default::default() };
        assert_eq!(w.outcome(&run(1000.0, 0.25, 10.0)).value, 750.0 - 250.0 - 20.0);
        assert!(DefendObjective { p99_bound_ms: 0.0, ..Default::default() }.validate().unwrap_err().contains("objective.p99_bound_ms"));
    }
}

//! What a controller is asked to achieve: the knobs it may turn (a grid of each) and the
//! reward of an outcome.
//!
//! - `replicas` (the TNSM2023 framework's own, seed 002): with `d` the delay plus a safety
//!   margin, `max_replicas + 1 - c` when `d <= bound`, else `bound - d` (002: `6 - c` and
//!   `1 - d`, bound 1 s, margin 0.4 s, replicas 1-5): meet the bound with as few replicas
//!   as possible;
//! - `throughput`: the carried load (successful responses per second) when `d <= bound`,
//!   else 0: carry as much as possible within the bound; with blocking as a knob, a
//!   controller sheds load to keep the rest fast.

use serde::{Deserialize, Serialize};

use super::trace::{Knobs, Outcome};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RewardKind {
    Replicas,
    Throughput,
}

/// One objective: its knobs' grids and its reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// Names the objective's table and files.
    pub name: String,
    pub reward: RewardKind,
    /// Delay bound, seconds (002: 1).
    #[serde(default = "one")]
    pub bound_s: f64,
    /// Safety margin added to the delay before it meets the bound, seconds (002: 0.4).
    #[serde(default = "margin")]
    pub margin_s: f64,
    /// Routing weights (percent to node 1) the controller may choose; one value fixes it.
    pub routing: Vec<f64>,
    /// Blocking shares; default `[0]` (no blocking, as 002).
    #[serde(default = "no_blocking")]
    pub blocking: Vec<f64>,
    /// Replica counts.
    pub replicas: Vec<u32>,
}

fn one() -> f64 {
    1.0
}
fn margin() -> f64 {
    0.4
}
fn no_blocking() -> Vec<f64> {
    vec![0.0]
}

impl Objective {
    pub fn validate(&self) -> Result<()> {
        let name = &self.name;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(Error::config(format!("objective name {name:?} must be non-empty letters, digits, _ or -")));
        }
        let bound_ok = self.bound_s > 0.0 && self.bound_s.is_finite();
        if !(bound_ok && self.margin_s >= 0.0 && self.margin_s.is_finite()) {
            return Err(Error::config(format!("objective {name}: bound_s must be > 0 and margin_s >= 0")));
        }
        if self.routing.is_empty() || self.blocking.is_empty() || self.replicas.is_empty() {
            return Err(Error::config(format!("objective {name}: routing, blocking and replicas each need at least one value")));
        }
        crate::experiment::refuse_repeats(&format!("objective {name}: routing"), &self.routing)?;
        crate::experiment::refuse_repeats(&format!("objective {name}: blocking"), &self.blocking)?;
        crate::experiment::refuse_repeats(&format!("objective {name}: replicas"), &self.replicas)?;
        if self.routing.iter().any(|p| !(0.0..=100.0).contains(p)) {
            return Err(Error::config(format!("objective {name}: routing weights must lie in [0, 100]")));
        }
        if self.blocking.iter().any(|b| !(0.0..=1.0).contains(b)) {
            return Err(Error::config(format!("objective {name}: blocking shares must lie in [0, 1]")));
        }
        if self.replicas.contains(&0) {
            return Err(Error::config(format!("objective {name}: replicas must be >= 1")));
        }
        Ok(())
    }

    /// Every setting the controller may choose, routing slowest, replicas fastest; an
    /// action is an index into it.
    pub fn actions(&self) -> Vec<Knobs> {
        let mut out = Vec::with_capacity(self.routing.len() * self.blocking.len() * self.replicas.len());
        for &routing in &self.routing {
            for &blocking in &self.blocking {
                for &replicas in &self.replicas {
                    out.push(Knobs { routing, blocking, replicas });
                }
            }
        }
        out
    }

    /// Whether the reward needs the carried load (which not every model predicts).
    pub fn needs_carried(&self) -> bool {
        self.reward == RewardKind::Throughput
    }

    /// The reward of an outcome under `knobs`; `None` if the outcome lacks what it needs.
    pub fn reward(&self, knobs: &Knobs, outcome: &Outcome) -> Option<f64> {
        let d = outcome.delay + self.margin_s;
        let met = d <= self.bound_s;
        Some(match self.reward {
            RewardKind::Replicas => {
                let top = self.replicas.iter().max().copied().unwrap_or(1);
                if met {
                    (top + 1 - knobs.replicas) as f64
                } else {
                    self.bound_s - d
                }
            }
            RewardKind::Throughput => {
                if met {
                    outcome.carried?
                } else {
                    0.0
                }
            }
        })
    }

    /// "bound 1 s, margin 0.4 s", for tables.
    pub fn parameters(&self) -> String {
        format!("bound {} s, margin {} s", self.bound_s, self.margin_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tnsm2023() -> Objective {
        Objective {
            name: "tnsm2023".into(),
            reward: RewardKind::Replicas,
            bound_s: 1.0,
            margin_s: 0.4,
            routing: vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0],
            blocking: vec![0.0],
            replicas: vec![1, 2, 3, 4, 5],
        }
    }

    #[test]
    fn the_frameworks_reward_is_six_minus_replicas_or_one_minus_delay() {
        let o = tnsm2023();
        let k = |c| Knobs { routing: 100.0, blocking: 0.0, replicas: c };
        assert_eq!(o.reward(&k(2), &Outcome { delay: 0.6, carried: None }), Some(4.0));
        assert_eq!(o.reward(&k(5), &Outcome { delay: 0.5, carried: None }), Some(1.0));
        let late = o.reward(&k(1), &Outcome { delay: 2.0, carried: None }).unwrap();
        assert!((late - (1.0 - 2.4)).abs() < 1e-12, "{late}");
        assert_eq!(o.actions().len(), 30);
        assert_eq!(o.actions()[5], Knobs { routing: 20.0, blocking: 0.0, replicas: 1 });
    }

    #[test]
    fn throughput_counts_carried_load_only_within_the_bound() {
        let o = Objective { reward: RewardKind::Throughput, ..tnsm2023() };
        let k = Knobs { routing: 100.0, blocking: 0.2, replicas: 1 };
        assert_eq!(o.reward(&k, &Outcome { delay: 0.5, carried: Some(2.6) }), Some(2.6));
        assert_eq!(o.reward(&k, &Outcome { delay: 0.7, carried: Some(2.6) }), Some(0.0));
        assert_eq!(o.reward(&k, &Outcome { delay: 0.5, carried: None }), None, "needs the carried load");
        assert!(o.needs_carried() && !tnsm2023().needs_carried());
    }

    #[test]
    fn bad_grids_are_refused_by_name() {
        let err = Objective { replicas: vec![0, 1], ..tnsm2023() }.validate().unwrap_err().to_string();
        assert!(err.contains("tnsm2023") && err.contains("replicas"), "{err}");
        assert!(Objective { routing: vec![120.0], ..tnsm2023() }.validate().is_err());
        assert!(Objective { name: "a b".into(), ..tnsm2023() }.validate().is_err());
    }
}

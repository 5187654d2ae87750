//! The RL environment over a simulator (protocol.md sections 4-5): states drawn from a
//! dataset's training rows, per-dataset action grids, the agent configurations of the
//! paper's Table 3 and Table 5, and the reward qps x failure_rate.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The load settings an agent chooses from (protocol.md section 4, paper Table 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionGrid {
    pub calls: Vec<u32>,
    pub threads: Vec<u32>,
}

impl ActionGrid {
    /// The protocol's grid of a dataset S1..S5.
    pub fn for_dataset(name: &str) -> Option<ActionGrid> {
        let step = |lo: u32, hi: u32, by: u32| (lo..=hi).step_by(by as usize).collect::<Vec<u32>>();
        let (calls, threads) = match name {
            "S1" => (step(435, 450, 1), step(1, 5, 1)),
            "S2" => (step(100, 700, 100), step(3, 7, 1)),
            "S3" => (step(50, 500, 50), step(10, 16, 1)),
            "S4" => (step(250, 600, 50), step(12, 18, 1)),
            "S5" => (step(1000, 2000, 100), step(16, 20, 1)),
            _ => return None,
        };
        Some(ActionGrid { calls, threads })
    }

    pub fn validate(&self) -> Result<()> {
        if self.calls.is_empty() || self.threads.is_empty() || self.calls.contains(&0) || self.threads.contains(&0) {
            return Err(Error::config("an action grid needs at least one calls and one threads value, all >= 1"));
        }
        Ok(())
    }

    pub fn len(&self, role: RoleKind) -> usize {
        match role {
            RoleKind::Thread => self.threads.len(),
            RoleKind::Call => self.calls.len(),
        }
    }
}

/// Which load setting an agent chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RoleKind {
    Thread,
    Call,
}

/// How the agents of one service cooperate (paper Table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// One call agent; threads come from the state's row.
    Call,
    /// One thread agent; calls come from the state's row.
    Thread,
    /// Thread and call agents in parallel, both seeing the traffic rules only (Int.).
    ThreadAndCall,
    /// The thread agent first; the call agent sees its choice (Det.).
    ThreadThenCall,
    /// The call agent first; the thread agent sees its choice (Det.).
    CallThenThread,
}

/// One row of Table 5: a mode and a number of services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Configuration {
    pub mode: Mode,
    pub services: usize,
}

impl Configuration {
    /// Parses the paper's names: `call`, `thread`, `thread&call`, `thread-call`,
    /// `call-thread`, each optionally with `*N` services (`call*5`).
    pub fn parse(name: &str) -> Result<Configuration> {
        let (base, services) = match name.split_once('*') {
            Some((b, n)) => (b, n.parse::<usize>().map_err(|_| Error::config(format!("configuration {name:?}: bad service count")))?),
            None => (name, 1),
        };
        let mode = match base {
            "call" => Mode::Call,
            "thread" => Mode::Thread,
            "thread&call" => Mode::ThreadAndCall,
            "thread-call" => Mode::ThreadThenCall,
            "call-thread" => Mode::CallThenThread,
            _ => {
                return Err(Error::config(format!(
                    "unknown configuration {name:?}; expected call, thread, thread&call, thread-call or call-thread, optionally *N"
                )))
            }
        };
        if services == 0 {
            return Err(Error::config(format!("configuration {name:?}: at least one service")));
        }
        Ok(Configuration { mode, services })
    }

    pub fn name(&self) -> String {
        let base = match self.mode {
            Mode::Call => "call",
            Mode::Thread => "thread",
            Mode::ThreadAndCall => "thread&call",
            Mode::ThreadThenCall => "thread-call",
            Mode::CallThenThread => "call-thread",
        };
        if self.services == 1 {
            base.to_string()
        } else {
            format!("{base}*{}", self.services)
        }
    }

    /// A file-name-safe form of the name (`thread&call*5` -> `thread_and_call_x5`).
    pub fn slug(&self) -> String {
        self.name().replace('&', "_and_").replace('*', "_x")
    }

    /// The phases of one interaction: agents of one phase act at once, a later phase sees
    /// the earlier phases' choices.
    pub fn phases(&self) -> Vec<Vec<RoleKind>> {
        use RoleKind::*;
        match self.mode {
            Mode::Call => vec![vec![Call]],
            Mode::Thread => vec![vec![Thread]],
            Mode::ThreadAndCall => vec![vec![Thread, Call]],
            Mode::ThreadThenCall => vec![vec![Thread], vec![Call]],
            Mode::CallThenThread => vec![vec![Call], vec![Thread]],
        }
    }

    pub fn roles(&self) -> Vec<RoleKind> {
        self.phases().into_iter().flatten().collect()
    }

    /// What a role's agent sees besides the seven rules: the other load setting, taken
    /// from the state's row (single agents) or from the earlier agent (Det.), or nothing.
    pub fn sees_other_setting(&self, role: RoleKind) -> bool {
        match self.mode {
            Mode::Call | Mode::Thread => true,
            Mode::ThreadAndCall => false,
            Mode::ThreadThenCall => role == RoleKind::Call,
            Mode::CallThenThread => role == RoleKind::Thread,
        }
    }

    /// Inputs of a role's network: 7 rules, the other setting if seen, a one-hot service
    /// index when there are several services.
    pub fn state_dim(&self, role: RoleKind) -> usize {
        7 + usize::from(self.sees_other_setting(role)) + if self.services > 1 { self.services } else { 0 }
    }
}

/// The paper's reward: 503s per second.
pub fn reward(qps: f64, failure_rate: f64) -> f64 {
    qps * failure_rate
}

/// Service n's reward in the five-service configurations: its own plus beta times the mean.
pub fn shared_rewards(own: &[f64], beta: f64) -> Vec<f64> {
    let mean = own.iter().sum::<f64>() / own.len().max(1) as f64;
    own.iter().map(|r| r + beta * mean).collect()
}

/// Per-epoch ratios, rolling means and the paper's summary numbers (protocol.md section 6).
pub mod metrics {
    /// Rolling mean over `window` epochs ending at each epoch (None before a full window).
    pub fn rolling_mean(series: &[f64], window: usize) -> Vec<Option<f64>> {
        let w = window.max(1);
        (0..series.len())
            .map(|e| (e + 1 >= w).then(|| series[e + 1 - w..=e].iter().sum::<f64>() / w as f64))
            .collect()
    }

    /// Sim.: the maximum over epochs of the rolling mean (the window shrinks to the run's
    /// length when the run is shorter than a window).
    pub fn sim_score(ratios: &[f64], window: usize) -> f64 {
        rolling_mean(ratios, window.min(ratios.len()))
            .into_iter()
            .flatten()
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// The epoch (0-based) with the highest per-epoch ratio; the first on ties.
    pub fn best_epoch(ratios: &[f64]) -> usize {
        let mut best = 0;
        for (i, r) in ratios.iter().enumerate() {
            if *r > ratios[best] {
                best = i;
            }
        }
        best
    }

    /// Spread (population standard deviation) of the per-epoch ratios after the best
    /// epoch; NaN when fewer than two epochs follow it (nothing to measure).
    pub fn spread_after_best(ratios: &[f64]) -> f64 {
        let after = &ratios[(best_epoch(ratios) + 1).min(ratios.len())..];
        if after.len() < 2 {
            return f64::NAN;
        }
        let m = after.iter().sum::<f64>() / after.len() as f64;
        (after.iter().map(|r| (r - m).powi(2)).sum::<f64>() / after.len() as f64).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::metrics::*;
    use super::*;

    #[test]
    fn grids_follow_the_protocol() {
        let s1 = ActionGrid::for_dataset("S1").unwrap();
        assert_eq!((s1.calls.len(), s1.calls[0], s1.calls[15]), (16, 435, 450));
        assert_eq!(s1.threads, vec![1, 2, 3, 4, 5]);
        assert_eq!(ActionGrid::for_dataset("S2").unwrap().calls, vec![100, 200, 300, 400, 500, 600, 700]);
        assert_eq!(ActionGrid::for_dataset("S5").unwrap().calls.len(), 11);
        assert!(ActionGrid::for_dataset("S9").is_none());
    }

    #[test]
    fn configurations_parse_and_name_round_trip() {
        for name in ["call", "thread", "thread&call", "thread-call", "call-thread", "call*5", "thread-call*5"] {
            assert_eq!(Configuration::parse(name).unwrap().name(), name);
        }
        assert!(Configuration::parse("threads").is_err());
        let det = Configuration::parse("call-thread*5").unwrap();
        assert_eq!(det.phases(), vec![vec![RoleKind::Call], vec![RoleKind::Thread]]);
        assert_eq!(det.state_dim(RoleKind::Call), 7 + 5);
        assert_eq!(det.state_dim(RoleKind::Thread), 8 + 5);
        assert_eq!(Configuration::parse("call").unwrap().state_dim(RoleKind::Call), 8);
        assert_eq!(Configuration::parse("thread&call").unwrap().state_dim(RoleKind::Thread), 7);
    }

    #[test]
    fn shared_reward_adds_beta_times_the_mean() {
        let r = shared_rewards(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5);
        assert_eq!(r, vec![2.5, 3.5, 4.5, 5.5, 6.5]);
    }

    #[test]
    fn rolling_mean_sim_and_best_epoch_on_a_hand_made_series() {
        let ratios = [1.0, 2.0, 3.0, 2.0, 1.0, 4.0];
        let roll = rolling_mean(&ratios, 3);
        assert_eq!(roll, vec![None, None, Some(2.0), Some(7.0 / 3.0), Some(2.0), Some(7.0 / 3.0)]);
        assert!((sim_score(&ratios, 3) - 7.0 / 3.0).abs() < 1e-12);
        assert_eq!(best_epoch(&ratios), 5);
        assert_eq!(best_epoch(&[3.0, 1.0, 3.0]), 0, "first on ties");
        // Window longer than the run: the whole run's mean.
        assert!((sim_score(&[1.0, 3.0], 25) - 2.0).abs() < 1e-12);
        assert!((spread_after_best(&[1.0, 5.0, 2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!(spread_after_best(&[1.0, 5.0]).is_nan(), "no epochs after the best");
    }
}

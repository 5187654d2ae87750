//! One agent's rollout: its transitions since its last update, and GAE over them.

use serde::{Deserialize, Serialize};

/// How the episode went on after a transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum End {
    /// The next transition's observation is the next state's.
    Continues,
    /// Terminal: nothing follows (next value 0).
    Terminated,
    /// Cut at this observation of the state it was cut at: its value is added to the
    /// reward, discounted, and the GAE chain ends here (SB3's handling of time limits).
    Truncated(Vec<f32>),
}

/// Transitions in acting order, each with the log-probability of its action when it was
/// drawn. Values are not kept: the network does not change during a rollout, so they are
/// computed in one batch when the rollout is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    obs_dim: usize,
    /// Flat rows of `obs_dim` values.
    pub observations: Vec<f32>,
    pub actions: Vec<u32>,
    pub log_probs: Vec<f32>,
    pub rewards: Vec<f64>,
    pub ends: Vec<End>,
}

impl Rollout {
    pub fn new(obs_dim: usize, capacity: usize) -> Rollout {
        Rollout {
            obs_dim,
            observations: Vec::with_capacity(obs_dim * capacity),
            actions: Vec::with_capacity(capacity),
            log_probs: Vec::with_capacity(capacity),
            rewards: Vec::with_capacity(capacity),
            ends: Vec::with_capacity(capacity),
        }
    }

    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    pub fn push(&mut self, observation: &[f32], action: usize, log_prob: f32, reward: f64, end: End) {
        debug_assert_eq!(observation.len(), self.obs_dim);
        self.observations.extend_from_slice(observation);
        self.actions.push(action as u32);
        self.log_probs.push(log_prob);
        self.rewards.push(reward);
        self.ends.push(end);
    }

    pub fn clear(&mut self) {
        self.observations.clear();
        self.actions.clear();
        self.log_probs.clear();
        self.rewards.clear();
        self.ends.clear();
    }

    /// Whether every stored part has the same length and rows of `obs_dim` (a checkpoint's check).
    pub fn is_consistent(&self, obs_dim: usize) -> bool {
        let n = self.len();
        self.obs_dim == obs_dim
            && self.observations.len() == n * obs_dim
            && self.log_probs.len() == n
            && self.rewards.len() == n
            && self.ends.len() == n
            && self.ends.iter().all(|e| !matches!(e, End::Truncated(o) if o.len() != obs_dim))
    }

    /// The observations of the states where episodes were cut, flat, in transition order.
    pub fn truncated_observations(&self) -> Vec<f32> {
        self.ends.iter().filter_map(|e| if let End::Truncated(o) = e { Some(o.as_slice()) } else { None }).flatten().copied().collect()
    }
}

/// GAE(lambda) advantages and lambda-returns (advantage + value) of a rollout, in f64, as
/// SB3's `compute_returns_and_advantage` with its truncation bootstrap: `values[t]` is
/// V(s_t), `truncated_values` the values of the cut states in transition order, and
/// `bootstrap` V of the observation after the last transition (used when it continues).
pub fn gae(rollout: &Rollout, values: &[f64], truncated_values: &[f64], bootstrap: f64, gamma: f64, lambda: f64) -> (Vec<f64>, Vec<f64>) {
    let n = rollout.len();
    let mut advantages = vec![0.0; n];
    let mut cut = truncated_values.len();
    let mut last = 0.0;
    for t in (0..n).rev() {
        let (reward, next_value, next_non_terminal) = match &rollout.ends[t] {
            End::Continues => (rollout.rewards[t], if t + 1 == n { bootstrap } else { values[t + 1] }, 1.0),
            End::Terminated => (rollout.rewards[t], 0.0, 0.0),
            End::Truncated(_) => {
                cut -= 1;
                (rollout.rewards[t] + gamma * truncated_values[cut], 0.0, 0.0)
            }
        };
        let delta = reward + gamma * next_value * next_non_terminal - values[t];
        last = delta + gamma * lambda * next_non_terminal * last;
        advantages[t] = last;
    }
    let returns = advantages.iter().zip(values).map(|(a, v)| a + v).collect();
    (advantages, returns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gae_matches_a_hand_computation() {
        // t0 continues, t1 is cut, t2 continues, t3 terminates, t4 continues into the bootstrap.
        let mut r = Rollout::new(1, 5);
        let ends = [End::Continues, End::Truncated(vec![9.0]), End::Continues, End::Terminated, End::Continues];
        for (t, end) in ends.into_iter().enumerate() {
            r.push(&[t as f32], t % 2, -0.5, 1.0 + t as f64, end);
        }
        let values = [0.5, 0.25, -1.0, 2.0, 0.75];
        let (g, l) = (0.9, 0.8);
        let (adv, ret) = gae(&r, &values, &[3.0], 4.0, g, l);
        let a4 = 5.0 + g * 4.0 - 0.75;
        let a3 = 4.0 - 2.0;
        let a2 = (3.0 + g * 2.0 - -1.0) + g * l * a3;
        let a1 = 2.0 + g * 3.0 - 0.25;
        let a0 = (1.0 + g * 0.25 - 0.5) + g * l * a1;
        let expect = [a0, a1, a2, a3, a4];
        for t in 0..5 {
            assert!((adv[t] - expect[t]).abs() < 1e-12, "t{t}: {} vs {}", adv[t], expect[t]);
            assert!((ret[t] - (expect[t] + values[t])).abs() < 1e-12);
        }
        assert_eq!(r.truncated_observations(), vec![9.0]);
        assert!(r.is_consistent(1) && !r.is_consistent(2));
    }
}

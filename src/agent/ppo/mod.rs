//! PPO (Schulman et al. 2017) as stable-baselines3 implements it, for discrete actions
//! (issue 16, item 2): clipped surrogate, GAE, a value network, an entropy bonus, minibatch
//! epochs, gradient clipping by global norm, advantages normalised per minibatch.
//!
//! Every agent of the layout (every slot of every group) is an independent [`Agent`]: its
//! own small actor-critic ([`net::ActorCritic`], SB3's `MlpPolicy`: by default separate
//! policy and value networks of two tanh layers of 64, orthogonally initialised), its own
//! Adam (eps 1e-5, as SB3 sets it), its own rollout and its own random stream. An agent's
//! action is drawn from a categorical distribution over its group's actions.
//!
//! How rollouts meet the training loop ([`crate::train`]): `act` draws the action and keeps
//! the observation and the action's log-probability until `record` adds the reward and
//! how the episode went on. After `Continuation::Continues` the next state's value is only
//! known at the agent's next `act`, so an agent learns inside `act`: when its rollout holds
//! `n_steps` transitions, the new observation's value is the bootstrap of the last one, the
//! update runs, the rollout is emptied, and the action is drawn by the updated policy, as
//! SB3's collect-then-train loop does. `Continuation::Terminated` ends the GAE chain with a
//! next value of 0; `Continuation::Truncated(obs)` ends it too, with gamma * V(obs) added
//! to the reward (SB3's time-limit bootstrap). [`Learner::train`] has nothing to do.
//!
//! Defaults are SB3's (`PPO.__init__` and `ActorCriticPolicy`, SB3 >= 1.8, checked against
//! 2.x): see [`PpoConfig`].

mod agent;
mod checkpoint;
pub mod net;
pub mod rollout;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use agent::{Agent, Stats};
use net::NetArch;
use rollout::End;

use super::{Clock, Continuation, DiagnosticColumn, Diagnostics, Learner, LearnerSpec};
use crate::env::Layout;
use crate::error::{Error, Result};

/// PPO hyperparameters, per agent; the defaults are stable-baselines3's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PpoConfig {
    /// Adam's learning rate (SB3: 3e-4; constant, no schedule).
    pub learning_rate: f64,
    /// Transitions an agent collects before each update (SB3: 2048, per environment).
    pub n_steps: usize,
    /// Minibatch size (SB3: 64); the last minibatch of a pass is shorter if it does not divide `n_steps`.
    pub batch_size: usize,
    /// Passes over the rollout per update (SB3: 10).
    pub n_epochs: usize,
    /// Discount (SB3: 0.99).
    pub gamma: f64,
    /// GAE's lambda (SB3: 0.95).
    pub gae_lambda: f64,
    /// Clipping of the probability ratio (SB3: 0.2; constant, no schedule).
    pub clip_range: f64,
    /// Clipping of the value's change around its old estimate; none by default (SB3: None).
    pub clip_range_vf: Option<f64>,
    /// Normalise the advantages per minibatch (SB3: true).
    pub normalize_advantage: bool,
    /// Weight of the entropy bonus (SB3: 0).
    pub ent_coef: f64,
    /// Weight of the value loss (SB3: 0.5).
    pub vf_coef: f64,
    /// Gradients are scaled down to at most this global norm (SB3: 0.5).
    pub max_grad_norm: f64,
    /// Hidden layers shared by policy and value (SB3 1.7's plain `net_arch` list; seed 002
    /// used four of 64 with empty `policy_layers` and `value_layers`). None by default.
    pub shared_layers: Vec<usize>,
    /// The policy's own hidden layers, after the shared ones (SB3 >= 1.8: `pi=[64, 64]`).
    pub policy_layers: Vec<usize>,
    /// The value's own hidden layers, after the shared ones (SB3 >= 1.8: `vf=[64, 64]`).
    pub value_layers: Vec<usize>,
    /// Adam's epsilon (SB3's `ActorCriticPolicy` sets 1e-5 instead of torch's 1e-8).
    pub adam_eps: f64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
            learning_rate: 3e-4,
            n_steps: 2048,
            batch_size: 64,
            n_epochs: 10,
            gamma: 0.99,
            gae_lambda: 0.95,
            clip_range: 0.2,
            clip_range_vf: None,
            normalize_advantage: true,
            ent_coef: 0.0,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            shared_layers: Vec::new(),
            policy_layers: vec![64, 64],
            value_layers: vec![64, 64],
            adam_eps: 1e-5,
        }
    }
}

impl PpoConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(format!("ppo.{m}")));
        for (name, v) in [("n_steps", self.n_steps), ("batch_size", self.batch_size), ("n_epochs", self.n_epochs)] {
            if v == 0 {
                return bad(format!("{name} must be >= 1"));
            }
        }
        if self.batch_size > self.n_steps {
            return bad(format!("batch_size ({}) must not exceed n_steps ({})", self.batch_size, self.n_steps));
        }
        // As SB3: the normalised advantages of a single transition are NaN (SB3 issue 440).
        if self.normalize_advantage && self.batch_size < 2 {
            return bad("batch_size must be >= 2 when normalize_advantage is on".into());
        }
        for (name, v) in [
            ("learning_rate", self.learning_rate),
            ("clip_range", self.clip_range),
            ("max_grad_norm", self.max_grad_norm),
            ("adam_eps", self.adam_eps),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} must be > 0, but is {v}"));
            }
        }
        if let Some(v) = self.clip_range_vf {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("clip_range_vf must be > 0 when given, but is {v}"));
            }
        }
        for (name, v) in [("ent_coef", self.ent_coef), ("vf_coef", self.vf_coef)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be >= 0, but is {v}"));
            }
        }
        for (name, v) in [("gamma", self.gamma), ("gae_lambda", self.gae_lambda)] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must be in [0, 1], but is {v}"));
            }
        }
        for (name, layers) in
            [("shared_layers", &self.shared_layers), ("policy_layers", &self.policy_layers), ("value_layers", &self.value_layers)]
        {
            if layers.contains(&0) {
                return bad(format!("{name} must have no layer of width 0, but is {layers:?}"));
            }
        }
        Ok(())
    }

    fn arch(&self) -> NetArch {
        NetArch { shared: self.shared_layers.clone(), policy: self.policy_layers.clone(), value: self.value_layers.clone() }
    }
}

/// An agent's observation, action and the action's log-probability, until its reward comes.
type Acted = (Vec<f32>, usize, f32);

/// The PPO learner: an [`Agent`] per slot of every group.
pub struct Ppo {
    cfg: PpoConfig,
    /// `agents[group][slot]`.
    agents: Vec<Vec<Agent>>,
    /// Per group and slot: the last observation, action and log-probability, until `record`.
    acted: Vec<Vec<Option<Acted>>>,
    /// Since the last diagnostics.
    stats: Stats,
}

impl Learner for Ppo {
    /// Each agent of the group first learns from its rollout if it is complete, then draws
    /// its action; the agents of a group run in parallel (each with its own stream, so the
    /// result does not depend on the threads).
    fn act(&mut self, group: usize, observations: &[Vec<f32>], _clock: Clock) -> Result<Vec<usize>> {
        let agents = &mut self.agents[group];
        if observations.len() != agents.len() {
            return Err(Error::config(format!("ppo: {} observations for {} agents", observations.len(), agents.len())));
        }
        let cfg = &self.cfg;
        let steps: Vec<Result<(usize, f32, Option<Stats>)>> =
            agents.par_iter_mut().zip(observations.par_iter()).map(|(agent, obs)| agent.step(cfg, obs)).collect();
        let mut actions = Vec::with_capacity(steps.len());
        for (slot, (step, obs)) in steps.into_iter().zip(observations).enumerate() {
            let (action, log_prob, stats) = step?;
            if let Some(s) = stats {
                self.stats.add(&s);
            }
            self.acted[group][slot] = Some((obs.clone(), action, log_prob));
            actions.push(action);
        }
        Ok(actions)
    }

    /// The policies' most probable actions (argmax of the logits, the first on ties).
    fn act_greedy(&self, group: usize, observations: &[Vec<f32>]) -> Result<Vec<usize>> {
        let agents = &self.agents[group];
        if observations.len() != agents.len() {
            return Err(Error::config(format!("ppo: {} observations for {} agents", observations.len(), agents.len())));
        }
        agents.iter().zip(observations).map(|(agent, obs)| agent.greedy(obs)).collect()
    }

    fn record(&mut self, group: usize, rewards: &[f64], continuation: Continuation) {
        for (slot, &reward) in rewards.iter().enumerate() {
            let Some((obs, action, log_prob)) = self.acted[group][slot].take() else { continue };
            let end = match continuation {
                Continuation::Continues => End::Continues,
                Continuation::Terminated => End::Terminated,
                Continuation::Truncated(next) => End::Truncated(next[slot].clone()),
            };
            self.agents[group][slot].remember(&obs, action, log_prob, reward, end);
        }
    }

    /// Nothing: agents learn in `act`, when the value that completes their rollout arrives.
    fn train(&mut self, _clock: Clock) -> Result<()> {
        Ok(())
    }

    /// Means over the minibatches since the last call, every agent's (NaN without one), and
    /// the number of updates (complete rollouts learnt from, summed over agents).
    fn diagnostics(&mut self, _clock: Clock) -> Diagnostics {
        let s = std::mem::take(&mut self.stats);
        let mean = |x: f64| if s.minibatches > 0 { x / s.minibatches as f64 } else { f64::NAN };
        Diagnostics::from([
            ("policy_loss", mean(s.policy_loss)),
            ("value_loss", mean(s.value_loss)),
            ("entropy", mean(s.entropy)),
            ("approx_kl", mean(s.approx_kl)),
            ("clip_fraction", mean(s.clip_fraction)),
            ("updates", s.updates as f64),
        ])
    }

    fn save(&self) -> Result<Vec<u8>> {
        self.save_state()
    }

    fn restore(&mut self, saved: &[u8]) -> Result<()> {
        self.restore_state(saved)
    }
}

impl LearnerSpec for PpoConfig {
    /// An agent per slot of every group, seeded in group then slot order.
    fn build(&self, layout: &Layout, rng: &mut ChaCha8Rng) -> Result<Box<dyn Learner>> {
        self.validate()?;
        let agents = layout
            .groups
            .iter()
            .map(|g| (0..layout.slots).map(|_| Agent::new(self, g.observation, g.actions, rng.random())).collect::<Result<Vec<Agent>>>())
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(Ppo {
            cfg: self.clone(),
            acted: layout.groups.iter().map(|_| vec![None; layout.slots]).collect(),
            agents,
            stats: Stats::default(),
        }))
    }

    fn update_schedule(&self) -> (usize, usize) {
        (0, self.n_steps)
    }

    fn diagnostic_columns(&self) -> &'static [DiagnosticColumn] {
        &[
            DiagnosticColumn { name: "policy_loss", decimals: 5 },
            DiagnosticColumn { name: "value_loss", decimals: 5 },
            DiagnosticColumn { name: "entropy", decimals: 4 },
            DiagnosticColumn { name: "approx_kl", decimals: 6 },
            DiagnosticColumn { name: "clip_fraction", decimals: 4 },
            DiagnosticColumn { name: "updates", decimals: 0 },
        ]
    }
}

#[cfg(test)]
mod tests;

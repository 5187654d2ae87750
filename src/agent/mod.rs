//! Learners: the algorithms that train agents against an environment, behind one trait.
//!
//! A [`Learner`] holds every agent of an environment's [`Layout`]: one per slot in every
//! group. It acts (exploring, or greedily), records the rewards of its last actions, trains
//! when it is due, and reports its own diagnostics by name, so that the training loop
//! ([`crate::train`]) and the reports name no algorithm's fields. What a learner computed
//! when it acted (Q values, log-probabilities, value estimates) stays inside it until
//! [`Learner::record`] pairs it with the rewards.
//!
//! - [`shared`]: the paper's network, a shared trunk with a private head per agent, usable by
//!   any algorithm;
//! - [`dqn`]: DQN on it (protocol.md section 5);
//! - [`ppo`]: PPO as stable-baselines3 runs it, an actor-critic per agent.

pub mod dqn;
pub mod ppo;
pub mod shared;

use indexmap::IndexMap;
use rand_chacha::ChaCha8Rng;

use crate::env::Layout;
use crate::error::Result;

/// Where training stands: global step `step` (0-based) of `total_steps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub step: usize,
    pub total_steps: usize,
}

/// How the episode went on after the recorded actions.
#[derive(Debug, Clone, Copy)]
pub enum Continuation<'a> {
    /// The agents' next observations come with their next actions (a learner that needs
    /// them to finish an update, such as PPO's last value estimate, waits for its next `act`).
    Continues,
    /// Terminal state: no future reward follows.
    Terminated,
    /// The episode was cut; these are the group's observations of the state it was cut at
    /// (one per slot), for bootstrapping. For a group of a later phase they show the
    /// slot's candidate before anyone acted, since the earlier phases never act there.
    Truncated(&'a [Vec<f32>]),
}

/// A learner's numbers since its last report, by name, in the learner's order (the order of
/// its [`LearnerSpec::diagnostic_columns`]).
pub type Diagnostics = IndexMap<&'static str, f64>;

/// One per-epoch diagnostic a learner reports, with the decimals it is printed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiagnosticColumn {
    pub name: &'static str,
    pub decimals: usize,
}

/// An algorithm's agents. Group and slot indices are the environment's ([`Layout`]).
pub trait Learner: Send {
    /// Actions of the group's agents, one per observation (slot), with exploration.
    fn act(&mut self, group: usize, observations: &[Vec<f32>], clock: Clock) -> Result<Vec<usize>>;

    /// Actions without exploration; changes nothing.
    fn act_greedy(&self, group: usize, observations: &[Vec<f32>]) -> Result<Vec<usize>>;

    /// The rewards of the group's last actions, one per slot, and how the episode goes on.
    fn record(&mut self, group: usize, rewards: &[f64], continuation: Continuation);

    /// Learns from what was recorded, if an update is due after `clock.step`.
    fn train(&mut self, clock: Clock) -> Result<()>;

    /// Diagnostics since the previous call (the training loop asks once per epoch).
    fn diagnostics(&mut self, clock: Clock) -> Diagnostics;

    /// Everything the learner needs to go on exactly where it is (weights, optimiser
    /// moments, replay buffers, random streams), for checkpoints between epochs.
    fn save(&self) -> Result<Vec<u8>> {
        Err(crate::error::Error::config("this learner cannot be checkpointed"))
    }

    /// Returns to the point [`Learner::save`] captured; the learner was built with the same settings.
    fn restore(&mut self, _saved: &[u8]) -> Result<()> {
        Err(crate::error::Error::config("this learner cannot be checkpointed"))
    }
}

/// Which learner trains the agents (a config's `learner = "dqn"` or `"ppo"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LearnerKind {
    #[default]
    Dqn,
    Ppo,
}

impl LearnerKind {
    pub fn is_dqn(&self) -> bool {
        *self == LearnerKind::Dqn
    }

    pub fn name(&self) -> &'static str {
        match self {
            LearnerKind::Dqn => "dqn",
            LearnerKind::Ppo => "ppo",
        }
    }

    /// The settings of this learner among a config's `[dqn]` and `[ppo]`.
    pub fn spec<'a>(&self, dqn: &'a dqn::DqnConfig, ppo: &'a ppo::PpoConfig) -> &'a dyn LearnerSpec {
        match self {
            LearnerKind::Dqn => dqn,
            LearnerKind::Ppo => ppo,
        }
    }

    /// Those settings as JSON, for cell keys.
    pub fn settings_json(&self, dqn: &dqn::DqnConfig, ppo: &ppo::PpoConfig) -> String {
        match self {
            LearnerKind::Dqn => serde_json::to_string(dqn).unwrap_or_default(),
            LearnerKind::Ppo => serde_json::to_string(ppo).unwrap_or_default(),
        }
    }

    /// "DQN", "PPO", for tables.
    pub fn label(&self) -> &'static str {
        match self {
            LearnerKind::Dqn => "DQN",
            LearnerKind::Ppo => "PPO",
        }
    }
}

/// A learner's settings: builds the learner for a layout and names its diagnostics.
pub trait LearnerSpec {
    /// A learner for `layout`; every random choice comes from seeds drawn from `rng`.
    fn build(&self, layout: &Layout, rng: &mut ChaCha8Rng) -> Result<Box<dyn Learner>>;

    /// The per-epoch diagnostics the learner reports, in order, with their print precision
    /// (`metrics.csv` columns).
    fn diagnostic_columns(&self) -> &'static [DiagnosticColumn];

    /// Steps before updates start (DQN's `learning_starts`), and then between two updates
    /// (DQN's `train_every`, PPO's rollout of `n_steps`): a short timing of training must
    /// cover both to see what a step costs.
    fn update_schedule(&self) -> (usize, usize) {
        (0, 1)
    }
}

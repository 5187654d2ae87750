//! Environments: the problems the agents solve, behind one trait.
//!
//! Every meshrl problem has the same parts (`../shared/design/problems.md`): a state drawn
//! from some process, knobs the agents set, a model that scores what they set (the
//! simulator) and a ground truth that checks it (the emulator, a measured table). An
//! [`Environment`] names them:
//!
//! - a **state** ([`Environment::State`]): what the agents face; [`Environment::reset`]
//!   starts an episode, [`Environment::step`] gives the next state and whether the episode
//!   ended ([`EpisodeEnd`]). A one-step problem (a contextual bandit, such as the load
//!   search) draws every next state afresh and never ends;
//! - a **candidate** ([`Environment::Candidate`]): what the agents' actions build, one per
//!   slot (service) of the state, e.g. a trace row's rules plus the load the agents chose.
//!   [`Environment::start`] gives it before anyone acts, [`Environment::apply`] applies one
//!   agent's action, [`Environment::alternatives`] lists every candidate the agents could
//!   have built in the same state (the set the yardsticks search), and
//!   [`Environment::search_space`] describes the same choices as fields with their values,
//!   which the search methods reach without listing them;
//! - a **layout** ([`Layout`]): the agent groups, their observation and action sizes, and the
//!   phases in which they act (a later phase sees the earlier phases' choices: joint actions
//!   are groups of one phase);
//! - **scores** ([`Scored`]): the model's reward of a candidate and, when checked, the ground
//!   truth's.
//!
//! The training loop over any environment and any learner is [`crate::train`].

pub mod autoscale;
#[cfg(test)]
pub(crate) mod chain;
pub mod control;
pub mod defend;
pub mod load_search;
pub mod mesh_defend;

use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Index drawn by its weight (weights summing to 1): one uniform number, the first index
/// whose running total exceeds it (the last one if rounding leaves a gap).
pub fn draw_weighted(weights: &[f64], rng: &mut ChaCha8Rng) -> usize {
    use rand::Rng;
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (i, w) in weights.iter().enumerate() {
        acc += w;
        if u < acc {
            return i;
        }
    }
    weights.len() - 1
}

/// One group of agents: one agent per slot, all with the same observation and action sizes
/// (in the load search: the thread agents, or the call agents, of every service).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// What the group sets, for logs ("threads", "calls").
    pub name: String,
    /// Length of one agent's observation vector.
    pub observation: usize,
    /// Number of discrete actions of one agent.
    pub actions: usize,
}

/// Who acts, and in which order.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Independent copies within one state (services): every group has one agent per slot.
    pub slots: usize,
    /// The groups, in acting order.
    pub groups: Vec<Group>,
    /// Indices into `groups`: the groups of one phase act at once on the same observations,
    /// a later phase observes what the earlier phases chose.
    pub phases: Vec<Vec<usize>>,
}

/// How an episode goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpisodeEnd {
    /// The next state follows (a one-step problem always continues with a fresh draw).
    Continues,
    /// The episode ended in a terminal state: nothing follows it.
    Terminated,
    /// The episode was cut (a time limit): the next state exists, but a new episode starts.
    Truncated,
}

/// What a step leads to.
#[derive(Debug, Clone)]
pub struct Step<S> {
    pub next: S,
    pub end: EpisodeEnd,
}

/// A candidate with its scores. Serialised flat (`{"service":0,...,"sim_reward":..,
/// "emu_reward":..}`), so that cell files keep one record per interaction.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Scored<C> {
    #[serde(flatten)]
    pub candidate: C,
    /// The reward the model (the simulator) predicts.
    #[serde(rename = "sim_reward")]
    pub model_reward: f64,
    /// The reward measured on the ground truth, once checked.
    #[serde(rename = "emu_reward")]
    pub truth_reward: Option<f64>,
}

impl<C> Scored<C> {
    /// A candidate not scored yet.
    pub fn new(candidate: C) -> Scored<C> {
        Scored { candidate, model_reward: 0.0, truth_reward: None }
    }
}

/// The scored candidates of an environment.
pub type ScoredOf<E> = Scored<<E as Environment>::Candidate>;

/// A problem: states, knobs, model and ground truth. See the module documentation.
pub trait Environment: Sync {
    /// Serialisable, so that a training run can be checkpointed mid-way.
    type State: Clone + Send + Serialize + DeserializeOwned;
    type Candidate: Clone + Send + Sync + Serialize + DeserializeOwned;

    fn layout(&self) -> &Layout;

    /// Starts an episode: its first state.
    fn reset(&self, rng: &mut ChaCha8Rng) -> Self::State;

    /// The candidates of a state before any agent acts, one per slot.
    fn start(&self, state: &Self::State) -> Vec<Self::Candidate>;

    /// What agent `slot` of `group` observes: the state and the slots' candidates so far.
    fn observe(&self, state: &Self::State, candidates: &[Self::Candidate], group: usize, slot: usize) -> Vec<f32>;

    /// Applies one agent's action (an index below its group's `actions`) to its slot's candidate.
    fn apply(&self, candidate: &mut Self::Candidate, group: usize, action: usize);

    /// Scores a batch of candidates on the model (one call: a batched prediction).
    fn score_model(&self, batch: &mut [Scored<Self::Candidate>]) -> Result<()>;

    /// Scores a batch of candidates on the ground truth; `seed` fixes every random choice.
    fn score_truth(&self, batch: &mut [Scored<Self::Candidate>], seed: u64) -> Result<()>;

    /// The rewards the learners see for one state's scored candidates (one per slot): by
    /// default the model's rewards; an environment may share or rescale them.
    fn learning_rewards(&self, scored: &[Scored<Self::Candidate>]) -> Vec<f64> {
        scored.iter().map(|s| s.model_reward).collect()
    }

    /// The state after `state`, where the agents built `scored`.
    fn step(&self, state: &Self::State, scored: &[Scored<Self::Candidate>], rng: &mut ChaCha8Rng) -> Step<Self::State>;

    /// Every candidate the agents could have built in the state of `candidate`, for the same
    /// slot, in a fixed order (the yardsticks' search space).
    fn alternatives(&self, candidate: &Self::Candidate) -> Vec<Self::Candidate>;

    /// The settings the agents chose in a candidate, for tables ("threads 64, calls 400").
    fn describe(&self, candidate: &Self::Candidate) -> String;

    /// One slot's joint choice as fields with their values, for the search methods
    /// ([`crate::search`]): by default one ordered field per group, its actions numbered. An
    /// environment names the values and says which fields have no order.
    fn search_space(&self) -> crate::search::SearchSpace {
        use crate::search::{Field, FieldKind};
        let fields =
            self.layout().groups.iter().map(|g| Field::new(&g.name, FieldKind::Ordered, (0..g.actions).map(|a| a.to_string()).collect()));
        crate::search::SearchSpace::new(fields.collect())
    }

    /// The slots' candidates of one state as the one choice they make together, when each
    /// slot sets a part of it (the mesh defender's destinations); `None` (the default): each
    /// slot's candidate is a choice of its own, scored on its own.
    fn joint(&self, _candidates: &[Self::Candidate]) -> Option<Self::Candidate> {
        None
    }

    /// The candidate a joint choice (a point of [`Environment::search_space`]) builds from a
    /// slot's start: by default each group's action applied in group order.
    fn joint_candidate(&self, start: &Self::Candidate, point: &[usize]) -> Self::Candidate {
        let mut c = start.clone();
        for (group, &action) in point.iter().enumerate() {
            self.apply(&mut c, group, action);
        }
        c
    }
}

//! The problems a budget experiment searches, each as one or more variants (a panel of the
//! report): a set of evaluation states, a search space per state, one noisy ground-truth
//! evaluation of a point at a state, and the true value of one recommendation per state.
//!
//! - [`defend`]: the defender on the emulator (per load, or one rule for all loads);
//! - [`attack`]: the SFR2L load search on a dataset's traffic rules, on the emulator;
//! - [`control`]: seed 002's control problem on a measured testbed trace;
//! - [`mesh`]: the mesh defender, rules for every destination of a service graph.

pub mod attack;
pub mod control;
pub mod defend;
pub mod mesh;

use serde::{Deserialize, Serialize};

use crate::agent::LearnerKind;
use crate::error::Result;
use crate::search::SearchSpace;

use super::agents::AgentSettings;
use super::BudgetCell;
use crate::experiment::rundir::OutputSet;

/// The problem of a budget experiment (config `[problem.defend]`, `[problem.attack]` or
/// `[problem.control]` or `[problem.mesh]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ProblemConfig {
    Defend(defend::DefendProblem),
    Attack(attack::AttackProblem),
    Control(control::ControlProblem),
    Mesh(Box<mesh::MeshProblem>),
}

impl ProblemConfig {
    /// Its variants, built and checked (files read, names resolved).
    pub fn build(&self, seed: u64) -> Result<Problem> {
        match self {
            ProblemConfig::Defend(p) => p.build(),
            ProblemConfig::Attack(p) => p.build(seed),
            ProblemConfig::Control(p) => p.build(),
            ProblemConfig::Mesh(p) => p.build(seed),
        }
    }

    pub fn validate(&self) -> Result<()> {
        match self {
            ProblemConfig::Defend(p) => p.validate(),
            ProblemConfig::Attack(p) => p.validate(),
            ProblemConfig::Control(p) => p.validate(),
            ProblemConfig::Mesh(p) => p.validate(),
        }
    }
}

/// A built problem: what the report says of it, and its variants.
pub struct Problem {
    /// One paragraph for the report: the problem, its states, what a run is.
    pub summary: String,
    /// What the value measures, for the plot's y axis.
    pub value_label: String,
    /// What one ground-truth run is, in the plural ("emulator runs", "trace samples").
    pub runs_label: String,
    pub variants: Vec<Box<dyn Variant>>,
}

/// One panel of a budget experiment: states, a space, the ground truth.
pub trait Variant: Sync {
    /// Names the panel and prefixes its cells ("per_load", "S2").
    fn name(&self) -> String;
    /// Everything that decides its numbers, for the cells' keys.
    fn key(&self) -> String;
    /// The evaluation states; a method's budget is split evenly over them.
    fn states(&self) -> usize;
    /// The joint choice at a state.
    fn space(&self) -> SearchSpace;
    /// Ground-truth runs one evaluation costs.
    fn cost(&self) -> usize;
    /// One evaluation of `point` at `state` on the run seeded `seed`; larger is better.
    fn evaluate(&self, state: usize, point: &[usize], seed: u64) -> Result<f64>;
    /// The true value of one recommended point per state, on `runs` fresh runs per state
    /// (run r of state s seeded `fresh(s, r)`, the same seeds for every method).
    fn value(&self, points: &[Vec<usize>], runs: usize, fresh: &dyn Fn(usize, usize) -> u64) -> Result<f64>;
    /// Seconds one ground-truth run takes here, timed (for the estimate).
    fn seconds_per_run(&self) -> Result<f64>;
    /// The agents' layouts here, by name; a learner is on the curves once per layout
    /// (default: one, unnamed).
    fn agent_layouts(&self) -> Vec<String> {
        vec![String::new()]
    }
    /// An agent of `learner` in `layout` trained on `interactions` ground-truth runs drawn
    /// over the states, then asked for its greedy point at every state; the runs it spent.
    fn train_agent(
        &self,
        learner: LearnerKind,
        settings: &AgentSettings,
        interactions: usize,
        seed: u64,
        layout: &str,
    ) -> Result<(Vec<Vec<usize>>, usize)>;
    /// Yardsticks beside the searches, each a cell of its own with the runs it will spend
    /// (for the estimate); default none.
    fn yardsticks(&self) -> Vec<(String, usize)> {
        Vec::new()
    }
    /// Yardstick `name`, searched with `seed` where it searches, scored as [`Variant::value`]
    /// scores on the same fresh runs.
    fn yardstick(&self, name: &str, _runs: usize, _fresh: &dyn Fn(usize, usize) -> u64, _seed: u64) -> Result<YardstickResult> {
        Err(crate::error::Error::config(format!("no yardstick {name:?} here")))
    }
    /// Writes what the variant recommends, from its finished cells, among the report's
    /// `outputs`, and returns the Markdown that presents it (default: nothing).
    fn recommend(
        &self,
        _cells: &[&BudgetCell],
        _runs: usize,
        _fresh: &dyn Fn(usize, usize) -> u64,
        _outputs: &mut OutputSet,
    ) -> Result<String> {
        Ok(String::new())
    }
}

/// What a yardstick recommends and what it is worth.
pub struct YardstickResult {
    /// Its fresh value, as [`Variant::value`] scores.
    pub value: f64,
    /// One point per state, or none when its rules are off the grid (Istio's defaults).
    pub points: Vec<Vec<usize>>,
    /// Ground-truth runs its search spent.
    pub spent: usize,
}

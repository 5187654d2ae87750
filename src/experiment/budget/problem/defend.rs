//! The defender ([`crate::env::defend`]): the scenario, loads, grid and one objective of a
//! defend experiment file. Per load, the states are the loads and the value is their
//! weighted mean; robust, one rule for all loads, an evaluation runs every load (each run
//! counted) and the value is the worst load's mean.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Problem, Variant};
use crate::agent::LearnerKind;
use crate::env::defend::{DefendEnv, LoadState, Mode, RuleChoice};
use crate::env::Environment;
use crate::error::{Error, Result};
use crate::experiment::budget::agents::{train_on_truth, AgentSettings};
use crate::experiment::defend::DefendConfig;
use crate::experiment::rundir::json;
use crate::search::SearchSpace;

/// Config `[problem.defend]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefendProblem {
    /// A defend experiment file, whose scenario, loads and grid are used.
    pub experiment: PathBuf,
    /// The name of one of that file's `[[objectives]]`.
    pub objective: String,
    /// Per load, one rule for all loads (robust), or both (default).
    #[serde(default = "both_modes")]
    pub modes: Vec<Mode>,
}

fn both_modes() -> Vec<Mode> {
    vec![Mode::PerLoad, Mode::Robust]
}

impl DefendProblem {
    pub fn validate(&self) -> Result<()> {
        if self.modes.is_empty() {
            return Err(Error::config("problem.defend.modes needs at least one entry"));
        }
        crate::experiment::refuse_repeats("problem.defend.modes", &self.modes)
    }

    pub fn build(&self) -> Result<Problem> {
        let table = crate::experiment::load_experiment(&self.experiment, &[])?;
        let defend: DefendConfig = crate::experiment::parse_config(table, &self.experiment, &[], DefendConfig::validate)?;
        let objective = defend.objectives.iter().position(|o| o.name == self.objective).ok_or_else(|| {
            let names: Vec<&str> = defend.objectives.iter().map(|o| o.name.as_str()).collect();
            Error::config(format!("objective {:?} is not one of {}'s objectives {names:?}", self.objective, self.experiment.display()))
        })?;
        let summary = format!(
            "Problem: the defender of `{}`, objective `{}` ({} loads, {} joint rules). Per load, B is split evenly over the \
             loads and the value is the loads' weighted mean; robust, one rule for all loads, an evaluation runs every load \
             (each run counted) and the value is the worst load's mean.",
            self.experiment.display(),
            self.objective,
            defend.loads.loads().len(),
            defend.grid.joint_rules(),
        );
        let problem_key = json(&(&defend.scenario, &defend.loads, &defend.grid, &defend.objectives[objective], defend.sequential));
        let seconds = defend.seconds_per_load_test()?;
        let variants = self
            .modes
            .iter()
            .map(|&mode| {
                let env = DefendEnv::new(defend.spec(&defend.objectives[objective].objective, mode));
                Box::new(DefendVariant { env, mode, key: problem_key.clone(), seconds }) as Box<dyn Variant>
            })
            .collect();
        Ok(Problem { summary, value_label: self.objective.clone(), runs_label: "emulator runs".into(), variants })
    }
}

struct DefendVariant {
    env: DefendEnv,
    mode: Mode,
    key: String,
    seconds: f64,
}

impl DefendVariant {
    fn loads(&self) -> usize {
        self.env.spec().loads.len()
    }

    fn rules(&self, load: usize, point: &[usize]) -> crate::rules::TrafficRules {
        let start = self.env.start(&LoadState { load, seed: 0 }).remove(0);
        self.env.spec().grid.rule(&self.env.joint_candidate(&start, point).choice)
    }
}

impl Variant for DefendVariant {
    fn name(&self) -> String {
        self.mode.name().to_string()
    }

    fn key(&self) -> String {
        json(&(&self.key, self.mode))
    }

    fn states(&self) -> usize {
        match self.mode {
            Mode::PerLoad => self.loads(),
            Mode::Robust => 1,
        }
    }

    fn space(&self) -> SearchSpace {
        self.env.search_space()
    }

    fn cost(&self) -> usize {
        match self.mode {
            Mode::PerLoad => 1,
            Mode::Robust => self.loads(),
        }
    }

    fn evaluate(&self, state: usize, point: &[usize], seed: u64) -> Result<f64> {
        let (spec, rules) = (self.env.spec(), self.rules(state, point));
        Ok(match self.mode {
            Mode::PerLoad => spec.outcome(&rules, state, seed).value,
            Mode::Robust => spec.worst_outcome(&rules, seed).value,
        })
    }

    fn value(&self, points: &[Vec<usize>], runs: usize, fresh: &dyn Fn(usize, usize) -> u64) -> Result<f64> {
        let spec = self.env.spec();
        let mean_at = |p: &[usize], l: usize| {
            let rules = self.rules(l, p);
            (0..runs).map(|r| spec.outcome(&rules, l, fresh(l, r)).value).sum::<f64>() / runs as f64
        };
        Ok(match self.mode {
            Mode::PerLoad => (0..self.loads()).map(|l| spec.weights[l] * mean_at(&points[l], l)).sum(),
            Mode::Robust => (0..self.loads()).map(|l| mean_at(&points[0], l)).fold(f64::INFINITY, f64::min),
        })
    }

    fn seconds_per_run(&self) -> Result<f64> {
        Ok(self.seconds)
    }

    fn train_agent(
        &self,
        learner: LearnerKind,
        settings: &AgentSettings,
        interactions: usize,
        seed: u64,
        _layout: &str,
    ) -> Result<(Vec<Vec<usize>>, usize)> {
        // The run seed of an interaction comes from the training's own stream, not the state's.
        let states: Vec<LoadState> = (0..self.states()).map(|load| LoadState { load, seed: 0 }).collect();
        let searched = self.env.searched();
        let evaluations = interactions / self.cost();
        let point_of = |c: &RuleChoice| searched.iter().map(|&f| c.choice[f]).collect::<Vec<usize>>();
        let truth = |c: &RuleChoice, run: u64| self.evaluate(c.load, &point_of(c), run);
        train_on_truth(&self.env, &states, learner, settings, evaluations, self.cost(), seed, point_of, &truth)
    }
}

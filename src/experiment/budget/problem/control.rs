//! Seed 002's control problem on its measured trace ([`crate::experiment::control`]): the
//! states are the offered loads of a control experiment file, the space one objective's
//! grid of routing weight, blocking and replicas. One ground-truth evaluation is one
//! measured sample of the setting (one monitoring window of the testbed, drawn by the run's
//! seed among the trace's samples of that setting): what one more real load test would have
//! shown. The value is the measured table's (every sample's mean outcome, as the control
//! experiment scores) at the recommended settings, weighted by the loads' probabilities.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Problem, Variant};
use crate::agent::LearnerKind;
use crate::env::control::{Choice, ControlEnv, ControlTables, LoadState};
use crate::error::{Error, Result};
use crate::experiment::budget::agents::{train_on_truth, AgentSettings};
use crate::experiment::control::objective::Objective;
use crate::experiment::control::trace::{setting_key, ControlTrace, Outcome};
use crate::experiment::control::{check_coverage, describe_knobs, measured_table, ControlConfig};
use crate::experiment::rundir::json;
use crate::search::{Field, FieldKind, SearchSpace};

/// Config `[problem.control]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlProblem {
    /// A control experiment file: its trace, loads and objectives.
    pub experiment: PathBuf,
    /// The names of the objectives to search, one panel each.
    pub objectives: Vec<String>,
}

impl ControlProblem {
    pub fn validate(&self) -> Result<()> {
        if self.objectives.is_empty() {
            return Err(Error::config("problem.control.objectives needs at least one entry"));
        }
        crate::experiment::refuse_repeats("problem.control.objectives", &self.objectives)
    }

    pub fn build(&self) -> Result<Problem> {
        let table = crate::experiment::load_experiment(&self.experiment, &[])?;
        let cfg: ControlConfig = crate::experiment::parse_config(table, &self.experiment, &[], ControlConfig::validate)?;
        let trace = ControlTrace::load(&cfg.trace)?;
        check_coverage(&cfg, &trace)?;
        let fingerprint = crate::data::fingerprint(&cfg.trace.path)?;
        let mut variants: Vec<Box<dyn Variant>> = Vec::new();
        for name in &self.objectives {
            let objective = cfg.objectives.iter().find(|o| &o.name == name).ok_or_else(|| {
                let names: Vec<&str> = cfg.objectives.iter().map(|o| o.name.as_str()).collect();
                Error::config(format!("objective {name:?} is not one of {}'s objectives {names:?}", self.experiment.display()))
            })?;
            variants.push(Box::new(ControlVariant::new(&cfg, &trace, objective, &fingerprint)));
        }
        let summary = format!(
            "Problem: seed 002's control problem on the measured trace `{}` ({} loads of `{}`): at each offered load, the \
             setting (routing weight, blocking, replicas) with the best reward is sought. One evaluation is one measured \
             sample of the setting, drawn by the run's seed (one more monitoring window of the testbed); the value is the \
             measured table's (the mean of every sample, as the control experiment scores), the loads' weighted mean.",
            cfg.trace.path.display(),
            cfg.loads.values.len(),
            self.experiment.display()
        );
        Ok(Problem { summary, value_label: "reward (measured)".into(), runs_label: "trace samples".into(), variants })
    }
}

struct ControlVariant {
    objective: Objective,
    /// `samples[load][action]`: the reward of every measured sample of the setting.
    samples: Vec<Vec<Vec<f64>>>,
    /// `measured[load][action]`: the measured table's reward.
    measured: Vec<Vec<f64>>,
    weights: Vec<f64>,
    env: ControlEnv,
    key: String,
}

impl ControlVariant {
    fn new(cfg: &ControlConfig, trace: &ControlTrace, objective: &Objective, fingerprint: &str) -> ControlVariant {
        let actions = objective.actions();
        let window = cfg.trace.window_s;
        let samples = cfg
            .loads
            .values
            .iter()
            .map(|&l| {
                actions
                    .iter()
                    .map(|k| {
                        let key = setting_key(l, k);
                        trace
                            .samples
                            .iter()
                            .filter(|s| setting_key(s.load, &s.knobs) == key)
                            .map(|s| {
                                let outcome = Outcome { delay: s.delay, carried: Some(s.completed / window) };
                                objective.reward(k, &outcome).expect("a sample carries its load")
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let measured = measured_table(cfg, objective, trace).reward;
        let env = ControlEnv::new(ControlTables {
            loads: cfg.loads.values.clone(),
            weights: cfg.weights(),
            actions: actions.iter().map(describe_knobs).collect(),
            model: measured.clone(),
            truth: measured.clone(),
        })
        .expect("one row per load, one reward per action");
        let key = json(&(objective, &cfg.trace, fingerprint, &cfg.loads));
        ControlVariant { objective: objective.clone(), samples, measured, weights: cfg.weights(), env, key }
    }

    /// The grid's fields, with the number of values of each (a field of one value stays,
    /// as every search method handles it).
    fn fields(&self) -> [(&'static str, Vec<String>); 3] {
        let o = &self.objective;
        [
            ("routing", o.routing.iter().map(|v| format!("{v}")).collect()),
            ("blocking", o.blocking.iter().map(|v| format!("{v}")).collect()),
            ("replicas", o.replicas.iter().map(|v| format!("{v}")).collect()),
        ]
    }

    /// The action (an index of [`Objective::actions`], routing slowest) of a point; no
    /// labels are built (it runs at every evaluation).
    fn action(&self, point: &[usize]) -> usize {
        let o = &self.objective;
        let sizes = [o.routing.len(), o.blocking.len(), o.replicas.len()];
        sizes.iter().zip(point).fold(0, |a, (&n, &i)| a * n + i)
    }
}

impl Variant for ControlVariant {
    fn name(&self) -> String {
        self.objective.name.clone()
    }

    fn key(&self) -> String {
        self.key.clone()
    }

    fn states(&self) -> usize {
        self.measured.len()
    }

    fn space(&self) -> SearchSpace {
        SearchSpace::new(
            self.fields()
                .into_iter()
                .map(|(name, labels)| Field::new(name, if name == "replicas" { FieldKind::Integer } else { FieldKind::Ordered }, labels))
                .collect(),
        )
    }

    fn cost(&self) -> usize {
        1
    }

    fn evaluate(&self, state: usize, point: &[usize], seed: u64) -> Result<f64> {
        let samples = &self.samples[state][self.action(point)];
        Ok(samples[(seed % samples.len() as u64) as usize])
    }

    fn value(&self, points: &[Vec<usize>], _runs: usize, _fresh: &dyn Fn(usize, usize) -> u64) -> Result<f64> {
        Ok((0..self.states()).map(|l| self.weights[l] * self.measured[l][self.action(&points[l])]).sum())
    }

    fn seconds_per_run(&self) -> Result<f64> {
        // A lookup: the searches' own work dominates.
        Ok(1e-7)
    }

    fn train_agent(
        &self,
        learner: LearnerKind,
        settings: &AgentSettings,
        interactions: usize,
        seed: u64,
        _layout: &str,
    ) -> Result<(Vec<Vec<usize>>, usize)> {
        let states: Vec<LoadState> = (0..self.states()).map(|load| LoadState { load }).collect();
        let space = self.space();
        let point_of = |c: &Choice| space.point(c.action as u128);
        let truth = |c: &Choice, run: u64| self.evaluate(c.load, &point_of(c), run);
        train_on_truth(&self.env, &states, learner, settings, interactions, 1, seed, point_of, &truth)
    }
}

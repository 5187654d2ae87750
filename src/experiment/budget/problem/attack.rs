//! The SFR2L load search (the attacker, [`crate::env::load_search`]) on the emulator: per
//! dataset, `states` distinct traffic rules drawn from its trace; at each, the load
//! (threads x calls, the protocol's grid) with the most 503s per second is sought. The
//! value is the states' mean of the recommended loads' 503s/s on fresh runs.
//!
//! The agents are the paper's `thread&call` pair (one service), learning on the emulator
//! itself: they need the trace's normalisation of the rules they observe, and no simulator.

use std::path::PathBuf;

use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Problem, Variant};
use crate::agent::LearnerKind;
use crate::data::{load_table, Normalizer, TableSpec, TraceTable};
use crate::emulator::{run_load_test, Scenario};
use crate::env::load_search::{ActionGrid, Configuration, LoadChoice, LoadSearch, LoadSearchData, Mode};
use crate::error::{Error, Result};
use crate::experiment::budget::agents::{train_on_truth, AgentSettings};
use crate::experiment::rundir::json;
use crate::experiment::table5::Table5Dataset;
use crate::rules::{Load, TrafficRules};
use crate::search::{Field, FieldKind, SearchSpace};
use crate::seeding::mix;
use crate::simulator::{ServiceModel, Simulator};

/// Config `[problem.attack]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackProblem {
    /// The datasets config whose emulator scenarios the datasets were generated under.
    #[serde(default = "datasets_config")]
    pub datasets_config: PathBuf,
    /// One panel each: a dataset's trace (its traffic rules) and its action grid.
    #[serde(rename = "dataset")]
    pub datasets: Vec<Table5Dataset>,
    /// Evaluation states per dataset: distinct traffic rules drawn from the trace with the
    /// master seed (default 10).
    #[serde(default = "ten")]
    pub states: usize,
}

fn datasets_config() -> PathBuf {
    PathBuf::from("configs/datasets.toml")
}
fn ten() -> usize {
    10
}

impl AttackProblem {
    pub fn validate(&self) -> Result<()> {
        if self.datasets.is_empty() || self.states == 0 {
            return Err(Error::config("problem.attack needs at least one [[problem.attack.dataset]] and states >= 1"));
        }
        crate::experiment::refuse_repeats("problem.attack.dataset names", &self.datasets.iter().map(|d| &d.name).collect::<Vec<_>>())?;
        for d in &self.datasets {
            d.grid()?.validate()?;
        }
        Ok(())
    }

    pub fn build(&self, seed: u64) -> Result<Problem> {
        let (_, plans) = crate::generate::DatasetsConfig::load(&self.datasets_config)?;
        let mut variants: Vec<Box<dyn Variant>> = Vec::new();
        for d in &self.datasets {
            let scenario = plans.iter().find(|p| p.spec.name == d.name).map(|p| p.scenario.clone()).ok_or_else(|| {
                Error::file(&self.datasets_config, format!("no dataset named {} (its emulator scenario is needed)", d.name))
            })?;
            let table = load_table(&d.path, &TableSpec::default())?;
            let rows = distinct_rules(&table, self.states, mix(seed, crate::data::fnv1a(d.name.as_bytes())));
            if rows.len() < self.states {
                return Err(Error::file(
                    &d.path,
                    format!("has {} distinct traffic rules, fewer than states = {}", rows.len(), self.states),
                ));
            }
            let key = json(&(&d.name, crate::data::fingerprint(&d.path)?, &scenario, d.grid()?, &rows));
            let data = agent_data(d, table, scenario)?;
            variants.push(Box::new(AttackVariant { data, rows, key }));
        }
        let names: Vec<&str> = self.datasets.iter().map(|d| d.name.as_str()).collect();
        let summary = format!(
            "Problem: the SFR2L load search (the attacker) on {names:?}: per dataset, {} distinct traffic rules drawn from \
             its trace are the states; at each, the load (threads x calls, the protocol's grid) with the most 503s per \
             second is sought on the emulator. B is split evenly over the states; the value is the states' mean 503s/s of \
             the recommended loads.",
            self.states
        );
        Ok(Problem { summary, value_label: "503s per second".into(), runs_label: "emulator runs".into(), variants })
    }
}

/// `n` rows of `table` with distinct traffic rules, in a seeded random order.
fn distinct_rules(table: &TraceTable, n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..table.n_rows()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut seen: Vec<Vec<u64>> = Vec::new();
    let mut rows = Vec::new();
    for i in order {
        let rules: Vec<u64> = table.feature_row(i)[..7].iter().map(|x| x.to_bits()).collect();
        if !seen.contains(&rules) {
            seen.push(rules);
            rows.push(i);
            if rows.len() == n {
                break;
            }
        }
    }
    rows
}

/// The load search's data with the trace's normalisation and no simulator: the budget's
/// agents learn on the emulator, so nothing asks for a prediction.
fn agent_data(d: &Table5Dataset, table: TraceTable, scenario: Scenario) -> Result<LoadSearchData> {
    let all: Vec<usize> = (0..table.n_rows()).collect();
    let model = ServiceModel {
        model: Box::new(NoSimulator),
        inputs: Normalizer::fit_features(&table, &all)?,
        outputs: Normalizer::fit_targets(&table, &all)?,
    };
    Ok(LoadSearchData::new(d.name.clone(), table, all, model, d.grid()?, scenario))
}

/// In place of a simulator where the ground truth is the model.
struct NoSimulator;

impl Simulator for NoSimulator {
    fn name(&self) -> &'static str {
        "none"
    }
    fn predict(&self, _x: &Array2<f64>) -> Result<Array2<f64>> {
        Err(Error::config("no simulator: the budget curves' agents learn on the emulator"))
    }
}

struct AttackVariant {
    data: LoadSearchData,
    /// The trace rows whose traffic rules are the states.
    rows: Vec<usize>,
    key: String,
}

impl AttackVariant {
    fn grid(&self) -> &ActionGrid {
        &self.data.grid
    }

    fn load(&self, point: &[usize]) -> Load {
        Load { threads: self.grid().threads[point[0]], calls: self.grid().calls[point[1]] }
    }

    fn rules(&self, state: usize) -> TrafficRules {
        self.data.rules(self.rows[state])
    }
}

impl Variant for AttackVariant {
    fn name(&self) -> String {
        self.data.name.clone()
    }

    fn key(&self) -> String {
        self.key.clone()
    }

    fn states(&self) -> usize {
        self.rows.len()
    }

    fn space(&self) -> SearchSpace {
        let labels = |v: &[u32]| v.iter().map(u32::to_string).collect();
        SearchSpace::new(vec![
            Field::new("threads", FieldKind::Ordered, labels(&self.grid().threads)),
            Field::new("calls", FieldKind::Ordered, labels(&self.grid().calls)),
        ])
    }

    fn cost(&self) -> usize {
        1
    }

    fn evaluate(&self, state: usize, point: &[usize], seed: u64) -> Result<f64> {
        Ok(run_load_test(&self.rules(state), &self.load(point), &self.data.scenario, seed).reward())
    }

    fn value(&self, points: &[Vec<usize>], runs: usize, fresh: &dyn Fn(usize, usize) -> u64) -> Result<f64> {
        let total: f64 = (0..self.states())
            .map(|s| {
                let (rules, load) = (self.rules(s), self.load(&points[s]));
                (0..runs).map(|r| run_load_test(&rules, &load, &self.data.scenario, fresh(s, r)).reward()).sum::<f64>() / runs as f64
            })
            .sum();
        Ok(total / self.states() as f64)
    }

    fn seconds_per_run(&self) -> Result<f64> {
        let space = self.space();
        let n = usize::try_from(space.points()).unwrap_or(usize::MAX);
        crate::experiment::estimate::seconds_each(16, 64, |i| {
            self.evaluate(i % self.states(), &space.point((i * 7919 % n) as u128), i as u64)?;
            Ok(())
        })
    }

    fn train_agent(
        &self,
        learner: LearnerKind,
        settings: &AgentSettings,
        interactions: usize,
        seed: u64,
        _layout: &str,
    ) -> Result<(Vec<Vec<usize>>, usize)> {
        let env = LoadSearch::new(&self.data, Configuration { mode: Mode::ThreadAndCall, services: 1 }, 0.0);
        let states: Vec<Vec<usize>> = self.rows.iter().map(|&r| vec![r]).collect();
        let grid = self.grid();
        let point_of = |c: &LoadChoice| {
            let index = |values: &[u32], v: u32| values.iter().position(|&x| x == v).expect("the agents choose from the grid");
            vec![index(&grid.threads, c.threads), index(&grid.calls, c.calls)]
        };
        let state_of = |c: &LoadChoice| self.rows.iter().position(|&r| r == c.row).expect("the agents act at the states");
        let truth = |c: &LoadChoice, run: u64| self.evaluate(state_of(c), &point_of(c), run);
        train_on_truth(&env, &states, learner, settings, interactions, 1, seed, point_of, &truth)
    }
}

//! The control problem of seed 002 as an environment: the exogenous state is the offered
//! load, drawn afresh each step from a categorical process (the action does not change the
//! next load, so this is a contextual bandit and gamma 0 is right); one agent picks a joint
//! setting of the knobs (an index into the objective's grid, where the framework used
//! SB3's MultiDiscrete over the same grid); its reward is a precomputed table, the model's
//! per (load, action) and the measured one as the ground truth.
//!
//! The agent observes `load / max load`, one number (the framework observed the raw load).

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Environment, EpisodeEnd, Group, Layout, Scored, Step};
use crate::error::{Error, Result};

/// The reward of every (load, action): `model[l][a]`, and the ground truth's.
pub struct ControlTables {
    /// The loads of the process, and their probabilities (summing to 1).
    pub loads: Vec<f64>,
    pub weights: Vec<f64>,
    /// A label per action ("p 100, blocking 0, c 2").
    pub actions: Vec<String>,
    pub model: Vec<Vec<f64>>,
    pub truth: Vec<Vec<f64>>,
}

pub struct ControlEnv {
    tables: ControlTables,
    layout: Layout,
    max_load: f64,
}

/// The offered load, as an index into the process's loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadState {
    pub load: usize,
}

/// The setting chosen at a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub load: usize,
    pub action: usize,
}

impl ControlEnv {
    pub fn new(tables: ControlTables) -> Result<ControlEnv> {
        let n = tables.actions.len();
        let ok_rows = |t: &Vec<Vec<f64>>| t.len() == tables.loads.len() && t.iter().all(|r| r.len() == n);
        if n == 0
            || tables.loads.is_empty()
            || tables.weights.len() != tables.loads.len()
            || !ok_rows(&tables.model)
            || !ok_rows(&tables.truth)
        {
            return Err(Error::config("control environment: reward tables do not match the loads and actions"));
        }
        let layout = Layout { slots: 1, groups: vec![Group { name: "setting".into(), observation: 1, actions: n }], phases: vec![vec![0]] };
        let max_load = tables.loads.iter().copied().fold(f64::MIN, f64::max);
        Ok(ControlEnv { tables, layout, max_load })
    }

    pub fn tables(&self) -> &ControlTables {
        &self.tables
    }

    /// What the agent sees at load index `l`.
    pub fn observation(&self, l: usize) -> Vec<f32> {
        vec![(self.tables.loads[l] / self.max_load) as f32]
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> LoadState {
        LoadState { load: super::draw_weighted(&self.tables.weights, rng) }
    }
}

impl Environment for ControlEnv {
    type State = LoadState;
    type Candidate = Choice;

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn reset(&self, rng: &mut ChaCha8Rng) -> LoadState {
        self.draw(rng)
    }

    fn start(&self, state: &LoadState) -> Vec<Choice> {
        vec![Choice { load: state.load, action: 0 }]
    }

    fn observe(&self, state: &LoadState, _candidates: &[Choice], _group: usize, _slot: usize) -> Vec<f32> {
        self.observation(state.load)
    }

    fn apply(&self, candidate: &mut Choice, _group: usize, action: usize) {
        candidate.action = action;
    }

    fn score_model(&self, batch: &mut [Scored<Choice>]) -> Result<()> {
        for s in batch {
            s.model_reward = self.tables.model[s.candidate.load][s.candidate.action];
        }
        Ok(())
    }

    fn score_truth(&self, batch: &mut [Scored<Choice>], _seed: u64) -> Result<()> {
        for s in batch {
            s.truth_reward = Some(self.tables.truth[s.candidate.load][s.candidate.action]);
        }
        Ok(())
    }

    fn step(&self, _state: &LoadState, _scored: &[Scored<Choice>], rng: &mut ChaCha8Rng) -> Step<LoadState> {
        Step { next: self.draw(rng), end: EpisodeEnd::Continues }
    }

    fn alternatives(&self, candidate: &Choice) -> Vec<Choice> {
        (0..self.tables.actions.len()).map(|action| Choice { load: candidate.load, action }).collect()
    }

    fn describe(&self, candidate: &Choice) -> String {
        format!("load {}: {}", self.tables.loads[candidate.load], self.tables.actions[candidate.action])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn env() -> ControlEnv {
        ControlEnv::new(ControlTables {
            loads: vec![1.0, 4.0],
            weights: vec![0.25, 0.75],
            actions: vec!["a".into(), "b".into()],
            model: vec![vec![1.0, 0.0], vec![0.0, 2.0]],
            truth: vec![vec![0.5, 0.0], vec![0.0, 1.5]],
        })
        .unwrap()
    }

    #[test]
    fn loads_are_drawn_by_their_weights_and_rewards_looked_up() {
        let e = env();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let high = (0..4000).filter(|_| e.reset(&mut rng).load == 1).count();
        assert!((2800..3200).contains(&high), "{high} of 4000 draws at the 0.75 load");
        let mut batch = vec![Scored::new(Choice { load: 1, action: 1 })];
        e.score_model(&mut batch).unwrap();
        e.score_truth(&mut batch, 0).unwrap();
        assert_eq!((batch[0].model_reward, batch[0].truth_reward), (2.0, Some(1.5)));
        assert_eq!(e.observation(0), vec![0.25]);
        assert_eq!(e.alternatives(&Choice { load: 0, action: 0 }).len(), 2);
    }

    #[test]
    fn mismatched_tables_are_refused() {
        let mut t = env().tables;
        t.truth.pop();
        assert!(ControlEnv::new(t).is_err());
    }
}

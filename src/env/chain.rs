//! A test-only sequential problem: a chain of states 0..len-1, starting at 0; the one agent
//! moves left (action 0) or right (action 1), and is paid 1 on reaching the last state,
//! which ends the episode; an episode is cut after `limit` steps. Only a learner that
//! discounts future rewards learns to go right from the first states.

use rand_chacha::ChaCha8Rng;

use super::{Environment, EpisodeEnd, Group, Layout, Scored, Step};
use crate::error::Result;

pub struct Chain {
    pub len: usize,
    pub limit: usize,
    layout: Layout,
}

/// Position and steps taken in this episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub at: usize,
    pub steps: usize,
}

/// A move from a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Move {
    pub from: usize,
    pub right: bool,
}

impl Chain {
    pub fn new(len: usize, limit: usize) -> Chain {
        let layout = Layout { slots: 1, groups: vec![Group { name: "move".into(), observation: len, actions: 2 }], phases: vec![vec![0]] };
        Chain { len, limit, layout }
    }

    /// One-hot position: what the agent observes.
    pub fn one_hot(&self, at: usize) -> Vec<f32> {
        (0..self.len).map(|i| if i == at { 1.0 } else { 0.0 }).collect()
    }

    fn target(&self, m: &Move) -> usize {
        if m.right {
            (m.from + 1).min(self.len - 1)
        } else {
            m.from.saturating_sub(1)
        }
    }
}

impl Environment for Chain {
    type State = Position;
    type Candidate = Move;

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn reset(&self, _rng: &mut ChaCha8Rng) -> Position {
        Position { at: 0, steps: 0 }
    }

    fn start(&self, state: &Position) -> Vec<Move> {
        vec![Move { from: state.at, right: false }]
    }

    fn observe(&self, state: &Position, _candidates: &[Move], _group: usize, _slot: usize) -> Vec<f32> {
        self.one_hot(state.at)
    }

    fn apply(&self, candidate: &mut Move, _group: usize, action: usize) {
        candidate.right = action == 1;
    }

    fn score_model(&self, batch: &mut [Scored<Move>]) -> Result<()> {
        for s in batch {
            s.model_reward = if self.target(&s.candidate) == self.len - 1 { 1.0 } else { 0.0 };
        }
        Ok(())
    }

    fn score_truth(&self, batch: &mut [Scored<Move>], _seed: u64) -> Result<()> {
        self.score_model(batch)?;
        for s in batch {
            s.truth_reward = Some(s.model_reward);
        }
        Ok(())
    }

    fn step(&self, state: &Position, scored: &[Scored<Move>], _rng: &mut ChaCha8Rng) -> Step<Position> {
        let next = Position { at: self.target(&scored[0].candidate), steps: state.steps + 1 };
        let end = if next.at == self.len - 1 {
            EpisodeEnd::Terminated
        } else if next.steps >= self.limit {
            EpisodeEnd::Truncated
        } else {
            EpisodeEnd::Continues
        };
        Step { next, end }
    }

    fn alternatives(&self, candidate: &Move) -> Vec<Move> {
        vec![Move { right: false, ..*candidate }, Move { right: true, ..*candidate }]
    }

    fn describe(&self, candidate: &Move) -> String {
        if candidate.right { "right" } else { "left" }.to_string()
    }
}

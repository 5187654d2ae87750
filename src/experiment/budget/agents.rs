//! DQN and PPO as peers of the search methods: trained with B ground-truth interactions
//! (every interaction one ground-truth evaluation, counted), over the problem's evaluation
//! states only, then asked for their greedy choice at every state. No diagnostics run
//! beside them: no random baseline, no best epoch, no greedy scoring during training
//! ([`crate::train::learn`]), so nothing outside B informs the policy.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::agent::dqn::DqnConfig;
use crate::agent::ppo::PpoConfig;
use crate::agent::LearnerKind;
use crate::env::{Environment, Layout, Scored, Step};
use crate::error::Result;
use crate::seeding::mix;

/// The learners on the curves and their settings (config `agents = ["dqn", "ppo"]`,
/// `[dqn]`, `[ppo]`; the learners' own defaults otherwise).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    #[serde(default)]
    pub dqn: DqnConfig,
    #[serde(default)]
    pub ppo: PpoConfig,
}

impl AgentSettings {
    pub fn validate(&self) -> Result<()> {
        self.dqn.validate()?;
        self.ppo.validate()
    }
}

/// One ground-truth evaluation of a candidate on the run seeded by the `u64`.
type Truth<'e, C> = &'e (dyn Fn(&C, u64) -> Result<f64> + Sync);

/// `env` with the ground truth as its model, over the evaluation `states` drawn uniformly:
/// every model score is one evaluation (the search methods' own) on a fresh seed, counted.
struct OnTruth<'e, E: Environment> {
    env: &'e E,
    states: &'e [E::State],
    truth: Truth<'e, E::Candidate>,
    seed: u64,
    evaluations: AtomicU64,
}

impl<E: Environment> Environment for OnTruth<'_, E>
where
    E::State: Sync,
{
    type State = E::State;
    type Candidate = E::Candidate;

    fn layout(&self) -> &Layout {
        self.env.layout()
    }
    fn reset(&self, rng: &mut ChaCha8Rng) -> E::State {
        self.states[rng.random_range(0..self.states.len())].clone()
    }
    fn start(&self, state: &E::State) -> Vec<E::Candidate> {
        self.env.start(state)
    }
    fn observe(&self, state: &E::State, candidates: &[E::Candidate], group: usize, slot: usize) -> Vec<f32> {
        self.env.observe(state, candidates, group, slot)
    }
    fn apply(&self, candidate: &mut E::Candidate, group: usize, action: usize) {
        self.env.apply(candidate, group, action)
    }
    /// One evaluation per slot, or one for the slots' joint choice, its value theirs.
    fn score_model(&self, batch: &mut [Scored<E::Candidate>]) -> Result<()> {
        let candidates: Vec<E::Candidate> = batch.iter().map(|s| s.candidate.clone()).collect();
        if let Some(joint) = self.env.joint(&candidates) {
            let n = self.evaluations.fetch_add(1, Ordering::Relaxed);
            let value = (self.truth)(&joint, mix(self.seed, n))?;
            batch.iter_mut().for_each(|s| s.model_reward = value);
            return Ok(());
        }
        for s in batch.iter_mut() {
            let n = self.evaluations.fetch_add(1, Ordering::Relaxed);
            s.model_reward = (self.truth)(&s.candidate, mix(self.seed, n))?;
        }
        Ok(())
    }
    fn score_truth(&self, batch: &mut [Scored<E::Candidate>], seed: u64) -> Result<()> {
        self.env.score_truth(batch, seed)
    }
    fn learning_rewards(&self, scored: &[Scored<E::Candidate>]) -> Vec<f64> {
        self.env.learning_rewards(scored)
    }
    /// A contextual bandit over the evaluation states: every interaction starts afresh.
    fn step(&self, _state: &E::State, _scored: &[Scored<E::Candidate>], rng: &mut ChaCha8Rng) -> Step<E::State> {
        Step { next: self.reset(rng), end: crate::env::EpisodeEnd::Continues }
    }
    fn alternatives(&self, candidate: &E::Candidate) -> Vec<E::Candidate> {
        self.env.alternatives(candidate)
    }
    fn describe(&self, candidate: &E::Candidate) -> String {
        self.env.describe(candidate)
    }
    fn joint(&self, candidates: &[E::Candidate]) -> Option<E::Candidate> {
        self.env.joint(candidates)
    }
}

/// Trains `learner` in `env` at `states` for `evaluations` evaluations by `truth` (each
/// costing `cost` runs), then returns its greedy point at every state, read off its
/// candidate by `point_of`, and the runs spent.
#[allow(clippy::too_many_arguments)]
pub fn train_on_truth<E: Environment>(
    env: &E,
    states: &[E::State],
    learner: LearnerKind,
    settings: &AgentSettings,
    evaluations: usize,
    cost: usize,
    seed: u64,
    point_of: impl Fn(&E::Candidate) -> Vec<usize>,
    truth: Truth<E::Candidate>,
) -> Result<(Vec<Vec<usize>>, usize)>
where
    E::State: Sync,
{
    let wrapped = OnTruth { env, states, truth, seed: mix(seed, 1), evaluations: AtomicU64::new(0) };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut agent = learner.spec(&settings.dqn, &settings.ppo).build(env.layout(), &mut rng)?;
    // Every interaction asks each slot once, or the slots' joint choice once.
    let joint = states.first().is_some_and(|s| env.joint(&env.start(s)).is_some());
    let steps = if joint { evaluations } else { evaluations / env.layout().slots };
    crate::train::learn(&wrapped, agent.as_mut(), steps, &mut rng)?;
    let spent = wrapped.evaluations.load(Ordering::Relaxed) as usize * cost;
    let points = states
        .iter()
        .map(|s| {
            let built = crate::train::greedy(env, agent.as_ref(), s)?;
            Ok(point_of(&env.joint(&built).unwrap_or_else(|| built[0].clone())))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((points, spent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::control::{Choice, ControlEnv, ControlTables, LoadState};

    /// Two loads, three settings: the truth (which the model table contradicts) is learnt
    /// from exactly the evaluations given, each one counted.
    #[test]
    fn an_agent_learns_the_truth_from_its_budget_and_spends_exactly_it() {
        let truth = vec![vec![0.0, 1.0, 0.2], vec![1.0, 0.0, 0.2]];
        let env = ControlEnv::new(ControlTables {
            loads: vec![1.0, 2.0],
            weights: vec![0.5, 0.5],
            actions: vec!["a".into(), "b".into(), "c".into()],
            model: vec![vec![0.0, 0.0, 9.0]; 2],
            truth: truth.clone(),
        })
        .unwrap();
        let states = [LoadState { load: 0 }, LoadState { load: 1 }];
        let asked = AtomicU64::new(0);
        let f = |c: &Choice, _run: u64| {
            asked.fetch_add(1, Ordering::Relaxed);
            Ok(truth[c.load][c.action])
        };
        let settings = AgentSettings {
            dqn: DqnConfig { hidden: 16, learning_rate: 3e-3, learning_starts: 16, train_every: 1, batch_size: 16, ..Default::default() },
            ..Default::default()
        };
        let (points, spent) = train_on_truth(&env, &states, LearnerKind::Dqn, &settings, 400, 3, 7, |c| vec![c.action], &f).unwrap();
        assert_eq!((spent, asked.load(Ordering::Relaxed)), (1200, 400));
        assert_eq!(points, [vec![1], vec![0]]);
    }
}

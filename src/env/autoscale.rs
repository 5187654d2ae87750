//! Autoscaling over time (seed 004, MAESTRO): every step (10 s) one agent scales a
//! deployment by -1, 0 or +1 replica; the offered load follows a Markov chain or a
//! ramp-hold-ramp profile; the latency comes from a table learned from a trace (or
//! measured, as the ground truth); new replicas serve only after a provisioning delay, so
//! an action pays off later and the problem is truly sequential.
//!
//! One step, from state `(t, load, ready, starting)` with action `delta`:
//! 1. the replicas become `ready + starting + delta`; outside `[min, max]` the action is
//!    invalid and the episode ends (004) with `invalid_reward`. A removed replica is the
//!    newest starting one, else a ready one, at once;
//! 2. time advances: starting replicas move one step closer, the load moves to `next_load`
//!    (drawn at the previous step, hidden from the agent: what it cannot know); a new
//!    replica starts now and serves `provision_steps` steps later (with 1, not during the
//!    next step but from the one after);
//! 3. the reward is 004's on the new state: `0.3 r1 + 0.7 r2` with
//!    `r1 = (max - replicas) / max` (every pod costs, starting ones too) and `r2` = 1 under
//!    the soft bound, falling linearly to 0 at the hard bound, -1 above it, which ends the
//!    episode (004's `terminated`). The latency is the table's at (new load, ready replicas).
//!    An episode is cut after `horizon` steps.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Environment, EpisodeEnd, Group, Layout, Scored, Step};
use crate::error::{Error, Result};

/// 004's reward: replica cost against soft and hard latency bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingReward {
    /// Latency bounds, seconds.
    pub soft_s: f64,
    pub hard_s: f64,
    /// Weights of the replica term and the latency term (004: 0.3 and 0.7).
    pub replica_weight: f64,
    pub latency_weight: f64,
    /// Reward of an invalid action (scaling past the bounds), which ends the episode.
    pub invalid_reward: f64,
}

/// How the offered load moves, as indices into the load grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LoadDynamics {
    /// `transition[i][j]`: probability of moving from load i to load j; episodes start
    /// from `start`.
    Markov { transition: Vec<Vec<f64>>, start: Vec<f64> },
    /// The load index at every step of an episode (length `horizon + 1`).
    Profile { by_step: Vec<usize> },
}

/// Everything that defines the problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingSpec {
    /// Offered loads, req/s, ascending.
    pub loads: Vec<f64>,
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Replicas at the start of an episode.
    pub start_replicas: u32,
    /// Steps a new replica starts before it serves (0: at once).
    pub provision_steps: usize,
    pub horizon: usize,
    pub step_s: f64,
    pub dynamics: LoadDynamics,
    pub reward: ScalingReward,
    /// Latency, seconds, by `[load][ready - min_replicas]`: the model's, and the measured one.
    pub model_latency: Vec<Vec<f64>>,
    pub truth_latency: Vec<Vec<f64>>,
}

/// Where an episode stands.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ScaleState {
    pub t: usize,
    pub load: usize,
    /// The load of the next step, drawn already (hidden from the agent).
    pub next_load: usize,
    pub ready: u32,
    /// `starting[i]`: replicas that serve after `i + 1` more steps.
    pub starting: Vec<u32>,
}

impl ScaleState {
    /// Every pod, ready or starting (what costs).
    pub fn replicas(&self) -> u32 {
        self.ready + self.starting.iter().sum::<u32>()
    }
}

/// A scaling decision in a state: `delta` replicas (the agent's action is -1, 0 or +1;
/// the HPA may move several at once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleChoice {
    pub state: ScaleState,
    pub delta: i32,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub next: ScaleState,
    pub reward: f64,
    pub latency_s: f64,
    pub replicas: u32,
    /// Why the episode ended here, if it did.
    pub ended: Option<Ending>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    HardBound,
    Invalid,
}

/// Which latency table a step reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Model,
    Truth,
}

impl ScalingSpec {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(m));
        if self.min_replicas < 1 || self.max_replicas < self.min_replicas {
            return bad(format!("replicas: need 1 <= min ({}) <= max ({})", self.min_replicas, self.max_replicas));
        }
        if !(self.min_replicas..=self.max_replicas).contains(&self.start_replicas) {
            return bad(format!("start_replicas {} must lie in [{}, {}]", self.start_replicas, self.min_replicas, self.max_replicas));
        }
        if self.horizon == 0 || self.provision_steps > 3 {
            return bad("horizon must be >= 1 and provision_steps at most 3".into());
        }
        let r = &self.reward;
        if !(r.soft_s > 0.0 && r.hard_s > r.soft_s) {
            return bad(format!("latency bounds: need 0 < soft ({}) < hard ({})", r.soft_s, r.hard_s));
        }
        let (n, width) = (self.loads.len(), (self.max_replicas - self.min_replicas + 1) as usize);
        let shaped = |t: &Vec<Vec<f64>>| t.len() == n && t.iter().all(|row| row.len() == width && row.iter().all(|v| v.is_finite()));
        if n == 0 || !shaped(&self.model_latency) || !shaped(&self.truth_latency) {
            return bad("latency tables must have a finite value per load and replica count".into());
        }
        match &self.dynamics {
            LoadDynamics::Markov { transition, start } => {
                let stochastic =
                    |row: &Vec<f64>| row.len() == n && row.iter().all(|p| *p >= 0.0) && (row.iter().sum::<f64>() - 1.0).abs() < 1e-9;
                if transition.len() != n || !transition.iter().all(stochastic) || !stochastic(start) {
                    return bad("load chain: every row of the transition matrix and the start distribution must have one probability per load, summing to 1".into());
                }
            }
            LoadDynamics::Profile { by_step } => {
                if by_step.len() != self.horizon + 1 || by_step.iter().any(|&l| l >= n) {
                    return bad("load profile: one load index per step, horizon + 1 of them".into());
                }
            }
        }
        Ok(())
    }

    /// Whether the load follows a fixed profile (a policy then depends on time).
    pub fn is_profile(&self) -> bool {
        matches!(self.dynamics, LoadDynamics::Profile { .. })
    }

    /// The same problem with the load held where it is: what a stationary policy, served
    /// without a clock, should answer at each load.
    pub fn with_load_held(&self) -> ScalingSpec {
        let n = self.loads.len();
        let transition = (0..n).map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect()).collect();
        let mut start = vec![0.0; n];
        start[0] = 1.0;
        ScalingSpec { dynamics: LoadDynamics::Markov { transition, start }, ..self.clone() }
    }

    /// Probabilities of the next load index from load `l` at step `t`.
    pub fn next_load_distribution(&self, l: usize, t: usize) -> Vec<(usize, f64)> {
        match &self.dynamics {
            LoadDynamics::Markov { transition, .. } => transition[l].iter().copied().enumerate().filter(|(_, p)| *p > 0.0).collect(),
            LoadDynamics::Profile { by_step } => vec![(by_step[(t + 1).min(self.horizon)], 1.0)],
        }
    }

    /// One draw from a distribution over load indices.
    pub fn draw(&self, dist: &[(usize, f64)], rng: &mut ChaCha8Rng) -> usize {
        let u: f64 = rng.random();
        let mut acc = 0.0;
        for &(i, p) in dist {
            acc += p;
            if u < acc {
                return i;
            }
        }
        dist.last().map_or(0, |d| d.0)
    }

    /// The first state of an episode.
    pub fn first_state(&self, rng: &mut ChaCha8Rng) -> ScaleState {
        let load = match &self.dynamics {
            LoadDynamics::Markov { start, .. } => self.draw(&start.iter().copied().enumerate().collect::<Vec<_>>(), rng),
            LoadDynamics::Profile { by_step } => by_step[0],
        };
        let next_load = self.draw(&self.next_load_distribution(load, 0), rng);
        ScaleState { t: 0, load, next_load, ready: self.start_replicas, starting: vec![0; self.provision_steps] }
    }

    pub fn latency(&self, source: Source, load: usize, ready: u32) -> f64 {
        let table = match source {
            Source::Model => &self.model_latency,
            Source::Truth => &self.truth_latency,
        };
        table[load][(ready - self.min_replicas) as usize]
    }

    /// 004's reward of a new state, and whether it breaks the hard bound.
    pub fn reward_of(&self, replicas: u32, latency_s: f64) -> (f64, bool) {
        let r = &self.reward;
        let r1 = (self.max_replicas - replicas) as f64 / self.max_replicas as f64;
        let (r2, broken) = if latency_s > r.hard_s {
            (-1.0, true)
        } else if latency_s > r.soft_s {
            (1.0 - (latency_s - r.soft_s) / (r.hard_s - r.soft_s), false)
        } else {
            (1.0, false)
        };
        (r.replica_weight * r1 + r.latency_weight * r2, broken)
    }

    /// The step from `state` when `delta` replicas are added (negative: removed), with the
    /// next load as drawn in the state; `after` is the load after that (for the next state).
    pub fn transition(&self, state: &ScaleState, delta: i32, after: usize, source: Source) -> Outcome {
        let wanted = state.replicas() as i64 + delta as i64;
        if wanted < self.min_replicas as i64 || wanted > self.max_replicas as i64 {
            let next = ScaleState { t: state.t + 1, load: state.next_load, next_load: after, ..state.clone() };
            // Nothing changes but time: the latency at the next load with the same pods.
            let latency_s = self.latency(source, state.next_load, state.ready);
            return Outcome {
                next,
                reward: self.reward.invalid_reward,
                latency_s,
                replicas: state.replicas(),
                ended: Some(Ending::Invalid),
            };
        }
        let (mut ready, mut starting) = (state.ready, state.starting.clone());
        for _ in 0..(-delta).max(0) {
            match starting.iter_mut().rev().find(|s| **s > 0) {
                Some(s) => *s -= 1,
                None => ready -= 1,
            }
        }
        // Time advances for the pods already starting; a new pod then takes the last slot,
        // `provision_steps` steps from serving.
        if !starting.is_empty() {
            ready += starting.remove(0);
            starting.push(0);
        }
        if delta > 0 {
            match starting.last_mut() {
                Some(newest) => *newest += delta as u32,
                None => ready += delta as u32,
            }
        }
        let next = ScaleState { t: state.t + 1, load: state.next_load, next_load: after, ready, starting };
        let latency_s = self.latency(source, next.load, next.ready);
        let replicas = next.replicas();
        let (reward, broken) = self.reward_of(replicas, latency_s);
        Outcome { next, reward, latency_s, replicas, ended: broken.then_some(Ending::HardBound) }
    }

    /// Every state reachable in an episode at any step (time aside): loads x ready x starting.
    pub fn states_at(&self, t: usize) -> Vec<ScaleState> {
        let mut out = Vec::new();
        for load in 0..self.loads.len() {
            for ready in self.min_replicas..=self.max_replicas {
                for starting in starting_configs(self.provision_steps, self.max_replicas - ready) {
                    out.push(ScaleState { t, load, next_load: 0, ready, starting });
                }
            }
        }
        out
    }

    /// What a policy observes: load, ready and starting replicas, the current latency
    /// (relative to the hard bound, capped at 2) and the time left, each in [0, 2].
    pub fn observe(&self, s: &ScaleState) -> Vec<f32> {
        let max_load = self.loads.last().copied().unwrap_or(1.0);
        let latency = self.latency(Source::Model, s.load, s.ready) / self.reward.hard_s;
        vec![
            (self.loads[s.load] / max_load) as f32,
            s.ready as f32 / self.max_replicas as f32,
            s.starting.iter().sum::<u32>() as f32 / self.max_replicas as f32,
            latency.min(2.0) as f32,
            s.t as f32 / self.horizon as f32,
        ]
    }
}

/// Every way `at_most` or fewer starting replicas spread over `slots` remaining-step slots.
fn starting_configs(slots: usize, at_most: u32) -> Vec<Vec<u32>> {
    if slots == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for first in 0..=at_most {
        for mut rest in starting_configs(slots - 1, at_most - first) {
            rest.insert(0, first);
            out.push(rest);
        }
    }
    out
}

/// The autoscaling problem as an [`Environment`]: one agent, actions scale down, stay, up
/// (004's coding 0, 1, 2).
pub struct ScalingEnv {
    pub spec: ScalingSpec,
    layout: Layout,
}

impl ScalingEnv {
    pub fn new(spec: ScalingSpec) -> Result<ScalingEnv> {
        spec.validate()?;
        let layout = Layout { slots: 1, groups: vec![Group { name: "scale".into(), observation: 5, actions: 3 }], phases: vec![vec![0]] };
        Ok(ScalingEnv { spec, layout })
    }

    fn outcome(&self, c: &ScaleChoice, source: Source) -> Outcome {
        // The load after next does not change this step's reward; any index will do here.
        self.spec.transition(&c.state, c.delta, 0, source)
    }
}

/// 004's action coding: 0 scale down, 1 stay, 2 scale up.
pub fn delta_of(action: usize) -> i32 {
    action as i32 - 1
}

impl Environment for ScalingEnv {
    type State = ScaleState;
    type Candidate = ScaleChoice;

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn reset(&self, rng: &mut ChaCha8Rng) -> ScaleState {
        self.spec.first_state(rng)
    }

    fn start(&self, state: &ScaleState) -> Vec<ScaleChoice> {
        vec![ScaleChoice { state: state.clone(), delta: 0 }]
    }

    fn observe(&self, state: &ScaleState, _candidates: &[ScaleChoice], _group: usize, _slot: usize) -> Vec<f32> {
        self.spec.observe(state)
    }

    fn apply(&self, candidate: &mut ScaleChoice, _group: usize, action: usize) {
        candidate.delta = delta_of(action);
    }

    fn score_model(&self, batch: &mut [Scored<ScaleChoice>]) -> Result<()> {
        for s in batch {
            s.model_reward = self.outcome(&s.candidate, Source::Model).reward;
        }
        Ok(())
    }

    fn score_truth(&self, batch: &mut [Scored<ScaleChoice>], _seed: u64) -> Result<()> {
        for s in batch {
            s.truth_reward = Some(self.outcome(&s.candidate, Source::Truth).reward);
        }
        Ok(())
    }

    fn step(&self, state: &ScaleState, scored: &[Scored<ScaleChoice>], rng: &mut ChaCha8Rng) -> Step<ScaleState> {
        let after = self.spec.draw(&self.spec.next_load_distribution(state.next_load, state.t + 1), rng);
        let o = self.spec.transition(state, scored[0].candidate.delta, after, Source::Model);
        let end = if o.ended.is_some() {
            EpisodeEnd::Terminated
        } else if o.next.t >= self.spec.horizon {
            EpisodeEnd::Truncated
        } else {
            EpisodeEnd::Continues
        };
        Step { next: o.next, end }
    }

    fn alternatives(&self, candidate: &ScaleChoice) -> Vec<ScaleChoice> {
        (-1..=1).map(|delta| ScaleChoice { state: candidate.state.clone(), delta }).collect()
    }

    fn describe(&self, c: &ScaleChoice) -> String {
        format!("load {} req/s, {} ready: {:+}", self.spec.loads[c.state.load], c.state.ready, c.delta)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Two loads, 1-3 replicas: one replica is fast at the low load, too slow at the high one.
    pub(crate) fn spec(provision_steps: usize) -> ScalingSpec {
        ScalingSpec {
            loads: vec![1.0, 4.0],
            min_replicas: 1,
            max_replicas: 3,
            start_replicas: 1,
            provision_steps,
            horizon: 20,
            step_s: 10.0,
            dynamics: LoadDynamics::Markov { transition: vec![vec![0.5, 0.5], vec![0.5, 0.5]], start: vec![1.0, 0.0] },
            reward: ScalingReward { soft_s: 0.35, hard_s: 1.0, replica_weight: 0.3, latency_weight: 0.7, invalid_reward: -1.0 },
            model_latency: vec![vec![0.3, 0.3, 0.3], vec![2.0, 0.5, 0.3]],
            truth_latency: vec![vec![0.3, 0.3, 0.3], vec![2.0, 0.5, 0.3]],
        }
    }

    #[test]
    fn a_new_replica_serves_only_after_the_provisioning_delay() {
        let s = spec(1);
        let state = ScaleState { t: 0, load: 0, next_load: 1, ready: 1, starting: vec![0] };
        // Scale up at low load: at the high load next step the new pod is still starting.
        let o = s.transition(&state, 1, 1, Source::Model);
        assert_eq!((o.next.ready, o.next.starting.clone(), o.replicas), (1, vec![1], 2));
        assert_eq!(o.latency_s, 2.0);
        assert_eq!(o.ended, Some(Ending::HardBound));
        assert!((o.reward - (0.3 * (1.0 / 3.0) - 0.7)).abs() < 1e-12, "{}", o.reward);
        // Without the delay it serves at once.
        let o = spec(0).transition(&ScaleState { starting: vec![], ..state.clone() }, 1, 1, Source::Model);
        assert_eq!((o.next.ready, o.latency_s, o.ended), (2, 0.5, None));
        let soft = 1.0 - (0.5 - 0.35) / (1.0 - 0.35);
        assert!((o.reward - (0.3 / 3.0 + 0.7 * soft)).abs() < 1e-12);
    }

    #[test]
    fn scaling_down_removes_a_starting_pod_first_and_bounds_are_invalid() {
        let s = spec(1);
        let state = ScaleState { t: 3, load: 1, next_load: 1, ready: 2, starting: vec![1] };
        let o = s.transition(&state, -1, 0, Source::Model);
        assert_eq!((o.next.ready, o.next.starting.clone()), (2, vec![0]));
        let top = ScaleState { ready: 3, starting: vec![0], ..state.clone() };
        let o = s.transition(&top, 1, 0, Source::Model);
        assert_eq!((o.ended, o.reward), (Some(Ending::Invalid), -1.0));
        assert_eq!(s.states_at(0).len(), 2 * (3 + 2 + 1), "loads x (ready, starting) pairs within max");
    }

    #[test]
    fn episodes_end_on_a_violation_or_are_cut_at_the_horizon() {
        let env = ScalingEnv::new(spec(0)).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut state = env.reset(&mut rng);
        let mut ends = Vec::new();
        for _ in 0..200 {
            let mut c = env.start(&state);
            env.apply(&mut c[0], 0, 1);
            let step = env.step(&state, &[Scored::new(c[0].clone())], &mut rng);
            ends.push(step.end);
            state = if step.end == EpisodeEnd::Continues { step.next } else { env.reset(&mut rng) };
        }
        assert!(ends.contains(&EpisodeEnd::Terminated), "one replica at the high load breaks the hard bound");
        let env = ScalingEnv::new(ScalingSpec { start_replicas: 3, ..spec(0) }).unwrap();
        let mut state = env.reset(&mut rng);
        let mut steps = 0;
        loop {
            let mut c = env.start(&state);
            env.apply(&mut c[0], 0, 1);
            steps += 1;
            let step = env.step(&state, &[Scored::new(c[0].clone())], &mut rng);
            if step.end != EpisodeEnd::Continues {
                assert_eq!((step.end, steps), (EpisodeEnd::Truncated, 20));
                break;
            }
            state = step.next;
        }
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(ScalingSpec { start_replicas: 5, ..spec(1) }.validate().is_err());
        let mut s = spec(1);
        s.reward.hard_s = 0.2;
        assert!(s.validate().unwrap_err().to_string().contains("soft"));
        s = spec(1);
        s.dynamics = LoadDynamics::Markov { transition: vec![vec![1.0, 0.5], vec![0.5, 0.5]], start: vec![1.0, 0.0] };
        assert!(s.validate().is_err());
    }
}

//! The defender's problem (issue 15, seed 001): which DestinationRule keeps a service up
//! under the loads it will see. A contextual bandit on the emulator itself: each state draws
//! a Fortio load from the configured distribution (and an emulator seed); one agent per
//! searched rule field picks that field's value, all in one phase (the paper's joint
//! `thread&call` layout) or one field after another, each seeing the earlier choices
//! (`sequential`, the paper's `thread-call`); the emulator runs the load test under the
//! joint rule and the objective scores it.
//!
//! The agents train on the emulator directly (a load test costs about 0.1 ms, and the
//! S1-S5 simulators never saw the new knobs): the "model" reward of the training loop is
//! one emulator run with the state's seed, so the agents see the run-to-run noise a real
//! cluster would show them. The yardsticks (`crate::experiment::defend`) score on fresh
//! runs.
//!
//! In `robust` mode there is one state: the agents choose one rule for every load, and its
//! reward is its worst load's objective (one run per load).

pub mod grid;
pub mod objective;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Environment, EpisodeEnd, Group, Layout, Scored, Step};
use crate::emulator::{run_load_test, Scenario};
use crate::error::Result;
use crate::rules::{Load, TrafficRules};
use grid::RuleGrid;
use objective::{DefendObjective, Outcome};

/// Per load, or one rule for all loads scored by its worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    PerLoad,
    Robust,
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::PerLoad => "per_load",
            Mode::Robust => "robust",
        }
    }
}

/// Everything that defines the problem.
#[derive(Debug, Clone)]
pub struct DefendSpec {
    pub grid: RuleGrid,
    /// The loads, and their probabilities (summing to 1).
    pub loads: Vec<Load>,
    pub weights: Vec<f64>,
    pub scenario: Scenario,
    pub objective: DefendObjective,
    pub mode: Mode,
    pub sequential: bool,
}

use crate::seeding::mix;

impl DefendSpec {
    /// The objective of `rules` under load `load` in the run seeded `seed`.
    pub fn outcome(&self, rules: &TrafficRules, load: usize, seed: u64) -> Outcome {
        self.objective.outcome(&run_load_test(rules, &self.loads[load], &self.scenario, seed))
    }

    /// The robust objective: the worst load's, one run per load (seeds derived from `seed`).
    pub fn worst_outcome(&self, rules: &TrafficRules, seed: u64) -> Outcome {
        let all: Vec<Outcome> = (0..self.loads.len()).map(|l| self.outcome(rules, l, mix(seed, l as u64))).collect();
        *all.iter().min_by(|a, b| a.value.total_cmp(&b.value)).expect("at least one load")
    }
}

pub struct DefendEnv {
    spec: DefendSpec,
    layout: Layout,
    /// The searched fields, one agent group each.
    searched: Vec<usize>,
    /// log2 of the largest threads and calls, to scale observations into (0, 1].
    log_max: (f64, f64),
}

/// A load (index into the spec's loads; 0 in robust mode) and the seed of its load test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadState {
    pub load: usize,
    pub seed: u64,
}

/// A rule being built: one value index per grid field (`UNSET` before its agent acted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleChoice {
    pub load: usize,
    pub seed: u64,
    pub choice: [usize; 12],
}

const UNSET: usize = usize::MAX;

impl DefendEnv {
    pub fn new(spec: DefendSpec) -> DefendEnv {
        let searched = spec.grid.searched();
        let sizes = spec.grid.sizes();
        let load_inputs = if spec.mode == Mode::Robust { 1 } else { 2 };
        let observation = load_inputs + if spec.sequential { searched.len() } else { 0 };
        let groups = searched
            .iter()
            .map(|&f| Group { name: RuleGrid::field_names()[f].to_string(), observation, actions: sizes[f] })
            .collect::<Vec<_>>();
        let phases = if spec.sequential { (0..groups.len()).map(|g| vec![g]).collect() } else { vec![(0..groups.len()).collect()] };
        let log_max = spec
            .loads
            .iter()
            .fold((1f64, 1f64), |(t, c), l| (t.max(f64::from(l.threads).log2() + 1.0), c.max(f64::from(l.calls).log2() + 1.0)));
        DefendEnv { spec, layout: Layout { slots: 1, groups, phases }, searched, log_max }
    }

    pub fn spec(&self) -> &DefendSpec {
        &self.spec
    }

    /// The grid fields the agents choose, in group order (a point of the search space).
    pub fn searched(&self) -> &[usize] {
        &self.searched
    }

    /// What every agent sees of a load before anyone acts (in robust mode, a constant).
    pub fn load_observation(&self, load: usize) -> Vec<f32> {
        match self.spec.mode {
            Mode::Robust => vec![1.0],
            Mode::PerLoad => {
                let l = self.spec.loads[load];
                vec![
                    ((f64::from(l.threads).log2() + 1.0) / self.log_max.0) as f32,
                    ((f64::from(l.calls).log2() + 1.0) / self.log_max.1) as f32,
                ]
            }
        }
    }

    /// The greedy rule of a learner at load `load`, phase by phase (a later phase sees the
    /// earlier choices).
    pub fn greedy_choice(&self, learner: &dyn crate::agent::Learner, load: usize) -> Result<[usize; 12]> {
        let state = LoadState { load, seed: 0 };
        let mut c = self.start(&state).remove(0);
        for phase in &self.layout.phases {
            let actions: Vec<usize> =
                phase.iter().map(|&g| learner.act_greedy(g, &[self.observe(&state, &[c], g, 0)]).map(|a| a[0])).collect::<Result<_>>()?;
            for (&g, a) in phase.iter().zip(actions) {
                self.apply(&mut c, g, a);
            }
        }
        Ok(c.choice)
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> LoadState {
        let load = match self.spec.mode {
            Mode::Robust => 0,
            Mode::PerLoad => super::draw_weighted(&self.spec.weights, rng),
        };
        LoadState { load, seed: rng.random() }
    }
}

impl Environment for DefendEnv {
    type State = LoadState;
    type Candidate = RuleChoice;

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn reset(&self, rng: &mut ChaCha8Rng) -> LoadState {
        self.draw(rng)
    }

    fn start(&self, state: &LoadState) -> Vec<RuleChoice> {
        let mut choice = [0; 12];
        for &f in &self.searched {
            choice[f] = UNSET;
        }
        vec![RuleChoice { load: state.load, seed: state.seed, choice }]
    }

    fn observe(&self, state: &LoadState, candidates: &[RuleChoice], _group: usize, slot: usize) -> Vec<f32> {
        let mut obs = self.load_observation(state.load);
        if self.spec.sequential {
            let sizes = self.spec.grid.sizes();
            let c = &candidates[slot].choice;
            obs.extend(self.searched.iter().map(|&f| if c[f] == UNSET { 0.0 } else { (c[f] + 1) as f32 / sizes[f] as f32 }));
        }
        obs
    }

    fn apply(&self, candidate: &mut RuleChoice, group: usize, action: usize) {
        candidate.choice[self.searched[group]] = action;
    }

    fn score_model(&self, batch: &mut [Scored<RuleChoice>]) -> Result<()> {
        for s in batch {
            let rules = self.spec.grid.rule(&s.candidate.choice);
            s.model_reward = match self.spec.mode {
                Mode::PerLoad => self.spec.outcome(&rules, s.candidate.load, s.candidate.seed).value,
                Mode::Robust => self.spec.worst_outcome(&rules, s.candidate.seed).value,
            };
        }
        Ok(())
    }

    /// A second, independent run with seeds derived from `seed` (the yardsticks score on
    /// many fresh runs; see `crate::experiment::defend`).
    fn score_truth(&self, batch: &mut [Scored<RuleChoice>], seed: u64) -> Result<()> {
        for s in batch {
            let rules = self.spec.grid.rule(&s.candidate.choice);
            let run_seed = mix(seed, s.candidate.seed);
            s.truth_reward = Some(match self.spec.mode {
                Mode::PerLoad => self.spec.outcome(&rules, s.candidate.load, run_seed).value,
                Mode::Robust => self.spec.worst_outcome(&rules, run_seed).value,
            });
        }
        Ok(())
    }

    fn learning_rewards(&self, scored: &[Scored<RuleChoice>]) -> Vec<f64> {
        scored.iter().map(|s| s.model_reward / self.spec.objective.reward_unit).collect()
    }

    fn step(&self, _state: &LoadState, _scored: &[Scored<RuleChoice>], rng: &mut ChaCha8Rng) -> Step<LoadState> {
        Step { next: self.draw(rng), end: EpisodeEnd::Continues }
    }

    fn alternatives(&self, candidate: &RuleChoice) -> Vec<RuleChoice> {
        (0..self.spec.grid.joint_rules()).map(|i| RuleChoice { choice: self.spec.grid.choice(i), ..*candidate }).collect()
    }

    /// The searched fields with their values' labels; the load balancer has no order.
    fn search_space(&self) -> crate::search::SearchSpace {
        use crate::search::{Field, FieldKind, SearchSpace};
        let (names, sizes) = (RuleGrid::field_names(), self.spec.grid.sizes());
        SearchSpace::new(
            self.searched
                .iter()
                .map(|&f| {
                    let kind = if names[f] == "load_balancer" { FieldKind::Categorical } else { FieldKind::Ordered };
                    Field::new(names[f], kind, (0..sizes[f]).map(|i| self.spec.grid.value_label(f, i)).collect())
                })
                .collect(),
        )
    }

    fn describe(&self, candidate: &RuleChoice) -> String {
        let l = self.spec.loads[candidate.load];
        let rule = self.spec.grid.describe(&candidate.choice);
        match self.spec.mode {
            Mode::PerLoad => format!("threads {}, calls {}: {rule}", l.threads, l.calls),
            Mode::Robust => rule,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn tiny_spec(mode: Mode, sequential: bool) -> DefendSpec {
        let grid: RuleGrid = toml::from_str(
            "max_connections = [1, \"unlimited\"]\nmax_pending_requests = [\"unlimited\"]\nhttp2_max_requests = [\"unlimited\"]\n\
             consecutive_errors = [\"unlimited\"]\nmax_ejection_percent = [10]\nejection_time_s = [30]\nretry_attempts = [0, 2]\n\
             load_balancer = [\"ROUND_ROBIN\"]",
        )
        .unwrap();
        let scenario = Scenario { replicas: 2, ..Scenario::default() };
        DefendSpec {
            grid,
            loads: vec![Load { threads: 2, calls: 100 }, Load { threads: 16, calls: 200 }],
            weights: vec![0.5, 0.5],
            scenario,
            objective: DefendObjective::default(),
            mode,
            sequential,
        }
    }

    #[test]
    fn one_agent_per_searched_field_and_the_rule_they_build_is_scored_on_the_emulator() {
        let env = DefendEnv::new(tiny_spec(Mode::PerLoad, true));
        let layout = env.layout();
        assert_eq!(
            layout.groups.iter().map(|g| (g.name.as_str(), g.actions)).collect::<Vec<_>>(),
            [("max_connections", 2), ("retry_attempts", 2)]
        );
        assert_eq!(layout.phases, vec![vec![0], vec![1]]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let state = env.reset(&mut rng);
        let mut c = env.start(&state).remove(0);
        assert_eq!(env.observe(&state, &[c], 1, 0)[2..], [0.0, 0.0]);
        env.apply(&mut c, 0, 1);
        env.apply(&mut c, 1, 1);
        assert_eq!(env.observe(&state, &[c], 1, 0)[2..], [1.0, 1.0]);
        let rules = env.spec().grid.rule(&c.choice);
        assert_eq!((rules.max_connections, rules.retries.attempts), (u32::MAX, 2));
        let mut scored = vec![Scored::new(c)];
        env.score_model(&mut scored).unwrap();
        let again = env.spec().outcome(&rules, state.load, state.seed).value;
        assert_eq!(scored[0].model_reward, again, "the state's seed fixes the run");
        assert!(scored[0].model_reward > 0.0);
        assert_eq!(env.alternatives(&c).len(), 4);
        let space = env.search_space();
        assert_eq!(space.points(), 4);
        assert_eq!(space.fields[0].labels, ["1", "unlimited"]);
        let start = env.start(&state).remove(0);
        assert_eq!(env.joint_candidate(&start, &[1, 1]), c, "a point builds what the agents' actions build");
    }

    #[test]
    fn robust_mode_scores_the_worst_load() {
        let spec = tiny_spec(Mode::Robust, false);
        let env = DefendEnv::new(spec.clone());
        assert_eq!(env.layout().groups[0].observation, 1);
        let rules = spec.grid.rule(&[0; 12]);
        let worst = spec.worst_outcome(&rules, 9).value;
        let each: Vec<f64> = (0..2).map(|l| spec.outcome(&rules, l, mix(9, l as u64)).value).collect();
        assert_eq!(worst, each.iter().copied().fold(f64::INFINITY, f64::min));
    }
}

//! The mesh defender as an [`Environment`]: one agent per destination and rule field, in
//! one of the paper's three layouts, each choosing its field's value after observing the
//! state's probe ([`super::probe`]). A contextual bandit over the evaluation states: the
//! agents' choices together make one rule set, scored by one run of the state.
//!
//! An agent's action is one field's value, not the product of a destination's fields: the
//! product has 55 296 values per destination on the default grid, more outputs than any
//! budget has runs to learn them from. The fields interact (a retry needs a per-try timeout
//! shorter than the route's); the sequential layout is where a choice sees the choices made
//! before it.
//!
//! - [`AgentLayout::Independent`]: every (destination, field) agent its own network, all
//!   acting at once on the probe;
//! - [`AgentLayout::Sequential`]: the same agents, destination after destination from the
//!   entry down the call graph, each destination's agents seeing the choices above them;
//! - [`AgentLayout::SharedTrunk`]: per field, one network whose trunk every destination
//!   shares, with a private head per destination (the paper's SNet and PNet: DQN's role per
//!   group; PPO keeps an actor-critic per agent).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::grid::FIELDS;
use super::spec::MeshDefendSpec;
use super::state::MeshState;
use crate::env::{Environment, EpisodeEnd, Group, Layout, Scored, Step};
use crate::error::Result;
use crate::seeding::mix;

/// How the destinations' agents are arranged (config `layouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentLayout {
    Independent,
    Sequential,
    SharedTrunk,
}

impl AgentLayout {
    pub fn name(&self) -> &'static str {
        match self {
            AgentLayout::Independent => "independent",
            AgentLayout::Sequential => "sequential",
            AgentLayout::SharedTrunk => "shared_trunk",
        }
    }

    pub const ALL: [AgentLayout; 3] = [AgentLayout::Independent, AgentLayout::Sequential, AgentLayout::SharedTrunk];
}

/// A state: one of the evaluation states, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateIndex {
    pub state: usize,
}

/// What one slot's agents built: the joint point, the fields set so far marked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshChoice {
    pub state: usize,
    pub slot: usize,
    pub point: Vec<usize>,
    pub set: Vec<bool>,
}

pub struct MeshDefendEnv<'s> {
    spec: &'s MeshDefendSpec,
    states: &'s [MeshState],
    /// Each state's probe features.
    observations: Vec<Vec<f32>>,
    arrangement: AgentLayout,
    layout: Layout,
    /// Field index in the joint point of (group, slot).
    target: Vec<Vec<usize>>,
    /// Labels per joint field, for the observation's scale.
    sizes: Vec<usize>,
}

impl<'s> MeshDefendEnv<'s> {
    /// `observations[s]` is state s's probe as features.
    pub fn new(spec: &'s MeshDefendSpec, states: &'s [MeshState], observations: Vec<Vec<f32>>, arrangement: AgentLayout) -> Self {
        let destinations = super::grid::MeshRuleGrid::destinations(&spec.topology);
        let sizes = spec.grid.space(&spec.topology).sizes();
        let fields = FIELDS.len();
        let probe = observations.first().map_or(0, Vec::len);
        let (layout, target) = match arrangement {
            AgentLayout::SharedTrunk => {
                let groups = (0..fields).map(|f| Group { name: FIELDS[f].into(), observation: probe, actions: sizes[f] }).collect();
                let target = (0..fields).map(|f| (0..destinations.len()).map(|k| k * fields + f).collect()).collect();
                (Layout { slots: destinations.len(), groups, phases: vec![(0..fields).collect()] }, target)
            }
            AgentLayout::Independent | AgentLayout::Sequential => {
                let groups = (0..sizes.len())
                    .map(|j| Group {
                        name: format!("{}.{}", spec.topology.services[destinations[j / fields]].name, FIELDS[j % fields]),
                        observation: probe + sizes.len(),
                        actions: sizes[j],
                    })
                    .collect();
                let phases = if arrangement == AgentLayout::Independent {
                    vec![(0..sizes.len()).collect()]
                } else {
                    call_order(spec, &destinations).into_iter().map(|k| (k * fields..(k + 1) * fields).collect()).collect()
                };
                (Layout { slots: 1, groups, phases }, (0..sizes.len()).map(|j| vec![j]).collect())
            }
        };
        MeshDefendEnv { spec, states, observations, arrangement, layout, target, sizes }
    }

    pub fn arrangement(&self) -> AgentLayout {
        self.arrangement
    }
}

/// The destinations (indices into `destinations`) in breadth-first order from the entry:
/// callers before the services they call; any not reached, last.
fn call_order(spec: &MeshDefendSpec, destinations: &[usize]) -> Vec<usize> {
    let topology = &spec.topology;
    let mut seen = vec![false; topology.services.len()];
    let mut queue = std::collections::VecDeque::from([topology.entry]);
    seen[topology.entry] = true;
    let mut order = Vec::new();
    while let Some(s) = queue.pop_front() {
        for c in topology.callees(s) {
            if !seen[c] {
                seen[c] = true;
                order.extend(destinations.iter().position(|&d| d == c));
                queue.push_back(c);
            }
        }
    }
    let unreached: Vec<usize> = (0..destinations.len()).filter(|k| !order.contains(k)).collect();
    order.extend(unreached);
    order
}

impl Environment for MeshDefendEnv<'_> {
    type State = StateIndex;
    type Candidate = MeshChoice;

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn reset(&self, rng: &mut ChaCha8Rng) -> StateIndex {
        StateIndex { state: rng.random_range(0..self.states.len()) }
    }

    fn start(&self, state: &StateIndex) -> Vec<MeshChoice> {
        let n = self.sizes.len();
        (0..self.layout.slots).map(|slot| MeshChoice { state: state.state, slot, point: vec![0; n], set: vec![false; n] }).collect()
    }

    /// The probe's features; with one slot, each joint field's choice so far too (its value
    /// index scaled into (0, 1], 0 while unset).
    fn observe(&self, state: &StateIndex, candidates: &[MeshChoice], _group: usize, _slot: usize) -> Vec<f32> {
        let mut obs = self.observations[state.state].clone();
        if self.layout.slots == 1 {
            let c = &candidates[0];
            obs.extend((0..self.sizes.len()).map(|j| if c.set[j] { (c.point[j] + 1) as f32 / self.sizes[j] as f32 } else { 0.0 }));
        }
        obs
    }

    fn apply(&self, candidate: &mut MeshChoice, group: usize, action: usize) {
        let j = self.target[group][candidate.slot];
        candidate.point[j] = action;
        candidate.set[j] = true;
    }

    /// The emulator is the model here (a run costs a tenth of a second): one run of the
    /// joint choice, seeded by its state.
    fn score_model(&self, batch: &mut [Scored<MeshChoice>]) -> Result<()> {
        self.score_truth(batch, 0)
    }

    fn score_truth(&self, batch: &mut [Scored<MeshChoice>], seed: u64) -> Result<()> {
        let candidates: Vec<MeshChoice> = batch.iter().map(|s| s.candidate.clone()).collect();
        let joint = self.joint(&candidates).expect("the slots make one choice");
        let state = &self.states[joint.state];
        let value = self.spec.outcome(&self.spec.rules(&joint.point), state, mix(seed, joint.state as u64)).value;
        for s in batch.iter_mut() {
            s.model_reward = value;
            s.truth_reward = Some(value);
        }
        Ok(())
    }

    fn step(&self, _state: &StateIndex, _scored: &[Scored<MeshChoice>], rng: &mut ChaCha8Rng) -> Step<StateIndex> {
        Step { next: self.reset(rng), end: EpisodeEnd::Continues }
    }

    /// The joint space is beyond listing (10^44 rule sets on the shop); the search methods
    /// reach it through [`Environment::search_space`].
    fn alternatives(&self, _candidate: &MeshChoice) -> Vec<MeshChoice> {
        Vec::new()
    }

    fn describe(&self, candidate: &MeshChoice) -> String {
        let labels = self.spec.grid.space(&self.spec.topology);
        labels
            .fields
            .iter()
            .zip(&candidate.point)
            .filter(|(_, &v)| v > 0)
            .map(|(f, &v)| format!("{} {}", f.name, f.labels[v]))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn search_space(&self) -> crate::search::SearchSpace {
        self.spec.grid.space(&self.spec.topology)
    }

    fn joint_candidate(&self, start: &MeshChoice, point: &[usize]) -> MeshChoice {
        MeshChoice { point: point.to_vec(), set: vec![true; point.len()], ..start.clone() }
    }

    /// Every slot's fields in one point.
    fn joint(&self, candidates: &[MeshChoice]) -> Option<MeshChoice> {
        let mut joint = candidates.first()?.clone();
        for c in &candidates[1..] {
            for j in 0..joint.point.len() {
                if c.set[j] {
                    joint.point[j] = c.point[j];
                    joint.set[j] = true;
                }
            }
        }
        joint.slot = 0;
        Some(joint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::Scenario;
    use crate::mesh::rules::IstioRelease;

    fn spec() -> MeshDefendSpec {
        MeshDefendSpec {
            topology: super::super::topology("shop11-capacity.yaml"),
            release: IstioRelease::parse("1.30").unwrap(),
            scenario: Scenario::default(),
            grid: Default::default(),
            states: Default::default(),
            objective: Default::default(),
        }
    }

    /// Every layout sets every field of the joint point exactly once, and the sequential
    /// one lets callers choose before the services they call.
    #[test]
    fn every_layout_builds_the_whole_joint_point_once() {
        let spec = spec();
        let states = spec.draw_states(2, 1);
        let fields = spec.grid.space(&spec.topology).fields.len();
        for arrangement in AgentLayout::ALL {
            let env = MeshDefendEnv::new(&spec, &states, vec![vec![0.5; 6]; 2], arrangement);
            let layout = env.layout();
            assert_eq!(layout.groups.len() * layout.slots, fields, "{arrangement:?}");
            let mut candidates = env.start(&StateIndex { state: 1 });
            for phase in &layout.phases {
                for &g in phase {
                    for c in candidates.iter_mut() {
                        env.apply(c, g, layout.groups[g].actions - 1);
                    }
                }
            }
            let joint = env.joint(&candidates).unwrap();
            assert!(joint.set.iter().all(|&s| s), "{arrangement:?}");
            assert_eq!(joint.point, spec.grid.space(&spec.topology).sizes().iter().map(|n| n - 1).collect::<Vec<_>>());
            assert_eq!(joint.state, 1);
        }
        let sequential = MeshDefendEnv::new(&spec, &states, vec![vec![0.5; 6]; 2], AgentLayout::Sequential);
        let service_of = |g: usize| sequential.layout().groups[g].name.split('.').next().unwrap().to_string();
        let first = service_of(sequential.layout().phases[0][0]);
        let last = service_of(*sequential.layout().phases.last().unwrap().last().unwrap());
        assert_eq!(sequential.layout().phases.len(), 10);
        // The frontend's callees choose first; redis-cart, called only by the cart, after them.
        let entry_calls: Vec<&str> = spec.topology.callees(spec.topology.entry).map(|c| spec.topology.services[c].name.as_str()).collect();
        assert!(entry_calls.contains(&first.as_str()) && !entry_calls.contains(&last.as_str()), "{first} .. {last}");
        let phase_of = |name: &str| sequential.layout().phases.iter().position(|p| service_of(p[0]) == name).unwrap();
        assert!(phase_of("cartservice") < phase_of("redis-cart"));
        // A later phase observes an earlier one's choice.
        let mut c = sequential.start(&StateIndex { state: 0 });
        let before = sequential.observe(&StateIndex { state: 0 }, &c, 9, 0);
        sequential.apply(&mut c[0], 0, 2);
        assert_ne!(before, sequential.observe(&StateIndex { state: 0 }, &c, 9, 0));
    }
}

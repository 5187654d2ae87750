//! Everything that defines the mesh defender's problem in one place: the topology, the Istio
//! release whose defaults apply where a field is left alone, the emulator's scenario, the
//! grid, how states are drawn and the objective; with the evaluation states drawn from it.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::grid::MeshRuleGrid;
use super::objective::{evaluate, MeshObjective, Outcome};
use super::state::{MeshState, StatesConfig};
use crate::emulator::Scenario;
use crate::mesh::rules::{IstioRelease, MeshRules};
use crate::mesh::topology::Topology;

#[derive(Debug, Clone)]
pub struct MeshDefendSpec {
    pub topology: Topology,
    pub release: IstioRelease,
    pub scenario: Scenario,
    pub grid: MeshRuleGrid,
    pub states: StatesConfig,
    pub objective: MeshObjective,
}

impl MeshDefendSpec {
    /// The mesh's rules at a point of the joint space.
    pub fn rules(&self, point: &[usize]) -> MeshRules {
        self.grid.rules(&self.topology, self.release, point)
    }

    /// Every destination at the release's defaults.
    pub fn defaults(&self) -> MeshRules {
        MeshRules::defaults(&self.topology, self.release)
    }

    /// One run of `state` under `rules`, seeded `seed`, scored.
    pub fn outcome(&self, rules: &MeshRules, state: &MeshState, seed: u64) -> Outcome {
        evaluate(&self.topology, rules, &self.scenario, state, &self.states, &self.objective, seed).0
    }

    /// [`MeshDefendSpec::outcome`] with the run itself.
    pub fn run(&self, rules: &MeshRules, state: &MeshState, seed: u64) -> (Outcome, crate::mesh::result::MeshResult) {
        evaluate(&self.topology, rules, &self.scenario, state, &self.states, &self.objective, seed)
    }

    /// `count` states drawn from the seed: the same ones for every method.
    pub fn draw_states(&self, count: usize, seed: u64) -> Vec<MeshState> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count).map(|_| self.states.draw(&self.topology, &mut rng)).collect()
    }

    /// A one-line description of a state, for tables: "400 qps, spike x4 for 20 s,
    /// cartservice/0 failing 50 %".
    pub fn describe(&self, state: &MeshState) -> String {
        let mut text = format!("{} qps", state.entry_qps);
        match state.spike {
            Some((m, d)) => text += &format!(", spike x{m} for {d} s"),
            None => text += ", no spike",
        }
        if let Some(s) = state.sick {
            let name = &self.topology.services[s.service].name;
            if s.fail_share > 0.0 {
                text += &format!(", {name}/{} failing {:.0} %", s.replica, s.fail_share * 100.0);
            } else {
                text += &format!(", {name}/{} slowed x{}", s.replica, s.slowdown);
            }
        }
        text
    }
}

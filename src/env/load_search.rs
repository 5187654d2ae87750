//! The load search (the attacker, SFR2L): the agents choose the Fortio load (threads,
//! calls) that maximises 503s per second under a trace row's traffic rules; the simulator
//! scores their choice, the emulator checks it (protocol.md sections 4-5).
//!
//! Here: the per-dataset action grids, the agent configurations of the paper's Table 3 and
//! Table 5, the reward qps x failure_rate, and [`LoadSearch`], the [`Environment`].

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Environment, EpisodeEnd, Group, Layout, Scored, Step};
use crate::data::TraceTable;
use crate::emulator::{run_load_test, Scenario};
use crate::error::{Error, Result};
use crate::rules::{Load, TrafficRules};
use crate::simulator::ServiceModel;

/// The load settings an agent chooses from (protocol.md section 4, paper Table 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionGrid {
    pub calls: Vec<u32>,
    pub threads: Vec<u32>,
}

impl ActionGrid {
    /// The protocol's grid of a dataset S1..S5.
    pub fn for_dataset(name: &str) -> Option<ActionGrid> {
        let step = |lo: u32, hi: u32, by: u32| (lo..=hi).step_by(by as usize).collect::<Vec<u32>>();
        let (calls, threads) = match name {
            "S1" => (step(435, 450, 1), step(1, 5, 1)),
            "S2" => (step(100, 700, 100), step(3, 7, 1)),
            "S3" => (step(50, 500, 50), step(10, 16, 1)),
            "S4" => (step(250, 600, 50), step(12, 18, 1)),
            "S5" => (step(1000, 2000, 100), step(16, 20, 1)),
            _ => return None,
        };
        Some(ActionGrid { calls, threads })
    }

    pub fn validate(&self) -> Result<()> {
        if self.calls.is_empty() || self.threads.is_empty() || self.calls.contains(&0) || self.threads.contains(&0) {
            return Err(Error::config("an action grid needs at least one calls and one threads value, all >= 1"));
        }
        Ok(())
    }

    pub fn len(&self, role: RoleKind) -> usize {
        match role {
            RoleKind::Thread => self.threads.len(),
            RoleKind::Call => self.calls.len(),
        }
    }
}

/// Which load setting an agent chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RoleKind {
    Thread,
    Call,
}

/// How the agents of one service cooperate (paper Table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// One call agent; threads come from the state's row.
    Call,
    /// One thread agent; calls come from the state's row.
    Thread,
    /// Thread and call agents in parallel, both seeing the traffic rules only (Int.).
    ThreadAndCall,
    /// The thread agent first; the call agent sees its choice (Det.).
    ThreadThenCall,
    /// The call agent first; the thread agent sees its choice (Det.).
    CallThenThread,
}

/// One row of Table 5: a mode and a number of services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Configuration {
    pub mode: Mode,
    pub services: usize,
}

impl Configuration {
    /// Parses the paper's names: `call`, `thread`, `thread&call`, `thread-call`,
    /// `call-thread`, each optionally with `*N` services (`call*5`).
    pub fn parse(name: &str) -> Result<Configuration> {
        let (base, services) = match name.split_once('*') {
            Some((b, n)) => (b, n.parse::<usize>().map_err(|_| Error::config(format!("configuration {name:?}: bad service count")))?),
            None => (name, 1),
        };
        let mode = match base {
            "call" => Mode::Call,
            "thread" => Mode::Thread,
            "thread&call" => Mode::ThreadAndCall,
            "thread-call" => Mode::ThreadThenCall,
            "call-thread" => Mode::CallThenThread,
            _ => {
                return Err(Error::config(format!(
                    "unknown configuration {name:?}; expected call, thread, thread&call, thread-call or call-thread, optionally *N"
                )))
            }
        };
        if services == 0 {
            return Err(Error::config(format!("configuration {name:?}: at least one service")));
        }
        Ok(Configuration { mode, services })
    }

    pub fn name(&self) -> String {
        let base = match self.mode {
            Mode::Call => "call",
            Mode::Thread => "thread",
            Mode::ThreadAndCall => "thread&call",
            Mode::ThreadThenCall => "thread-call",
            Mode::CallThenThread => "call-thread",
        };
        if self.services == 1 {
            base.to_string()
        } else {
            format!("{base}*{}", self.services)
        }
    }

    /// A file-name-safe form of the name (`thread&call*5` -> `thread_and_call_x5`).
    pub fn slug(&self) -> String {
        self.name().replace('&', "_and_").replace('*', "_x")
    }

    /// The phases of one interaction: agents of one phase act at once, a later phase sees
    /// the earlier phases' choices.
    pub fn phases(&self) -> Vec<Vec<RoleKind>> {
        use RoleKind::*;
        match self.mode {
            Mode::Call => vec![vec![Call]],
            Mode::Thread => vec![vec![Thread]],
            Mode::ThreadAndCall => vec![vec![Thread, Call]],
            Mode::ThreadThenCall => vec![vec![Thread], vec![Call]],
            Mode::CallThenThread => vec![vec![Call], vec![Thread]],
        }
    }

    pub fn roles(&self) -> Vec<RoleKind> {
        self.phases().into_iter().flatten().collect()
    }

    /// What a role's agent sees besides the seven rules: the other load setting, taken
    /// from the state's row (single agents) or from the earlier agent (Det.), or nothing.
    pub fn sees_other_setting(&self, role: RoleKind) -> bool {
        match self.mode {
            Mode::Call | Mode::Thread => true,
            Mode::ThreadAndCall => false,
            Mode::ThreadThenCall => role == RoleKind::Call,
            Mode::CallThenThread => role == RoleKind::Thread,
        }
    }

    /// Inputs of a role's network: 7 rules, the other setting if seen, a one-hot service
    /// index when there are several services.
    pub fn state_dim(&self, role: RoleKind) -> usize {
        7 + usize::from(self.sees_other_setting(role)) + if self.services > 1 { self.services } else { 0 }
    }
}

/// The paper's reward: 503s per second.
pub fn reward(qps: f64, failure_rate: f64) -> f64 {
    qps * failure_rate
}

/// Service n's reward in the five-service configurations: its own plus beta times the mean.
pub fn shared_rewards(own: &[f64], beta: f64) -> Vec<f64> {
    let mean = own.iter().sum::<f64>() / own.len().max(1) as f64;
    own.iter().map(|r| r + beta * mean).collect()
}

/// What an interaction of the load search builds: a trace row's rules (the state of one
/// service) and the load run against them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadChoice {
    /// The service (slot) within the state: 0 for single-service configurations.
    pub service: usize,
    /// The trace row whose seven traffic rules are the state (0-based).
    pub row: usize,
    pub threads: u32,
    pub calls: u32,
}

/// A load choice with its 503/s on the simulator (`sim_reward`) and, once validated, on the
/// emulator (`emu_reward`): the records of cell files, exports and validation.
pub type Pair = Scored<LoadChoice>;

/// One dataset's world: its trace (states are drawn from the training rows), the simulator
/// trained on it, the action grid and the emulator scenario that generated it.
pub struct LoadSearchData {
    pub name: String,
    pub table: TraceTable,
    pub train_rows: Vec<usize>,
    pub model: ServiceModel,
    pub grid: ActionGrid,
    pub scenario: Scenario,
    /// Mean 503/s over the training rows: rewards are divided by it before the networks see them.
    pub reward_scale: f64,
}

impl LoadSearchData {
    pub fn new(
        name: String,
        table: TraceTable,
        train_rows: Vec<usize>,
        model: ServiceModel,
        grid: ActionGrid,
        scenario: Scenario,
    ) -> LoadSearchData {
        let rewards: Vec<f64> = train_rows.iter().map(|&i| reward(table.target_row(i)[0], table.target_row(i)[1])).collect();
        let reward_scale = (rewards.iter().sum::<f64>() / rewards.len().max(1) as f64).max(1e-9);
        LoadSearchData { name, table, train_rows, model, grid, scenario, reward_scale }
    }

    /// The traffic rules of a trace row.
    pub fn rules(&self, row: usize) -> TrafficRules {
        TrafficRules::from_features(self.table.feature_row(row))
    }

    /// The load a trace row ran (threads, calls).
    fn row_load(&self, row: usize) -> (u32, u32) {
        let x = self.table.feature_row(row);
        (x[7] as u32, x[8] as u32)
    }
}

/// The load search on one dataset in one agent configuration.
pub struct LoadSearch<'a> {
    data: &'a LoadSearchData,
    conf: Configuration,
    /// Weight of the mean reward in each service's reward (`*N` configurations).
    beta: f64,
    layout: Layout,
    /// The setting each group chooses, by group index.
    roles: Vec<RoleKind>,
}

impl<'a> LoadSearch<'a> {
    pub fn new(data: &'a LoadSearchData, conf: Configuration, beta: f64) -> LoadSearch<'a> {
        let roles = conf.roles();
        let groups = roles
            .iter()
            .map(|&kind| Group {
                name: match kind {
                    RoleKind::Thread => "threads",
                    RoleKind::Call => "calls",
                }
                .to_string(),
                observation: conf.state_dim(kind),
                actions: data.grid.len(kind),
            })
            .collect();
        let index = |kind: RoleKind| roles.iter().position(|k| *k == kind).expect("role of this configuration");
        let phases = conf.phases().into_iter().map(|phase| phase.into_iter().map(index).collect()).collect();
        let layout = Layout { slots: conf.services, groups, phases };
        LoadSearch { data, conf, beta, layout, roles }
    }

    pub fn data(&self) -> &LoadSearchData {
        self.data
    }

    /// The network input of one agent: the z-scored rules, the other load setting if this
    /// agent sees it (z-scored), and a one-hot service index when there are several services.
    fn agent_state(&self, role: RoleKind, row: usize, other: f64, service: usize) -> Vec<f32> {
        let x = self.data.table.feature_row(row);
        let (mean, std) = (self.data.model.inputs.mean(), self.data.model.inputs.std());
        let mut s: Vec<f32> = (0..7).map(|j| ((x[j] - mean[j]) / std[j]) as f32).collect();
        if self.conf.sees_other_setting(role) {
            let j = if role == RoleKind::Call { 7 } else { 8 };
            s.push(((other - mean[j]) / std[j]) as f32);
        }
        if self.conf.services > 1 {
            s.extend((0..self.conf.services).map(|n| if n == service { 1.0 } else { 0.0 }));
        }
        s
    }
}

impl Environment for LoadSearch<'_> {
    /// One training row per service.
    type State = Vec<usize>;
    type Candidate = LoadChoice;

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn reset(&self, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let rows = &self.data.train_rows;
        (0..self.conf.services).map(|_| rows[rng.random_range(0..rows.len())]).collect()
    }

    /// (threads, calls) from each service's row, until the agents replace them.
    fn start(&self, rows: &Vec<usize>) -> Vec<LoadChoice> {
        rows.iter()
            .enumerate()
            .map(|(service, &row)| {
                let (threads, calls) = self.data.row_load(row);
                LoadChoice { service, row, threads, calls }
            })
            .collect()
    }

    fn observe(&self, _rows: &Vec<usize>, candidates: &[LoadChoice], group: usize, slot: usize) -> Vec<f32> {
        let (kind, c) = (self.roles[group], &candidates[slot]);
        let other = if kind == RoleKind::Call { c.threads } else { c.calls } as f64;
        self.agent_state(kind, c.row, other, slot)
    }

    fn apply(&self, candidate: &mut LoadChoice, group: usize, action: usize) {
        match self.roles[group] {
            RoleKind::Thread => candidate.threads = self.data.grid.threads[action],
            RoleKind::Call => candidate.calls = self.data.grid.calls[action],
        }
    }

    /// Simulator rewards (503/s) of a batch of pairs, in one call.
    fn score_model(&self, batch: &mut [Pair]) -> Result<()> {
        let mut rows = Vec::with_capacity(batch.len() * 9);
        for p in batch.iter() {
            let x = self.data.table.feature_row(p.candidate.row);
            rows.extend_from_slice(&x[..7]);
            rows.push(p.candidate.threads as f64);
            rows.push(p.candidate.calls as f64);
        }
        let y = self.data.model.predict_raw(&rows)?;
        for (p, out) in batch.iter_mut().zip(y.chunks(2)) {
            p.model_reward = reward(out[0], out[1]);
        }
        Ok(())
    }

    /// Runs the pairs on the emulator, in parallel, one seeded load test each (pair i gets
    /// `seed + i`).
    fn score_truth(&self, batch: &mut [Pair], seed: u64) -> Result<()> {
        batch.par_iter_mut().enumerate().for_each(|(i, p)| {
            let load = Load { threads: p.candidate.threads, calls: p.candidate.calls };
            let r = run_load_test(&self.data.rules(p.candidate.row), &load, &self.data.scenario, seed.wrapping_add(i as u64));
            p.truth_reward = Some(r.reward());
        });
        Ok(())
    }

    /// Each service's 503/s (plus beta times the mean over services, with several), divided
    /// by the dataset's mean 503/s.
    fn learning_rewards(&self, scored: &[Pair]) -> Vec<f64> {
        let own: Vec<f64> = scored.iter().map(|p| p.model_reward).collect();
        let shaped = if self.conf.services > 1 { shared_rewards(&own, self.beta) } else { own };
        shaped.into_iter().map(|r| r / self.data.reward_scale).collect()
    }

    /// The next rows are drawn independently of the load: a one-step problem.
    fn step(&self, _rows: &Vec<usize>, _scored: &[Pair], rng: &mut ChaCha8Rng) -> Step<Vec<usize>> {
        Step { next: self.reset(rng), end: EpisodeEnd::Continues }
    }

    /// The grid of every setting the configuration's agents control (threads outer, calls
    /// inner), the row's own value of any other.
    fn alternatives(&self, c: &LoadChoice) -> Vec<LoadChoice> {
        let (row_threads, row_calls) = self.data.row_load(c.row);
        let grid = &self.data.grid;
        let threads: Vec<u32> = if self.roles.contains(&RoleKind::Thread) { grid.threads.clone() } else { vec![row_threads] };
        let calls: Vec<u32> = if self.roles.contains(&RoleKind::Call) { grid.calls.clone() } else { vec![row_calls] };
        threads.iter().flat_map(|&t| calls.iter().map(move |&k| LoadChoice { threads: t, calls: k, ..*c })).collect()
    }

    /// "threads 64", "calls 400" or "threads 64, calls 400": the settings the agents choose.
    fn describe(&self, c: &LoadChoice) -> String {
        let mut parts = Vec::new();
        if self.roles.contains(&RoleKind::Thread) {
            parts.push(format!("threads {}", c.threads));
        }
        if self.roles.contains(&RoleKind::Call) {
            parts.push(format!("calls {}", c.calls));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_follow_the_protocol() {
        let s1 = ActionGrid::for_dataset("S1").unwrap();
        assert_eq!((s1.calls.len(), s1.calls[0], s1.calls[15]), (16, 435, 450));
        assert_eq!(s1.threads, vec![1, 2, 3, 4, 5]);
        assert_eq!(ActionGrid::for_dataset("S2").unwrap().calls, vec![100, 200, 300, 400, 500, 600, 700]);
        assert_eq!(ActionGrid::for_dataset("S5").unwrap().calls.len(), 11);
        assert!(ActionGrid::for_dataset("S9").is_none());
    }

    #[test]
    fn configurations_parse_and_name_round_trip() {
        for name in ["call", "thread", "thread&call", "thread-call", "call-thread", "call*5", "thread-call*5"] {
            assert_eq!(Configuration::parse(name).unwrap().name(), name);
        }
        assert!(Configuration::parse("threads").is_err());
        let det = Configuration::parse("call-thread*5").unwrap();
        assert_eq!(det.phases(), vec![vec![RoleKind::Call], vec![RoleKind::Thread]]);
        assert_eq!(det.state_dim(RoleKind::Call), 7 + 5);
        assert_eq!(det.state_dim(RoleKind::Thread), 8 + 5);
        assert_eq!(Configuration::parse("call").unwrap().state_dim(RoleKind::Call), 8);
        assert_eq!(Configuration::parse("thread&call").unwrap().state_dim(RoleKind::Thread), 7);
    }

    #[test]
    fn shared_reward_adds_beta_times_the_mean() {
        let r = shared_rewards(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5);
        assert_eq!(r, vec![2.5, 3.5, 4.5, 5.5, 6.5]);
    }
}

//! Table 5 and Figure 7 of the paper: DQN agents against the simulators, in ten
//! configurations, validated on the emulator (protocol.md sections 4-7).
//!
//! Each (dataset, configuration, seed) cell is saved to `cells/` when it finishes; a rerun
//! skips finished cells, so stopping the process loses at most the cell under way.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::agent::{DqnConfig, Role, Transition};
use crate::atomic;
use crate::data::{load_table, TableSpec, TraceTable};
use crate::emulator::{run_load_test, Scenario};
use crate::env::metrics::{best_epoch, rolling_mean, sim_score, spread_after_best};
use crate::env::{reward, shared_rewards, ActionGrid, Configuration, RoleKind};
use crate::error::{Error, Result};
use crate::experiment::table4::prepare;
use crate::generate::DatasetsConfig;
use crate::report::{self, mean_std, plot};
use crate::rules::{Load, TrafficRules};
use crate::simulator::mlp::MlpConfig;
use crate::simulator::ServiceModel;
use super::yardstick::{self, Yardsticks};

/// One dataset of Table 5: its trace and, optionally, its own action grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table5Dataset {
    /// S1 ... S5: names the protocol's grid, the emulator scenario and the simulator.
    pub name: String,
    /// The trace the simulator was trained on (states are drawn from its training rows).
    pub path: PathBuf,
    /// Calls grid; default: the protocol's grid of this dataset.
    #[serde(default)]
    pub calls: Option<Vec<u32>>,
    /// Threads grid; default: the protocol's grid of this dataset.
    #[serde(default)]
    pub threads: Option<Vec<u32>>,
}

/// The Table 5 experiment (experiments/table5.toml, experiments/quick.toml).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table5Config {
    /// Always "table5".
    pub kind: String,
    /// Master seed: repetition r uses seed + r for its agents, states and validation.
    #[serde(default = "one")]
    pub seed: u64,
    /// Seeds per cell (the paper: 3).
    #[serde(default = "three")]
    pub repeats: usize,
    #[serde(default = "default_out_dir")]
    pub out_dir: PathBuf,
    /// Epochs per run (the paper: 500).
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Interactions per epoch and service (the paper: 1 000).
    #[serde(default = "default_steps")]
    pub steps_per_epoch: usize,
    /// Window of the rolling mean behind Sim. (the paper: 25).
    #[serde(default = "default_window")]
    pub rolling_window: usize,
    /// Weight of the mean reward in each service's reward (`*N` configurations).
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// Configurations in table order.
    #[serde(default = "default_configurations")]
    pub configurations: Vec<String>,
    /// The dataset config: each dataset's emulator scenario, for validation.
    #[serde(default = "default_datasets_config")]
    pub datasets_config: PathBuf,
    /// Where the simulators are: `<dir>/<dataset>/mlp_seed<simulator_seed>.safetensors`;
    /// a missing one is trained with `[simulator]` and saved there.
    #[serde(default = "default_simulators_dir")]
    pub simulators_dir: PathBuf,
    /// Which Table 4 seed's simulator (and training split) the agents use.
    #[serde(default = "one")]
    pub simulator_seed: u64,
    /// Share of rows in the simulator's training split (as in Table 4).
    #[serde(default = "default_train_fraction")]
    pub train_fraction: f64,
    /// Validate at most this many of the best epoch's pairs per side (seeded subsample);
    /// default: all of them.
    #[serde(default)]
    pub validation_pairs: Option<usize>,
    /// Validated states on which the oracle and the best fixed action are also run on the
    /// emulator, every candidate load of each (`yardstick.rs`).
    #[serde(default = "default_oracle_states")]
    pub oracle_validation_states: usize,
    /// Emulator runs of every candidate load behind the oracle's and the fixed action's
    /// choice on the emulator (each is then scored on one fresh run).
    #[serde(default = "default_oracle_runs")]
    pub oracle_runs: usize,
    /// Whether cells score the yardsticks at all (off only in the speed bench).
    #[serde(default = "yes")]
    pub yardsticks: bool,
    /// Cells trained at once; default: the number of cores. The cores are shared out among
    /// them: with fewer cells than cores, a cell's agents, backward products and Adam
    /// chunks run in parallel (its matrix products themselves stay on one thread).
    #[serde(default)]
    pub parallel_cells: Option<usize>,
    #[serde(rename = "dataset")]
    pub datasets: Vec<Table5Dataset>,
    /// The MLP used when a simulator has to be trained.
    #[serde(default)]
    pub simulator: MlpConfig,
    #[serde(default)]
    pub dqn: DqnConfig,
}

fn one() -> u64 {
    1
}
fn three() -> usize {
    3
}
fn default_out_dir() -> PathBuf {
    PathBuf::from("results/table5")
}
fn default_epochs() -> usize {
    500
}
fn default_steps() -> usize {
    1000
}
fn default_window() -> usize {
    25
}
fn default_beta() -> f64 {
    0.5
}
fn default_configurations() -> Vec<String> {
    ALL_CONFIGURATIONS.iter().map(|s| s.to_string()).collect()
}
fn default_datasets_config() -> PathBuf {
    PathBuf::from("configs/datasets.toml")
}
fn default_simulators_dir() -> PathBuf {
    PathBuf::from("results/table4/models")
}
fn default_oracle_states() -> usize {
    100
}

fn yes() -> bool {
    true
}

fn default_oracle_runs() -> usize {
    3
}

fn default_train_fraction() -> f64 {
    0.8
}

pub const ALL_CONFIGURATIONS: [&str; 10] = [
    "call",
    "thread",
    "thread&call",
    "thread-call",
    "call-thread",
    "call*5",
    "thread*5",
    "thread&call*5",
    "thread-call*5",
    "call-thread*5",
];

/// The paper's Table 5: (Sim., Val.) by configuration and dataset S1..S5.
pub const PAPER_TABLE5: [(&str, [(f64, f64); 5]); 10] = [
    ("call", [(1.03, 1.01), (2.71, 1.77), (1.75, 1.31), (2.05, 1.81), (1.31, 1.29)]),
    ("thread", [(2.21, 1.63), (1.04, 0.99), (1.18, 0.98), (1.16, 1.00), (1.02, 0.93)]),
    ("thread&call", [(2.26, 2.15), (3.45, 2.80), (1.84, 1.44), (2.07, 2.65), (1.31, 1.45)]),
    ("thread-call", [(2.24, 2.36), (3.39, 2.57), (1.96, 1.32), (2.14, 3.07), (1.32, 1.20)]),
    ("call-thread", [(2.22, 2.11), (3.44, 3.00), (1.79, 1.62), (2.11, 2.52), (1.33, 1.33)]),
    ("call*5", [(1.01, 1.00), (2.96, 2.30), (1.77, 1.43), (2.05, 2.87), (1.33, 1.30)]),
    ("thread*5", [(2.23, 1.83), (1.15, 1.28), (1.13, 1.06), (1.18, 1.03), (1.01, 1.16)]),
    ("thread&call*5", [(2.26, 2.35), (4.12, 2.92), (1.84, 1.29), (2.11, 2.83), (1.32, 2.05)]),
    ("thread-call*5", [(2.22, 1.51), (3.53, 2.52), (1.94, 2.21), (2.09, 3.18), (1.34, 1.44)]),
    ("call-thread*5", [(2.28, 2.19), (3.50, 2.33), (1.99, 2.40), (2.11, 2.16), (1.33, 1.44)]),
];

pub fn paper_table5(configuration: &str, dataset: &str) -> Option<(f64, f64)> {
    let col = ["S1", "S2", "S3", "S4", "S5"].iter().position(|d| *d == dataset)?;
    PAPER_TABLE5.iter().find(|(c, _)| *c == configuration).map(|(_, v)| v[col])
}

impl Table5Config {
    pub fn validate(&self) -> Result<()> {
        if self.kind != "table5" {
            return Err(Error::config(format!("kind must be \"table5\", but is {:?}", self.kind)));
        }
        if self.repeats == 0 || self.epochs == 0 || self.steps_per_epoch == 0 || self.rolling_window == 0 {
            return Err(Error::config("repeats, epochs, steps_per_epoch and rolling_window must be >= 1"));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(Error::config(format!("beta must be >= 0, but is {}", self.beta)));
        }
        if self.datasets.is_empty() {
            return Err(Error::config("no [[dataset]] entries"));
        }
        for c in &self.configurations {
            Configuration::parse(c)?;
        }
        for d in &self.datasets {
            self.grid(d)?.validate()?;
        }
        self.dqn.validate()?;
        self.simulator.validate()
    }

    pub fn grid(&self, d: &Table5Dataset) -> Result<ActionGrid> {
        let default = ActionGrid::for_dataset(&d.name);
        let pick = |own: &Option<Vec<u32>>, f: fn(&ActionGrid) -> Vec<u32>, what: &str| {
            own.clone().or_else(|| default.as_ref().map(f)).ok_or_else(|| {
                Error::config(format!("dataset {}: no protocol grid for this name; give `{what}` in its [[dataset]] entry", d.name))
            })
        };
        Ok(ActionGrid { calls: pick(&d.calls, |g| g.calls.clone(), "calls")?, threads: pick(&d.threads, |g| g.threads.clone(), "threads")? })
    }

    fn seeds(&self) -> Vec<u64> {
        (0..self.repeats as u64).map(|r| self.seed + r).collect()
    }

    /// The settings a cell's result depends on.
    fn cell_key(&self, d: &Table5Dataset, configuration: &str, seed: u64) -> String {
        let j = |v: &dyn erased::Json| v.json();
        format!(
            "{}|{configuration}|{seed}|{}|{}|{}|{}|{}|{}|{:?}|{}|{}|{}{}",
            j(d),
            self.epochs,
            self.steps_per_epoch,
            self.beta,
            self.simulator_seed,
            self.train_fraction,
            j(&self.dqn),
            self.validation_pairs,
            j(&self.simulator),
            self.oracle_validation_states,
            self.oracle_runs,
            if self.yardsticks { "" } else { "|no-yardsticks" }
        )
    }
}

mod erased {
    /// JSON text of any serialisable value (for cell keys).
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

/// Everything the cells of one dataset share.
pub struct DatasetContext {
    name: String,
    pub(crate) table: TraceTable,
    train_rows: Vec<usize>,
    model: ServiceModel,
    pub(crate) grid: ActionGrid,
    scenario: Scenario,
    /// Mean 503/s over the training rows: rewards are divided by it before the networks see them.
    reward_scale: f64,
    /// Content fingerprints of the dataset and the simulator, part of every cell's key.
    fingerprints: String,
}

pub fn load_context(cfg: &Table5Config, d: &Table5Dataset, scenarios: &BTreeMap<String, Scenario>) -> Result<DatasetContext> {
    let table = load_table(&d.path, &TableSpec::default())?;
    let prep = prepare(&table, table.n_rows(), cfg.simulator_seed, cfg.train_fraction)?;
    let model_path = cfg.simulators_dir.join(&d.name).join(format!("mlp_seed{}.safetensors", cfg.simulator_seed));
    let model = if model_path.exists() {
        ServiceModel::load_mlp(&model_path)?
    } else {
        println!("{}: no simulator at {}; training one (seed {})", d.name, model_path.display(), cfg.simulator_seed);
        let sim = cfg.simulator.train(&prep.x_train, &prep.y_train, cfg.simulator_seed)?;
        sim.net.save(&model_path)?;
        let service = ServiceModel { model: Box::new(sim), inputs: prep.inputs.clone(), outputs: prep.outputs.clone() };
        service.save_normalizers(&model_path)?;
        service
    };
    if model.inputs.names() != table.feature_names() {
        return Err(Error::file(&model_path, format!("the simulator's inputs {:?} are not the dataset's {:?}", model.inputs.names(), table.feature_names())));
    }
    let scenario = scenarios.get(&d.name).cloned().ok_or_else(|| {
        Error::file(&cfg.datasets_config, format!("no dataset named {} (its emulator scenario is needed for validation)", d.name))
    })?;
    let rewards: Vec<f64> = prep.train_rows.iter().map(|&i| reward(table.target_row(i)[0], table.target_row(i)[1])).collect();
    let reward_scale = (rewards.iter().sum::<f64>() / rewards.len().max(1) as f64).max(1e-9);
    let fingerprints = format!("{}|{}", crate::data::fingerprint(&d.path)?, crate::data::fingerprint(&model_path)?);
    Ok(DatasetContext { name: d.name.clone(), grid: cfg.grid(d)?, table, train_rows: prep.train_rows, model, scenario, reward_scale, fingerprints })
}

/// One interaction of one service: the state's row and the load that was run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Pair {
    pub service: usize,
    pub row: usize,
    pub threads: u32,
    pub calls: u32,
    /// 503/s predicted by the simulator.
    pub sim_reward: f64,
    /// 503/s measured on the emulator (best epoch only).
    pub emu_reward: Option<f64>,
}

/// JSON has no NaN: missing numbers (an epoch without updates has no loss) go out as
/// `null` and come back as NaN, so that finished cells always read back.
pub(crate) mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| x.is_finite().then_some(*x)))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<Option<f64>>::deserialize(d)?.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
    }

    pub mod scalar {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
            v.is_finite().then_some(*v).serialize(s)
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
            Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
        }
    }
}

/// Per-epoch numbers of one cell.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EpochLog {
    #[serde(with = "nan_as_null")]
    pub ratio: Vec<f64>,
    #[serde(with = "nan_as_null")]
    pub rl_reward: Vec<f64>,
    #[serde(with = "nan_as_null")]
    pub baseline_reward: Vec<f64>,
    #[serde(with = "nan_as_null")]
    pub loss: Vec<f64>,
    #[serde(with = "nan_as_null")]
    pub epsilon: Vec<f64>,
}

/// The result of one (dataset, configuration, seed) cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub key: String,
    pub dataset: String,
    pub configuration: String,
    pub seed: u64,
    pub epochs: EpochLog,
    #[serde(with = "nan_as_null::scalar")]
    pub sim: f64,
    pub best_epoch: usize,
    #[serde(with = "nan_as_null::scalar")]
    pub val: f64,
    #[serde(with = "nan_as_null::scalar")]
    pub spread_after_best: f64,
    pub best_rl: Vec<Pair>,
    pub best_baseline: Vec<Pair>,
    /// Oracle and best fixed action on the same states (`yardstick.rs`).
    pub yardsticks: Option<Yardsticks>,
    pub seconds: f64,
}

impl CellResult {
    /// One yardstick number; NaN for a cell scored without them.
    fn yardstick(&self, f: fn(&Yardsticks) -> f64) -> f64 {
        self.yardsticks.as_ref().map_or(f64::NAN, f)
    }
}

/// Each cell's own random stream, named by its dataset and configuration.
fn stream_of(text: &str) -> u64 {
    crate::data::fnv1a(text.as_bytes())
}

/// The network input of one agent: the z-scored rules, the other load setting if this
/// agent sees it (z-scored), and a one-hot service index when there are several services.
fn agent_state(ctx: &DatasetContext, conf: &Configuration, role: RoleKind, row: usize, other: f64, service: usize) -> Vec<f32> {
    let x = ctx.table.feature_row(row);
    let (mean, std) = (ctx.model.inputs.mean(), ctx.model.inputs.std());
    let mut s: Vec<f32> = (0..7).map(|j| ((x[j] - mean[j]) / std[j]) as f32).collect();
    if conf.sees_other_setting(role) {
        let j = if role == RoleKind::Call { 7 } else { 8 };
        s.push(((other - mean[j]) / std[j]) as f32);
    }
    if conf.services > 1 {
        s.extend((0..conf.services).map(|n| if n == service { 1.0 } else { 0.0 }));
    }
    s
}

/// Simulator rewards (503/s) of a batch of pairs, in one call.
pub(crate) fn simulate(ctx: &DatasetContext, pairs: &mut [Pair]) -> Result<()> {
    let mut rows = Vec::with_capacity(pairs.len() * 9);
    for p in pairs.iter() {
        let x = ctx.table.feature_row(p.row);
        rows.extend_from_slice(&x[..7]);
        rows.push(p.threads as f64);
        rows.push(p.calls as f64);
    }
    let y = ctx.model.predict_raw(&rows)?;
    for (p, out) in pairs.iter_mut().zip(y.chunks(2)) {
        p.sim_reward = reward(out[0], out[1]);
    }
    Ok(())
}

/// Runs the pairs on the emulator (the ground truth), in parallel, one seeded load test each.
pub(crate) fn emulate(ctx: &DatasetContext, pairs: &mut [Pair], seed: u64) {
    pairs.par_iter_mut().enumerate().for_each(|(i, p)| {
        let rules = TrafficRules::from_features(ctx.table.feature_row(p.row));
        let r = run_load_test(&rules, &Load { threads: p.threads, calls: p.calls }, &ctx.scenario, seed.wrapping_add(i as u64));
        p.emu_reward = Some(r.reward());
    });
}

fn subsample(pairs: &[Pair], n: Option<usize>, rng: &mut ChaCha8Rng) -> Vec<Pair> {
    match n {
        Some(n) if n < pairs.len() => rand::seq::index::sample(rng, pairs.len(), n).into_iter().map(|i| pairs[i]).collect(),
        _ => pairs.to_vec(),
    }
}

/// Trains the agents of one configuration for all epochs and validates the best epoch.
pub fn run_cell(cfg: &Table5Config, ctx: &DatasetContext, conf: &Configuration, seed: u64, bar: &ProgressBar) -> Result<CellResult> {
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream_of(&format!("{}|{}", ctx.name, conf.name())));
    let services = conf.services;
    let lr = if services > 1 { cfg.dqn.learning_rate_multi } else { cfg.dqn.learning_rate };
    let role_kinds = conf.roles();
    let mut roles: Vec<Role> = role_kinds
        .iter()
        .map(|&k| Role::new(&cfg.dqn, conf.state_dim(k), &vec![ctx.grid.len(k); services], lr, rng.random()))
        .collect::<Result<_>>()?;
    let total_steps = cfg.epochs * cfg.steps_per_epoch;
    // A transition waits for the agent's next state (needed when gamma > 0).
    let mut pending: Vec<Vec<Option<(Vec<f32>, usize, f32)>>> = role_kinds.iter().map(|_| vec![None; services]).collect();
    let mut log = EpochLog::default();
    let mut best: Option<(f64, Vec<Pair>, Vec<Pair>)> = None;
    for epoch in 0..cfg.epochs {
        let mut rl_pairs = Vec::with_capacity(cfg.steps_per_epoch * services);
        let mut base_pairs = Vec::with_capacity(cfg.steps_per_epoch * services);
        let (mut loss_sum, mut losses) = (0.0, 0);
        for t in 0..cfg.steps_per_epoch {
            let step = epoch * cfg.steps_per_epoch + t;
            let rows: Vec<usize> = (0..services).map(|_| ctx.train_rows[rng.random_range(0..ctx.train_rows.len())]).collect();
            // (threads, calls) per service: from the row, replaced by what the agents choose.
            let mut load: Vec<(u32, u32)> = rows
                .iter()
                .map(|&r| {
                    let x = ctx.table.feature_row(r);
                    (x[7] as u32, x[8] as u32)
                })
                .collect();
            let mut chosen: Vec<Vec<(Vec<f32>, usize)>> = vec![Vec::new(); role_kinds.len()];
            for phase in conf.phases() {
                for kind in phase {
                    let ri = role_kinds.iter().position(|k| *k == kind).expect("role of this configuration");
                    let states: Vec<Vec<f32>> = (0..services)
                        .map(|n| {
                            let other = if kind == RoleKind::Call { load[n].0 } else { load[n].1 } as f64;
                            agent_state(ctx, conf, kind, rows[n], other, n)
                        })
                        .collect();
                    let actions = roles[ri].act(&states, step, total_steps)?;
                    for n in 0..services {
                        match kind {
                            RoleKind::Thread => load[n].0 = ctx.grid.threads[actions[n]],
                            RoleKind::Call => load[n].1 = ctx.grid.calls[actions[n]],
                        }
                    }
                    chosen[ri] = states.into_iter().zip(actions).collect();
                }
            }
            let mut pairs: Vec<Pair> = (0..services)
                .map(|n| Pair { service: n, row: rows[n], threads: load[n].0, calls: load[n].1, sim_reward: 0.0, emu_reward: None })
                .collect();
            simulate(ctx, &mut pairs)?;
            let own: Vec<f64> = pairs.iter().map(|p| p.sim_reward).collect();
            let shaped = if services > 1 { shared_rewards(&own, cfg.beta) } else { own };
            for (ri, role) in roles.iter_mut().enumerate() {
                for (n, (state, action)) in chosen[ri].iter().enumerate() {
                    if let Some((s, a, r)) = pending[ri][n].take() {
                        role.remember(n, Transition { state: s, action: a, reward: r, next_state: state.clone() });
                    }
                    pending[ri][n] = Some((state.clone(), *action, (shaped[n] / ctx.reward_scale) as f32));
                }
                if let Some(l) = role.maybe_train(step)? {
                    loss_sum += l;
                    losses += 1;
                }
            }
            rl_pairs.extend(pairs);
            // The baseline: uniformly random choices for the same states.
            for (n, &row) in rows.iter().enumerate() {
                let x = ctx.table.feature_row(row);
                let (mut threads, mut calls) = (x[7] as u32, x[8] as u32);
                for kind in &role_kinds {
                    match kind {
                        RoleKind::Thread => threads = ctx.grid.threads[rng.random_range(0..ctx.grid.threads.len())],
                        RoleKind::Call => calls = ctx.grid.calls[rng.random_range(0..ctx.grid.calls.len())],
                    }
                }
                base_pairs.push(Pair { service: n, row, threads, calls, sim_reward: 0.0, emu_reward: None });
            }
        }
        simulate(ctx, &mut base_pairs)?;
        let rl: f64 = rl_pairs.iter().map(|p| p.sim_reward).sum();
        let base: f64 = base_pairs.iter().map(|p| p.sim_reward).sum();
        let ratio = if base > 0.0 { rl / base } else { f64::NAN };
        log.ratio.push(ratio);
        log.rl_reward.push(rl / rl_pairs.len() as f64);
        log.baseline_reward.push(base / base_pairs.len() as f64);
        log.loss.push(if losses > 0 { loss_sum / losses as f64 } else { f64::NAN });
        log.epsilon.push(roles[0].epsilon((epoch + 1) * cfg.steps_per_epoch - 1, total_steps));
        if best.as_ref().is_none_or(|b| ratio > b.0) {
            best = Some((ratio, rl_pairs, base_pairs));
        }
        bar.inc(1);
    }
    let (_, rl_best, base_best) = best.ok_or_else(|| Error::config("no epoch ran"))?;
    let mut val_rng = ChaCha8Rng::seed_from_u64(seed);
    val_rng.set_stream(stream_of(&format!("validation|{}|{}", ctx.name, conf.name())));
    let mut rl_val = subsample(&rl_best, cfg.validation_pairs, &mut val_rng);
    let mut base_val = subsample(&base_best, cfg.validation_pairs, &mut val_rng);
    let emu_seed: u64 = val_rng.random();
    emulate(ctx, &mut rl_val, emu_seed);
    emulate(ctx, &mut base_val, emu_seed.wrapping_add(1 << 32));
    let total = |ps: &[Pair]| ps.iter().filter_map(|p| p.emu_reward).sum::<f64>();
    let val = total(&rl_val) / total(&base_val);
    let yardstick_seed: u64 = val_rng.random();
    let yardsticks = match cfg.yardsticks {
        true => Some(yardstick::measure(ctx, conf, (&rl_best, &base_best), (&rl_val, &base_val), cfg.oracle_validation_states, cfg.oracle_runs, yardstick_seed)?),
        false => None,
    };
    Ok(CellResult {
        key: String::new(),
        dataset: ctx.name.clone(),
        configuration: conf.name(),
        seed,
        sim: sim_score(&log.ratio, cfg.rolling_window),
        best_epoch: best_epoch(&log.ratio),
        spread_after_best: spread_after_best(&log.ratio),
        val,
        epochs: log,
        best_rl: rl_val,
        best_baseline: base_val,
        yardsticks,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn cell_path(cfg: &Table5Config, dataset: &str, conf: &Configuration, seed: u64) -> PathBuf {
    cfg.out_dir.join("cells").join(dataset).join(format!("{}_seed{seed}.json", conf.slug()))
}

fn read_cell(path: &Path, key: &str) -> Option<CellResult> {
    let cell: CellResult = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    (cell.key == key).then_some(cell)
}

fn write_pairs_csv(path: &Path, cell: &CellResult) -> Result<()> {
    let mut s = String::from("side,service,row,threads,calls,sim_reward,emu_reward\n");
    for (side, pairs) in [("rl", &cell.best_rl), ("baseline", &cell.best_baseline)] {
        for p in pairs.iter() {
            let _ = writeln!(s, "{side},{},{},{},{},{:.4},{:.4}", p.service, p.row + 1, p.threads, p.calls, p.sim_reward, p.emu_reward.unwrap_or(f64::NAN));
        }
    }
    atomic::write_file(path, s)
}

/// Runs every cell (resuming finished ones), then writes the tables, curves and claims.
/// Each dataset's emulator scenario, by name, from the dataset config.
pub fn scenarios(cfg: &Table5Config) -> Result<BTreeMap<String, Scenario>> {
    let (_, plans) = DatasetsConfig::load(&cfg.datasets_config)?;
    Ok(plans.into_iter().map(|p| (p.spec.name.clone(), p.scenario)).collect())
}

pub fn run(cfg: &Table5Config) -> Result<()> {
    // Matrix products of these small networks run fastest on one core each (measured: two
    // threads per product doubled the CPU time for no gain), so candle's kernels get one
    // thread and whole cells run in parallel instead. Set before any thread starts.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    std::fs::create_dir_all(&cfg.out_dir).map_err(|e| Error::io(format!("creating {}", cfg.out_dir.display()), e))?;
    atomic::write_file(&cfg.out_dir.join("config.resolved.toml"), toml::to_string_pretty(cfg).map_err(|e| Error::config(e.to_string()))?)?;
    let scenarios = scenarios(cfg)?;
    let confs: Vec<Configuration> = cfg.configurations.iter().map(|c| Configuration::parse(c)).collect::<Result<_>>()?;
    let contexts: Vec<DatasetContext> = cfg.datasets.iter().map(|d| load_context(cfg, d, &scenarios)).collect::<Result<_>>()?;
    // Every (dataset, configuration, seed) in table order; finished ones are read back.
    let mut todo = Vec::new();
    let mut finished: BTreeMap<usize, CellResult> = BTreeMap::new();
    let mut index = 0;
    for (di, d) in cfg.datasets.iter().enumerate() {
        for conf in &confs {
            for seed in cfg.seeds() {
                let key = format!("{}|{}", cfg.cell_key(d, &conf.name(), seed), contexts[di].fingerprints);
                match read_cell(&cell_path(cfg, &d.name, conf, seed), &key) {
                    Some(cell) => {
                        finished.insert(index, cell);
                    }
                    None => todo.push((index, di, *conf, seed, key)),
                }
                index += 1;
            }
        }
    }
    let total_cells = index;
    if !finished.is_empty() {
        println!("resuming: {} of {total_cells} cells already done", finished.len());
    }
    let run_started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cfg.parallel_cells.unwrap_or(cores).max(1);
    // The cores are shared out: each cell's own parallel work (its agents, Adam's chunks,
    // the yardsticks' load tests) runs in a pool of its own, so cells never steal each
    // other's work and the cores are never oversubscribed.
    let threads_per_cell = (cores / workers).max(1);
    let bars = indicatif::MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix} [{bar:25}] epoch {pos}/{len}, {eta} left")
        .expect("static template")
        .progress_chars("=> ");
    let run_one = |(index, di, conf, seed, key): &(usize, usize, Configuration, u64, String)| -> Result<(usize, CellResult)> {
        let (d, ctx) = (&cfg.datasets[*di], &contexts[*di]);
        let bar = bars.add(ProgressBar::new(cfg.epochs as u64).with_style(style.clone()));
        bar.set_prefix(format!("cell {}/{total_cells} {} {} seed {seed}", index + 1, d.name, conf.name()));
        let mut cell = run_cell(cfg, ctx, conf, *seed, &bar)?;
        bar.finish_and_clear();
        bars.remove(&bar);
        cell.key = key.clone();
        write_pairs_csv(&cfg.out_dir.join("pairs").join(&d.name).join(format!("{}_seed{seed}.csv", conf.slug())), &cell)?;
        atomic::write_file(&cell_path(cfg, &d.name, conf, *seed), serde_json::to_string(&cell).map_err(|e| Error::config(e.to_string()))?)?;
        let line = format!(
            "{:<4} {:<14} seed {seed}: Sim. {:.3}, Val. {:.3}, best epoch {} ({:.1} s)",
            d.name,
            conf.name(),
            cell.sim,
            cell.val,
            cell.best_epoch + 1,
            cell.seconds
        );
        if bars.is_hidden() {
            println!("{line}");
        } else {
            let _ = bars.println(line);
        }
        Ok((*index, cell))
    };
    // Workers take cells in table order; every finished cell is on disk at once.
    let next = AtomicUsize::new(0);
    let computed: Mutex<Vec<Result<(usize, CellResult)>>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers.min(todo.len()) {
            scope.spawn(|| {
                let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads_per_cell).build() {
                    Ok(pool) => pool,
                    Err(e) => {
                        let error = Error::config(format!("cannot start a pool of {threads_per_cell} threads: {e}"));
                        computed.lock().expect("no panics while holding the lock").push(Err(error));
                        return;
                    }
                };
                while let Some(cell) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let result = pool.install(|| run_one(cell));
                    computed.lock().expect("no panics while holding the lock").push(result);
                }
            });
        }
    });
    let computed = computed.into_inner().expect("no panics while holding the lock");
    for r in computed {
        let (i, cell) = r?;
        finished.insert(i, cell);
    }
    let cells: Vec<CellResult> = finished.into_values().collect();
    let report = Report { cfg, confs: &confs, cells: &cells };
    atomic::write_file(&cfg.out_dir.join("table5.csv"), report.csv())?;
    atomic::write_file(&cfg.out_dir.join("metrics.csv"), report.metrics_csv())?;
    let claims = report.claims();
    atomic::write_file(&cfg.out_dir.join("table5.md"), report.markdown(&claims))?;
    report.figures()?;
    println!("{}", report.main_table());
    println!("{claims}");
    println!("wrote {} ({:.0} s)", cfg.out_dir.display(), run_started.elapsed().as_secs_f64());
    Ok(())
}

struct Report<'a> {
    cfg: &'a Table5Config,
    confs: &'a [Configuration],
    cells: &'a [CellResult],
}

impl Report<'_> {
    fn group(&self, dataset: &str, conf: &str) -> Vec<&CellResult> {
        self.cells.iter().filter(|c| c.dataset == dataset && c.configuration == conf).collect()
    }

    fn values(&self, dataset: &str, conf: &str, f: fn(&CellResult) -> f64) -> Vec<f64> {
        self.group(dataset, conf).into_iter().map(f).collect()
    }

    fn seeds_text(&self) -> String {
        self.cfg.seeds().iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" ")
    }

    fn csv(&self) -> String {
        let mut s = String::from("dataset,configuration,metric,mean,std,n_seeds,seeds,paper\n");
        for d in &self.cfg.datasets {
            for conf in self.confs {
                let name = conf.name();
                let paper = paper_table5(&name, &d.name);
                let metrics: [(&str, fn(&CellResult) -> f64, Option<f64>); 11] = [
                    ("sim", |c| c.sim, paper.map(|p| p.0)),
                    ("val", |c| c.val, paper.map(|p| p.1)),
                    ("best_epoch", |c| (c.best_epoch + 1) as f64, None),
                    ("spread_after_best", |c| c.spread_after_best, None),
                    ("best_epoch_sim", |c| c.yardstick(|y| y.agent_sim), None),
                    ("fixed_sim", |c| c.yardstick(|y| y.fixed_sim), None),
                    ("oracle_sim", |c| c.yardstick(|y| y.oracle_sim), None),
                    ("reach_sim", |c| c.yardstick(|y| y.reach_sim), None),
                    ("fixed_val", |c| c.yardstick(|y| y.fixed_val), None),
                    ("oracle_val", |c| c.yardstick(|y| y.oracle_val), None),
                    ("reach_val", |c| c.yardstick(|y| y.reach_val), None),
                ];
                for (metric, f, p) in metrics {
                    let v = self.values(&d.name, &name, f);
                    let (m, sd) = mean_std(&v);
                    let _ = writeln!(s, "{},{name},{metric},{m:.4},{sd:.4},{},{},{}", d.name, v.len(), self.seeds_text(), p.map(|x| x.to_string()).unwrap_or_default());
                }
            }
        }
        s
    }

    fn metrics_csv(&self) -> String {
        let mut s = String::from("dataset,configuration,seed,epoch,ratio,rolling_mean,rl_reward,baseline_reward,loss,epsilon\n");
        for c in self.cells {
            let roll = rolling_mean(&c.epochs.ratio, self.cfg.rolling_window);
            for e in 0..c.epochs.ratio.len() {
                let _ = writeln!(
                    s,
                    "{},{},{},{},{:.5},{},{:.4},{:.4},{:.5},{:.4}",
                    c.dataset,
                    c.configuration,
                    c.seed,
                    e + 1,
                    c.epochs.ratio[e],
                    roll[e].map(|r| format!("{r:.5}")).unwrap_or_default(),
                    c.epochs.rl_reward[e],
                    c.epochs.baseline_reward[e],
                    c.epochs.loss[e],
                    c.epochs.epsilon[e]
                );
            }
        }
        s
    }

    fn main_table(&self) -> String {
        let mut header = vec!["Configuration".to_string()];
        for d in &self.cfg.datasets {
            header.push(format!("{} Sim.", d.name));
            header.push(format!("{} Val.", d.name));
        }
        let rows: Vec<Vec<String>> = self
            .confs
            .iter()
            .map(|conf| {
                let name = conf.name();
                let mut row = vec![name.clone()];
                for d in &self.cfg.datasets {
                    let paper = paper_table5(&name, &d.name);
                    for (k, f) in [(0, (|c: &CellResult| c.sim) as fn(&CellResult) -> f64), (1, |c: &CellResult| c.val)] {
                        let cell = report::fmt_mean_std(&self.values(&d.name, &name, f), 2);
                        row.push(match paper {
                            Some(p) => format!("{cell} ({:.2})", if k == 0 { p.0 } else { p.1 }),
                            None => cell,
                        });
                    }
                }
                row
            })
            .collect();
        report::markdown_table(&header, &rows)
    }

    fn markdown(&self, claims: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Table 5: policy evaluation\n");
        let _ = writeln!(
            s,
            "Sim.: the maximum {}-epoch rolling mean of the per-epoch ratio (RL 503/s over random \
             actions' 503/s on the same states, scored by the simulator). Val.: the best epoch's \
             pairs, RL and random, run on the emulator. Mean ± standard deviation over seeds {}; \
             the paper's value in parentheses. {} epochs of {} interactions per service. Config: \
             `config.resolved.toml`; per-epoch numbers: `metrics.csv`; curves: `figure7.png`, \
             `curves/`.\n",
            self.cfg.rolling_window,
            self.seeds_text(),
            self.cfg.epochs,
            self.cfg.steps_per_epoch
        );
        s.push_str(&self.main_table());
        let _ = writeln!(s, "\n## Best epoch and stability\n");
        let mut header = vec!["Configuration".to_string()];
        header.extend(self.cfg.datasets.iter().map(|d| format!("{} best epoch / spread", d.name)));
        let rows: Vec<Vec<String>> = self
            .confs
            .iter()
            .map(|conf| {
                let mut row = vec![conf.name()];
                for d in &self.cfg.datasets {
                    let be = report::fmt_mean_std(&self.values(&d.name, &conf.name(), |c| (c.best_epoch + 1) as f64), 0);
                    let sp = report::fmt_mean_std(&self.values(&d.name, &conf.name(), |c| c.spread_after_best), 3);
                    row.push(format!("{be} / {sp}"));
                }
                row
            })
            .collect();
        s.push_str(&report::markdown_table(&header, &rows));
        let _ = writeln!(
            s,
            "\n## Yardsticks: best fixed action and oracle\n\n\
             On the best epoch's states, as ratios to the random baseline: the agents (Agent), \
             the single load with the highest total (Fixed) and the best load of every state by \
             exhaustive search over the grid (Oracle), on the simulator (Sim.) and, on the first \
             {} validated states, on the emulator (Val.; chosen on the mean of {} runs of every \
             candidate, scored on a fresh run). Reach: the agents' share of the oracle's reward. \
             Fixed load: the simulator's choice in the first seed.\n",
            self.cfg.oracle_validation_states,
            self.cfg.oracle_runs
        );
        s.push_str(&self.yardstick_table());
        let _ = writeln!(s, "\n## Claims (protocol.md section 7)\n\n```\n{claims}\n```");
        s
    }

    /// One row per (configuration, dataset): agents against the fixed action and the oracle.
    fn yardstick_table(&self) -> String {
        let header: Vec<String> =
            ["Configuration", "Dataset", "Agent Sim.", "Fixed Sim.", "Oracle Sim.", "Reach Sim.", "Val.", "Fixed Val.", "Oracle Val.", "Reach Val.", "Fixed load"]
                .iter()
                .map(|h| h.to_string())
                .collect();
        let columns: [fn(&CellResult) -> f64; 8] = [
            |c| c.yardstick(|y| y.agent_sim),
            |c| c.yardstick(|y| y.fixed_sim),
            |c| c.yardstick(|y| y.oracle_sim),
            |c| c.yardstick(|y| y.reach_sim),
            |c| c.val,
            |c| c.yardstick(|y| y.fixed_val),
            |c| c.yardstick(|y| y.oracle_val),
            |c| c.yardstick(|y| y.reach_val),
        ];
        let mut rows = Vec::new();
        for conf in self.confs {
            for d in &self.cfg.datasets {
                let name = conf.name();
                let mut row = vec![name.clone(), d.name.clone()];
                row.extend(columns.iter().map(|f| report::fmt_mean_std(&self.values(&d.name, &name, *f), 2)));
                row.push(self.group(&d.name, &name).first().and_then(|c| c.yardsticks.as_ref()).map(|y| y.fixed_sim_action.clone()).unwrap_or_default());
                rows.push(row);
            }
        }
        report::markdown_table(&header, &rows)
    }

    /// Mean over the seeds that have a number.
    fn mean_of(&self, dataset: &str, conf: &str, f: fn(&CellResult) -> f64) -> Option<f64> {
        let v: Vec<f64> = self.values(dataset, conf, f).into_iter().filter(|x| x.is_finite()).collect();
        (!v.is_empty()).then(|| mean_std(&v).0)
    }

    /// Claims 2-5 of protocol.md section 7, each with the numbers behind it.
    fn claims(&self) -> String {
        let mut out = Vec::new();
        // Claim 2: ratio > 1 in nearly every cell.
        for (label, f) in [("Sim.", (|c: &CellResult| c.sim) as fn(&CellResult) -> f64), ("Val.", |c: &CellResult| c.val)] {
            let mut above = 0;
            let mut total = 0;
            let mut below = Vec::new();
            for d in &self.cfg.datasets {
                for conf in self.confs {
                    if let Some(m) = self.mean_of(&d.name, &conf.name(), f) {
                        total += 1;
                        if m > 1.0 {
                            above += 1;
                        } else {
                            below.push(format!("{} {} {m:.2}", d.name, conf.name()));
                        }
                    }
                }
            }
            out.push(format!(
                "claim 2 (RL beats random, ratio > 1, in nearly every cell), {label}: {above} of {total} cells{}{}",
                if total > 0 && above as f64 >= 0.9 * total as f64 { " -> holds" } else { " -> does NOT hold" },
                if below.is_empty() { String::new() } else { format!("; not above 1: {}", below.join(", ")) }
            ));
        }
        // Claim 3: two agents beat the better single agent, per dataset and service count.
        for suffix in ["", "*5"] {
            let mut wins = 0;
            let mut total = 0;
            let mut detail = Vec::new();
            for d in &self.cfg.datasets {
                let best = |names: &[&str]| {
                    names.iter().filter_map(|n| self.mean_of(&d.name, &format!("{n}{suffix}"), |c| c.sim)).fold(f64::NAN, f64::max)
                };
                let single = best(&["call", "thread"]);
                let pair = best(&["thread&call", "thread-call", "call-thread"]);
                if single.is_finite() && pair.is_finite() {
                    total += 1;
                    wins += usize::from(pair > single);
                    detail.push(format!("{} {pair:.2} vs {single:.2}", d.name));
                }
            }
            if total > 0 {
                out.push(format!(
                    "claim 3 (two agents beat the better single agent{}), Sim.: {wins} of {total} datasets -> {} ({})",
                    if suffix.is_empty() { "" } else { ", five services" },
                    if 2 * wins > total { "holds" } else { "does NOT hold" },
                    detail.join("; ")
                ));
            }
        }
        // Claim 4: *5 configurations are more stable after the best epoch.
        let (mut stabler, mut total, mut detail) = (0, 0, Vec::new());
        for d in &self.cfg.datasets {
            for base in ["call", "thread", "thread&call", "thread-call", "call-thread"] {
                let single = self.mean_of(&d.name, base, |c| c.spread_after_best);
                let multi = self.mean_of(&d.name, &format!("{base}*5"), |c| c.spread_after_best);
                // Cells whose best epoch came last (or next to last) have no spread to compare.
                if let (Some(s), Some(m)) = (single.filter(|v| v.is_finite()), multi.filter(|v| v.is_finite())) {
                    total += 1;
                    stabler += usize::from(m < s);
                    detail.push(format!("{} {base}: {m:.3} vs {s:.3}", d.name));
                }
            }
        }
        if total > 0 {
            out.push(format!(
                "claim 4 (*5 learns more stably: smaller spread of per-epoch ratios after the best epoch): {stabler} of {total} comparable pairs -> {} ({})",
                if 2 * stabler > total { "holds" } else { "does NOT hold" },
                detail.join("; ")
            ));
        }
        // Claim 5: the best epoch comes before epoch 150.
        let early = self.cells.iter().filter(|c| c.best_epoch + 1 < 150).count();
        let latest = self.cells.iter().map(|c| c.best_epoch + 1).max().unwrap_or(0);
        out.push(format!(
            "claim 5 (best epoch before epoch 150): {early} of {} cells (latest best epoch {latest}; runs of {} epochs){}",
            self.cells.len(),
            self.cfg.epochs,
            if early == self.cells.len() { " -> holds" } else { " -> does NOT hold" }
        ));
        // Claim 6 (ours, not the paper's): the agents beat the best fixed action.
        for (label, agent, fixed) in [
            ("Sim. (best epoch)", (|c: &CellResult| c.yardstick(|y| y.agent_sim)) as fn(&CellResult) -> f64, (|c: &CellResult| c.yardstick(|y| y.fixed_sim)) as fn(&CellResult) -> f64),
            ("Val.", |c: &CellResult| c.val, |c: &CellResult| c.yardstick(|y| y.fixed_val)),
        ] {
            let (mut wins, mut total, mut losses, mut beats) = (0, 0, Vec::new(), Vec::new());
            let mut reach = Vec::new();
            for d in &self.cfg.datasets {
                for conf in self.confs {
                    if let (Some(a), Some(f)) = (self.mean_of(&d.name, &conf.name(), agent), self.mean_of(&d.name, &conf.name(), fixed)) {
                        total += 1;
                        if a > f {
                            wins += 1;
                            beats.push(format!("{} {} {a:.2} vs {f:.2}", d.name, conf.name()));
                        } else {
                            losses.push(format!("{} {} {a:.2} vs {f:.2}", d.name, conf.name()));
                        }
                        reach.push(a / f);
                    }
                }
            }
            if total > 0 {
                out.push(format!(
                    "claim 6 (agents beat the best fixed action; ours), {label}: {wins} of {total} cells -> {}; agents reach {:.2} of the fixed action's reward on average{}",
                    if 2 * wins > total { "holds" } else { "does NOT hold" },
                    mean_std(&reach).0,
                    // Name the minority: the cells that lose when most win, else the winners.
                    if 2 * wins > total {
                        if losses.is_empty() { String::new() } else { format!("; not above: {}", losses.join(", ")) }
                    } else if beats.is_empty() {
                        String::new()
                    } else {
                        format!("; above: {}", beats.join(", "))
                    }
                ));
            }
        }
        let reach: Vec<f64> = self.cells.iter().map(|c| c.yardstick(|y| y.reach_sim)).filter(|v| v.is_finite()).collect();
        let (m, sd) = mean_std(&reach);
        out.push(format!("oracle: the agents reach {m:.2} ± {sd:.2} of the oracle's simulated reward on their best epoch's states ({} cells)", reach.len()));
        out.join("\n")
    }

    /// Mean over seeds of a per-epoch series, with a band between the seeds' minimum and maximum.
    fn curve(&self, dataset: &str, conf: &str, label: String, rolling: bool) -> plot::Curve {
        let series: Vec<Vec<f64>> = self
            .group(dataset, conf)
            .iter()
            .map(|c| {
                if rolling {
                    rolling_mean(&c.epochs.ratio, self.cfg.rolling_window.min(c.epochs.ratio.len())).into_iter().map(|v| v.unwrap_or(f64::NAN)).collect()
                } else {
                    c.epochs.ratio.clone()
                }
            })
            .collect();
        let n = series.iter().map(|s| s.len()).max().unwrap_or(0);
        let at = |e: usize| series.iter().filter_map(|s| s.get(e).copied()).filter(|v| v.is_finite()).collect::<Vec<f64>>();
        plot::Curve {
            label,
            mean: (0..n).map(|e| mean_std(&at(e)).0).collect(),
            lo: (0..n).map(|e| at(e).into_iter().fold(f64::NAN, f64::min)).collect(),
            hi: (0..n).map(|e| at(e).into_iter().fold(f64::NAN, f64::max)).collect(),
        }
    }

    fn figures(&self) -> Result<()> {
        // Figure 7: one panel per configuration (single-service row above, *5 below), one
        // curve per dataset: the per-epoch ratio, mean over seeds, band min..max.
        let panels: Vec<plot::CurvePanel> = self
            .confs
            .iter()
            .map(|conf| plot::CurvePanel {
                title: conf.name(),
                curves: self.cfg.datasets.iter().map(|d| self.curve(&d.name, &conf.name(), d.name.clone(), false)).collect(),
            })
            .collect();
        let columns = self.confs.iter().filter(|c| c.services == 1).count().max(1);
        plot::curves_grid(
            &self.cfg.out_dir.join("figure7.png"),
            &format!("Per-epoch reward ratio (RL / random), mean over seeds {} with min-max band", self.seeds_text()),
            "ratio",
            &panels,
            columns,
        )?;
        // One curve PNG per (dataset, configuration): the ratio and its rolling mean.
        for d in &self.cfg.datasets {
            for conf in self.confs {
                let name = conf.name();
                let panel = plot::CurvePanel {
                    title: format!("{} {name}", d.name),
                    curves: vec![
                        self.curve(&d.name, &name, "per-epoch ratio".into(), false),
                        self.curve(&d.name, &name, format!("{}-epoch rolling mean", self.cfg.rolling_window), true),
                    ],
                };
                let path = self.cfg.out_dir.join("curves").join(format!("{}_{}.png", d.name, conf.slug()));
                std::fs::create_dir_all(path.parent().expect("curves dir")).map_err(|e| Error::io("creating curves/", e))?;
                plot::curves_grid(&path, &format!("{} {name}: seeds {}", d.name, self.seeds_text()), "ratio", &[panel], 1)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_table5_is_indexed_by_configuration_and_dataset() {
        assert_eq!(paper_table5("thread&call", "S2"), Some((3.45, 2.80)));
        assert_eq!(paper_table5("call-thread*5", "S5"), Some((1.33, 1.44)));
        assert_eq!(paper_table5("call", "X"), None);
    }

    #[test]
    fn cells_with_missing_numbers_read_back() {
        let log = EpochLog { ratio: vec![1.5, f64::NAN], rl_reward: vec![1.0, 2.0], baseline_reward: vec![1.0, 1.0], loss: vec![f64::NAN, 0.5], epsilon: vec![1.0, 0.5] };
        let json = serde_json::to_string(&log).unwrap();
        assert!(json.contains("null"));
        let back: EpochLog = serde_json::from_str(&json).unwrap();
        assert!(back.loss[0].is_nan() && back.ratio[1].is_nan());
        assert_eq!(back.loss[1], 0.5);
    }

    #[test]
    fn stream_hash_is_stable() {
        assert_eq!(stream_of(""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(stream_of("S1|call"), stream_of("S1|thread"));
    }
}

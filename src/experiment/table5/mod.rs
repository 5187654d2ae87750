//! Table 5 and Figure 7 of the paper: DQN agents against the simulators, in ten
//! configurations, validated on the emulator (protocol.md sections 4-7).
//!
//! - this file: the experiment's config and the run (datasets, cells, report);
//! - [`cell`]: one (dataset, configuration, seed) cell: training on the load search,
//!   validation, yardsticks;
//! - `report`: tables, claims and figures from the cells.
//!
//! Each cell is saved to `cells/` when it finishes; a rerun skips finished cells, so
//! stopping the process loses at most the cells under way.

pub mod cell;
mod claims_text;
mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::cells::{run_resumable, split_by_stage, Label, Planned, Workers};
use super::claims::Claims;
use super::compare::TieMargin;
use super::estimate::{Estimate, Work};
use super::rundir::{json, CellJob, DirCoordination, RunDir};
use super::timing;
use super::{RunOptions, Stage};
use crate::agent::dqn::DqnConfig;
use crate::agent::ppo::PpoConfig;
pub use crate::agent::LearnerKind;
use crate::agent::LearnerSpec;
use crate::data::{load_table, prepare, TableSpec};
use crate::emulator::Scenario;
use crate::env::load_search::{ActionGrid, Configuration, LoadSearch, LoadSearchData};
use crate::error::{Error, Result};
use crate::generate::DatasetsConfig;
use crate::simulator::mlp::MlpConfig;
use crate::simulator::store;
pub use cell::{run_cell, CellResult};
use report::Report;

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

impl Table5Dataset {
    /// Its action grid: its own calls and threads, else the protocol's grid of its name.
    pub fn grid(&self) -> Result<ActionGrid> {
        let d = self;
        let default = ActionGrid::for_dataset(&d.name);
        let pick = |own: &Option<Vec<u32>>, f: fn(&ActionGrid) -> Vec<u32>, what: &str| {
            own.clone().or_else(|| default.as_ref().map(f)).ok_or_else(|| {
                Error::config(format!("dataset {}: no protocol grid for this name; give `{what}` in its [[dataset]] entry", d.name))
            })
        };
        Ok(ActionGrid {
            calls: pick(&d.calls, |g| g.calls.clone(), "calls")?,
            threads: pick(&d.threads, |g| g.threads.clone(), "threads")?,
        })
    }
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
    /// Save a cell under way every this many epochs (`checkpoints/`, deleted when the cell
    /// is done), so that a stopped run loses at most this many epochs of a cell; 0: never.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
    /// The practical margin of the claims' verdicts: a difference whose 95 % interval lies
    /// within this share of the yardstick's value is a tie (`experiment::compare`). It
    /// changes the report only, never a cell.
    #[serde(default)]
    pub tie_margin: TieMargin,
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
    /// The agents' algorithm: DQN (the paper's; settings in `[dqn]`) or PPO (`[ppo]`).
    #[serde(default, skip_serializing_if = "LearnerKind::is_dqn")]
    pub learner: LearnerKind,
    #[serde(default)]
    pub dqn: DqnConfig,
    /// PPO's settings (stable-baselines3's defaults when `learner = "ppo"` names none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppo: Option<PpoConfig>,
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

fn default_checkpoint_every() -> usize {
    25
}

fn default_train_fraction() -> f64 {
    0.8
}

/// PPO's settings when a config names none.
static DEFAULT_PPO: std::sync::LazyLock<PpoConfig> = std::sync::LazyLock::new(PpoConfig::default);

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
        self.tie_margin.validate().map_err(Error::config)?;
        if self.repeats == 0 || self.epochs == 0 || self.steps_per_epoch == 0 || self.rolling_window == 0 {
            return Err(Error::config("repeats, epochs, steps_per_epoch and rolling_window must be >= 1"));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(Error::config(format!("beta must be >= 0, but is {}", self.beta)));
        }
        if !(self.train_fraction > 0.0 && self.train_fraction < 1.0) {
            return Err(Error::config(format!("train_fraction must be in (0, 1), but is {}", self.train_fraction)));
        }
        if self.validation_pairs == Some(0) {
            return Err(Error::config("validation_pairs must be >= 1 (leave it out to validate every pair)"));
        }
        if self.yardsticks && (self.oracle_runs == 0 || self.oracle_validation_states == 0) {
            return Err(Error::config("oracle_runs and oracle_validation_states must be >= 1 (or yardsticks = false)"));
        }
        if self.datasets.is_empty() {
            return Err(Error::config("no [[dataset]] entries"));
        }
        if self.configurations.is_empty() {
            return Err(Error::config("configurations is empty: name at least one (e.g. \"call\")"));
        }
        let mut seen = Vec::new();
        for c in &self.configurations {
            let name = Configuration::parse(c)?.name();
            if seen.contains(&name) {
                return Err(Error::config(format!("configuration {c:?} is listed twice")));
            }
            seen.push(name);
        }
        for (i, d) in self.datasets.iter().enumerate() {
            if self.datasets[..i].iter().any(|e| e.name == d.name) {
                return Err(Error::config(format!("two [[dataset]] entries are named {:?}", d.name)));
            }
            self.grid(d)?.validate()?;
        }
        self.dqn.validate()?;
        if let Some(ppo) = &self.ppo {
            ppo.validate()?;
        }
        self.simulator.validate()
    }

    /// The learner the agents use, with its settings.
    pub fn learner(&self) -> &dyn LearnerSpec {
        match (self.learner, &self.ppo) {
            (LearnerKind::Dqn, _) => &self.dqn,
            (LearnerKind::Ppo, Some(ppo)) => ppo,
            (LearnerKind::Ppo, None) => &*DEFAULT_PPO,
        }
    }

    /// The learner's settings as they enter a cell's key (DQN's alone, as before PPO existed,
    /// so that DQN cells keep their keys).
    fn learner_key(&self) -> String {
        match self.learner {
            LearnerKind::Dqn => json(&self.dqn),
            LearnerKind::Ppo => format!("ppo:{}", json(self.ppo.as_ref().unwrap_or(&DEFAULT_PPO))),
        }
    }

    /// This config as it is resolved: PPO's settings written out when PPO is used.
    pub fn resolved(&self) -> Table5Config {
        let mut cfg = self.clone();
        if cfg.learner == LearnerKind::Ppo && cfg.ppo.is_none() {
            cfg.ppo = Some(PpoConfig::default());
        }
        cfg
    }

    pub fn grid(&self, d: &Table5Dataset) -> Result<ActionGrid> {
        d.grid()
    }

    pub(crate) fn seeds(&self) -> Vec<u64> {
        (0..self.repeats as u64).map(|r| self.seed + r).collect()
    }

    /// The settings a cell's result depends on.
    pub(crate) fn cell_key(&self, d: &Table5Dataset, configuration: &str, seed: u64) -> String {
        format!(
            "{}|{configuration}|{seed}|{}|{}|{}|{}|{}|{}|{:?}|{}|{}|{}{}",
            json(d),
            self.epochs,
            self.steps_per_epoch,
            self.beta,
            self.simulator_seed,
            self.train_fraction,
            self.learner_key(),
            self.validation_pairs,
            json(&self.simulator),
            self.oracle_validation_states,
            self.oracle_runs,
            if self.yardsticks { "" } else { "|no-yardsticks" }
        )
    }
}

/// Everything the cells of one dataset share.
pub struct DatasetContext {
    pub data: LoadSearchData,
    /// Content fingerprints of the dataset and the simulator, part of every cell's key.
    fingerprints: String,
}

/// Loads a dataset, its training split and its simulator (trained and saved first when it
/// is missing and `train` allows it).
pub fn load_context(cfg: &Table5Config, d: &Table5Dataset, scenarios: &BTreeMap<String, Scenario>, train: bool) -> Result<DatasetContext> {
    let table = load_table(&d.path, &TableSpec::default())?;
    let prep = prepare(&table, table.n_rows(), cfg.simulator_seed, cfg.train_fraction)?;
    let model_path = store::mlp_path(&cfg.simulators_dir, &d.name, cfg.simulator_seed);
    if !train && !model_path.exists() {
        return Err(Error::file(
            &model_path,
            "no simulator here: run `meshrl prepare` on the experiment first (shards and reports never train one)",
        ));
    }
    let model = store::load_or_train(&cfg.simulator, &prep, cfg.simulator_seed, &model_path, || {
        println!("{}: no simulator at {}; training one (seed {})", d.name, model_path.display(), cfg.simulator_seed)
    })?;
    if model.inputs.names() != table.feature_names() {
        return Err(Error::file(
            &model_path,
            format!("the simulator's inputs {:?} are not the dataset's {:?}", model.inputs.names(), table.feature_names()),
        ));
    }
    let scenario = scenarios.get(&d.name).cloned().ok_or_else(|| {
        Error::file(&cfg.datasets_config, format!("no dataset named {} (its emulator scenario is needed for validation)", d.name))
    })?;
    let fingerprints = format!("{}|{}", crate::data::fingerprint(&d.path)?, crate::data::fingerprint(&model_path)?);
    let data = LoadSearchData::new(d.name.clone(), table, prep.train_rows, model, cfg.grid(d)?, scenario);
    Ok(DatasetContext { data, fingerprints })
}

/// Each dataset's emulator scenario, by name, from the dataset config.
pub fn scenarios(cfg: &Table5Config) -> Result<BTreeMap<String, Scenario>> {
    let (_, plans) = DatasetsConfig::load(&cfg.datasets_config)?;
    Ok(plans.into_iter().map(|p| (p.spec.name.clone(), p.scenario)).collect())
}

/// One cell to compute: its place in table order, its dataset and settings, its key.
struct Job {
    index: usize,
    dataset: usize,
    dataset_name: String,
    conf: Configuration,
    seed: u64,
    key: String,
}

impl CellJob for Job {
    fn dataset(&self) -> &str {
        &self.dataset_name
    }
    fn name(&self) -> String {
        cell::cell_name(&self.conf, self.seed)
    }
    fn key(&self) -> &str {
        &self.key
    }
}

/// Runs every cell (resuming finished ones), then writes the tables, curves and claims; or
/// one [`Stage`] of that.
/// The cells' training and their validation load tests (the validated pairs on three sides;
/// with yardsticks, every alternative of the oracle's states `oracle_runs` times and two
/// fresh scorings), each configuration timed once on the first dataset it is computed for.
fn estimate(cfg: &Table5Config, contexts: &[DatasetContext], planned: &[Planned<Job, CellResult>]) -> Result<Estimate> {
    let timed = std::cell::RefCell::new(Vec::new());
    let (cells, training) = super::estimate::training(
        planned,
        |_| (cfg.epochs * cfg.steps_per_epoch) as u64,
        Workers::new(cfg.parallel_cells).cells,
        |j| j.conf.name(),
        |j| {
            let env = LoadSearch::new(&contexts[j.dataset].data, j.conf, cfg.beta);
            let per_step = super::estimate::seconds_per_step(&env, cfg.learner(), cfg.epochs * cfg.steps_per_epoch)?;
            timed.borrow_mut().push((j.conf.name(), super::estimate::truth_scoring(&env)?));
            Ok(per_step)
        },
    )?;
    let timed = timed.into_inner();
    let (mut count, mut seconds) = (0u64, 0.0);
    for job in planned.iter().filter_map(|p| if let Planned::Todo(j) = p { Some(j) } else { None }) {
        let Some((_, (each, width))) = timed.iter().find(|(name, _)| *name == job.conf.name()) else { continue };
        let states = cfg.oracle_validation_states as u64;
        let oracle = if cfg.yardsticks { states * (*width as u64 * cfg.oracle_runs as u64 + 2) } else { 0 };
        let tests = 3 * cfg.validation_pairs.unwrap_or(cfg.steps_per_epoch) as u64 + oracle;
        count += tests;
        seconds += tests as f64 * each;
    }
    let each = if count > 0 { seconds / count as f64 } else { 0.0 };
    let validation = Work { what: "validation load tests".into(), count, seconds_each: each, parallel: training.parallel };
    Ok(Estimate { cells, work: vec![training, validation] })
}

pub fn run(cfg: &Table5Config, stage: Stage, options: RunOptions) -> Result<()> {
    let cfg = &cfg.resolved();
    // Matrix products of these small networks run fastest on one core each (measured: two
    // threads per product doubled the CPU time for no gain), so candle's kernels get one
    // thread and whole cells run in parallel instead. Set before any thread starts.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let scenarios = scenarios(cfg)?;
    let confs: Vec<Configuration> = cfg.configurations.iter().map(|c| Configuration::parse(c)).collect::<Result<_>>()?;
    // The directory is checked before simulators may be trained into it; only a run whose
    // inputs all load writes its config there.
    let checked = RunDir::check(&cfg.out_dir, cfg, &["checkpoint_every"], &[&cfg.simulators_dir])?;
    let train = stage.trains_simulators();
    let contexts: Vec<DatasetContext> = cfg.datasets.iter().map(|d| load_context(cfg, d, &scenarios, train)).collect::<Result<_>>()?;
    if stage == Stage::Prepare {
        checked.create()?;
        println!("prepared {}: simulators in {}", cfg.out_dir.display(), cfg.simulators_dir.display());
        return Ok(());
    }
    // Every (dataset, configuration, seed) in table order; finished ones are read back.
    let mut planned = Vec::new();
    for (di, d) in cfg.datasets.iter().enumerate() {
        for conf in &confs {
            for seed in cfg.seeds() {
                let key = format!("{}|{}", cfg.cell_key(d, &conf.name(), seed), contexts[di].fingerprints);
                planned.push(match checked.read_cell(&d.name, &cell::cell_name(conf, seed), &key) {
                    Some(cell) => Planned::Done(cell),
                    None => Planned::Todo(Job { index: planned.len(), dataset: di, dataset_name: d.name.clone(), conf: *conf, seed, key }),
                });
            }
        }
    }
    let total_cells = planned.len();
    let (planned, missing) =
        split_by_stage(planned, stage, |job: &Job| format!("{} {} seed {}", job.dataset_name, job.conf.name(), job.seed));
    estimate(cfg, &contexts, &planned)?.check(options.allow_long)?;
    let dir = checked.create()?;
    let run_started = Instant::now();
    let label = |job: &Job| Label {
        prefix: format!("cell {}/{total_cells} {} {} seed {}", job.index + 1, cfg.datasets[job.dataset].name, job.conf.name(), job.seed),
        units: cfg.epochs as u64,
    };
    let coordination = DirCoordination { dir: &dir, claims: Claims::start() };
    let cells = run_resumable(planned, Workers::new(cfg.parallel_cells), "epoch", &coordination, label, |job, progress| {
        let (d, ctx, seed) = (&cfg.datasets[job.dataset], &contexts[job.dataset], job.seed);
        let name = cell::cell_name(&job.conf, seed);
        let checkpoint = dir.checkpoint_path(&d.name, &name);
        if let Some(epochs) = crate::train::checkpoint_epochs(&checkpoint) {
            progress.println(&format!("{} {} seed {seed}: resuming from its checkpoint after epoch {epochs}", d.name, job.conf.name()));
        }
        let mut cell = run_cell(cfg, ctx, &job.conf, seed, &progress.bar, (cfg.checkpoint_every > 0).then(|| checkpoint.clone()))?;
        cell.key = job.key.clone();
        dir.write(PathBuf::from("pairs").join(&d.name).join(format!("{}_seed{seed}.csv", job.conf.slug())), cell.pairs_csv())?;
        dir.write_cell(&d.name, &name, &cell)?;
        // The cell is safe: its checkpoint has served.
        if checkpoint.exists() {
            std::fs::remove_file(&checkpoint).map_err(|e| Error::io(checkpoint.display().to_string(), e))?;
        }
        progress.println(&format!(
            "{:<4} {:<14} seed {seed}: Sim. {:.3}, Val. {:.3}, best epoch {} ({:.1} s)",
            d.name,
            job.conf.name(),
            cell.sim,
            cell.val,
            cell.best_epoch + 1,
            cell.seconds
        ));
        Ok(cell)
    })?;
    if !stage.reports() {
        println!(
            "wrote {} of {total_cells} cells' share to {} ({:.0} s)",
            cells.len(),
            cfg.out_dir.display(),
            run_started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    if !missing.is_empty() {
        println!("missing {} of {total_cells} cells (not in the report): {}", missing.len(), missing.join(", "));
    }
    let report = Report { cfg, confs: &confs, cells: &cells };
    let claims = report.claims();
    let mut outputs = dir.outputs();
    outputs.write("table5.csv", report.csv())?;
    outputs.write("metrics.csv", report.metrics_csv())?;
    outputs.write("table5.md", report.markdown(&claims))?;
    let times: Vec<(String, f64)> = cells.iter().map(|c| (c.configuration.clone(), c.seconds)).collect();
    let wall_times = timing::timing_markdown("Table 5", &times, Workers::new(cfg.parallel_cells).cells, None);
    for file in timing::files(options) {
        outputs.write(file, &wall_times)?;
    }
    report.figures(&mut outputs)?;
    outputs.commit()?;
    println!("{}", report.main_table());
    println!("{claims}");
    println!("wrote {} ({:.0} s)", cfg.out_dir.display(), run_started.elapsed().as_secs_f64());
    Ok(())
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
}

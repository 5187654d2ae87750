//! The defend experiment (issue 15, seed 001): agents choose the DestinationRule (and the
//! VirtualService retries) that keeps a service with a misbehaving replica up, trained on
//! the emulator ([`crate::env::defend`]), and scored beside yardsticks found by exhaustive
//! search over the whole grid:
//!
//! - the oracle, the best rule of every load;
//! - the best single rule over all loads (by the weighted mean, or by the worst load in
//!   robust mode);
//! - Istio's real defaults, and each dataset's (S1-S5) midpoint rule.
//!
//! Every candidate is chosen on the mean of `select_runs` runs per (load, rule), the same
//! seeds for every rule; the `shortlist` best are run `refine_runs` times more and the best
//! of those is taken (the maximum of thousands of noisy means is mostly luck); every policy
//! is scored on `score_runs` fresh runs per load, the same fresh seeds for every policy
//! ([`table`]). `attack` turns the SFR2L attacker on the
//! recommended rule and on Istio's defaults; `report` writes the tables, curves, plots and
//! the recommended rule's YAML.
//!
//! A cell is one (objective, mode, learner, seed): trained on the emulator, then asked for
//! its greedy rule at every load.

mod attack;
mod report;
pub mod table;

use std::path::PathBuf;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::cells::{report_due, run_resumable, split_by_stage, Label, Planned, Workers};
use super::claims::Claims;
use super::compare::TieMargin;
use super::estimate::{Estimate, Work};
use super::rundir::{json, Cell, CellJob, DirCoordination, RunDir};
use super::{RunOptions, Stage};
use crate::agent::dqn::DqnConfig;
use crate::agent::ppo::PpoConfig;
use crate::agent::LearnerKind;
use crate::emulator::Scenario;
use crate::env::defend::grid::RuleGrid;
use crate::env::defend::objective::DefendObjective;
use crate::env::defend::{DefendEnv, DefendSpec, Mode};
use crate::env::Environment;
use crate::error::{Error, Result};
use crate::rules::Load;
use crate::train::{train, Schedule, Series};

/// The loads of the state distribution: every (threads, calls) pair of the two lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadGrid {
    /// Fortio `-c` values.
    pub threads: Vec<u32>,
    /// Fortio `-n` values.
    pub calls: Vec<u32>,
    /// Probability of each (threads, calls) pair, threads-major; default uniform.
    #[serde(default)]
    pub weights: Option<Vec<f64>>,
}

impl LoadGrid {
    pub fn loads(&self) -> Vec<Load> {
        self.threads.iter().flat_map(|&threads| self.calls.iter().map(move |&calls| Load { threads, calls })).collect()
    }

    fn weights(&self) -> Vec<f64> {
        let raw = self.weights.clone().unwrap_or_else(|| vec![1.0; self.threads.len() * self.calls.len()]);
        let total: f64 = raw.iter().sum();
        raw.iter().map(|w| w / total).collect()
    }

    fn validate(&self, at: &str) -> Result<()> {
        if self.threads.is_empty() || self.calls.is_empty() {
            return Err(Error::config(format!("{at}.threads and {at}.calls need at least one value each")));
        }
        for (name, values) in [("threads", &self.threads), ("calls", &self.calls)] {
            if let Some(i) = values.iter().position(|v| *v == 0) {
                return Err(Error::config(format!("{at}.{name}[{i}] must be >= 1, but is 0")));
            }
        }
        if let Some(i) = self.calls.iter().position(|&c| self.threads.iter().any(|&t| c < t)) {
            return Err(Error::config(format!("{at}.calls[{i}] = {} is below a threads value: every thread needs a call", self.calls[i])));
        }
        if self.calls.iter().any(|&c| c > 100_000) {
            return Err(Error::config(format!("{at}.calls must be <= 100000 (one load test is simulated per reward)")));
        }
        if let Some(w) = &self.weights {
            let n = self.threads.len() * self.calls.len();
            if w.len() != n || w.iter().any(|x| !(*x >= 0.0 && x.is_finite())) || w.iter().sum::<f64>() <= 0.0 {
                return Err(Error::config(format!("{at}.weights must give one weight >= 0 per (threads, calls) pair ({n}), not all 0")));
            }
        }
        Ok(())
    }
}

/// One objective, named (config `[[objectives]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedObjective {
    pub name: String,
    #[serde(flatten)]
    pub objective: DefendObjective,
}

/// The attacker turned on a rule (config `[attack]`): the SFR2L load search, one agent over
/// the joint (threads, calls) grid, trained on the emulator's mean 503/s of every load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttackConfig {
    pub threads: Vec<u32>,
    pub calls: Vec<u32>,
    pub epochs: usize,
    pub steps_per_epoch: usize,
}

impl Default for AttackConfig {
    fn default() -> Self {
        AttackConfig { threads: vec![1, 2, 4, 8, 16, 32, 64, 128], calls: vec![200, 1000, 4000], epochs: 20, steps_per_epoch: 500 }
    }
}

/// Names used in the exported YAML and commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeployNames {
    /// The rule's and the VirtualService's `metadata.name`.
    pub name: String,
    /// The service host (`spec.host`), which Fortio calls.
    pub host: String,
}

impl Default for DeployNames {
    fn default() -> Self {
        DeployNames { name: "httpbin".into(), host: "httpbin".into() }
    }
}

/// The defend experiment (experiments/defend.toml).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefendConfig {
    /// Always "defend".
    pub kind: String,
    /// Master seed: the yardsticks' runs derive from it; repetition r trains with `seed + r`.
    #[serde(default = "one")]
    pub seed: u64,
    /// Seeds per cell.
    #[serde(default = "three")]
    pub seeds: usize,
    pub out_dir: PathBuf,
    /// The practical margin of the report's verdicts: a difference whose 95 % interval lies
    /// within this share of the yardstick's value is a tie (`experiment::compare`; default
    /// 0.01). It changes the report only, never a cell.
    #[serde(default)]
    pub tie_margin: TieMargin,
    /// The service: emulator scenario fields (replicas, misbehaving replicas, ...).
    #[serde(default)]
    pub scenario: Scenario,
    pub loads: LoadGrid,
    #[serde(default)]
    pub grid: RuleGrid,
    pub objectives: Vec<NamedObjective>,
    /// Per load, one rule for all loads (robust), or both (default).
    #[serde(default = "both_modes")]
    pub modes: Vec<Mode>,
    /// One field's agent after another, each seeing the earlier choices (default: all at once).
    #[serde(default)]
    pub sequential: bool,
    #[serde(default = "both_learners")]
    pub learners: Vec<LearnerKind>,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default = "default_steps")]
    pub steps_per_epoch: usize,
    #[serde(default)]
    pub dqn: DqnConfig,
    #[serde(default)]
    pub ppo: PpoConfig,
    /// Runs per (load, rule) on which the exhaustive yardsticks are chosen.
    #[serde(default = "three")]
    pub select_runs: usize,
    /// Candidates per search (per load for the oracle) run again `refine_runs` times.
    #[serde(default = "fifty")]
    pub shortlist: usize,
    #[serde(default = "twenty")]
    pub refine_runs: usize,
    /// Fresh runs per (load, rule) on which every policy is scored.
    #[serde(default = "twenty")]
    pub score_runs: usize,
    /// The dataset config whose S1-S5 ranges give the midpoint rules (none if absent).
    #[serde(default)]
    pub midpoints_from: Option<PathBuf>,
    #[serde(default)]
    pub attack: AttackConfig,
    #[serde(default)]
    pub deploy: DeployNames,
    /// Cells trained at once; default: the number of cores.
    #[serde(default)]
    pub parallel_cells: Option<usize>,
}

fn one() -> u64 {
    1
}
fn three() -> usize {
    3
}
fn fifty() -> usize {
    50
}
fn twenty() -> usize {
    20
}
fn both_modes() -> Vec<Mode> {
    vec![Mode::PerLoad, Mode::Robust]
}
fn both_learners() -> Vec<LearnerKind> {
    vec![LearnerKind::Dqn, LearnerKind::Ppo]
}
fn default_epochs() -> usize {
    30
}
fn default_steps() -> usize {
    500
}

impl DefendConfig {
    pub fn validate(&self) -> Result<()> {
        self.tie_margin.validate().map_err(Error::config)?;
        if self.kind != "defend" {
            return Err(Error::config(format!("kind must be \"defend\", but is {:?}", self.kind)));
        }
        let counts = [self.seeds, self.epochs, self.steps_per_epoch, self.select_runs, self.shortlist, self.refine_runs, self.score_runs];
        if counts.contains(&0) {
            return Err(Error::config("seeds, epochs, steps_per_epoch, select_runs, shortlist, refine_runs and score_runs must be >= 1"));
        }
        self.scenario.validate().map_err(Error::config)?;
        self.loads.validate("loads")?;
        self.grid.validate().map_err(Error::config)?;
        if self.objectives.is_empty() || self.modes.is_empty() || self.learners.is_empty() {
            return Err(Error::config("[[objectives]], modes and learners each need at least one entry"));
        }
        for (i, o) in self.objectives.iter().enumerate() {
            o.objective.validate().map_err(|m| Error::config(format!("objectives[{i}] ({}): {m}", o.name)))?;
            if o.name.is_empty() || !o.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(Error::config(format!("objectives[{i}].name {:?} must be letters, digits, _ or -", o.name)));
            }
            if self.objectives[..i].iter().any(|p| p.name == o.name) {
                return Err(Error::config(format!("two objectives are named {:?}", o.name)));
            }
        }
        super::refuse_repeats("modes", &self.modes)?;
        super::refuse_repeats("learners", &self.learners)?;
        crate::export::check_bundle_names(&self.deploy.name, &self.deploy.host).map_err(|e| match e {
            Error::Config { message, .. } => Error::config(format!("deploy: {message}")),
            other => other,
        })?;
        let a = &self.attack;
        LoadGrid { threads: a.threads.clone(), calls: a.calls.clone(), weights: None }.validate("attack")?;
        if a.epochs == 0 || a.steps_per_epoch == 0 {
            return Err(Error::config("attack.epochs and attack.steps_per_epoch must be >= 1"));
        }
        self.dqn.validate()?;
        self.ppo.validate()
    }

    fn seed_list(&self) -> Vec<u64> {
        (0..self.seeds as u64).map(|r| self.seed.wrapping_add(r)).collect()
    }

    /// Seconds one load test takes on this machine, timed on rules spread over the grid,
    /// every load in turn (for run estimates).
    pub fn seconds_per_load_test(&self) -> Result<f64> {
        let (loads, rules) = (self.loads.loads(), self.grid.joint_rules());
        super::estimate::seconds_each(16, 64, |i| {
            let rule = self.grid.rule(&self.grid.choice(i * 7919 % rules));
            crate::emulator::run_load_test(&rule, &loads[i % loads.len()], &self.scenario, i as u64);
            Ok(())
        })
    }

    /// The problem of one objective and mode.
    pub fn spec(&self, objective: &DefendObjective, mode: Mode) -> DefendSpec {
        DefendSpec {
            grid: self.grid.clone(),
            loads: self.loads.loads(),
            weights: self.loads.weights(),
            scenario: self.scenario.clone(),
            objective: objective.clone(),
            mode,
            sequential: self.sequential,
        }
    }
}

/// One finished cell: the greedy rules after training and the learning curve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DefendCell {
    pub key: String,
    pub objective: String,
    pub mode: Mode,
    pub learner: LearnerKind,
    pub seed: u64,
    /// The greedy rule (joint grid index) at each load; one rule in robust mode.
    pub policy: Vec<usize>,
    /// Mean objective of the agents' (exploring) rules, per epoch, undivided.
    pub curve: Series,
    pub seconds: f64,
}

impl Cell for DefendCell {
    fn key(&self) -> &str {
        &self.key
    }
}

struct Job {
    index: usize,
    objective: usize,
    objective_name: String,
    mode: Mode,
    learner: LearnerKind,
    seed: u64,
    key: String,
}

impl Job {
    fn cell_name(&self) -> String {
        format!("{}_{}_seed{}", self.mode.name(), self.learner.name(), self.seed)
    }
}

impl CellJob for Job {
    fn dataset(&self) -> &str {
        &self.objective_name
    }
    fn name(&self) -> String {
        self.cell_name()
    }
    fn key(&self) -> &str {
        &self.key
    }
}

pub fn run(cfg: &DefendConfig, stage: Stage, options: RunOptions) -> Result<()> {
    let started = Instant::now();
    let midpoints = match &cfg.midpoints_from {
        Some(path) => table::midpoint_rules(path)?,
        None => vec![],
    };
    let checked = RunDir::check(&cfg.out_dir, cfg, &[], &[])?;
    let loads = cfg.loads.loads();
    println!(
        "defend: {} loads x {} joint rules ({} fields searched), {} replicas; {} objective(s), modes {:?}",
        loads.len(),
        cfg.grid.joint_rules(),
        cfg.grid.searched().len(),
        cfg.scenario.replicas,
        cfg.objectives.len(),
        cfg.modes.iter().map(Mode::name).collect::<Vec<_>>()
    );
    let mut planned = Vec::new();
    for (oi, o) in cfg.objectives.iter().enumerate() {
        for &mode in &cfg.modes {
            for &learner in &cfg.learners {
                for seed in cfg.seed_list() {
                    let key = json(&(
                        o,
                        &cfg.scenario,
                        &cfg.loads,
                        &cfg.grid,
                        mode,
                        cfg.sequential,
                        (cfg.epochs, cfg.steps_per_epoch),
                        learner.name(),
                        learner.settings_json(&cfg.dqn, &cfg.ppo),
                        seed,
                    ));
                    let job = Job { index: planned.len(), objective: oi, objective_name: o.name.clone(), mode, learner, seed, key };
                    planned.push(match checked.read_cell::<DefendCell>(&o.name, &job.cell_name(), &job.key) {
                        Some(cell) => Planned::Done(cell),
                        None => Planned::Todo(job),
                    });
                }
            }
        }
    }
    let total = planned.len();
    let (planned, missing) = split_by_stage(planned, stage, |j: &Job| format!("{} {}", cfg.objectives[j.objective].name, j.cell_name()));
    if stage == Stage::Prepare {
        checked.create()?;
        println!("prepared {}", cfg.out_dir.display());
        return Ok(());
    }
    // Candle's kernels on one thread each (it then stops asking the system for its core
    // count at every product); whole cells run in parallel instead, in pools of their own.
    // The exhaustive search below builds its own pool.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    estimate(cfg, &planned, stage)?.check(options.allow_long)?;
    let dir = checked.create()?;
    let label = |j: &Job| Label {
        prefix: format!("cell {}/{total} {} {}", j.index + 1, cfg.objectives[j.objective].name, j.cell_name()),
        units: cfg.epochs as u64,
    };
    let coordination = DirCoordination { dir: &dir, claims: Claims::start() };
    let cells = run_resumable(planned, Workers::new(cfg.parallel_cells), "epoch", &coordination, label, |job, progress| {
        let o = &cfg.objectives[job.objective];
        let cell = train_cell(cfg, job, &o.objective, &progress.bar)?;
        dir.write_cell(&o.name, &job.cell_name(), &cell)?;
        Ok(cell)
    })?;
    if !report_due(stage, cells.len(), total, &missing, &cfg.out_dir) {
        return Ok(());
    }
    let tables = table::Tables::compute(cfg, &midpoints, &cells)?;
    // One recommended rule per objective (its choice reruns candidates), shared by the
    // attack and the report.
    let recommended: Vec<(String, crate::rules::TrafficRules)> =
        (0..cfg.objectives.len()).map(|o| attack::recommended(cfg, &tables, o)).collect();
    let attacks = attack::run(cfg, &recommended)?;
    report::write(cfg, &tables, &recommended, &attacks, &cells, &dir)?;
    let wall_times = report::wall_times(&tables, &cells, started.elapsed().as_secs_f64());
    for file in super::timing::files(options) {
        dir.write(file, &wall_times)?;
    }
    println!("wrote {}", cfg.out_dir.join("defend.md").display());
    Ok(())
}

/// The cells' training, and the exhaustive search where this stage writes the report (its
/// selection runs: the refinement and the fresh scoring add a few per cent).
fn estimate(cfg: &DefendConfig, planned: &[Planned<Job, DefendCell>], stage: Stage) -> Result<Estimate> {
    let (cells, training) = super::estimate::training(
        planned,
        |_| (cfg.epochs * cfg.steps_per_epoch) as u64,
        Workers::new(cfg.parallel_cells).cells,
        |j| format!("{} {}", j.mode.name(), j.learner.name()),
        |j| {
            let env = DefendEnv::new(cfg.spec(&cfg.objectives[j.objective].objective, j.mode));
            super::estimate::seconds_per_step(&env, j.learner.spec(&cfg.dqn, &cfg.ppo), cfg.epochs * cfg.steps_per_epoch)
        },
    )?;
    let mut work = vec![training];
    if stage.reports() {
        let (loads, rules) = (cfg.loads.loads(), cfg.grid.joint_rules());
        let each = cfg.seconds_per_load_test()?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let count = (rules * loads.len() * cfg.select_runs) as u64;
        work.push(Work { what: "load tests in the exhaustive search".into(), count, seconds_each: each, parallel: cores });
    }
    Ok(Estimate { cells, work })
}

fn train_cell(cfg: &DefendConfig, job: &Job, objective: &DefendObjective, bar: &indicatif::ProgressBar) -> Result<DefendCell> {
    let started = Instant::now();
    let env = DefendEnv::new(cfg.spec(objective, job.mode));
    let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
    let mut learner = job.learner.spec(&cfg.dqn, &cfg.ppo).build(env.layout(), &mut rng)?;
    let schedule = Schedule { epochs: cfg.epochs, steps_per_epoch: cfg.steps_per_epoch };
    let training = train(&env, learner.as_mut(), schedule, &mut rng, bar, None)?;
    let states = match job.mode {
        Mode::PerLoad => cfg.loads.loads().len(),
        Mode::Robust => 1,
    };
    let policy = (0..states).map(|l| env.greedy_choice(learner.as_ref(), l).map(|c| cfg.grid.index(&c))).collect::<Result<_>>()?;
    Ok(DefendCell {
        key: job.key.clone(),
        objective: cfg.objectives[job.objective].name.clone(),
        mode: job.mode,
        learner: job.learner,
        seed: job.seed,
        policy,
        curve: Series(training.log.rl_reward),
        seconds: started.elapsed().as_secs_f64(),
    })
}

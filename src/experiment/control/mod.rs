//! The control experiment (issue 16, seed 002): a model learned from a testbed's trace, an
//! objective over the knobs a controller sets (routing weight, blocking, replicas), agents
//! trained against the model, and yardsticks that need no agent: the optimum on the model,
//! the optimum on the measured table (the trace is a full factorial grid), the best fixed
//! action of each, and the model's optimum with whole settings held out of its training.
//!
//! - [`trace`]: the measured grid (censored rows count as violations);
//! - [`model`]: the forest on the framework's features or on the controller's inputs;
//! - [`objective`]: knob grids and rewards;
//! - `report`: tables, curves, policy files; [`apply`]: one policy row as cluster commands.
//!
//! A cell is one (objective, model, learner, seed): trained on the model's reward table
//! for the seed, then asked for its greedy action at every load of the process.

pub mod apply;
pub mod model;
pub mod objective;
mod report;
pub use report::describe_knobs;
pub mod trace;

use std::path::PathBuf;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::cells::{report_due, run_resumable, split_by_stage, Label, Planned, Workers};
use super::claims::Claims;
use super::compare::TieMargin;
use super::rundir::{json, Cell, CellJob, DirCoordination, RunDir};
use super::{RunOptions, Stage};
use crate::agent::dqn::DqnConfig;
use crate::agent::ppo::PpoConfig;
use crate::agent::LearnerKind;
use crate::env::control::{ControlEnv, ControlTables};
use crate::error::{Error, Result};
use crate::simulator::baselines::ForestConfig;
use crate::train::{train, Schedule, Series};
use apply::DeployNames;
use model::{ControlModel, ModelInputs};
use objective::Objective;
use trace::{ControlTrace, Knobs, TraceConfig};

/// The offered-load process: loads drawn independently at every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadProcess {
    /// Offered loads, requests per second; each must be a load of the trace.
    pub values: Vec<f64>,
    /// Their probabilities; default uniform.
    #[serde(default)]
    pub weights: Option<Vec<f64>>,
}

/// The control experiment (experiments/control_tnsm2023.toml).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Always "control".
    pub kind: String,
    /// Master seed: seed `seed + r` fits the models, holds settings out and trains the agents of repetition r.
    #[serde(default = "one")]
    pub seed: u64,
    /// Seeds per cell.
    #[serde(default = "five")]
    pub seeds: usize,
    pub out_dir: PathBuf,
    /// The practical margin of the report's verdicts: a difference whose 95 % interval lies
    /// within this share of the yardstick's value is a tie (`experiment::compare`; default
    /// 0.01). It changes the report only, never a cell.
    #[serde(default)]
    pub tie_margin: TieMargin,
    pub trace: TraceConfig,
    pub loads: LoadProcess,
    /// Models to fit and train against; default both.
    #[serde(default = "both_models")]
    pub models: Vec<ModelInputs>,
    /// Share of the trace's settings (routing, blocking, replicas at every load) held out of
    /// the second fit of each model, to see whether its optimum holds where it saw no data.
    #[serde(default = "holdout")]
    pub holdout_fraction: f64,
    #[serde(default)]
    pub forest: ForestConfig,
    pub objectives: Vec<Objective>,
    /// Learners; default both.
    #[serde(default = "both_learners")]
    pub learners: Vec<LearnerKind>,
    /// Training length: epochs of `steps_per_epoch` interactions.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default = "default_steps")]
    pub steps_per_epoch: usize,
    #[serde(default)]
    pub dqn: DqnConfig,
    #[serde(default)]
    pub ppo: PpoConfig,
    /// Names used when a policy row is applied to a cluster.
    #[serde(default)]
    pub deploy: DeployNames,
    /// Cells trained at once; default: the number of cores.
    #[serde(default)]
    pub parallel_cells: Option<usize>,
}

fn one() -> u64 {
    1
}
fn five() -> usize {
    5
}
fn both_models() -> Vec<ModelInputs> {
    vec![ModelInputs::Tnsm2023, ModelInputs::Controller]
}
fn both_learners() -> Vec<LearnerKind> {
    vec![LearnerKind::Dqn, LearnerKind::Ppo]
}
fn holdout() -> f64 {
    0.2
}
fn default_epochs() -> usize {
    50
}
fn default_steps() -> usize {
    2000
}

impl ControlConfig {
    pub fn validate(&self) -> Result<()> {
        self.tie_margin.validate().map_err(Error::config)?;
        if self.kind != "control" {
            return Err(Error::config(format!("kind must be \"control\", but is {:?}", self.kind)));
        }
        if self.seeds == 0 || self.epochs == 0 || self.steps_per_epoch == 0 {
            return Err(Error::config("seeds, epochs and steps_per_epoch must be >= 1"));
        }
        if !(0.0..1.0).contains(&self.holdout_fraction) {
            return Err(Error::config(format!("holdout_fraction must be in [0, 1), but is {}", self.holdout_fraction)));
        }
        let l = &self.loads;
        if l.values.is_empty() || l.values.iter().any(|v| !(*v > 0.0 && v.is_finite())) {
            return Err(Error::config("loads.values must be one or more loads > 0"));
        }
        if let Some(w) = &l.weights {
            if w.len() != l.values.len() || w.iter().any(|x| !(*x >= 0.0 && x.is_finite())) || w.iter().sum::<f64>() <= 0.0 {
                return Err(Error::config("loads.weights must give one weight >= 0 per load, not all 0"));
            }
        }
        if self.models.is_empty() || self.learners.is_empty() || self.objectives.is_empty() {
            return Err(Error::config("models, learners and [[objectives]] each need at least one entry"));
        }
        super::refuse_repeats("models", &self.models)?;
        super::refuse_repeats("learners", &self.learners)?;
        super::refuse_repeats("loads.values", &self.loads.values)?;
        for (i, o) in self.objectives.iter().enumerate() {
            o.validate()?;
            if self.objectives[..i].iter().any(|p| p.name == o.name) {
                return Err(Error::config(format!("two objectives are named {:?}", o.name)));
            }
        }
        self.deploy.validate()?;
        self.trace.validate()?;
        self.forest.validate()?;
        self.dqn.validate()?;
        self.ppo.validate()
    }

    pub(crate) fn weights(&self) -> Vec<f64> {
        let raw = self.loads.weights.clone().unwrap_or_else(|| vec![1.0; self.loads.values.len()]);
        let total: f64 = raw.iter().sum();
        raw.iter().map(|w| w / total).collect()
    }

    fn seed_list(&self) -> Vec<u64> {
        (0..self.seeds as u64).map(|r| self.seed + r).collect()
    }

    /// The models an objective is scored on: those that predict what its reward needs.
    fn models_for(&self, objective: &Objective) -> Vec<ModelInputs> {
        self.models.iter().copied().filter(|m| m.predicts_carried() || !objective.needs_carried()).collect()
    }
}

/// Refuses loads or settings the trace never measured: the model's answer there would be an
/// extrapolation, and the measured optimum would not exist.
pub(crate) fn check_coverage(cfg: &ControlConfig, trace: &ControlTrace) -> Result<()> {
    let (lo, hi) = trace.load_range();
    for &load in &cfg.loads.values {
        if load < lo || load > hi {
            return Err(Error::config(format!(
                "load {load} lies outside the trace's offered loads {lo}-{hi} ({}): the model's answer there would be an extrapolation",
                trace.path.display()
            )));
        }
        for o in &cfg.objectives {
            if let Some(k) = o.actions().iter().find(|k| trace.measured(load, k).is_none()) {
                return Err(Error::config(format!(
                    "objective {}: the trace {} has no rows at load {load} with routing {}, blocking {}, replicas {}",
                    o.name,
                    trace.path.display(),
                    k.routing,
                    k.blocking,
                    k.replicas
                )));
            }
        }
    }
    Ok(())
}

/// The models of one seed: on every sample, and with settings held out.
pub struct SeedModels {
    pub seed: u64,
    pub inputs: ModelInputs,
    pub full: ControlModel,
    pub held_out: ControlModel,
}

fn fit_models(cfg: &ControlConfig, trace: &ControlTrace) -> Result<Vec<SeedModels>> {
    let jobs: Vec<(u64, ModelInputs)> = cfg.seed_list().into_iter().flat_map(|s| cfg.models.iter().map(move |m| (s, *m))).collect();
    jobs.par_iter()
        .map(|&(seed, inputs)| {
            let mut settings = trace.settings();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(2);
            settings.shuffle(&mut rng);
            settings.truncate((settings.len() as f64 * cfg.holdout_fraction).round() as usize);
            let w = cfg.trace.window_s;
            Ok(SeedModels {
                seed,
                inputs,
                full: ControlModel::fit(trace, inputs, &cfg.forest, w, vec![], seed)?,
                held_out: ControlModel::fit(trace, inputs, &cfg.forest, w, settings, seed)?,
            })
        })
        .collect()
}

/// Rewards and delays of every (load, action) under one objective.
#[derive(Debug, Clone)]
pub struct RewardTable {
    pub reward: Vec<Vec<f64>>,
    pub delay: Vec<Vec<f64>>,
}

fn model_table(cfg: &ControlConfig, objective: &Objective, model: &ControlModel) -> Result<RewardTable> {
    let actions = objective.actions();
    let queries: Vec<(f64, Knobs)> = cfg.loads.values.iter().flat_map(|&l| actions.iter().map(move |k| (l, *k))).collect();
    let outcomes = model.predict(&queries)?;
    let n = actions.len();
    let mut t = RewardTable { reward: vec![], delay: vec![] };
    for row in outcomes.chunks(n) {
        t.reward.push(
            row.iter()
                .zip(&actions)
                .map(|(o, k)| {
                    objective.reward(k, o).ok_or_else(|| Error::config(format!("objective {} needs the carried load", objective.name)))
                })
                .collect::<Result<_>>()?,
        );
        t.delay.push(row.iter().map(|o| o.delay).collect());
    }
    Ok(t)
}

pub(crate) fn measured_table(cfg: &ControlConfig, objective: &Objective, trace: &ControlTrace) -> RewardTable {
    let actions = objective.actions();
    let mut t = RewardTable { reward: vec![], delay: vec![] };
    for &l in &cfg.loads.values {
        // check_coverage made sure every setting is measured.
        let outcomes: Vec<_> = actions.iter().map(|k| trace.measured(l, k).expect("coverage checked")).collect();
        t.reward.push(actions.iter().zip(&outcomes).map(|(k, o)| objective.reward(k, o).expect("measured outcomes carry load")).collect());
        t.delay.push(outcomes.iter().map(|o| o.delay).collect());
    }
    t
}

/// One finished cell: the greedy policy after training and the learning curve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlCell {
    pub key: String,
    pub objective: String,
    pub model: ModelInputs,
    pub learner: LearnerKind,
    pub seed: u64,
    /// The greedy action at each load of the process.
    pub policy: Vec<usize>,
    /// Mean model reward of the agent's (exploring) actions, per epoch.
    pub curve: Series,
    pub seconds: f64,
}

impl Cell for ControlCell {
    fn key(&self) -> &str {
        &self.key
    }
}

struct Job {
    index: usize,
    objective: usize,
    objective_name: String,
    model: ModelInputs,
    learner: LearnerKind,
    seed: u64,
    key: String,
}

impl Job {
    fn cell_name(&self) -> String {
        format!("{}_{}_seed{}", self.model.name(), self.learner.name(), self.seed)
    }
}

/// Everything the cells and the report share: per objective, the measured table and, per
/// (model, seed), the model's tables.
pub struct Tables {
    pub measured: Vec<RewardTable>,
    /// `models[objective]`: (inputs, seed, full model's table, held-out model's table).
    pub models: Vec<Vec<(ModelInputs, u64, RewardTable, RewardTable)>>,
}

impl Tables {
    fn model(&self, objective: usize, inputs: ModelInputs, seed: u64) -> &RewardTable {
        &self.models[objective].iter().find(|m| m.0 == inputs && m.1 == seed).expect("every model is fitted").2
    }
}

pub fn run(cfg: &ControlConfig, stage: Stage, options: RunOptions) -> Result<()> {
    let trace = ControlTrace::load(&cfg.trace)?;
    check_coverage(cfg, &trace)?;
    let fingerprint = crate::data::fingerprint(&cfg.trace.path)?;
    let checked = RunDir::check(&cfg.out_dir, cfg, &[], &[])?;
    println!(
        "{}: {} rows ({} censored: nothing completed), {} settings; fitting {} forests",
        trace.path.display(),
        trace.samples.len(),
        trace.censored_rows(),
        trace.settings().len(),
        2 * cfg.models.len() * cfg.seeds
    );
    let fitted = fit_models(cfg, &trace)?;
    // As in Table 5: candle's kernels on one thread each (and it then stops asking the
    // system for its core count at every product), whole cells in parallel instead. Set
    // after the fits, which use rayon's global pool; the cells run in pools of their own.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let mut tables = Tables { measured: vec![], models: vec![] };
    for o in &cfg.objectives {
        tables.measured.push(measured_table(cfg, o, &trace));
        let mut per = vec![];
        for m in fitted.iter().filter(|m| cfg.models_for(o).contains(&m.inputs)) {
            per.push((m.inputs, m.seed, model_table(cfg, o, &m.full)?, model_table(cfg, o, &m.held_out)?));
        }
        tables.models.push(per);
    }

    let mut planned = Vec::new();
    for (oi, o) in cfg.objectives.iter().enumerate() {
        for model in cfg.models_for(o) {
            for &learner in &cfg.learners {
                for seed in cfg.seed_list() {
                    let key = json(&(
                        o,
                        &cfg.trace,
                        &fingerprint,
                        &cfg.loads,
                        &cfg.forest,
                        model,
                        (cfg.epochs, cfg.steps_per_epoch),
                        learner.name(),
                        learner.settings_json(&cfg.dqn, &cfg.ppo),
                        seed,
                    ));
                    let job = Job { index: planned.len(), objective: oi, objective_name: o.name.clone(), model, learner, seed, key };
                    planned.push(match checked.read_cell::<ControlCell>(&o.name, &job.cell_name(), &job.key) {
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
    let (cells, training) = super::estimate::training(
        &planned,
        |_| (cfg.epochs * cfg.steps_per_epoch) as u64,
        Workers::new(cfg.parallel_cells).cells,
        |j| j.learner.name().to_string(),
        |j| {
            let env = cell_env(cfg, j, &tables, &cfg.objectives[j.objective])?;
            super::estimate::seconds_per_step(&env, j.learner.spec(&cfg.dqn, &cfg.ppo), cfg.epochs * cfg.steps_per_epoch)
        },
    )?;
    super::estimate::Estimate { cells, work: vec![training] }.check(options.allow_long)?;
    let dir = checked.create()?;
    let label = |j: &Job| Label {
        prefix: format!("cell {}/{total} {} {}", j.index + 1, cfg.objectives[j.objective].name, j.cell_name()),
        units: cfg.epochs as u64,
    };
    let coordination = DirCoordination { dir: &dir, claims: Claims::start() };
    let cells = run_resumable(planned, Workers::new(cfg.parallel_cells), "epoch", &coordination, label, |job, progress| {
        let o = &cfg.objectives[job.objective];
        let cell = train_cell(cfg, job, &tables, o, &progress.bar)?;
        dir.write_cell(&o.name, &job.cell_name(), &cell)?;
        Ok(cell)
    })?;
    if !report_due(stage, cells.len(), total, &missing, &cfg.out_dir) {
        return Ok(());
    }
    report::write(cfg, &trace, &tables, &cells, &dir)?;
    println!("wrote {}", cfg.out_dir.join("control.md").display());
    Ok(())
}

/// A cell's environment: its model's table to learn on, the measured one to score on.
fn cell_env(cfg: &ControlConfig, job: &Job, tables: &Tables, o: &Objective) -> Result<ControlEnv> {
    ControlEnv::new(ControlTables {
        loads: cfg.loads.values.clone(),
        weights: cfg.weights(),
        actions: o.actions().iter().map(report::describe_knobs).collect(),
        model: tables.model(job.objective, job.model, job.seed).reward.clone(),
        truth: tables.measured[job.objective].reward.clone(),
    })
}

fn train_cell(cfg: &ControlConfig, job: &Job, tables: &Tables, o: &Objective, bar: &indicatif::ProgressBar) -> Result<ControlCell> {
    let started = Instant::now();
    let env = cell_env(cfg, job, tables, o)?;
    let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
    let mut learner = job.learner.spec(&cfg.dqn, &cfg.ppo).build(crate::env::Environment::layout(&env), &mut rng)?;
    let schedule = Schedule { epochs: cfg.epochs, steps_per_epoch: cfg.steps_per_epoch };
    let training = train(&env, learner.as_mut(), schedule, &mut rng, bar, None)?;
    let mut policy = Vec::with_capacity(cfg.loads.values.len());
    for l in 0..cfg.loads.values.len() {
        policy.push(learner.act_greedy(0, &[env.observation(l)])?[0]);
    }
    Ok(ControlCell {
        key: job.key.clone(),
        objective: o.name.clone(),
        model: job.model,
        learner: job.learner,
        seed: job.seed,
        policy,
        curve: Series(training.log.rl_reward),
        seconds: started.elapsed().as_secs_f64(),
    })
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

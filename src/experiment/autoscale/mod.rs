//! Autoscaling over time (issue 17, seed 004): a deployment scaled by -1, 0 or +1 replica
//! every step against a load process, the latency from a forest of the TNSM2023 trace
//! (routing fixed to node 1, no blocking), 004's reward. Yardsticks: the exact optimum
//! (backward induction), the myopic policy and the Kubernetes HPA; agents: DQN and PPO.
//! Every policy is scored on the same load paths, on the model's latency and on the
//! measured one.
//!
//! - [`yardsticks`]: optimum, myopic, HPA; [`evaluate`]: episodes of any policy;
//! - `report`: the table, curves, one episode's plot, the HPA as YAML and the policies
//!   as lookup tables (and networks) that `meshrl serve` loads.

pub mod evaluate;
mod report;
pub mod yardsticks;

use std::path::PathBuf;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::cells::{report_due, run_resumable, split_by_stage, Label, Planned, Workers};
use super::claims::Claims;
use super::compare::TieMargin;
use super::control::model::{ControlModel, ModelInputs};
use super::control::trace::{ControlTrace, Knobs, TraceConfig};
use super::rundir::{json, Cell, CellJob, DirCoordination, RunDir};
use super::{RunOptions, Stage};
use crate::agent::dqn::DqnConfig;
use crate::agent::ppo::PpoConfig;
use crate::agent::LearnerKind;
use crate::env::autoscale::{LoadDynamics, ScaleState, ScalingEnv, ScalingReward, ScalingSpec, Source};
use crate::error::{Error, Result};
use crate::simulator::baselines::ForestConfig;
use crate::train::{train, Schedule, Series};
use evaluate::{run_episodes, EpisodeStats};
use yardsticks::HpaConfig;

/// How the offered load moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum LoadProcess {
    /// A Markov chain over the loads: stay with probability `stay`, else move to a
    /// neighbouring load (either, equally; the only one at an end). Episodes start at the
    /// lowest load, as the ramp does: a deployment of `start_replicas` starting at a high
    /// load would break the hard bound before any policy could act.
    Markov { stay: f64 },
    /// A fixed profile like 004's k6 script: `stages` of `[steps, load]`, the load moving
    /// linearly from the previous stage's (from `start`) and rounded to the nearest load.
    Profile { start: f64, stages: Vec<(usize, f64)> },
}

/// One load scenario of the experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub load: LoadProcess,
}

/// 004's reward settings; bounds default to the latency source's scale (see `latency_bounds`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    pub soft_s: Option<f64>,
    pub hard_s: Option<f64>,
    pub replica_weight: f64,
    pub latency_weight: f64,
    pub invalid_reward: f64,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig { soft_s: None, hard_s: None, replica_weight: 0.3, latency_weight: 0.7, invalid_reward: -1.0 }
    }
}

/// The autoscaling experiment (experiments/autoscale.toml).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscaleConfig {
    /// Always "autoscale".
    pub kind: String,
    /// Master seed: it fits the latency model; seed + r trains repetition r's agents and
    /// draws its evaluation episodes.
    #[serde(default = "one")]
    pub seed: u64,
    #[serde(default = "five")]
    pub seeds: usize,
    pub out_dir: PathBuf,
    /// The practical margin of the report's verdicts: a difference whose 95 % interval lies
    /// within this share of the yardstick's value is a tie (`experiment::compare`; default
    /// 0.01). It changes the report only, never a cell.
    #[serde(default)]
    pub tie_margin: TieMargin,
    pub trace: TraceConfig,
    /// Offered loads (req/s): the trace's loads the process moves between.
    pub loads: Vec<f64>,
    #[serde(default = "one_u32")]
    pub min_replicas: u32,
    /// 004 scales between 1 and 6; the trace measured 1 to 5.
    #[serde(default = "five_u32")]
    pub max_replicas: u32,
    #[serde(default = "one_u32")]
    pub start_replicas: u32,
    /// Steps a new replica starts before serving (default 1).
    #[serde(default = "one_usize")]
    pub provision_steps: usize,
    /// Steps per episode (004: 200) and seconds per step (004: 10).
    #[serde(default = "horizon")]
    pub horizon: usize,
    #[serde(default = "ten")]
    pub step_s: f64,
    pub scenarios: Vec<Scenario>,
    #[serde(default)]
    pub reward: RewardConfig,
    #[serde(default)]
    pub hpa: HpaConfig,
    #[serde(default)]
    pub forest: ForestConfig,
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
    /// Evaluation episodes per seed and policy.
    #[serde(default = "twenty")]
    pub eval_episodes: usize,
    /// Names in the exported HPA manifest.
    #[serde(default = "deployment")]
    pub deployment: String,
    #[serde(default)]
    pub parallel_cells: Option<usize>,
}

fn one() -> u64 {
    1
}
fn five() -> usize {
    5
}
fn one_u32() -> u32 {
    1
}
fn five_u32() -> u32 {
    5
}
fn one_usize() -> usize {
    1
}
fn horizon() -> usize {
    200
}
fn ten() -> f64 {
    10.0
}
fn twenty() -> usize {
    20
}
fn both_learners() -> Vec<LearnerKind> {
    vec![LearnerKind::Dqn, LearnerKind::Ppo]
}
fn default_epochs() -> usize {
    50
}
fn default_steps() -> usize {
    2000
}
fn deployment() -> String {
    "compute".into()
}

impl AutoscaleConfig {
    pub fn validate(&self) -> Result<()> {
        self.tie_margin.validate().map_err(Error::config)?;
        crate::k8s::check_name("deployment", crate::k8s::NameKind::Subdomain1123, &self.deployment)?;
        if self.kind != "autoscale" {
            return Err(Error::config(format!("kind must be \"autoscale\", but is {:?}", self.kind)));
        }
        if self.seeds == 0 || self.epochs == 0 || self.steps_per_epoch == 0 || self.eval_episodes == 0 {
            return Err(Error::config("seeds, epochs, steps_per_epoch and eval_episodes must be >= 1"));
        }
        if self.loads.is_empty() || self.loads.windows(2).any(|w| w[0] >= w[1]) || self.loads[0] <= 0.0 {
            return Err(Error::config("loads must be one or more loads > 0, ascending"));
        }
        if self.scenarios.is_empty() || self.learners.is_empty() {
            return Err(Error::config("scenarios and learners each need at least one entry"));
        }
        super::refuse_repeats("learners", &self.learners)?;
        if !(self.step_s.is_finite() && self.step_s > 0.0) {
            return Err(Error::config(format!("step_s must be a number of seconds > 0, but is {}", self.step_s)));
        }
        if self.min_replicas > self.max_replicas {
            return Err(Error::config(format!(
                "min_replicas ({}) must not exceed max_replicas ({})",
                self.min_replicas, self.max_replicas
            )));
        }
        let (lowest, highest) = (self.loads[0], self.loads[self.loads.len() - 1]);
        for (i, s) in self.scenarios.iter().enumerate() {
            if s.name.is_empty()
                || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                || self.scenarios[..i].iter().any(|o| o.name == s.name)
            {
                return Err(Error::config(format!("scenario name {:?} must be unique letters, digits, _ or -", s.name)));
            }
            match &s.load {
                LoadProcess::Markov { stay } if !(0.0..=1.0).contains(stay) => {
                    return Err(Error::config(format!("scenario {}: stay must lie in [0, 1]", s.name)))
                }
                LoadProcess::Profile { stages, .. } if stages.is_empty() => {
                    return Err(Error::config(format!("scenario {}: a profile needs at least one stage", s.name)))
                }
                LoadProcess::Profile { start, stages } => {
                    // A stage of no steps would skip its load: the next stage starts from a
                    // load the profile never reached.
                    if let Some(k) = stages.iter().position(|stage| stage.0 == 0) {
                        return Err(Error::config(format!(
                            "scenario {}: the profile's stages[{k}] lasts 0 steps; a stage lasts at least 1",
                            s.name
                        )));
                    }
                    // A profile moves between the loads the latency table has: beyond them it
                    // would be an extrapolation.
                    let named = std::iter::once(("start".to_string(), *start))
                        .chain(stages.iter().enumerate().map(|(k, stage)| (format!("stages[{k}]"), stage.1)));
                    for (which, x) in named {
                        if !(x.is_finite() && (lowest..=highest).contains(&x)) {
                            return Err(Error::config(format!(
                                "scenario {}: the profile's {which} load {x} lies outside loads {lowest}-{highest}: the latency table has no such load",
                                s.name
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
        self.trace.validate()?;
        self.hpa.validate()?;
        self.forest.validate()?;
        self.dqn.validate()?;
        self.ppo.validate()
    }

    fn seed_list(&self) -> Vec<u64> {
        (0..self.seeds as u64).map(|r| self.seed + r).collect()
    }
}

/// The latency tables `[load][replicas - min]`: the forest's and the measured means, at
/// routing 100 (every request to the scaled service) and no blocking.
/// Latency, seconds, by `[load][replicas - min]`.
type LatencyTable = Vec<Vec<f64>>;

fn latency_tables(cfg: &AutoscaleConfig, trace: &ControlTrace) -> Result<(LatencyTable, LatencyTable)> {
    let model = ControlModel::fit(trace, ModelInputs::Controller, &cfg.forest, cfg.trace.window_s, vec![], cfg.seed)?;
    let knobs = |c: u32| Knobs { routing: 100.0, blocking: 0.0, replicas: c };
    let (lo, hi) = trace.load_range();
    let mut queries = Vec::new();
    let mut truth = Vec::new();
    for &load in &cfg.loads {
        if load < lo || load > hi {
            return Err(Error::config(format!(
                "load {load} lies outside the trace's offered loads {lo}-{hi} ({}): the model's answer there would be an extrapolation",
                trace.path.display()
            )));
        }
        let mut row = Vec::new();
        for c in cfg.min_replicas..=cfg.max_replicas {
            let measured = trace.measured(load, &knobs(c)).ok_or_else(|| {
                Error::config(format!(
                    "the trace {} has no rows at load {load} with routing 100, no blocking and {c} replicas",
                    trace.path.display()
                ))
            })?;
            row.push(measured.delay);
            queries.push((load, knobs(c)));
        }
        truth.push(row);
    }
    let width = (cfg.max_replicas - cfg.min_replicas + 1) as usize;
    let predicted = model.predict(&queries)?;
    let model_table = predicted.chunks(width).map(|row| row.iter().map(|o| o.delay).collect()).collect();
    Ok((model_table, truth))
}

/// 004's bounds are 200 ms and 600 ms on a service far faster than the trace's (its mean
/// delay is at least 0.25 s at routing 100). By default the soft bound is 1.25 times the
/// model's latency of the unloaded service (lowest load, most replicas) and the hard bound
/// three times the soft one, 004's ratio.
pub fn latency_bounds(cfg: &AutoscaleConfig, model: &[Vec<f64>]) -> (f64, f64) {
    let unloaded = *model[0].last().unwrap_or(&1.0);
    let soft = cfg.reward.soft_s.unwrap_or(1.25 * unloaded);
    (soft, cfg.reward.hard_s.unwrap_or(3.0 * soft))
}

fn dynamics(cfg: &AutoscaleConfig, process: &LoadProcess) -> LoadDynamics {
    let n = cfg.loads.len();
    match process {
        LoadProcess::Markov { stay } => {
            let transition = (0..n)
                .map(|i| {
                    let mut row = vec![0.0; n];
                    row[i] = *stay;
                    let neighbours: Vec<usize> = [i.wrapping_sub(1), i + 1].into_iter().filter(|&j| j < n).collect();
                    for &j in &neighbours {
                        row[j] += (1.0 - stay) / neighbours.len() as f64;
                    }
                    if neighbours.is_empty() {
                        row[i] = 1.0;
                    }
                    row
                })
                .collect();
            let mut start = vec![0.0; n];
            start[0] = 1.0;
            LoadDynamics::Markov { transition, start }
        }
        LoadProcess::Profile { start, stages } => {
            let nearest = |x: f64| (0..n).min_by(|&a, &b| (cfg.loads[a] - x).abs().total_cmp(&(cfg.loads[b] - x).abs())).unwrap_or(0);
            let mut by_step = vec![nearest(*start)];
            let mut from = *start;
            for &(steps, to) in stages {
                for k in 1..=steps {
                    by_step.push(nearest(from + (to - from) * k as f64 / steps as f64));
                }
                from = to;
            }
            by_step.resize(cfg.horizon + 1, *by_step.last().unwrap_or(&0));
            LoadDynamics::Profile { by_step }
        }
    }
}

/// The problem of one scenario.
pub fn scaling_spec(cfg: &AutoscaleConfig, scenario: &Scenario, model: &[Vec<f64>], truth: &[Vec<f64>]) -> Result<ScalingSpec> {
    let (soft_s, hard_s) = latency_bounds(cfg, model);
    let spec = ScalingSpec {
        loads: cfg.loads.clone(),
        min_replicas: cfg.min_replicas,
        max_replicas: cfg.max_replicas,
        start_replicas: cfg.start_replicas,
        provision_steps: cfg.provision_steps,
        horizon: cfg.horizon,
        step_s: cfg.step_s,
        dynamics: dynamics(cfg, &scenario.load),
        reward: ScalingReward {
            soft_s,
            hard_s,
            replica_weight: cfg.reward.replica_weight,
            latency_weight: cfg.reward.latency_weight,
            invalid_reward: cfg.reward.invalid_reward,
        },
        model_latency: model.to_vec(),
        truth_latency: truth.to_vec(),
    };
    spec.validate()?;
    Ok(spec)
}

/// One finished cell: an agent's training curve and its greedy policy's episodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AutoscaleCell {
    pub key: String,
    pub scenario: String,
    pub learner: LearnerKind,
    pub seed: u64,
    pub curve: Series,
    pub on_model: EpisodeStats,
    pub measured: EpisodeStats,
    pub episode: Vec<evaluate::Trace>,
    /// The greedy policy at the start of an episode, as a lookup table.
    pub table: crate::policy::LookupPolicy,
    pub seconds: f64,
}

impl Cell for AutoscaleCell {
    fn key(&self) -> &str {
        &self.key
    }
}

struct Job {
    index: usize,
    scenario: usize,
    scenario_name: String,
    learner: LearnerKind,
    seed: u64,
    key: String,
}

impl CellJob for Job {
    fn dataset(&self) -> &str {
        &self.scenario_name
    }
    fn name(&self) -> String {
        format!("{}_seed{}", self.learner.name(), self.seed)
    }
    fn key(&self) -> &str {
        &self.key
    }
}

pub fn run(cfg: &AutoscaleConfig, stage: Stage, options: RunOptions) -> Result<()> {
    let trace = ControlTrace::load(&cfg.trace)?;
    let (model, truth) = latency_tables(cfg, &trace)?;
    let specs: Vec<ScalingSpec> = cfg.scenarios.iter().map(|s| scaling_spec(cfg, s, &model, &truth)).collect::<Result<_>>()?;
    let fingerprint = crate::data::fingerprint(&cfg.trace.path)?;
    let checked = RunDir::check(&cfg.out_dir, cfg, &[], &[])?;
    // Candle's kernels on one thread each, whole cells in parallel (as in Table 5).
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let mut planned = Vec::new();
    for (si, (scenario, spec)) in cfg.scenarios.iter().zip(&specs).enumerate() {
        for &learner in &cfg.learners {
            for seed in cfg.seed_list() {
                let settings = learner.settings_json(&cfg.dqn, &cfg.ppo);
                let key = json(&(spec, &fingerprint, (cfg.epochs, cfg.steps_per_epoch, cfg.eval_episodes), learner.name(), settings, seed));
                let job = Job { index: planned.len(), scenario: si, scenario_name: scenario.name.clone(), learner, seed, key };
                planned.push(match checked.read_cell::<AutoscaleCell>(&scenario.name, &job.name(), &job.key) {
                    Some(cell) => Planned::Done(cell),
                    None => Planned::Todo(job),
                });
            }
        }
    }
    let total = planned.len();
    let (planned, missing) = split_by_stage(planned, stage, |j: &Job| format!("{} {}", j.scenario_name, j.name()));
    if stage == Stage::Prepare {
        checked.create()?;
        println!("prepared {}", cfg.out_dir.display());
        return Ok(());
    }
    let (cells, training) = super::estimate::training(
        &planned,
        |_| (cfg.epochs * cfg.steps_per_epoch) as u64,
        Workers::new(cfg.parallel_cells).cells,
        |j| format!("{} {}", j.scenario_name, j.learner.name()),
        |j| {
            let env = ScalingEnv::new(specs[j.scenario].clone())?;
            super::estimate::seconds_per_step(&env, j.learner.spec(&cfg.dqn, &cfg.ppo), cfg.epochs * cfg.steps_per_epoch)
        },
    )?;
    super::estimate::Estimate { cells, work: vec![training] }.check(options.allow_long)?;
    let dir = checked.create()?;
    let label =
        |j: &Job| Label { prefix: format!("cell {}/{total} {} {}", j.index + 1, j.scenario_name, j.name()), units: cfg.epochs as u64 };
    let coordination = DirCoordination { dir: &dir, claims: Claims::start() };
    let cells = run_resumable(planned, Workers::new(cfg.parallel_cells), "epoch", &coordination, label, |job, progress| {
        let cell = train_cell(cfg, job, &specs[job.scenario], &dir, &progress.bar)?;
        dir.write_cell(&job.scenario_name, &job.name(), &cell)?;
        Ok(cell)
    })?;
    if !report_due(stage, cells.len(), total, &missing, &cfg.out_dir) {
        return Ok(());
    }
    report::write(cfg, &specs, &cells, &dir)?;
    println!("wrote {}", cfg.out_dir.join("autoscale.md").display());
    Ok(())
}

fn train_cell(cfg: &AutoscaleConfig, job: &Job, spec: &ScalingSpec, dir: &RunDir, bar: &indicatif::ProgressBar) -> Result<AutoscaleCell> {
    use crate::env::Environment;
    let started = Instant::now();
    let env = ScalingEnv::new(spec.clone())?;
    let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
    let mut learner = job.learner.spec(&cfg.dqn, &cfg.ppo).build(env.layout(), &mut rng)?;
    let schedule = Schedule { epochs: cfg.epochs, steps_per_epoch: cfg.steps_per_epoch };
    let training = train(&env, learner.as_mut(), schedule, &mut rng, bar, None)?;
    let greedy = |s: &ScaleState| -> Result<i32> { Ok(crate::env::autoscale::delta_of(learner.act_greedy(0, &[spec.observe(s)])?[0])) };
    let (on_model, episode) = run_episodes(spec, Source::Model, job.seed, cfg.eval_episodes, greedy)?;
    let (measured, _) = run_episodes(spec, Source::Truth, job.seed, cfg.eval_episodes, greedy)?;
    let table = crate::policy::LookupPolicy::tabulate(spec, 0, greedy)?;
    if job.seed == cfg.seed && !spec.is_profile() {
        // The master seed's network, for `meshrl serve` (not under a profile: its policy
        // depends on the time, which a server is not told).
        let path = dir.join(format!("policies/{}/{}.policy", job.scenario_name, job.learner.name()));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        crate::policy::NetworkPolicy::save(&path, spec, job.learner, &cfg.dqn, &cfg.ppo, learner.as_ref())?;
    }
    Ok(AutoscaleCell {
        key: job.key.clone(),
        scenario: job.scenario_name.clone(),
        learner: job.learner,
        seed: job.seed,
        curve: Series(training.log.rl_reward),
        on_model,
        measured,
        episode,
        table,
        seconds: started.elapsed().as_secs_f64(),
    })
}

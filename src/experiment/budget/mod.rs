//! Budget curves (issue 27): for a problem and a list of budgets, every search method
//! spends at most B ground-truth runs and recommends one choice per state; the
//! recommendation's true value is measured on fresh runs, the same common-random-number
//! seeds for every method. Verdicts come from [`crate::experiment::compare`].
//!
//! The problems ([`problem`]): the defender, the SFR2L load search and seed 002's control
//! problem, each with one or more variants (a panel: per load and robust, a dataset, an
//! objective). B is the total over a variant's states; a per-state method splits it evenly.
//! DQN and PPO are on the curves too ([`agents`]), trained with B ground-truth interactions.
//!
//! A cell is one (variant, method or learner, budget, seed); the exhaustive search is a
//! cell of its own per variant (its spending is what the space needs, reported beside it).

pub mod agents;
pub mod problem;
mod report;

use std::path::PathBuf;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::cells::{report_due, run_resumable, split_by_stage, Label, Planned, Workers};
use super::claims::Claims;
use super::compare::TieMargin;
use super::estimate::{Estimate, Work};
use super::rundir::{json, Cell, CellJob, DirCoordination};
use super::{RunOptions, Stage};
use crate::agent::dqn::DqnConfig;
use crate::agent::ppo::PpoConfig;
use crate::agent::LearnerKind;
use crate::error::{Error, Result};
use crate::search::{Evaluator, Method};
use crate::seeding::mix;
use agents::AgentSettings;
use problem::{Problem, ProblemConfig, Variant};

/// The budget experiment (experiments/budget_*.toml).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Always "budget".
    pub kind: String,
    /// Master seed: the fresh scoring runs derive from it; repetition r searches with `seed + r`.
    #[serde(default = "one")]
    pub seed: u64,
    /// Seeds per (method, budget); at least 10 for the verdicts to have power.
    #[serde(default = "ten")]
    pub seeds: usize,
    pub out_dir: PathBuf,
    /// The practical margin of the verdicts (`experiment::compare`; default 0.01).
    #[serde(default)]
    pub tie_margin: TieMargin,
    /// The problem searched (`[problem.defend]`, `[problem.attack]` or `[problem.control]`).
    pub problem: ProblemConfig,
    /// Ground-truth runs a method may spend, in total over the states.
    pub budgets: Vec<usize>,
    pub methods: Vec<Method>,
    /// Learners on the curves, each trained with B ground-truth interactions (default none).
    #[serde(default)]
    pub agents: Vec<LearnerKind>,
    #[serde(default)]
    pub dqn: DqnConfig,
    #[serde(default)]
    pub ppo: PpoConfig,
    /// The exhaustive yardstick (`repeats = 0`: none).
    #[serde(default)]
    pub exhaustive: ExhaustiveSettings,
    /// Fresh runs per (load, recommendation) on which every method is scored.
    #[serde(default = "twenty")]
    pub score_runs: usize,
    /// Cells computed at once; default: the number of cores.
    #[serde(default)]
    pub parallel_cells: Option<usize>,
}

/// The exhaustive search's settings (config `[exhaustive]`), those of the defend
/// experiment's oracle by default: every rule 3 times, the 50 best 20 times more.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExhaustiveSettings {
    pub repeats: usize,
    pub shortlist: usize,
    pub refine: usize,
}

impl Default for ExhaustiveSettings {
    fn default() -> Self {
        ExhaustiveSettings { repeats: 3, shortlist: 50, refine: 20 }
    }
}

impl ExhaustiveSettings {
    pub fn method(&self) -> Method {
        Method::Exhaustive { repeats: self.repeats, shortlist: self.shortlist, refine: self.refine }
    }
}

fn one() -> u64 {
    1
}
fn ten() -> usize {
    10
}
fn twenty() -> usize {
    20
}

impl BudgetConfig {
    pub fn validate(&self) -> Result<()> {
        self.tie_margin.validate().map_err(Error::config)?;
        if self.kind != "budget" {
            return Err(Error::config(format!("kind must be \"budget\", but is {:?}", self.kind)));
        }
        if self.seeds == 0 || self.score_runs == 0 {
            return Err(Error::config("seeds and score_runs must be >= 1"));
        }
        if self.budgets.is_empty() || self.methods.is_empty() {
            return Err(Error::config("budgets and methods each need at least one entry"));
        }
        if let Some(i) = self.budgets.iter().position(|&b| b == 0) {
            return Err(Error::config(format!("budgets[{i}] must be >= 1")));
        }
        for (i, m) in self.methods.iter().enumerate() {
            m.validate().map_err(|e| Error::config(format!("methods[{i}]: {e}")))?;
            if !m.is_budgeted() {
                return Err(Error::config(format!("methods[{i}]: the exhaustive search is the yardstick; set [exhaustive]")));
            }
        }
        super::refuse_repeats("budgets", &self.budgets)?;
        super::refuse_repeats("methods", &self.methods.iter().map(Method::name).collect::<Vec<_>>())?;
        super::refuse_repeats("agents", &self.agents)?;
        self.settings().validate()?;
        self.problem.validate()
    }

    pub fn settings(&self) -> AgentSettings {
        AgentSettings { dqn: self.dqn.clone(), ppo: self.ppo.clone() }
    }

    /// Every entry on a variant's curves: the search methods, then the learners, each once
    /// per agent layout of the variant.
    fn entries(&self, v: &dyn Variant) -> Vec<Entry> {
        let methods = self.methods.iter().cloned().map(Entry::Search);
        let layouts = v.agent_layouts();
        let agents = self.agents.iter().flat_map(|&l| layouts.iter().map(move |layout| Entry::Agent(l, layout.clone())));
        methods.chain(agents).collect()
    }

    /// The names of [`BudgetConfig::entries`], in order.
    pub fn entry_names(&self, v: &dyn Variant) -> Vec<String> {
        self.entries(v).iter().map(Entry::name).collect()
    }
}

/// What a cell runs: a search method (the exhaustive yardstick among them), a learner in
/// one of the variant's agent layouts ("" where it has one), or a yardstick of the variant.
#[derive(Debug, Clone, Serialize)]
enum Entry {
    Search(Method),
    Agent(LearnerKind, String),
    Yardstick(String),
}

impl Entry {
    fn name(&self) -> String {
        match self {
            Entry::Search(m) => m.name(),
            Entry::Agent(l, layout) if layout.is_empty() => l.name().to_string(),
            Entry::Agent(l, layout) => format!("{}_{layout}", l.name()),
            Entry::Yardstick(name) => name.clone(),
        }
    }
}

/// One finished cell: the recommendation per state, what it cost, and its fresh value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BudgetCell {
    pub key: String,
    /// The problem's variant (a panel).
    pub variant: String,
    /// The search method or the learner.
    pub method: String,
    /// The budget given (the exhaustive search: the runs it needed).
    pub budget: usize,
    pub seed: u64,
    /// Ground-truth runs spent, in total.
    pub spent: usize,
    /// The recommended point per state.
    pub points: Vec<Vec<usize>>,
    /// The recommendations' true value on the fresh runs (the variant says how states
    /// combine).
    pub value: f64,
    pub seconds: f64,
}

impl Cell for BudgetCell {
    fn key(&self) -> &str {
        &self.key
    }
}

struct Job {
    index: usize,
    variant: usize,
    variant_name: String,
    entry: Entry,
    /// `None`: the exhaustive yardstick.
    budget: Option<usize>,
    seed: u64,
    key: String,
}

impl Job {
    fn cell_name(&self) -> String {
        match self.budget {
            Some(b) => format!("{}_{}_b{b}_seed{}", self.variant_name, self.entry.name(), self.seed),
            None => format!("{}_{}", self.variant_name, self.entry.name()),
        }
    }
}

impl CellJob for Job {
    fn dataset(&self) -> &str {
        "cells"
    }
    fn name(&self) -> String {
        self.cell_name()
    }
    fn key(&self) -> &str {
        &self.key
    }
}

/// Config keys a finished run directory may be rerun with changed (cells are added).
const EXTENDABLE: &[&str] = &["methods", "agents", "budgets", "seeds"];

/// Seed stream of the fresh scoring runs (the searches' own runs derive from their seeds).
const FRESH_STREAM: u64 = 2;

pub fn run(cfg: &BudgetConfig, stage: Stage, options: RunOptions) -> Result<()> {
    let started = Instant::now();
    let problem = cfg.problem.build(cfg.seed)?;
    // Every cell's key holds all that decides its numbers, so a run directory may grow:
    // more methods, learners, budgets or seeds add cells beside the finished ones.
    let checked = super::rundir::RunDir::check(&cfg.out_dir, cfg, EXTENDABLE, &[])?;
    println!(
        "budget: {} variant(s) {:?}; budgets {:?}; entries {:?}; {} seeds",
        problem.variants.len(),
        problem.variants.iter().map(|v| v.name()).collect::<Vec<_>>(),
        cfg.budgets,
        cfg.entry_names(problem.variants[0].as_ref()),
        cfg.seeds
    );
    let settings = cfg.settings();
    let mut planned = Vec::new();
    let mut plan = |variant: usize, entry: Entry, budget: Option<usize>, seed: u64| {
        let v = &problem.variants[variant];
        let learner = match &entry {
            Entry::Agent(l, _) => l.settings_json(&settings.dqn, &settings.ppo),
            Entry::Search(_) | Entry::Yardstick(_) => String::new(),
        };
        let key = json(&(v.key(), &entry, &learner, budget, seed, cfg.score_runs, cfg.seed));
        let job = Job { index: planned.len(), variant, variant_name: v.name(), entry, budget, seed, key };
        planned.push(match checked.read_cell::<BudgetCell>("cells", &job.cell_name(), &job.key) {
            Some(cell) => Planned::Done(cell),
            None => Planned::Todo(job),
        });
    };
    for variant in 0..problem.variants.len() {
        if cfg.exhaustive.repeats > 0 {
            plan(variant, Entry::Search(cfg.exhaustive.method()), None, cfg.seed);
        }
        for (name, _) in problem.variants[variant].yardsticks() {
            plan(variant, Entry::Yardstick(name), None, cfg.seed);
        }
        for entry in cfg.entries(problem.variants[variant].as_ref()) {
            for &budget in &cfg.budgets {
                for r in 0..cfg.seeds as u64 {
                    plan(variant, entry.clone(), Some(budget), cfg.seed.wrapping_add(r));
                }
            }
        }
    }
    let total = planned.len();
    let (planned, missing) = split_by_stage(planned, stage, Job::cell_name);
    if stage == Stage::Prepare {
        checked.create()?;
        println!("prepared {}", cfg.out_dir.display());
        return Ok(());
    }
    estimate(cfg, &problem, &planned)?.check(options.allow_long)?;
    // As the other learning experiments: candle's kernels on one thread each, whole cells in
    // parallel instead.
    if !cfg.agents.is_empty() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let dir = checked.create()?;
    let label = |j: &Job| Label { prefix: format!("cell {}/{total} {}", j.index + 1, j.cell_name()), units: 1 };
    let coordination = DirCoordination { dir: &dir, claims: Claims::start() };
    let cells = run_resumable(planned, Workers::new(cfg.parallel_cells), "cell", &coordination, label, |job, progress| {
        let cell = compute_cell(cfg, problem.variants[job.variant].as_ref(), &settings, job)?;
        progress.bar.inc(1);
        dir.write_cell("cells", &job.cell_name(), &cell)?;
        Ok(cell)
    })?;
    if !report_due(stage, cells.len(), total, &missing, &cfg.out_dir) {
        return Ok(());
    }
    report::write(cfg, &problem, &cells, &dir, started.elapsed().as_secs_f64())?;
    println!("wrote {}", cfg.out_dir.join("budget.md").display());
    Ok(())
}

/// The runs an exhaustive search of a variant needs.
fn exhaustive_runs(cfg: &BudgetConfig, v: &dyn Variant) -> usize {
    let ex = cfg.exhaustive;
    let points = usize::try_from(v.space().points()).unwrap_or(usize::MAX);
    crate::search::exhaustive_runs(points, ex.repeats, ex.shortlist, ex.refine, v.cost()) * v.states()
}

/// The ground-truth runs of the cells still to do (searches, training and fresh scoring),
/// and the learners' own work: a short training of each learner on each variant, timed,
/// gives its seconds per interaction, evaluations included.
fn estimate(cfg: &BudgetConfig, problem: &Problem, planned: &[Planned<Job, BudgetCell>]) -> Result<Estimate> {
    let todo: Vec<&Job> = planned.iter().filter_map(|p| if let Planned::Todo(j) = p { Some(j) } else { None }).collect();
    let cores = Workers::new(cfg.parallel_cells).cells;
    let mut work = Vec::new();
    for (i, v) in problem.variants.iter().enumerate() {
        let mine: Vec<&&Job> = todo.iter().filter(|j| j.variant == i).collect();
        if mine.is_empty() {
            continue;
        }
        let scoring = (cfg.score_runs * v.states() * v.cost()) as u64;
        let exhaustive = exhaustive_runs(cfg, v.as_ref()) as u64;
        let yardsticks = v.yardsticks();
        let runs = |j: &Job| match &j.entry {
            Entry::Agent(..) => 0,
            Entry::Search(_) => j.budget.map_or(exhaustive, |b| b as u64),
            Entry::Yardstick(name) => yardsticks.iter().find(|y| &y.0 == name).map_or(0, |y| y.1 as u64),
        };
        let count = mine.iter().map(|j| runs(j) + scoring).sum();
        work.push(Work {
            what: format!("{} ({})", problem.runs_label, v.name()),
            count,
            seconds_each: v.seconds_per_run()?,
            parallel: cores,
        });
        for entry in cfg.entries(v.as_ref()) {
            let Entry::Agent(learner, layout) = &entry else { continue };
            let name = entry.name();
            let count: u64 = mine.iter().filter(|j| j.entry.name() == name).map(|j| j.budget.unwrap_or(0) as u64).sum();
            if count == 0 {
                continue;
            }
            let (starts, between) = learner.spec(&cfg.dqn, &cfg.ppo).update_schedule();
            let probe = (count as usize).min(AGENT_PROBE_INTERACTIONS).min(starts + 3 * between).max(1);
            let started = Instant::now();
            v.train_agent(*learner, &cfg.settings(), probe, cfg.seed, layout)?;
            work.push(Work {
                what: format!("{name} interactions ({})", v.name()),
                count,
                seconds_each: started.elapsed().as_secs_f64() / probe as f64,
                parallel: cores,
            });
        }
    }
    Ok(Estimate { cells: todo.len(), work })
}

/// Most interactions of the short training that times a learner for the estimate: it runs
/// past the learner's first update and three more ([`crate::agent::LearnerSpec::update_schedule`]).
const AGENT_PROBE_INTERACTIONS: usize = 300;

/// One search (or one training) and its fresh scoring.
fn compute_cell(cfg: &BudgetConfig, v: &dyn Variant, settings: &AgentSettings, job: &Job) -> Result<BudgetCell> {
    let started = Instant::now();
    let fresh = |s: usize, r: usize| fresh_seed(cfg, s, r);
    let (points, spent, value) = match &job.entry {
        Entry::Yardstick(name) => {
            let y = v.yardstick(name, cfg.score_runs, &fresh, job.seed)?;
            (y.points, y.spent, y.value)
        }
        entry => {
            let (points, spent) = match entry {
                Entry::Agent(learner, layout) => {
                    v.train_agent(*learner, settings, job.budget.expect("agents have a budget"), job.seed, layout)?
                }
                Entry::Search(method) => search(cfg, v, method, job)?,
                Entry::Yardstick(_) => unreachable!("matched above"),
            };
            let value = v.value(&points, cfg.score_runs, &fresh)?;
            (points, spent, value)
        }
    };
    Ok(BudgetCell {
        key: job.key.clone(),
        variant: job.variant_name.clone(),
        method: job.entry.name(),
        budget: job.budget.unwrap_or(spent),
        seed: job.seed,
        spent,
        points,
        value,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The seed of fresh scoring run r at state s: the same for every method.
fn fresh_seed(cfg: &BudgetConfig, s: usize, r: usize) -> u64 {
    mix(mix(cfg.seed, FRESH_STREAM), ((s as u64) << 24) | r as u64)
}

/// A search method at every state, B split evenly over them.
fn search(cfg: &BudgetConfig, v: &dyn Variant, method: &Method, job: &Job) -> Result<(Vec<Vec<usize>>, usize)> {
    let (space, states, cost) = (v.space(), v.states(), v.cost());
    let per_state = match job.budget {
        Some(b) => b / states,
        None => exhaustive_runs(cfg, v) / states,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
    let (mut points, mut spent) = (Vec::with_capacity(states), 0);
    for state in 0..states {
        let mut objective = |p: &[usize], seed: u64| v.evaluate(state, p, seed);
        let mut eval = Evaluator::new(&mut objective, mix(job.seed, state as u64), cost, per_state);
        points.push(method.search(&space, &mut eval, &mut rng)?);
        spent += eval.spent();
    }
    Ok((points, spent))
}

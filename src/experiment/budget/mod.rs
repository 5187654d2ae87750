//! Budget curves (issue 27): for a problem and a list of budgets, every search method
//! spends at most B ground-truth runs and recommends one choice per state; the
//! recommendation's true value is measured on fresh runs, the same common-random-number
//! seeds for every method. Verdicts come from [`crate::experiment::compare`].
//!
//! The problem so far is the defender ([`crate::env::defend`]): its scenario, loads, grid
//! and objective are read from a defend experiment file. Per load, B is split evenly over
//! the loads (a per-state method); robust, one evaluation of a rule runs every load, and
//! each of those runs counts.
//!
//! A cell is one (mode, method, budget, seed); the exhaustive search is a cell of its own
//! per mode (its spending is what the grid needs, reported beside it).

mod report;

use std::path::PathBuf;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::cells::{report_due, run_resumable, split_by_stage, Label, Planned, Workers};
use super::claims::Claims;
use super::compare::TieMargin;
use super::defend::DefendConfig;
use super::estimate::{Estimate, Work};
use super::rundir::{json, Cell, CellJob, DirCoordination};
use super::{RunOptions, Stage};
use crate::env::defend::{mix, DefendEnv, LoadState, Mode};
use crate::env::Environment;
use crate::error::{Error, Result};
use crate::search::{Evaluator, Method};

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
    /// The problem: a defend experiment file, whose scenario, loads and grid are used.
    pub defend: PathBuf,
    /// The name of one of that file's `[[objectives]]`.
    pub objective: String,
    /// Per load, one rule for all loads (robust), or both (default).
    #[serde(default = "both_modes")]
    pub modes: Vec<Mode>,
    /// Ground-truth runs a method may spend, in total over the states.
    pub budgets: Vec<usize>,
    pub methods: Vec<Method>,
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
fn both_modes() -> Vec<Mode> {
    vec![Mode::PerLoad, Mode::Robust]
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
        if self.budgets.is_empty() || self.methods.is_empty() || self.modes.is_empty() {
            return Err(Error::config("budgets, methods and modes each need at least one entry"));
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
        super::refuse_repeats("modes", &self.modes)
    }

    /// The defend experiment whose problem this searches, and the objective's index in it.
    pub fn problem(&self) -> Result<(DefendConfig, usize)> {
        let table = super::load_experiment(&self.defend, &[])?;
        let defend: DefendConfig = super::parse_config(table, &self.defend, &[], DefendConfig::validate)?;
        let objective = defend.objectives.iter().position(|o| o.name == self.objective).ok_or_else(|| {
            let names: Vec<&str> = defend.objectives.iter().map(|o| o.name.as_str()).collect();
            Error::config(format!("objective {:?} is not one of {}'s objectives {names:?}", self.objective, self.defend.display()))
        })?;
        Ok((defend, objective))
    }
}

/// One finished cell: the recommendation per state, what it cost, and its fresh value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BudgetCell {
    pub key: String,
    pub mode: Mode,
    pub method: String,
    /// The budget given (the exhaustive search: the runs it needed).
    pub budget: usize,
    pub seed: u64,
    /// Ground-truth runs spent, in total.
    pub spent: usize,
    /// The recommended point per state (per load; one in robust mode).
    pub points: Vec<Vec<usize>>,
    /// The recommendations' true value on the fresh runs: the loads' weighted mean per
    /// load, the worst load's mean in robust mode.
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
    mode: Mode,
    method: Method,
    /// `None`: the exhaustive yardstick.
    budget: Option<usize>,
    seed: u64,
    key: String,
}

impl Job {
    fn cell_name(&self) -> String {
        match self.budget {
            Some(b) => format!("{}_{}_b{b}_seed{}", self.mode.name(), self.method.name(), self.seed),
            None => format!("{}_{}", self.mode.name(), self.method.name()),
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

/// Seed stream of the fresh scoring runs (the searches' own runs derive from their seeds).
const FRESH_STREAM: u64 = 2;

pub fn run(cfg: &BudgetConfig, stage: Stage, options: RunOptions) -> Result<()> {
    let started = Instant::now();
    let (defend, objective) = cfg.problem()?;
    let checked = super::rundir::RunDir::check(&cfg.out_dir, cfg, &[], &[])?;
    let problem_key = json(&(&defend.scenario, &defend.loads, &defend.grid, &defend.objectives[objective], defend.sequential));
    println!(
        "budget: the defender of {} (objective {}), {} loads x {} joint rules; budgets {:?}; methods {:?}; {} seeds",
        cfg.defend.display(),
        cfg.objective,
        defend.loads.loads().len(),
        defend.grid.joint_rules(),
        cfg.budgets,
        cfg.methods.iter().map(Method::name).collect::<Vec<_>>(),
        cfg.seeds
    );
    let mut planned = Vec::new();
    let mut plan = |mode: Mode, method: Method, budget: Option<usize>, seed: u64| {
        let key = json(&(&problem_key, mode, &method, budget, seed, cfg.score_runs, cfg.seed));
        let job = Job { index: planned.len(), mode, method, budget, seed, key };
        planned.push(match checked.read_cell::<BudgetCell>("cells", &job.cell_name(), &job.key) {
            Some(cell) => Planned::Done(cell),
            None => Planned::Todo(job),
        });
    };
    for &mode in &cfg.modes {
        if cfg.exhaustive.repeats > 0 {
            plan(mode, cfg.exhaustive.method(), None, cfg.seed);
        }
        for method in &cfg.methods {
            for &budget in &cfg.budgets {
                for r in 0..cfg.seeds as u64 {
                    plan(mode, method.clone(), Some(budget), cfg.seed.wrapping_add(r));
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
    estimate(cfg, &defend, &planned)?.check(options.allow_long)?;
    let dir = checked.create()?;
    let label = |j: &Job| Label { prefix: format!("cell {}/{total} {}", j.index + 1, j.cell_name()), units: 1 };
    let coordination = DirCoordination { dir: &dir, claims: Claims::start() };
    let cells = run_resumable(planned, Workers::new(cfg.parallel_cells), "cell", &coordination, label, |job, progress| {
        let cell = compute_cell(cfg, &defend, objective, job)?;
        progress.bar.inc(1);
        dir.write_cell("cells", &job.cell_name(), &cell)?;
        Ok(cell)
    })?;
    if !report_due(stage, cells.len(), total, &missing, &cfg.out_dir) {
        return Ok(());
    }
    report::write(cfg, &defend, &cells, &dir, started.elapsed().as_secs_f64())?;
    println!("wrote {}", cfg.out_dir.join("budget.md").display());
    Ok(())
}

/// The emulator runs of the cells still to do (searches and fresh scoring).
fn estimate(cfg: &BudgetConfig, defend: &DefendConfig, planned: &[Planned<Job, BudgetCell>]) -> Result<Estimate> {
    let (loads, rules) = (defend.loads.loads(), defend.grid.joint_rules());
    let each = defend.seconds_per_load_test()?;
    let todo: Vec<&Job> = planned.iter().filter_map(|p| if let Planned::Todo(j) = p { Some(j) } else { None }).collect();
    let scoring = (cfg.score_runs * loads.len()) as u64;
    let ex = cfg.exhaustive;
    let exhaustive = crate::search::exhaustive_runs(rules, ex.repeats, ex.shortlist, ex.refine, 1) as u64 * loads.len() as u64;
    let count = todo.iter().map(|j| j.budget.map_or(exhaustive, |b| b as u64) + scoring).sum();
    let cores = Workers::new(cfg.parallel_cells).cells;
    Ok(Estimate { cells: todo.len(), work: vec![Work { what: "load tests".into(), count, seconds_each: each, parallel: cores }] })
}

/// One search and its fresh scoring.
fn compute_cell(cfg: &BudgetConfig, defend: &DefendConfig, objective: usize, job: &Job) -> Result<BudgetCell> {
    let started = Instant::now();
    let env = DefendEnv::new(defend.spec(&defend.objectives[objective].objective, job.mode));
    let spec = env.spec();
    let space = env.search_space();
    let loads = spec.loads.len();
    let states = if job.mode == Mode::Robust { 1 } else { loads };
    // A robust evaluation runs every load.
    let cost = if job.mode == Mode::Robust { loads } else { 1 };
    let points_needed = usize::try_from(space.points()).unwrap_or(usize::MAX);
    let per_state = match job.budget {
        Some(b) => b / states,
        None => {
            let ex = cfg.exhaustive;
            crate::search::exhaustive_runs(points_needed, ex.repeats, ex.shortlist, ex.refine, cost)
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
    let (mut points, mut spent) = (Vec::with_capacity(states), 0);
    for state in 0..states {
        let start = env.start(&LoadState { load: state, seed: 0 }).remove(0);
        let rule_of = |p: &[usize]| spec.grid.rule(&env.joint_candidate(&start, p).choice);
        let mut objective = |p: &[usize], seed: u64| {
            let rules = rule_of(p);
            Ok(match job.mode {
                Mode::PerLoad => spec.outcome(&rules, state, seed).value,
                Mode::Robust => spec.worst_outcome(&rules, seed).value,
            })
        };
        let mut eval = Evaluator::new(&mut objective, mix(job.seed, state as u64), cost, per_state);
        points.push(job.method.search(&space, &mut eval, &mut rng)?);
        spent += eval.spent();
    }
    // Fresh runs, the same seeds for every method: run r at load l.
    let fresh = |l: usize, r: usize| mix(mix(cfg.seed, FRESH_STREAM), ((l as u64) << 24) | r as u64);
    let mean_at = |p: &[usize], l: usize| {
        let start = env.start(&LoadState { load: l, seed: 0 }).remove(0);
        let rules = spec.grid.rule(&env.joint_candidate(&start, p).choice);
        (0..cfg.score_runs).map(|r| spec.outcome(&rules, l, fresh(l, r)).value).sum::<f64>() / cfg.score_runs as f64
    };
    let value = match job.mode {
        Mode::PerLoad => (0..loads).map(|l| spec.weights[l] * mean_at(&points[l], l)).sum(),
        Mode::Robust => (0..loads).map(|l| mean_at(&points[0], l)).fold(f64::INFINITY, f64::min),
    };
    Ok(BudgetCell {
        key: job.key.clone(),
        mode: job.mode,
        method: job.method.name(),
        budget: job.budget.unwrap_or(spent),
        seed: job.seed,
        spent,
        points,
        value,
        seconds: started.elapsed().as_secs_f64(),
    })
}

//! The mesh defender ([`crate::env::mesh_defend`], issue 29): rules for every destination of
//! a service graph. The states are evaluation scenarios (load level, spike, sick replica)
//! drawn with the master seed; at each state the rules are chosen for it (the agents after
//! observing its probe run), a method's budget split evenly over the states; the value is
//! the states' mean goodput within the latency bound.
//!
//! Beside the search methods and the learners (once per agent layout), the yardsticks:
//! Istio's defaults, the same with Istio's `retryBudget` at its default on every
//! destination, the single-service defender's rule on every destination, the best uniform
//! rule (one destination's choice applied to all, searched coarse then refined) and
//! coordinate descent from the grid's first values (Istio's defaults with retries off),
//! each with the runs it spent.

use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Problem, Variant, YardstickResult};
use crate::agent::LearnerKind;
use crate::emulator::Scenario;
use crate::env::mesh_defend::env::{AgentLayout, MeshChoice, MeshDefendEnv, StateIndex};
use crate::env::mesh_defend::grid::{MeshRuleGrid, FIELDS};
use crate::env::mesh_defend::objective::MeshObjective;
use crate::env::mesh_defend::objective::Outcome;
use crate::env::mesh_defend::probe::{probe, Probe};
use crate::env::mesh_defend::spec::MeshDefendSpec;
use crate::env::mesh_defend::state::{MeshState, StatesConfig};
use crate::error::{Error, Result};
use crate::experiment::budget::agents::{train_on_truth, AgentSettings};
use crate::experiment::budget::BudgetCell;
use crate::experiment::rundir::json;
use crate::experiment::rundir::OutputSet;
use crate::mesh::export::rule_files;
use crate::mesh::rules::{
    DestinationPolicy, IstioRelease, MeshRules, RetryBudget, ISTIO_RETRY_BUDGET_MIN_CONCURRENCY, ISTIO_RETRY_BUDGET_PERCENT,
};
use crate::mesh::topology::Topology;
use crate::rules::TrafficRules;
use crate::search::SearchSpace;
use crate::seeding::mix;

/// Config `[problem.mesh]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshProblem {
    /// An Isotope topology file (default `topologies/shop11-capacity.yaml`).
    #[serde(default = "default_topology")]
    pub topology: PathBuf,
    /// The Istio release whose defaults apply where a field is left alone (default "1.30").
    #[serde(default = "default_release")]
    pub release: String,
    /// A scenario TOML for the emulator's hops (as `mesh run --scenario`); default: the
    /// emulator's default scenario.
    #[serde(default)]
    pub scenario_file: Option<PathBuf>,
    #[serde(default)]
    pub grid: MeshRuleGrid,
    #[serde(default)]
    pub states: StatesConfig,
    #[serde(default)]
    pub objective: MeshObjective,
    /// Evaluation states, drawn with the master seed (default 6).
    #[serde(default = "six")]
    pub evaluation_states: usize,
    /// The probe run's length, seconds (default 10); one probe per state counts in the
    /// agents' budget.
    #[serde(default = "ten")]
    pub probe_s: f64,
    /// The agents' layouts (default all three); each learner is on the curves once per layout.
    #[serde(default = "all_layouts")]
    pub layouts: Vec<AgentLayout>,
    #[serde(default)]
    pub yardsticks: MeshYardsticks,
}

/// The yardsticks' settings (config `[problem.mesh.yardsticks]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshYardsticks {
    /// Best uniform rule: random uniform rules on one run each, per state (default 100).
    pub uniform_coarse: usize,
    /// ... the best this many (default 10) on `uniform_refine` more runs each ...
    pub uniform_shortlist: usize,
    /// (default 4) ... then every one-field change of the leader on 1 + this many runs.
    pub uniform_refine: usize,
    /// Coordinate descent: sweeps over every destination's fields (default 1) ...
    pub descent_sweeps: usize,
    /// ... each value tried on this many runs, the same seeds for all (default 2).
    pub descent_runs: usize,
    /// The single-service defender's recommended rule bundle (a `meshrl` rule bundle
    /// directory), applied to every destination; none: that yardstick is left out.
    pub single_service_rule: Option<PathBuf>,
}

impl Default for MeshYardsticks {
    fn default() -> Self {
        MeshYardsticks {
            uniform_coarse: 100,
            uniform_shortlist: 10,
            uniform_refine: 4,
            descent_sweeps: 1,
            descent_runs: 2,
            single_service_rule: None,
        }
    }
}

fn default_topology() -> PathBuf {
    PathBuf::from("topologies/shop11-capacity.yaml")
}
fn default_release() -> String {
    "1.30".into()
}
fn six() -> usize {
    6
}
fn ten() -> f64 {
    10.0
}
fn all_layouts() -> Vec<AgentLayout> {
    AgentLayout::ALL.to_vec()
}

/// Seed stream of the probe runs.
const PROBE_STREAM: u64 = 0x9e0be;

impl MeshProblem {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(format!("problem.mesh.{m}")));
        self.grid.validate().map_err(|m| Error::config(format!("problem.mesh.{m}")))?;
        self.states.validate().map_err(|m| Error::config(format!("problem.mesh.{m}")))?;
        IstioRelease::parse(&self.release).map_err(|m| Error::config(format!("problem.mesh.release: {m}")))?;
        if self.evaluation_states == 0 {
            return bad("evaluation_states must be >= 1".into());
        }
        if !(self.probe_s.is_finite() && self.probe_s >= 1.0) {
            return bad(format!("probe_s must be >= 1 s, but is {}", self.probe_s));
        }
        if !(self.objective.latency_bound_ms.is_finite() && self.objective.latency_bound_ms > 0.0) {
            return bad("objective.latency_bound_ms must be > 0".into());
        }
        if self.layouts.is_empty() {
            return bad("layouts needs at least one entry".into());
        }
        let y = &self.yardsticks;
        if y.uniform_coarse == 0 || y.uniform_shortlist == 0 || y.descent_runs == 0 {
            return bad("yardsticks: uniform_coarse, uniform_shortlist and descent_runs must be >= 1".into());
        }
        crate::experiment::refuse_repeats("problem.mesh.layouts", &self.layouts)
    }

    pub fn build(&self, seed: u64) -> Result<Problem> {
        let topology = Topology::load(&self.topology, None)?;
        if MeshRuleGrid::destinations(&topology).is_empty() {
            return Err(Error::file(&self.topology, "no service calls another: there is no destination to set rules for"));
        }
        let scenario = match &self.scenario_file {
            Some(path) => {
                let (scenario, warnings) = crate::mesh::load_scenario(path)?;
                warnings.iter().for_each(|w| eprintln!("warning: {w}"));
                scenario
            }
            None => Scenario::default(),
        };
        let single = match &self.yardsticks.single_service_rule {
            Some(dir) => Some(crate::export::read_rule_bundle(dir)?),
            None => None,
        };
        let spec = MeshDefendSpec {
            topology,
            release: IstioRelease::parse(&self.release).map_err(Error::config)?,
            scenario,
            grid: self.grid.clone(),
            states: self.states.clone(),
            objective: self.objective.clone(),
        };
        let states = spec.draw_states(self.evaluation_states, seed);
        let probes: Vec<Probe> =
            states.iter().enumerate().map(|(s, st)| probe(&spec, st, self.probe_s, mix(seed, PROBE_STREAM + s as u64))).collect();
        let rps_scale = spec.states.entry_qps.iter().copied().fold(1.0, f64::max);
        let features = probes.iter().map(|p| p.features(rps_scale, spec.objective.latency_bound_ms)).collect();
        let started = Instant::now();
        for (s, state) in states.iter().enumerate() {
            spec.outcome(&spec.defaults(), state, s as u64);
        }
        let seconds = started.elapsed().as_secs_f64() / states.len() as f64;
        let described: Vec<String> = states.iter().enumerate().map(|(s, st)| format!("{}: {}", s + 1, spec.describe(st))).collect();
        let summary = format!(
            "Problem: rules for the {} destinations of `{}` ({} fields each, 10^{:.1} rule sets), Istio {} where a field is \
             left alone. {} evaluation states drawn with the master seed ({}). At each state the rules are chosen for it: \
             B is split evenly over the states, and the learners, one agent per destination and field, observe a {} s \
             probe run per state under Istio's defaults (its runs counted in their B). The value is the states' mean \
             entry goodput within {} ms, per second of offered load.",
            MeshRuleGrid::destinations(&spec.topology).len(),
            self.topology.display(),
            FIELDS.len(),
            spec.grid.space(&spec.topology).sizes().iter().map(|&n| (n as f64).log10()).sum::<f64>(),
            self.release,
            states.len(),
            described.join("; "),
            self.probe_s,
            spec.objective.latency_bound_ms,
        );
        let key = json(&(self, crate::data::fingerprint(&self.topology)?, seed));
        let variant = MeshVariant { spec, states, features, cfg: self.clone(), single, key, seconds };
        Ok(Problem {
            summary,
            value_label: format!("goodput within {} ms (1/s)", self.objective.latency_bound_ms),
            runs_label: "emulator runs".into(),
            variants: vec![Box::new(variant)],
        })
    }
}

struct MeshVariant {
    spec: MeshDefendSpec,
    states: Vec<MeshState>,
    features: Vec<Vec<f32>>,
    cfg: MeshProblem,
    single: Option<TrafficRules>,
    key: String,
    seconds: f64,
}

/// The yardsticks' names.
const DEFAULTS: &str = "istio_defaults";
const RETRY_BUDGET: &str = "istio_retry_budget";
const SINGLE: &str = "single_service_rule";
const UNIFORM: &str = "best_uniform";
const DESCENT: &str = "coordinate_descent";

impl MeshVariant {
    /// The mean value of one rule set per state on the fresh runs.
    fn fresh_value(&self, rules: &[MeshRules], runs: usize, fresh: &dyn Fn(usize, usize) -> u64) -> f64 {
        let per_state = self
            .states
            .iter()
            .enumerate()
            .map(|(s, state)| (0..runs).map(|r| self.spec.outcome(&rules[s], state, fresh(s, r)).value).sum::<f64>() / runs as f64);
        per_state.sum::<f64>() / self.states.len() as f64
    }

    /// Every destination given `policy`.
    fn everywhere(&self, policy: impl Fn(DestinationPolicy) -> DestinationPolicy) -> MeshRules {
        let mut rules = self.spec.defaults();
        for d in MeshRuleGrid::destinations(&self.spec.topology) {
            rules.destinations[d] = policy(rules.destinations[d]);
        }
        rules
    }

    /// The mean value of `point` at `state` on `seeds`.
    fn mean_at(&self, state: usize, point: &[usize], seeds: &[u64]) -> f64 {
        let rules = self.spec.rules(point);
        seeds.iter().map(|&seed| self.spec.outcome(&rules, &self.states[state], seed).value).sum::<f64>() / seeds.len() as f64
    }

    fn destinations(&self) -> usize {
        MeshRuleGrid::destinations(&self.spec.topology).len()
    }

    /// The joint point giving every destination `choice`.
    fn uniform_point(&self, choice: &[usize]) -> Vec<usize> {
        (0..self.destinations()).flat_map(|_| choice.iter().copied()).collect()
    }

    /// The best uniform rule at `state`: random uniform rules on one run each (common seeds),
    /// the shortlist on more runs, then every one-field change of the leader. Its point and
    /// the runs spent.
    fn best_uniform(&self, state: usize, rng: &mut ChaCha8Rng, seed: u64) -> (Vec<usize>, usize) {
        let y = &self.cfg.yardsticks;
        let sizes: Vec<usize> = self.spec.grid.labels().iter().map(Vec::len).collect();
        let seeds: Vec<u64> = (0..=y.uniform_refine as u64).map(|r| mix(seed, (state as u64) << 16 | r)).collect();
        let mut coarse: Vec<(f64, Vec<usize>)> = (0..y.uniform_coarse)
            .map(|_| {
                let choice: Vec<usize> = sizes.iter().map(|&n| rng.random_range(0..n)).collect();
                (self.mean_at(state, &self.uniform_point(&choice), &seeds[..1]), choice)
            })
            .collect();
        let mut spent = coarse.len();
        coarse.sort_by(|a, b| b.0.total_cmp(&a.0));
        coarse.truncate(y.uniform_shortlist);
        let mut best: Option<(f64, Vec<usize>)> = None;
        let mut consider = |choice: Vec<usize>, best: &mut Option<(f64, Vec<usize>)>| {
            let value = self.mean_at(state, &self.uniform_point(&choice), &seeds);
            spent += seeds.len();
            if best.as_ref().is_none_or(|b| value > b.0) {
                *best = Some((value, choice));
            }
        };
        for (_, choice) in coarse {
            consider(choice, &mut best);
        }
        let leader = best.clone().expect("a shortlist of at least one").1;
        for (f, &n) in sizes.iter().enumerate() {
            for v in (0..n).filter(|&v| v != leader[f]) {
                let mut c = leader.clone();
                c[f] = v;
                consider(c, &mut best);
            }
        }
        (self.uniform_point(&best.expect("considered").1), spent)
    }

    /// Coordinate descent at `state` from the all-default point: each destination's fields in
    /// turn, every value tried on the same seeds, the best kept.
    fn coordinate_descent(&self, state: usize, seed: u64) -> (Vec<usize>, usize) {
        let y = &self.cfg.yardsticks;
        let sizes = self.space().sizes();
        let seeds: Vec<u64> = (0..y.descent_runs as u64).map(|r| mix(seed, (state as u64) << 16 | r)).collect();
        let mut point = vec![0; sizes.len()];
        let mut value = self.mean_at(state, &point, &seeds);
        let mut spent = seeds.len();
        for _ in 0..y.descent_sweeps {
            for (j, &n) in sizes.iter().enumerate() {
                let current = point[j];
                for v in (0..n).filter(|&v| v != current) {
                    let mut c = point.clone();
                    c[j] = v;
                    let got = self.mean_at(state, &c, &seeds);
                    spent += seeds.len();
                    if got > value {
                        (point, value) = (c, got);
                    }
                }
            }
        }
        (point, spent)
    }

    /// The state's load as Fortio commands, one per segment, back to back: Fortio paces
    /// at a constant rate where the emulator draws Poisson arrivals, and the sick replica is
    /// the user's to make (a fault on one pod).
    fn fortio_script(&self, state: &MeshState, header: &str) -> String {
        let entry = &self.spec.topology.services[self.spec.topology.entry].name;
        let mut script = format!("#!/bin/sh\n{header}\n# Apply this folder first: kubectl apply -f .\n");
        if let Some(sick) = state.sick {
            script += &format!(
                "# The state's sick replica is not made by these commands: {}/{} {}.\n",
                self.spec.topology.services[sick.service].name,
                sick.replica,
                if sick.fail_share > 0.0 {
                    format!("answering {:.0} % of requests 500", sick.fail_share * 100.0)
                } else {
                    format!("slowed x{}", sick.slowdown)
                }
            );
        }
        script += "set -e\n";
        let crate::mesh::load::MeshLoad::Open { schedule, .. } = state.load(&self.spec.states) else {
            unreachable!("a state's load is open")
        };
        for (k, segment) in schedule.iter().enumerate() {
            script += &format!(
                "fortio load -qps {} -t {}s -c 64 -json segment_{}.json http://{entry}:8080/\n",
                segment.qps,
                segment.duration_s,
                k + 1
            );
        }
        script
    }

    /// The runs a searched yardstick spends, for the estimate.
    fn yardstick_runs(&self, name: &str) -> usize {
        let y = &self.cfg.yardsticks;
        let sizes = self.space().sizes();
        let one_field_changes = |sizes: &[usize]| sizes.iter().map(|n| n - 1).sum::<usize>();
        let per_state = match name {
            UNIFORM => {
                let labels: Vec<usize> = self.spec.grid.labels().iter().map(Vec::len).collect();
                y.uniform_coarse + (y.uniform_shortlist + one_field_changes(&labels)) * (1 + y.uniform_refine)
            }
            DESCENT => y.descent_runs * (1 + y.descent_sweeps * one_field_changes(&sizes)),
            _ => 0,
        };
        per_state * self.states.len()
    }
}

impl Variant for MeshVariant {
    fn name(&self) -> String {
        "per_state".into()
    }

    fn key(&self) -> String {
        self.key.clone()
    }

    fn states(&self) -> usize {
        self.states.len()
    }

    fn space(&self) -> SearchSpace {
        self.spec.grid.space(&self.spec.topology)
    }

    fn cost(&self) -> usize {
        1
    }

    fn evaluate(&self, state: usize, point: &[usize], seed: u64) -> Result<f64> {
        Ok(self.spec.outcome(&self.spec.rules(point), &self.states[state], seed).value)
    }

    fn value(&self, points: &[Vec<usize>], runs: usize, fresh: &dyn Fn(usize, usize) -> u64) -> Result<f64> {
        let rules: Vec<MeshRules> = points.iter().map(|p| self.spec.rules(p)).collect();
        Ok(self.fresh_value(&rules, runs, fresh))
    }

    fn seconds_per_run(&self) -> Result<f64> {
        Ok(self.seconds)
    }

    fn agent_layouts(&self) -> Vec<String> {
        self.cfg.layouts.iter().map(|l| l.name().to_string()).collect()
    }

    fn train_agent(
        &self,
        learner: LearnerKind,
        settings: &AgentSettings,
        interactions: usize,
        seed: u64,
        layout: &str,
    ) -> Result<(Vec<Vec<usize>>, usize)> {
        let arrangement =
            *AgentLayout::ALL.iter().find(|l| l.name() == layout).ok_or_else(|| Error::config(format!("no agent layout {layout:?}")))?;
        let env = MeshDefendEnv::new(&self.spec, &self.states, self.features.clone(), arrangement);
        let states: Vec<StateIndex> = (0..self.states.len()).map(|state| StateIndex { state }).collect();
        // Each state's probe run is paid from the budget.
        let probes = self.states.len();
        let truth = |c: &MeshChoice, run: u64| self.evaluate(c.state, &c.point, run);
        let evaluations = interactions.saturating_sub(probes);
        let (points, spent) =
            train_on_truth(&env, &states, learner, settings, evaluations, 1, seed, |c: &MeshChoice| c.point.clone(), &truth)?;
        Ok((points, spent + probes))
    }

    /// The best recommendation on the fresh runs (a search's, a learner's or a yardstick's
    /// with grid points), as rule folders per state with Fortio commands, and the state
    /// where Istio's defaults do worst as time series before and after. Picking the best
    /// on the same fresh runs that scored it flatters it a little; the table says so.
    fn recommend(
        &self,
        cells: &[&BudgetCell],
        runs: usize,
        fresh: &dyn Fn(usize, usize) -> u64,
        outputs: &mut OutputSet,
    ) -> Result<String> {
        let Some(best) = cells.iter().filter(|c| c.points.len() == self.states.len()).max_by(|a, b| a.value.total_cmp(&b.value)) else {
            return Ok(String::new());
        };
        let defaults = self.spec.defaults();
        let mean = |rules: &MeshRules, s: usize| {
            let o: Vec<Outcome> = (0..runs).map(|r| self.spec.outcome(rules, &self.states[s], fresh(s, r))).collect();
            let n = o.len() as f64;
            (o.iter().map(|x| x.goodput_per_s).sum::<f64>() / n, o.iter().map(|x| x.recovery_s).sum::<f64>() / n)
        };
        let which = if best.method.starts_with(UNIFORM) || best.method.starts_with(DESCENT) {
            best.method.clone()
        } else {
            format!("{} at B = {}, seed {}", best.method, best.budget, best.seed)
        };
        let mut md = format!(
            "### Recommended rules

The best recommendation on the fresh runs is {which}'s (value {:.4}; chosen on the runs that \
             score it, so a little flattered). Per state, one DestinationRule and one VirtualService per destination in \
             `recommended/state<k>/` (`kubectl apply -f` the folder; `meshrl mesh run --rules-dir` reads it back), with \
             `fortio.sh`, the state's load as Fortio commands. Goodput within {} ms (1/s) and recovery (s), mean of {runs} fresh runs:\n\n",
            best.value, self.spec.objective.latency_bound_ms
        );
        let destinations = MeshRuleGrid::destinations(&self.spec.topology);
        let mut rows = Vec::new();
        let mut worst = (f64::INFINITY, 0);
        for (s, state) in self.states.iter().enumerate() {
            let rules = self.spec.rules(&best.points[s]);
            let header = format!("# meshrl mesh defender: state {}, {} ({which})", s + 1, self.spec.describe(state));
            for (file, text) in rule_files(&rules, &self.spec.topology, &destinations, &header).map_err(Error::config)? {
                outputs.write(format!("recommended/state{}/{file}", s + 1), text)?;
            }
            outputs.write(format!("recommended/state{}/fortio.sh", s + 1), self.fortio_script(state, &header))?;
            let (before, after) = (mean(&defaults, s), mean(&rules, s));
            if before.0 < worst.0 {
                worst = (before.0, s);
            }
            rows.push(vec![
                (s + 1).to_string(),
                self.spec.describe(state),
                format!("{:.1}", before.0),
                format!("{:.1}", before.1),
                format!("{:.1}", after.0),
                format!("{:.1}", after.1),
            ]);
        }
        md += &crate::report::markdown_table(
            &["state", "scenario", "Istio defaults", "recovery", "recommended", "recovery"].map(String::from),
            &rows,
        );
        let s = worst.1;
        for (name, rules) in [("before", defaults), ("after", self.spec.rules(&best.points[s]))] {
            let (_, run) = self.spec.run(&rules, &self.states[s], fresh(s, 0));
            let png = outputs.stage(format!("recommended/worst_{name}.png"))?;
            let title = format!(
                "state {}, {}: {}",
                s + 1,
                self.spec.describe(&self.states[s]),
                if name == "before" { "Istio defaults" } else { "recommended" }
            );
            run.series.expect("a defender's run records its series").write_png(&png, &title)?;
        }
        md += &format!(
            "\nThe state where Istio's defaults do worst, state {}, on its first fresh run: before \
             ![before](recommended/worst_before.png) and after ![after](recommended/worst_after.png)\n\n",
            s + 1
        );
        Ok(md)
    }

    fn yardsticks(&self) -> Vec<(String, usize)> {
        let mut names = vec![DEFAULTS, RETRY_BUDGET];
        if self.single.is_some() {
            names.push(SINGLE);
        }
        names.extend([UNIFORM, DESCENT]);
        names.into_iter().map(|n| (n.to_string(), self.yardstick_runs(n))).collect()
    }

    fn yardstick(&self, name: &str, runs: usize, fresh: &dyn Fn(usize, usize) -> u64, seed: u64) -> Result<YardstickResult> {
        let fixed = |rules: MeshRules| YardstickResult {
            value: self.fresh_value(&vec![rules; self.states.len()], runs, fresh),
            points: Vec::new(),
            spent: 0,
        };
        Ok(match name {
            DEFAULTS => fixed(self.spec.defaults()),
            RETRY_BUDGET => fixed(self.everywhere(|p| DestinationPolicy {
                retry_budget: Some(RetryBudget {
                    percent: ISTIO_RETRY_BUDGET_PERCENT,
                    min_concurrency: ISTIO_RETRY_BUDGET_MIN_CONCURRENCY,
                }),
                ..p
            })),
            SINGLE => {
                let traffic = self.single.ok_or_else(|| Error::config("no single_service_rule configured"))?;
                fixed(self.everywhere(|p| DestinationPolicy { rules: traffic, ..p }))
            }
            UNIFORM | DESCENT => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let (mut points, mut spent) = (Vec::new(), 0);
                for s in 0..self.states.len() {
                    let (p, n) = if name == UNIFORM { self.best_uniform(s, &mut rng, seed) } else { self.coordinate_descent(s, seed) };
                    points.push(p);
                    spent += n;
                }
                let value = self.value(&points, runs, fresh)?;
                YardstickResult { value, points, spent }
            }
            other => return Err(Error::config(format!("no yardstick {other:?}"))),
        })
    }
}

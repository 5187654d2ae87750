//! The defend experiment's outputs: `defend.md` and `defend.csv` (every policy's fresh
//! score per objective and mode, agents as mean ± std over seeds with paired verdicts),
//! `per_load.csv`, `attack.csv`, `curves.png` and `curves.csv` (training reward per epoch),
//! `share_503_by_load.png`, and `recommended/<objective>/`: the recommended rule as a
//! DestinationRule and a VirtualService, with the Fortio commands that check it.

use std::fmt::Write as _;

use super::attack::Attack;
use super::table::{Policy, Source, Tables};
use super::{DefendCell, DefendConfig};
use crate::env::defend::objective::Outcome;
use crate::env::defend::Mode;
use crate::error::Result;
use crate::experiment::compare::{against, SeedValue};
use crate::experiment::rundir::RunDir;
use crate::report::plot::{curves_grid, series_grid, Curve, CurvePanel};
use crate::report::{finite, fmt_of_n, markdown_table};
use crate::rules::TrafficRules;

fn num(x: f64) -> String {
    // A value that rounds to zero prints as 0, not -0.0000.
    let x = if x.abs() < 5e-5 { 0.0 } else { x };
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

/// The run's wall times: the whole invocation, the search and scoring, the cells' training.
pub fn wall_times(tables: &Tables, cells: &[DefendCell], seconds: f64) -> String {
    let cell_seconds: f64 = cells.iter().map(|c| c.seconds).sum();
    format!(
        "# Wall time\n\n- whole run (this invocation): {seconds:.0} s\n- exhaustive search and fresh scoring: {:.0} s ({} load tests)\n- training, summed over the {} cells: {cell_seconds:.0} s\n",
        tables.seconds,
        tables.runs,
        cells.len()
    )
}

pub fn write(
    cfg: &DefendConfig,
    tables: &Tables,
    recommended: &[(String, TrafficRules)],
    attacks: &[Attack],
    cells: &[DefendCell],
    dir: &RunDir,
) -> Result<()> {
    let loads = cfg.loads.loads();
    let n_seeds = cfg.seeds;
    let mut md = String::from("# Defend: which DestinationRule keeps the service up?\n\n");
    let behaving: Vec<String> = cfg
        .scenario
        .replica_behaviour
        .iter()
        .enumerate()
        .filter(|(_, b)| !b.is_default())
        .map(|(i, b)| format!("replica {i}: {:.0} % 503s, {}x slower", b.fault_share * 100.0, b.slowdown))
        .collect();
    let _ = writeln!(
        md,
        "Service: {} replicas ({}). Loads: threads {:?} x calls {:?} ({} states). Grid: {} joint rules over {} fields \
         ({}). Every search ranks all rules on {} runs per (load, rule), reruns its {} best {} times on runs of \
         their own and picks on those; every policy is scored on {} fresh runs per load, the same for all. The 503 \
         share and p99 columns are plain means over the loads. Agents: {} seeds ({}), {} epochs x {} interactions on the emulator; greedy policy after training. \
         {} load tests in the search and scoring. Config: `config.resolved.toml`; wall times: `wall_time.md`.\n\n\
         Common random numbers: every policy and rule is scored on the same fresh runs (the same emulator seeds) at every load; \
         an agent's seeds are compared with the best single rule's score on those runs. {}\n",
        cfg.scenario.replicas,
        if behaving.is_empty() { "all well-behaved".into() } else { behaving.join("; ") },
        cfg.loads.threads,
        cfg.loads.calls,
        loads.len(),
        cfg.grid.joint_rules(),
        cfg.grid.searched().len(),
        cfg.grid.searched().iter().map(|&f| crate::env::defend::grid::short_name(f)).collect::<Vec<_>>().join(", "),
        cfg.select_runs,
        cfg.shortlist,
        cfg.refine_runs,
        cfg.score_runs,
        n_seeds,
        cfg.seed_list().iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
        cfg.epochs,
        cfg.steps_per_epoch,
        tables.runs,
        cfg.tie_margin.explained(),
    );
    let mut csv = String::from("objective,mode,policy,source,learner,seed,mean,worst,regret_mean,regret_worst,share_503,rate_503,p99_ms\n");
    let mut per_load = String::from("objective,mode,policy,threads,calls,value,goodput,share_503,rate_503,p99_ms,rule\n");
    for (oi, t) in tables.objectives.iter().enumerate() {
        let named = &cfg.objectives[oi];
        let _ = writeln!(md, "## Objective `{}`: {}\n", t.name, named.objective.describe());
        for m in &t.modes {
            let oracle = m.policies.iter().find(|p| p.name.starts_with("oracle")).expect("always an oracle");
            let (oracle_mean, oracle_worst) = (oracle.mean(&tables.weights), oracle.worst());
            for p in &m.policies {
                let (learner, seed) = match p.source {
                    Source::Agent { learner, seed } => (learner.name().to_string(), seed.to_string()),
                    _ => (String::new(), String::new()),
                };
                let source = match p.source {
                    Source::Search => "search",
                    Source::Fixed => "fixed",
                    Source::Agent { .. } => "agent",
                };
                let mean_outcome = Outcome::mean(&p.outcomes);
                let _ = writeln!(
                    csv,
                    "{},{},\"{}\",{source},{learner},{seed},{:.4},{:.4},{:.4},{:.4},{:.6},{:.4},{:.4}",
                    t.name,
                    m.mode.name(),
                    p.name,
                    p.mean(&tables.weights),
                    p.worst(),
                    oracle_mean - p.mean(&tables.weights),
                    oracle_worst - p.worst(),
                    mean_outcome.share_503,
                    mean_outcome.rate_503,
                    mean_outcome.p99_ms
                );
                for (l, (o, r)) in p.outcomes.iter().zip(&p.rules).enumerate() {
                    let _ = writeln!(
                        per_load,
                        "{},{},\"{}\",{},{},{:.4},{:.4},{:.6},{:.4},{:.4},\"{}\"",
                        t.name,
                        m.mode.name(),
                        p.name,
                        loads[l].threads,
                        loads[l].calls,
                        o.value,
                        o.goodput,
                        o.share_503,
                        o.rate_503,
                        o.p99_ms,
                        r.describe()
                    );
                }
            }
            md.push_str(&mode_table(cfg, tables, m.mode, &m.policies));
        }
    }
    md.push_str(&attack_section(attacks));
    let _ = writeln!(md, "## Files\n\n`defend.csv` (every policy, every seed), `per_load.csv` (every policy at every load, with its rule), `attack.csv`, `curves.png` / `curves.csv` (training reward per epoch, mean over seeds, band min..max), `share_503_by_load.png`, `recommended/<objective>/` (DestinationRule, VirtualService, Fortio commands).");
    dir.write("defend.md", &md)?;
    dir.write("defend.csv", &csv)?;
    dir.write("per_load.csv", &per_load)?;
    write_attack_csv(attacks, dir)?;
    write_curves(cfg, tables, cells, dir)?;
    write_share_plot(cfg, tables, recommended, dir)?;
    for (named, (_, rules)) in cfg.objectives.iter().zip(recommended) {
        let bundle = dir.join(format!("recommended/{}", named.name));
        crate::export::write_rule_bundle(&bundle, &cfg.deploy.name, &cfg.deploy.host, rules, &loads)?;
    }
    Ok(())
}

/// One mode's table: yardsticks one row each, agents one row per learner (mean ± std over
/// seeds), with paired verdicts against the best single rule and Istio's defaults.
fn mode_table(cfg: &DefendConfig, tables: &Tables, mode: Mode, policies: &[Policy]) -> String {
    let w = &tables.weights;
    let oracle = policies.iter().find(|p| p.name.starts_with("oracle")).expect("always an oracle");
    let (first, second) = match mode {
        Mode::PerLoad => ("mean over loads", "worst load"),
        Mode::Robust => ("worst load", "mean over loads"),
    };
    let header: Vec<String> =
        ["policy", first, "regret vs oracle", second, "503 share", "p99 ms", "rule"].iter().map(|s| s.to_string()).collect();
    let by_mode = |p: &Policy| p.score(mode, w);
    let other = |p: &Policy| match mode {
        Mode::PerLoad => p.worst(),
        Mode::Robust => p.mean(w),
    };
    let mut rows = Vec::new();
    for p in policies.iter().filter(|p| !matches!(p.source, Source::Agent { .. })) {
        let o = Outcome::mean(&p.outcomes);
        let rule = if p.rules.iter().all(|r| *r == p.rules[0]) { p.rules[0].describe() } else { "one per load (per_load.csv)".into() };
        rows.push(vec![
            p.name.clone(),
            num(by_mode(p)),
            num(by_mode(oracle) - by_mode(p)),
            num(other(p)),
            num(o.share_503),
            num(o.p99_ms),
            rule,
        ]);
    }
    let mut verdicts = Vec::new();
    let best_single_name = match mode {
        Mode::PerLoad => "best single rule (mean)",
        Mode::Robust => "best single rule (worst load)",
    };
    let best_single = policies.iter().find(|p| p.name == best_single_name).map(by_mode);
    let istio = policies.iter().find(|p| p.name == "Istio defaults (>= 1.24)").map(by_mode);
    for &learner in &cfg.learners {
        let mine: Vec<&Policy> = policies.iter().filter(|p| matches!(p.source, Source::Agent { learner: l, .. } if l == learner)).collect();
        if mine.is_empty() {
            continue;
        }
        let values: Vec<f64> = mine.iter().map(|p| by_mode(p)).collect();
        let regrets: Vec<f64> = values.iter().map(|v| by_mode(oracle) - v).collect();
        let others: Vec<f64> = mine.iter().map(|p| other(p)).collect();
        let shares: Vec<f64> = mine.iter().map(|p| Outcome::mean(&p.outcomes).share_503).collect();
        let p99s: Vec<f64> = mine.iter().map(|p| Outcome::mean(&p.outcomes).p99_ms).collect();
        let decimals = if values.iter().all(|v| v.abs() >= 100.0) { 0 } else { 4 };
        rows.push(vec![
            format!("{} (greedy)", learner.label()),
            fmt_of_n(&values, cfg.seeds, decimals, None),
            fmt_of_n(&regrets, cfg.seeds, decimals, None),
            fmt_of_n(&others, cfg.seeds, decimals, None),
            fmt_of_n(&shares, cfg.seeds, 4, None),
            fmt_of_n(&p99s, cfg.seeds, 2, None),
            "per seed in defend.csv".into(),
        ]);
        let seeded: Vec<SeedValue> = mine
            .iter()
            .map(|p| match p.source {
                Source::Agent { seed, .. } => (seed, by_mode(p)),
                _ => unreachable!("filtered to agents"),
            })
            .collect();
        for (label, value) in [(best_single_name, best_single), ("Istio defaults (>= 1.24)", istio)] {
            if let Some(v) = value {
                let c = against(&seeded, v, cfg.tie_margin);
                verdicts.push(format!(
                    "- {} against {label} ({first}): **{}** on {} seeds (mean {} vs {}, difference {})",
                    learner.label(),
                    c.verdict,
                    c.pairs,
                    num(c.mean_a),
                    num(c.mean_b),
                    c.difference_text(if c.mean_b.abs() >= 100.0 { 0 } else { 4 })
                ));
            }
        }
    }
    let mut out = format!("### Mode `{}`: ranked by the {first}\n\n", mode.name());
    out.push_str(&markdown_table(&header, &rows));
    out.push('\n');
    if !verdicts.is_empty() {
        out.push_str("Does the agent's greedy policy beat the best single rule (claim 6 asked again)?\n\n");
        out.push_str(&verdicts.join("\n"));
        out.push_str("\n\n");
    }
    out
}

fn attack_section(attacks: &[Attack]) -> String {
    let header: Vec<String> = ["rule", "exhaustive worst load", "its 503/s", "attacker's loads (per seed)", "attacker's 503/s", "reach"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let rows: Vec<Vec<String>> = attacks
        .iter()
        .map(|a| {
            let rates: Vec<f64> = a.found.iter().map(|f| f.2).collect();
            let reach: Vec<f64> = rates.iter().map(|r| if a.worst_rate > 0.0 { r / a.worst_rate } else { f64::NAN }).collect();
            let target = if a.objective.is_empty() { a.target.clone() } else { format!("{} for `{}`", a.target, a.objective) };
            vec![
                target,
                format!("{} threads, {} calls", a.worst_load.threads, a.worst_load.calls),
                num(a.worst_rate),
                a.found.iter().map(|f| format!("{}x{}", f.1.threads, f.1.calls)).collect::<Vec<_>>().join(", "),
                fmt_of_n(&rates, a.found.len(), 1, None),
                fmt_of_n(&finite(&reach), a.found.len(), 2, None),
            ]
        })
        .collect();
    let mut out = String::from(
        "## Attacker against defender\n\nThe SFR2L attacker (one DQN agent over the joint threads x calls grid, trained on each \
         load's mean 503/s under the rule) looks for the rule's worst load; beside it, the exhaustive worst load (chosen on \
         the selection runs); both scored on the same fresh runs. Reach: the attacker's 503/s over the exhaustive worst's.\n\n",
    );
    out.push_str(&markdown_table(&header, &rows));
    out.push('\n');
    out
}

fn write_attack_csv(attacks: &[Attack], dir: &RunDir) -> Result<()> {
    let mut csv =
        String::from("target,objective,rule,worst_threads,worst_calls,worst_rate_503,seed,found_threads,found_calls,found_rate_503\n");
    for a in attacks {
        for (seed, load, rate) in &a.found {
            let _ = writeln!(
                csv,
                "\"{}\",{},\"{}\",{},{},{:.4},{seed},{},{},{rate:.4}",
                a.target,
                a.objective,
                a.rules.describe(),
                a.worst_load.threads,
                a.worst_load.calls,
                a.worst_rate,
                load.threads,
                load.calls
            );
        }
    }
    dir.write("attack.csv", csv)
}

/// Training reward per epoch (mean over seeds, band min..max), one panel per objective and
/// mode, with the oracle's and the best single rule's fresh score as flat lines.
fn write_curves(cfg: &DefendConfig, tables: &Tables, cells: &[DefendCell], dir: &RunDir) -> Result<()> {
    let mut csv = String::from("objective,mode,learner,seed,epoch,reward\n");
    let mut panels = Vec::new();
    for t in &tables.objectives {
        for m in &t.modes {
            let mut curves = Vec::new();
            for &learner in &cfg.learners {
                let mine: Vec<&DefendCell> =
                    cells.iter().filter(|c| c.objective == t.name && c.mode == m.mode && c.learner == learner).collect();
                for c in &mine {
                    for (e, r) in c.curve.0.iter().enumerate() {
                        let _ = writeln!(csv, "{},{},{},{},{},{r:.4}", t.name, m.mode.name(), learner.name(), c.seed, e + 1);
                    }
                }
                if mine.is_empty() {
                    continue;
                }
                let runs: Vec<&[f64]> = mine.iter().map(|c| c.curve.0.as_slice()).collect();
                curves.push(Curve::over_runs(learner.label(), &runs, cfg.epochs));
            }
            // Per load, the agents' reward is an average over the drawn loads: compare with
            // the weighted means; in robust mode with the worst load.
            let best_single = match m.mode {
                Mode::PerLoad => "best single rule (mean)",
                Mode::Robust => "best single rule (worst load)",
            };
            for name in [m.policies[0].name.as_str(), best_single] {
                if let Some(p) = m.policies.iter().find(|p| p.name == name) {
                    let v = p.score(m.mode, &tables.weights);
                    curves.push(Curve::flat(format!("{name}, fresh"), v, cfg.epochs));
                }
            }
            panels.push(CurvePanel { title: format!("{} / {}", t.name, m.mode.name()), curves });
        }
    }
    dir.write("curves.csv", csv)?;
    curves_grid(&dir.join("curves.png"), "Objective of the agents' rules while training (emulator, one run each)", "objective", &panels, 2)
}

/// 503 share against load (loads in config order) for the recommended rule, Istio's
/// defaults and the best single rule, one panel per objective.
fn write_share_plot(cfg: &DefendConfig, tables: &Tables, recommended: &[(String, TrafficRules)], dir: &RunDir) -> Result<()> {
    let mut panels = Vec::new();
    for (oi, (t, (name, rules))) in tables.objectives.iter().zip(recommended).enumerate() {
        let recommended_outcomes = super::table::score(cfg, oi, &vec![*rules; cfg.loads.loads().len()]);
        let m = &t.modes[0];
        let mut curves = vec![Curve::line(name.clone(), recommended_outcomes.iter().map(|o| o.share_503).collect())];
        for label in ["Istio defaults (>= 1.24)", "best single rule (mean)"] {
            if let Some(p) = m.policies.iter().find(|p| p.name == label) {
                curves.push(Curve::line(label, p.outcomes.iter().map(|o| o.share_503).collect()));
            }
        }
        panels.push(CurvePanel { title: format!("objective {}", t.name), curves });
    }
    let loads = cfg.loads.loads();
    let name = |l: &crate::rules::Load| format!("{}x{}", l.threads, l.calls);
    let x = format!("load, threads x calls ({} .. {})", name(&loads[0]), name(&loads[loads.len() - 1]));
    series_grid(
        &dir.join("share_503_by_load.png"),
        "503 share by load (per_load.csv lists the loads in order)",
        &x,
        "503 share",
        &panels,
        2,
    )
}

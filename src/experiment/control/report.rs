//! The control experiment's report: a table per (objective, model) with the agents and the
//! yardsticks, learning curves, and each policy of the master seed as a CSV.

use std::fmt::Write as _;

use super::objective::Objective;
use super::trace::{ControlTrace, Knobs};
use super::{ControlCell, ControlConfig, RewardTable, Tables};
use crate::agent::LearnerKind;
use crate::error::Result;
use crate::experiment::compare::{paired, SeedValue};
use crate::experiment::rundir::{OutputSet, RunDir};
use crate::report::plot::{curves_grid, Curve, CurvePanel};
use crate::report::{finite, fmt_of_n, markdown_table, mean_std};

/// "p 100, blocking 0.2, c 2"
pub fn describe_knobs(k: &Knobs) -> String {
    format!("p {}, blocking {}, c {}", k.routing, k.blocking, k.replicas)
}

/// Ties within this are ties (rewards are sums of a few measured means).
const EPS: f64 = 1e-9;

fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] + EPS {
            best = i;
        }
    }
    best
}

/// The best action at every load.
fn optimum(t: &[Vec<f64>]) -> Vec<usize> {
    t.iter().map(|row| argmax(row)).collect()
}

/// The one action with the best expected reward over the load process, at every load.
fn best_fixed(t: &[Vec<f64>], w: &[f64]) -> Vec<usize> {
    let n = t[0].len();
    let expected: Vec<f64> = (0..n).map(|a| t.iter().zip(w).map(|(row, p)| p * row[a]).sum()).collect();
    vec![argmax(&expected); t.len()]
}

/// Expected reward of a policy over the load process.
fn value(policy: &[usize], t: &[Vec<f64>], w: &[f64]) -> f64 {
    policy.iter().zip(t).zip(w).map(|((a, row), p)| p * row[*a]).sum()
}

/// Share of loads (by probability) where the policy's action is a measured optimum.
fn matches(policy: &[usize], t: &[Vec<f64>], w: &[f64]) -> f64 {
    policy.iter().zip(t).zip(w).filter(|((a, row), _)| row[**a] >= row.iter().copied().fold(f64::MIN, f64::max) - EPS).map(|(_, p)| p).sum()
}

/// How much of the gap between a fixed action and the optimum a policy closes.
fn gap_closed(v: f64, fixed: f64, opt: f64) -> f64 {
    if opt - fixed > EPS {
        (v - fixed) / (opt - fixed)
    } else {
        f64::NAN
    }
}

/// One row of a table: a policy per seed.
struct PolicyRow {
    label: String,
    file: String,
    /// (seed, policy); a learner row has only the seeds whose cell exists.
    per_seed: Vec<(u64, Vec<usize>)>,
    /// Whether r and d in its policy file are measured rather than predicted.
    measured: bool,
}

/// Per-seed numbers of one policy row.
struct Scores {
    model: Vec<SeedValue>,
    measured: Vec<SeedValue>,
    regret_model: Vec<f64>,
    regret_measured: Vec<f64>,
    matches: Vec<f64>,
    gap_model: Vec<f64>,
    gap_measured: Vec<f64>,
}

struct Problem<'a> {
    cfg: &'a ControlConfig,
    objective: &'a Objective,
    oi: usize,
    inputs: super::model::ModelInputs,
    tables: &'a Tables,
    w: Vec<f64>,
}

impl Problem<'_> {
    fn model(&self, seed: u64) -> &RewardTable {
        self.tables.model(self.oi, self.inputs, seed)
    }

    fn held_out(&self, seed: u64) -> &RewardTable {
        &self.tables.models[self.oi].iter().find(|m| m.0 == self.inputs && m.1 == seed).expect("fitted").3
    }

    fn truth(&self) -> &RewardTable {
        &self.tables.measured[self.oi]
    }

    fn rows(&self, cells: &[ControlCell]) -> Vec<PolicyRow> {
        let seeds = self.cfg.seed_list();
        let each = |f: &dyn Fn(u64) -> Vec<usize>| seeds.iter().map(|&s| (s, f(s))).collect::<Vec<_>>();
        let mut rows = Vec::new();
        for &learner in &self.cfg.learners {
            let per_seed = cells
                .iter()
                .filter(|c| c.objective == self.objective.name && c.model == self.inputs && c.learner == learner)
                .map(|c| (c.seed, c.policy.clone()))
                .collect();
            rows.push(PolicyRow { label: format!("{} (greedy)", learner.label()), file: learner.name().into(), per_seed, measured: false });
        }
        let pct = (self.cfg.holdout_fraction * 100.0).round();
        rows.push(PolicyRow {
            label: "Optimum on the model".into(),
            file: "model_optimum".into(),
            per_seed: each(&|s| optimum(&self.model(s).reward)),
            measured: false,
        });
        rows.push(PolicyRow {
            label: format!("Optimum on the model, {pct} % of settings held out"),
            file: "model_optimum_held_out".into(),
            per_seed: each(&|s| optimum(&self.held_out(s).reward)),
            measured: false,
        });
        rows.push(PolicyRow {
            label: "Best fixed action on the model".into(),
            file: "best_fixed_model".into(),
            per_seed: each(&|s| best_fixed(&self.model(s).reward, &self.w)),
            measured: false,
        });
        rows.push(PolicyRow {
            label: "Optimum on the measured table".into(),
            file: "measured_optimum".into(),
            per_seed: each(&|_| optimum(&self.truth().reward)),
            measured: true,
        });
        rows.push(PolicyRow {
            label: "Best fixed action on the measured table".into(),
            file: "best_fixed_measured".into(),
            per_seed: each(&|_| best_fixed(&self.truth().reward, &self.w)),
            measured: true,
        });
        rows
    }

    fn scores(&self, row: &PolicyRow) -> Scores {
        let truth = &self.truth().reward;
        let (t_opt, t_fixed) = (value(&optimum(truth), truth, &self.w), value(&best_fixed(truth, &self.w), truth, &self.w));
        let mut s = Scores {
            model: vec![],
            measured: vec![],
            regret_model: vec![],
            regret_measured: vec![],
            matches: vec![],
            gap_model: vec![],
            gap_measured: vec![],
        };
        for (seed, policy) in &row.per_seed {
            let m = &self.model(*seed).reward;
            let (m_opt, m_fixed) = (value(&optimum(m), m, &self.w), value(&best_fixed(m, &self.w), m, &self.w));
            let (vm, vt) = (value(policy, m, &self.w), value(policy, truth, &self.w));
            s.model.push((*seed, vm));
            s.measured.push((*seed, vt));
            s.regret_model.push(m_opt - vm);
            s.regret_measured.push(t_opt - vt);
            s.matches.push(matches(policy, truth, &self.w));
            s.gap_model.push(gap_closed(vm, m_fixed, m_opt));
            s.gap_measured.push(gap_closed(vt, t_fixed, t_opt));
        }
        s
    }

    fn title(&self) -> String {
        format!("{} on the {} model", self.objective.name, self.inputs.name())
    }
}

fn values(v: &[SeedValue]) -> Vec<f64> {
    v.iter().map(|x| x.1).collect()
}

/// Whether one fixed action is optimal at every load of a table.
fn degenerate(t: &[Vec<f64>], w: &[f64]) -> bool {
    value(&best_fixed(t, w), t, w) >= value(&optimum(t), t, w) - EPS
}

pub fn write(cfg: &ControlConfig, trace: &ControlTrace, tables: &Tables, cells: &[ControlCell], dir: &RunDir) -> Result<()> {
    let mut out = dir.outputs();
    let n = cfg.seeds;
    let mut md = String::from("# Control on a testbed's trace: agents against exact yardsticks\n\n");
    let _ = writeln!(
        md,
        "Trace `{}`: {} rows, {} with nothing completed (counted at {} s, a violation). Loads {:?} (weights {:?}), \
         drawn afresh each step. Seeds {}..{} ({n}); each seed fits its own forest ({} trees) and holds out its own \
         {} % of the settings. Training: {} epochs of {} steps. Values are expected rewards over the load process; \
         regret is against the optimum of the same table; \"gap closed\" is (policy - best fixed) / (optimum - best fixed). \
         Cells read \"mean ± std (seeds with a value of {n})\". Config: `config.resolved.toml`.\n\n\
         Common random numbers: seed s fits one forest and holds out one set of settings, and every policy of seed s is \
         scored on that seed's model and on the same measured table; comparisons pair policies by seed. {}\n",
        trace.path.display(),
        trace.samples.len(),
        trace.censored_rows(),
        cfg.trace.censored_delay_s,
        cfg.loads.values,
        cfg.weights().iter().map(|w| (w * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        cfg.seed,
        cfg.seed + n as u64 - 1,
        cfg.forest.trees,
        (cfg.holdout_fraction * 100.0).round(),
        cfg.epochs,
        cfg.steps_per_epoch,
        cfg.tie_margin.explained()
    );
    let mut csv = String::from("objective,model,policy,metric,mean,std,seeds_with_value,seeds\n");
    let mut panels = Vec::new();
    let mut curves_csv = String::from("objective,model,learner,seed,epoch,reward\n");
    for (oi, objective) in cfg.objectives.iter().enumerate() {
        for inputs in cfg.models_for(objective) {
            let p = Problem { cfg, objective, oi, inputs, tables, w: cfg.weights() };
            let rows = p.rows(cells);
            let _ = writeln!(
                md,
                "## {}\n\nObjective `{}` ({:?} reward, {}); knobs: routing {:?}, blocking {:?}, replicas {:?}.\n",
                p.title(),
                objective.name,
                objective.reward,
                objective.parameters(),
                objective.routing,
                objective.blocking,
                objective.replicas
            );
            let header: Vec<String> = [
                "Policy",
                "Value on the model",
                "Value measured",
                "Regret on the model",
                "Regret measured",
                "Matches the measured optimum",
                "Gap closed (model)",
                "Gap closed (measured)",
            ]
            .map(String::from)
            .to_vec();
            let mut body = Vec::new();
            let mut scored = Vec::new();
            for row in &rows {
                let s = p.scores(row);
                let f = |v: &[f64], d| fmt_of_n(v, n, d, None);
                body.push(vec![
                    row.label.clone(),
                    f(&values(&s.model), 3),
                    f(&values(&s.measured), 3),
                    f(&s.regret_model, 3),
                    f(&s.regret_measured, 3),
                    f(&s.matches, 2),
                    f(&s.gap_model, 2),
                    f(&s.gap_measured, 2),
                ]);
                for (metric, v) in [
                    ("value_model", values(&s.model)),
                    ("value_measured", values(&s.measured)),
                    ("regret_model", s.regret_model.clone()),
                    ("regret_measured", s.regret_measured.clone()),
                    ("matches_measured_optimum", s.matches.clone()),
                    ("gap_closed_model", s.gap_model.clone()),
                    ("gap_closed_measured", s.gap_measured.clone()),
                ] {
                    let fv = finite(&v);
                    let (m, sd) = mean_std(&fv);
                    let num = |x: f64| if x.is_finite() { format!("{x:.6}") } else { String::new() };
                    let _ =
                        writeln!(csv, "{},{},{},{metric},{},{},{},{n}", objective.name, inputs.name(), row.file, num(m), num(sd), fv.len());
                }
                scored.push(s);
            }
            md.push_str(&markdown_table(&header, &body));
            md.push('\n');
            md.push_str(&findings(&p, &rows, &scored));
            md.push_str(&seed_policies(&p, &rows));
            write_policies(&p, &rows, &mut out)?;
            panels.push(curve_panel(&p, &rows, cells, &mut curves_csv));
        }
    }
    out.write("control.md", md)?;
    out.write("control.csv", csv)?;
    out.write("curves.csv", curves_csv)?;
    let png = out.stage("curves.png")?;
    curves_grid(&png, "Mean model reward of the agents' actions per epoch", "reward", &panels, 2)?;
    out.commit()
}

/// The verdicts under the table: degeneracy, agents against the best fixed action.
fn findings(p: &Problem, rows: &[PolicyRow], scored: &[Scores]) -> String {
    let mut s = String::new();
    let truth = &p.truth().reward;
    let fixed_t = best_fixed(truth, &p.w)[0];
    let actions = p.objective.actions();
    if degenerate(truth, &p.w) {
        let _ = writeln!(
            s,
            "- **Degenerate on the measured table**: one fixed action ({}) is optimal at every load.",
            describe_knobs(&actions[fixed_t])
        );
    } else {
        let (o, f) = (value(&optimum(truth), truth, &p.w), value(&best_fixed(truth, &p.w), truth, &p.w));
        let _ = writeln!(
            s,
            "- Not degenerate on the measured table: the best fixed action ({}) scores {f:.3} against the optimum's {o:.3} ({:.1} % below).",
            describe_knobs(&actions[fixed_t]),
            100.0 * (o - f) / o.abs().max(EPS)
        );
    }
    let degenerate_seeds = p.cfg.seed_list().iter().filter(|&&seed| degenerate(&p.model(seed).reward, &p.w)).count();
    let gaps: Vec<f64> = p
        .cfg
        .seed_list()
        .iter()
        .map(|&seed| {
            let m = &p.model(seed).reward;
            let (o, f) = (value(&optimum(m), m, &p.w), value(&best_fixed(m, &p.w), m, &p.w));
            100.0 * (o - f) / o.abs().max(EPS)
        })
        .collect();
    let _ = writeln!(
        s,
        "- On the model, one fixed action is optimal at every load for {degenerate_seeds} of {} seeds; the best fixed action lies {} % below the optimum.",
        p.cfg.seeds,
        fmt_of_n(&gaps, p.cfg.seeds, 1, None)
    );
    let fixed_row = rows.iter().position(|r| r.file == "best_fixed_model").expect("always a row");
    for (row, sc) in rows.iter().zip(scored).filter(|(r, _)| LearnerKind::Dqn.name() == r.file || LearnerKind::Ppo.name() == r.file) {
        let on_model = paired(&sc.model, &scored[fixed_row].model, p.cfg.tie_margin);
        let measured = paired(&sc.measured, &scored[fixed_row].measured, p.cfg.tie_margin);
        let _ = writeln!(
            s,
            "- {} against the best fixed action on the model ({} seed pairs): {} on the model ({:.3} vs {:.3}, difference {}), {} measured ({:.3} vs {:.3}, difference {}); gap closed on the model {}.",
            row.label,
            on_model.pairs,
            on_model.verdict,
            on_model.mean_a,
            on_model.mean_b,
            on_model.difference_text(3),
            measured.verdict,
            measured.mean_a,
            measured.mean_b,
            measured.difference_text(3),
            fmt_of_n(&sc.gap_model, p.cfg.seeds, 2, None)
        );
    }
    s.push('\n');
    s
}

/// The master seed's action at each load, per policy.
fn seed_policies(p: &Problem, rows: &[PolicyRow]) -> String {
    let seed = p.cfg.seed;
    let actions = p.objective.actions();
    let mut header = vec!["Load".to_string()];
    header.extend(rows.iter().map(|r| r.label.clone()));
    let body: Vec<Vec<String>> = p
        .cfg
        .loads
        .values
        .iter()
        .enumerate()
        .map(|(l, load)| {
            let mut line = vec![format!("{load}")];
            for r in rows {
                line.push(r.per_seed.iter().find(|(s, _)| *s == seed).map_or("–".into(), |(_, pol)| describe_knobs(&actions[pol[l]])));
            }
            line
        })
        .collect();
    format!("Seed {seed}'s choices:\n\n{}\n", markdown_table(&header, &body))
}

/// `policies/<objective>/<model>/<policy>.csv` for the master seed: `l,r,p,c,d` (the
/// framework's columns: load, reward, routing weight, replicas, delay), plus `blocking`
/// when the objective sets it; r and d are the model's, or measured for the measured rows.
fn write_policies(p: &Problem, rows: &[PolicyRow], out: &mut OutputSet) -> Result<()> {
    let seed = p.cfg.seed;
    let actions = p.objective.actions();
    let blocking = p.objective.blocking != [0.0];
    for row in rows {
        let Some((_, policy)) = row.per_seed.iter().find(|(s, _)| *s == seed) else { continue };
        let t = if row.measured { p.truth() } else { p.model(seed) };
        let mut text = String::from(if blocking { "l,r,p,c,d,blocking\n" } else { "l,r,p,c,d\n" });
        for (l, (&a, load)) in policy.iter().zip(&p.cfg.loads.values).enumerate() {
            let k = actions[a];
            let _ = write!(text, "{load},{:.6},{},{},{:.6}", t.reward[l][a], k.routing, k.replicas, t.delay[l][a]);
            if blocking {
                let _ = write!(text, ",{}", k.blocking);
            }
            text.push('\n');
        }
        out.write(format!("policies/{}/{}/{}.csv", p.objective.name, p.inputs.name(), row.file), text)?;
    }
    Ok(())
}

/// The learners' curves (mean over seeds, band min..max) with the optimum and the best
/// fixed action on the model as flat lines.
fn curve_panel(p: &Problem, rows: &[PolicyRow], cells: &[ControlCell], csv: &mut String) -> CurvePanel {
    let epochs = p.cfg.epochs;
    let mut curves = Vec::new();
    for &learner in &p.cfg.learners {
        let mine: Vec<&ControlCell> =
            cells.iter().filter(|c| c.objective == p.objective.name && c.model == p.inputs && c.learner == learner).collect();
        for c in &mine {
            for (e, r) in c.curve.0.iter().enumerate() {
                let _ = writeln!(csv, "{},{},{},{},{},{r:.6}", p.objective.name, p.inputs.name(), learner.name(), c.seed, e + 1);
            }
        }
        if mine.is_empty() {
            continue;
        }
        let runs: Vec<&[f64]> = mine.iter().map(|c| c.curve.0.as_slice()).collect();
        curves.push(Curve::over_runs(learner.label(), &runs, epochs));
    }
    for (file, label) in [("model_optimum", "optimum (model)"), ("best_fixed_model", "best fixed (model)")] {
        let row = rows.iter().find(|r| r.file == file).expect("always a row");
        let v = mean_std(&row.per_seed.iter().map(|(s, pol)| value(pol, &p.model(*s).reward, &p.w)).collect::<Vec<_>>()).0;
        curves.push(Curve::flat(label, v, epochs));
    }
    CurvePanel { title: p.title(), curves }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yardsticks_of_a_small_table() {
        // Two loads, three actions: action 0 is best at load 0, action 2 at load 1.
        let t = vec![vec![3.0, 2.0, 0.0], vec![0.0, 2.0, 3.0]];
        let w = [0.5, 0.5];
        assert_eq!(optimum(&t), vec![0, 2]);
        assert_eq!(best_fixed(&t, &w), vec![1, 1], "2 everywhere beats 1.5");
        assert_eq!(value(&[0, 2], &t, &w), 3.0);
        assert!(!degenerate(&t, &w));
        assert!(degenerate(&[vec![1.0, 2.0], vec![0.0, 2.0]], &w));
        assert_eq!(matches(&[0, 1], &t, &w), 0.5);
        assert_eq!(gap_closed(2.5, 2.0, 3.0), 0.5);
        assert!(gap_closed(2.0, 2.0, 2.0).is_nan(), "no gap to close");
        // Ties go to the first action.
        assert_eq!(argmax(&[1.0, 1.0 + 1e-12, 0.5]), 0);
    }
}

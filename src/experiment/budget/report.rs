//! The budget report: `budget.md` (per variant, each method's fresh value per budget with
//! its seeds and interval, and the verdict of every pair of methods at the same budget),
//! `budget.csv` (tidy, one row per variant, method and budget), `budget.png` (value against
//! budget on a log axis, one panel per variant, the exhaustive yardstick as a flat line).

use std::fmt::Write as _;

use super::problem::Problem;
use super::{fresh_seed, BudgetCell, BudgetConfig};
use crate::experiment::compare::{against, paired, t_interval, SeedValue};
use crate::experiment::rundir::RunDir;
use crate::report::plot::{log_x_grid, Curve, CurvePanel};
use crate::report::{markdown_table, mean_std};
use crate::Result;

/// One method at one budget: its cells' values by seed.
struct Point {
    values: Vec<SeedValue>,
    spent: f64,
}

impl Point {
    fn of(cells: &[BudgetCell], variant: &str, method: &str, budget: usize) -> Point {
        let mine: Vec<&BudgetCell> = cells.iter().filter(|c| c.variant == variant && c.method == method && c.budget == budget).collect();
        let spent = mine.iter().map(|c| c.spent as f64).sum::<f64>() / mine.len().max(1) as f64;
        Point { values: mine.iter().map(|c| (c.seed, c.value)).collect(), spent }
    }

    fn numbers(&self) -> Vec<f64> {
        self.values.iter().map(|v| v.1).filter(|v| v.is_finite()).collect()
    }

    fn median(&self) -> f64 {
        let mut v = self.numbers();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    /// The mean's 95 % interval (NaN with fewer than two seeds).
    fn interval(&self) -> (f64, f64) {
        let v = self.numbers();
        if v.len() < 2 {
            return (f64::NAN, f64::NAN);
        }
        let ci = t_interval(&v);
        (ci.low, ci.high)
    }
}

/// Whether a cell's method is a learner (its name starts with one's).
fn is_learner(cfg: &BudgetConfig, method: &str) -> bool {
    cfg.agents.iter().any(|l| method == l.name() || method.starts_with(&format!("{}_", l.name())))
}

pub fn write(cfg: &BudgetConfig, problem: &Problem, cells: &[BudgetCell], dir: &RunDir, seconds: f64) -> Result<()> {
    let exhaustive = cfg.exhaustive.method().name();
    let runs = &problem.runs_label;
    let mut md = String::from("# Budget curves: which method finds the better choice for the same number of ground-truth runs?\n\n");
    let _ = writeln!(
        md,
        "{} Each method spends at most B {runs} in all and recommends one choice per state, scored as above, the same \
         fresh runs for every method (`score_runs` = {} per state where the ground truth is random). Learners (dqn, ppo) \
         are trained with B ground-truth interactions and give their greedy choice. Cells: {} seeds per method and budget \
         (n: seeds with a value). Config: `config.resolved.toml`.\n",
        problem.summary, cfg.score_runs, cfg.seeds
    );
    let _ = writeln!(md, "{}\n", cfg.tie_margin.explained());
    let mut csv = String::from("variant,method,budget,n_seeds,spent_mean,median,mean,sd,ci_low,ci_high\n");
    let mut panels = Vec::new();
    let mut outputs = dir.outputs();
    for v in &problem.variants {
        let variant = v.name();
        let methods = cfg.entry_names(v.as_ref());
        let _ = writeln!(md, "## {variant}\n");
        let yard = cells.iter().find(|c| c.variant == variant && c.method == exhaustive);
        if let Some(y) = yard {
            let ex = cfg.exhaustive;
            let _ = writeln!(
                md,
                "Exhaustive yardstick (every choice on {} runs, the {} best on {} more): value {:.4}, {} {runs}.\n",
                ex.repeats, ex.shortlist, ex.refine, y.value, y.spent
            );
            let _ = writeln!(csv, "{variant},{exhaustive},{},1,{},{:.6},{:.6},0,,", y.budget, y.spent, y.value, y.value);
        }
        // The variant's own yardsticks: one cell each, a flat line, a verdict per entry.
        let yardsticks: Vec<&BudgetCell> =
            v.yardsticks().iter().filter_map(|(name, _)| cells.iter().find(|c| c.variant == variant && &c.method == name)).collect();
        if !yardsticks.is_empty() {
            let rows: Vec<Vec<String>> =
                yardsticks.iter().map(|y| vec![y.method.clone(), format!("{:.4}", y.value), y.spent.to_string()]).collect();
            md.push_str("Yardsticks, each scored on the same fresh runs:\n\n");
            md.push_str(&markdown_table(&["yardstick".into(), "value".into(), format!("{runs} spent")], &rows));
            md.push('\n');
            for y in &yardsticks {
                let _ = writeln!(csv, "{variant},{},{},1,{},{:.6},{:.6},0,,", y.method, y.budget, y.spent, y.value, y.value);
            }
        }
        let mut header = vec!["budget".to_string()];
        header.extend(methods.iter().map(|m| format!("{m}: median, mean [95 % interval] (n; runs spent)")));
        // Every pair of methods, later against earlier, paired by seed.
        let pairs: Vec<(usize, usize)> = (0..methods.len()).flat_map(|j| (0..j).map(move |i| (j, i))).collect();
        // One row per pair, one column per budget: the table stays as wide as the budgets.
        let mut verdict_header = vec!["pair".to_string()];
        verdict_header.extend(cfg.budgets.iter().map(|b| format!("B = {b}")));
        let mut verdict_rows: Vec<Vec<String>> = pairs.iter().map(|&(j, i)| vec![format!("{} vs {}", methods[j], methods[i])]).collect();
        let mut rows = Vec::new();
        let mut curves: Vec<Curve> = Vec::new();
        for m in &methods {
            let points: Vec<Point> = cfg.budgets.iter().map(|&b| Point::of(cells, &variant, m, b)).collect();
            let intervals: Vec<(f64, f64)> = points.iter().map(Point::interval).collect();
            curves.push(Curve {
                label: m.clone(),
                mean: points.iter().map(|p| mean_std(&p.numbers()).0).collect(),
                lo: intervals.iter().map(|i| i.0).collect(),
                hi: intervals.iter().map(|i| i.1).collect(),
            });
        }
        if let Some(y) = yard {
            curves.push(Curve::flat(format!("{exhaustive} ({} runs)", y.spent), y.value, cfg.budgets.len()));
        }
        for y in &yardsticks {
            curves.push(Curve::flat(format!("{} ({} runs)", y.method, y.spent), y.value, cfg.budgets.len()));
        }
        let against_rows: Vec<(String, &BudgetCell)> =
            yardsticks.iter().flat_map(|y| methods.iter().map(move |m| (m.clone(), *y))).collect();
        let mut yard_rows: Vec<Vec<String>> = against_rows.iter().map(|(m, y)| vec![format!("{m} vs {}", y.method)]).collect();
        for &b in &cfg.budgets {
            let mut row = vec![b.to_string()];
            let points: Vec<Point> = methods.iter().map(|m| Point::of(cells, &variant, m, b)).collect();
            for (m, p) in methods.iter().zip(&points) {
                let v = p.numbers();
                let (mean, sd) = mean_std(&v);
                let (lo, hi) = p.interval();
                row.push(format!("{:.4}, {mean:.4} [{lo:.4}, {hi:.4}] ({}; {:.0})", p.median(), v.len(), p.spent));
                let _ = writeln!(csv, "{variant},{m},{b},{},{:.1},{:.6},{mean:.6},{sd:.6},{lo:.6},{hi:.6}", v.len(), p.spent, p.median());
            }
            for (&(j, i), verdicts) in pairs.iter().zip(&mut verdict_rows) {
                let c = paired(&points[j].values, &points[i].values, cfg.tie_margin);
                verdicts.push(format!("{}: {}", c.verdict, c.difference_text(1)));
            }
            for ((m, y), verdicts) in against_rows.iter().zip(&mut yard_rows) {
                let p = &points[methods.iter().position(|x| x == m).expect("an entry")];
                let c = against(&p.values, y.value, cfg.tie_margin);
                verdicts.push(format!("{}: {}", c.verdict, c.difference_text(1)));
            }
            rows.push(row);
        }
        md.push_str(&markdown_table(&header, &rows));
        md.push_str("\nVerdicts, each pair paired by seed:\n\n");
        md.push_str(&markdown_table(&verdict_header, &verdict_rows));
        md.push('\n');
        if !yard_rows.is_empty() {
            md.push_str("Against the yardsticks (each a single recommendation, its fresh value taken as exact):\n\n");
            md.push_str(&markdown_table(&verdict_header, &yard_rows));
            md.push('\n');
        }
        let mine: Vec<&BudgetCell> = cells.iter().filter(|c| c.variant == variant).collect();
        md.push_str(&v.recommend(&mine, cfg.score_runs, &|s, r| fresh_seed(cfg, s, r), &mut outputs)?);
        panels.push(CurvePanel { title: variant.clone(), curves });
    }
    let budgets: Vec<f64> = cfg.budgets.iter().map(|&b| b as f64).collect();
    let png = outputs.stage("budget.png")?;
    log_x_grid(
        &png,
        "Fresh value of the recommendation against the budget",
        &format!("budget ({runs})"),
        &problem.value_label,
        &panels,
        panels.len(),
        &budgets,
    )?;
    md.push_str("![value against budget](budget.png)\n");
    outputs.write("budget.md", md)?;
    outputs.write("budget.csv", csv)?;
    outputs.commit()?;
    let total: f64 = cells.iter().map(|c| c.seconds).sum();
    let runs_label = &problem.runs_label;
    // Ground-truth runs per second of a cell (one core): spent plus the fresh scoring, over
    // the searches and yardsticks, and over the learners (their networks' time included).
    let rate = |learners: bool| {
        let mine: Vec<&BudgetCell> = cells.iter().filter(|c| is_learner(cfg, &c.method) == learners).collect();
        let runs: usize = mine
            .iter()
            .map(|c| {
                let v = problem.variants.iter().find(|v| v.name() == c.variant).expect("a cell's variant");
                c.spent + cfg.score_runs * v.states() * v.cost()
            })
            .sum();
        let secs: f64 = mine.iter().map(|c| c.seconds).sum();
        format!("{runs} {runs_label} in {secs:.0} s, {:.1} per second per core", runs as f64 / secs.max(1e-9))
    };
    dir.write(
        crate::experiment::timing::WALL_TIME_FILE,
        format!(
            "# Wall time\n\n- whole run (this invocation): {seconds:.0} s\n- cells, summed: {total:.0} s ({} cells)\n\
             - searches and yardsticks, scoring included: {}\n- learners, training and scoring: {}\n",
            cells.len(),
            rate(false),
            rate(true)
        ),
    )
}

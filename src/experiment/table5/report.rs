//! Table 5's report: the CSV and Markdown tables, the per-epoch metrics, the claims of
//! protocol.md section 7 and Figure 7, all from the finished cells.

use std::fmt::Write as _;

use super::{paper_table5, CellResult, Table5Config};
use crate::env::load_search::Configuration;
use crate::error::Result;
use crate::experiment::metrics::rolling_mean;
use crate::experiment::rundir::OutputSet;
use crate::report::{self, mean_std, plot};

/// A `table5.csv` metric: its name, how a cell gives it, the paper's value.
type Metric = (&'static str, fn(&CellResult) -> f64, Option<f64>);

pub(super) struct Report<'a> {
    pub cfg: &'a Table5Config,
    pub confs: &'a [Configuration],
    pub cells: &'a [CellResult],
}

impl Report<'_> {
    fn group(&self, dataset: &str, conf: &str) -> Vec<&CellResult> {
        self.cells.iter().filter(|c| c.dataset == dataset && c.configuration == conf).collect()
    }

    fn values(&self, dataset: &str, conf: &str, f: fn(&CellResult) -> f64) -> Vec<f64> {
        self.group(dataset, conf).into_iter().map(f).collect()
    }

    fn seeds_text(&self) -> String {
        self.cfg.seeds().iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" ")
    }

    pub(super) fn csv(&self) -> String {
        let mut s = String::from("dataset,configuration,metric,mean,std,n_seeds,seeds,paper\n");
        for d in &self.cfg.datasets {
            for conf in self.confs {
                let name = conf.name();
                let paper = paper_table5(&name, &d.name);
                let metrics: [Metric; 11] = [
                    ("sim", |c| c.sim, paper.map(|p| p.0)),
                    ("val", |c| c.val, paper.map(|p| p.1)),
                    ("best_epoch", |c| (c.best_epoch + 1) as f64, None),
                    ("spread_after_best", |c| c.spread_after_best, None),
                    ("best_epoch_sim", |c| c.yardstick(|y| y.agent_sim), None),
                    ("fixed_sim", |c| c.yardstick(|y| y.fixed_sim), None),
                    ("oracle_sim", |c| c.yardstick(|y| y.oracle_sim), None),
                    ("reach_sim", |c| c.yardstick(|y| y.reach_sim), None),
                    ("fixed_val", |c| c.yardstick(|y| y.fixed_val), None),
                    ("oracle_val", |c| c.yardstick(|y| y.oracle_val), None),
                    ("reach_val", |c| c.yardstick(|y| y.reach_val), None),
                ];
                for (metric, f, p) in metrics {
                    let v = self.values(&d.name, &name, f);
                    let (m, sd) = mean_std(&v);
                    let _ = writeln!(
                        s,
                        "{},{name},{metric},{m:.4},{sd:.4},{},{},{}",
                        d.name,
                        v.len(),
                        self.seeds_text(),
                        p.map(|x| x.to_string()).unwrap_or_default()
                    );
                }
            }
        }
        s
    }

    /// One line per cell and epoch: the ratio, its rolling mean, both mean rewards and the
    /// learner's own diagnostics.
    pub(super) fn metrics_csv(&self) -> String {
        let diagnostics = self.cfg.learner().diagnostic_columns();
        let mut s = String::from("dataset,configuration,seed,epoch,ratio,rolling_mean,rl_reward,baseline_reward");
        for d in diagnostics {
            let _ = write!(s, ",{}", d.name);
        }
        s.push('\n');
        for c in self.cells {
            let roll = rolling_mean(&c.epochs.ratio, self.cfg.rolling_window);
            for (e, roll) in roll.iter().enumerate() {
                let _ = write!(
                    s,
                    "{},{},{},{},{:.5},{},{:.4},{:.4}",
                    c.dataset,
                    c.configuration,
                    c.seed,
                    e + 1,
                    c.epochs.ratio[e],
                    roll.map(|r| format!("{r:.5}")).unwrap_or_default(),
                    c.epochs.rl_reward[e],
                    c.epochs.baseline_reward[e]
                );
                for d in diagnostics {
                    match c.epochs.diagnostics.get(d.name).and_then(|v| v.0.get(e)) {
                        Some(v) => write!(s, ",{v:.prec$}", prec = d.decimals),
                        None => write!(s, ","),
                    }
                    .unwrap_or_default();
                }
                s.push('\n');
            }
        }
        s
    }

    pub(super) fn main_table(&self) -> String {
        let mut header = vec!["Configuration".to_string()];
        for d in &self.cfg.datasets {
            header.push(format!("{} Sim.", d.name));
            header.push(format!("{} Val.", d.name));
        }
        let rows: Vec<Vec<String>> = self
            .confs
            .iter()
            .map(|conf| {
                let name = conf.name();
                let mut row = vec![name.clone()];
                for d in &self.cfg.datasets {
                    let paper = paper_table5(&name, &d.name);
                    for (k, f) in [(0, (|c: &CellResult| c.sim) as fn(&CellResult) -> f64), (1, |c: &CellResult| c.val)] {
                        let cell = report::fmt_mean_std(&self.values(&d.name, &name, f), 2);
                        row.push(match paper {
                            Some(p) => format!("{cell} ({:.2})", if k == 0 { p.0 } else { p.1 }),
                            None => cell,
                        });
                    }
                }
                row
            })
            .collect();
        report::markdown_table(&header, &rows)
    }

    pub(super) fn markdown(&self, claims: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Table 5: policy evaluation\n");
        let _ = writeln!(
            s,
            "Sim.: the maximum {}-epoch rolling mean of the per-epoch ratio (RL 503/s over random \
             actions' 503/s on the same states, scored by the simulator). Val.: the best epoch's \
             pairs, RL and random, run on the emulator. Mean ± standard deviation over seeds {}; \
             the paper's value in parentheses. {} epochs of {} interactions per service. Config: \
             `config.resolved.toml`; per-epoch numbers: `metrics.csv`; curves: `figure7.png`, \
             `curves/`.\n",
            self.cfg.rolling_window,
            self.seeds_text(),
            self.cfg.epochs,
            self.cfg.steps_per_epoch
        );
        s.push_str(&self.main_table());
        let _ = writeln!(s, "\n## Best epoch and stability\n");
        let mut header = vec!["Configuration".to_string()];
        header.extend(self.cfg.datasets.iter().map(|d| format!("{} best epoch / spread", d.name)));
        let rows: Vec<Vec<String>> = self
            .confs
            .iter()
            .map(|conf| {
                let mut row = vec![conf.name()];
                for d in &self.cfg.datasets {
                    let be = report::fmt_mean_std(&self.values(&d.name, &conf.name(), |c| (c.best_epoch + 1) as f64), 0);
                    let sp = report::fmt_mean_std(&self.values(&d.name, &conf.name(), |c| c.spread_after_best), 3);
                    row.push(format!("{be} / {sp}"));
                }
                row
            })
            .collect();
        s.push_str(&report::markdown_table(&header, &rows));
        let _ = writeln!(
            s,
            "\n## Yardsticks: best fixed action and oracle\n\n\
             On the best epoch's states, as ratios to the random baseline: the agents (Agent), \
             the single load with the highest total (Fixed) and the best load of every state by \
             exhaustive search over the grid (Oracle), on the simulator (Sim.) and, on the first \
             {} validated states, on the emulator (Val.; chosen on the mean of {} runs of every \
             candidate, scored on a fresh run). Reach: the agents' share of the oracle's reward. \
             Fixed load: the simulator's choice in the first seed.\n",
            self.cfg.oracle_validation_states, self.cfg.oracle_runs
        );
        s.push_str(&self.yardstick_table());
        let _ = writeln!(s, "\n## Claims (protocol.md section 7)\n\n```\n{claims}\n```");
        s
    }

    /// One row per (configuration, dataset): agents against the fixed action and the oracle.
    fn yardstick_table(&self) -> String {
        let header: Vec<String> = [
            "Configuration",
            "Dataset",
            "Agent Sim.",
            "Fixed Sim.",
            "Oracle Sim.",
            "Reach Sim.",
            "Val.",
            "Fixed Val.",
            "Oracle Val.",
            "Reach Val.",
            "Fixed load",
        ]
        .iter()
        .map(|h| h.to_string())
        .collect();
        let columns: [fn(&CellResult) -> f64; 8] = [
            |c| c.yardstick(|y| y.agent_sim),
            |c| c.yardstick(|y| y.fixed_sim),
            |c| c.yardstick(|y| y.oracle_sim),
            |c| c.yardstick(|y| y.reach_sim),
            |c| c.val,
            |c| c.yardstick(|y| y.fixed_val),
            |c| c.yardstick(|y| y.oracle_val),
            |c| c.yardstick(|y| y.reach_val),
        ];
        let mut rows = Vec::new();
        for conf in self.confs {
            for d in &self.cfg.datasets {
                let name = conf.name();
                let mut row = vec![name.clone(), d.name.clone()];
                row.extend(columns.iter().map(|f| report::fmt_mean_std(&self.values(&d.name, &name, *f), 2)));
                row.push(
                    self.group(&d.name, &name)
                        .first()
                        .and_then(|c| c.yardsticks.as_ref())
                        .map(|y| y.fixed_sim_action.clone())
                        .unwrap_or_default(),
                );
                rows.push(row);
            }
        }
        report::markdown_table(&header, &rows)
    }

    /// Mean over the seeds that have a number.
    fn mean_of(&self, dataset: &str, conf: &str, f: fn(&CellResult) -> f64) -> Option<f64> {
        let v: Vec<f64> = self.values(dataset, conf, f).into_iter().filter(|x| x.is_finite()).collect();
        (!v.is_empty()).then(|| mean_std(&v).0)
    }

    /// Claims 2-5 of protocol.md section 7, each with the numbers behind it.
    pub(super) fn claims(&self) -> String {
        let mut out = Vec::new();
        // Claim 2: ratio > 1 in nearly every cell.
        for (label, f) in [("Sim.", (|c: &CellResult| c.sim) as fn(&CellResult) -> f64), ("Val.", |c: &CellResult| c.val)] {
            let mut above = 0;
            let mut total = 0;
            let mut below = Vec::new();
            for d in &self.cfg.datasets {
                for conf in self.confs {
                    if let Some(m) = self.mean_of(&d.name, &conf.name(), f) {
                        total += 1;
                        if m > 1.0 {
                            above += 1;
                        } else {
                            below.push(format!("{} {} {m:.2}", d.name, conf.name()));
                        }
                    }
                }
            }
            out.push(format!(
                "claim 2 (RL beats random, ratio > 1, in nearly every cell), {label}: {above} of {total} cells{}{}",
                if total > 0 && above as f64 >= 0.9 * total as f64 { " -> holds" } else { " -> does NOT hold" },
                if below.is_empty() { String::new() } else { format!("; not above 1: {}", below.join(", ")) }
            ));
        }
        // Claim 3: two agents beat the better single agent, per dataset and service count.
        for suffix in ["", "*5"] {
            let mut wins = 0;
            let mut total = 0;
            let mut detail = Vec::new();
            for d in &self.cfg.datasets {
                let best = |names: &[&str]| {
                    names.iter().filter_map(|n| self.mean_of(&d.name, &format!("{n}{suffix}"), |c| c.sim)).fold(f64::NAN, f64::max)
                };
                let single = best(&["call", "thread"]);
                let pair = best(&["thread&call", "thread-call", "call-thread"]);
                if single.is_finite() && pair.is_finite() {
                    total += 1;
                    wins += usize::from(pair > single);
                    detail.push(format!("{} {pair:.2} vs {single:.2}", d.name));
                }
            }
            if total > 0 {
                out.push(format!(
                    "claim 3 (two agents beat the better single agent{}), Sim.: {wins} of {total} datasets -> {} ({})",
                    if suffix.is_empty() { "" } else { ", five services" },
                    if 2 * wins > total { "holds" } else { "does NOT hold" },
                    detail.join("; ")
                ));
            }
        }
        // Claim 4: *5 configurations are more stable after the best epoch.
        let (mut stabler, mut total, mut detail) = (0, 0, Vec::new());
        for d in &self.cfg.datasets {
            for base in ["call", "thread", "thread&call", "thread-call", "call-thread"] {
                let single = self.mean_of(&d.name, base, |c| c.spread_after_best);
                let multi = self.mean_of(&d.name, &format!("{base}*5"), |c| c.spread_after_best);
                // Cells whose best epoch came last (or next to last) have no spread to compare.
                if let (Some(s), Some(m)) = (single.filter(|v| v.is_finite()), multi.filter(|v| v.is_finite())) {
                    total += 1;
                    stabler += usize::from(m < s);
                    detail.push(format!("{} {base}: {m:.3} vs {s:.3}", d.name));
                }
            }
        }
        if total > 0 {
            out.push(format!(
                "claim 4 (*5 learns more stably: smaller spread of per-epoch ratios after the best epoch): {stabler} of {total} comparable pairs -> {} ({})",
                if 2 * stabler > total { "holds" } else { "does NOT hold" },
                detail.join("; ")
            ));
        }
        // Claim 5: the best epoch comes before epoch 150.
        let early = self.cells.iter().filter(|c| c.best_epoch + 1 < 150).count();
        let latest = self.cells.iter().map(|c| c.best_epoch + 1).max().unwrap_or(0);
        out.push(format!(
            "claim 5 (best epoch before epoch 150): {early} of {} cells (latest best epoch {latest}; runs of {} epochs){}",
            self.cells.len(),
            self.cfg.epochs,
            if early == self.cells.len() { " -> holds" } else { " -> does NOT hold" }
        ));
        // Claim 6 (ours, not the paper's): the agents beat the best fixed action.
        for (label, agent, fixed) in [
            (
                "Sim. (best epoch)",
                (|c: &CellResult| c.yardstick(|y| y.agent_sim)) as fn(&CellResult) -> f64,
                (|c: &CellResult| c.yardstick(|y| y.fixed_sim)) as fn(&CellResult) -> f64,
            ),
            ("Val.", |c: &CellResult| c.val, |c: &CellResult| c.yardstick(|y| y.fixed_val)),
        ] {
            let (mut wins, mut total, mut losses, mut beats) = (0, 0, Vec::new(), Vec::new());
            let mut reach = Vec::new();
            for d in &self.cfg.datasets {
                for conf in self.confs {
                    if let (Some(a), Some(f)) = (self.mean_of(&d.name, &conf.name(), agent), self.mean_of(&d.name, &conf.name(), fixed)) {
                        total += 1;
                        if a > f {
                            wins += 1;
                            beats.push(format!("{} {} {a:.2} vs {f:.2}", d.name, conf.name()));
                        } else {
                            losses.push(format!("{} {} {a:.2} vs {f:.2}", d.name, conf.name()));
                        }
                        reach.push(a / f);
                    }
                }
            }
            if total > 0 {
                out.push(format!(
                    "claim 6 (agents beat the best fixed action; ours), {label}: {wins} of {total} cells -> {}; agents reach {:.2} of the fixed action's reward on average{}",
                    if 2 * wins > total { "holds" } else { "does NOT hold" },
                    mean_std(&reach).0,
                    // Name the minority: the cells that lose when most win, else the winners.
                    if 2 * wins > total {
                        if losses.is_empty() { String::new() } else { format!("; not above: {}", losses.join(", ")) }
                    } else if beats.is_empty() {
                        String::new()
                    } else {
                        format!("; above: {}", beats.join(", "))
                    }
                ));
            }
        }
        let reach: Vec<f64> = self.cells.iter().map(|c| c.yardstick(|y| y.reach_sim)).filter(|v| v.is_finite()).collect();
        let (m, sd) = mean_std(&reach);
        out.push(format!(
            "oracle: the agents reach {m:.2} ± {sd:.2} of the oracle's simulated reward on their best epoch's states ({} cells)",
            reach.len()
        ));
        out.join("\n")
    }

    /// Mean over seeds of a per-epoch series, with a band between the seeds' minimum and maximum.
    fn curve(&self, dataset: &str, conf: &str, label: String, rolling: bool) -> plot::Curve {
        let series: Vec<Vec<f64>> = self
            .group(dataset, conf)
            .iter()
            .map(|c| {
                if rolling {
                    rolling_mean(&c.epochs.ratio, self.cfg.rolling_window.min(c.epochs.ratio.len()))
                        .into_iter()
                        .map(|v| v.unwrap_or(f64::NAN))
                        .collect()
                } else {
                    c.epochs.ratio.clone()
                }
            })
            .collect();
        let n = series.iter().map(|s| s.len()).max().unwrap_or(0);
        let at = |e: usize| series.iter().filter_map(|s| s.get(e).copied()).filter(|v| v.is_finite()).collect::<Vec<f64>>();
        plot::Curve {
            label,
            mean: (0..n).map(|e| mean_std(&at(e)).0).collect(),
            lo: (0..n).map(|e| at(e).into_iter().fold(f64::NAN, f64::min)).collect(),
            hi: (0..n).map(|e| at(e).into_iter().fold(f64::NAN, f64::max)).collect(),
        }
    }

    pub(super) fn figures(&self, outputs: &mut OutputSet) -> Result<()> {
        // Figure 7: one panel per configuration (single-service row above, *5 below), one
        // curve per dataset: the per-epoch ratio, mean over seeds, band min..max.
        let panels: Vec<plot::CurvePanel> = self
            .confs
            .iter()
            .map(|conf| plot::CurvePanel {
                title: conf.name(),
                curves: self.cfg.datasets.iter().map(|d| self.curve(&d.name, &conf.name(), d.name.clone(), false)).collect(),
            })
            .collect();
        let columns = self.confs.iter().filter(|c| c.services == 1).count().max(1);
        plot::curves_grid(
            &outputs.stage("figure7.png")?,
            &format!("Per-epoch reward ratio (RL / random), mean over seeds {} with min-max band", self.seeds_text()),
            "ratio",
            &panels,
            columns,
        )?;
        // One curve PNG per (dataset, configuration): the ratio and its rolling mean.
        for d in &self.cfg.datasets {
            for conf in self.confs {
                let name = conf.name();
                let panel = plot::CurvePanel {
                    title: format!("{} {name}", d.name),
                    curves: vec![
                        self.curve(&d.name, &name, "per-epoch ratio".into(), false),
                        self.curve(&d.name, &name, format!("{}-epoch rolling mean", self.cfg.rolling_window), true),
                    ],
                };
                let path = outputs.stage(format!("curves/{}_{}.png", d.name, conf.slug()))?;
                plot::curves_grid(&path, &format!("{} {name}: seeds {}", d.name, self.seeds_text()), "ratio", &[panel], 1)?;
            }
        }
        Ok(())
    }
}

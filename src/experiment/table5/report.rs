//! Table 5's report: the CSV and Markdown tables, the per-epoch metrics and Figure 7, all
//! from the finished cells; the claims of protocol.md section 7 are in [`super::claims_text`].

use std::fmt::Write as _;

use super::{paper_table5, CellResult, Table5Config};
use crate::env::load_search::Configuration;
use crate::error::Result;
use crate::experiment::compare::SeedValue;
use crate::experiment::metrics::{population_std, rolling_mean};
use crate::experiment::rundir::OutputSet;
use crate::report::{self, finite, mean_std, plot};

/// How a cell gives one number (NaN where it has none).
pub(super) type Of = fn(&CellResult) -> f64;

/// A `table5.csv` metric: its name, how a cell gives it, the paper's value.
type Metric = (&'static str, Of, Option<f64>);

/// The yardstick tables' columns: header and number.
type Column = (&'static str, Of);

pub(super) struct Report<'a> {
    pub cfg: &'a Table5Config,
    pub confs: &'a [Configuration],
    pub cells: &'a [CellResult],
}

impl Report<'_> {
    pub(super) fn group(&self, dataset: &str, conf: &str) -> Vec<&CellResult> {
        self.cells.iter().filter(|c| c.dataset == dataset && c.configuration == conf).collect()
    }

    fn values(&self, dataset: &str, conf: &str, f: Of) -> Vec<f64> {
        self.group(dataset, conf).into_iter().map(f).collect()
    }

    /// One number per seed of a (dataset, configuration), NaN where a seed has none.
    pub(super) fn by_seed(&self, dataset: &str, conf: &str, f: Of) -> Vec<SeedValue> {
        self.group(dataset, conf).into_iter().map(|c| (c.seed, f(c))).collect()
    }

    /// Seeds per cell in the config.
    pub(super) fn n_seeds(&self) -> usize {
        self.cfg.seeds().len()
    }

    fn seeds_text(&self) -> String {
        self.cfg.seeds().iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" ")
    }

    /// Mean ± std over the seeds with a number, and how many of the config's seeds had one.
    fn fmt(&self, dataset: &str, conf: &str, f: Of, decimals: usize) -> String {
        report::fmt_of_n(&self.values(dataset, conf, f), self.n_seeds(), decimals, None)
    }

    /// The metrics of `table5.csv`, in column order.
    fn metrics(paper: Option<(f64, f64)>) -> [Metric; 17] {
        [
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
            ("greedy_sim", |c| c.greedy_sim, None),
            ("greedy_val", |c| c.greedy_val, None),
            ("reach_greedy_sim", |c| c.yardstick(|y| y.reach_greedy_sim), None),
            ("reach_greedy_val", |c| c.yardstick(|y| y.reach_greedy_val), None),
            ("yardstick_agent_val", |c| c.yardstick(|y| y.agent_val), None),
            ("yardstick_greedy_val", |c| c.yardstick(|y| y.greedy_val), None),
        ]
    }

    /// One line per (dataset, configuration, metric): mean and std over the seeds with a
    /// number (empty when none has one), how many and which seeds, the paper's value.
    pub(super) fn csv(&self) -> String {
        let mut s = String::from("dataset,configuration,metric,mean,std,n_seeds,seeds,paper\n");
        for d in &self.cfg.datasets {
            for conf in self.confs {
                let name = conf.name();
                for (metric, f, p) in Self::metrics(paper_table5(&name, &d.name)) {
                    let have: Vec<SeedValue> = self.by_seed(&d.name, &name, f).into_iter().filter(|(_, v)| v.is_finite()).collect();
                    let (m, sd) = mean_std(&have.iter().map(|(_, v)| *v).collect::<Vec<_>>());
                    let (m, sd) = if have.is_empty() { (String::new(), String::new()) } else { (format!("{m:.4}"), format!("{sd:.4}")) };
                    let seeds: Vec<String> = have.iter().map(|(seed, _)| seed.to_string()).collect();
                    let paper = p.map(|x| x.to_string()).unwrap_or_default();
                    let _ = writeln!(s, "{},{name},{metric},{m},{sd},{},{},{paper}", d.name, have.len(), seeds.join(" "));
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
        // Each side's number, and whether the paper's is its Sim. (else its Val.).
        let sides: [(Of, bool); 2] = [(|c| c.sim, true), (|c| c.val, false)];
        let rows: Vec<Vec<String>> = self
            .confs
            .iter()
            .map(|conf| {
                let name = conf.name();
                let mut row = vec![name.clone()];
                for d in &self.cfg.datasets {
                    let paper = paper_table5(&name, &d.name);
                    for (f, sim) in sides {
                        let note = paper.map(|p| format!("paper {:.2}", if sim { p.0 } else { p.1 }));
                        row.push(report::fmt_of_n(&self.values(&d.name, &name, f), self.n_seeds(), 2, note.as_deref()));
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
             pairs, RL and random, run on the emulator. Mean ± standard deviation over the seeds \
             with a number, then how many of the run's {} (seeds {}) had one, e.g. \"0.031 ± 0.004 (2 \
             of 3)\"; \"–\" where none had; the paper's value after it. {} epochs of {} interactions per \
             service. The yardstick tables also score the agents' greedy policy at the end of the \
             best epoch (Greedy), beside their training behaviour (Agent). Config: \
             `config.resolved.toml`; per-epoch numbers: `metrics.csv`; curves: `figure7.png`, \
             `curves/`.\n",
            self.cfg.rolling_window,
            if self.n_seeds() == 1 { "1 seed".to_string() } else { format!("{} seeds", self.n_seeds()) },
            self.seeds_text(),
            self.cfg.epochs,
            self.cfg.steps_per_epoch
        );
        s.push_str(&self.main_table());
        let _ = writeln!(
            s,
            "\n## Best epoch and stability\n\n\
             Spread: population standard deviation of the per-epoch ratios after the best epoch \
             (none with fewer than two epochs after it). Per service: the same for each service's \
             own ratio after the cell's best epoch, averaged over the services; a `*5` epoch sums \
             five services' interactions, whose spread is about 1/sqrt(5) of one service's.\n"
        );
        s.push_str(&self.stability_table());
        s.push_str(&self.yardsticks_text());
        let _ = writeln!(
            s,
            "\n## Claims (protocol.md section 7)\n\n{} Each item's entry gives its verdict, the mean difference with its \
             interval, and the seed pairs behind it.\n\nCommon random numbers: in every cell the agents and the random baseline \
             act on the same states of each seed; the greedy policy, the oracle and the best fixed action are scored on the same \
             validated states of the seed's best epoch, on the simulator and on the emulator. Comparisons between configurations \
             pair the same seed numbers, which share their master seed but not their states.\n\n```\n{claims}\n```",
            self.cfg.tie_margin.explained()
        );
        s
    }

    /// One row per (configuration, dataset): best epoch, spread, spread per service.
    fn stability_table(&self) -> String {
        let header: Vec<String> =
            ["Configuration", "Dataset", "Best epoch", "Spread after best", "Spread per service"].iter().map(|h| h.to_string()).collect();
        let columns: [(Of, usize); 3] = [(|c| (c.best_epoch + 1) as f64, 0), (|c| c.spread_after_best, 3), (spread_per_service, 3)];
        let mut rows = Vec::new();
        for conf in self.confs {
            for d in &self.cfg.datasets {
                let mut row = vec![conf.name(), d.name.clone()];
                row.extend(columns.iter().map(|(f, decimals)| self.fmt(&d.name, &conf.name(), *f, *decimals)));
                rows.push(row);
            }
        }
        report::markdown_table(&header, &rows)
    }

    fn yardsticks_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n## Yardsticks: best fixed action and oracle\n\n\
             As ratios to the random baseline on the same states: the agents' training behaviour \
             (Agent), their greedy policy at the end of the best epoch (Greedy), the single load \
             with the highest total (Fixed) and the best load of every state by exhaustive search \
             over the grid (Oracle). Reach: the share of the oracle's reward the agents (Reach) and \
             the greedy policy (Reach greedy) get. Fixed load: the choice in the first seed.\n\n\
             ### Simulator (Sim.)\n\nEvery state of the best epoch, scored by the simulator.\n"
        );
        let sim: [Column; 6] = [
            ("Agent Sim.", |c| c.yardstick(|y| y.agent_sim)),
            ("Greedy Sim.", |c| c.greedy_sim),
            ("Fixed Sim.", |c| c.yardstick(|y| y.fixed_sim)),
            ("Oracle Sim.", |c| c.yardstick(|y| y.oracle_sim)),
            ("Reach Sim.", |c| c.yardstick(|y| y.reach_sim)),
            ("Reach greedy Sim.", |c| c.yardstick(|y| y.reach_greedy_sim)),
        ];
        s.push_str(&self.yardstick_table(&sim, |y| y.fixed_sim_action.clone()));
        let _ = writeln!(
            s,
            "\n### Emulator (Val.)\n\n\
             The first {} validated states, run on the emulator; every number here, the agents' \
             included, is on these same states against the same random runs (so Agent Val. is \
             not the main table's Val., which uses every validated state). The oracle and the \
             fixed load are chosen on the mean of {} runs of every candidate and scored on a \
             fresh run.\n",
            self.cfg.oracle_validation_states, self.cfg.oracle_runs
        );
        let val: [Column; 6] = [
            ("Agent Val.", |c| c.yardstick(|y| y.agent_val)),
            ("Greedy Val.", |c| c.yardstick(|y| y.greedy_val)),
            ("Fixed Val.", |c| c.yardstick(|y| y.fixed_val)),
            ("Oracle Val.", |c| c.yardstick(|y| y.oracle_val)),
            ("Reach Val.", |c| c.yardstick(|y| y.reach_val)),
            ("Reach greedy Val.", |c| c.yardstick(|y| y.reach_greedy_val)),
        ];
        s.push_str(&self.yardstick_table(&val, |y| y.fixed_val_action.clone()));
        s
    }

    /// One row per (configuration, dataset): the columns' numbers, then the fixed load.
    fn yardstick_table(&self, columns: &[Column], fixed_load: fn(&crate::experiment::yardstick::Yardsticks) -> String) -> String {
        let mut header = vec!["Configuration".to_string(), "Dataset".to_string()];
        header.extend(columns.iter().map(|(h, _)| h.to_string()));
        header.push("Fixed load".to_string());
        let mut rows = Vec::new();
        for conf in self.confs {
            for d in &self.cfg.datasets {
                let name = conf.name();
                let mut row = vec![name.clone(), d.name.clone()];
                row.extend(columns.iter().map(|(_, f)| self.fmt(&d.name, &name, *f, 2)));
                row.push(self.group(&d.name, &name).first().and_then(|c| c.yardsticks.as_ref()).map(fixed_load).unwrap_or_default());
                rows.push(row);
            }
        }
        report::markdown_table(&header, &rows)
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

/// Population standard deviation of a series after `epoch` (its finite values); NaN with
/// fewer than two of them, as [`crate::experiment::metrics::spread_after_best`].
fn spread_after(series: &[f64], epoch: usize) -> f64 {
    population_std(&finite(series.get(epoch + 1..).unwrap_or_default()))
}

/// Each service's own per-epoch ratio's spread after the cell's best epoch, averaged over the
/// services that have one (NaN when none has); for one service, the cell's spread.
pub(super) fn spread_per_service(c: &CellResult) -> f64 {
    let spreads = finite(&c.epochs.slot_ratios.iter().map(|s| spread_after(&s.0, c.best_epoch)).collect::<Vec<_>>());
    if spreads.is_empty() {
        f64::NAN
    } else {
        mean_std(&spreads).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::yardstick::Yardsticks;
    use crate::train::{EpochLog, Series};

    fn config() -> Table5Config {
        let text = "kind = \"table5\"\nrepeats = 6\nepochs = 6\n[[dataset]]\nname = \"S1\"\npath = \"S1.csv\"\n\
                    [[dataset]]\nname = \"S2\"\npath = \"S2.csv\"\n";
        toml::from_str(text).unwrap()
    }

    fn yardsticks(v: f64) -> Yardsticks {
        Yardsticks {
            agent_sim: v,
            oracle_sim: 1.5 * v,
            fixed_sim: 1.0,
            fixed_sim_action: "threads 64".into(),
            reach_sim: v / 1.5,
            reach_greedy_sim: f64::NAN,
            agent_val: v,
            greedy_val: f64::NAN,
            oracle_val: f64::NAN,
            fixed_val: 1.0,
            fixed_val_action: "threads 32".into(),
            reach_val: f64::NAN,
            reach_greedy_val: f64::NAN,
            val_states: 10,
            load_tests: 100,
        }
    }

    /// A cell whose numbers grow with `v`; `ratios` is its per-epoch ratio, `slots` the
    /// services' own.
    fn cell(dataset: &str, conf: &str, seed: u64, v: f64, ratios: Vec<f64>, slots: Vec<Vec<f64>>) -> CellResult {
        let best_epoch = crate::experiment::metrics::best_epoch(&ratios);
        CellResult {
            key: String::new(),
            dataset: dataset.into(),
            configuration: conf.into(),
            seed,
            spread_after_best: crate::experiment::metrics::spread_after_best(&ratios),
            epochs: EpochLog { ratio: ratios, slot_ratios: slots.into_iter().map(Series).collect(), ..Default::default() },
            sim: v,
            best_epoch,
            val: if seed == 3 { f64::NAN } else { v - 0.1 + 0.001 * (seed as f64).powi(2) },
            greedy_sim: v + 0.2,
            greedy_val: f64::NAN,
            best_rl: Vec::new(),
            best_baseline: Vec::new(),
            best_greedy: Vec::new(),
            yardsticks: (dataset == "S1").then(|| yardsticks(v)),
            seconds: 1.0,
        }
    }

    /// S1 and S2, seeds 1-6 (S2's call*5 seed 3 missing); call*5's per-epoch ratios are
    /// steadier than call's, its services' own are not; S2's best epochs come last (no spread).
    fn cells() -> Vec<CellResult> {
        let mut cells = Vec::new();
        for (dataset, shift) in [("S1", 0.0), ("S2", 0.5)] {
            for seed in 1..=6u64 {
                let s = seed as f64 * 0.01;
                let late = |r: Vec<f64>| if dataset == "S2" { r.into_iter().rev().collect() } else { r };
                let single = late(vec![1.0, 2.0, 1.2, 1.8, 1.1, 1.9]);
                let five = late(vec![1.0, 2.0, 1.5, 1.6, 1.5, 1.6]);
                let slots = vec![single.clone(); 5];
                cells.push(cell(dataset, "call", seed, 1.2 + shift + s, single.clone(), vec![single.clone()]));
                cells.push(cell(dataset, "thread-call", seed, 1.5 + shift + 2.0 * s, single.clone(), vec![single]));
                if !(dataset == "S2" && seed == 3) {
                    cells.push(cell(dataset, "call*5", seed, 0.9 + shift + s, five, slots));
                }
            }
        }
        cells
    }

    fn with_report<T>(f: impl FnOnce(&Report) -> T) -> T {
        let cfg = config();
        let confs: Vec<Configuration> = ["call", "thread-call", "call*5"].iter().map(|c| Configuration::parse(c).unwrap()).collect();
        let cells = cells();
        f(&Report { cfg: &cfg, confs: &confs, cells: &cells })
    }

    #[test]
    fn markdown_and_csv_count_seeds_and_never_print_nan() {
        let (md, csv) = with_report(|r| (r.markdown(&r.claims()), r.csv()));
        assert!(!md.contains("NaN"), "{md}");
        assert!(!csv.contains("NaN"), "{csv}");
        // Val. is missing in seed 3; greedy_val everywhere; S2 has no yardsticks.
        assert!(md.contains("| call | S1 | 1.23 ± 0.02 (6 of 6) |"), "{md}");
        assert!(md.contains("1.15 ± 0.04 (5 of 6; paper 1.01)"), "{md}");
        assert!(md.contains("– (0 of 6)"), "{md}");
        assert!(md.contains("Greedy Sim.") && md.contains("Reach greedy Val.") && md.contains("Oracle Val."), "{md}");
        let line = |prefix: &str| csv.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}:\n{csv}")).to_string();
        assert_eq!(line("S1,call,val,"), "S1,call,val,1.1524,0.0352,5,1 2 4 5 6,1.01");
        assert_eq!(line("S1,call,greedy_val,"), "S1,call,greedy_val,,,0,,");
        assert_eq!(line("S2,call*5,sim,"), "S2,call*5,sim,1.4360,0.0207,5,1 2 4 5 6,2.96");
        assert!(csv.contains("S1,call,reach_greedy_val,") && csv.contains("S1,call,greedy_sim,1.4350,"));
    }

    #[test]
    fn claims_are_paired_per_seed_and_say_what_they_were_judged_on() {
        let claims = with_report(|r| r.claims());
        assert!(!claims.contains("NaN"), "{claims}");
        let line = |start: &str| claims.lines().filter(|l| l.starts_with(start)).collect::<Vec<_>>();
        // Sim.: call and thread-call beat 1 in both datasets; call*5 loses in S1 (0.94) and
        // wins in S2 (1.44, five seeds). Each entry carries its difference and interval:
        // d = -0.09 .. -0.04, mean -0.065, sd 0.0187, t(0.975, 5) 2.5706 -> ±0.0196.
        let sim = line("claim 2 (RL beats random, ratio > 1, in nearly every cell), Sim.")[0];
        assert!(sim.contains("Sim.: 5 wins, 1 loss, 0 ties, each cell"), "{sim}");
        assert!(sim.contains("judged on 6 cells, 6 seeds each (35 seed values) -> does NOT hold"), "{sim}");
        assert!(sim.contains("not wins: S1 call*5 0.94 (loss, -0.065 [-0.085, -0.045], 6 of 6 seeds)"), "{sim}");
        let three = line("claim 3 (two agents beat the better single agent)")[0];
        assert!(
            three.contains("2 wins, 0 losses, 0 ties")
                && three.contains("judged on 2 datasets, 6 seeds each (12 seed pairs)")
                && three.contains("-> holds"),
            "{three}"
        );
        assert!(three.contains("S1 thread-call 1.57 vs call 1.23 (win, +0.335 [0.315, 0.355], 6 of 6 seeds)"), "{three}");
        // Claim 4: S2's best epochs come last, so only S1 is judged. Whole epochs: call*5
        // steadier; per service: the same series as call, a tie (an interval of exactly 0).
        let four = line("claim 4 (*5 learns more stably");
        assert_eq!(four.len(), 3, "{claims}");
        assert!(
            four[0].contains("(a) as the paper defines it")
                && four[0].contains("1 win, 0 losses, 0 ties")
                && four[0].contains("judged on 1 configuration pair"),
            "{}",
            four[0]
        );
        assert!(
            four[1].contains("(b) per service") && four[1].contains("0 wins, 0 losses, 1 tie") && four[1].contains("-> does NOT hold"),
            "{}",
            four[1]
        );
        assert!(four[2].contains("1/sqrt(5)"), "{}", four[2]);
        assert!(line("claim 5 (best epoch before epoch 150): 35 of 35 seed values")[0].contains("judged on 6 cells, 6 seeds each -> holds"));
        let six = line("claim 6 (agents beat the best fixed action; ours)");
        assert_eq!(six.len(), 3, "{claims}");
        assert!(
            six[0].contains(
                "greedy policy, Sim.: 3 wins, 0 losses, 0 ties, each cell paired per seed; judged on 3 cells, 6 seeds each (18 seed pairs) -> holds"
            ),
            "{}",
            six[0]
        );
        assert!(
            six[1].contains("Val. (yardstick states): 0 wins, 0 losses, 0 ties, each cell") && six[1].contains("not judged"),
            "{}",
            six[1]
        );
        assert!(six[2].contains("for reference") && six[2].contains("(no verdict)"), "{}", six[2]);
        let oracle = line("oracle: the agents reach")[0];
        assert!(
            oracle.contains("(training behaviour; 18 seed values of 3 cells)") && oracle.contains("– on Sim. (0 seed values of 0 cells)"),
            "{oracle}"
        );
    }

    /// Three seeds (Table 5's) are too few for any verdict, and the claims say so.
    #[test]
    fn three_seeds_are_too_few_seeds() {
        let cfg = Table5Config { repeats: 3, ..config() };
        let confs: Vec<Configuration> = ["call", "thread-call", "call*5"].iter().map(|c| Configuration::parse(c).unwrap()).collect();
        let cells: Vec<CellResult> = cells().into_iter().filter(|c| c.seed <= 3).collect();
        let report = Report { cfg: &cfg, confs: &confs, cells: &cells };
        let claims = report.claims();
        let sim = claims.lines().find(|l| l.starts_with("claim 2 (RL beats random, ratio > 1, in nearly every cell), Sim.")).unwrap();
        assert!(sim.contains("0 wins, 0 losses, 0 ties, 6 too few seeds"), "{sim}");
        assert!(sim.contains("-> too few seeds: no item has the 5 seed pairs a verdict needs"), "{sim}");
        // The difference and its interval are still shown: S1 thread-call against call, 3 seeds.
        assert!(claims.contains("S1 thread-call 1.54 vs call 1.22 (too few seeds, +0.320 ["), "{claims}");
        assert!(report.markdown(&claims).contains("too few seeds below 5 pairs"), "the report explains the verdicts");
    }

    #[test]
    fn one_seed_per_cell_leaves_the_paired_claims_undecided() {
        let cfg = Table5Config { repeats: 1, ..config() };
        let confs = [Configuration::parse("call").unwrap()];
        let cells: Vec<CellResult> = cells().into_iter().filter(|c| c.seed == 1 && c.configuration == "call").collect();
        let claims = Report { cfg: &cfg, confs: &confs, cells: &cells }.claims();
        assert!(claims.contains("0 wins, 0 losses, 0 ties, 2 too few seeds"), "{claims}");
        assert!(claims.contains("1 seed each (2 seed values) -> too few seeds"), "{claims}");
        assert!(!claims.contains("NaN"), "{claims}");
    }
}

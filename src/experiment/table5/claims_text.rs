//! The claims of protocol.md section 7 (and ours) as text, each judged by paired per-seed
//! comparisons ([`crate::experiment::compare`]) and saying on how many cells and seeds.
//!
//! In every claim a win is a win for the claim (for claim 4: the `*5` configuration has the
//! smaller spread). Each item is one of the five verdicts of [`crate::experiment::compare`];
//! a claim holds on its wins, fails when even its inconclusive items could not make it hold,
//! is inconclusive in between, and says "too few seeds" when no item has enough of them.

use std::collections::BTreeSet;

use super::report::{spread_per_service, Of, Report};
use super::CellResult;
use crate::experiment::compare::{against, paired, ClaimVerdict, Comparison, Tally, Verdict, MIN_PAIRS};
use crate::report::{finite, mean_std};

const SINGLE: [&str; 2] = ["call", "thread"];
const TWO_AGENTS: [&str; 3] = ["thread&call", "thread-call", "call-thread"];
const CLAIM4: &str = "claim 4 (*5 learns more stably: smaller spread of per-epoch ratios after the best epoch)";
const CLAIM6: &str = "claim 6 (agents beat the best fixed action; ours)";

/// A claim that needs more than half its items to be wins.
fn more_than_half(items: usize) -> f64 {
    (items / 2 + 1) as f64
}

/// "1 seed", "3 seeds"
fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// "; " and the text, or nothing for no text.
fn then(text: String) -> String {
    if text.is_empty() {
        text
    } else {
        format!("; {text}")
    }
}

/// "-> holds", "-> does NOT hold", "-> inconclusive", or why there is no verdict.
fn verdict(claim: ClaimVerdict) -> String {
    match claim {
        ClaimVerdict::Empty => "-> not judged: nothing to compare".into(),
        ClaimVerdict::TooFewSeeds => {
            format!("-> too few seeds: no item has the {MIN_PAIRS} seed pairs a verdict needs; the numbers are in the tables")
        }
        ClaimVerdict::Holds => "-> holds".into(),
        ClaimVerdict::DoesNotHold => "-> does NOT hold".into(),
        ClaimVerdict::Inconclusive => "-> inconclusive: the inconclusive items could tip it either way".into(),
    }
}

impl Report<'_> {
    /// Claims 2-6 and the oracle, one or more lines each, with the numbers behind them.
    pub(super) fn claims(&self) -> String {
        let mut out = self.claim2();
        out.extend(self.claim3());
        out.extend(self.claim4());
        out.push(self.claim5());
        out.extend(self.claim6());
        out.push(self.oracle_line());
        out.join("\n")
    }

    /// "judged on 50 cells, 3 seeds each (148 seed values)"
    fn judged(&self, t: &Tally, unit: &str, values: &str) -> String {
        format!("judged on {}, {} each ({})", plural(t.len(), unit), plural(self.n_seeds(), "seed"), plural(t.pairs(), values))
    }

    /// "<label> (win, +0.12 [0.05, 0.19], 10 of 10 seeds)"
    fn entry(&self, label: &str, c: &Comparison) -> String {
        format!("{label} ({}, {}, {} of {})", c.verdict, c.difference_text(3), c.pairs, plural(self.n_seeds(), "seed"))
    }

    /// The entries with (`wins`) or without a win, joined.
    fn entries(&self, t: &Tally, wins: bool) -> String {
        t.entries.iter().filter(|(_, c)| (c.verdict == Verdict::Win) == wins).map(|(l, c)| self.entry(l, c)).collect::<Vec<_>>().join("; ")
    }

    /// Every entry, when some has an interval (two seeds; otherwise the tables say it all).
    fn listed(&self, t: &Tally) -> String {
        if !t.has_intervals() {
            return String::new();
        }
        t.entries.iter().map(|(l, c)| self.entry(l, c)).collect::<Vec<_>>().join("; ")
    }

    /// A (dataset, configuration)'s mean over the seeds with a number.
    fn mean_of(&self, dataset: &str, conf: &str, f: Of) -> Option<f64> {
        let v = finite(&self.by_seed(dataset, conf, f).into_iter().map(|(_, v)| v).collect::<Vec<_>>());
        (!v.is_empty()).then(|| mean_std(&v).0)
    }

    /// Every (dataset, configuration): `a` against `b` of the same cells, paired by seed.
    fn per_cell(&self, a: Of, b: Of, decimals: usize) -> Tally {
        let mut t = Tally::default();
        for d in &self.cfg.datasets {
            for conf in self.confs.iter().map(|c| c.name()) {
                let c = paired(&self.by_seed(&d.name, &conf, a), &self.by_seed(&d.name, &conf, b), self.cfg.tie_margin);
                t.add(format!("{} {conf} {:.decimals$} vs {:.decimals$}", d.name, c.mean_a, c.mean_b), c);
            }
        }
        t
    }

    /// Claim 2: the ratio beats 1 in at least 90 % of the cells, paired per seed against 1.
    fn claim2(&self) -> Vec<String> {
        let sides: [(&str, Of); 2] = [("Sim.", |c| c.sim), ("Val.", |c| c.val)];
        sides
            .into_iter()
            .map(|(label, f)| {
                let mut t = Tally::default();
                for d in &self.cfg.datasets {
                    for conf in self.confs.iter().map(|c| c.name()) {
                        let c = against(&self.by_seed(&d.name, &conf, f), 1.0, self.cfg.tie_margin);
                        t.add(format!("{} {conf} {:.2}", d.name, c.mean_a), c);
                    }
                }
                let rest = if t.has_intervals() { self.entries(&t, false) } else { String::new() };
                format!(
                    "claim 2 (RL beats random, ratio > 1, in nearly every cell), {label}: {}, each cell paired per seed against 1; {} {}{}",
                    t.counts_text(),
                    self.judged(&t, "cell", "seed value"),
                    verdict(t.claim(|n| 0.9 * n as f64)),
                    if rest.is_empty() { rest } else { format!("; not wins: {rest}") }
                )
            })
            .collect()
    }

    /// The configuration of `names` (with `suffix`) with the highest mean Sim. on a dataset.
    fn best_by_sim(&self, dataset: &str, names: &[&str], suffix: &str) -> Option<String> {
        let scored = names.iter().map(|n| format!("{n}{suffix}")).filter_map(|n| self.mean_of(dataset, &n, |c| c.sim).map(|m| (n, m)));
        scored.max_by(|a, b| a.1.total_cmp(&b.1)).map(|(n, _)| n)
    }

    /// Claim 3: per dataset, the better two-agent configuration against the better single
    /// one (both by mean Sim.), paired per seed; for one service and for five.
    fn claim3(&self) -> Vec<String> {
        ["", "*5"]
            .into_iter()
            .map(|suffix| {
                let mut t = Tally::default();
                for d in &self.cfg.datasets {
                    let (Some(single), Some(pair)) = (self.best_by_sim(&d.name, &SINGLE, suffix), self.best_by_sim(&d.name, &TWO_AGENTS, suffix))
                    else {
                        continue;
                    };
                    let c = paired(&self.by_seed(&d.name, &pair, |c| c.sim), &self.by_seed(&d.name, &single, |c| c.sim), self.cfg.tie_margin);
                    t.add(format!("{} {pair} {:.2} vs {single} {:.2}", d.name, c.mean_a, c.mean_b), c);
                }
                format!(
                    "claim 3 (two agents beat the better single agent{}), Sim.: {}, the better of each kind by mean Sim., paired per seed; {} {}{}",
                    if suffix.is_empty() { "" } else { ", five services" },
                    t.counts_text(),
                    self.judged(&t, "dataset", "seed pair"),
                    verdict(t.claim(more_than_half)),
                    then(self.listed(&t))
                )
            })
            .collect()
    }

    /// Claim 4: every `*5` configuration against its single-service one, paired per seed, on
    /// the whole epochs' spread (the paper's) and on each service's own (sample size removed).
    fn claim4(&self) -> Vec<String> {
        let kinds: [(&str, Of); 2] = [
            ("(a) as the paper defines it, whole epochs", |c| c.spread_after_best),
            ("(b) per service, the sample-size effect removed", spread_per_service),
        ];
        let mut out: Vec<String> = kinds
            .into_iter()
            .map(|(kind, multi)| {
                let mut t = Tally::default();
                for d in &self.cfg.datasets {
                    for conf in self.confs.iter().filter(|c| c.services > 1) {
                        let (five, base) = (conf.name(), conf.name().split('*').next().unwrap_or_default().to_string());
                        if self.group(&d.name, &base).is_empty() {
                            continue;
                        }
                        // A win for the claim: the single-service spread minus the *5 one is positive.
                        let c = paired(
                            &self.by_seed(&d.name, &base, |c| c.spread_after_best),
                            &self.by_seed(&d.name, &five, multi),
                            self.cfg.tie_margin,
                        );
                        t.add(format!("{} {five} {:.3} vs {base} {:.3}", d.name, c.mean_b, c.mean_a), c);
                    }
                }
                format!(
                    "{CLAIM4}, {kind}: {}, *5 against its single-service configuration, paired per seed; {} {}{}",
                    t.counts_text(),
                    self.judged(&t, "configuration pair", "seed pair"),
                    verdict(t.claim(more_than_half)),
                    then(self.listed(&t))
                )
            })
            .collect();
        out.push(format!(
            "{CLAIM4}, why (b): a *5 epoch sums five times as many interactions as a single-service one, which shrinks its spread by \
             about 1/sqrt(5) whatever the agents do; (b) takes each service's own per-epoch ratio after the cell's best epoch, \
             averaged over the five services. A seed with fewer than two epochs after its best has no spread and is left out \
             (k of n seeds)"
        ));
        out
    }

    /// Claim 5: every seed's best epoch comes before epoch 150.
    fn claim5(&self) -> String {
        let early = self.cells.iter().filter(|c| c.best_epoch + 1 < 150).count();
        let latest = self.cells.iter().map(|c| c.best_epoch + 1).max().unwrap_or(0);
        let cells: BTreeSet<(&str, &str)> = self.cells.iter().map(|c| (c.dataset.as_str(), c.configuration.as_str())).collect();
        format!(
            "claim 5 (best epoch before epoch 150): {early} of {} (latest best epoch {latest}; runs of {} epochs); judged on {}, {} each {}",
            plural(self.cells.len(), "seed value"),
            self.cfg.epochs,
            plural(cells.len(), "cell"),
            plural(self.n_seeds(), "seed"),
            if early == self.cells.len() { "-> holds" } else { "-> does NOT hold" }
        )
    }

    /// Claim 6 (ours): the greedy policy against the best fixed action on the same states,
    /// paired per seed; the training behaviour's comparison for reference.
    fn claim6(&self) -> Vec<String> {
        let sides: [(&str, Of, Of, bool); 3] = [
            ("greedy policy, Sim.", |c| c.greedy_sim, |c| c.yardstick(|y| y.fixed_sim), true),
            ("greedy policy, Val. (yardstick states)", |c| c.yardstick(|y| y.greedy_val), |c| c.yardstick(|y| y.fixed_val), true),
            (
                "for reference, training behaviour, Sim. (best epoch)",
                |c| c.yardstick(|y| y.agent_sim),
                |c| c.yardstick(|y| y.fixed_sim),
                false,
            ),
        ];
        sides.into_iter().map(|(label, agents, fixed, judge)| self.claim6_line(label, self.per_cell(agents, fixed, 2), judge)).collect()
    }

    fn claim6_line(&self, label: &str, t: Tally, judge: bool) -> String {
        let claim = t.claim(more_than_half);
        let holds = claim == ClaimVerdict::Holds;
        let share = finite(&t.entries.iter().map(|(_, c)| c.mean_a / c.mean_b).collect::<Vec<_>>());
        // Name the minority: the cells without a win when most win, else the winners.
        let (named, which) = match (t.has_intervals(), holds) {
            (false, _) => (String::new(), ""),
            (true, true) => (self.entries(&t, false), "not wins"),
            (true, false) => (self.entries(&t, true), "wins"),
        };
        format!(
            "{CLAIM6}, {label}: {}, each cell paired per seed; {} {}{}{}",
            t.counts_text(),
            self.judged(&t, "cell", "seed pair"),
            if judge { verdict(claim) } else { "(no verdict)".into() },
            if share.is_empty() { String::new() } else { format!("; {:.2} of the fixed action's reward on average", mean_std(&share).0) },
            if named.is_empty() { String::new() } else { format!("; {which}: {named}") }
        )
    }

    /// A number's mean ± std over every cell and seed with one, and how many:
    /// ("0.93 ± 0.04", "148 seed values of 50 cells").
    fn over_cells(&self, f: Of) -> (String, String) {
        let have: Vec<&CellResult> = self.cells.iter().filter(|c| f(c).is_finite()).collect();
        let cells: BTreeSet<(&str, &str)> = have.iter().map(|c| (c.dataset.as_str(), c.configuration.as_str())).collect();
        let (m, sd) = mean_std(&have.iter().map(|c| f(c)).collect::<Vec<_>>());
        let count = format!("{} of {}", plural(have.len(), "seed value"), plural(cells.len(), "cell"));
        match have.len() {
            0 => ("–".to_string(), count),
            1 => (format!("{m:.2}"), count),
            _ => (format!("{m:.2} ± {sd:.2}"), count),
        }
    }

    fn oracle_line(&self) -> String {
        let (behaviour, greedy_sim, greedy_val) = (
            self.over_cells(|c| c.yardstick(|y| y.reach_sim)),
            self.over_cells(|c| c.yardstick(|y| y.reach_greedy_sim)),
            self.over_cells(|c| c.yardstick(|y| y.reach_greedy_val)),
        );
        format!(
            "oracle: the agents reach {} of the oracle's simulated reward on their best epoch's states (training behaviour; {}); \
             the greedy policy reaches {} on Sim. ({}) and {} on Val. (yardstick states; {})",
            behaviour.0, behaviour.1, greedy_sim.0, greedy_sim.1, greedy_val.0, greedy_val.1
        )
    }
}

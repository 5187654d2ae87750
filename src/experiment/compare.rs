//! Verdicts with power: every win, tie or loss a report calls comes from here.
//!
//! Two numbers of the same cells (or of two configurations of one dataset) are paired by
//! seed: only seeds where both sides are finite make a pair. With `d_s = a_s - b_s` over
//! `n` pairs, the mean difference gets its two-sided 95 % interval from Student's t,
//! `mean(d) ± t(0.975, n - 1) · sd(d) / sqrt(n)` (sample standard deviation). A percentile
//! bootstrap would under-cover at 5-10 seeds, so there is none. The verdict for `a`:
//!
//! - **too few seeds** below [`MIN_PAIRS`] pairs: no interval is trusted that small;
//! - **win** when the interval lies above zero, **loss** when it lies below;
//! - **tie** when it lies inside `± margin`, the practical margin of the report
//!   ([`TieMargin`]: a share of the yardstick's value, `b`);
//! - **inconclusive** otherwise: the seeds cannot tell a difference from no difference.
//!
//! Win and loss are tested first: a difference the interval excludes zero for is called,
//! however small; the interval printed beside it says how large.

use std::fmt;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::report::mean_std;

/// A number of one seed.
pub type SeedValue = (u64, f64);

/// Below this many seed pairs a comparison is "too few seeds", whatever its numbers.
pub const MIN_PAIRS: usize = 5;

/// The two-sided confidence of the intervals.
pub const CONFIDENCE: f64 = 0.95;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Win,
    Loss,
    Tie,
    Inconclusive,
    TooFewSeeds,
}

impl Verdict {
    /// The five, in the order reports count them.
    pub const ALL: [Verdict; 5] = [Verdict::Win, Verdict::Loss, Verdict::Tie, Verdict::Inconclusive, Verdict::TooFewSeeds];

    /// Singular and plural, for counts.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Verdict::Win => ("win", "wins"),
            Verdict::Loss => ("loss", "losses"),
            Verdict::Tie => ("tie", "ties"),
            Verdict::Inconclusive => ("inconclusive", "inconclusive"),
            Verdict::TooFewSeeds => ("too few seeds", "too few seeds"),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.words().0)
    }
}

/// The practical margin inside which a difference is a tie: `share` of the yardstick's value
/// (the magnitude of `b`'s mean, or of the constant compared against). A report's config
/// holds it (`tie_margin`, default 0.01: 1 %). Where the yardstick is 0 only an interval of
/// exactly zero is a tie.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TieMargin(pub f64);

impl Default for TieMargin {
    fn default() -> Self {
        TieMargin(0.01)
    }
}

impl TieMargin {
    /// The margin in the units of the compared numbers, for a yardstick of value `b`.
    pub fn of(&self, b: f64) -> f64 {
        self.0 * b.abs()
    }

    /// Refuses a margin that is negative or not a number, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.0.is_finite() && self.0 >= 0.0 {
            Ok(())
        } else {
            Err(format!("tie_margin must be a finite share >= 0 (0.01: 1 % of the yardstick), but is {}", self.0))
        }
    }

    /// The sentence a report prints once: what its verdicts mean.
    pub fn explained(&self) -> String {
        format!(
            "Verdicts: paired by seed, the mean difference with its {:.0} % Student-t interval; win or loss when the interval excludes 0, \
             tie when it lies within ±{} % of the yardstick's value, inconclusive otherwise, too few seeds below {MIN_PAIRS} pairs.",
            100.0 * CONFIDENCE,
            fmt_share(100.0 * self.0)
        )
    }
}

/// 1, 0.5, 2.5: a percentage without trailing zeros.
fn fmt_share(p: f64) -> String {
    let s = format!("{p:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The mean difference's interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The two-sided [`CONFIDENCE`] Student-t interval of the mean of `d` (two values at least).
pub fn t_interval(d: &[f64]) -> Interval {
    t_interval_at(d, CONFIDENCE)
}

/// The two-sided Student-t interval of the mean of `d` at `confidence` (0.99: 99 %).
pub fn t_interval_at(d: &[f64], confidence: f64) -> Interval {
    let n = d.len();
    assert!(n >= 2, "an interval needs two differences");
    let (mean, sd) = mean_std(d);
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).expect("n - 1 >= 1 degrees of freedom").inverse_cdf(0.5 + confidence / 2.0);
    let half = t * sd / (n as f64).sqrt();
    Interval { low: mean - half, high: mean + half }
}

/// The verdict on the per-seed differences `a - b`, with `margin` in their units.
pub fn verdict(diffs: &[f64], margin: f64) -> (Verdict, Option<Interval>) {
    if diffs.len() < MIN_PAIRS {
        return (Verdict::TooFewSeeds, (diffs.len() >= 2).then(|| t_interval(diffs)));
    }
    let ci = t_interval(diffs);
    let v = if ci.low > 0.0 {
        Verdict::Win
    } else if ci.high < 0.0 {
        Verdict::Loss
    } else if ci.low >= -margin && ci.high <= margin {
        Verdict::Tie
    } else {
        Verdict::Inconclusive
    };
    (v, Some(ci))
}

/// One paired comparison: its pairs, both sides' means over them, the mean difference and
/// its interval (two pairs at least), the margin used, the verdict for `a`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub pairs: usize,
    pub mean_a: f64,
    pub mean_b: f64,
    pub interval: Option<Interval>,
    pub margin: f64,
    pub verdict: Verdict,
}

impl Comparison {
    /// "+0.123 [0.045, 0.201]": the mean difference and its interval, at `decimals`.
    pub fn difference_text(&self, decimals: usize) -> String {
        let mean = self.mean_a - self.mean_b;
        match self.interval {
            Some(ci) => format!("{mean:+.decimals$} [{:.decimals$}, {:.decimals$}]", ci.low, ci.high),
            None => format!("{mean:+.decimals$} [no interval]"),
        }
    }
}

/// `a` against `b`, paired by seed (seeds where both are finite).
pub fn paired(a: &[SeedValue], b: &[SeedValue], margin: TieMargin) -> Comparison {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .filter(|(_, x)| x.is_finite())
        .filter_map(|(seed, x)| b.iter().find(|(s, y)| s == seed && y.is_finite()).map(|(_, y)| (*x, *y)))
        .collect();
    let diffs: Vec<f64> = pairs.iter().map(|(x, y)| x - y).collect();
    let mean_b = mean_std(&pairs.iter().map(|p| p.1).collect::<Vec<_>>()).0;
    let margin = margin.of(mean_b);
    let (verdict, interval) = verdict(&diffs, margin);
    Comparison { pairs: pairs.len(), mean_a: mean_std(&pairs.iter().map(|p| p.0).collect::<Vec<_>>()).0, mean_b, interval, margin, verdict }
}

/// `a` against a constant (`d_s = a_s - b`).
pub fn against(a: &[SeedValue], b: f64, margin: TieMargin) -> Comparison {
    let constant: Vec<SeedValue> = a.iter().map(|(s, _)| (*s, b)).collect();
    paired(a, &constant, margin)
}

/// Comparisons of several items (cells, datasets), each with its label; items without a
/// single pair are left out (nothing to judge).
#[derive(Debug, Default)]
pub struct Tally {
    pub entries: Vec<(String, Comparison)>,
}

/// What a set of comparisons says of a claim that needs some share of wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimVerdict {
    Holds,
    DoesNotHold,
    /// The undecided items (inconclusive) could still tip it either way.
    Inconclusive,
    /// No item has the pairs a verdict needs.
    TooFewSeeds,
    /// Nothing to compare.
    Empty,
}

impl Tally {
    pub fn add(&mut self, label: String, c: Comparison) {
        if c.pairs > 0 {
            self.entries.push((label, c));
        }
    }

    /// Items judged.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn count(&self, v: Verdict) -> usize {
        self.entries.iter().filter(|(_, c)| c.verdict == v).count()
    }

    /// Pairs behind all the verdicts.
    pub fn pairs(&self) -> usize {
        self.entries.iter().map(|(_, c)| c.pairs).sum()
    }

    /// Whether any item has the pairs a verdict needs.
    pub fn decidable(&self) -> bool {
        self.entries.iter().any(|(_, c)| c.verdict != Verdict::TooFewSeeds)
    }

    /// Whether any item has an interval (two pairs at least): worth listing, even when too
    /// few seeds for a verdict.
    pub fn has_intervals(&self) -> bool {
        self.entries.iter().any(|(_, c)| c.interval.is_some())
    }

    /// A claim that holds when the wins reach `needed(items)`: it holds on the wins alone,
    /// fails when even every inconclusive item as a win would not reach it, and is
    /// inconclusive in between. Items with too few seeds count as not won.
    pub fn claim(&self, needed: impl Fn(usize) -> f64) -> ClaimVerdict {
        if self.is_empty() {
            return ClaimVerdict::Empty;
        }
        if !self.decidable() {
            return ClaimVerdict::TooFewSeeds;
        }
        let need = needed(self.len());
        let wins = self.count(Verdict::Win) as f64;
        if wins >= need {
            ClaimVerdict::Holds
        } else if wins + self.count(Verdict::Inconclusive) as f64 >= need {
            ClaimVerdict::Inconclusive
        } else {
            ClaimVerdict::DoesNotHold
        }
    }

    /// "3 wins, 0 losses, 1 tie, 2 inconclusive": the three always, the other two when any.
    pub fn counts_text(&self) -> String {
        Verdict::ALL
            .iter()
            .filter(|v| matches!(v, Verdict::Win | Verdict::Loss | Verdict::Tie) || self.count(**v) > 0)
            .map(|v| {
                let n = self.count(*v);
                let (one, many) = v.words();
                format!("{n} {}", if n == 1 { one } else { many })
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(values: &[f64]) -> Vec<SeedValue> {
        values.iter().enumerate().map(|(i, v)| (i as u64 + 1, *v)).collect()
    }

    const ONE_PERCENT: TieMargin = TieMargin(0.01);

    #[test]
    fn the_interval_is_students_t_computed_by_hand() {
        // d = 1, 2, 3, 4, 5: mean 3, sd sqrt(2.5) = 1.5811, t(0.975, 4) = 2.7764451,
        // half width 2.7764451 * 1.5811388 / sqrt(5) = 1.9632432.
        let ci = t_interval(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((ci.low - 1.0367568).abs() < 1e-6 && (ci.high - 4.9632432).abs() < 1e-6, "{ci:?}");
        // Two differences: t(0.975, 1) = 12.706205.
        let ci = t_interval(&[0.0, 2.0]);
        assert!((ci.high - (1.0 + 12.706205 * 2f64.sqrt() / 2f64.sqrt())).abs() < 1e-5, "{ci:?}");
    }

    #[test]
    fn the_five_verdicts_on_known_samples() {
        let base = seeds(&[100.0; 10]);
        // Clearly above: a win.
        let c = paired(&seeds(&[110.0, 111.0, 109.0, 112.0, 110.0, 108.0, 111.0, 110.0, 109.0, 110.0]), &base, ONE_PERCENT);
        assert_eq!((c.pairs, c.verdict), (10, Verdict::Win));
        assert!(c.interval.unwrap().low > 0.0);
        assert_eq!(paired(&base, &seeds(&[110.0, 111.0, 109.0, 112.0, 110.0]), ONE_PERCENT).verdict, Verdict::Loss);
        // Within ±0.3 of 0 and so inside ±1 (1 % of 100): a tie.
        let tie = paired(&seeds(&[100.1, 99.9, 100.2, 99.8, 100.0, 100.1, 99.9, 100.0, 100.1, 99.9]), &base, ONE_PERCENT);
        assert_eq!(tie.verdict, Verdict::Tie, "{tie:?}");
        // Noisy around 0, wider than the margin: cannot tell.
        let noisy = paired(&seeds(&[105.0, 95.0, 103.0, 97.0, 100.0, 108.0, 92.0, 101.0, 99.0, 100.0]), &base, ONE_PERCENT);
        assert_eq!(noisy.verdict, Verdict::Inconclusive, "{noisy:?}");
        // The old rule's case of autoscaling: PPO 106.8 ± 85.1 against the optimum 174.6 on
        // 5 seeds was "a tie"; it is inconclusive here.
        let ppo = paired(&seeds(&[174.0, 170.0, 20.0, 160.0, 10.0]), &seeds(&[174.6; 5]), ONE_PERCENT);
        assert_eq!(ppo.verdict, Verdict::Inconclusive, "{ppo:?}");
        // Four pairs are too few, however large the difference.
        let few = paired(&seeds(&[500.0, 501.0, 502.0, 503.0]), &base, ONE_PERCENT);
        assert_eq!(few.verdict, Verdict::TooFewSeeds);
        assert!(few.interval.is_some(), "the interval is still shown");
        assert_eq!(against(&seeds(&[5.0]), 1.0, ONE_PERCENT).interval, None);
        // A yardstick of 0: only an exact zero is a tie.
        assert_eq!(against(&seeds(&[0.0; 5]), 0.0, ONE_PERCENT).verdict, Verdict::Tie);
        assert_eq!(against(&seeds(&[0.0, 0.1, -0.1, 0.0, 0.0]), 0.0, ONE_PERCENT).verdict, Verdict::Inconclusive);
    }

    #[test]
    fn pairs_are_matched_by_seed_and_need_both_sides_finite() {
        let a = vec![(1, 2.0), (2, f64::NAN), (3, 2.2), (4, 9.0)];
        let b = vec![(3, 1.1), (1, 1.0), (2, 1.0), (5, 0.0)];
        let c = paired(&a, &b, ONE_PERCENT);
        // Seeds 1 and 3 pair (d = 1.0, 1.1); seed 2 has no a, seeds 4 and 5 no partner.
        assert_eq!((c.pairs, c.verdict), (2, Verdict::TooFewSeeds));
        assert!((c.mean_a - 2.1).abs() < 1e-12 && (c.mean_b - 1.05).abs() < 1e-12);
        assert_eq!(paired(&a, &[], ONE_PERCENT).pairs, 0);
        assert_eq!(c.difference_text(2), "+1.05 [0.41, 1.69]");
    }

    #[test]
    fn tally_counts_verdicts_and_judges_claims() {
        let mut t = Tally::default();
        t.add("a".into(), against(&seeds(&[2.0, 2.1, 2.0, 2.2, 2.1]), 1.0, ONE_PERCENT));
        t.add("b".into(), against(&seeds(&[1.0]), 1.0, ONE_PERCENT));
        t.add("c".into(), against(&seeds(&[f64::NAN]), 1.0, ONE_PERCENT));
        t.add("d".into(), against(&seeds(&[0.5, 0.4, 0.5, 0.4, 0.5]), 1.0, ONE_PERCENT));
        t.add("e".into(), against(&seeds(&[0.5, 1.5, 0.8, 1.2, 1.0]), 1.0, ONE_PERCENT));
        assert_eq!((t.len(), t.pairs()), (4, 16));
        assert_eq!(t.counts_text(), "1 win, 1 loss, 0 ties, 1 inconclusive, 1 too few seeds");
        assert!(t.decidable());
        // Half the items must be wins: 1 of 4 is short, 2 with the inconclusive one.
        assert_eq!(t.claim(|n| n as f64 / 2.0), ClaimVerdict::Inconclusive);
        assert_eq!(t.claim(|n| n as f64 * 0.9), ClaimVerdict::DoesNotHold);
        assert_eq!(t.claim(|_| 1.0), ClaimVerdict::Holds);
        let mut few = Tally::default();
        few.add("x".into(), against(&seeds(&[3.0, 3.0, 3.0]), 1.0, ONE_PERCENT));
        assert_eq!(few.claim(|_| 1.0), ClaimVerdict::TooFewSeeds);
        assert_eq!(Tally::default().claim(|_| 1.0), ClaimVerdict::Empty);
    }

    #[test]
    fn the_margin_is_a_share_of_the_yardstick_and_is_explained() {
        assert_eq!(TieMargin(0.01).of(-250.0), 2.5);
        assert!(TieMargin(-0.1).validate().is_err() && TieMargin(f64::NAN).validate().is_err());
        assert!(TieMargin::default().explained().contains("±1 % of the yardstick's value"));
        assert!(TieMargin(0.025).explained().contains("±2.5 %"));
    }
}

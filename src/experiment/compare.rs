//! Paired comparisons over seeds: two numbers of the same cells (or of two configurations of
//! one dataset), paired by seed, and the verdict on their differences.
//!
//! Only seeds where both sides are finite make a pair; with `d_s = a_s - b_s`, `a` wins when
//! at least two pairs exist and mean(d) > std(d) (sample standard deviation, as
//! [`crate::report::mean_std`]), loses when mean(d) < -std(d), and ties otherwise (one pair
//! is always a tie: nothing says how much the difference varies between seeds).

use std::fmt;

use crate::report::mean_std;

/// A number of one seed.
pub type SeedValue = (u64, f64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Win,
    Tie,
    Loss,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Win => "win",
            Verdict::Tie => "tie",
            Verdict::Loss => "loss",
        })
    }
}

/// The verdict on the per-seed differences `a - b`.
pub fn verdict(diffs: &[f64]) -> Verdict {
    if diffs.len() < 2 {
        return Verdict::Tie;
    }
    let (m, s) = mean_std(diffs);
    if m > s {
        Verdict::Win
    } else if m < -s {
        Verdict::Loss
    } else {
        Verdict::Tie
    }
}

/// One paired comparison: its pairs, both sides' means over them, the verdict for `a`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub pairs: usize,
    pub mean_a: f64,
    pub mean_b: f64,
    pub verdict: Verdict,
}

/// `a` against `b`, paired by seed (seeds where both are finite).
pub fn paired(a: &[SeedValue], b: &[SeedValue]) -> Comparison {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .filter(|(_, x)| x.is_finite())
        .filter_map(|(seed, x)| b.iter().find(|(s, y)| s == seed && y.is_finite()).map(|(_, y)| (*x, *y)))
        .collect();
    let diffs: Vec<f64> = pairs.iter().map(|(x, y)| x - y).collect();
    Comparison {
        pairs: pairs.len(),
        mean_a: mean_std(&pairs.iter().map(|p| p.0).collect::<Vec<_>>()).0,
        mean_b: mean_std(&pairs.iter().map(|p| p.1).collect::<Vec<_>>()).0,
        verdict: verdict(&diffs),
    }
}

/// `a` against a constant (`d_s = a_s - b`).
pub fn against(a: &[SeedValue], b: f64) -> Comparison {
    let constant: Vec<SeedValue> = a.iter().map(|(s, _)| (*s, b)).collect();
    paired(a, &constant)
}

/// Comparisons of several items (cells, datasets), each with its label; items without a
/// single pair are left out (nothing to judge).
#[derive(Debug, Default)]
pub struct Tally {
    pub entries: Vec<(String, Comparison)>,
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

    /// Whether any item has the two pairs a win or a loss needs.
    pub fn decidable(&self) -> bool {
        self.entries.iter().any(|(_, c)| c.pairs >= 2)
    }

    /// "3 wins, 1 tie, 0 losses"
    pub fn counts_text(&self) -> String {
        let (w, t, l) = (self.count(Verdict::Win), self.count(Verdict::Tie), self.count(Verdict::Loss));
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        format!("{}, {}, {}", plural(w, "win", "wins"), plural(t, "tie", "ties"), plural(l, "loss", "losses"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(values: &[f64]) -> Vec<SeedValue> {
        values.iter().enumerate().map(|(i, v)| (i as u64 + 1, *v)).collect()
    }

    #[test]
    fn verdicts_on_hand_made_differences() {
        // d = 0.1, 0.2, 0.3: mean 0.2 > std 0.1.
        let c = paired(&seeds(&[1.1, 1.2, 1.3]), &seeds(&[1.0, 1.0, 1.0]));
        assert_eq!((c.pairs, c.verdict), (3, Verdict::Win));
        assert!((c.mean_a - 1.2).abs() < 1e-12 && (c.mean_b - 1.0).abs() < 1e-12);
        assert_eq!(paired(&seeds(&[1.0, 1.0, 1.0]), &seeds(&[1.1, 1.2, 1.3])).verdict, Verdict::Loss);
        // One pair: a tie, however large the difference.
        assert_eq!(paired(&seeds(&[5.0]), &seeds(&[1.0])).verdict, Verdict::Tie);
        // Means differ (d = 1.0, -0.6: mean 0.2) but the std (1.13) is larger: a tie.
        let c = paired(&seeds(&[3.0, 0.4]), &seeds(&[2.0, 1.0]));
        assert_eq!((c.pairs, c.verdict), (2, Verdict::Tie));
        assert_eq!(against(&seeds(&[1.5, 1.6]), 1.0).verdict, Verdict::Win);
        assert_eq!(verdict(&[]), Verdict::Tie);
    }

    #[test]
    fn pairs_are_matched_by_seed_and_need_both_sides_finite() {
        let a = vec![(1, 2.0), (2, f64::NAN), (3, 2.2), (4, 9.0)];
        let b = vec![(3, 1.1), (1, 1.0), (2, 1.0), (5, 0.0)];
        let c = paired(&a, &b);
        // Seeds 1 and 3 pair (d = 1.0, 1.1); seed 2 has no a, seeds 4 and 5 no partner.
        assert_eq!((c.pairs, c.verdict), (2, Verdict::Win));
        assert!((c.mean_a - 2.1).abs() < 1e-12 && (c.mean_b - 1.05).abs() < 1e-12);
        assert_eq!(paired(&a, &[]).pairs, 0);
    }

    #[test]
    fn tally_counts_verdicts_and_skips_items_without_pairs() {
        let mut t = Tally::default();
        t.add("a".into(), against(&seeds(&[2.0, 2.1]), 1.0));
        t.add("b".into(), against(&seeds(&[1.0]), 1.0));
        t.add("c".into(), against(&seeds(&[f64::NAN]), 1.0));
        t.add("d".into(), against(&seeds(&[0.5, 0.4]), 1.0));
        assert_eq!((t.len(), t.pairs()), (3, 5));
        assert_eq!(t.counts_text(), "1 win, 1 tie, 1 loss");
        assert_eq!(
            t.entries.iter().map(|(l, c)| (l.as_str(), c.verdict)).collect::<Vec<_>>(),
            [("a", Verdict::Win), ("b", Verdict::Tie), ("d", Verdict::Loss)]
        );
        assert!(t.decidable());
    }
}

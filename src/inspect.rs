//! `meshrl inspect`: what a trace file holds, at a glance.

use std::fmt::Write as _;
use std::path::Path;

use crate::data::{load_table, TableSpec};
use crate::error::Result;

/// Row count, per-column min / max / mean, and a histogram of the failure rate (or, for a
/// table without one, of its first target).
pub fn inspect(path: &Path, spec: &TableSpec) -> Result<String> {
    let table = load_table(path, spec)?;
    let mut out = String::new();
    let _ = writeln!(out, "{}: {} rows", path.display(), table.n_rows());
    let _ = writeln!(out, "features: {}", table.feature_names().join(", "));
    let _ = writeln!(out, "targets:  {}\n", table.target_names().join(", "));
    let _ = writeln!(out, "{:<28} {:>12} {:>12} {:>12}", "column", "min", "max", "mean");
    for name in table.frame().get_column_names() {
        let Some(values) = table.column_f64(name) else { continue };
        let (min, max, mean) = min_max_mean(&values);
        let _ = writeln!(out, "{:<28} {:>12.4} {:>12.4} {:>12.4}", name.as_str(), min, max, mean);
    }
    let target =
        if table.target_names().iter().any(|t| t == "failure_rate") { "failure_rate".to_string() } else { table.target_names()[0].clone() };
    if let Some(values) = table.column_f64(&target) {
        let _ = writeln!(out, "\n{target} histogram:");
        out.push_str(&histogram(&values, 10));
    }
    Ok(out)
}

fn min_max_mean(values: &[f64]) -> (f64, f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max, values.iter().sum::<f64>() / values.len().max(1) as f64)
}

/// A text histogram with `bins` equal-width bins over the values' range (0..1 for rates).
pub fn histogram(values: &[f64], bins: usize) -> String {
    let (mut lo, mut hi, _) = min_max_mean(values);
    if lo >= 0.0 && hi <= 1.0 {
        (lo, hi) = (0.0, 1.0);
    }
    let width = ((hi - lo) / bins as f64).max(f64::MIN_POSITIVE);
    let mut counts = vec![0usize; bins];
    for &v in values {
        counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
    }
    let most = counts.iter().copied().max().unwrap_or(1).max(1);
    let mut out = String::new();
    for (i, c) in counts.iter().enumerate() {
        let bar = "#".repeat((40 * c).div_ceil(most));
        let share = 100.0 * *c as f64 / values.len().max(1) as f64;
        let _ = writeln!(out, "  {:>8.3} - {:<8.3} {:>7} {:>5.1} % {}", lo + i as f64 * width, lo + (i + 1) as f64 * width, c, share, bar);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::histogram;

    #[test]
    fn histogram_counts_every_value_once_with_rates_on_0_1() {
        let text = histogram(&[0.0, 0.05, 0.5, 1.0, 1.0], 10);
        let counts: Vec<usize> = text.lines().map(|l| l.split_whitespace().nth(3).unwrap().parse().unwrap()).collect();
        assert_eq!(counts, vec![2, 0, 0, 0, 0, 1, 0, 0, 0, 2]);
        assert!(text.starts_with("     0.000 - 0.100"));
    }
}

//! Reports: tables that paste into a paper (CSV and Markdown, mean and standard deviation
//! over seeds) and plots as PNG.

pub mod plot;

/// Mean and sample standard deviation (n - 1; 0 for a single value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}

/// "0.123 ± 0.004"
pub fn fmt_mean_std(values: &[f64], decimals: usize) -> String {
    let (m, s) = mean_std(values);
    format!("{m:.decimals$} ± {s:.decimals$}")
}

/// The finite values only: a seed without a number is left out, not averaged in as NaN.
pub fn finite(values: &[f64]) -> Vec<f64> {
    values.iter().copied().filter(|v| v.is_finite()).collect()
}

/// Mean ± sample standard deviation of the finite values, then how many of `n` had one and
/// an optional note: "0.031 ± 0.004 (2 of 3)", "0.031 (1 of 3)", "– (0 of 3; paper 1.03)".
/// Never "NaN".
pub fn fmt_of_n(values: &[f64], n: usize, decimals: usize, note: Option<&str>) -> String {
    let v = finite(values);
    let (m, s) = mean_std(&v);
    let number = match v.len() {
        0 => "–".to_string(),
        1 => format!("{m:.decimals$}"),
        _ => format!("{m:.decimals$} ± {s:.decimals$}"),
    };
    let note = note.map(|t| format!("; {t}")).unwrap_or_default();
    format!("{number} ({} of {n}{note})", v.len())
}

/// A Markdown table from a header and rows of cells.
pub fn markdown_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_matches_hand_computation() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-12);
        assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[7.0]), (7.0, 0.0));
        assert!(mean_std(&[]).0.is_nan());
    }

    #[test]
    fn fmt_of_n_counts_the_finite_values_and_never_prints_nan() {
        assert_eq!(fmt_of_n(&[0.03, f64::NAN, 0.04], 3, 3, None), "0.035 ± 0.007 (2 of 3)");
        assert_eq!(fmt_of_n(&[f64::NAN, 0.031], 3, 3, None), "0.031 (1 of 3)");
        assert_eq!(fmt_of_n(&[f64::NAN, f64::INFINITY], 3, 2, Some("paper 1.03")), "– (0 of 3; paper 1.03)");
        assert_eq!(fmt_of_n(&[], 3, 2, None), "– (0 of 3)");
        assert_eq!(finite(&[1.0, f64::NAN, 2.0]), vec![1.0, 2.0]);
    }

    #[test]
    fn markdown_table_has_a_separator_per_column() {
        let t = markdown_table(&["a".into(), "b".into()], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| 1 | 2 |\n");
    }
}

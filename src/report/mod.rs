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
    fn markdown_table_has_a_separator_per_column() {
        let t = markdown_table(&["a".into(), "b".into()], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| 1 | 2 |\n");
    }
}

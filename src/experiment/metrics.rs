//! Per-epoch ratios, rolling means and the paper's summary numbers (protocol.md section 6).

/// Rolling mean over `window` epochs ending at each epoch (None before a full window).
pub fn rolling_mean(series: &[f64], window: usize) -> Vec<Option<f64>> {
    let w = window.max(1);
    (0..series.len()).map(|e| (e + 1 >= w).then(|| series[e + 1 - w..=e].iter().sum::<f64>() / w as f64)).collect()
}

/// Sim.: the maximum over epochs of the rolling mean (the window shrinks to the run's
/// length when the run is shorter than a window).
pub fn sim_score(ratios: &[f64], window: usize) -> f64 {
    rolling_mean(ratios, window.min(ratios.len())).into_iter().flatten().fold(f64::NEG_INFINITY, f64::max)
}

/// The epoch (0-based) with the highest per-epoch ratio; the first on ties.
pub fn best_epoch(ratios: &[f64]) -> usize {
    let mut best = 0;
    for (i, r) in ratios.iter().enumerate() {
        if *r > ratios[best] {
            best = i;
        }
    }
    best
}

/// Spread (population standard deviation) of the per-epoch ratios after the best
/// epoch; NaN when fewer than two epochs follow it (nothing to measure).
pub fn spread_after_best(ratios: &[f64]) -> f64 {
    population_std(&ratios[(best_epoch(ratios) + 1).min(ratios.len())..])
}

/// Population standard deviation; NaN for fewer than two values (no spread to measure).
pub fn population_std(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return f64::NAN;
    }
    let m = values.iter().sum::<f64>() / values.len() as f64;
    (values.iter().map(|r| (r - m).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_mean_sim_and_best_epoch_on_a_hand_made_series() {
        let ratios = [1.0, 2.0, 3.0, 2.0, 1.0, 4.0];
        let roll = rolling_mean(&ratios, 3);
        assert_eq!(roll, vec![None, None, Some(2.0), Some(7.0 / 3.0), Some(2.0), Some(7.0 / 3.0)]);
        assert!((sim_score(&ratios, 3) - 7.0 / 3.0).abs() < 1e-12);
        assert_eq!(best_epoch(&ratios), 5);
        assert_eq!(best_epoch(&[3.0, 1.0, 3.0]), 0, "first on ties");
        // Window longer than the run: the whole run's mean.
        assert!((sim_score(&[1.0, 3.0], 25) - 2.0).abs() < 1e-12);
        assert!((spread_after_best(&[1.0, 5.0, 2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!(spread_after_best(&[1.0, 5.0]).is_nan(), "no epochs after the best");
    }
}

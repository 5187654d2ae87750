//! The fit's criterion: a distance between the observed and the emulated distribution of
//! each response, not between their means. Per configuration and response, the
//! 1-Wasserstein distance of the two empirical distributions (the area between their
//! cumulative distribution functions, on the response's scale: [`super::Metric::transform`]);
//! the criterion is their mean over configurations, summed over responses.

/// The 1-Wasserstein distance between two samples (each sorted ascending, neither empty):
/// the integral of |F_a(x) - F_b(x)| over x.
pub fn wasserstein_sorted(a: &[f64], b: &[f64]) -> f64 {
    debug_assert!(!a.is_empty() && !b.is_empty());
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut x = a[0].min(b[0]);
    let mut total = 0.0;
    while i < a.len() || j < b.len() {
        let next = match (a.get(i), b.get(j)) {
            (Some(&u), Some(&v)) => u.min(v),
            (Some(&u), None) => u,
            (None, Some(&v)) => v,
            (None, None) => unreachable!(),
        };
        total += (i as f64 / na - j as f64 / nb).abs() * (next - x);
        x = next;
        while a.get(i) == Some(&next) {
            i += 1;
        }
        while b.get(j) == Some(&next) {
            j += 1;
        }
    }
    total
}

/// Sorts a sample in place (NaN-free by construction: every value is checked on reading).
pub fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// The criterion of one candidate: `observed[c][m]` and `emulated[c][m]` are the sorted
/// samples of configuration c and response m.
pub fn criterion(observed: &[Vec<Vec<f64>>], emulated: &[Vec<Vec<f64>>]) -> f64 {
    let total: f64 = observed.iter().zip(emulated).map(|(o, e)| o.iter().zip(e).map(|(a, b)| wasserstein_sorted(a, b)).sum::<f64>()).sum();
    total / observed.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distance_is_the_area_between_the_distribution_functions() {
        assert_eq!(wasserstein_sorted(&[1.0], &[1.0]), 0.0);
        assert!((wasserstein_sorted(&[0.0], &[2.5]) - 2.5).abs() < 1e-12);
        // A shift moves it by the shift; a wider spread with the same mean is not zero.
        assert!((wasserstein_sorted(&[0.0, 1.0, 2.0], &[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-12);
        let spread = wasserstein_sorted(&[1.0, 1.0], &[0.0, 2.0]);
        assert!((spread - 1.0).abs() < 1e-12, "{spread}");
        // Unequal sizes: {0, 1} against {0.5}: half the mass moves 0.5 each way.
        assert!((wasserstein_sorted(&[0.0, 1.0], &[0.5]) - 0.5).abs() < 1e-12);
        // Symmetric.
        let (a, b) = ([0.1, 0.4, 0.4, 0.9], [0.2, 0.3, 1.5]);
        assert!((wasserstein_sorted(&a, &b) - wasserstein_sorted(&b, &a)).abs() < 1e-12);
    }
}

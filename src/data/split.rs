//! The seeded train/test split of protocol.md section 3.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The protocol's share of rows used for training (the rest is the test split).
pub const DEFAULT_TRAIN_FRACTION: f64 = 0.8;

/// Shuffles the row indices `0..n_rows` with `seed` and cuts them into (train, test), both
/// in shuffled order. The same `(n_rows, seed, train_fraction)` always gives the same split,
/// on every platform (ChaCha8 is portable and `shuffle` draws 32-bit indices for bounds that
/// fit).
///
/// The train split has `round(n_rows * train_fraction)` rows; the fraction is clamped to
/// `0..=1` (NaN counts as 0), so config validation should reject such values beforehand.
pub fn split(n_rows: usize, seed: u64, train_fraction: f64) -> (Vec<usize>, Vec<usize>) {
    let mut rows: Vec<usize> = (0..n_rows).collect();
    rows.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let test = rows.split_off(train_count(n_rows, train_fraction));
    (rows, test)
}

fn train_count(n_rows: usize, train_fraction: f64) -> usize {
    let fraction = if train_fraction.is_nan() { 0.0 } else { train_fraction.clamp(0.0, 1.0) };
    // `as` saturates, and the product is at most n_rows.
    ((n_rows as f64 * fraction).round() as usize).min(n_rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_deterministic() {
        assert_eq!(split(1000, 7, 0.8), split(1000, 7, 0.8));
        assert_ne!(split(1000, 7, 0.8), split(1000, 8, 0.8));
    }

    #[test]
    fn split_is_disjoint_and_covers_every_row() {
        let (train, test) = split(1001, 3, DEFAULT_TRAIN_FRACTION);
        assert_eq!(train.len(), 801);
        assert_eq!(test.len(), 200);
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1001).collect::<Vec<_>>());
    }

    #[test]
    fn split_shuffles() {
        let (train, _) = split(100, 1, 0.8);
        assert_ne!(train, (0..80).collect::<Vec<_>>());
    }

    #[test]
    fn split_clamps_odd_fractions() {
        assert_eq!(split(10, 0, 1.5).0.len(), 10);
        assert_eq!(split(10, 0, -0.5).0.len(), 0);
        assert_eq!(split(10, 0, f64::NAN).1.len(), 10);
        assert_eq!(split(0, 0, 0.8), (vec![], vec![]));
    }
}

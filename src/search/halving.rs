//! Sequential halving (Karnin, Koren and Somekh, "Almost optimal exploration in multi-armed
//! bandits", ICML 2013), the fixed-budget best-arm method that Hyperband's successive
//! halving (Jamieson and Talwalkar, 2016) runs inside each bracket.

use rand_chacha::ChaCha8Rng;

use super::{Evaluator, SearchSpace, Tally};
use crate::error::Result;

/// Rounds needed to bring `n` points down to one, keeping ceil(n / eta) a round.
fn rounds(mut n: usize, eta: usize) -> usize {
    let mut r = 0;
    while n > 1 {
        n = n.div_ceil(eta);
        r += 1;
    }
    r.max(1)
}

/// The largest number of starting points that gives each at least one evaluation in the
/// first of its rounds (the budget split evenly over the rounds), at most the space's size.
fn starting_points(budget: usize, eta: usize, space: u128) -> usize {
    let mut n = 1;
    while (n + 1) as u128 <= space && (n + 1) * rounds(n + 1, eta) <= budget {
        n += 1;
    }
    n
}

pub(super) fn search(space: &SearchSpace, eval: &mut Evaluator, eta: usize, rng: &mut ChaCha8Rng) -> Result<Vec<usize>> {
    let budget = eval.affordable();
    if budget == 0 {
        return Ok(space.random_point(rng));
    }
    let n = starting_points(budget, eta, space.points());
    // Distinct points where the space is small enough to list them, else random draws.
    let mut arms: Vec<Tally> = if space.points() <= n as u128 * 4 {
        let mut all: Vec<u128> = (0..space.points()).collect();
        for k in (1..all.len()).rev() {
            all.swap(k, rand::Rng::random_range(rng, 0..=k));
        }
        all[..n].iter().map(|&i| Tally { point: space.point(i), sum: 0.0, n: 0 }).collect()
    } else {
        (0..n).map(|_| Tally { point: space.random_point(rng), sum: 0.0, n: 0 }).collect()
    };
    let total_rounds = rounds(n, eta);
    for round in 0..total_rounds {
        // This round's share of what is left, split over the surviving points.
        // The share's remainder goes one each to the first points (the best so far, after
        // the first round), so the last round spends what is left.
        let share = eval.affordable() / (total_rounds - round);
        let (each, extra) = (share / arms.len(), share % arms.len());
        for (i, arm) in arms.iter_mut().enumerate() {
            let runs = (each + usize::from(i < extra)).max(1);
            for _ in 0..runs {
                if eval.affordable() == 0 {
                    break;
                }
                arm.sum += eval.evaluate(&arm.point, arm.n)?;
                arm.n += 1;
            }
        }
        arms.sort_by(|a, b| b.mean().total_cmp(&a.mean()));
        let keep = arms.len().div_ceil(eta);
        arms.truncate(keep);
    }
    Ok(arms.swap_remove(0).point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starting_points_fill_the_first_round() {
        assert_eq!(rounds(1, 2), 1);
        assert_eq!(rounds(8, 2), 3);
        assert_eq!(rounds(9, 3), 2);
        // 100 evaluations: 16 points x 4 rounds = 64 fits, 17 x 5 = 85 fits, 20 x 5 = 100.
        assert_eq!(starting_points(100, 2, u128::MAX), 20);
        assert_eq!(starting_points(100, 2, 5), 5);
        assert_eq!(starting_points(1, 2, 100), 1);
    }
}

//! CMA-ES (Hansen's covariance matrix adaptation evolution strategy, through the `cmaes`
//! crate) over the integer encoding of a search space: a point's fields are coordinates in
//! the unit box (value i of n at (i + 0.5) / n, [`SearchSpace::to_unit`]), a sample is
//! clamped into the box and rounded to the field's value, and leaving the box costs a
//! quadratic penalty so that the search comes back. Categorical fields are encoded like
//! ordered ones (the "integer encoding"); a method that respects their lack of
//! order is the Bayesian optimiser's job.
//!
//! It stops when its step falls below 1/20 of the box (every sample would round to one
//! point): the rest of the budget is left unspent, and the spending is reported.
//!
//! Noise: the recommendation is the final distribution's mean, rounded, not the best
//! sample seen (the best of many noisy samples is mostly luck; the mean averages over a
//! generation's samples, as Hansen advises for noisy objectives). A budget below one
//! generation (lambda = 4 + floor(3 ln d) samples) cannot run CMA-ES: it falls back to
//! random search (documented in the budget chapter).

use cmaes::{CMAESOptions, DVector};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{random_search, Evaluator, SearchSpace};
use crate::error::{Error, Result};

/// The population size CMA-ES picks for `dimensions` fields.
pub fn lambda(dimensions: usize) -> usize {
    4 + (3.0 * (dimensions.max(1) as f64).ln()).floor() as usize
}

pub(super) fn search(space: &SearchSpace, eval: &mut Evaluator, sigma: f64, rng: &mut ChaCha8Rng) -> Result<Vec<usize>> {
    let d = space.fields.len();
    if eval.affordable() < lambda(d) {
        return random_search(space, eval, rng);
    }
    let seed: u64 = rng.random();
    let mut failure: Option<Error> = None;
    // The penalty's scale follows the objective's: 1 + the mean |value| seen so far.
    let (mut abs_sum, mut seen) = (0.0f64, 0usize);
    let budget = eval.affordable();
    let mean = {
        let objective = |x: &DVector<f64>| {
            let unit: Vec<f64> = x.iter().copied().collect();
            let outside: f64 = unit.iter().map(|v| (v - v.clamp(0.0, 1.0)).powi(2)).sum();
            let point = space.from_unit(&unit);
            match eval.evaluate(&point, 0) {
                Ok(v) => {
                    abs_sum += v.abs();
                    seen += 1;
                    // CMA-ES minimises.
                    -v + (1.0 + abs_sum / seen as f64) * outside
                }
                Err(e) => {
                    failure.get_or_insert(e);
                    f64::INFINITY
                }
            }
        };
        let mut es = CMAESOptions::new(vec![0.5; d], sigma)
            .seed(seed)
            .max_function_evals(budget)
            // Below a step of 1/20 of the box every sample rounds to one point.
            .tol_x(0.05)
            .build(objective)
            .map_err(|e| Error::config(format!("CMA-ES: {e:?}")))?;
        let lambda = es.parameters().lambda();
        while es.function_evals() + lambda <= budget {
            if es.next().is_some() {
                break;
            }
        }
        es.mean().iter().copied().collect::<Vec<f64>>()
    };
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(space.from_unit(&mean))
}

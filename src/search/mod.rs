//! Search methods under a budget of ground-truth evaluations, the peers of the learners
//! (issue 27): each gets a [`SearchSpace`] and an [`Evaluator`] that runs the ground truth
//! and counts every run against the budget, and returns one recommended point.
//!
//! - [`Method::Random`]: points drawn uniformly, each evaluated once (Bergstra and Bengio,
//!   2012); the best observation is recommended.
//! - [`Method::SuccessiveHalving`]: Karnin, Koren and Somekh's sequential halving (2013),
//!   the noisy bandit form of the Hyperband family: n points, ceil(log_eta n) rounds of an
//!   equal share of the budget each; a round evaluates every surviving point again and keeps
//!   the best 1/eta by the mean of all its evaluations, so noise is met with repeats where
//!   the contest is close.
//! - [`Method::CmaEs`]: CMA-ES over the integer encoding ([`cma`]); the recommendation is
//!   the final distribution's mean.
//! - [`Method::ModelBased`]: the paper's route ([`model_based`]): a design, a forest fitted
//!   on it alone, searched, its best candidates checked on the rest of the budget.
//! - [`Method::Tpe`]: Bayesian optimisation with a tree-structured Parzen estimator
//!   ([`tpe`]; Bergstra et al., 2011): per-field Parzen estimators of the good and the bad
//!   observations, categorical fields by their values' counts; the last share of the budget
//!   re-evaluates its best points.
//! - [`Method::Exhaustive`]: every point, `repeats` times, then the `shortlist` best again
//!   `refine` times (the yardstick of small spaces; its spending is whatever the space
//!   needs, reported beside it).
//!
//! Evaluations use common random numbers: replicate k of every point runs on the same seed,
//! so two points are compared by their effect, not by their luck.

pub mod cma;
pub mod halving;
pub mod model_based;
pub mod space;
pub mod tpe;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use space::{Field, FieldKind, SearchSpace};

/// One search method and its settings (config: `methods = [{ method = "random" }, ...]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Method {
    /// A struct variant, so that an unknown field next to `method = "random"` is refused.
    Random {},
    SuccessiveHalving {
        /// The share kept each round is 1/eta (default 2: halving).
        #[serde(default = "two")]
        eta: usize,
    },
    CmaEs {
        /// The first step size, as a share of the unit box (default 0.3).
        #[serde(default = "step")]
        sigma: f64,
    },
    ModelBased(model_based::ModelBased),
    Tpe(tpe::Tpe),
    Exhaustive {
        /// Evaluations of every point (default 3).
        #[serde(default = "three")]
        repeats: usize,
        /// The best points by that mean (default 50) ...
        #[serde(default = "fifty")]
        shortlist: usize,
        /// ... are evaluated this many times more, and the best of those means wins
        /// (default 20): the maximum of thousands of noisy means is mostly luck.
        #[serde(default = "twenty")]
        refine: usize,
    },
}

fn two() -> usize {
    2
}
fn step() -> f64 {
    0.3
}
fn three() -> usize {
    3
}
fn fifty() -> usize {
    50
}
fn twenty() -> usize {
    20
}

impl Method {
    /// Its name in tables and file names.
    pub fn name(&self) -> String {
        match self {
            Method::Random {} => "random".into(),
            Method::SuccessiveHalving { eta: 2 } => "halving".into(),
            Method::SuccessiveHalving { eta } => format!("halving_eta{eta}"),
            Method::CmaEs { .. } => "cma_es".into(),
            Method::ModelBased(m) => m.name(),
            Method::Tpe(t) => t.name(),
            Method::Exhaustive { repeats, .. } => format!("exhaustive_x{repeats}"),
        }
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        match self {
            Method::SuccessiveHalving { eta } if *eta < 2 => Err(format!("successive_halving.eta must be >= 2, but is {eta}")),
            Method::Exhaustive { repeats: 0, .. } => Err("exhaustive.repeats must be >= 1".into()),
            Method::ModelBased(m) => m.validate(),
            Method::Tpe(t) => t.validate(),
            Method::CmaEs { sigma } if !(*sigma > 0.0 && *sigma <= 1.0) => Err(format!("cma_es.sigma must be in (0, 1], but is {sigma}")),
            _ => Ok(()),
        }
    }

    /// Whether the budget bounds it (the exhaustive search spends what the space needs).
    pub fn is_budgeted(&self) -> bool {
        !matches!(self, Method::Exhaustive { .. })
    }

    /// Searches `space` with `eval`, drawing from `rng`; the recommended point. With no
    /// evaluation affordable, a point drawn at random.
    pub fn search(&self, space: &SearchSpace, eval: &mut Evaluator, rng: &mut ChaCha8Rng) -> Result<Vec<usize>> {
        match self {
            Method::Random {} => random_search(space, eval, rng),
            Method::SuccessiveHalving { eta } => halving::search(space, eval, *eta, rng),
            Method::CmaEs { sigma } => cma::search(space, eval, *sigma, rng),
            Method::ModelBased(m) => m.search(space, eval, rng),
            Method::Tpe(t) => t.search(space, eval, rng),
            Method::Exhaustive { repeats, shortlist, refine } => exhaustive(space, eval, *repeats, *shortlist, *refine),
        }
    }
}

/// The ground truth as a search method sees it: [`Evaluator::evaluate`] runs one
/// evaluation of a point, which costs `cost` ground-truth runs (a robust rule is run under
/// every load), and refuses one the budget cannot pay for. Replicate k of any point runs
/// on the seed `mix(seed, k)` (common random numbers).
pub struct Evaluator<'a> {
    objective: &'a mut dyn FnMut(&[usize], u64) -> Result<f64>,
    seed: u64,
    cost: usize,
    limit: usize,
    spent: usize,
}

impl<'a> Evaluator<'a> {
    /// `objective(point, seed)` is one evaluation, larger is better.
    pub fn new(objective: &'a mut dyn FnMut(&[usize], u64) -> Result<f64>, seed: u64, cost: usize, limit: usize) -> Evaluator<'a> {
        Evaluator { objective, seed, cost: cost.max(1), limit, spent: 0 }
    }

    /// Evaluations the rest of the budget pays for.
    pub fn affordable(&self) -> usize {
        (self.limit - self.spent) / self.cost
    }

    /// Ground-truth runs spent so far.
    pub fn spent(&self) -> usize {
        self.spent
    }

    /// Replicate `replicate` of `point`; an error if the budget cannot pay for it (a
    /// method's bug).
    pub fn evaluate(&mut self, point: &[usize], replicate: usize) -> Result<f64> {
        if self.affordable() == 0 {
            return Err(Error::config(format!("a search method overspent its budget of {} runs", self.limit)));
        }
        self.spent += self.cost;
        (self.objective)(point, crate::seeding::mix(self.seed, replicate as u64))
    }
}

/// A point's evaluations so far.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    pub point: Vec<usize>,
    pub sum: f64,
    pub n: usize,
}

impl Tally {
    pub fn mean(&self) -> f64 {
        self.sum / self.n.max(1) as f64
    }
}

pub(crate) fn random_search(space: &SearchSpace, eval: &mut Evaluator, rng: &mut ChaCha8Rng) -> Result<Vec<usize>> {
    let mut best: Option<(f64, Vec<usize>)> = None;
    while eval.affordable() > 0 {
        let p = space.random_point(rng);
        let v = eval.evaluate(&p, 0)?;
        if best.as_ref().is_none_or(|(b, _)| v > *b) {
            best = Some((v, p));
        }
    }
    Ok(best.map_or_else(|| space.random_point(rng), |(_, p)| p))
}

fn exhaustive(space: &SearchSpace, eval: &mut Evaluator, repeats: usize, shortlist: usize, refine: usize) -> Result<Vec<usize>> {
    let n = u64::try_from(space.points())
        .ok()
        .filter(|&n| n <= 10_000_000)
        .ok_or_else(|| Error::config(format!("exhaustive search: the space has {} points, more than 10 million", space.points())))?;
    let mut all = Vec::with_capacity(n as usize);
    for i in 0..n {
        let point = space.point(u128::from(i));
        let mut sum = 0.0;
        for r in 0..repeats {
            sum += eval.evaluate(&point, r)?;
        }
        all.push(Tally { point, sum, n: repeats });
    }
    // Stable: among equal means the first point listed stays first.
    all.sort_by(|a, b| b.mean().total_cmp(&a.mean()));
    all.truncate(shortlist.max(1));
    if refine > 0 {
        for t in &mut all {
            t.sum = 0.0;
            t.n = refine;
            for r in repeats..repeats + refine {
                t.sum += eval.evaluate(&t.point, r)?;
            }
        }
        all.sort_by(|a, b| b.mean().total_cmp(&a.mean()));
    }
    Ok(all.swap_remove(0).point)
}

/// The runs an exhaustive search of `points` points needs, at `cost` runs an evaluation.
pub fn exhaustive_runs(points: usize, repeats: usize, shortlist: usize, refine: usize, cost: usize) -> usize {
    (points * repeats + shortlist.min(points) * refine) * cost
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A noisy bowl over 4 fields of 6 values: its best point is [4, 1, 3, 2].
    pub(crate) fn bowl(p: &[usize], seed: u64) -> Result<f64> {
        let target = [4.0, 1.0, 3.0, 2.0];
        let d: f64 = p.iter().zip(target).map(|(&x, t)| (x as f64 - t).powi(2)).sum();
        let noise = (crate::seeding::mix(seed, 1) % 1000) as f64 / 1000.0 - 0.5;
        Ok(-d + noise)
    }

    pub(crate) fn bowl_space() -> SearchSpace {
        let labels: Vec<String> = (0..6).map(|i| i.to_string()).collect();
        SearchSpace::new((0..4).map(|i| Field::new(format!("x{i}"), FieldKind::Integer, labels.clone())).collect())
    }

    fn true_value(p: &[usize]) -> f64 {
        let target = [4.0, 1.0, 3.0, 2.0];
        -p.iter().zip(target).map(|(&x, t)| (x as f64 - t).powi(2)).sum::<f64>()
    }

    #[test]
    fn every_method_stays_within_its_budget_and_does_better_with_more() {
        let space = bowl_space();
        let lambda = cma::lambda(4);
        for method in [
            Method::Random {},
            Method::SuccessiveHalving { eta: 2 },
            Method::SuccessiveHalving { eta: 3 },
            Method::CmaEs { sigma: 0.3 },
            Method::ModelBased(model_based::ModelBased::default()),
            Method::Tpe(tpe::Tpe::default()),
        ] {
            let mut means = vec![];
            for budget in [10, 1000] {
                let mut total = 0.0;
                for seed in 0..20 {
                    let mut f = bowl;
                    let mut eval = Evaluator::new(&mut f, seed, 1, budget);
                    let p = method.search(&space, &mut eval, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
                    // CMA-ES spends whole generations, and stops once it has converged.
                    let converges = matches!(method, Method::CmaEs { .. }) && budget > 10 * lambda;
                    let unspent = if matches!(method, Method::CmaEs { .. }) { lambda - 1 } else { 0 };
                    assert!(eval.spent() <= budget, "{}: {} of {budget}", method.name(), eval.spent());
                    assert!(converges || eval.spent() + unspent >= budget, "{}: {} of {budget}", method.name(), eval.spent());
                    total += true_value(&p);
                }
                means.push(total / 20.0);
            }
            assert!(means[1] > means[0] + 1.0, "{}: {means:?}", method.name());
        }
    }

    #[test]
    fn the_exhaustive_search_finds_the_optimum_and_an_evaluation_costs_its_runs() {
        let space = bowl_space();
        let mut f = bowl;
        let runs = exhaustive_runs(6usize.pow(4), 3, 10, 5, 2);
        let mut eval = Evaluator::new(&mut f, 1, 2, runs);
        let method = Method::Exhaustive { repeats: 3, shortlist: 10, refine: 5 };
        let p = method.search(&space, &mut eval, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        assert_eq!(p, [4, 1, 3, 2]);
        assert_eq!((eval.spent(), eval.affordable()), ((1296 * 3 + 50) * 2, 0));
        assert!(eval.evaluate(&p, 0).is_err(), "a spent budget refuses the next evaluation");
    }
}

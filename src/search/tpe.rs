//! Bayesian optimisation with a tree-structured Parzen estimator (TPE; Bergstra, Bardenet,
//! Bengio and Kégl, "Algorithms for hyper-parameter optimization", NeurIPS 2011), written
//! here over the discrete search space, with Optuna's `TPESampler` defaults (Akiba et al.,
//! KDD 2019) where they apply.
//!
//! A Latin hypercube of `startup` points starts it. Then, each step, the observations so
//! far are split by value: the best min(ceil(gamma n), good_max) are the good set, the rest
//! the bad set. Each set gets one Parzen estimator per field, independent across fields
//! (l(x) from the good set, g(x) from the bad), each a mixture of one kernel per
//! observation and a broad prior of weight `prior_weight` (every observation weighs 1:
//! Optuna's default weighs down all but the latest 25, for objectives that drift, which
//! ours do not):
//!
//! - a categorical field: smoothed counts, Optuna's kernel: each observation's kernel puts
//!   1 on its value and prior_weight / (k + 1) on every value (k observations), normalised,
//!   and the prior is uniform, so a value the good set has not seen stays in reach;
//! - an integer or ordered field: a Gaussian around each observation's value index,
//!   integrated over the index's cell [i - 1/2, i + 1/2] and truncated to the field's
//!   [-1/2, n - 1/2], so the probabilities on the index grid sum to 1 (Optuna's discrete
//!   truncated normal); the bandwidth is hyperopt's and Optuna's adaptive rule, the larger
//!   distance to a neighbouring observation, clipped to [n / min(100, 1 + k), n] for k
//!   kernels; the prior is a Gaussian of width n at the middle.
//!
//! `ei_candidates` points are drawn from l(x), and the one maximising l(x) / g(x), the
//! product over fields taken in logs, is evaluated: maximising that ratio maximises the
//! expected improvement under TPE's model (Bergstra et al., section 4.1). hyperopt and
//! Optuna's independent sampler pick each field's value by its own ratio instead; whole
//! points did much better on the tests' bowl (docs/budget.md). Below 2 evaluations it
//! falls back to random search.
//!
//! Noise: TPE takes every evaluation as one observation, as Optuna and hyperopt do. A point
//! proposed again is evaluated again, on its next replicate (common random numbers: its
//! first run is replicate 0, like every point's), and both runs are observations. The best
//! single observation of hundreds is mostly luck (the winner's curse), so the last
//! `check_share` of the budget re-evaluates the `candidates` best distinct points by their
//! mean, round-robin on their next replicates, and the best mean over all of a point's runs
//! is recommended.

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{random_search, Evaluator, FieldKind, SearchSpace, Tally};
use crate::error::Result;

/// TPE's settings (config: `{ method = "tpe", check_share = 0.2, candidates = 5 }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tpe {
    /// Points of a Latin hypercube evaluated before the estimators take over (default 10,
    /// Optuna's `n_startup_trials`); at most the search's share of the budget.
    pub startup: usize,
    /// The good set's share of the observations (default 0.1) ...
    pub gamma: f64,
    /// ... and its largest size (default 25): the good set is the best
    /// min(ceil(gamma n), good_max) of n observations, Optuna's default gamma.
    pub good_max: usize,
    /// Points drawn from l(x) each step, the best l(x) / g(x) evaluated (default 24,
    /// hyperopt's and Optuna's `n_ei_candidates`).
    pub ei_candidates: usize,
    /// The prior's weight in every estimator, in observations (default 1, Optuna's
    /// `prior_weight`).
    pub prior_weight: f64,
    /// The share of the budget spent at the end re-evaluating the best points (default 0.2).
    pub check_share: f64,
    /// The best distinct points by mean re-evaluated on that share (default 5).
    pub candidates: usize,
}

impl Default for Tpe {
    fn default() -> Self {
        Tpe { startup: 10, gamma: 0.1, good_max: 25, ei_candidates: 24, prior_weight: 1.0, check_share: 0.2, candidates: 5 }
    }
}

impl Tpe {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.startup == 0 {
            return Err("tpe.startup must be >= 1".into());
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(format!("tpe.gamma must be in (0, 1], but is {}", self.gamma));
        }
        if self.good_max == 0 {
            return Err("tpe.good_max must be >= 1".into());
        }
        if self.ei_candidates == 0 {
            return Err("tpe.ei_candidates must be >= 1".into());
        }
        if !(self.prior_weight > 0.0 && self.prior_weight.is_finite()) {
            return Err(format!("tpe.prior_weight must be a positive number, but is {}", self.prior_weight));
        }
        if !(0.0..1.0).contains(&self.check_share) {
            return Err(format!("tpe.check_share must be in [0, 1), but is {}", self.check_share));
        }
        if self.candidates == 0 {
            return Err("tpe.candidates must be >= 1".into());
        }
        Ok(())
    }

    /// "tpe", or "tpe_" and the settings that differ from the defaults.
    pub fn name(&self) -> String {
        let d = Tpe::default();
        let mut parts = vec![];
        if self.startup != d.startup {
            parts.push(format!("startup{}", self.startup));
        }
        if self.gamma != d.gamma {
            parts.push(format!("gamma{}", self.gamma));
        }
        if self.good_max != d.good_max {
            parts.push(format!("good{}", self.good_max));
        }
        if self.ei_candidates != d.ei_candidates {
            parts.push(format!("ei{}", self.ei_candidates));
        }
        if self.prior_weight != d.prior_weight {
            parts.push(format!("prior{}", self.prior_weight));
        }
        if self.check_share != d.check_share {
            parts.push(format!("check{}pct", 100.0 * self.check_share));
        }
        if self.candidates != d.candidates {
            parts.push(format!("top{}", self.candidates));
        }
        if parts.is_empty() {
            "tpe".into()
        } else {
            format!("tpe_{}", parts.join("_"))
        }
    }

    /// The size of the good set among `n` observations (at least one, if there is one).
    fn good(&self, n: usize) -> usize {
        ((self.gamma * n as f64).ceil() as usize).min(self.good_max).max(1).min(n)
    }

    pub(super) fn search(&self, space: &SearchSpace, eval: &mut Evaluator, rng: &mut ChaCha8Rng) -> Result<Vec<usize>> {
        let budget = eval.affordable();
        if budget < 2 {
            return random_search(space, eval, rng);
        }
        let check = (budget as f64 * self.check_share).floor() as usize;
        let searched = budget - check;
        let mut run = Runs::default();
        for p in space.latin_hypercube(self.startup.min(searched), rng) {
            run.evaluate(eval, p)?;
        }
        while eval.affordable() > check {
            let p = self.propose(space, &run.points, &run.values, rng);
            run.evaluate(eval, p)?;
        }
        // The check: the best distinct points by mean, round-robin on their next replicates.
        let mut shortlist: Vec<Tally> = run.tallies.into_values().collect();
        // Stable: among equal means the smaller point (the map's order) stays first.
        shortlist.sort_by(|a, b| b.mean().total_cmp(&a.mean()));
        shortlist.truncate(self.candidates);
        let mut k = 0;
        while eval.affordable() > 0 {
            let n = shortlist.len();
            let t = &mut shortlist[k % n];
            t.sum += eval.evaluate(&t.point, t.n)?;
            t.n += 1;
            k += 1;
        }
        let best = shortlist.iter().max_by(|a, b| a.mean().total_cmp(&b.mean()).then(b.point.cmp(&a.point)));
        Ok(best.expect("the search phase evaluates at least one point").point.clone())
    }

    /// The next point after the observations `points` (one per evaluation) and their
    /// `values`: `ei_candidates` drawn from l(x), the one with the largest
    /// log l(x) - log g(x) (the first drawn among equals). One step of the search, public
    /// for the bench of its cost.
    pub fn propose(&self, space: &SearchSpace, points: &[Vec<usize>], values: &[f64], rng: &mut ChaCha8Rng) -> Vec<usize> {
        let (l, g) = self.estimators(space, points, values);
        let ratio: Vec<Vec<f64>> = l.iter().zip(&g).map(|(l, g)| l.iter().zip(g).map(|(a, b)| a.ln() - b.ln()).collect()).collect();
        let mut best: Option<(f64, Vec<usize>)> = None;
        for _ in 0..self.ei_candidates {
            let x: Vec<usize> = l.iter().map(|p| draw(p, rng)).collect();
            let score: f64 = x.iter().zip(&ratio).map(|(&i, r)| r[i]).sum();
            if best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((score, x));
            }
        }
        best.expect("ei_candidates >= 1").1
    }

    /// Every field's l and g: its probability of each value under the good and the bad set.
    fn estimators(&self, space: &SearchSpace, points: &[Vec<usize>], values: &[f64]) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let mut order: Vec<usize> = (0..values.len()).collect();
        let good = self.good(values.len());
        // The good set without sorting the rest: larger values first, among equal values
        // the earlier observation (a total order, so the split is deterministic).
        if good < order.len() {
            order.select_nth_unstable_by(good, |&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
        }
        let (good, bad) = order.split_at(good);
        let per_field = |set: &[usize]| -> Vec<Vec<f64>> {
            space
                .fields
                .iter()
                .enumerate()
                .map(|(f, field)| {
                    let mut counts = vec![0usize; field.size()];
                    for &i in set {
                        counts[points[i][f]] += 1;
                    }
                    parzen(field.kind, &counts, self.prior_weight)
                })
                .collect()
        };
        (per_field(good), per_field(bad))
    }
}

/// The evaluations so far: every run as an observation, and every distinct point's tally.
#[derive(Default)]
struct Runs {
    points: Vec<Vec<usize>>,
    values: Vec<f64>,
    tallies: BTreeMap<Vec<usize>, Tally>,
}

impl Runs {
    /// One run of `point`, on its next replicate.
    fn evaluate(&mut self, eval: &mut Evaluator, point: Vec<usize>) -> Result<()> {
        let t = self.tallies.entry(point.clone()).or_insert_with(|| Tally { point: point.clone(), sum: 0.0, n: 0 });
        let v = eval.evaluate(&point, t.n)?;
        t.sum += v;
        t.n += 1;
        self.points.push(point);
        self.values.push(v);
        Ok(())
    }
}

/// Index i with probability `p[i]` (`p` sums to 1).
fn draw(p: &[f64], rng: &mut ChaCha8Rng) -> usize {
    let mut u: f64 = rng.random();
    for (i, &q) in p.iter().enumerate() {
        if u < q {
            return i;
        }
        u -= q;
    }
    p.len() - 1
}

/// One field's Parzen estimator from `counts[i]` observations of value i: the probability
/// of each value, summing to 1, each positive (the prior's share is).
pub(crate) fn parzen(kind: FieldKind, counts: &[usize], prior_weight: f64) -> Vec<f64> {
    let size = counts.len();
    let n: usize = counts.iter().sum();
    let total = n as f64 + prior_weight;
    match kind {
        // Optuna's: each observation's kernel is its value plus prior_weight / (n + 1)
        // spread evenly over the values, normalised; the prior's is uniform.
        FieldKind::Categorical => {
            let spread = prior_weight / (n as f64 + 1.0);
            let norm = 1.0 + size as f64 * spread;
            counts.iter().map(|&c| ((n as f64 * spread + c as f64) / norm + prior_weight / size as f64) / total).collect()
        }
        FieldKind::Integer | FieldKind::Ordered => {
            let width = size as f64;
            let prior_mu = (width - 1.0) / 2.0;
            // The kernels' centres in order, the prior's (None) after the observations at
            // or below it.
            let mut mus: Vec<Option<usize>> = Vec::with_capacity(n + 1);
            for (i, &c) in counts.iter().enumerate() {
                if i as f64 > prior_mu && (i as f64 - 1.0) <= prior_mu {
                    mus.push(None);
                }
                mus.extend(std::iter::repeat_n(Some(i), c));
            }
            if size == 1 {
                mus.push(None);
            }
            let at = |m: Option<usize>| m.map_or(prior_mu, |i| i as f64);
            let (low, high) = (-0.5, width - 0.5);
            let k = mus.len();
            let min_sigma = width / (1.0 + k as f64).min(100.0);
            let mut p = vec![0.0; size];
            // Kernels with the same centre and width add up: one integration for a run.
            let mut pending: Option<(f64, f64, f64)> = None;
            for j in 0..k {
                let mu = at(mus[j]);
                let (left, right) = (if j == 0 { low } else { at(mus[j - 1]) }, if j + 1 == k { high } else { at(mus[j + 1]) });
                let mut sigma = (mu - left).max(right - mu);
                // Optuna without consider_endpoints: the first and last kernels look only
                // inwards (when there are two or more).
                if k >= 2 && j == 0 {
                    sigma = right - mu;
                } else if k >= 2 && j + 1 == k {
                    sigma = mu - left;
                }
                let (sigma, weight) = match mus[j] {
                    None => (width, prior_weight),
                    Some(_) => (sigma.clamp(min_sigma, width), 1.0),
                };
                match &mut pending {
                    Some((m, s, w)) if *m == mu && *s == sigma => *w += weight,
                    _ => {
                        if let Some((m, s, w)) = pending {
                            add_kernel(&mut p, m, s, w / total);
                        }
                        pending = Some((mu, sigma, weight));
                    }
                }
            }
            if let Some((m, s, w)) = pending {
                add_kernel(&mut p, m, s, w / total);
            }
            p
        }
    }
}

/// Adds `weight` times a Gaussian of centre `mu` and width `sigma`, truncated to
/// [-1/2, size - 1/2] and integrated over each index's cell, to `p`.
fn add_kernel(p: &mut [f64], mu: f64, sigma: f64, weight: f64) {
    use statrs::function::erf::erfc;
    // Each cell edge's standard normal tail beyond it, on the far side from the centre
    // (Phi(z) below the centre, 1 - Phi(z) above): accurate far out, one erfc an edge.
    let tail = |i: usize| {
        let z = (i as f64 - 0.5 - mu) / sigma;
        0.5 * erfc(z.abs() / std::f64::consts::SQRT_2)
    };
    let below = |i: usize| i as f64 - 0.5 <= mu;
    let mass = |a: usize, ta: f64, b: usize, tb: f64| match (below(a), below(b)) {
        (true, true) => tb - ta,
        (false, false) => ta - tb,
        _ => 1.0 - ta - tb,
    };
    let size = p.len();
    let whole = mass(0, tail(0), size, tail(size));
    let mut lower = tail(0);
    for (i, q) in p.iter_mut().enumerate() {
        let upper = tail(i + 1);
        *q += weight * mass(i, lower, i + 1, upper) / whole;
        lower = upper;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bowl, bowl_space};
    use super::super::{Field, Method};
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_parzen_estimators_are_distributions_and_follow_their_observations() {
        for kind in [FieldKind::Categorical, FieldKind::Integer, FieldKind::Ordered] {
            for counts in
                [vec![0; 6], vec![3, 0, 0, 0, 0, 0], vec![0, 0, 40, 1, 0, 0], vec![1, 2, 3, 4, 5, 6], vec![0, 7], vec![5], vec![0; 13]]
            {
                for prior in [0.01, 1.0, 10.0] {
                    let p = parzen(kind, &counts, prior);
                    let sum: f64 = p.iter().sum();
                    assert!((sum - 1.0).abs() < 1e-12, "{kind:?} {counts:?} {prior}: {p:?} sums to {sum}");
                    assert!(p.iter().all(|&q| q > 0.0), "{kind:?} {counts:?} {prior}: {p:?}");
                }
            }
        }
        // With no observation, the categorical estimator is uniform and the numeric one the
        // prior, symmetric about the middle.
        assert!(parzen(FieldKind::Categorical, &[0; 4], 1.0).iter().all(|&q| (q - 0.25).abs() < 1e-15));
        let prior = parzen(FieldKind::Integer, &[0; 5], 1.0);
        assert!((prior[0] - prior[4]).abs() < 1e-15 && prior[2] > prior[1] && prior[1] > prior[0], "{prior:?}");
        // Observations pull the mass to themselves; a numeric field's neighbours share it, a
        // categorical field's do not.
        let numeric = parzen(FieldKind::Integer, &[0, 0, 40, 1, 0, 0], 1.0);
        assert!(numeric[2] > 0.8 && numeric[3] > numeric[5], "{numeric:?}");
        let categorical = parzen(FieldKind::Categorical, &[0, 0, 40, 1, 0, 0], 1.0);
        assert!((categorical[1] - categorical[5]).abs() < 1e-15 && categorical[2] > 0.8, "{categorical:?}");
    }

    /// The mean true value of the recommendations over 20 seeds.
    fn mean_true_value(method: &Method, budget: usize) -> f64 {
        let space = bowl_space();
        let target = [4.0, 1.0, 3.0, 2.0];
        let mut total = 0.0;
        for seed in 0..20 {
            let mut f = bowl;
            let mut eval = Evaluator::new(&mut f, seed, 1, budget);
            let p = method.search(&space, &mut eval, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
            assert_eq!(eval.spent(), budget, "{}", method.name());
            total -= p.iter().zip(target).map(|(&x, t)| (x as f64 - t).powi(2)).sum::<f64>();
        }
        total / 20.0
    }

    #[test]
    fn on_the_noisy_bowl_tpe_beats_random_search_at_a_budget_of_100() {
        let tpe = mean_true_value(&Method::Tpe(Tpe::default()), 100);
        let random = mean_true_value(&Method::Random {}, 100);
        assert!(tpe > random + 0.5, "tpe {tpe}, random {random}");
    }

    /// Two categorical fields of 10 values whose effects are scattered (the best pair is
    /// [5, 2], 3.5 above the next-best), beside an integer field of a shallow bowl; each point
    /// has noise of its own (+-0.5).
    fn truth(p: &[usize]) -> f64 {
        let first = [-2.0, 0.0, -3.0, -1.0, -2.5, 1.5, -0.5, -4.0, -1.5, -2.2];
        let second = [-1.0, -3.0, 2.0, -2.0, 0.0, -0.5, -4.0, -1.5, -2.5, -3.5];
        first[p[0]] + second[p[1]] - 0.5 * (p[2] as f64 - 1.0).powi(2)
    }

    #[test]
    fn categorical_fields_are_searched_by_their_values() {
        let labels = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>();
        let space = SearchSpace::new(vec![
            Field::new("c1", FieldKind::Categorical, labels(10)),
            Field::new("c2", FieldKind::Categorical, labels(10)),
            Field::new("x", FieldKind::Integer, labels(5)),
        ]);
        let found = |method: &Method| {
            (0..20)
                .filter(|&seed| {
                    let mut f = |p: &[usize], s: u64| {
                        let h = p.iter().fold(s, |h, &v| crate::seeding::mix(h, v as u64 + 1));
                        Ok(truth(p) + (h % 1000) as f64 / 1000.0 - 0.5)
                    };
                    let mut eval = Evaluator::new(&mut f, seed, 1, 100);
                    method.search(&space, &mut eval, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap()[..2] == [5, 2]
                })
                .count()
        };
        let (tpe, random) = (found(&Method::Tpe(Tpe::default())), found(&Method::Random {}));
        assert!(tpe >= 13 && tpe >= random + 4, "the best pair found in {tpe} of 20 seeds (random search: {random})");
    }

    #[test]
    fn a_small_budget_is_spent_whole_and_a_repeat_runs_the_next_replicate() {
        let space = bowl_space();
        for budget in 0..15 {
            let mut seen: Vec<(Vec<usize>, u64)> = vec![];
            let mut f = |p: &[usize], seed: u64| {
                assert!(!seen.contains(&(p.to_vec(), seed)), "{p:?} ran twice on seed {seed}");
                seen.push((p.to_vec(), seed));
                bowl(p, seed)
            };
            let mut eval = Evaluator::new(&mut f, 3, 1, budget);
            let p = Tpe::default().search(&space, &mut eval, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
            assert_eq!((eval.spent(), p.len()), (budget, 4));
        }
        // With no history, a step draws from the priors.
        let p = Tpe::default().propose(&space, &[], &[], &mut ChaCha8Rng::seed_from_u64(3));
        assert!(p.len() == 4 && p.iter().all(|&i| i < 6), "{p:?}");
        assert_eq!((Tpe::default().good(0), Tpe::default().good(1), Tpe::default().good(11), Tpe::default().good(1000)), (0, 1, 2, 25));
    }

    #[test]
    fn settings_are_checked_and_named() {
        assert_eq!(Tpe::default().validate(), Ok(()));
        assert_eq!(Method::Tpe(Tpe::default()).name(), "tpe");
        let m: Method = toml::from_str("method = \"tpe\"\ncheck_share = 0.3\ncandidates = 3").unwrap();
        assert_eq!(m.name(), "tpe_check30pct_top3");
        assert!(toml::from_str::<Method>("method = \"tpe\"\nfoo = 1").is_err());
        for bad in [
            Tpe { gamma: 0.0, ..Tpe::default() },
            Tpe { check_share: 1.0, ..Tpe::default() },
            Tpe { prior_weight: 0.0, ..Tpe::default() },
            Tpe { startup: 0, ..Tpe::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}

//! The model-based route, as the SFR2L paper means it: spend a share of the budget on a
//! design (a Latin hypercube of the space), fit a simulator on those rows only (a random
//! forest: the shipped S1-S5 simulators saw thousands of rows), search the simulator (every
//! point where the space has at most `MODEL_SEARCH_POINTS`, else that many drawn at random),
//! and spend the rest of the budget checking its best candidates on the ground truth; the
//! checked candidate with the best mean is recommended.
//!
//! The forest reads a point in the unit-box encoding ([`SearchSpace::to_unit`]); a
//! categorical field's values are then in an arbitrary order, which trees split on as they
//! would on any number.

use ndarray::Array2;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Evaluator, SearchSpace, Tally};
use crate::error::Result;
use crate::simulator::baselines::ForestConfig;
use crate::simulator::SimulatorParams;

/// Points of the space the simulator scores, at most.
pub const MODEL_SEARCH_POINTS: u128 = 100_000;

/// The route's settings (config: `{ method = "model_based", design_share = 0.5, candidates = 5 }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelBased {
    /// The share of the budget spent on the design, B0 / B (default 0.5).
    pub design_share: f64,
    /// The simulator's best candidates checked on the rest of the budget (default 5).
    pub candidates: usize,
    /// The simulator (default: 50 trees; the rest scikit-learn's defaults).
    pub forest: ForestConfig,
}

impl Default for ModelBased {
    fn default() -> Self {
        ModelBased { design_share: 0.5, candidates: 5, forest: ForestConfig { trees: 50, ..ForestConfig::default() } }
    }
}

impl ModelBased {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.design_share > 0.0 && self.design_share < 1.0) {
            return Err(format!("model_based.design_share must be in (0, 1), but is {}", self.design_share));
        }
        if self.candidates == 0 {
            return Err("model_based.candidates must be >= 1".into());
        }
        self.forest.validate().map_err(|e| match e {
            crate::Error::Config { message, .. } => format!("model_based.{message}"),
            other => other.to_string(),
        })
    }

    pub(super) fn search(&self, space: &SearchSpace, eval: &mut Evaluator, rng: &mut ChaCha8Rng) -> Result<Vec<usize>> {
        let budget = eval.affordable();
        let design_size = ((budget as f64 * self.design_share).round() as usize).clamp(1, budget.max(1));
        if budget < 2 {
            return super::random_search(space, eval, rng);
        }
        // The design, one run each (replicate 0).
        let design = space.latin_hypercube(design_size, rng);
        let mut values = Vec::with_capacity(design_size);
        for p in &design {
            values.push(eval.evaluate(p, 0)?);
        }
        let encode = |points: &[Vec<usize>]| {
            let d = space.fields.len();
            Array2::from_shape_vec((points.len(), d), points.iter().flat_map(|p| space.to_unit(p)).collect())
                .expect("every point has one value per field")
        };
        let x = encode(&design);
        let y = Array2::from_shape_vec((values.len(), 1), values).expect("one value per design point");
        let seed: u64 = rand::Rng::random(rng);
        let model = self.forest.fit(&x, &y, seed)?;
        // The simulator's search: every point, or a random sample of a large space.
        let pool: Vec<Vec<usize>> = if space.points() <= MODEL_SEARCH_POINTS {
            (0..space.points()).map(|i| space.point(i)).collect()
        } else {
            (0..MODEL_SEARCH_POINTS).map(|_| space.random_point(rng)).collect()
        };
        let predicted = model.predict(&encode(&pool))?;
        let mut order: Vec<usize> = (0..pool.len()).collect();
        // Stable: ties keep the pool's order.
        order.sort_by(|&a, &b| predicted[[b, 0]].total_cmp(&predicted[[a, 0]]));
        let mut shortlist: Vec<Tally> = Vec::new();
        for i in order {
            if shortlist.len() == self.candidates {
                break;
            }
            if !shortlist.iter().any(|t| t.point == pool[i]) {
                shortlist.push(Tally { point: pool[i].clone(), sum: 0.0, n: 0 });
            }
        }
        // The check: the rest of the budget over the candidates, round-robin, replicates
        // from 1 on (replicate 0 of a design point was run already).
        let mut k = 0;
        while eval.affordable() > 0 {
            let n = shortlist.len();
            let t = &mut shortlist[k % n];
            t.sum += eval.evaluate(&t.point, t.n + 1)?;
            t.n += 1;
            k += 1;
        }
        let checked = shortlist.iter().filter(|t| t.n > 0).max_by(|a, b| a.mean().total_cmp(&b.mean()).then(b.point.cmp(&a.point)));
        Ok(checked.unwrap_or(&shortlist[0]).point.clone())
    }
}

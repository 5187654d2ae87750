//! The model-based route, as the SFR2L paper means it: spend a share of the budget on a
//! design (a Latin hypercube of the space), fit a simulator on those rows only (a random
//! forest: the shipped S1-S5 simulators saw thousands of rows), search the simulator (every
//! point where the space has at most `simulator_points`, else that many drawn at random),
//! and spend the rest of the budget checking its best candidates on the ground truth; the
//! checked candidate with the best mean is recommended.
//!
//! The forest reads a point in the unit-box encoding ([`SearchSpace::to_unit`]); a
//! categorical field's values are then in an arbitrary order, which trees split on as they
//! would on any number.

use ndarray::Array2;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Evaluator, SearchSpace, Tally};
use crate::error::Result;
use crate::simulator::baselines::ForestConfig;
use crate::simulator::SimulatorParams;

/// The route's settings (config: `{ method = "model_based", design_share = 0.5, candidates = 5 }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelBased {
    /// The share of the budget spent on the design, B0 / B (default 0.5).
    pub design_share: f64,
    /// The simulator's best candidates checked on the rest of the budget (default 5).
    pub candidates: usize,
    /// The simulator (default: 10 trees; the rest scikit-learn's defaults).
    pub forest: ForestConfig,
    /// Points of the space the simulator scores, at most: every point of a space this
    /// small, else this many drawn at random (default 1 000).
    pub simulator_points: usize,
}

// The defaults keep the route's own cost under a tenth of an emulator load test per
// evaluation (docs/budget.md, "Speed"): a forest of 50 trees scoring all 17 280 of the
// defender's rules cost about one load test per evaluation at a budget of 1 000, and its
// budget curves were not told apart from these defaults' by any verdict.
/// The default of [`ModelBased::simulator_points`].
pub const SIMULATOR_POINTS: usize = 1_000;
/// The default of the route's forest's trees.
pub const TREES: usize = 10;

impl Default for ModelBased {
    fn default() -> Self {
        ModelBased {
            design_share: 0.5,
            candidates: 5,
            forest: ForestConfig { trees: TREES, ..ForestConfig::default() },
            simulator_points: SIMULATOR_POINTS,
        }
    }
}

impl ModelBased {
    /// Its name in tables: the design share and candidates, then the simulator's trees and
    /// points where they differ from the defaults.
    pub fn name(&self) -> String {
        let mut name = format!("model_based_{:.0}pct_top{}", 100.0 * self.design_share, self.candidates);
        if self.forest.trees != TREES {
            name += &format!("_trees{}", self.forest.trees);
        }
        if self.simulator_points != SIMULATOR_POINTS {
            name += &format!("_points{}", self.simulator_points);
        }
        name
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.design_share > 0.0 && self.design_share < 1.0) {
            return Err(format!("model_based.design_share must be in (0, 1), but is {}", self.design_share));
        }
        if self.candidates == 0 {
            return Err("model_based.candidates must be >= 1".into());
        }
        if self.simulator_points < self.candidates {
            return Err(format!(
                "model_based.simulator_points must be at least the {} candidates, but is {}",
                self.candidates, self.simulator_points
            ));
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
        let mut pool: Vec<Vec<usize>> = if space.points() <= self.simulator_points as u128 {
            (0..space.points()).map(|i| space.point(i)).collect()
        } else {
            (0..self.simulator_points).map(|_| space.random_point(rng)).collect()
        };
        // A forest fitted on a handful of runs predicts the same value for most points, so
        // ties are broken at random, not towards the first points listed.
        pool.shuffle(rng);
        let predicted = model.predict(&encode(&pool))?;
        let mut order: Vec<usize> = (0..pool.len()).collect();
        // Stable: ties keep the shuffled pool's order.
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

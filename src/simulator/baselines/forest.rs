//! Random forest (smartcore), one forest per output.

use ndarray::{Array1, Array2, Axis};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_regressor::{RandomForestRegressor, RandomForestRegressorParameters};
use smartcore::linalg::basic::matrix::DenseMatrix;

use super::{check_training, check_width, subsample};
use crate::error::{Error, Result};
use crate::simulator::{Simulator, SimulatorParams};

/// Hyperparameters of a random-forest regressor (smartcore's `RandomForestRegressor`: CART
/// trees on bootstrap samples, variance-reduction splits, predictions averaged over trees),
/// one forest per output column.
///
/// The defaults are scikit-learn's `RandomForestRegressor` with the 120 trees of the TNSM2023
/// framework: fully grown trees and every input a split candidate. Forest `j` of a fit with
/// seed `s` is seeded with the j-th draw of a ChaCha8 stream seeded by `s`, so one seed gives
/// the same forests and the same predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForestConfig {
    /// Trees per output (scikit-learn's `n_estimators`); default 120 (the TNSM2023 framework).
    pub trees: usize,
    /// Depth cap of each tree; default none (grown until a leaf is pure or cannot be split
    /// under `min_samples_leaf` / `min_samples_split`).
    pub max_depth: Option<u16>,
    /// Fewest bootstrap rows a leaf may hold; default 1.
    pub min_samples_leaf: usize,
    /// Fewest bootstrap rows a node needs to be split; default 2.
    pub min_samples_split: usize,
    /// Inputs drawn as split candidates at each node (smartcore's `m`, scikit-learn's
    /// `max_features`); default none = every input (scikit-learn's regression default). Must
    /// not exceed the number of inputs.
    pub features_per_split: Option<usize>,
    /// Cap on the training rows: a seeded random subsample of this size (as SVR's); default
    /// none = every training row (120 trees per output on S3's 16 474 training rows, both
    /// outputs, fit in about 5 s on this 2-core machine, so Table 4 needs no cap).
    pub max_train_rows: Option<usize>,
}

impl Default for ForestConfig {
    fn default() -> Self {
        Self { trees: 120, max_depth: None, min_samples_leaf: 1, min_samples_split: 2, features_per_split: None, max_train_rows: None }
    }
}

impl ForestConfig {
    /// Checks every hyperparameter; the message names the bad value.
    pub fn validate(&self) -> Result<()> {
        if self.trees < 1 {
            return Err(Error::config(format!("forest.trees must be >= 1, but is {}", self.trees)));
        }
        if self.max_depth == Some(0) {
            return Err(Error::config("forest.max_depth must be >= 1 (or left out for no cap), but is 0"));
        }
        if self.min_samples_leaf < 1 {
            return Err(Error::config(format!("forest.min_samples_leaf must be >= 1, but is {}", self.min_samples_leaf)));
        }
        if self.min_samples_split < 2 {
            return Err(Error::config(format!("forest.min_samples_split must be >= 2, but is {}", self.min_samples_split)));
        }
        if self.features_per_split == Some(0) {
            return Err(Error::config("forest.features_per_split must be >= 1 (or left out for every input), but is 0"));
        }
        if let Some(cap) = self.max_train_rows.filter(|&c| c < 2) {
            return Err(Error::config(format!("forest.max_train_rows must be >= 2 (or left out for every row), but is {cap}")));
        }
        Ok(())
    }

    /// Fits and returns the concrete model (the trait's `fit` boxes it).
    pub fn fit_forest(&self, x: &Array2<f64>, y: &Array2<f64>, seed: u64) -> Result<ForestModel> {
        self.validate()?;
        check_training("forest", x, y)?;
        let d_in = x.ncols();
        if d_in == 0 {
            return Err(Error::config("forest fit: no input columns"));
        }
        let m = self.features_per_split.unwrap_or(d_in);
        if m > d_in {
            return Err(Error::config(format!("forest.features_per_split must be <= the {d_in} inputs, but is {m}")));
        }
        let rows = subsample(x.nrows(), self.max_train_rows.unwrap_or(usize::MAX), seed);
        let xs = x.select(Axis(0), &rows);
        let ys = y.select(Axis(0), &rows);
        let matrix = dense(&xs)?;
        // One seed per output, from a stream of its own (the subsample uses stream 0).
        let mut seeds = ChaCha8Rng::seed_from_u64(seed);
        seeds.set_stream(1);
        let mut forests = Vec::with_capacity(ys.ncols());
        for (j, target) in ys.columns().into_iter().enumerate() {
            let mut params = RandomForestRegressorParameters::default()
                .with_n_trees(self.trees)
                .with_min_samples_leaf(self.min_samples_leaf)
                .with_min_samples_split(self.min_samples_split)
                .with_m(m)
                .with_seed(seeds.next_u64());
            params.max_depth = self.max_depth;
            let forest = RandomForestRegressor::fit(&matrix, &target.to_vec(), params)
                .map_err(|e| Error::config(format!("forest fit on output {j}: {e}")))?;
            forests.push(forest);
        }
        Ok(ForestModel { forests, d_in, train_rows: rows.len() })
    }
}

/// smartcore's dense matrix (row-major) of an ndarray matrix.
fn dense(x: &Array2<f64>) -> Result<DenseMatrix<f64>> {
    DenseMatrix::new(x.nrows(), x.ncols(), x.iter().copied().collect(), false).map_err(|e| Error::config(format!("forest: {e}")))
}

/// A fitted smartcore forest on row-major f64 inputs and a `Vec<f64>` target.
type Forest = RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>;

/// Fitted random forest: one smartcore forest per output column.
pub struct ForestModel {
    forests: Vec<Forest>,
    d_in: usize,
    train_rows: usize,
}

impl ForestModel {
    /// Number of training rows the forests were fitted on (after subsampling).
    pub fn train_rows(&self) -> usize {
        self.train_rows
    }
}

impl SimulatorParams for ForestConfig {
    fn name(&self) -> &'static str {
        "forest"
    }

    fn fit(&self, x: &Array2<f64>, y: &Array2<f64>, seed: u64) -> Result<Box<dyn Simulator>> {
        Ok(Box::new(self.fit_forest(x, y, seed)?))
    }
}

impl Simulator for ForestModel {
    fn name(&self) -> &'static str {
        "forest"
    }

    fn predict(&self, x: &Array2<f64>) -> Result<Array2<f64>> {
        check_width("forest", self.d_in, x)?;
        let mut out = Array2::zeros((x.nrows(), self.forests.len()));
        if x.nrows() == 0 {
            return Ok(out);
        }
        let matrix = dense(x)?;
        for (j, (forest, mut column)) in self.forests.iter().zip(out.columns_mut()).enumerate() {
            let pred = forest.predict(&matrix).map_err(|e| Error::config(format!("forest predict on output {j}: {e}")))?;
            column.assign(&Array1::from(pred));
        }
        Ok(out)
    }
}

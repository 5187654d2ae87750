//! The baseline simulators of the SFR2L paper's Table 4: support vector regression (RBF
//! kernel), ridge regression and logistic regression, all fitted with linfa, and a random
//! forest (smartcore; the TNSM2023 framework's model). Each maps z-scored inputs (n x d) to
//! z-scored outputs (n x k) with one model per output column.

use linfa::prelude::*;
use linfa_elasticnet::ElasticNet;
use linfa_logistic::{MultiFittedLogisticRegression, MultiLogisticRegression};
use linfa_svm::Svm;
use ndarray::{Array1, Array2, ArrayView1, Axis};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;

use super::{Simulator, SimulatorParams};
use crate::error::{Error, Result};

// ---------------------------------------------------------------------------------------
// Shared checks
// ---------------------------------------------------------------------------------------

/// Rejects training data a fit cannot use: no rows, mismatched rows, no outputs, NaN/inf.
fn check_training(model: &str, x: &Array2<f64>, y: &Array2<f64>) -> Result<()> {
    if x.nrows() == 0 {
        return Err(Error::config(format!("{model} fit: no training rows")));
    }
    if x.nrows() != y.nrows() {
        return Err(Error::config(format!(
            "{model} fit: {} input rows but {} output rows",
            x.nrows(),
            y.nrows()
        )));
    }
    if y.ncols() == 0 {
        return Err(Error::config(format!("{model} fit: no output columns")));
    }
    if let Some(((row, col), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::config(format!(
            "{model} fit: input row {row}, column {col} is {v}"
        )));
    }
    if let Some(((row, col), v)) = y.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::config(format!(
            "{model} fit: output row {row}, column {col} is {v}"
        )));
    }
    Ok(())
}

/// Rejects prediction inputs whose width differs from the training inputs'.
fn check_width(model: &str, d_in: usize, x: &Array2<f64>) -> Result<()> {
    if x.ncols() != d_in {
        return Err(Error::config(format!(
            "{model} predict: inputs of width {d_in} expected, got {}",
            x.ncols()
        )));
    }
    Ok(())
}

/// `value` must be finite and > 0.
fn positive(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::config(format!(
            "{name} must be > 0 and finite, but is {value}"
        )))
    }
}

/// `value` must be finite and >= 0.
fn non_negative(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::config(format!(
            "{name} must be >= 0 and finite, but is {value}"
        )))
    }
}

// ---------------------------------------------------------------------------------------
// Support vector regression
// ---------------------------------------------------------------------------------------

/// Hyperparameters of epsilon-SVR with an RBF (gaussian) kernel, one model per output.
///
/// The kernel is linfa's `k(x, x') = exp(-||x - x'||^2 / kernel_width)`, i.e. scikit-learn's
/// `gamma = 1 / kernel_width`. SMO fitting is quadratic in the rows (and the dense kernel
/// matrix is n x n), so the fit uses a seeded random subsample of at most `max_train_rows`
/// training rows (the Table 4 footnote).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SvrConfig {
    /// Penalty on points outside the tube (scikit-learn's `C`); default 1.0.
    pub c: f64,
    /// Half-width of the epsilon-insensitive tube, in z-score units; default 0.1.
    pub epsilon: f64,
    /// RBF width `w` of `exp(-||x - x'||^2 / w)`; default 18.0 = 2 x the 9 protocol inputs.
    pub kernel_width: f64,
    /// Cap on the rows SMO sees: a seeded random subsample of this size; default 2000.
    pub max_train_rows: usize,
    /// SMO stopping tolerance on the max violating pair (libsvm's `tol`); default 1e-3.
    pub tolerance: f64,
}

impl Default for SvrConfig {
    fn default() -> Self {
        Self {
            c: 1.0,
            epsilon: 0.1,
            kernel_width: 18.0,
            max_train_rows: 2000,
            tolerance: 1e-3,
        }
    }
}

impl SvrConfig {
    /// Checks every hyperparameter; the message names the bad value.
    pub fn validate(&self) -> Result<()> {
        positive("svr.c", self.c)?;
        non_negative("svr.epsilon", self.epsilon)?;
        positive("svr.kernel_width", self.kernel_width)?;
        positive("svr.tolerance", self.tolerance)?;
        if self.max_train_rows < 2 {
            return Err(Error::config(format!(
                "svr.max_train_rows must be >= 2, but is {}",
                self.max_train_rows
            )));
        }
        Ok(())
    }
}

/// Fitted SVR: one linfa model per output column.
pub struct SvrModel {
    models: Vec<Svm<f64, f64>>,
    d_in: usize,
    train_rows: usize,
}

impl SvrModel {
    /// Number of training rows the models were fitted on (after subsampling).
    pub fn train_rows(&self) -> usize {
        self.train_rows
    }
}

/// Sorted row indices of a seeded subsample of at most `cap` of `n` rows (all rows if n <= cap).
fn subsample(n: usize, cap: usize, seed: u64) -> Vec<usize> {
    if n <= cap {
        return (0..n).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = rand::seq::index::sample(&mut rng, n, cap).into_vec();
    rows.sort_unstable();
    rows
}

impl SvrConfig {
    /// Fits and returns the concrete model (the trait's `fit` boxes it).
    pub fn fit_svr(&self, x: &Array2<f64>, y: &Array2<f64>, seed: u64) -> Result<SvrModel> {
        self.validate()?;
        check_training("svr", x, y)?;
        let rows = subsample(x.nrows(), self.max_train_rows, seed);
        let xs = x.select(Axis(0), &rows);
        let ys = y.select(Axis(0), &rows);
        let params = Svm::<f64, f64>::params()
            .c_svr(self.c, Some(self.epsilon))
            .gaussian_kernel(self.kernel_width)
            .eps(self.tolerance)
            // linfa-svm 0.8.1's shrinking can underflow its active-set counter and index out
            // of bounds (seen with 50 rows), so it stays off.
            .shrinking(false);
        let mut models = Vec::with_capacity(y.ncols());
        for j in 0..ys.ncols() {
            // linfa-svm needs a contiguous target slice: a column view of `ys` is strided.
            let target: Array1<f64> = ys.column(j).to_owned();
            let dataset = DatasetBase::new(xs.view(), target.view());
            let model = params
                .fit(&dataset)
                .map_err(|e| Error::config(format!("svr fit on output {j}: {e}")))?;
            models.push(model);
        }
        Ok(SvrModel {
            models,
            d_in: x.ncols(),
            train_rows: rows.len(),
        })
    }
}

impl SimulatorParams for SvrConfig {
    fn name(&self) -> &'static str {
        "svr"
    }

    fn fit(&self, x: &Array2<f64>, y: &Array2<f64>, seed: u64) -> Result<Box<dyn Simulator>> {
        Ok(Box::new(self.fit_svr(x, y, seed)?))
    }
}

impl Simulator for SvrModel {
    fn name(&self) -> &'static str {
        "svr"
    }

    fn predict(&self, x: &Array2<f64>) -> Result<Array2<f64>> {
        check_width("svr", self.d_in, x)?;
        let mut out = Array2::zeros((x.nrows(), self.models.len()));
        for (model, mut column) in self.models.iter().zip(out.columns_mut()) {
            let pred: Array1<f64> = model.predict(x);
            column.assign(&pred);
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// Ridge regression
// ---------------------------------------------------------------------------------------

/// Hyperparameters of ridge regression (linfa-elasticnet with `l1_ratio = 0`), one model per
/// output.
///
/// linfa minimises `1/(2n) ||y - Xw||^2 + penalty/2 ||w||^2`, so its `penalty` is scikit-learn's
/// `Ridge(alpha)` divided by the number of training rows: `alpha = n * penalty`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RidgeConfig {
    /// L2 weight `penalty` (scikit-learn's alpha / n_rows); default 1e-3.
    pub penalty: f64,
    /// Fit an intercept (inputs and targets are centred first); default true.
    pub with_intercept: bool,
    /// Upper bound on coordinate-descent sweeps; default 1000.
    pub max_iterations: u32,
    /// Coordinate-descent stopping tolerance (linfa's default); default 1e-4.
    pub tolerance: f64,
}

impl Default for RidgeConfig {
    fn default() -> Self {
        Self {
            penalty: 1e-3,
            with_intercept: true,
            max_iterations: 1000,
            tolerance: 1e-4,
        }
    }
}

impl RidgeConfig {
    /// Checks every hyperparameter; the message names the bad value.
    pub fn validate(&self) -> Result<()> {
        non_negative("ridge.penalty", self.penalty)?;
        positive("ridge.tolerance", self.tolerance)?;
        if self.max_iterations < 1 {
            return Err(Error::config(format!(
                "ridge.max_iterations must be >= 1, but is {}",
                self.max_iterations
            )));
        }
        Ok(())
    }

    /// Fits and returns the concrete model (the trait's `fit` boxes it).
    pub fn fit_ridge(&self, x: &Array2<f64>, y: &Array2<f64>) -> Result<RidgeModel> {
        self.validate()?;
        check_training("ridge", x, y)?;
        // linfa-elasticnet's intercept only centres y, not X; centre X here so that the
        // intercept is right for inputs that are not exactly zero-mean (e.g. subsets).
        let x_mean = if self.with_intercept {
            x.mean_axis(Axis(0)).expect("x has rows")
        } else {
            Array1::zeros(x.ncols())
        };
        let xc = x - &x_mean.view().insert_axis(Axis(0));
        let params = ElasticNet::<f64>::ridge()
            .penalty(self.penalty)
            .with_intercept(self.with_intercept)
            .max_iterations(self.max_iterations)
            .tolerance(self.tolerance);
        let mut weights = Array2::zeros((x.ncols(), y.ncols()));
        let mut intercept = Array1::zeros(y.ncols());
        for (j, target) in y.columns().into_iter().enumerate() {
            let dataset = DatasetBase::new(xc.view(), target);
            let model = params
                .fit(&dataset)
                .map_err(|e| Error::config(format!("ridge fit on output {j}: {e}")))?;
            let w = model.hyperplane();
            weights.column_mut(j).assign(w);
            intercept[j] = model.intercept() - x_mean.dot(w);
        }
        Ok(RidgeModel { weights, intercept })
    }
}

/// Fitted ridge regression: `y = x . weights + intercept` (all outputs at once).
pub struct RidgeModel {
    /// d_in x k coefficients.
    pub weights: Array2<f64>,
    /// k intercepts.
    pub intercept: Array1<f64>,
}

impl SimulatorParams for RidgeConfig {
    fn name(&self) -> &'static str {
        "ridge"
    }

    /// Ridge has no random choices; `seed` is unused.
    fn fit(&self, x: &Array2<f64>, y: &Array2<f64>, _seed: u64) -> Result<Box<dyn Simulator>> {
        Ok(Box::new(self.fit_ridge(x, y)?))
    }
}

impl Simulator for RidgeModel {
    fn name(&self) -> &'static str {
        "ridge"
    }

    fn predict(&self, x: &Array2<f64>) -> Result<Array2<f64>> {
        check_width("ridge", self.weights.nrows(), x)?;
        Ok(x.dot(&self.weights) + &self.intercept.view().insert_axis(Axis(0)))
    }
}

// ---------------------------------------------------------------------------------------
// Logistic regression as a regressor
// ---------------------------------------------------------------------------------------

/// Hyperparameters of the logistic-regression baseline, turned into a regressor.
///
/// Logistic regression classifies, so each output column is regressed in three steps:
/// 1. its training targets are cut into `bins` quantile bins (duplicate quantile edges, from
///    ties such as many zero failure rates, are merged, so every bin holds rows and there may
///    be fewer than `bins`);
/// 2. a multinomial logistic regression (linfa-logistic, L2 penalty `alpha`) learns the
///    probability of each bin from the inputs;
/// 3. the prediction is the expected bin value: the sum over bins of the predicted
///    probability times the mean training target of that bin.
///
/// Predictions thus stay within the range of the training targets. A column whose targets
/// fall into a single bin (a constant) is predicted as that constant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticConfig {
    /// Quantile bins (classes) per output before merging duplicates; default 10.
    pub bins: usize,
    /// L2 weight on a summed log-loss (scikit-learn's 1/C, linfa's default); default 1.0.
    pub alpha: f64,
    /// Upper bound on L-BFGS iterations (linfa's default); default 100.
    pub max_iterations: u64,
    /// L-BFGS stops when the gradient norm falls below this (linfa's default); default 1e-4.
    pub gradient_tolerance: f64,
}

impl Default for LogisticConfig {
    fn default() -> Self {
        Self {
            bins: 10,
            alpha: 1.0,
            max_iterations: 100,
            gradient_tolerance: 1e-4,
        }
    }
}

impl LogisticConfig {
    /// Checks every hyperparameter; the message names the bad value.
    pub fn validate(&self) -> Result<()> {
        if self.bins < 2 {
            return Err(Error::config(format!(
                "logistic.bins must be >= 2, but is {}",
                self.bins
            )));
        }
        non_negative("logistic.alpha", self.alpha)?;
        positive("logistic.gradient_tolerance", self.gradient_tolerance)?;
        if self.max_iterations < 1 {
            return Err(Error::config(format!(
                "logistic.max_iterations must be >= 1, but is {}",
                self.max_iterations
            )));
        }
        Ok(())
    }

    /// Fits and returns the concrete model (the trait's `fit` boxes it).
    pub fn fit_logistic(&self, x: &Array2<f64>, y: &Array2<f64>) -> Result<LogisticModel> {
        self.validate()?;
        check_training("logistic", x, y)?;
        let params = MultiLogisticRegression::<f64>::default()
            .alpha(self.alpha)
            .max_iterations(self.max_iterations)
            .gradient_tolerance(self.gradient_tolerance);
        let mut outputs = Vec::with_capacity(y.ncols());
        for (j, target) in y.columns().into_iter().enumerate() {
            let bins = Bins::new(target, self.bins);
            if bins.means.len() < 2 {
                outputs.push(BinnedOutput::Constant(bins.means[0]));
                continue;
            }
            let labels: Array1<usize> = target.iter().map(|&v| bins.label(v)).collect();
            let dataset = DatasetBase::new(x.view(), labels);
            let model = params
                .fit(&dataset)
                .map_err(|e| Error::config(format!("logistic fit on output {j}: {e}")))?;
            // Every bin holds rows, so linfa's classes are exactly 0..n_bins in order; map
            // through them anyway so that a bin's mean always meets its own probability.
            let values = Array1::from_iter(model.classes().iter().map(|&c| bins.means[c]));
            outputs.push(BinnedOutput::Classifier { model, values });
        }
        Ok(LogisticModel {
            outputs,
            d_in: x.ncols(),
        })
    }
}

/// Quantile bins of one training column.
struct Bins {
    /// Lower edges of bins 1.. (bin 0 is everything below `edges[0]`), strictly increasing.
    edges: Vec<f64>,
    /// Mean training target of each bin.
    means: Vec<f64>,
}

impl Bins {
    /// Edges at the `i/bins` quantiles (training values themselves), duplicates and the
    /// minimum dropped: bin 0 then holds the minimum and bin i >= 1 holds `edges[i-1]`, so no
    /// bin is empty.
    fn new(target: ArrayView1<f64>, bins: usize) -> Self {
        let mut sorted = target.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let min = sorted[0];
        let mut edges: Vec<f64> = (1..bins)
            .map(|i| sorted[i * n / bins])
            .filter(|&e| e > min)
            .collect();
        edges.dedup();
        let mut this = Self {
            edges,
            means: Vec::new(),
        };
        let mut sums = vec![0.0; this.edges.len() + 1];
        let mut counts = vec![0usize; this.edges.len() + 1];
        for &v in &sorted {
            let b = this.label(v);
            sums[b] += v;
            counts[b] += 1;
        }
        this.means = sums
            .iter()
            .zip(&counts)
            .map(|(s, &c)| s / c as f64)
            .collect();
        this
    }

    /// Bin of a value: the number of edges at or below it.
    fn label(&self, value: f64) -> usize {
        self.edges.partition_point(|&e| e <= value)
    }
}

/// One output column of the fitted logistic regressor.
enum BinnedOutput {
    /// All training targets fell into one bin.
    Constant(f64),
    /// Bin probabilities from the classifier, weighted by the bins' mean targets.
    Classifier {
        model: MultiFittedLogisticRegression<f64, usize>,
        values: Array1<f64>,
    },
}

/// Fitted logistic regressor: one binned classifier per output column.
pub struct LogisticModel {
    outputs: Vec<BinnedOutput>,
    d_in: usize,
}

impl SimulatorParams for LogisticConfig {
    fn name(&self) -> &'static str {
        "logistic"
    }

    /// Logistic regression (L-BFGS from zeros) has no random choices; `seed` is unused.
    fn fit(&self, x: &Array2<f64>, y: &Array2<f64>, _seed: u64) -> Result<Box<dyn Simulator>> {
        Ok(Box::new(self.fit_logistic(x, y)?))
    }
}

impl Simulator for LogisticModel {
    fn name(&self) -> &'static str {
        "logistic"
    }

    fn predict(&self, x: &Array2<f64>) -> Result<Array2<f64>> {
        check_width("logistic", self.d_in, x)?;
        let mut out = Array2::zeros((x.nrows(), self.outputs.len()));
        for (output, mut column) in self.outputs.iter().zip(out.columns_mut()) {
            match output {
                BinnedOutput::Constant(v) => column.fill(*v),
                BinnedOutput::Classifier { model, values } => {
                    column.assign(&model.predict_probabilities(x).dot(values))
                }
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// Random forest
// ---------------------------------------------------------------------------------------

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
        Self {
            trees: 120,
            max_depth: None,
            min_samples_leaf: 1,
            min_samples_split: 2,
            features_per_split: None,
            max_train_rows: None,
        }
    }
}

impl ForestConfig {
    /// Checks every hyperparameter; the message names the bad value.
    pub fn validate(&self) -> Result<()> {
        if self.trees < 1 {
            return Err(Error::config(format!(
                "forest.trees must be >= 1, but is {}",
                self.trees
            )));
        }
        if self.max_depth == Some(0) {
            return Err(Error::config(
                "forest.max_depth must be >= 1 (or left out for no cap), but is 0",
            ));
        }
        if self.min_samples_leaf < 1 {
            return Err(Error::config(format!(
                "forest.min_samples_leaf must be >= 1, but is {}",
                self.min_samples_leaf
            )));
        }
        if self.min_samples_split < 2 {
            return Err(Error::config(format!(
                "forest.min_samples_split must be >= 2, but is {}",
                self.min_samples_split
            )));
        }
        if self.features_per_split == Some(0) {
            return Err(Error::config(
                "forest.features_per_split must be >= 1 (or left out for every input), but is 0",
            ));
        }
        if let Some(cap) = self.max_train_rows.filter(|&c| c < 2) {
            return Err(Error::config(format!(
                "forest.max_train_rows must be >= 2 (or left out for every row), but is {cap}"
            )));
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
            return Err(Error::config(format!(
                "forest.features_per_split must be <= the {d_in} inputs, but is {m}"
            )));
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
        Ok(ForestModel {
            forests,
            d_in,
            train_rows: rows.len(),
        })
    }
}

/// smartcore's dense matrix (row-major) of an ndarray matrix.
fn dense(x: &Array2<f64>) -> Result<DenseMatrix<f64>> {
    DenseMatrix::new(x.nrows(), x.ncols(), x.iter().copied().collect(), false)
        .map_err(|e| Error::config(format!("forest: {e}")))
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
            let pred = forest
                .predict(&matrix)
                .map_err(|e| Error::config(format!("forest predict on output {j}: {e}")))?;
            column.assign(&Array1::from(pred));
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand_distr::StandardNormal;
    use std::time::Instant;

    /// n rows of 3 standard-normal features; y0 = 2 x0 - x1 + 0.05 noise, y1 = sin(x2).
    fn synthetic(n: usize, seed: u64) -> (Array2<f64>, Array2<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, 3), |_| rng.sample::<f64, _>(StandardNormal));
        let mut y = Array2::zeros((n, 2));
        for (i, row) in x.rows().into_iter().enumerate() {
            let noise: f64 = rng.sample(StandardNormal);
            y[[i, 0]] = 2.0 * row[0] - row[1] + 0.05 * noise;
            y[[i, 1]] = row[2].sin();
        }
        (x, y)
    }

    fn mse(pred: ArrayView1<f64>, truth: ArrayView1<f64>) -> f64 {
        pred.iter()
            .zip(truth)
            .map(|(p, t)| (p - t).powi(2))
            .sum::<f64>()
            / pred.len() as f64
    }

    fn variance(v: ArrayView1<f64>) -> f64 {
        let m = v.mean().unwrap();
        v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / v.len() as f64
    }

    /// Training and held-out halves of one synthetic draw.
    fn split() -> (Array2<f64>, Array2<f64>, Array2<f64>, Array2<f64>) {
        let (x, y) = synthetic(700, 7);
        let (xt, xv) = x.view().split_at(Axis(0), 500);
        let (yt, yv) = y.view().split_at(Axis(0), 500);
        (xt.to_owned(), yt.to_owned(), xv.to_owned(), yv.to_owned())
    }

    #[test]
    fn ridge_recovers_the_linear_output() {
        let (xt, yt, xv, yv) = split();
        let model = RidgeConfig::default().fit(&xt, &yt, 0).unwrap();
        let pred = model.predict(&xv).unwrap();
        assert_eq!(pred.dim(), (xv.nrows(), 2));
        let err = mse(pred.column(0), yv.column(0));
        assert!(err < 0.05, "ridge mse on y0 = {err}");
    }

    #[test]
    fn ridge_intercept_is_right_for_uncentred_inputs() {
        let (mut xt, _, _, _) = split();
        xt.mapv_inplace(|v| v + 3.0);
        let y = xt
            .map_axis(Axis(1), |r| 2.0 * r[0] - r[1] + 5.0)
            .insert_axis(Axis(1));
        let model = RidgeConfig {
            penalty: 0.0,
            ..Default::default()
        }
        .fit_ridge(&xt, &y)
        .unwrap();
        assert!(
            (model.intercept[0] - 5.0).abs() < 1e-2,
            "intercept {}",
            model.intercept[0]
        );
        let err = mse(model.predict(&xt).unwrap().column(0), y.column(0));
        assert!(err < 1e-4, "mse {err}");
    }

    #[test]
    fn svr_beats_the_mean_on_both_outputs() {
        let (xt, yt, xv, yv) = split();
        let model = SvrConfig::default().fit(&xt, &yt, 1).unwrap();
        let pred = model.predict(&xv).unwrap();
        assert_eq!(pred.dim(), (xv.nrows(), 2));
        for j in 0..2 {
            let err = mse(pred.column(j), yv.column(j));
            let var = variance(yv.column(j));
            assert!(err < 0.5 * var, "svr output {j}: mse {err}, variance {var}");
        }
    }

    #[test]
    fn logistic_beats_the_mean_and_stays_in_range() {
        let (xt, yt, xv, yv) = split();
        let model = LogisticConfig::default().fit(&xt, &yt, 0).unwrap();
        let pred = model.predict(&xv).unwrap();
        assert_eq!(pred.dim(), (xv.nrows(), 2));
        let err = mse(pred.column(0), yv.column(0));
        let var = variance(yv.column(0));
        assert!(err < 0.5 * var, "logistic mse on y0 {err}, variance {var}");
        for j in 0..2 {
            let lo = yt.column(j).fold(f64::INFINITY, |a, &b| a.min(b));
            let hi = yt.column(j).fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            assert!(pred
                .column(j)
                .iter()
                .all(|&p| p >= lo - 1e-12 && p <= hi + 1e-12));
        }
    }

    #[test]
    fn logistic_handles_ties_and_constant_columns() {
        let (xt, _, _, _) = split();
        // Column 0: 80% zeros (like failure_rate), column 1: constant.
        let n = xt.nrows();
        let mut y = Array2::zeros((n, 2));
        for i in 0..n {
            y[[i, 0]] = if i % 5 == 0 { xt[[i, 0]].abs() } else { 0.0 };
            y[[i, 1]] = 0.25;
        }
        let bins = Bins::new(y.column(0), 10);
        assert_eq!(
            bins.means.len(),
            3,
            "0 and two quantile bins of the nonzero 20%"
        );
        assert_eq!(bins.means[0], 0.0);
        let model = LogisticConfig::default().fit(&xt, &y, 0).unwrap();
        let pred = model.predict(&xt).unwrap();
        assert!(pred.column(1).iter().all(|&p| p == 0.25));
        assert!(pred.column(0).iter().all(|&p| p >= 0.0 && p.is_finite()));
    }

    #[test]
    fn fits_are_deterministic_for_a_seed() {
        let (xt, yt, xv, _) = split();
        let configs: Vec<Box<dyn SimulatorParams>> = vec![
            Box::new(SvrConfig {
                max_train_rows: 300,
                ..Default::default()
            }),
            Box::new(RidgeConfig::default()),
            Box::new(LogisticConfig::default()),
            Box::new(ForestConfig {
                trees: 15,
                ..Default::default()
            }),
        ];
        for config in &configs {
            let a = config.fit(&xt, &yt, 42).unwrap().predict(&xv).unwrap();
            let b = config.fit(&xt, &yt, 42).unwrap().predict(&xv).unwrap();
            assert_eq!(a, b, "{} is not deterministic", config.name());
        }
        // The seed does pick the SVR subsample.
        let svr = SvrConfig {
            max_train_rows: 300,
            ..Default::default()
        };
        let c = svr.fit(&xt, &yt, 43).unwrap().predict(&xv).unwrap();
        assert_ne!(svr.fit(&xt, &yt, 42).unwrap().predict(&xv).unwrap(), c);
        // And the forest's bootstraps and split candidates.
        let forest = ForestConfig {
            trees: 15,
            features_per_split: Some(2),
            ..Default::default()
        };
        let a = forest.fit(&xt, &yt, 42).unwrap().predict(&xv).unwrap();
        assert_eq!(a, forest.fit(&xt, &yt, 42).unwrap().predict(&xv).unwrap());
        assert_ne!(a, forest.fit(&xt, &yt, 43).unwrap().predict(&xv).unwrap());
    }

    #[test]
    fn svr_subsample_respects_max_train_rows() {
        let (xt, yt, xv, _) = split();
        let model = SvrConfig {
            max_train_rows: 50,
            ..Default::default()
        }
        .fit_svr(&xt, &yt, 3)
        .unwrap();
        assert_eq!(model.train_rows(), 50);
        assert_eq!(model.predict(&xv).unwrap().dim(), (xv.nrows(), 2));
        let rows = subsample(500, 50, 3);
        assert_eq!(rows.len(), 50);
        assert!(rows.windows(2).all(|w| w[0] < w[1]) && rows[49] < 500);
        assert_eq!(subsample(40, 50, 3), (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn any_number_of_outputs_and_inputs() {
        let (x, y) = synthetic(120, 9);
        let x5 = ndarray::concatenate![Axis(1), x, x.slice(ndarray::s![.., ..2])];
        let y3 = ndarray::concatenate![Axis(1), y, y.slice(ndarray::s![.., ..1])];
        let y1 = y.slice(ndarray::s![.., ..1]).to_owned();
        let configs: Vec<Box<dyn SimulatorParams>> = vec![
            Box::new(SvrConfig::default()),
            Box::new(RidgeConfig::default()),
            Box::new(LogisticConfig::default()),
            Box::new(ForestConfig {
                trees: 5,
                ..Default::default()
            }),
        ];
        for config in &configs {
            for yk in [&y1, &y3] {
                let model = config.fit(&x5, yk, 0).unwrap();
                assert_eq!(model.name(), config.name());
                assert_eq!(model.predict(&x5).unwrap().dim(), (120, yk.ncols()));
                let err = model.predict(&x).unwrap_err().to_string();
                assert!(err.contains("width 5"), "{err}");
            }
        }
    }

    #[test]
    fn rejects_negative_c() {
        let err = SvrConfig {
            c: -1.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("svr.c") && err.contains("-1"), "{err}");
        let (xt, yt, _, _) = split();
        assert!(SvrConfig {
            c: -1.0,
            ..Default::default()
        }
        .fit(&xt, &yt, 0)
        .is_err());
    }

    #[test]
    fn rejects_one_bin() {
        let err = LogisticConfig {
            bins: 1,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("logistic.bins") && err.contains('1'), "{err}");
        let (xt, yt, _, _) = split();
        assert!(LogisticConfig {
            bins: 1,
            ..Default::default()
        }
        .fit(&xt, &yt, 0)
        .is_err());
    }

    #[test]
    fn rejects_other_bad_hyperparameters_and_data() {
        let bad = [
            SvrConfig {
                epsilon: -0.1,
                ..Default::default()
            }
            .validate(),
            SvrConfig {
                kernel_width: 0.0,
                ..Default::default()
            }
            .validate(),
            SvrConfig {
                max_train_rows: 1,
                ..Default::default()
            }
            .validate(),
            SvrConfig {
                c: f64::NAN,
                ..Default::default()
            }
            .validate(),
            RidgeConfig {
                penalty: -1.0,
                ..Default::default()
            }
            .validate(),
            RidgeConfig {
                max_iterations: 0,
                ..Default::default()
            }
            .validate(),
            LogisticConfig {
                max_iterations: 0,
                ..Default::default()
            }
            .validate(),
            LogisticConfig {
                alpha: -1.0,
                ..Default::default()
            }
            .validate(),
            ForestConfig {
                trees: 0,
                ..Default::default()
            }
            .validate(),
            ForestConfig {
                max_depth: Some(0),
                ..Default::default()
            }
            .validate(),
            ForestConfig {
                min_samples_leaf: 0,
                ..Default::default()
            }
            .validate(),
            ForestConfig {
                min_samples_split: 1,
                ..Default::default()
            }
            .validate(),
            ForestConfig {
                features_per_split: Some(0),
                ..Default::default()
            }
            .validate(),
            ForestConfig {
                max_train_rows: Some(1),
                ..Default::default()
            }
            .validate(),
        ];
        assert!(bad.iter().all(|r| r.is_err()));
        let (xt, yt, _, _) = split();
        let mut ynan = yt.clone();
        ynan[[3, 1]] = f64::NAN;
        assert!(RidgeConfig::default().fit(&xt, &ynan, 0).is_err());
        let short = yt.slice(ndarray::s![..10, ..]).to_owned();
        assert!(LogisticConfig::default().fit(&xt, &short, 0).is_err());
    }

    #[test]
    fn configs_read_from_toml_like_json_with_defaults() {
        let svr: SvrConfig = serde_json::from_str(r#"{"c": 2.0}"#).unwrap();
        assert_eq!(
            svr,
            SvrConfig {
                c: 2.0,
                ..Default::default()
            }
        );
        assert!(serde_json::from_str::<RidgeConfig>(r#"{"alpha": 1.0}"#).is_err());
        let logistic: LogisticConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(logistic, LogisticConfig::default());
        let forest: ForestConfig = serde_json::from_str(r#"{"trees": 5, "max_depth": 8}"#).unwrap();
        assert_eq!(
            forest,
            ForestConfig {
                trees: 5,
                max_depth: Some(8),
                ..Default::default()
            }
        );
        assert_eq!(ForestConfig::default().trees, 120);
        assert!(serde_json::from_str::<ForestConfig>(r#"{"n_trees": 5}"#).is_err());
    }

    /// n rows of 3 standard-normal features; y0 = sin(2 x0) x1 + |x2|, y1 = step(x0 x1 > 0).
    fn nonlinear(n: usize, seed: u64) -> (Array2<f64>, Array2<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, 3), |_| rng.sample::<f64, _>(StandardNormal));
        let mut y = Array2::zeros((n, 2));
        for (i, r) in x.rows().into_iter().enumerate() {
            y[[i, 0]] = (2.0 * r[0]).sin() * r[1] + r[2].abs();
            y[[i, 1]] = if r[0] * r[1] > 0.0 { 1.0 } else { 0.0 };
        }
        (x, y)
    }

    #[test]
    fn forest_fits_a_nonlinear_function_better_than_the_mean() {
        let (x, y) = nonlinear(1200, 11);
        let (xt, xv) = x.view().split_at(Axis(0), 1000);
        let (yt, yv) = y.view().split_at(Axis(0), 1000);
        let config = ForestConfig {
            trees: 30,
            ..Default::default()
        };
        let model = config
            .fit_forest(&xt.to_owned(), &yt.to_owned(), 5)
            .unwrap();
        assert_eq!(model.train_rows(), 1000);
        let pred = model.predict(&xv.to_owned()).unwrap();
        assert_eq!(pred.dim(), (200, 2));
        for j in 0..2 {
            let err = mse(pred.column(j), yv.column(j));
            let var = variance(yv.column(j));
            assert!(
                err < 0.5 * var,
                "forest output {j}: mse {err}, variance {var}"
            );
        }
        // Averages of bootstrap means stay within the training targets' range.
        assert!(pred.column(1).iter().all(|&p| (0.0..=1.0).contains(&p)));
        // Ridge cannot fit these: the forest beats it by far on both outputs.
        let ridge = RidgeConfig::default()
            .fit(&xt.to_owned(), &yt.to_owned(), 0)
            .unwrap();
        let ridge_pred = ridge.predict(&xv.to_owned()).unwrap();
        for j in 0..2 {
            assert!(
                mse(pred.column(j), yv.column(j)) < 0.5 * mse(ridge_pred.column(j), yv.column(j))
            );
        }
    }

    #[test]
    fn forest_subsample_and_split_candidates_follow_the_config() {
        let (xt, yt, xv, _) = split();
        let model = ForestConfig {
            trees: 5,
            max_train_rows: Some(60),
            max_depth: Some(3),
            features_per_split: Some(1),
            ..Default::default()
        }
        .fit_forest(&xt, &yt, 3)
        .unwrap();
        assert_eq!(model.train_rows(), 60);
        let pred = model.predict(&xv).unwrap();
        assert_eq!(pred.dim(), (xv.nrows(), 2));
        assert!(pred.iter().all(|p| p.is_finite()));
        let err = ForestConfig {
            features_per_split: Some(4),
            ..Default::default()
        }
        .fit(&xt, &yt, 0)
        .err()
        .expect("4 split candidates of 3 inputs")
        .to_string();
        assert!(
            err.contains("forest.features_per_split") && err.contains('3'),
            "{err}"
        );
        assert_eq!(
            model
                .predict(&xv.slice(ndarray::s![..0, ..]).to_owned())
                .unwrap()
                .dim(),
            (0, 2)
        );
    }

    /// z-scores every column in place.
    fn zscore(a: &mut Array2<f64>) {
        for mut col in a.columns_mut() {
            let m = col.mean().unwrap();
            let sd = variance(col.view()).sqrt().max(1e-12);
            col.mapv_inplace(|v| (v - m) / sd);
        }
    }

    /// Fit time of SVR at its default cap of 2000 rows x 9 features, per output, and the
    /// held-out MSE of all three baselines. Reads the first 2500 rows of the CSV named by
    /// `MESHRL_BASELINE_CSV` (9 input columns, then qps and failure_rate) or a synthetic set:
    /// `MESHRL_BASELINE_CSV=datasets/S1.csv cargo test --release --lib simulator::baselines -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn svr_fit_time_at_2000_rows() {
        let (n, d) = (2500, 9);
        let (mut x, mut y) = match std::env::var("MESHRL_BASELINE_CSV") {
            Ok(path) => {
                let text = std::fs::read_to_string(&path).unwrap();
                let rows: Vec<Vec<f64>> = text
                    .lines()
                    .skip(1)
                    .take(n)
                    .map(|l| {
                        l.split(',')
                            .take(d + 2)
                            .map(|v| v.parse().unwrap())
                            .collect()
                    })
                    .collect();
                let x = Array2::from_shape_fn((rows.len(), d), |(i, j)| rows[i][j]);
                let y = Array2::from_shape_fn((rows.len(), 2), |(i, j)| rows[i][d + j]);
                (x, y)
            }
            Err(_) => {
                let mut rng = ChaCha8Rng::seed_from_u64(5);
                let x = Array2::from_shape_fn((n, d), |_| rng.sample::<f64, _>(StandardNormal));
                let mut y = Array2::zeros((n, 2));
                for (i, r) in x.rows().into_iter().enumerate() {
                    let noise: f64 = rng.sample(StandardNormal);
                    y[[i, 0]] = (r[0] + 0.5 * r[1] * r[2]).tanh() + 0.3 * r[3] + 0.1 * noise;
                    y[[i, 1]] = (r[4] - r[5]).max(0.0) * 0.5 + 0.1 * noise;
                }
                (x, y)
            }
        };
        zscore(&mut x);
        zscore(&mut y);
        let split = x.nrows() - 500;
        let (xt, xv) = x.view().split_at(Axis(0), split);
        let (yt, yv) = y.view().split_at(Axis(0), split);
        let (xt, yt, xv) = (xt.to_owned(), yt.to_owned(), xv.to_owned());
        let config = SvrConfig::default();
        for j in 0..2 {
            let yj = yt.slice(ndarray::s![.., j..j + 1]).to_owned();
            let start = Instant::now();
            let model = config.fit_svr(&xt, &yj, 0).unwrap();
            let secs = start.elapsed().as_secs_f64();
            let support = model.models[0].nsupport();
            println!(
                "svr output {j}: {} rows, fit {secs:.2} s, {support} support vectors",
                model.train_rows()
            );
        }
        let configs: Vec<Box<dyn SimulatorParams>> = vec![
            Box::new(config),
            Box::new(RidgeConfig::default()),
            Box::new(LogisticConfig::default()),
        ];
        for config in &configs {
            let start = Instant::now();
            let model = config.fit(&xt, &yt, 0).unwrap();
            let secs = start.elapsed().as_secs_f64();
            let pred = model.predict(&xv).unwrap();
            let errs: Vec<String> = (0..2)
                .map(|j| format!("{:.3}", mse(pred.column(j), yv.column(j))))
                .collect();
            println!(
                "{}: fit {secs:.2} s, held-out mse (z units) {errs:?}",
                config.name()
            );
        }
    }
}

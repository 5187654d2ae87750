//! Logistic regression as a regressor, through quantile bins (linfa-logistic).

use linfa::prelude::*;
use linfa_logistic::{MultiFittedLogisticRegression, MultiLogisticRegression};
use ndarray::{Array1, Array2, ArrayView1};
use serde::{Deserialize, Serialize};

use super::{check_training, check_width, non_negative, positive};
use crate::error::{Error, Result};
use crate::simulator::{Simulator, SimulatorParams};

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
        Self { bins: 10, alpha: 1.0, max_iterations: 100, gradient_tolerance: 1e-4 }
    }
}

impl LogisticConfig {
    /// Checks every hyperparameter; the message names the bad value.
    pub fn validate(&self) -> Result<()> {
        if self.bins < 2 {
            return Err(Error::config(format!("logistic.bins must be >= 2, but is {}", self.bins)));
        }
        non_negative("logistic.alpha", self.alpha)?;
        positive("logistic.gradient_tolerance", self.gradient_tolerance)?;
        if self.max_iterations < 1 {
            return Err(Error::config(format!("logistic.max_iterations must be >= 1, but is {}", self.max_iterations)));
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
            let model = params.fit(&dataset).map_err(|e| Error::config(format!("logistic fit on output {j}: {e}")))?;
            // Every bin holds rows, so linfa's classes are exactly 0..n_bins in order; map
            // through them anyway so that a bin's mean always meets its own probability.
            let values = Array1::from_iter(model.classes().iter().map(|&c| bins.means[c]));
            outputs.push(BinnedOutput::Classifier { model, values });
        }
        Ok(LogisticModel { outputs, d_in: x.ncols() })
    }
}

/// Quantile bins of one training column.
pub(super) struct Bins {
    /// Lower edges of bins 1.. (bin 0 is everything below `edges[0]`), strictly increasing.
    pub(super) edges: Vec<f64>,
    /// Mean training target of each bin.
    pub(super) means: Vec<f64>,
}

impl Bins {
    /// Edges at the `i/bins` quantiles (training values themselves), duplicates and the
    /// minimum dropped: bin 0 then holds the minimum and bin i >= 1 holds `edges[i-1]`, so no
    /// bin is empty.
    pub(super) fn new(target: ArrayView1<f64>, bins: usize) -> Self {
        let mut sorted = target.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let min = sorted[0];
        let mut edges: Vec<f64> = (1..bins).map(|i| sorted[i * n / bins]).filter(|&e| e > min).collect();
        edges.dedup();
        let mut this = Self { edges, means: Vec::new() };
        let mut sums = vec![0.0; this.edges.len() + 1];
        let mut counts = vec![0usize; this.edges.len() + 1];
        for &v in &sorted {
            let b = this.label(v);
            sums[b] += v;
            counts[b] += 1;
        }
        this.means = sums.iter().zip(&counts).map(|(s, &c)| s / c as f64).collect();
        this
    }

    /// Bin of a value: the number of edges at or below it.
    pub(super) fn label(&self, value: f64) -> usize {
        self.edges.partition_point(|&e| e <= value)
    }
}

/// One output column of the fitted logistic regressor.
enum BinnedOutput {
    /// All training targets fell into one bin.
    Constant(f64),
    /// Bin probabilities from the classifier, weighted by the bins' mean targets.
    Classifier { model: MultiFittedLogisticRegression<f64, usize>, values: Array1<f64> },
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
                BinnedOutput::Classifier { model, values } => column.assign(&model.predict_probabilities(x).dot(values)),
            }
        }
        Ok(out)
    }
}

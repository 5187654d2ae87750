//! Ridge regression (linfa-elasticnet), one model per output.

use linfa::prelude::*;
use linfa_elasticnet::ElasticNet;
use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};

use super::{check_training, check_width, non_negative, positive};
use crate::error::{Error, Result};
use crate::simulator::{Simulator, SimulatorParams};

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
        Self { penalty: 1e-3, with_intercept: true, max_iterations: 1000, tolerance: 1e-4 }
    }
}

impl RidgeConfig {
    /// Checks every hyperparameter; the message names the bad value.
    pub fn validate(&self) -> Result<()> {
        non_negative("ridge.penalty", self.penalty)?;
        positive("ridge.tolerance", self.tolerance)?;
        if self.max_iterations < 1 {
            return Err(Error::config(format!("ridge.max_iterations must be >= 1, but is {}", self.max_iterations)));
        }
        Ok(())
    }

    /// Fits and returns the concrete model (the trait's `fit` boxes it).
    pub fn fit_ridge(&self, x: &Array2<f64>, y: &Array2<f64>) -> Result<RidgeModel> {
        self.validate()?;
        check_training("ridge", x, y)?;
        // linfa-elasticnet's intercept only centres y, not X; centre X here so that the
        // intercept is right for inputs that are not exactly zero-mean (e.g. subsets).
        let x_mean = if self.with_intercept { x.mean_axis(Axis(0)).expect("x has rows") } else { Array1::zeros(x.ncols()) };
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
            let model = params.fit(&dataset).map_err(|e| Error::config(format!("ridge fit on output {j}: {e}")))?;
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
        Ok(x.dot(&self.weights) + self.intercept.view().insert_axis(Axis(0)))
    }
}

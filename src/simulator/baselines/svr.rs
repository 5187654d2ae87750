//! Support vector regression (linfa-svm), one model per output.

use linfa::prelude::*;
use linfa_svm::Svm;
use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};

use super::{check_training, check_width, non_negative, positive, subsample};
use crate::error::{Error, Result};
use crate::simulator::{Simulator, SimulatorParams};

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
        Self { c: 1.0, epsilon: 0.1, kernel_width: 18.0, max_train_rows: 2000, tolerance: 1e-3 }
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
            return Err(Error::config(format!("svr.max_train_rows must be >= 2, but is {}", self.max_train_rows)));
        }
        Ok(())
    }
}

/// Fitted SVR: one linfa model per output column.
pub struct SvrModel {
    pub(super) models: Vec<Svm<f64, f64>>,
    d_in: usize,
    train_rows: usize,
}

impl SvrModel {
    /// Number of training rows the models were fitted on (after subsampling).
    pub fn train_rows(&self) -> usize {
        self.train_rows
    }
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
            let model = params.fit(&dataset).map_err(|e| Error::config(format!("svr fit on output {j}: {e}")))?;
            models.push(model);
        }
        Ok(SvrModel { models, d_in: x.ncols(), train_rows: rows.len() })
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

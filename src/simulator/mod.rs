//! Simulators of a service (protocol.md section 3): models that map the 9 inputs (seven
//! traffic rules, threads, calls) to the 2 responses (qps, failure rate). They are fitted
//! and evaluated on z-scored inputs and outputs; [`ServiceModel`] wraps a fitted model with
//! its normalisers so that callers (the RL environment) speak in raw units.

pub mod baselines;
pub mod mlp;
pub mod store;

use std::path::Path;

use ndarray::Array2;

use crate::data::Normalizer;
use crate::error::{Error, Result};

/// A fitted model: z-scored inputs (n x d_in) to z-scored outputs (n x d_out).
pub trait Simulator: Send + Sync {
    /// Short name used in tables and file names ("mlp", "svr", "ridge", "logistic").
    fn name(&self) -> &'static str;
    /// Predicts a batch of rows at once.
    fn predict(&self, x: &Array2<f64>) -> Result<Array2<f64>>;
}

/// Hyperparameters of a model; fitting turns them into a [`Simulator`] (linfa's style:
/// settings and fitted models are different types).
pub trait SimulatorParams {
    fn name(&self) -> &'static str;
    /// Fits on z-scored training rows. `seed` fixes every random choice of the fit.
    fn fit(&self, x: &Array2<f64>, y: &Array2<f64>, seed: u64) -> Result<Box<dyn Simulator>>;
}

/// A fitted simulator with the normalisers of its training split: raw units in and out.
pub struct ServiceModel {
    pub model: Box<dyn Simulator>,
    pub inputs: Normalizer,
    pub outputs: Normalizer,
}

impl ServiceModel {
    /// Predicts raw outputs for raw input rows (row-major, n x d_in). When the outputs are
    /// the protocol's (qps, failure_rate), qps is clamped to >= 0 and the failure rate to
    /// [0, 1] (protocol.md section 4).
    pub fn predict_raw(&self, rows: &[f64]) -> Result<Vec<f64>> {
        let d_in = self.inputs.width();
        if d_in == 0 || !rows.len().is_multiple_of(d_in) {
            return Err(Error::config(format!("input rows of width {d_in} expected, got {} values", rows.len())));
        }
        let mut z = rows.to_vec();
        self.inputs.transform_rows(&mut z);
        let x = Array2::from_shape_vec((rows.len() / d_in, d_in), z).map_err(|e| Error::config(e.to_string()))?;
        let y = self.model.predict(&x)?;
        let mut out: Vec<f64> = y.iter().copied().collect();
        let d_out = self.outputs.width();
        for row in out.chunks_mut(d_out) {
            self.outputs.inverse_row(row);
            for (value, name) in row.iter_mut().zip(self.outputs.names()) {
                match name.as_str() {
                    "qps" => *value = value.max(0.0),
                    "failure_rate" => *value = value.clamp(0.0, 1.0),
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// Loads an MLP simulator saved by Table 4: the weights and, beside them, the
    /// normalisers (`<stem>.inputs.json`, `<stem>.outputs.json`) that fix its shape.
    pub fn load_mlp(model_path: &Path) -> Result<ServiceModel> {
        if !model_path.is_file() {
            return Err(Error::file(model_path, "cannot read: no such model file"));
        }
        let inputs = Normalizer::load_json(&normalizer_path(model_path, "inputs"))?;
        let outputs = Normalizer::load_json(&normalizer_path(model_path, "outputs"))?;
        let net = mlp::Mlp::load(model_path, inputs.width(), outputs.width())?;
        Ok(ServiceModel { model: Box::new(mlp::MlpSimulator { net, history: Vec::new() }), inputs, outputs })
    }
}

/// `<dir>/<stem>.<role>.json` beside `<dir>/<stem>.safetensors`.
pub fn normalizer_path(model_path: &Path, role: &str) -> std::path::PathBuf {
    let stem = model_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    model_path.with_file_name(format!("{stem}.{role}.json"))
}

//! The model side of a control problem: a random forest learned from the trace, asked what
//! a setting would do at a load.
//!
//! Two input sets (issue 16):
//! - `tnsm2023`: the framework's own features `(max_l1, l1, cl1, p1, b1, c1)` -> `d1`. Two
//!   of them (`l1`, `cl1`) are measured outcomes, not settings; at decision time the
//!   framework feeds `l1 = cl1 = window x load` (no blocking). With blocking, meshrl feeds
//!   `cl1 = window x admitted rate`. It predicts no carried load (`cl1` is its input), so a
//!   throughput objective cannot be scored on it;
//! - `controller`: what a controller actually sets, `(load, routing, blocking, replicas)`
//!   -> `(delay, carried load)`.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::trace::{knobs_key, ControlTrace, Knobs, Outcome};
use crate::error::{Error, Result};
use crate::simulator::baselines::{ForestConfig, ForestModel};
use crate::simulator::Simulator;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelInputs {
    Tnsm2023,
    Controller,
}

impl ModelInputs {
    pub fn name(&self) -> &'static str {
        match self {
            ModelInputs::Tnsm2023 => "tnsm2023",
            ModelInputs::Controller => "controller",
        }
    }

    /// Whether the model predicts the carried load.
    pub fn predicts_carried(&self) -> bool {
        *self == ModelInputs::Controller
    }

    fn features(&self, load: f64, knobs: &Knobs, sent: f64, completed: f64) -> Vec<f64> {
        let admitted = (1.0 - knobs.blocking) * load;
        match self {
            ModelInputs::Tnsm2023 => vec![load, sent, completed, knobs.routing, admitted, knobs.replicas as f64],
            ModelInputs::Controller => vec![load, knobs.routing, knobs.blocking, knobs.replicas as f64],
        }
    }
}

/// A fitted model of the trace.
pub struct ControlModel {
    pub inputs: ModelInputs,
    forest: ForestModel,
    window_s: f64,
    /// Settings (routing, blocking, replicas) kept out of the fit.
    pub held_out: Vec<(i64, i64, u32)>,
}

impl ControlModel {
    /// Fits the forest on every sample whose setting is not in `held_out`.
    pub fn fit(
        trace: &ControlTrace,
        inputs: ModelInputs,
        forest: &ForestConfig,
        window_s: f64,
        held_out: Vec<(i64, i64, u32)>,
        seed: u64,
    ) -> Result<ControlModel> {
        let rows: Vec<_> = trace.samples.iter().filter(|s| !held_out.contains(&knobs_key(&s.knobs))).collect();
        if rows.len() < 2 {
            return Err(Error::file(&trace.path, "fewer than two rows left to fit the model on"));
        }
        let width = inputs.features(1.0, &Knobs { routing: 0.0, blocking: 0.0, replicas: 1 }, 0.0, 0.0).len();
        let targets = if inputs.predicts_carried() { 2 } else { 1 };
        let mut x = Array2::zeros((rows.len(), width));
        let mut y = Array2::zeros((rows.len(), targets));
        for (i, s) in rows.iter().enumerate() {
            for (j, v) in inputs.features(s.load, &s.knobs, s.sent, s.completed).into_iter().enumerate() {
                x[[i, j]] = v;
            }
            y[[i, 0]] = s.delay;
            if targets == 2 {
                y[[i, 1]] = s.completed / window_s;
            }
        }
        Ok(ControlModel { inputs, forest: forest.fit_forest(&x, &y, seed)?, window_s, held_out })
    }

    /// The predicted outcome of each (load, setting), in one batch.
    pub fn predict(&self, queries: &[(f64, Knobs)]) -> Result<Vec<Outcome>> {
        let rows: Vec<Vec<f64>> = queries
            .iter()
            .map(|(load, k)| {
                let sent = self.window_s * load;
                let completed = self.window_s * (1.0 - k.blocking) * load;
                self.inputs.features(*load, k, sent, completed)
            })
            .collect();
        let width = rows.first().map_or(0, Vec::len);
        let x = Array2::from_shape_vec((rows.len(), width), rows.concat()).map_err(|e| Error::config(e.to_string()))?;
        let y = self.forest.predict(&x)?;
        Ok((0..queries.len()).map(|i| Outcome { delay: y[[i, 0]], carried: self.inputs.predicts_carried().then(|| y[[i, 1]]) }).collect())
    }
}

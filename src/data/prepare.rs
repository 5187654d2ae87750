//! A trace split and z-scored for one seed: what every simulator is fitted on.

use ndarray::Array2;

use super::{split, Normalizer, TraceTable};
use crate::error::{Error, Result};

/// The split and its z-scored matrices, with the training split's normalisers.
pub struct Prepared {
    pub train_rows: Vec<usize>,
    pub x_train: Array2<f64>,
    pub y_train: Array2<f64>,
    pub x_test: Array2<f64>,
    pub y_test: Array2<f64>,
    pub inputs: Normalizer,
    pub outputs: Normalizer,
}

/// Splits the first `rows` rows of `table` (seeded) and z-scores both sides with the
/// training split's statistics.
pub fn prepare(table: &TraceTable, rows: usize, seed: u64, train_fraction: f64) -> Result<Prepared> {
    let (train, test) = split(rows, seed, train_fraction);
    let inputs = Normalizer::fit_features(table, &train)?;
    let outputs = Normalizer::fit_targets(table, &train)?;
    let z = |rows: &[usize], features: bool| -> Result<Array2<f64>> {
        let (mut v, norm, d) = if features {
            (table.gather_features(rows), &inputs, table.n_features())
        } else {
            (table.gather_targets(rows), &outputs, table.n_targets())
        };
        norm.transform_rows(&mut v);
        to_array(v, d)
    };
    Ok(Prepared {
        x_train: z(&train, true)?,
        y_train: z(&train, false)?,
        x_test: z(&test, true)?,
        y_test: z(&test, false)?,
        inputs,
        outputs,
        train_rows: train,
    })
}

/// Row-major buffer to an (n x d) array.
pub fn to_array(values: Vec<f64>, d: usize) -> Result<Array2<f64>> {
    let n = values.len().checked_div(d).unwrap_or(0);
    Array2::from_shape_vec((n, d), values).map_err(|e| Error::config(format!("bad matrix shape: {e}")))
}

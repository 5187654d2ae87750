//! Z-score normalisation with statistics of the training split only (protocol.md section 3),
//! saved as JSON next to the model so that a reloaded model sees the same scaling.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::table::TraceTable;
use crate::atomic::write_file;
use crate::error::{Error, Result};

/// Per-column mean and standard deviation (population, i.e. divided by n), named after the
/// columns they scale.
///
/// A constant column gets std 1, so it maps to 0 instead of dividing by (nearly) zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalizer {
    names: Vec<String>,
    #[serde(with = "exact_floats")]
    mean: Vec<f64>,
    #[serde(with = "exact_floats")]
    std: Vec<f64>,
}

impl Normalizer {
    /// Fits on `rows`, each holding one value per name. Fails on no columns, no rows, a row of
    /// the wrong width, or a non-finite value or statistic.
    pub fn fit<'a>(names: Vec<String>, rows: impl IntoIterator<Item = &'a [f64]>) -> Result<Self> {
        let width = names.len();
        if width == 0 {
            return Err(Error::config("cannot fit a normaliser on zero columns"));
        }
        let rows: Vec<&[f64]> = rows.into_iter().collect();
        if rows.is_empty() {
            return Err(Error::config("cannot fit a normaliser on zero rows (empty training split?)"));
        }
        if let Some(row) = rows.iter().find(|row| row.len() != width) {
            return Err(Error::config(format!("cannot fit a normaliser: a row has {} values for {width} columns", row.len())));
        }
        let n = rows.len() as f64;
        let mut mean = vec![0.0; width];
        let mut std = vec![0.0; width];
        for (j, name) in names.iter().enumerate() {
            // Two passes: the variance of deviations is exact for constant columns.
            let m = rows.iter().map(|row| row[j]).sum::<f64>() / n;
            let var = rows.iter().map(|row| (row[j] - m).powi(2)).sum::<f64>() / n;
            let s = var.sqrt();
            if !m.is_finite() || !s.is_finite() {
                return Err(Error::config(format!("cannot fit a normaliser: column `{name}` has non-finite or overflowing values")));
            }
            mean[j] = m;
            // Relative floor: a constant column of large values can still show rounding noise.
            std[j] = if s <= 1e-12 * m.abs().max(1.0) { 1.0 } else { s };
        }
        Ok(Normalizer { names, mean, std })
    }

    /// Fits on the features of the given rows of `table` (e.g. the training split).
    pub fn fit_features(table: &TraceTable, rows: &[usize]) -> Result<Self> {
        Self::fit(table.feature_names().to_vec(), rows.iter().map(|&i| table.feature_row(i)))
    }

    /// Fits on the targets of the given rows of `table` (e.g. the training split).
    pub fn fit_targets(table: &TraceTable, rows: &[usize]) -> Result<Self> {
        Self::fit(table.target_names().to_vec(), rows.iter().map(|&i| table.target_row(i)))
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }
    pub fn std(&self) -> &[f64] {
        &self.std
    }
    /// Number of columns a row must have.
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// Scales a row in place: `(x - mean) / std`.
    ///
    /// # Panics
    /// If `row.len() != self.width()`: a programming error, not a data error.
    pub fn transform_row(&self, row: &mut [f64]) {
        assert_eq!(row.len(), self.width(), "row width does not match the normaliser");
        for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
            *x = (*x - m) / s;
        }
    }

    /// Undoes [`Self::transform_row`] in place: `x * std + mean`.
    ///
    /// # Panics
    /// If `row.len() != self.width()`.
    pub fn inverse_row(&self, row: &mut [f64]) {
        assert_eq!(row.len(), self.width(), "row width does not match the normaliser");
        for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
            *x = *x * s + m;
        }
    }

    /// Scales every row of a row-major buffer in place.
    ///
    /// # Panics
    /// If the buffer length is not a multiple of `self.width()`.
    pub fn transform_rows(&self, data: &mut [f64]) {
        assert_eq!(data.len() % self.width(), 0, "buffer is not whole rows");
        data.chunks_exact_mut(self.width()).for_each(|row| self.transform_row(row));
    }

    /// Fails (naming `file`) unless this normaliser scales exactly the columns `names`, in
    /// order: catches a saved normaliser applied to a table with other columns.
    pub fn check_names(&self, names: &[String], file: &Path) -> Result<()> {
        if self.names == names {
            return Ok(());
        }
        Err(Error::file(
            file,
            format!("normaliser columns [{}] do not match the data columns [{}]", self.names.join(", "), names.join(", ")),
        ))
    }

    /// Writes the normaliser as JSON, atomically (temporary file in the same directory, then
    /// rename), so a crash never leaves a half-written normaliser next to a model.
    pub fn save_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::file(path, format!("cannot encode the normaliser: {e}")))?;
        write_file(path, json)
    }

    /// Reads a normaliser written by [`Self::save_json`] and checks it is usable.
    pub fn load_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, format!("cannot read the normaliser: {e}")))?;
        let normalizer: Normalizer =
            serde_json::from_str(&text).map_err(|e| Error::file(path, format!("not a normaliser JSON file: {e}")))?;
        normalizer.validate().map_err(|why| Error::file(path, why))?;
        Ok(normalizer)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let width = self.names.len();
        if width == 0 {
            return Err("no columns".to_string());
        }
        if self.mean.len() != width || self.std.len() != width {
            return Err(format!("{} names but {} means and {} standard deviations", width, self.mean.len(), self.std.len()));
        }
        for ((name, m), s) in self.names.iter().zip(&self.mean).zip(&self.std) {
            if !m.is_finite() || !s.is_finite() || *s <= 0.0 {
                return Err(format!("column `{name}`: mean {m} and std {s} must be finite, std > 0"));
            }
        }
        Ok(())
    }
}

/// Floats saved as decimal strings (`"0.014430869689661813"`), so that a reloaded normaliser
/// is bit-identical to the saved one: serde_json without its `float_roundtrip` feature may
/// parse a 17-digit number one ulp off, while Rust's own `str::parse` is exact. Plain JSON
/// numbers are accepted too, for hand-written files.
mod exact_floats {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(values: &[f64], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(values.iter().map(f64::to_string))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Float {
        Text(String),
        Number(f64),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
        Vec::<Float>::deserialize(deserializer)?
            .into_iter()
            .map(|value| match value {
                Float::Number(x) => Ok(x),
                Float::Text(text) => text.trim().parse().map_err(|_| serde::de::Error::custom(format!("`{text}` is not a number"))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|j| format!("c{j}")).collect()
    }

    fn sample_rows() -> Vec<Vec<f64>> {
        (0..50)
            .map(|i| {
                let i = f64::from(i);
                vec![i, 1000.0 + 3.0 * i * i, 42.0, -0.001 * i]
            })
            .collect()
    }

    #[test]
    fn fitted_training_columns_have_mean_zero_and_std_one() {
        let rows = sample_rows();
        let norm = Normalizer::fit(names(4), rows.iter().map(Vec::as_slice)).unwrap();
        let mut scaled: Vec<Vec<f64>> = rows.clone();
        scaled.iter_mut().for_each(|row| norm.transform_row(row));
        let n = scaled.len() as f64;
        for j in 0..4 {
            let mean = scaled.iter().map(|r| r[j]).sum::<f64>() / n;
            let var = scaled.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n;
            assert!(mean.abs() < 1e-9, "column {j}: mean {mean}");
            if j == 2 {
                // The constant column maps to 0.
                assert_eq!(norm.std()[j], 1.0);
                assert!(scaled.iter().all(|r| r[j] == 0.0));
            } else {
                assert!((var.sqrt() - 1.0).abs() < 1e-9, "column {j}: std {}", var.sqrt());
            }
        }
    }

    #[test]
    fn inverse_undoes_transform() {
        let rows = sample_rows();
        let norm = Normalizer::fit(names(4), rows.iter().map(Vec::as_slice)).unwrap();
        let mut row = vec![3.5, 2000.0, 42.0, 7.0];
        norm.transform_row(&mut row);
        norm.inverse_row(&mut row);
        for (x, want) in row.iter().zip([3.5, 2000.0, 42.0, 7.0]) {
            assert!((x - want).abs() < 1e-9 * want.abs().max(1.0));
        }
    }

    #[test]
    fn transform_rows_scales_a_row_major_buffer() {
        let norm = Normalizer::fit(names(2), [[0.0, 10.0].as_slice(), &[2.0, 30.0]]).unwrap();
        let mut data = vec![0.0, 10.0, 2.0, 30.0];
        norm.transform_rows(&mut data);
        assert_eq!(data, [-1.0, -1.0, 1.0, 1.0]);
    }

    #[test]
    fn normalizer_save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("normalizer.json");
        let rows = sample_rows();
        let norm = Normalizer::fit(names(4), rows.iter().map(Vec::as_slice)).unwrap();
        norm.save_json(&path).unwrap();
        assert_eq!(Normalizer::load_json(&path).unwrap(), norm);
        // Only the target file is left behind: no temporary file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Overwriting works too.
        norm.save_json(&path).unwrap();
        assert_eq!(Normalizer::load_json(&path).unwrap(), norm);
    }

    #[test]
    fn loads_a_hand_written_normalizer_with_plain_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hand.json");
        std::fs::write(&path, r#"{"names":["a"],"mean":[2],"std":[0.5]}"#).unwrap();
        let norm = Normalizer::load_json(&path).unwrap();
        let mut row = [3.0];
        norm.transform_row(&mut row);
        assert_eq!(row, [2.0]);
    }

    #[test]
    fn rejects_fit_on_zero_rows() {
        assert!(Normalizer::fit(names(2), std::iter::empty()).is_err());
    }

    #[test]
    fn rejects_fit_on_ragged_rows() {
        assert!(Normalizer::fit(names(2), [[1.0].as_slice()]).is_err());
        assert!(Normalizer::fit(names(0), [[].as_slice()]).is_err());
    }

    #[test]
    fn rejects_missing_normalizer_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.json");
        let msg = Normalizer::load_json(&path).unwrap_err().to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }

    #[test]
    fn rejects_inconsistent_normalizer_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, r#"{"names":["a","b"],"mean":[0.0],"std":[1.0,1.0]}"#).unwrap();
        let msg = Normalizer::load_json(&path).unwrap_err().to_string();
        assert!(msg.contains(&path.display().to_string()) && msg.contains("1 means"), "{msg}");
        std::fs::write(&path, r#"{"names":["a"],"mean":[0.0],"std":[0.0]}"#).unwrap();
        assert!(Normalizer::load_json(&path).is_err());
        std::fs::write(&path, r#"{"names":["a"],"mean":["zero"],"std":[1.0]}"#).unwrap();
        assert!(Normalizer::load_json(&path).is_err());
        std::fs::write(&path, "{not json").unwrap();
        assert!(Normalizer::load_json(&path).is_err());
    }

    #[test]
    fn check_names_catches_other_columns() {
        let norm = Normalizer::fit(names(2), [[0.0, 1.0].as_slice()]).unwrap();
        assert!(norm.check_names(&names(2), Path::new("m.json")).is_ok());
        let err = norm.check_names(&names(3), Path::new("m.json")).unwrap_err().to_string();
        assert!(err.contains("m.json"), "{err}");
    }
}

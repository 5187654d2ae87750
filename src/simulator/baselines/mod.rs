//! The baseline simulators of the SFR2L paper's Table 4: support vector regression (RBF
//! kernel), ridge regression and logistic regression, all fitted with linfa, and a random
//! forest (smartcore; the TNSM2023 framework's model). Each maps z-scored inputs (n x d) to
//! z-scored outputs (n x k) with one model per output column.

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

mod forest;
mod logistic;
mod ridge;
mod svr;

pub use forest::{ForestConfig, ForestModel};
pub use logistic::{LogisticConfig, LogisticModel};
pub use ridge::{RidgeConfig, RidgeModel};
pub use svr::{SvrConfig, SvrModel};

/// Rejects training data a fit cannot use: no rows, mismatched rows, no outputs, NaN/inf.
fn check_training(model: &str, x: &Array2<f64>, y: &Array2<f64>) -> Result<()> {
    if x.nrows() == 0 {
        return Err(Error::config(format!("{model} fit: no training rows")));
    }
    if x.nrows() != y.nrows() {
        return Err(Error::config(format!("{model} fit: {} input rows but {} output rows", x.nrows(), y.nrows())));
    }
    if y.ncols() == 0 {
        return Err(Error::config(format!("{model} fit: no output columns")));
    }
    if let Some(((row, col), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::config(format!("{model} fit: input row {row}, column {col} is {v}")));
    }
    if let Some(((row, col), v)) = y.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::config(format!("{model} fit: output row {row}, column {col} is {v}")));
    }
    Ok(())
}

/// Rejects prediction inputs whose width differs from the training inputs'.
fn check_width(model: &str, d_in: usize, x: &Array2<f64>) -> Result<()> {
    if x.ncols() != d_in {
        return Err(Error::config(format!("{model} predict: inputs of width {d_in} expected, got {}", x.ncols())));
    }
    Ok(())
}

/// `value` must be finite and > 0.
fn positive(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::config(format!("{name} must be > 0 and finite, but is {value}")))
    }
}

/// `value` must be finite and >= 0.
fn non_negative(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::config(format!("{name} must be >= 0 and finite, but is {value}")))
    }
}

// Tests
// ---------------------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::logistic::Bins;
    use super::*;
    use crate::simulator::{Simulator, SimulatorParams};
    use ndarray::{ArrayView1, Axis};
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
        pred.iter().zip(truth).map(|(p, t)| (p - t).powi(2)).sum::<f64>() / pred.len() as f64
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
        let y = xt.map_axis(Axis(1), |r| 2.0 * r[0] - r[1] + 5.0).insert_axis(Axis(1));
        let model = RidgeConfig { penalty: 0.0, ..Default::default() }.fit_ridge(&xt, &y).unwrap();
        assert!((model.intercept[0] - 5.0).abs() < 1e-2, "intercept {}", model.intercept[0]);
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
            assert!(pred.column(j).iter().all(|&p| p >= lo - 1e-12 && p <= hi + 1e-12));
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
        assert_eq!(bins.means.len(), 3, "0 and two quantile bins of the nonzero 20%");
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
            Box::new(SvrConfig { max_train_rows: 300, ..Default::default() }),
            Box::new(RidgeConfig::default()),
            Box::new(LogisticConfig::default()),
            Box::new(ForestConfig { trees: 15, ..Default::default() }),
        ];
        for config in &configs {
            let a = config.fit(&xt, &yt, 42).unwrap().predict(&xv).unwrap();
            let b = config.fit(&xt, &yt, 42).unwrap().predict(&xv).unwrap();
            assert_eq!(a, b, "{} is not deterministic", config.name());
        }
        // The seed does pick the SVR subsample.
        let svr = SvrConfig { max_train_rows: 300, ..Default::default() };
        let c = svr.fit(&xt, &yt, 43).unwrap().predict(&xv).unwrap();
        assert_ne!(svr.fit(&xt, &yt, 42).unwrap().predict(&xv).unwrap(), c);
        // And the forest's bootstraps and split candidates.
        let forest = ForestConfig { trees: 15, features_per_split: Some(2), ..Default::default() };
        let a = forest.fit(&xt, &yt, 42).unwrap().predict(&xv).unwrap();
        assert_eq!(a, forest.fit(&xt, &yt, 42).unwrap().predict(&xv).unwrap());
        assert_ne!(a, forest.fit(&xt, &yt, 43).unwrap().predict(&xv).unwrap());
    }

    #[test]
    fn svr_subsample_respects_max_train_rows() {
        let (xt, yt, xv, _) = split();
        let model = SvrConfig { max_train_rows: 50, ..Default::default() }.fit_svr(&xt, &yt, 3).unwrap();
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
            Box::new(ForestConfig { trees: 5, ..Default::default() }),
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
        let err = SvrConfig { c: -1.0, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(err.contains("svr.c") && err.contains("-1"), "{err}");
        let (xt, yt, _, _) = split();
        assert!(SvrConfig { c: -1.0, ..Default::default() }.fit(&xt, &yt, 0).is_err());
    }

    #[test]
    fn rejects_one_bin() {
        let err = LogisticConfig { bins: 1, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(err.contains("logistic.bins") && err.contains('1'), "{err}");
        let (xt, yt, _, _) = split();
        assert!(LogisticConfig { bins: 1, ..Default::default() }.fit(&xt, &yt, 0).is_err());
    }

    #[test]
    fn rejects_other_bad_hyperparameters_and_data() {
        let bad = [
            SvrConfig { epsilon: -0.1, ..Default::default() }.validate(),
            SvrConfig { kernel_width: 0.0, ..Default::default() }.validate(),
            SvrConfig { max_train_rows: 1, ..Default::default() }.validate(),
            SvrConfig { c: f64::NAN, ..Default::default() }.validate(),
            RidgeConfig { penalty: -1.0, ..Default::default() }.validate(),
            RidgeConfig { max_iterations: 0, ..Default::default() }.validate(),
            LogisticConfig { max_iterations: 0, ..Default::default() }.validate(),
            LogisticConfig { alpha: -1.0, ..Default::default() }.validate(),
            ForestConfig { trees: 0, ..Default::default() }.validate(),
            ForestConfig { max_depth: Some(0), ..Default::default() }.validate(),
            ForestConfig { min_samples_leaf: 0, ..Default::default() }.validate(),
            ForestConfig { min_samples_split: 1, ..Default::default() }.validate(),
            ForestConfig { features_per_split: Some(0), ..Default::default() }.validate(),
            ForestConfig { max_train_rows: Some(1), ..Default::default() }.validate(),
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
        assert_eq!(svr, SvrConfig { c: 2.0, ..Default::default() });
        assert!(serde_json::from_str::<RidgeConfig>(r#"{"alpha": 1.0}"#).is_err());
        let logistic: LogisticConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(logistic, LogisticConfig::default());
        let forest: ForestConfig = serde_json::from_str(r#"{"trees": 5, "max_depth": 8}"#).unwrap();
        assert_eq!(forest, ForestConfig { trees: 5, max_depth: Some(8), ..Default::default() });
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
        let config = ForestConfig { trees: 30, ..Default::default() };
        let model = config.fit_forest(&xt.to_owned(), &yt.to_owned(), 5).unwrap();
        assert_eq!(model.train_rows(), 1000);
        let pred = model.predict(&xv.to_owned()).unwrap();
        assert_eq!(pred.dim(), (200, 2));
        for j in 0..2 {
            let err = mse(pred.column(j), yv.column(j));
            let var = variance(yv.column(j));
            assert!(err < 0.5 * var, "forest output {j}: mse {err}, variance {var}");
        }
        // Averages of bootstrap means stay within the training targets' range.
        assert!(pred.column(1).iter().all(|&p| (0.0..=1.0).contains(&p)));
        // Ridge cannot fit these: the forest beats it by far on both outputs.
        let ridge = RidgeConfig::default().fit(&xt.to_owned(), &yt.to_owned(), 0).unwrap();
        let ridge_pred = ridge.predict(&xv.to_owned()).unwrap();
        for j in 0..2 {
            assert!(mse(pred.column(j), yv.column(j)) < 0.5 * mse(ridge_pred.column(j), yv.column(j)));
        }
    }

    #[test]
    fn forest_subsample_and_split_candidates_follow_the_config() {
        let (xt, yt, xv, _) = split();
        let model =
            ForestConfig { trees: 5, max_train_rows: Some(60), max_depth: Some(3), features_per_split: Some(1), ..Default::default() }
                .fit_forest(&xt, &yt, 3)
                .unwrap();
        assert_eq!(model.train_rows(), 60);
        let pred = model.predict(&xv).unwrap();
        assert_eq!(pred.dim(), (xv.nrows(), 2));
        assert!(pred.iter().all(|p| p.is_finite()));
        let err = ForestConfig { features_per_split: Some(4), ..Default::default() }
            .fit(&xt, &yt, 0)
            .err()
            .expect("4 split candidates of 3 inputs")
            .to_string();
        assert!(err.contains("forest.features_per_split") && err.contains('3'), "{err}");
        assert_eq!(model.predict(&xv.slice(ndarray::s![..0, ..]).to_owned()).unwrap().dim(), (0, 2));
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
                let rows: Vec<Vec<f64>> =
                    text.lines().skip(1).take(n).map(|l| l.split(',').take(d + 2).map(|v| v.parse().unwrap()).collect()).collect();
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
            println!("svr output {j}: {} rows, fit {secs:.2} s, {support} support vectors", model.train_rows());
        }
        let configs: Vec<Box<dyn SimulatorParams>> =
            vec![Box::new(config), Box::new(RidgeConfig::default()), Box::new(LogisticConfig::default())];
        for config in &configs {
            let start = Instant::now();
            let model = config.fit(&xt, &yt, 0).unwrap();
            let secs = start.elapsed().as_secs_f64();
            let pred = model.predict(&xv).unwrap();
            let errs: Vec<String> = (0..2).map(|j| format!("{:.3}", mse(pred.column(j), yv.column(j)))).collect();
            println!("{}: fit {secs:.2} s, held-out mse (z units) {errs:?}", config.name());
        }
    }
}

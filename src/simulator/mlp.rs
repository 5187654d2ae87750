//! The paper's simulation model: an MLP 9 -> 512 -> 512 -> 512 -> 2 with ReLU, trained with
//! Adam (no weight decay) on minibatches, stopped early on a held-out slice of the training
//! split. Weights are initialised from our own seeded generator (Candle's CPU generator
//! cannot be seeded), walking the variables in name order.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{linear, Linear, Module, Optimizer, VarBuilder, VarMap};
use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Simulator, SimulatorParams};
use crate::dense::{self, Mat};
use crate::error::{Error, Result};
pub(crate) use crate::nn::candle_error;
use crate::nn::{init_uniform_fan_in, sorted_vars, Values};

/// Hyperparameters of the MLP simulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpConfig {
    /// Widths of the hidden layers (the paper: three of 512).
    pub hidden: Vec<usize>,
    /// Adam learning rate (the paper: 1e-6 to 1e-5; see docs/deviations.md).
    pub learning_rate: f64,
    /// Rows per minibatch.
    pub batch_size: usize,
    /// Upper bound on training epochs.
    pub max_epochs: usize,
    /// Stop after this many epochs without a better validation loss; keep the best weights.
    pub patience: usize,
    /// Share of the training split held out for early stopping.
    pub validation_fraction: f64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            hidden: vec![512, 512, 512],
            learning_rate: 1e-3,
            batch_size: 256,
            max_epochs: 30,
            patience: 5,
            validation_fraction: 0.1,
        }
    }
}

impl MlpConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(m));
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return bad(format!("mlp.hidden must list positive widths, but is {:?}", self.hidden));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!("mlp.learning_rate must be > 0, but is {}", self.learning_rate));
        }
        if self.batch_size == 0 || self.max_epochs == 0 {
            return bad("mlp.batch_size and mlp.max_epochs must be >= 1".into());
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return bad(format!("mlp.validation_fraction must be in (0, 1), but is {}", self.validation_fraction));
        }
        Ok(())
    }

    /// Trains an MLP and returns it with its loss history.
    pub fn train(&self, x: &Array2<f64>, y: &Array2<f64>, seed: u64) -> Result<MlpSimulator> {
        self.validate()?;
        let (n, d_in) = x.dim();
        let d_out = y.ncols();
        if n < 2 || y.nrows() != n {
            return Err(Error::config(format!("mlp: need >= 2 training rows with targets, got {n} and {}", y.nrows())));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let net = Mlp::new(d_in, &self.hidden, d_out, rng.random())?;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let n_val = ((n as f64 * self.validation_fraction).round() as usize).clamp(1, n - 1);
        let (val_rows, fit_rows) = order.split_at(n_val);
        let device = Device::Cpu;
        let tensor = |a: &Array2<f64>, rows: &[usize]| -> Result<Tensor> {
            let d = a.ncols();
            let mut v = Vec::with_capacity(rows.len() * d);
            for &r in rows {
                v.extend(a.row(r).iter().map(|&x| x as f32));
            }
            Tensor::from_vec(v, (rows.len(), d), &device).map_err(candle_error)
        };
        let (x_fit, y_fit) = (tensor(x, fit_rows)?, tensor(y, fit_rows)?);
        let (x_val, y_val) = (tensor(x, val_rows)?, tensor(y, val_rows)?);
        let params = candle_nn::ParamsAdamW { lr: self.learning_rate, weight_decay: 0.0, ..Default::default() };
        let mut adam = crate::optim::FusedAdamW::new(net.varmap.all_vars(), params).map_err(candle_error)?;

        let mut best = (f64::INFINITY, net.snapshot()?);
        let mut history = Vec::new();
        let mut since_best = 0;
        let mut batch_order: Vec<u32> = (0..fit_rows.len() as u32).collect();
        for epoch in 0..self.max_epochs {
            batch_order.shuffle(&mut rng);
            let mut train_loss = 0.0;
            for chunk in batch_order.chunks(self.batch_size) {
                let idx = Tensor::from_slice(chunk, chunk.len(), &device).map_err(candle_error)?;
                let xb = x_fit.index_select(&idx, 0).map_err(candle_error)?;
                let yb = y_fit.index_select(&idx, 0).map_err(candle_error)?;
                let loss = candle_nn::loss::mse(&net.forward(&xb)?, &yb).map_err(candle_error)?;
                adam.backward_step(&loss).map_err(candle_error)?;
                train_loss += loss.to_scalar::<f32>().map_err(candle_error)? as f64 * chunk.len() as f64;
            }
            train_loss /= fit_rows.len() as f64;
            let val_loss =
                candle_nn::loss::mse(&net.forward(&x_val)?, &y_val).and_then(|l| l.to_scalar::<f32>()).map_err(candle_error)? as f64;
            history.push(EpochLoss { epoch, train_loss, val_loss });
            if val_loss < best.0 {
                best = (val_loss, net.snapshot()?);
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= self.patience {
                    break;
                }
            }
        }
        net.restore(&best.1)?;
        Ok(MlpSimulator { net, history })
    }
}

impl SimulatorParams for MlpConfig {
    fn name(&self) -> &'static str {
        "mlp"
    }
    fn fit(&self, x: &Array2<f64>, y: &Array2<f64>, seed: u64) -> Result<Box<dyn Simulator>> {
        Ok(Box::new(self.train(x, y, seed)?))
    }
}

/// Mean squared error per epoch, on the minibatches and on the held-out slice.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EpochLoss {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
}

/// A plain feed-forward network with named layers `fc0`, `fc1`, ... (ReLU between).
pub struct Mlp {
    varmap: VarMap,
    layers: Vec<Linear>,
    pub d_in: usize,
    pub d_out: usize,
}

impl Mlp {
    /// Builds the network and initialises it from `seed`: every weight and bias uniform in
    /// +-1/sqrt(fan_in) (PyTorch's default for linear layers), variables in name order.
    pub fn new(d_in: usize, hidden: &[usize], d_out: usize, seed: u64) -> Result<Mlp> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let widths: Vec<usize> = std::iter::once(d_in).chain(hidden.iter().copied()).chain([d_out]).collect();
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| linear(w[0], w[1], vb.pp(format!("fc{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(candle_error)?;
        let net = Mlp { varmap, layers, d_in, d_out };
        init_uniform_fan_in(&net.varmap, seed)?;
        Ok(net)
    }

    fn sorted_vars(&self) -> Vec<(String, candle_core::Var)> {
        sorted_vars(&self.varmap)
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h).map_err(candle_error)?;
            if i + 1 < self.layers.len() {
                h = h.relu().map_err(candle_error)?;
            }
        }
        Ok(h)
    }

    /// [`Mlp::forward`] of `rows` rows (row-major `x`) on plain slices, with the same bits
    /// (tested): the products read the weights where they lie (see `dense::linear`).
    pub fn forward_small(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let mut h = x.to_vec();
        let mut width = self.d_in;
        for (i, layer) in self.layers.iter().enumerate() {
            let bias = layer.bias().ok_or_else(|| Error::config("mlp layers have biases".to_string()))?;
            let (w, b) = (Values::of(layer.weight()).map_err(candle_error)?, Values::of(bias).map_err(candle_error)?);
            h = dense::linear(Mat::new(&h, rows, width), w.get(), b.get(), i + 1 < self.layers.len());
            width = b.get().len();
        }
        Ok(h)
    }

    fn snapshot(&self) -> Result<Vec<(String, Tensor)>> {
        self.sorted_vars().into_iter().map(|(k, v)| Ok((k, v.as_tensor().copy().map_err(candle_error)?))).collect()
    }

    fn restore(&self, snapshot: &[(String, Tensor)]) -> Result<()> {
        let data = self.varmap.data().lock().expect("varmap lock");
        for (name, t) in snapshot {
            if let Some(var) = data.get(name) {
                var.set(t).map_err(candle_error)?;
            }
        }
        Ok(())
    }

    /// Saves the weights as safetensors, atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let tmp = path.with_extension(format!("safetensors.{}.tmp", std::process::id()));
        self.varmap.save(&tmp).map_err(|e| Error::file(&tmp, format!("cannot save weights: {e}")))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming {}", tmp.display()), e))
    }

    /// Loads a network saved by [`Mlp::save`]; the architecture comes from the tensor
    /// shapes and must take `d_in` inputs and give `d_out` outputs.
    pub fn load(path: &Path, d_in: usize, d_out: usize) -> Result<Mlp> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| Error::file(path, format!("not a readable safetensors file: {e}")))?;
        let mut widths = Vec::new();
        for i in 0.. {
            let (Some(w), Some(b)) = (tensors.get(&format!("fc{i}.weight")), tensors.get(&format!("fc{i}.bias"))) else { break };
            let dims = w.dims();
            if dims.len() != 2 || b.dims() != [dims[0]] || widths.last().is_some_and(|&prev| prev != dims[1]) {
                return Err(Error::file(path, format!("layer fc{i} has inconsistent shapes {:?} and {:?}", dims, b.dims())));
            }
            for (name, t) in [("weight", w), ("bias", b)] {
                let values = t.flatten_all().and_then(|t| t.to_dtype(DType::F32)).and_then(|t| t.to_vec1::<f32>());
                let values = values.map_err(|e| Error::file(path, format!("layer fc{i}.{name}: {e}")))?;
                if let Some(k) = values.iter().position(|x| !x.is_finite()) {
                    return Err(Error::file(
                        path,
                        format!("layer fc{i}.{name}: value {k} is {} (a corrupted or diverged model)", values[k]),
                    ));
                }
            }
            if widths.is_empty() {
                widths.push(dims[1]);
            }
            widths.push(dims[0]);
        }
        if widths.len() < 2 {
            return Err(Error::file(path, "no layers fc0.weight / fc0.bias found"));
        }
        if widths[0] != d_in || *widths.last().unwrap_or(&0) != d_out {
            return Err(Error::file(
                path,
                format!(
                    "the saved network maps {} inputs to {} outputs, but {d_in} -> {d_out} are expected",
                    widths[0],
                    widths[widths.len() - 1]
                ),
            ));
        }
        let net = Mlp::new(d_in, &widths[1..widths.len() - 1], d_out, 0)?;
        let data = net.varmap.data().lock().expect("varmap lock");
        for (name, var) in data.iter() {
            let t = tensors.get(name).ok_or_else(|| Error::file(path, format!("missing tensor {name}")))?;
            let t = t.to_dtype(DType::F32).map_err(candle_error)?;
            var.set(&t).map_err(|e| Error::file(path, format!("tensor {name}: {e}")))?;
        }
        drop(data);
        Ok(net)
    }
}

/// A trained MLP simulator.
pub struct MlpSimulator {
    pub net: Mlp,
    pub history: Vec<EpochLoss>,
}

/// Rows per forward pass when predicting: large enough to keep the matmuls efficient.
const PREDICT_CHUNK: usize = 8192;

/// Rows up to which a prediction runs on plain slices ([`Mlp::forward_small`]). An
/// environment step predicts one row per service, and through candle each 512 x 512 layer
/// would first be copied (packed) by the product: a tenth of a five-service DQN step (perf).
const SMALL_BATCH: usize = 64;

impl Simulator for MlpSimulator {
    fn name(&self) -> &'static str {
        "mlp"
    }
    fn predict(&self, x: &Array2<f64>) -> Result<Array2<f64>> {
        let (n, d) = x.dim();
        if d != self.net.d_in {
            return Err(Error::config(format!("mlp expects {} inputs per row, got {d}", self.net.d_in)));
        }
        let mut out = Vec::with_capacity(n * self.net.d_out);
        let flat: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        for chunk in flat.chunks(PREDICT_CHUNK * d) {
            let rows = chunk.len() / d;
            if rows <= SMALL_BATCH {
                out.extend(self.net.forward_small(chunk, rows)?.into_iter().map(f64::from));
                continue;
            }
            let t = Tensor::from_slice(chunk, (rows, d), &Device::Cpu).map_err(candle_error)?;
            let y = self.net.forward(&t)?.flatten_all().map_err(candle_error)?.to_vec1::<f32>().map_err(candle_error)?;
            out.extend(y.into_iter().map(f64::from));
        }
        Array2::from_shape_vec((n, self.net.d_out), out).map_err(|e| Error::config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize, seed: u64) -> (Array2<f64>, Array2<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x: Array2<f64> = Array2::from_shape_fn((n, 3), |_| rng.random_range(-1.0..1.0));
        let y = Array2::from_shape_fn((n, 2), |(i, j)| if j == 0 { x[[i, 0]] * x[[i, 1]] } else { x[[i, 2]].abs() });
        (x, y)
    }

    fn small() -> MlpConfig {
        MlpConfig { hidden: vec![32, 32], max_epochs: 40, batch_size: 32, learning_rate: 3e-3, patience: 40, ..Default::default() }
    }

    /// The slice path gives candle's bits on the Table 4 architecture, for one row, a
    /// step's five, and the largest small batch.
    #[test]
    fn small_batches_give_the_same_bits_as_candle() {
        let net = Mlp::new(9, &[512, 512, 512], 2, 7).unwrap();
        for rows in [1, 5, 37, SMALL_BATCH] {
            let mut rng = ChaCha8Rng::seed_from_u64(rows as u64);
            let x: Vec<f32> = (0..rows * 9).map(|_| rng.random_range(-2.0..2.0)).collect();
            let t = Tensor::from_slice(&x, (rows, 9), &Device::Cpu).unwrap();
            let reference = net.forward(&t).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let small = net.forward_small(&x, rows).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
            assert_eq!(bits(&small), bits(&reference), "{rows} rows");
        }
    }

    #[test]
    fn learns_a_nonlinear_function() {
        let (x, y) = toy(600, 1);
        let sim = small().train(&x, &y, 7).unwrap();
        let pred = sim.predict(&x).unwrap();
        let mse = (&pred - &y).mapv(|v| v * v).mean().unwrap();
        let var = y.var(0.0);
        assert!(mse < 0.2 * var, "mse {mse} vs variance {var}");
        assert!(sim.history.last().unwrap().train_loss < sim.history[0].train_loss);
    }

    #[test]
    fn same_seed_same_weights_and_predictions() {
        let (x, y) = toy(200, 2);
        let cfg = MlpConfig { max_epochs: 3, ..small() };
        let a = cfg.train(&x, &y, 5).unwrap().predict(&x).unwrap();
        let b = cfg.train(&x, &y, 5).unwrap().predict(&x).unwrap();
        let c = cfg.train(&x, &y, 6).unwrap().predict(&x).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn init_is_uniform_within_the_fan_in_bound() {
        let net = Mlp::new(9, &[512], 2, 3).unwrap();
        for (name, var) in net.sorted_vars() {
            let v: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let bound = if name.starts_with("fc0") { 1.0 / 3.0 } else { 1.0 / 512f32.sqrt() };
            assert!(v.iter().all(|x| x.abs() <= bound), "{name}");
        }
    }

    #[test]
    fn save_load_round_trip_and_shape_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let (x, y) = toy(100, 3);
        let sim = MlpConfig { max_epochs: 2, ..small() }.train(&x, &y, 1).unwrap();
        sim.net.save(&path).unwrap();
        let back = MlpSimulator { net: Mlp::load(&path, 3, 2).unwrap(), history: vec![] };
        assert_eq!(sim.predict(&x).unwrap(), back.predict(&x).unwrap());
        let err = Mlp::load(&path, 9, 2).err().unwrap().to_string();
        assert!(err.contains("m.safetensors") && err.contains("3 inputs"), "{err}");
    }

    #[test]
    fn rejects_a_corrupt_safetensors_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        std::fs::write(&path, b"not a safetensors file at all").unwrap();
        let err = Mlp::load(&path, 9, 2).err().unwrap().to_string();
        assert!(err.contains("bad.safetensors") && err.contains("safetensors"), "{err}");
    }

    #[test]
    fn rejects_zero_learning_rate() {
        let err = MlpConfig { learning_rate: 0.0, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(err.contains("learning_rate"), "{err}");
    }
}

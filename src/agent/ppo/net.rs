//! One agent's actor-critic: stable-baselines3's `MlpPolicy` for a discrete action space.
//!
//! The observation goes through the shared layers (`shared{i}`, none by default), then
//! through the policy's layers (`pi{i}`) to the logits (`pi_out`) and through the value's
//! layers (`vf{i}`) to the value (`vf_out`); every hidden layer is followed by tanh. The
//! default of SB3 1.8 and later is `dict(pi=[64, 64], vf=[64, 64])` (no shared layer); SB3
//! 1.7's plain `net_arch` list (seed 002's `[64, 64, 64, 64]`) is shared layers with empty
//! pi and vf.
//!
//! Initialisation ([`ActorCritic::init_orthogonal`]) is SB3's `ortho_init`: every weight
//! orthogonal (as `torch.nn.init.orthogonal_`), with gain sqrt(2) for hidden layers, 0.01 for
//! the policy output and 1 for the value output, and every bias 0; the Gaussian draws come
//! from our own seeded generator, variable by variable in name order (see [`crate::nn`]).

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{linear, Linear, Module, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::error::Result;
use crate::nn::{candle_error, sorted_vars};

/// Widths of the hidden layers: shared by actor and critic, then each one's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetArch {
    pub shared: Vec<usize>,
    pub policy: Vec<usize>,
    pub value: Vec<usize>,
}

/// An agent's policy and value networks, with named variables (see the module documentation).
pub struct ActorCritic {
    pub varmap: VarMap,
    shared: Vec<Linear>,
    policy: Vec<Linear>,
    policy_out: Linear,
    value: Vec<Linear>,
    value_out: Linear,
    input: usize,
}

/// Hidden layers `{prefix}{i}` from width `input`; returns them and the last width.
fn hidden_layers(vb: &VarBuilder, prefix: &str, input: usize, widths: &[usize]) -> candle_core::Result<(Vec<Linear>, usize)> {
    let mut layers = Vec::with_capacity(widths.len());
    let mut last = input;
    for (i, &w) in widths.iter().enumerate() {
        layers.push(linear(last, w, vb.pp(format!("{prefix}{i}")))?);
        last = w;
    }
    Ok((layers, last))
}

/// Each layer followed by tanh.
fn through(layers: &[Linear], x: &Tensor) -> candle_core::Result<Tensor> {
    let mut h = x.clone();
    for layer in layers {
        h = layer.forward(&h)?.tanh()?;
    }
    Ok(h)
}

impl ActorCritic {
    /// A network for observations of `input` values and `actions` discrete actions. The
    /// weights are candle's until [`ActorCritic::init_orthogonal`].
    pub fn new(input: usize, actions: usize, arch: &NetArch) -> Result<ActorCritic> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let build = || -> candle_core::Result<ActorCritic> {
            let (shared, features) = hidden_layers(&vb, "shared", input, &arch.shared)?;
            let (policy, latent_pi) = hidden_layers(&vb, "pi", features, &arch.policy)?;
            let (value, latent_vf) = hidden_layers(&vb, "vf", features, &arch.value)?;
            let policy_out = linear(latent_pi, actions, vb.pp("pi_out"))?;
            let value_out = linear(latent_vf, 1, vb.pp("vf_out"))?;
            Ok(ActorCritic { varmap: varmap.clone(), shared, policy, policy_out, value, value_out, input })
        };
        build().map_err(candle_error)
    }

    pub fn sorted_vars(&self) -> Vec<(String, Var)> {
        sorted_vars(&self.varmap)
    }

    pub fn input(&self) -> usize {
        self.input
    }

    /// The logits (rows x actions) and values (rows) of a batch of observations (rows x input).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let features = through(&self.shared, x)?;
        let logits = self.policy_out.forward(&through(&self.policy, &features)?)?;
        let values = self.value_out.forward(&through(&self.value, &features)?)?.squeeze(D::Minus1)?;
        Ok((logits, values))
    }

    /// The logits alone (rows x actions).
    pub fn logits(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.policy_out.forward(&through(&self.policy, &through(&self.shared, x)?)?)
    }

    /// The values alone (rows).
    pub fn values(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.value_out.forward(&through(&self.value, &through(&self.shared, x)?)?)?.squeeze(D::Minus1)
    }

    /// The values of observations given as flat rows, as f64.
    pub fn values_of(&self, rows: &[f32]) -> Result<Vec<f64>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let x = Tensor::from_slice(rows, (rows.len() / self.input, self.input), &Device::Cpu).map_err(candle_error)?;
        let v = self.values(&x).and_then(|v| v.to_vec1::<f32>()).map_err(candle_error)?;
        Ok(v.into_iter().map(f64::from).collect())
    }

    /// SB3's orthogonal initialisation (see the module documentation), drawn from `seed`.
    pub fn init_orthogonal(&self, seed: u64) -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for (name, var) in self.sorted_vars() {
            let values = match name.rsplit_once('.') {
                Some((layer, "weight")) => {
                    let (rows, cols) = var.dims2().map_err(candle_error)?;
                    let gain = match layer {
                        "pi_out" => 0.01,
                        "vf_out" => 1.0,
                        _ => std::f64::consts::SQRT_2,
                    };
                    orthogonal(rows, cols, gain, &mut rng)
                }
                _ => vec![0.0; var.elem_count()],
            };
            var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).map_err(candle_error)?).map_err(candle_error)?;
        }
        Ok(())
    }
}

/// A `rows` x `cols` matrix (row-major) with orthonormal rows or columns (whichever are
/// fewer), times `gain`: `torch.nn.init.orthogonal_`'s construction. A Gaussian matrix is
/// drawn row by row, transposed if it is wide, and its columns are orthonormalised by
/// Gram-Schmidt, each column twice against the earlier ones (in f64). That is the Q of a QR
/// decomposition whose R has a positive diagonal, which is what torch gets from its
/// Householder QR after multiplying Q by the signs of R's diagonal: a uniformly (Haar)
/// distributed orthogonal matrix. Gaussian columns are independent with probability one;
/// a column that is not (norm below 1e-12) is left at zero.
pub fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let drawn: Vec<f64> = (0..rows * cols).map(|_| rng.sample(StandardNormal)).collect();
    let wide = rows < cols;
    // The tall matrix (m x k, m >= k) as k columns of length m.
    let (m, k) = if wide { (cols, rows) } else { (rows, cols) };
    let mut columns: Vec<Vec<f64>> =
        (0..k).map(|j| (0..m).map(|i| if wide { drawn[j * cols + i] } else { drawn[i * cols + j] }).collect()).collect();
    for j in 0..k {
        let (done, rest) = columns.split_at_mut(j);
        let col = &mut rest[0];
        for _ in 0..2 {
            for q in done.iter() {
                let dot: f64 = q.iter().zip(col.iter()).map(|(a, b)| a * b).sum();
                col.iter_mut().zip(q).for_each(|(c, qi)| *c -= dot * qi);
            }
        }
        let norm = col.iter().map(|c| c * c).sum::<f64>().sqrt();
        let scale = if norm > 1e-12 { 1.0 / norm } else { 0.0 };
        col.iter_mut().for_each(|c| *c *= scale);
    }
    let mut out = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let q = if wide { columns[r][c] } else { columns[c][r] };
            out[r * cols + c] = (gain * q) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// W W^T (wide) or W^T W (tall) is gain^2 times the identity.
    fn check_orthogonal(rows: usize, cols: usize, gain: f64, w: &[f32]) {
        let (k, m) = (rows.min(cols), rows.max(cols));
        let at = |a: usize, i: usize| if rows < cols { f64::from(w[a * cols + i]) } else { f64::from(w[i * cols + a]) };
        for a in 0..k {
            for b in 0..k {
                let dot: f64 = (0..m).map(|i| at(a, i) * at(b, i)).sum();
                let expect = if a == b { gain * gain } else { 0.0 };
                assert!((dot - expect).abs() < 1e-5 * gain * gain, "{rows}x{cols} ({a}, {b}): {dot}");
            }
        }
    }

    #[test]
    fn orthogonal_matrices_have_orthonormal_rows_or_columns() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (rows, cols) in [(64, 7), (3, 64), (64, 64), (1, 64), (5, 1)] {
            let w = orthogonal(rows, cols, 2f64.sqrt(), &mut rng);
            check_orthogonal(rows, cols, 2f64.sqrt(), &w);
        }
        // Same seed, same matrix.
        let a = orthogonal(8, 5, 1.0, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(a, orthogonal(8, 5, 1.0, &mut ChaCha8Rng::seed_from_u64(3)));
    }

    #[test]
    fn init_uses_sb3_gains_and_zero_biases() {
        let arch = NetArch { shared: vec![16], policy: vec![8, 8], value: vec![8] };
        let net = ActorCritic::new(5, 3, &arch).unwrap();
        net.init_orthogonal(7).unwrap();
        let names: Vec<String> = net.sorted_vars().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names.len(), 2 * 6, "{names:?}");
        for (name, var) in net.sorted_vars() {
            let values = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            if name.ends_with(".bias") {
                assert!(values.iter().all(|&v| v == 0.0), "{name}");
                continue;
            }
            let (rows, cols) = var.dims2().unwrap();
            let gain = match name.as_str() {
                "pi_out.weight" => 0.01,
                "vf_out.weight" => 1.0,
                _ => 2f64.sqrt(),
            };
            check_orthogonal(rows, cols, gain, &values);
        }
        let x = Tensor::zeros((4, 5), DType::F32, &Device::Cpu).unwrap();
        let (logits, values) = net.forward(&x).unwrap();
        assert_eq!((logits.dims(), values.dims()), (&[4, 3][..], &[4][..]));
    }
}

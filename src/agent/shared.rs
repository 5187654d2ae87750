//! The paper's network for a group of agents (protocol.md section 5): one shared layer, the
//! trunk (`snet`: input -> hidden, ReLU), and a private head per agent (`pnet{n}`: hidden ->
//! hidden, ReLU -> outputs). A single agent is a group of one, so its network is the
//! protocol's input -> 512 -> 512 -> outputs. The outputs are whatever the algorithm needs:
//! Q values for DQN, logits for a policy.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{linear, Linear, Module, VarBuilder, VarMap};
use rayon::prelude::*;

use crate::error::Result;
use crate::nn::{candle_error, sorted_vars};

/// The trunk plus one head per agent, with named variables (`snet.*`, `pnet{n}.fc0/fc1.*`):
/// the names fix the order in which [`crate::nn::init_uniform_fan_in`] draws the weights.
pub struct SharedTrunkNet {
    pub varmap: VarMap,
    pub trunk: Linear,
    /// (hidden layer, output layer) of each agent's head.
    pub heads: Vec<(Linear, Linear)>,
    input: usize,
}

impl SharedTrunkNet {
    /// `outputs[n]` is the output width of agent n's head.
    pub fn new(input: usize, hidden: usize, outputs: &[usize]) -> Result<SharedTrunkNet> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let trunk = linear(input, hidden, vb.pp("snet")).map_err(candle_error)?;
        let heads = outputs
            .iter()
            .enumerate()
            .map(|(n, &a)| {
                let p = vb.pp(format!("pnet{n}"));
                Ok((linear(hidden, hidden, p.pp("fc0"))?, linear(hidden, a, p.pp("fc1"))?))
            })
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(candle_error)?;
        Ok(SharedTrunkNet { varmap, trunk, heads, input })
    }

    pub fn sorted_vars(&self) -> Vec<(String, Var)> {
        sorted_vars(&self.varmap)
    }

    /// Copies every variable of `other` (same shapes) into this network.
    pub fn copy_from(&self, other: &SharedTrunkNet) -> Result<()> {
        for ((_, dst), (_, src)) in self.sorted_vars().iter().zip(other.sorted_vars().iter()) {
            dst.set(src.as_tensor()).map_err(candle_error)?;
        }
        Ok(())
    }

    /// Outputs of agent `n`'s head for a batch of states (rows).
    pub fn forward(&self, n: usize, states: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.trunk.forward(states)?.relu()?;
        let (fc0, fc1) = &self.heads[n];
        fc1.forward(&fc0.forward(&h)?.relu()?)
    }

    /// The index of the largest output of every agent for one state each (`states[n]` for
    /// agent n; the first on ties): DQN's greedy action, a policy's mode.
    pub fn argmax_outputs(&self, states: &[Vec<f32>]) -> Result<Vec<usize>> {
        let flat: Vec<f32> = states.iter().flatten().copied().collect();
        let t = Tensor::from_vec(flat, (states.len(), self.input), &Device::Cpu).map_err(candle_error)?;
        let h = self.trunk.forward(&t).and_then(|h| h.relu()).map_err(candle_error)?;
        // Each agent's head on its own row, in parallel (one head's weights, 1 MB, each).
        (0..states.len())
            .into_par_iter()
            .map(|n| {
                let (fc0, fc1) = &self.heads[n];
                let q = h
                    .narrow(0, n, 1)
                    .and_then(|row| fc0.forward(&row))
                    .and_then(|x| x.relu())
                    .and_then(|x| fc1.forward(&x))
                    .and_then(|x| x.flatten_all())
                    .and_then(|x| x.to_vec1::<f32>())
                    .map_err(candle_error)?;
                Ok(argmax(&q))
            })
            .collect()
    }
}

/// The index of the largest value, the first on ties.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_equal_values() {
        assert_eq!(argmax(&[0.5, 2.0, 2.0, -1.0]), 1);
        assert_eq!(argmax(&[3.0]), 0);
    }

    #[test]
    fn variables_are_named_trunk_then_heads() {
        let net = SharedTrunkNet::new(3, 4, &[2, 5]).unwrap();
        let names: Vec<String> = net.sorted_vars().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names.len(), 2 + 2 * 4);
        assert!(names.contains(&"snet.weight".to_string()) && names.contains(&"pnet1.fc1.bias".to_string()), "{names:?}");
        let out = net.forward(1, &Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap()).unwrap();
        assert_eq!(out.dims(), &[2, 5]);
    }
}

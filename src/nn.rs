//! Small helpers shared by every Candle network of the crate (simulator MLP, Q networks).

use candle_core::{CpuStorage, Device, Layout, Storage, StorageRef, Tensor, Var};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

pub fn candle_error(e: candle_core::Error) -> Error {
    Error::config(format!("candle: {e}"))
}

/// The variables of a map in name order (a `VarMap` is a HashMap: its order is random).
pub fn sorted_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut vars: Vec<_> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Initialises every `<layer>.weight` and `<layer>.bias` uniformly in +-1/sqrt(fan_in)
/// (PyTorch's default for linear layers) from our own seeded generator, walking the
/// variables in name order: Candle's CPU generator cannot be seeded.
pub fn init_uniform_fan_in(varmap: &VarMap, seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let vars = sorted_vars(varmap);
    for (name, var) in &vars {
        let layer = name.rsplit_once('.').map_or(name.as_str(), |(p, _)| p);
        let fan_in = vars.iter().find(|(k, _)| *k == format!("{layer}.weight")).map_or(1, |(_, w)| w.dims()[1]);
        let bound = 1.0 / (fan_in as f32).sqrt();
        let values: Vec<f32> = (0..var.elem_count()).map(|_| rng.random_range(-bound..bound)).collect();
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).map_err(candle_error)?).map_err(candle_error)?;
    }
    Ok(())
}

/// Sets a variable to saved values (a checkpoint or a policy file), refusing any that is not
/// a finite number: a NaN weight makes every answer NaN, and an argmax over NaN picks an
/// action silently.
pub fn restore_var(name: &str, var: &Var, values: Vec<f32>) -> Result<()> {
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::config(format!("variable {name}: value {i} of {} is {v}, not a finite number", values.len())));
    }
    var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).map_err(candle_error)?).map_err(candle_error)
}

/// A contiguous f32 CPU tensor's values, borrowed for as long as this lives (a read lock
/// on its storage: no in-place op may write the tensor meanwhile).
pub struct Values<'a> {
    guard: StorageRef<'a>,
    start: usize,
    end: usize,
}

impl<'a> Values<'a> {
    pub fn of(t: &'a Tensor) -> candle_core::Result<Values<'a>> {
        let (guard, layout) = t.storage_and_layout();
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("the tensor is not contiguous");
        };
        if !matches!(&*guard, Storage::Cpu(CpuStorage::F32(_))) {
            candle_core::bail!("only f32 tensors on the CPU");
        }
        Ok(Values { guard, start, end })
    }

    pub fn get(&self) -> &[f32] {
        match &*self.guard {
            Storage::Cpu(CpuStorage::F32(data)) => &data[self.start..self.end],
            _ => unreachable!("checked in Values::of"),
        }
    }
}

/// The writable values of a contiguous f32 CPU storage, as an in-place op receives it.
pub fn values_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout) -> candle_core::Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("only f32 tensors on the CPU");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("the tensor is not contiguous");
    };
    Ok(&mut data[start..end])
}

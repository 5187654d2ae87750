//! Where trained MLP simulators live and how they come back: one file of weights per
//! (dataset, seed), `<dir>/<dataset>/mlp_seed<seed>.safetensors`, with the normalisers of its
//! training split beside it. Table 4 writes them; experiments that need a simulator load
//! one, or train and save it when it is missing.

use std::path::{Path, PathBuf};

use super::mlp::MlpConfig;
use super::{normalizer_path, ServiceModel};
use crate::data::Prepared;
use crate::error::Result;

/// The weights' path of a dataset's simulator of one seed.
pub fn mlp_path(dir: &Path, dataset: &str, seed: u64) -> PathBuf {
    dir.join(dataset).join(format!("mlp_seed{seed}.safetensors"))
}

/// Trains an MLP on a prepared split (`seed`: its weights and batches) and saves it at `path`.
/// The normalisers go first and the weights last, each file atomically: weights on disk
/// mean a complete simulator, so a run killed in between retrains instead of failing.
pub fn train_and_save(cfg: &MlpConfig, prep: &Prepared, seed: u64, path: &Path) -> Result<ServiceModel> {
    let sim = cfg.train(&prep.x_train, &prep.y_train, seed)?;
    prep.inputs.save_json(&normalizer_path(path, "inputs"))?;
    prep.outputs.save_json(&normalizer_path(path, "outputs"))?;
    sim.net.save(path)?;
    Ok(ServiceModel { model: Box::new(sim), inputs: prep.inputs.clone(), outputs: prep.outputs.clone() })
}

/// The simulator saved at `path`; when there is none, one trained with `cfg` and saved there
/// (`announce` is called first, to say so).
pub fn load_or_train(cfg: &MlpConfig, prep: &Prepared, seed: u64, path: &Path, announce: impl FnOnce()) -> Result<ServiceModel> {
    if path.exists() {
        return ServiceModel::load_mlp(path);
    }
    announce();
    train_and_save(cfg, prep, seed, path)
}

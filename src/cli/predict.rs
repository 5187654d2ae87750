//! `meshrl predict`: a trained simulator's predictions for a trace file, and its error.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use meshrl::data::TableSpec;

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A trained MLP simulator (`.safetensors`, with its normaliser JSON files beside it).
    pub model: PathBuf,
    /// A trace file in the model's schema (.csv or .parquet).
    pub trace: PathBuf,
    /// Print the first N predictions.
    #[arg(long, default_value_t = 5)]
    pub show: usize,
}

pub fn predict(args: &PredictArgs) -> Result<()> {
    let model = meshrl::simulator::ServiceModel::load_mlp(&args.model)?;
    let spec = TableSpec { features: model.inputs.names().to_vec(), targets: model.outputs.names().to_vec() };
    let table = meshrl::data::load_table(&args.trace, &spec)?;
    let pred = model.predict_raw(table.features())?;
    let k = spec.targets.len();
    let mut z_pred = pred.clone();
    let mut z_true = table.targets().to_vec();
    model.outputs.transform_rows(&mut z_pred);
    model.outputs.transform_rows(&mut z_true);
    println!("{} rows of {} predicted by {}", table.n_rows(), args.trace.display(), args.model.display());
    for (j, name) in spec.targets.iter().enumerate() {
        let mse: f64 = z_pred.iter().zip(&z_true).skip(j).step_by(k).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / table.n_rows() as f64;
        println!("  {name}: MSE {mse:.4} (z-scored with the model's training statistics)");
    }
    for i in 0..args.show.min(table.n_rows()) {
        let cells: Vec<String> = spec
            .targets
            .iter()
            .enumerate()
            .map(|(j, n)| format!("{n} {:.4} (measured {:.4})", pred[i * k + j], table.target_row(i)[j]))
            .collect();
        println!("  row {}: {}", i + 1, cells.join(", "));
    }
    Ok(())
}

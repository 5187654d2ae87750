//! The command line: one subcommand per step of the workflow.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::data::TableSpec;
use crate::emulator::calibration::{self, Distribution};
use crate::emulator::Scenario;
use crate::rules::{Load, TrafficRules};

#[derive(Parser, Debug)]
#[command(name = "meshrl", version, about = "Model-based RL for service-mesh fault resiliency (SFR2L)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate the datasets S1-S5 with the load-test emulator, from a dataset config.
    Generate(GenerateArgs),
    /// Run one load-test configuration many times on the emulator and print its distribution.
    Emulate(EmulateArgs),
    /// Print row count, per-column ranges and a failure-rate histogram of a trace file.
    Inspect(InspectArgs),
    /// Run an experiment described by a TOML file (e.g. experiments/table4.toml).
    Run(RunArgs),
    /// Predict a trace file's responses with a trained simulator and report its error.
    Predict(PredictArgs),
    /// Turn real load-test results (Fortio JSON plus each run's rules) into a trace CSV.
    #[command(subcommand)]
    Ingest(crate::ingest::IngestSource),
    /// Write a Table 5 cell's best loads as DestinationRule YAML and Fortio commands.
    Export(crate::export::ExportArgs),
    /// Compute a Table 5 cell's Val. from real Fortio runs of its exported pairs.
    Validate(crate::validate::ValidateArgs),
}

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

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The experiment file.
    pub config: PathBuf,
    /// Override a config field before validation, e.g. `--set seed=7 --set mlp.max_epochs=5`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Dataset config (TOML): seed, scenario, per-dataset ranges and row counts.
    #[arg(long, default_value = "configs/datasets.toml")]
    pub config: PathBuf,
    /// Write the files here instead of the config's `out_dir`.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Generate only these datasets (by name, e.g. `--only S1 --only S3`).
    #[arg(long)]
    pub only: Vec<String>,
    /// Generate only the first N rows of each dataset (a prefix of the full file).
    #[arg(long)]
    pub rows: Option<usize>,
}

#[derive(Args, Debug)]
pub struct EmulateArgs {
    #[arg(long, default_value_t = 1)]
    pub max_pending_requests: u32,
    #[arg(long, default_value_t = 1)]
    pub max_connections: u32,
    #[arg(long, default_value_t = 1)]
    pub max_requests_per_connection: u32,
    #[arg(long, default_value_t = 180.0)]
    pub ejection_time_s: f64,
    #[arg(long, default_value_t = 100.0)]
    pub max_ejection_percent: f64,
    #[arg(long, default_value_t = 1.0)]
    pub interval_s: f64,
    #[arg(long, default_value_t = 1)]
    pub consecutive_errors: u32,
    /// Fortio `-c`: concurrent connections.
    #[arg(long, default_value_t = 3)]
    pub threads: u32,
    /// Fortio `-n`: total calls.
    #[arg(long, default_value_t = 30)]
    pub calls: u32,
    /// Number of load tests (seeds) to run.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Scenario TOML (fields of the `[scenario]` table); defaults to the built-in scenario.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Override the scenario's injected upstream fault share (0 for the published runs).
    #[arg(long)]
    pub fault_share: Option<f64>,
    /// Also check every published run of Istio's circuit-breaking task.
    #[arg(long)]
    pub calibration: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A trace file (.csv or .parquet).
    pub file: PathBuf,
    /// Feature columns, when the file is not in the protocol schema (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub features: Vec<String>,
    /// Target columns, when the file is not in the protocol schema (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub targets: Vec<String>,
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(args) => crate::generate::run_cli(&args),
        Command::Emulate(args) => emulate(&args),
        Command::Run(args) => Ok(crate::experiment::run(&args.config, &args.overrides)?),
        Command::Predict(args) => predict(&args),
        Command::Ingest(source) => Ok(crate::ingest::run_cli(&source)?),
        Command::Export(args) => Ok(crate::export::run_cli(&args)?),
        Command::Validate(args) => Ok(crate::validate::run_cli(&args)?),
        Command::Inspect(args) => {
            let spec = if args.features.is_empty() && args.targets.is_empty() {
                TableSpec::default()
            } else {
                TableSpec { features: args.features.clone(), targets: args.targets.clone() }
            };
            let text = crate::inspect::inspect(&args.file, &spec)?;
            print!("{text}");
            Ok(())
        }
    }
}

fn emulate(args: &EmulateArgs) -> Result<()> {
    let mut scenario = match &args.scenario {
        Some(path) => crate::generate::load_scenario(path)?,
        None => Scenario::default(),
    };
    if let Some(f) = args.fault_share {
        scenario.fault_share = f;
    }
    scenario.validate().map_err(crate::Error::config)?;
    let rules = TrafficRules {
        max_pending_requests: args.max_pending_requests,
        max_connections: args.max_connections,
        max_requests_per_connection: args.max_requests_per_connection,
        ejection_time_s: args.ejection_time_s,
        max_ejection_percent: args.max_ejection_percent,
        interval_s: args.interval_s,
        consecutive_errors: args.consecutive_errors,
    };
    crate::generate::validate_rules(&rules, &Load { threads: args.threads, calls: args.calls })
        .map_err(crate::Error::config)
        .context("checking the command-line settings")?;
    let load = Load { threads: args.threads, calls: args.calls };
    let dist = calibration::distribution(&rules, &load, &scenario, args.runs, args.seed);
    println!(
        "{} runs of `fortio load -c {} -qps 0 -n {}` (seeds {}..{}), fault share {}:",
        args.runs,
        args.threads,
        args.calls,
        args.seed,
        args.seed + args.runs as u64 - 1,
        scenario.fault_share
    );
    print_distribution(&dist);
    let published: Vec<_> = calibration::PUBLISHED_RUNS
        .iter()
        .filter(|p| p.threads == args.threads && p.calls == args.calls && rules == calibration::calibration_rules())
        .collect();
    if !published.is_empty() {
        println!("\npublished real runs of this configuration (inside the 5-95 % band?):");
        for p in published {
            let inside = |x: f64, b: &calibration::Band| if b.contains(x) { "inside" } else { "OUTSIDE" };
            print!("  {:<34} 503 share {:>5.1} % ({})", p.source, 100.0 * p.failure_rate, inside(p.failure_rate, &dist.failure_rate));
            if let Some(q) = p.qps {
                print!(", qps {q:>4.0} ({})", inside(q, &dist.qps));
            }
            println!();
        }
    }
    if args.calibration {
        println!("\ncalibration: every published run against {} emulated runs (fault share 0):", args.runs);
        for check in calibration::check_published(&scenario, args.runs, args.seed) {
            let p = check.published;
            let misses = check.misses();
            println!(
                "  -c {} -n {:<3} {:<34} published 503 {:>5.1} %, emulated p05-p95 {:>5.1}-{:>5.1} %: {}",
                p.threads,
                p.calls,
                p.source,
                100.0 * p.failure_rate,
                100.0 * check.emulated.failure_rate.p05,
                100.0 * check.emulated.failure_rate.p95,
                if misses.is_empty() { "inside".to_string() } else { format!("OUTSIDE ({})", misses.join(", ")) }
            );
        }
    }
    Ok(())
}

fn print_distribution(d: &Distribution) {
    println!("  {:<18} {:>10} {:>10} {:>10} {:>10}", "quantity", "p05", "median", "p95", "mean");
    let rows = [
        ("503 share (%)", d.failure_rate, 100.0),
        ("qps", d.qps, 1.0),
        ("mean latency (ms)", d.latency_mean_ms, 1.0),
        ("503/s (reward)", d.reward, 1.0),
    ];
    for (name, b, k) in rows {
        println!("  {:<18} {:>10.1} {:>10.1} {:>10.1} {:>10.1}", name, k * b.p05, k * b.p50, k * b.p95, k * b.mean);
    }
}

fn predict(args: &PredictArgs) -> Result<()> {
    let model = crate::simulator::ServiceModel::load_mlp(&args.model)?;
    let spec = TableSpec { features: model.inputs.names().to_vec(), targets: model.outputs.names().to_vec() };
    let table = crate::data::load_table(&args.trace, &spec)?;
    let pred = model.predict_raw(table.features())?;
    let k = spec.targets.len();
    let mut z_pred = pred.clone();
    let mut z_true = table.targets().to_vec();
    model.outputs.transform_rows(&mut z_pred);
    model.outputs.transform_rows(&mut z_true);
    println!("{} rows of {} predicted by {}", table.n_rows(), args.trace.display(), args.model.display());
    for (j, name) in spec.targets.iter().enumerate() {
        let mse: f64 = z_pred.iter().zip(&z_true).skip(j).step_by(k).map(|(a, b)| (a - b).powi(2)).sum::<f64>()
            / table.n_rows() as f64;
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

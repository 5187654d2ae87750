//! The command line: one subcommand per step of the workflow. The clap types live here, on
//! the binary's side; each maps to the plain options of the library function it runs.

mod calibrate;
mod emulate;
mod mesh;
mod predict;
mod serve;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use meshrl::data::TableSpec;
use meshrl::experiment::{RunOptions, Stage};
use meshrl::export::ExportOptions;
use meshrl::generate::GenerateOptions;
use meshrl::ingest::FortioOptions;

use emulate::EmulateArgs;
use predict::PredictArgs;
use serve::ServeArgs;

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
    Emulate(Box<EmulateArgs>),
    /// Fit the emulator's scenario to a trace of your own Fortio runs (`--out scenario.toml`).
    Calibrate(Box<calibrate::CalibrateArgs>),
    /// Print row count, per-column ranges and a failure-rate histogram of a trace file.
    Inspect(InspectArgs),
    /// Run an experiment described by a TOML file (e.g. experiments/table4.toml).
    Run(RunArgs),
    /// Prepare a run spread over shards: the run directory and the simulators, once.
    Prepare(ExperimentArgs),
    /// Write an experiment's tables and figures from the cells its shards have finished.
    Report(ReportArgs),
    /// Predict a trace file's responses with a trained simulator and report its error.
    Predict(PredictArgs),
    /// Turn real load-test results (Fortio JSON plus each run's rules) into a trace CSV.
    #[command(subcommand)]
    Ingest(IngestSource),
    /// Write a Table 5 cell's best loads as DestinationRule YAML and Fortio commands.
    Export(ExportArgs),
    /// Compute a Table 5 cell's Val. from real Fortio runs of its exported pairs.
    Validate(ValidateArgs),
    /// Print the VirtualService and `kubectl scale` command that apply one load's row of a
    /// control policy file (`policies/.../*.csv` of a control run).
    ApplyPolicy(ApplyPolicyArgs),
    /// Serve a scaling policy over HTTP: `POST /predict` with the state as JSON (seed 004's
    /// fields) answers the action; `GET /healthz`. Stops gracefully on SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Service graphs in Isotope's format: `mesh tree` writes a generated tree.
    #[command(subcommand)]
    Mesh(mesh::MeshCommand),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(args) => meshrl::generate::run(&args.into()),
        Command::Emulate(args) => emulate::emulate(&args),
        Command::Calibrate(args) => calibrate::calibrate(&args),
        Command::Run(args) => {
            let stage = args.shard.as_deref().map_or(Ok(Stage::All), Stage::shard)?;
            let options = RunOptions { timing_snapshot: args.timing_snapshot, allow_long: args.yes };
            Ok(meshrl::experiment::run(&args.experiment.config, &args.experiment.overrides, stage, options)?)
        }
        Command::Prepare(args) => Ok(meshrl::experiment::run(&args.config, &args.overrides, Stage::Prepare, RunOptions::default())?),
        Command::Report(args) => {
            let options = RunOptions { timing_snapshot: args.timing_snapshot, allow_long: args.yes };
            Ok(meshrl::experiment::run(&args.experiment.config, &args.experiment.overrides, Stage::Report, options)?)
        }
        Command::Predict(args) => predict::predict(&args),
        Command::Serve(args) => serve::serve(&args),
        Command::Mesh(command) => mesh::run(&command),
        Command::Ingest(IngestSource::Fortio(args)) => Ok(meshrl::ingest::run_fortio(&args.into())?),
        Command::Export(args) => Ok(meshrl::export::run(&args.into())?),
        Command::Validate(args) => Ok(meshrl::validate::run(&args.fortio, args.scenario.as_deref())?),
        Command::ApplyPolicy(args) => {
            use meshrl::experiment::control::{apply, ControlConfig};
            // With the experiment's config: its cluster names, and its trace's loads to check
            // the policy's against.
            let (names, trace_loads) = match &args.config {
                Some(path) => {
                    let table = meshrl::experiment::load_experiment(path, &[])?;
                    let cfg = meshrl::experiment::parse_config::<ControlConfig>(table, path, &[], ControlConfig::validate)?;
                    let trace = meshrl::experiment::control::trace::ControlTrace::load(&cfg.trace)?;
                    (cfg.deploy, Some(trace.load_range()))
                }
                None => (apply::DeployNames::default(), None),
            };
            print!("{}", apply::render(&apply::read_row(&args.policy, args.load, trace_loads)?, &names)?);
            Ok(())
        }
        Command::Inspect(args) => {
            let spec = if args.features.is_empty() && args.targets.is_empty() {
                TableSpec::default()
            } else {
                TableSpec { features: args.features.clone(), targets: args.targets.clone() }
            };
            let text = meshrl::inspect::inspect(&args.file, &spec)?;
            print!("{text}");
            Ok(())
        }
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    /// Run only shard K of N (0-based): the cells whose index in table order is K modulo N,
    /// without the report. Run `meshrl prepare` first, `meshrl report` after all shards.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Also write the run's wall times to `timing.md`, a snapshot meant to be committed (every
    /// run writes them to `wall_time.md`, which git ignores).
    #[arg(long)]
    pub timing_snapshot: bool,
    /// Start the run even if its estimate (printed before it starts) is above 2 hours; the
    /// experiment file's `allow_long_run = true` does the same.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    /// Also write the cells' wall times to `timing.md` (see `run --timing-snapshot`).
    #[arg(long)]
    pub timing_snapshot: bool,
    /// Write the report even if its own work (the defender's exhaustive search) is estimated
    /// above 2 hours (see `run --yes`).
    #[arg(long)]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct ApplyPolicyArgs {
    /// A policy file with header `l,r,p,c,d` (optionally `,blocking`).
    pub policy: PathBuf,
    /// The offered load (req/s) whose row to apply.
    #[arg(long)]
    pub load: f64,
    /// The control experiment whose `[deploy]` names to use (default: service and deployment
    /// "compute", subsets "node1" and "node2", namespace "default").
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ExperimentArgs {
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

impl From<GenerateArgs> for GenerateOptions {
    fn from(a: GenerateArgs) -> Self {
        GenerateOptions { config: a.config, out_dir: a.out_dir, only: a.only, rows: a.rows }
    }
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

#[derive(Subcommand, Debug)]
pub enum IngestSource {
    /// Fortio JSON results (`fortio load -json`) plus the DestinationRule (and VirtualService) of each run.
    Fortio(FortioArgs),
}

#[derive(Args, Debug)]
pub struct FortioArgs {
    /// Directory of Fortio JSON results; each `<stem>.json` takes its rules from `<stem>.yaml`
    /// beside it (retries from `<stem>.virtual-service.yaml`, if there is one), or from a rule
    /// bundle's `destination-rule.yaml` in the directory, unless `--rules` is given.
    pub dir: PathBuf,
    /// Manifest CSV with a `result` column (JSON file name), the seven rule columns and any of
    /// the optional rule columns (http2_max_requests ... retry_backoff_ms).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// The trace CSV to write.
    #[arg(long)]
    pub out: PathBuf,
}

impl From<FortioArgs> for FortioOptions {
    fn from(a: FortioArgs) -> Self {
        FortioOptions { dir: a.dir, rules: a.rules, out: a.out }
    }
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A Table 5 cell file: `results/<run>/cells/<dataset>/<config>_seed<n>.json`.
    pub cell: PathBuf,
    /// How many of the best validated pairs to export.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Directory for `run_<i>.yaml` (and `run_<i>.virtual-service.yaml`) and `manifest.csv`.
    #[arg(long)]
    pub out: PathBuf,
    /// `spec.host` of the DestinationRules (and VirtualServices): the service under test.
    #[arg(long, default_value = "productpage")]
    pub host: String,
    /// The URL Fortio loads.
    #[arg(long, default_value = "http://productpage:9080/productpage")]
    pub url: String,
    /// Export every validated pair of both sides (the agents' and the random baseline's)
    /// instead of the top ones, so that `meshrl validate --fortio <out>` can compute the
    /// cell's Val. from real runs.
    #[arg(long)]
    pub validation: bool,
}

impl From<ExportArgs> for ExportOptions {
    fn from(a: ExportArgs) -> Self {
        ExportOptions { cell: a.cell, top: a.top, out: a.out, host: a.host, url: a.url, validation: a.validation }
    }
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The directory `meshrl export --validation` wrote, with the Fortio results beside its
    /// `manifest.csv`.
    #[arg(long)]
    pub fortio: PathBuf,
    /// Recompute the emulator's Val. of the same runs under this scenario (for example one
    /// `meshrl calibrate` fitted), instead of the manifest's `emu_reward`.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
}

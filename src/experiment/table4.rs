//! Table 4 of the paper: the test MSE of each simulator on each dataset, mean and standard
//! deviation over seeds, with per-output MSE and R², parity plots, and the trained MLP
//! simulators saved for the agents.
//!
//! Every (dataset, model, seed) cell is written to `cells/` as soon as it is done; a rerun
//! skips the cells whose settings are unchanged, so an interrupted run resumes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::cells::{report_due, run_resumable, split_by_stage, Label, Planned, Workers};
use super::claims::Claims;
use super::rundir::{Cell, CellJob, DirCoordination, OutputSet, RunDir};
use super::{RunOptions, Stage};
use crate::data::{load_table, prepare, Prepared, TableSpec, TraceTable};
use crate::error::{Error, Result};
use crate::report::{self, mean_std, plot};
use crate::simulator::baselines::{ForestConfig, LogisticConfig, RidgeConfig, SvrConfig};
use crate::simulator::mlp::MlpConfig;
use crate::simulator::{store, Simulator, SimulatorParams};

/// One dataset of the table: a trace file and, for other schemas, its columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetRef {
    /// Name in the table (S1 ... S5 get the paper's values beside ours).
    pub name: String,
    /// CSV or Parquet trace, relative to the working directory.
    pub path: PathBuf,
    /// Feature columns; default: the protocol's 9 inputs.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Target columns; default: qps and failure_rate.
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    /// Use only the first rows of the file (quick runs and tests); default: all.
    #[serde(default)]
    pub max_rows: Option<usize>,
}

impl DatasetRef {
    pub fn spec(&self) -> TableSpec {
        let default = TableSpec::default();
        TableSpec { features: self.features.clone().unwrap_or(default.features), targets: self.targets.clone().unwrap_or(default.targets) }
    }
}

/// The Table 4 experiment (experiments/table4.toml).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table4Config {
    /// Always "table4".
    pub kind: String,
    /// Master seed: repetition r uses seed + r for its split and its models' weights.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Seeds per cell (the paper: 3).
    #[serde(default = "default_repeats")]
    pub repeats: usize,
    /// Where tables, plots, cells and the resolved config go.
    #[serde(default = "default_out_dir")]
    pub out_dir: PathBuf,
    /// Where the trained MLP simulators go (`<dataset>/mlp_seed<seed>.safetensors` plus
    /// normaliser JSON); weights are regenerated on demand, not committed.
    #[serde(default = "default_models_dir")]
    pub models_dir: PathBuf,
    /// Share of rows in the training split (protocol: 0.8).
    #[serde(default = "default_train_fraction")]
    pub train_fraction: f64,
    /// Models in table order: any of mlp, svr, ridge, logistic, forest; default the paper's
    /// four (mlp, svr, ridge, logistic).
    #[serde(default = "default_models")]
    pub models: Vec<String>,
    /// Test points drawn per parity panel.
    #[serde(default = "default_parity_points")]
    pub parity_points: usize,
    #[serde(rename = "dataset")]
    pub datasets: Vec<DatasetRef>,
    #[serde(default)]
    pub mlp: MlpConfig,
    #[serde(default)]
    pub svr: SvrConfig,
    #[serde(default)]
    pub ridge: RidgeConfig,
    #[serde(default)]
    pub logistic: LogisticConfig,
    #[serde(default)]
    pub forest: ForestConfig,
}

fn default_seed() -> u64 {
    1
}
fn default_repeats() -> usize {
    3
}
fn default_out_dir() -> PathBuf {
    PathBuf::from("results/table4")
}
fn default_models_dir() -> PathBuf {
    PathBuf::from("results/table4/models")
}
fn default_train_fraction() -> f64 {
    0.8
}
fn default_models() -> Vec<String> {
    ["mlp", "svr", "ridge", "logistic"].map(String::from).to_vec()
}
fn default_parity_points() -> usize {
    1500
}

/// The paper's Table 4 (MSE), by model and dataset S1..S5.
pub const PAPER_MSE: [(&str, [f64; 5]); 4] = [
    ("svr", [1.3, 0.78, 1.05, 1.33, 1.24]),
    ("logistic", [0.93, 0.81, 0.99, 1.00, 1.00]),
    ("ridge", [0.85, 0.84, 0.98, 1.01, 0.96]),
    ("mlp", [0.13, 0.17, 0.52, 0.63, 0.38]),
];

pub fn paper_mse(model: &str, dataset: &str) -> Option<f64> {
    let col = ["S1", "S2", "S3", "S4", "S5"].iter().position(|d| *d == dataset)?;
    PAPER_MSE.iter().find(|(m, _)| *m == model).map(|(_, v)| v[col])
}

fn model_label(model: &str) -> &str {
    match model {
        "mlp" => "5 layer-MLP",
        "svr" => "Support Vector Regression",
        "ridge" => "Linear Ridge Regression",
        "logistic" => "Logistic Regression",
        "forest" => "Random Forest",
        other => other,
    }
}

impl Table4Config {
    pub fn validate(&self) -> Result<()> {
        if self.kind != "table4" {
            return Err(Error::config(format!("kind must be \"table4\", but is {:?}", self.kind)));
        }
        if self.repeats == 0 {
            return Err(Error::config("repeats must be >= 1"));
        }
        if !(self.train_fraction > 0.0 && self.train_fraction < 1.0) {
            return Err(Error::config(format!("train_fraction must be in (0, 1), but is {}", self.train_fraction)));
        }
        if self.datasets.is_empty() {
            return Err(Error::config("no [[dataset]] entries"));
        }
        if let Some((i, d)) = self.datasets.iter().enumerate().find(|(i, d)| self.datasets[..*i].iter().any(|e| e.name == d.name)) {
            return Err(Error::config(format!(
                "two [[dataset]] entries are named {:?} (entries {} and {})",
                d.name,
                self.datasets.iter().position(|e| e.name == d.name).unwrap_or(0) + 1,
                i + 1
            )));
        }
        if self.models.is_empty() {
            return Err(Error::config("models is empty: name at least one of mlp, svr, ridge, logistic, forest"));
        }
        for (i, m) in self.models.iter().enumerate() {
            self.params(m)?;
            if self.models[..i].contains(m) {
                return Err(Error::config(format!("model {m:?} is listed twice")));
            }
        }
        self.mlp.validate()?;
        self.svr.validate()?;
        self.ridge.validate()?;
        self.logistic.validate()?;
        self.forest.validate()?;
        Ok(())
    }

    fn params(&self, model: &str) -> Result<Box<dyn SimulatorParams>> {
        Ok(match model {
            "mlp" => Box::new(self.mlp.clone()),
            "svr" => Box::new(self.svr.clone()),
            "ridge" => Box::new(self.ridge.clone()),
            "logistic" => Box::new(self.logistic.clone()),
            "forest" => Box::new(self.forest.clone()),
            other => return Err(Error::config(format!("unknown model {other:?}; expected mlp, svr, ridge, logistic or forest"))),
        })
    }

    /// The settings a cell's result depends on (with the dataset file's fingerprint): a
    /// cell computed under other settings, or on another version of the file, is redone.
    fn cell_key(&self, dataset: &DatasetRef, fingerprint: &str, model: &str, seed: u64) -> String {
        let params = match model {
            "mlp" => serde_json::to_string(&self.mlp),
            "svr" => serde_json::to_string(&self.svr),
            "ridge" => serde_json::to_string(&self.ridge),
            "forest" => serde_json::to_string(&self.forest),
            _ => serde_json::to_string(&self.logistic),
        }
        .unwrap_or_default();
        let ds = serde_json::to_string(dataset).unwrap_or_default();
        format!("{ds}|{fingerprint}|{model}|{params}|{}|{seed}", self.train_fraction)
    }

    pub fn model_path(&self, dataset: &str, seed: u64) -> PathBuf {
        store::mlp_path(&self.models_dir, dataset, seed)
    }
}

/// Measured and predicted test values of one output, raw units, for the parity plots.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParityPoints {
    pub measured: Vec<f64>,
    pub predicted: Vec<f64>,
}

/// The result of one (dataset, model, seed) cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub key: String,
    pub dataset: String,
    pub model: String,
    pub seed: u64,
    pub outputs: Vec<String>,
    /// Test MSE per output, z-scored with the training split's statistics.
    pub mse: Vec<f64>,
    pub r2: Vec<f64>,
    pub train_rows: usize,
    pub test_rows: usize,
    pub fit_seconds: f64,
    pub parity: Vec<ParityPoints>,
}

impl Cell for CellResult {
    fn key(&self) -> &str {
        &self.key
    }
}

impl CellResult {
    pub fn mse_mean(&self) -> f64 {
        self.mse.iter().sum::<f64>() / self.mse.len().max(1) as f64
    }
}

/// Per-output MSE and R² of z-scored predictions.
pub fn mse_r2(pred: &Array2<f64>, truth: &Array2<f64>) -> (Vec<f64>, Vec<f64>) {
    let mut mse = Vec::new();
    let mut r2 = Vec::new();
    for j in 0..truth.ncols() {
        let (p, t) = (pred.column(j), truth.column(j));
        let n = t.len().max(1) as f64;
        let sse: f64 = p.iter().zip(t.iter()).map(|(a, b)| (a - b).powi(2)).sum();
        let mean = t.sum() / n;
        let sst: f64 = t.iter().map(|b| (b - mean).powi(2)).sum();
        mse.push(sse / n);
        r2.push(if sst > 0.0 { 1.0 - sse / sst } else { f64::NAN });
    }
    (mse, r2)
}

/// Fits one model, scores it on the test split, saves the MLP, returns the cell.
fn compute_cell(
    cfg: &Table4Config,
    ds: &DatasetRef,
    table: &TraceTable,
    prep: &Prepared,
    model: &str,
    seed: u64,
    key: String,
) -> Result<CellResult> {
    let t0 = Instant::now();
    let fitted: Box<dyn Simulator> = if model == "mlp" {
        store::train_and_save(&cfg.mlp, prep, seed, &cfg.model_path(&ds.name, seed))?.model
    } else {
        cfg.params(model)?.fit(&prep.x_train, &prep.y_train, seed)?
    };
    let fit_seconds = t0.elapsed().as_secs_f64();
    let pred = fitted.predict(&prep.x_test)?;
    let (mse, r2) = mse_r2(&pred, &prep.y_test);
    // Parity points in raw units: the first test rows (the test split is already shuffled).
    let k = cfg.parity_points.min(pred.nrows());
    let mut parity: Vec<ParityPoints> =
        table.target_names().iter().map(|_| ParityPoints { measured: Vec::with_capacity(k), predicted: Vec::with_capacity(k) }).collect();
    for i in 0..k {
        let mut p: Vec<f64> = pred.row(i).to_vec();
        let mut t: Vec<f64> = prep.y_test.row(i).to_vec();
        prep.outputs.inverse_row(&mut p);
        prep.outputs.inverse_row(&mut t);
        for (j, pp) in parity.iter_mut().enumerate() {
            pp.measured.push(t[j]);
            pp.predicted.push(p[j]);
        }
    }
    Ok(CellResult {
        key,
        dataset: ds.name.clone(),
        model: model.to_string(),
        seed,
        outputs: table.target_names().to_vec(),
        mse,
        r2,
        train_rows: prep.x_train.nrows(),
        test_rows: prep.x_test.nrows(),
        fit_seconds,
        parity,
    })
}

/// One cell to compute: its place in table order, its dataset (index), model and seed, and
/// its key.
struct Job<'a> {
    index: usize,
    dataset: usize,
    dataset_name: &'a str,
    model: &'a str,
    seed: u64,
    key: String,
}

impl CellJob for Job<'_> {
    fn dataset(&self) -> &str {
        self.dataset_name
    }
    fn name(&self) -> String {
        cell_name(self.model, self.seed)
    }
    fn key(&self) -> &str {
        &self.key
    }
}

/// Runs the experiment: every cell (resuming finished ones), then the tables and plots.
/// (Table 4 has nothing to prepare: its cells train the simulators.)
pub fn run(cfg: &Table4Config, stage: Stage, _options: RunOptions) -> Result<()> {
    // Load and check every dataset before the long work starts.
    let mut tables = Vec::new();
    for ds in &cfg.datasets {
        let table = load_table(&ds.path, &ds.spec())?;
        let rows = ds.max_rows.map_or(table.n_rows(), |m| m.min(table.n_rows()));
        if rows < 10 {
            return Err(Error::file(&ds.path, format!("{rows} rows: too few for an 80/20 split")));
        }
        tables.push((table, rows, crate::data::fingerprint(&ds.path)?));
    }
    // Only a run whose inputs all load touches the output directory.
    let dir = RunDir::create(&cfg.out_dir, cfg, &[])?;
    // Every (dataset, seed, model) in table order; finished ones are read back (an MLP cell
    // only with its saved simulator).
    let mut planned = Vec::new();
    for (di, (ds, (_, _, fingerprint))) in cfg.datasets.iter().zip(&tables).enumerate() {
        for rep in 0..cfg.repeats {
            let seed = cfg.seed + rep as u64;
            for model in &cfg.models {
                let key = cfg.cell_key(ds, fingerprint, model, seed);
                let model_saved = model != "mlp" || cfg.model_path(&ds.name, seed).exists();
                planned.push(match dir.read_cell::<CellResult>(&ds.name, &cell_name(model, seed), &key).filter(|_| model_saved) {
                    Some(cell) => Planned::Done(cell),
                    None => Planned::Todo(Job { index: planned.len(), dataset: di, dataset_name: &ds.name, model, seed, key }),
                });
            }
        }
    }
    let total = planned.len();
    let (planned, missing) = split_by_stage(planned, stage, |job: &Job| format!("{} {} seed {}", job.dataset_name, job.model, job.seed));
    if stage == Stage::Prepare {
        println!("prepared {}", cfg.out_dir.display());
        return Ok(());
    }
    // A fit's time does not follow from a short sample (an SVM grows with the square of the
    // rows, the MLP stops early): the count only.
    let fits = planned.iter().filter(|p| matches!(p, Planned::Todo(_))).count();
    println!("estimate: {fits} fits to compute (their time is not estimated before the run)");
    // One cell at a time, in table order, on every core (the fits use them).
    let label = |job: &Job| Label {
        prefix: format!("cell {}/{total} {} {} seed {}", job.index + 1, cfg.datasets[job.dataset].name, job.model, job.seed),
        units: 1,
    };
    let coordination = DirCoordination { dir: &dir, claims: Claims::start() };
    let cells = run_resumable(planned, Workers::new(Some(1)), "cell", &coordination, label, |job, progress| {
        let (ds, (table, rows, _)) = (&cfg.datasets[job.dataset], &tables[job.dataset]);
        let prep = prepare(table, *rows, job.seed, cfg.train_fraction)?;
        let cell = compute_cell(cfg, ds, table, &prep, job.model, job.seed, job.key.clone())?;
        dir.write_cell(&ds.name, &cell_name(job.model, job.seed), &cell)?;
        progress.bar.inc(1);
        progress.println(&format!(
            "{:<8} {:<9} seed {}: test MSE {:.4} (fit {:.1} s)",
            ds.name,
            job.model,
            job.seed,
            cell.mse_mean(),
            cell.fit_seconds
        ));
        Ok(cell)
    })?;
    if !report_due(stage, cells.len(), total, &missing, &cfg.out_dir) {
        return Ok(());
    }
    let summary = Summary::new(cfg, &cells);
    let claim = summary.claim_mlp_lowest();
    let mut outputs = dir.outputs();
    outputs.write("table4.csv", summary.csv())?;
    outputs.write("table4.md", summary.markdown(&claim))?;
    for ds in &cfg.datasets {
        parity_plot(cfg, &ds.name, &cells, &mut outputs)?;
    }
    outputs.commit()?;
    println!("{}", summary.main_table());
    println!("{claim}");
    println!("wrote {}", cfg.out_dir.display());
    Ok(())
}

/// A cell's file name in `cells/<dataset>/` (without `.json`).
fn cell_name(model: &str, seed: u64) -> String {
    format!("{model}_seed{seed}")
}

fn parity_plot(cfg: &Table4Config, dataset: &str, cells: &[CellResult], files: &mut OutputSet) -> Result<()> {
    let first_seed = cfg.seed;
    let mut panels = Vec::new();
    let mut outputs = 1;
    for model in &cfg.models {
        let Some(cell) = cells.iter().find(|c| c.dataset == dataset && &c.model == model && c.seed == first_seed) else { continue };
        outputs = cell.outputs.len();
        for (name, pp) in cell.outputs.iter().zip(&cell.parity) {
            panels.push(plot::ParityPanel {
                title: format!("{} - {name}", model_label(model)),
                measured: pp.measured.clone(),
                predicted: pp.predicted.clone(),
            });
        }
    }
    let path = files.stage(format!("parity_{dataset}.png"))?;
    plot::parity_grid(&path, &format!("{dataset}: predicted against measured (test split, seed {first_seed})"), &panels, outputs)
}

/// Cells grouped by (dataset, model), in config order.
struct Summary<'a> {
    cfg: &'a Table4Config,
    groups: BTreeMap<(usize, usize), Vec<&'a CellResult>>,
}

impl<'a> Summary<'a> {
    fn new(cfg: &'a Table4Config, cells: &'a [CellResult]) -> Summary<'a> {
        let mut groups: BTreeMap<(usize, usize), Vec<&CellResult>> = BTreeMap::new();
        for c in cells {
            let d = cfg.datasets.iter().position(|d| d.name == c.dataset).unwrap_or(0);
            let m = cfg.models.iter().position(|m| *m == c.model).unwrap_or(0);
            groups.entry((d, m)).or_default().push(c);
        }
        Summary { cfg, groups }
    }

    fn seeds(&self) -> String {
        (0..self.cfg.repeats).map(|r| (self.cfg.seed + r as u64).to_string()).collect::<Vec<_>>().join(" ")
    }

    fn mean_mse(&self, d: usize, m: usize) -> Vec<f64> {
        self.groups.get(&(d, m)).map(|cs| cs.iter().map(|c| c.mse_mean()).collect()).unwrap_or_default()
    }

    fn csv(&self) -> String {
        let mut out = String::from("dataset,model,output,metric,mean,std,n_seeds,seeds,paper\n");
        for (&(d, m), cells) in &self.groups {
            let ds = &self.cfg.datasets[d].name;
            let model = &self.cfg.models[m];
            let paper = paper_mse(model, ds).map(|v| v.to_string()).unwrap_or_default();
            let (mean, std) = mean_std(&self.mean_mse(d, m));
            let _ = writeln!(out, "{ds},{model},all,mse,{mean:.6},{std:.6},{},{},{paper}", cells.len(), self.seeds());
            for (j, name) in cells[0].outputs.iter().enumerate() {
                for (metric, get) in [("mse", 0), ("r2", 1)] {
                    let v: Vec<f64> = cells.iter().map(|c| if get == 0 { c.mse[j] } else { c.r2[j] }).collect();
                    let (mean, std) = mean_std(&v);
                    let _ = writeln!(out, "{ds},{model},{name},{metric},{mean:.6},{std:.6},{},{},", cells.len(), self.seeds());
                }
            }
        }
        out
    }

    fn main_table(&self) -> String {
        let mut header = vec!["Simulation model".to_string()];
        header.extend(self.cfg.datasets.iter().map(|d| d.name.clone()));
        let rows: Vec<Vec<String>> = (0..self.cfg.models.len())
            .map(|m| {
                let model = &self.cfg.models[m];
                let mut row = vec![model_label(model).to_string()];
                for (d, ds) in self.cfg.datasets.iter().enumerate() {
                    let cell = report::fmt_mean_std(&self.mean_mse(d, m), 3);
                    row.push(match paper_mse(model, &ds.name) {
                        Some(p) => format!("{cell} ({p:.2})"),
                        None => cell,
                    });
                }
                row
            })
            .collect();
        report::markdown_table(&header, &rows)
    }

    fn markdown(&self, claim: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Table 4: simulator test MSE\n");
        let _ = writeln!(
            s,
            "Mean squared error on the z-scored test outputs (statistics of the training split), \
             averaged over the outputs, so that predicting the mean scores about 1.0. Each cell: \
             mean ± standard deviation over {} seeds ({}: split and weights); the paper's value \
             in parentheses. Config: `config.resolved.toml`.\n",
            self.cfg.repeats,
            self.seeds()
        );
        s.push_str(&self.main_table());
        let _ = writeln!(s, "\n## Per output\n");
        let mut header = vec!["dataset".to_string(), "model".to_string()];
        let outputs = self.groups.values().next().map(|c| c[0].outputs.clone()).unwrap_or_default();
        for o in &outputs {
            header.push(format!("MSE {o}"));
        }
        for o in &outputs {
            header.push(format!("R² {o}"));
        }
        header.push("train / test rows".into());
        let mut rows = Vec::new();
        for (&(d, m), cells) in &self.groups {
            let mut row = vec![self.cfg.datasets[d].name.clone(), model_label(&self.cfg.models[m]).to_string()];
            for j in 0..cells[0].outputs.len() {
                row.push(report::fmt_mean_std(&cells.iter().map(|c| c.mse[j]).collect::<Vec<_>>(), 3));
            }
            for j in 0..cells[0].outputs.len() {
                row.push(report::fmt_mean_std(&cells.iter().map(|c| c.r2[j]).collect::<Vec<_>>(), 3));
            }
            row.push(format!("{} / {}", cells[0].train_rows, cells[0].test_rows));
            rows.push(row);
        }
        s.push_str(&report::markdown_table(&header, &rows));
        let _ = writeln!(s, "\n## Claim 1\n\n{claim}\n");
        let _ = writeln!(s, "## Notes\n");
        let _ = writeln!(
            s,
            "- SVR is fitted on a seeded subsample of at most {} training rows (SMO is quadratic in rows).",
            self.cfg.svr.max_train_rows
        );
        let _ = writeln!(
            s,
            "- Logistic regression regresses through {} quantile bins per output: a multinomial model \
             predicts the bin, the prediction is the expected bin mean.",
            self.cfg.logistic.bins
        );
        if self.cfg.models.iter().any(|m| m == "forest") {
            let f = &self.cfg.forest;
            let _ = writeln!(
                s,
                "- Random forest (smartcore): {} trees per output, max depth {}, min {} rows per leaf, {} split candidates per node, {}.",
                f.trees,
                f.max_depth.map_or("none".to_string(), |d| d.to_string()),
                f.min_samples_leaf,
                f.features_per_split.map_or("every input as".to_string(), |m| m.to_string()),
                f.max_train_rows.map_or("every training row".to_string(), |r| format!("a seeded subsample of at most {r} training rows"))
            );
        }
        let _ = writeln!(
            s,
            "- MLP: hidden {:?}, Adam lr {}, batch {}, at most {} epochs, early stopping (patience {}) on {} of the training split.",
            self.cfg.mlp.hidden,
            self.cfg.mlp.learning_rate,
            self.cfg.mlp.batch_size,
            self.cfg.mlp.max_epochs,
            self.cfg.mlp.patience,
            self.cfg.mlp.validation_fraction
        );
        let _ = writeln!(s, "- Parity plots: `parity_<dataset>.png` (seed {}).", self.cfg.seed);
        s
    }

    /// Claim 1 of protocol.md section 7: the MLP has the lowest MSE on every dataset.
    fn claim_mlp_lowest(&self) -> String {
        let Some(mlp) = self.cfg.models.iter().position(|m| m == "mlp") else {
            return "claim 1 (the MLP has the lowest simulator MSE on every dataset): not checked, no MLP in this run".into();
        };
        let mut lines = Vec::new();
        let mut holds_everywhere = true;
        for (d, ds) in self.cfg.datasets.iter().enumerate() {
            let (mlp_mse, _) = mean_std(&self.mean_mse(d, mlp));
            let best_other = (0..self.cfg.models.len())
                .filter(|&m| m != mlp)
                .map(|m| (mean_std(&self.mean_mse(d, m)).0, &self.cfg.models[m]))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            let (holds, detail) = match best_other {
                Some((other, name)) => (mlp_mse < other, format!("MLP {mlp_mse:.3} vs best other ({name}) {other:.3}")),
                None => (true, format!("MLP {mlp_mse:.3}, no other model")),
            };
            holds_everywhere &= holds;
            lines.push(format!("  {}: {} ({detail})", ds.name, if holds { "holds" } else { "FAILS" }));
        }
        format!(
            "claim 1 (the MLP has the lowest simulator MSE on every dataset): {}\n{}",
            if holds_everywhere { "HOLDS" } else { "does NOT hold" },
            lines.join("\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn mse_and_r2_by_hand() {
        let truth = Array2::from_shape_vec((4, 1), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let pred = Array2::from_shape_vec((4, 1), vec![1.0, 2.0, 3.0, 2.0]).unwrap();
        let (mse, r2) = mse_r2(&pred, &truth);
        assert!((mse[0] - 1.0).abs() < 1e-12);
        assert!((r2[0] - (1.0 - 4.0 / 5.0)).abs() < 1e-12);
    }

    #[test]
    fn forest_is_a_model_with_its_own_settings() {
        let text = r#"
kind = "table4"
models = ["ridge", "forest"]
[[dataset]]
name = "S1"
path = "datasets/S1.csv"
[forest]
trees = 7
max_depth = 12
"#;
        let cfg: Table4Config = toml::from_str(text).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.forest.trees, 7);
        assert_eq!(cfg.forest.max_depth, Some(12));
        assert_eq!(cfg.params("forest").unwrap().name(), "forest");
        assert_eq!(model_label("forest"), "Random Forest");
        assert_eq!(paper_mse("forest", "S1"), None);
        // A cell's key carries the forest's settings: changing them redoes the cell.
        let ds = &cfg.datasets[0];
        let key = cfg.cell_key(ds, "f", "forest", 1);
        assert!(key.contains("\"trees\":7"), "{key}");
        let mut other = cfg.clone();
        other.forest.trees = 8;
        assert_ne!(key, other.cell_key(ds, "f", "forest", 1));
        assert_eq!(cfg.cell_key(ds, "f", "logistic", 1), other.cell_key(ds, "f", "logistic", 1));
        // Bad forest settings are config errors naming the field.
        other.forest.trees = 0;
        let err = other.validate().unwrap_err();
        assert!(matches!(err, Error::Config { .. }) && err.to_string().contains("forest.trees"), "{err}");
        let bad: std::result::Result<Table4Config, _> = toml::from_str(&text.replace("trees = 7", "n_trees = 7"));
        assert!(bad.is_err());
        // The resolved config round-trips (an absent max_depth stays absent).
        other.forest = ForestConfig::default();
        let again: Table4Config = toml::from_str(&toml::to_string_pretty(&other).unwrap()).unwrap();
        assert_eq!(again.forest, ForestConfig::default());
    }

    #[test]
    fn the_experiment_files_list_the_forest() {
        for file in ["experiments/table4.toml", "experiments/table4_tnsm2023.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            let cfg: Table4Config = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            cfg.validate().unwrap();
            assert_eq!(cfg.models.last().map(String::as_str), Some("forest"), "{file}");
            assert_eq!(cfg.forest, ForestConfig::default(), "{file}");
        }
    }

    /// A tiny run with the forest: cells, tables (with the forest's note) and a resumable,
    /// reproducible result.
    #[test]
    fn tiny_run_with_the_forest() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = format!(
            r#"
kind = "table4"
repeats = 2
models = ["ridge", "forest"]
out_dir = "{out}"
models_dir = "{out}/models"
[[dataset]]
name = "S1"
path = "{data}"
max_rows = 300
[forest]
trees = 10
"#,
            out = tmp.path().join("out").display(),
            data = repo.join("datasets/S1.csv").display()
        );
        let cfg: Table4Config = toml::from_str(&text).unwrap();
        cfg.validate().unwrap();
        run(&cfg, Stage::All, RunOptions::default()).unwrap();
        let out = tmp.path().join("out");
        let csv = std::fs::read_to_string(out.join("table4.csv")).unwrap();
        let line = csv.lines().find(|l| l.starts_with("S1,forest,all,mse,")).expect("forest row");
        let mean: f64 = line.split(',').nth(4).unwrap().parse().unwrap();
        assert!(mean > 0.0 && mean < 1.0, "forest mean test MSE {mean}");
        let md = std::fs::read_to_string(out.join("table4.md")).unwrap();
        assert!(md.contains("| Random Forest |") && md.contains("10 trees per output"), "{md}");
        let key = cfg.cell_key(&cfg.datasets[0], &crate::data::fingerprint(&cfg.datasets[0].path).unwrap(), "forest", 2);
        let cell: CellResult = RunDir::create(&out, &cfg, &[]).unwrap().read_cell("S1", &cell_name("forest", 2), &key).expect("cell saved");
        assert_eq!(cell.train_rows, 240);
        // Recomputed from scratch, the same seed gives the same cell.
        std::fs::remove_dir_all(out.join("cells")).unwrap();
        run(&cfg, Stage::All, RunOptions::default()).unwrap();
        assert_eq!(csv, std::fs::read_to_string(out.join("table4.csv")).unwrap());
    }

    #[test]
    fn paper_values_are_indexed_by_model_and_dataset() {
        assert_eq!(paper_mse("mlp", "S3"), Some(0.52));
        assert_eq!(paper_mse("svr", "S1"), Some(1.3));
        assert_eq!(paper_mse("mlp", "tnsm2023"), None);
    }
}

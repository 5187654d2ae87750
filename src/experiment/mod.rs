//! Experiments driven by TOML files: `meshrl run experiments/<name>.toml`. The file's
//! `kind` picks the runner; `--set key=value` overrides any field before validation.
//!
//! Every kind writes a run directory ([`rundir`]) of resumable cells, computed by the cell
//! scheduler ([`cells`]); the kinds themselves are a config, a cell and a report:
//! [`table4`] (simulators), [`table5`] (agents on the load search), [`control`] (agents
//! choosing routing, blocking and replicas on a model of a testbed's trace), [`autoscale`]
//! (agents scaling replicas over time), [`defend`] (agents choosing the DestinationRule) and
//! [`budget`] (search methods and learners at equal budgets of ground-truth runs).

pub mod autoscale;
pub mod budget;
pub mod cells;
pub mod claims;
pub mod compare;
pub mod control;
pub mod defend;
pub mod estimate;
pub mod metrics;
pub mod rundir;
pub mod table4;
pub mod table5;
pub mod timing;
pub mod yardstick;

use std::path::Path;

use crate::error::{Error, Result};

/// Reads an experiment file and applies `key=value` overrides (dotted keys reach into
/// tables, values are TOML: `--set seed=7 --set mlp.max_epochs=5 --set out_dir="tmp"`), then
/// its `scenario_file`, if any ([`crate::generate::merge_scenario_file`]).
pub fn load_experiment(path: &Path, overrides: &[String]) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| Error::Config { file: Some(path.to_path_buf()), message: e.to_string() })?;
    for item in overrides {
        let (key, raw) = item.split_once('=').ok_or_else(|| Error::config(format!("--set {item}: expected key=value")))?;
        let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
            Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.to_string())),
            Err(_) => toml::Value::String(raw.to_string()),
        };
        let mut node = &mut table;
        let parts: Vec<&str> = key.trim().split('.').collect();
        for part in &parts[..parts.len() - 1] {
            node = node
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| Error::config(format!("--set {item}: {part} is not a table")))?;
        }
        node.insert(parts[parts.len() - 1].to_string(), value);
    }
    crate::generate::merge_scenario_file(&mut table, path)?;
    Ok(table)
}

/// Deserialises an experiment table into its config type and validates it; every error
/// names the file and the `--set` overrides applied to it, either of which may be at fault.
pub fn parse_config<T: serde::de::DeserializeOwned>(
    table: toml::Table,
    file: &Path,
    overrides: &[String],
    validate: impl Fn(&T) -> Result<()>,
) -> Result<T> {
    let source = match overrides {
        [] => file.to_path_buf(),
        _ => format!("{} with --set {}", file.display(), overrides.join(" --set ")).into(),
    };
    let in_file = |message: String| Error::Config { file: Some(source.clone()), message };
    let cfg: T = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| in_file(e.to_string()))?;
    validate(&cfg).map_err(|e| match e {
        Error::Config { message, .. } => in_file(message),
        other => other,
    })?;
    Ok(cfg)
}

/// Refuses a list that names one value twice (a repeated learner, model, load or grid value
/// would compute the same cells twice and fail, or collide, when the report is written).
pub fn refuse_repeats<T: PartialEq + std::fmt::Debug>(field: &str, values: &[T]) -> Result<()> {
    match values.iter().enumerate().find(|(i, v)| values[..*i].contains(v)) {
        Some((_, v)) => Err(Error::config(format!("{field} lists {v:?} twice"))),
        None => Ok(()),
    }
}

/// What a command does with an experiment: all of it, or one stage of a run spread over
/// several processes or machines (prepare once, then the shards, then the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Simulators (trained where missing), every cell, the report.
    All,
    /// The run directory and the simulators only, before any shard starts.
    Prepare,
    /// The cells whose index in table order is `index` modulo `of`; no report. The
    /// simulators must exist (a shard never trains one).
    Shard { index: usize, of: usize },
    /// The report from whatever cells exist, naming the missing ones.
    Report,
}

impl Stage {
    /// Parses `K/N` (shard K of N, 0-based).
    pub fn shard(text: &str) -> Result<Stage> {
        let bad = || Error::config(format!("--shard {text}: expected K/N with 0 <= K < N, e.g. 0/4"));
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, of) = (k.trim().parse::<usize>().map_err(|_| bad())?, n.trim().parse::<usize>().map_err(|_| bad())?);
        if of == 0 || index >= of {
            return Err(bad());
        }
        Ok(Stage::Shard { index, of })
    }

    /// Whether this stage computes the cell at `index` (table order).
    pub fn computes(&self, index: usize) -> bool {
        match self {
            Stage::All => true,
            Stage::Shard { index: k, of } => index % of == *k,
            Stage::Prepare | Stage::Report => false,
        }
    }

    /// Whether a missing simulator may be trained.
    pub fn trains_simulators(&self) -> bool {
        matches!(self, Stage::All | Stage::Prepare)
    }

    /// Whether the tables and figures are written.
    pub fn reports(&self) -> bool {
        matches!(self, Stage::All | Stage::Report)
    }
}

/// How a run writes what is not a result of its seed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Also write the wall times as the committed snapshot `timing.md` ([`timing`]).
    pub timing_snapshot: bool,
    /// Start a run estimated above [`estimate::LONG_RUN`] (`--yes`, or the experiment file's
    /// `allow_long_run = true`).
    pub allow_long: bool,
}

/// Runs the experiment a file describes (or one stage of it).
pub fn run(path: &Path, overrides: &[String], stage: Stage, options: RunOptions) -> Result<()> {
    let mut table = load_experiment(path, overrides)?;
    let options = RunOptions { allow_long: options.allow_long || estimate::take_allow_long_run(&mut table, path)?, ..options };
    let kind = table.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    match kind {
        "table4" => table4::run(&parse_config(table, path, overrides, table4::Table4Config::validate)?, stage, options),
        "table5" => table5::run(&parse_config(table, path, overrides, table5::Table5Config::validate)?, stage, options),
        "autoscale" => autoscale::run(&parse_config(table, path, overrides, autoscale::AutoscaleConfig::validate)?, stage, options),
        "control" => control::run(&parse_config(table, path, overrides, control::ControlConfig::validate)?, stage, options),
        "defend" => defend::run(&parse_config(table, path, overrides, defend::DefendConfig::validate)?, stage, options),
        "budget" => budget::run(&parse_config(table, path, overrides, budget::BudgetConfig::validate)?, stage, options),
        other => Err(Error::Config {
            file: Some(path.to_path_buf()),
            message: format!(
                "unknown experiment kind {other:?}; expected \"table4\", \"table5\", \"control\", \"autoscale\", \"defend\" or \"budget\""
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_cells_in_table_order() {
        let stage = Stage::shard("1/3").unwrap();
        assert_eq!((0..8).filter(|&i| stage.computes(i)).collect::<Vec<_>>(), vec![1, 4, 7]);
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
            assert!(Stage::shard(bad).is_err(), "{bad}");
        }
        assert!(!stage.reports() && !stage.trains_simulators());
        assert!(Stage::Report.reports() && !Stage::Report.computes(0));
    }

    #[test]
    fn overrides_reach_nested_tables_and_parse_toml_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.toml");
        std::fs::write(&path, "kind = \"table4\"\nseed = 1\n[mlp]\nmax_epochs = 3\n").unwrap();
        let t = load_experiment(&path, &["seed=9".into(), "mlp.max_epochs=5".into(), "out_dir=\"x\"".into()]).unwrap();
        assert_eq!(t["seed"].as_integer(), Some(9));
        assert_eq!(t["mlp"]["max_epochs"].as_integer(), Some(5));
        assert_eq!(t["out_dir"].as_str(), Some("x"));
    }
}

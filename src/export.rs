//! `meshrl export`: the best loads the agents found in one Table 5 cell, as things to run on
//! a real cluster: one DestinationRule YAML per run (for `kubectl apply`) and a manifest
//! with the Fortio command of each. The results come back with `meshrl ingest fortio`,
//! which reads the same YAML (or the manifest), so a real check of the agents' findings
//! needs no hand-copying of rules.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::data::{load_table, TableSpec, TraceTable};
use crate::env::load_search::Pair;
use crate::error::{Error, Result};
use crate::ingest::DestinationRule;
use crate::rules::{TrafficRules, RULE_COLUMNS};

/// What [`export`] reads and writes.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// A Table 5 cell file: `results/<run>/cells/<dataset>/<config>_seed<n>.json`.
    pub cell: PathBuf,
    /// How many of the best validated pairs to export.
    pub top: usize,
    /// Directory for `run_<i>.yaml` and `manifest.csv`.
    pub out: PathBuf,
    /// `spec.host` of the DestinationRules: the service under test.
    pub host: String,
    /// The URL Fortio loads.
    pub url: String,
    /// Export every validated pair of both sides (the agents' and the random baseline's)
    /// instead of the top ones, so that `meshrl validate --fortio <out>` can compute the
    /// cell's Val. from real runs.
    pub validation: bool,
}

/// The part of a cell file export needs; serde ignores the rest, so cells written by
/// other versions of Table 5 read as long as these fields keep their meaning.
#[derive(Debug, Deserialize)]
struct CellFile {
    dataset: String,
    best_rl: Vec<Pair>,
    #[serde(default)]
    best_baseline: Vec<Pair>,
}

/// The `[[dataset]]` entries of a run's `config.resolved.toml`; other fields are ignored.
#[derive(Debug, Deserialize)]
struct RunConfig {
    #[serde(rename = "dataset", default)]
    datasets: Vec<DatasetEntry>,
}

#[derive(Debug, Deserialize)]
struct DatasetEntry {
    name: String,
    path: PathBuf,
}

/// One exported run: the rules of the pair's dataset row and the pair itself.
#[derive(Debug, Clone, Copy)]
pub struct ExportedRun {
    /// "rl" (the agents' choice) or "baseline" (the random action on the same state).
    pub side: &'static str,
    pub rules: TrafficRules,
    pub pair: Pair,
}

/// The rules of a dataset row, as `emulate()` in Table 5 builds them.
fn rules_of(table: &TraceTable, row: usize) -> TrafficRules {
    TrafficRules::from_features(table.feature_row(row))
}

/// The `k` validated pairs with the highest emulator reward (ties: lower row first), each
/// (rules, threads, calls) once: running the same test twice on a cluster says nothing new.
pub fn select(cell: &Path, pairs: &[Pair], table: &TraceTable, k: usize) -> Result<Vec<ExportedRun>> {
    let mut validated: Vec<(usize, &Pair)> = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        if p.candidate.row >= table.n_rows() {
            return Err(Error::file(
                cell,
                format!(
                    "field `best_rl[{i}].row`: {} is outside the {} rows of {} (was the dataset regenerated?)",
                    p.candidate.row,
                    table.n_rows(),
                    table.path().display()
                ),
            ));
        }
        if p.truth_reward.is_some_and(f64::is_finite) {
            validated.push((i, p));
        }
    }
    if validated.is_empty() {
        return Err(Error::file(cell, "field `best_rl`: no pair has an emulator reward (emu_reward) to rank by"));
    }
    validated.sort_by(|(_, a), (_, b)| {
        let (ea, eb) = (a.truth_reward.unwrap_or(f64::NAN), b.truth_reward.unwrap_or(f64::NAN));
        eb.total_cmp(&ea)
            .then(a.candidate.row.cmp(&b.candidate.row))
            .then(a.candidate.threads.cmp(&b.candidate.threads))
            .then(a.candidate.calls.cmp(&b.candidate.calls))
    });
    let mut out: Vec<ExportedRun> = Vec::new();
    for (_, p) in validated {
        let run = ExportedRun { side: "rl", rules: rules_of(table, p.candidate.row), pair: *p };
        let same = |e: &ExportedRun| {
            e.rules == run.rules && (e.pair.candidate.threads, e.pair.candidate.calls) == (p.candidate.threads, p.candidate.calls)
        };
        if !out.iter().any(same) {
            out.push(run);
        }
        if out.len() == k {
            break;
        }
    }
    Ok(out)
}

/// Every validated pair of both sides, in the cell's order: the runs behind its Val.
fn validation_runs(path: &Path, cell: &CellFile, table: &TraceTable) -> Result<Vec<ExportedRun>> {
    let mut runs = Vec::new();
    for (side, pairs) in [("rl", &cell.best_rl), ("baseline", &cell.best_baseline)] {
        let validated: Vec<&Pair> = pairs.iter().filter(|p| p.truth_reward.is_some_and(f64::is_finite)).collect();
        if validated.is_empty() {
            return Err(Error::file(
                path,
                format!("field `best_{}`: no validated pair to export", if side == "rl" { "rl" } else { "baseline" }),
            ));
        }
        for p in validated {
            if p.candidate.row >= table.n_rows() {
                return Err(Error::file(
                    path,
                    format!(
                        "a `{side}` pair's row {} is outside the {} rows of {}",
                        p.candidate.row,
                        table.n_rows(),
                        table.path().display()
                    ),
                ));
            }
            runs.push(ExportedRun { side, rules: rules_of(table, p.candidate.row), pair: *p });
        }
    }
    Ok(runs)
}

/// A Kubernetes object name (DNS-1123: lower case, digits, `-`) for run `i` of `dataset`.
fn object_name(dataset: &str, i: usize) -> String {
    let d: String = dataset.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    format!("meshrl-{}-{i}", d.trim_matches('-'))
}

/// `text` as one shell word: unchanged when it is plainly safe, single-quoted otherwise
/// (a URL with `&` or `?` would otherwise be cut by the shell).
fn shell_word(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c)) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// One CSV cell, quoted when it holds a comma, a quote or a line break.
fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The cell's run directory (`<run>/cells/<dataset>/<file>.json` -> `<run>`).
fn run_dir(cell: &Path) -> Result<PathBuf> {
    let cells = cell.parent().and_then(Path::parent);
    match cells {
        Some(c) if c.file_name().is_some_and(|n| n == "cells") => Ok(c.parent().unwrap_or(Path::new("")).to_path_buf()),
        _ => Err(Error::file(cell, "not inside a Table 5 run: expected results/<run>/cells/<dataset>/<config>_seed<n>.json")),
    }
}

/// The dataset file of `name` in the run's resolved config, relative to the current directory.
fn dataset_path(config: &Path, name: &str) -> Result<PathBuf> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| Error::file(config, format!("cannot read the run's resolved config (it names the dataset file): {e}")))?;
    let cfg: RunConfig = toml::from_str(&text).map_err(|e| Error::file(config, format!("not a readable run config: {e}")))?;
    let entry = cfg
        .datasets
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| Error::file(config, format!("field `dataset`: no [[dataset]] named `{name}` (the cell's dataset)")))?;
    if !entry.path.is_file() {
        return Err(Error::file(
            &entry.path,
            format!(
                "the dataset `{name}` of {} is missing; its path is relative to the directory the run was made in, so run `meshrl export` from there",
                config.display()
            ),
        ));
    }
    Ok(entry.path)
}

/// Reads the cell, picks the runs, writes `run_<i>.yaml` and `manifest.csv` into `args.out`.
pub fn export(args: &ExportOptions) -> Result<Vec<ExportedRun>> {
    if args.top == 0 {
        return Err(Error::config("--top must be >= 1"));
    }
    if args.host.trim().is_empty() || args.url.trim().is_empty() {
        return Err(Error::config("--host and --url must not be empty"));
    }
    let text = std::fs::read_to_string(&args.cell).map_err(|e| Error::file(&args.cell, format!("cannot read: {e}")))?;
    let cell: CellFile = serde_json::from_str(&text).map_err(|e| Error::file(&args.cell, format!("not a Table 5 cell file: {e}")))?;
    let config = run_dir(&args.cell)?.join("config.resolved.toml");
    let data = dataset_path(&config, &cell.dataset)?;
    let table = load_table(&data, &TableSpec::default())?;
    let runs =
        if args.validation { validation_runs(&args.cell, &cell, &table)? } else { select(&args.cell, &cell.best_rl, &table, args.top)? };

    let header = ["run", "side", "yaml", "fortio_command", "result"]
        .iter()
        .chain(&RULE_COLUMNS)
        .chain(&["threads", "calls", "sim_reward", "emu_reward"])
        .copied()
        .collect::<Vec<_>>()
        .join(",");
    let mut manifest = header + "\n";
    for (n, run) in runs.iter().enumerate() {
        let i = n + 1;
        let (yaml, result) = (format!("run_{i}.yaml"), format!("run_{i}.json"));
        let (p, k) = (&run.pair, &run.rules);
        let command =
            format!("fortio load -c {} -qps 0 -n {} -json {result} {}", p.candidate.threads, p.candidate.calls, shell_word(&args.url));
        let rule = DestinationRule::new(&object_name(&cell.dataset, i), &args.host, k)
            .map_err(|e| Error::field(&data, p.candidate.row + 1, "max_ejection_percent", e))?;
        let body = rule.to_yaml().map_err(|e| Error::config(format!("writing {yaml}: {e}")))?;
        let text = format!(
            "# meshrl export of {}: dataset {} row {}, emulator reward {:.2} 503/s.\n# kubectl apply -f {yaml}, then: {command}\n{body}",
            args.cell.display(),
            cell.dataset,
            p.candidate.row + 1,
            p.truth_reward.unwrap_or(f64::NAN)
        );
        crate::atomic::write_file(&args.out.join(&yaml), text)?;
        let _ = writeln!(
            manifest,
            "{i},{},{yaml},{},{result},{},{},{},{:.4},{:.4}",
            run.side,
            csv_cell(&command),
            k.csv_fields(),
            p.candidate.threads,
            p.candidate.calls,
            p.model_reward,
            p.truth_reward.unwrap_or(f64::NAN)
        );
    }
    crate::atomic::write_file(&args.out.join("manifest.csv"), manifest)?;
    Ok(runs)
}

/// [`export`], then prints the exported runs and what to do with them.
pub fn run(args: &ExportOptions) -> Result<()> {
    let runs = export(args)?;
    println!("{} runs of {} -> {}", runs.len(), args.cell.display(), args.out.display());
    for (n, r) in runs.iter().enumerate() {
        println!(
            "  run_{}: row {}, -c {} -n {}, emulator {:.2} 503/s, simulator {:.2}",
            n + 1,
            r.pair.candidate.row + 1,
            r.pair.candidate.threads,
            r.pair.candidate.calls,
            r.pair.truth_reward.unwrap_or(f64::NAN),
            r.pair.model_reward
        );
    }
    println!(
        "apply each run_<i>.yaml, run its fortio_command (manifest.csv), then: meshrl ingest fortio {} --out trace.csv",
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::load_search::LoadChoice;
    use crate::ingest::read_destination_rule;

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn pair(row: usize, threads: u32, calls: u32, emu: Option<f64>) -> Pair {
        Pair { candidate: LoadChoice { service: 0, row, threads, calls }, model_reward: 1.0, truth_reward: emu }
    }

    /// A run directory holding one cell of S1 (dataset path absolute, so any cwd works).
    fn small_run(dir: &Path, pairs: &[Pair]) -> PathBuf {
        let cell = dir.join("cells/S1/call_seed1.json");
        std::fs::create_dir_all(cell.parent().unwrap()).unwrap();
        let json = serde_json::json!({ "key": "k", "dataset": "S1", "configuration": "call", "seed": 1, "best_rl": pairs });
        std::fs::write(&cell, json.to_string()).unwrap();
        let config = format!("kind = \"table5\"\n[[dataset]]\nname = \"S1\"\npath = \"{}\"\n", repo().join("datasets/S1.csv").display());
        std::fs::write(dir.join("config.resolved.toml"), config).unwrap();
        cell
    }

    fn args(cell: PathBuf, out: PathBuf, top: usize) -> ExportOptions {
        ExportOptions { cell, top, out, host: "productpage".into(), url: "http://productpage:9080/productpage".into(), validation: false }
    }

    #[test]
    fn picks_the_best_validated_distinct_pairs() {
        let table = load_table(&repo().join("datasets/S1.csv"), &TableSpec::default()).unwrap();
        let pairs = [
            pair(7, 3, 30, Some(5.0)),
            pair(2, 3, 30, Some(9.0)),
            pair(2, 3, 30, Some(9.0)), // the same test again
            pair(1, 4, 40, Some(9.0)), // tie: lower row first
            pair(3, 5, 50, None),      // not validated
            pair(4, 5, 50, Some(1.0)),
        ];
        let runs = select(Path::new("c.json"), &pairs, &table, 3).unwrap();
        let rows: Vec<usize> = runs.iter().map(|r| r.pair.candidate.row).collect();
        assert_eq!(rows, [1, 2, 7]);
        assert_eq!(runs[0].rules.to_features(), table.feature_row(1)[..7]);
        let err = select(Path::new("c.json"), &[pair(1_000_000, 3, 30, Some(1.0))], &table, 3).unwrap_err().to_string();
        assert!(err.contains("c.json") && err.contains("best_rl[0].row"), "{err}");
    }

    #[test]
    fn exported_yaml_reads_back_as_the_same_rules() {
        let dir = tempfile::tempdir().unwrap();
        let pairs = [pair(0, 3, 30, Some(4.0)), pair(5, 6, 200, Some(8.0)), pair(9, 2, 100, Some(6.0))];
        let cell = small_run(dir.path(), &pairs);
        let out = dir.path().join("export");
        let runs = export(&args(cell, out.clone(), 5)).unwrap();
        assert_eq!(runs.len(), 3);
        for (n, run) in runs.iter().enumerate() {
            let back = read_destination_rule(&out.join(format!("run_{}.yaml", n + 1))).unwrap();
            assert_eq!(back, run.rules, "run_{}", n + 1);
        }
        // The manifest reads back through ingest's reader too.
        let by_result = crate::ingest::read_manifest(&out.join("manifest.csv")).unwrap();
        assert_eq!(by_result["run_1.json"], runs[0].rules);
        let manifest = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
        assert!(
            manifest.lines().nth(1).unwrap().starts_with(
                "1,rl,run_1.yaml,fortio load -c 6 -qps 0 -n 200 -json run_1.json http://productpage:9080/productpage,run_1.json,"
            ),
            "{manifest}"
        );
        let yaml = std::fs::read_to_string(out.join("run_1.yaml")).unwrap();
        assert!(yaml.contains("name: meshrl-s1-1") && yaml.contains("host: productpage"), "{yaml}");
    }

    #[test]
    fn names_and_shell_words_are_safe() {
        assert_eq!(object_name("S1", 2), "meshrl-s1-2");
        assert_eq!(object_name("my_data", 1), "meshrl-my-data-1");
        assert_eq!(shell_word("http://a:80/b"), "http://a:80/b");
        assert_eq!(shell_word("http://a/b?x=1&y=2"), "'http://a/b?x=1&y=2'");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
    }

    #[test]
    fn a_missing_config_or_dataset_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cell = small_run(dir.path(), &[pair(0, 3, 30, Some(4.0))]);
        std::fs::write(dir.path().join("config.resolved.toml"), "[[dataset]]\nname = \"S1\"\npath = \"nowhere/S1.csv\"\n").unwrap();
        let err = export(&args(cell.clone(), dir.path().join("o"), 5)).unwrap_err().to_string();
        assert!(err.contains("nowhere/S1.csv") && err.contains("relative"), "{err}");
        std::fs::remove_file(dir.path().join("config.resolved.toml")).unwrap();
        let err = export(&args(cell, dir.path().join("o"), 5)).unwrap_err().to_string();
        assert!(err.contains("config.resolved.toml"), "{err}");
    }
}

//! `meshrl export`: the best loads the agents found in one Table 5 cell, as things to run on
//! a real cluster: one DestinationRule YAML per run (for `kubectl apply`), a VirtualService
//! YAML beside it when the run's rules retry, and a manifest with the Fortio command of
//! each. The results come back with `meshrl ingest fortio`, which reads the same YAML (or
//! the manifest), so a real check of the agents' findings needs no hand-copying of rules.
//! [`write_rule_bundle`] writes one rule and its loads the same way for other experiments.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::data::{load_table, TableSpec, TraceTable};
use crate::destination_rule::{
    retry_spelling, rule_spelling, virtual_service_beside, DestinationRule, VirtualService, BUNDLE_DESTINATION_RULE, BUNDLE_VIRTUAL_SERVICE,
};
use crate::env::load_search::Pair;
use crate::error::{Error, Result};
use crate::k8s::shell_word;
use crate::rules::{Load, TrafficRules, KNOB_COLUMNS, RULE_COLUMNS};

/// What [`export`] reads and writes.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// A Table 5 cell file: `results/<run>/cells/<dataset>/<config>_seed<n>.json`.
    pub cell: PathBuf,
    /// How many of the best validated pairs to export.
    pub top: usize,
    /// Directory for `run_<i>.yaml` and `manifest.csv`, replaced whole: it must be new,
    /// empty or a previous export (nothing else in it).
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

/// The rules of a dataset row: the seven rule columns, as `emulate()` in Table 5 builds
/// them, and the optional rule columns where the dataset has them.
fn rules_of(table: &TraceTable, row: usize) -> TrafficRules {
    table.traffic_rules(row)
}

/// The `k` validated pairs with the highest emulator reward (ties: lower row first), each
/// (rules, threads, calls) once: running the same test twice on a cluster says nothing new.
pub fn select(cell: &Path, pairs: &[Pair], table: &TraceTable, k: usize) -> Result<Vec<ExportedRun>> {
    let mut validated: Vec<(usize, &Pair)> = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        check_pair(cell, &format!("best_rl[{i}]"), p, table)?;
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

/// A pair as a run on a cluster: its row is in the dataset, and its load makes a Fortio
/// command that runs that load, `-c threads -n calls` with `1 <= threads <= calls`. A
/// cell file cut short or edited by hand can hold anything, and `-c 0` or `-n 0` (which
/// Fortio reads as a timed run, not a number of calls) would measure something else, so
/// such a pair is refused, naming the cell file and the field (`best_rl[3].threads`).
fn check_pair(cell: &Path, field: &str, p: &Pair, table: &TraceTable) -> Result<()> {
    let c = &p.candidate;
    let fail = |name: &str, message: String| Err(Error::file(cell, format!("field `{field}.{name}`: {message}")));
    if c.row >= table.n_rows() {
        return fail(
            "row",
            format!("{} is outside the {} rows of {} (was the dataset regenerated?)", c.row, table.n_rows(), table.path().display()),
        );
    }
    if c.threads == 0 {
        return fail("threads", "0 threads: `fortio load -c 0` runs no load (is the cell file damaged?)".into());
    }
    if c.calls == 0 {
        return fail("calls", "0 calls: Fortio reads `-n 0` as a timed run, not a number of calls (is the cell file damaged?)".into());
    }
    if c.calls < c.threads {
        return fail(
            "calls",
            format!(
                "{} calls is fewer than the {} threads (`-c {} -n {}`): some threads would make no call; \
                 no action grid does this (is the cell file damaged?)",
                c.calls, c.threads, c.threads, c.calls
            ),
        );
    }
    Ok(())
}

/// Every validated pair of both sides, in the cell's order: the runs behind its Val.
fn validation_runs(path: &Path, cell: &CellFile, table: &TraceTable) -> Result<Vec<ExportedRun>> {
    let mut runs = Vec::new();
    for (side, pairs) in [("rl", &cell.best_rl), ("baseline", &cell.best_baseline)] {
        let mut validated = Vec::new();
        for (i, p) in pairs.iter().enumerate() {
            check_pair(path, &format!("best_{side}[{i}]"), p, table)?;
            if p.truth_reward.is_some_and(f64::is_finite) {
                validated.push(p);
            }
        }
        if validated.is_empty() {
            return Err(Error::file(path, format!("field `best_{side}`: no validated pair to export")));
        }
        runs.extend(validated.into_iter().map(|p| ExportedRun { side, rules: rules_of(table, p.candidate.row), pair: *p }));
    }
    Ok(runs)
}

/// Checks that export may replace `out` whole: it does not exist, is an empty directory,
/// or holds a previous export and nothing else (its `manifest.csv`, the `run_<i>.yaml`
/// files that manifest lists in its `yaml` column and their `run_<i>.virtual-service.yaml`
/// files). A user's files, and the Fortio results of the previous
/// export's runs (`run_<i>.json`, measurements from a cluster), are never deleted: their
/// presence is an error naming the first one.
fn check_replaceable(out: &Path) -> Result<()> {
    let meta = match std::fs::metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("reading {}", out.display()), e)),
    };
    if !meta.is_dir() {
        return Err(Error::file(out, "--out exists and is not a directory"));
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(out).map_err(|e| Error::io(format!("listing {}", out.display()), e))? {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", out.display()), e))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        entries.push((entry.file_name().to_string_lossy().into_owned(), is_file));
    }
    entries.sort();
    if entries.is_empty() {
        return Ok(());
    }
    let refuse = |why: String| {
        Err(Error::file(
            out,
            format!(
                "{why}. Export replaces the whole folder, so it only writes into a new or empty folder or over a \
                 previous export (its manifest.csv and run_<i>.yaml files): move the other files away or choose another --out"
            ),
        ))
    };
    let manifest = out.join("manifest.csv");
    if !manifest.is_file() {
        return refuse(format!("holds `{}` and no manifest.csv: it is not a previous meshrl export", entries[0].0));
    }
    let listed = |frame: &polars::prelude::DataFrame, name: &str| -> Option<Vec<String>> {
        let cells = frame.column(name).ok()?.str().ok()?.clone();
        Some(cells.iter().flatten().map(|s| s.trim().to_string()).collect())
    };
    let frame = crate::ingest::read_csv_as_text(&manifest).ok();
    let columns = frame.as_ref().and_then(|f| Some((listed(f, "yaml")?, listed(f, "result")?)));
    let Some((yamls, results)) = columns else {
        return refuse("holds a manifest.csv without the `yaml` and `result` columns of a meshrl export".to_string());
    };
    let run_number = |name: &str, suffix: &str| {
        name.strip_prefix("run_").and_then(|n| n.strip_suffix(suffix)).is_some_and(|i| i.parse::<usize>().is_ok())
    };
    for (name, is_file) in &entries {
        let run_yaml = run_number(name, ".yaml") && yamls.contains(name);
        // A run's VirtualService goes with its listed DestinationRule.
        let run_vs = run_number(name, ".virtual-service.yaml")
            && yamls.iter().any(|y| virtual_service_beside(Path::new(y)).to_str() == Some(name.as_str()));
        if name == "manifest.csv" || (*is_file && (run_yaml || run_vs)) {
            continue;
        }
        if results.contains(name) {
            return refuse(format!(
                "holds `{name}`, the Fortio result of a run of the previous export (ingest it with `meshrl ingest fortio` \
                 or check it with `meshrl validate --fortio`, then move it away)"
            ));
        }
        return refuse(format!("holds `{name}`, which is not part of the previous export its manifest.csv lists"));
    }
    Ok(())
}

/// A Kubernetes object name (DNS-1123: lower case, digits, `-`) for run `i` of `dataset`.
fn object_name(dataset: &str, i: usize) -> String {
    let d: String = dataset.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    format!("meshrl-{}-{i}", d.trim_matches('-'))
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

/// Reads the cell, picks the runs, writes `run_<i>.yaml` (and `run_<i>.virtual-service.yaml`
/// for a run whose rules retry) and `manifest.csv` into `args.out`, all or nothing: the
/// folder is replaced whole (see [`crate::atomic::write_dir`]) after `check_replaceable`;
/// on any error an existing `args.out` is left as it was. Runs of the seven rule columns
/// alone export exactly the files they did before the other rule settings existed. Once
/// some run sets one of those, the manifest gets the optional rule columns and every run is
/// written in full ([`DestinationRule::new_full`], and a VirtualService, `attempts: 0` when
/// it does not retry), so that no run falls back to Istio's own defaults.
pub fn export(args: &ExportOptions) -> Result<Vec<ExportedRun>> {
    if args.top == 0 {
        return Err(Error::config("--top must be >= 1"));
    }
    crate::k8s::check_host("--host", &args.host)?;
    crate::k8s::check_url("--url", &args.url)?;
    let text = std::fs::read_to_string(&args.cell).map_err(|e| Error::file(&args.cell, format!("cannot read: {e}")))?;
    let cell: CellFile = serde_json::from_str(&text).map_err(|e| Error::file(&args.cell, format!("not a Table 5 cell file: {e}")))?;
    let config = run_dir(&args.cell)?.join("config.resolved.toml");
    let data = dataset_path(&config, &cell.dataset)?;
    let table = load_table(&data, &TableSpec::default())?;
    let runs =
        if args.validation { validation_runs(&args.cell, &cell, &table)? } else { select(&args.cell, &cell.best_rl, &table, args.top)? };

    let knobs = runs.iter().any(|r| !r.rules.has_default_knobs());
    let knob_header: &[&str] = if knobs { &KNOB_COLUMNS } else { &[] };
    let header = MANIFEST_EXTRA_COLUMNS[..4]
        .iter()
        .chain(&["result"])
        .chain(&RULE_COLUMNS)
        .chain(knob_header)
        .chain(&MANIFEST_EXTRA_COLUMNS[4..])
        .copied()
        .collect::<Vec<_>>()
        .join(",");
    let mut manifest = header + "\n";
    // Everything is made in memory, then written into a new folder that replaces `out`
    // whole: a failure anywhere leaves the old export as it was.
    let mut files: Vec<(String, String)> = Vec::with_capacity(runs.len() + 1);
    for (n, run) in runs.iter().enumerate() {
        let i = n + 1;
        let (yaml, result) = (format!("run_{i}.yaml"), format!("run_{i}.json"));
        let (p, k) = (&run.pair, &run.rules);
        let command =
            format!("fortio load -c {} -qps 0 -n {} -json {result} {}", p.candidate.threads, p.candidate.calls, shell_word(&args.url));
        let name = object_name(&cell.dataset, i);
        let bad_row = |(column, why): (&str, String)| Error::field(&data, p.candidate.row + 1, column, why);
        rule_spelling(k).map_err(bad_row)?;
        // Once the export records settings beyond the seven, every run states all of them
        // (retries off included: `attempts: 0`), or Istio's own defaults (LEAST_REQUEST,
        // 2 retries) would run where the manifest says otherwise.
        let with_vs = knobs || !k.retries.is_off();
        retry_spelling(&k.retries).map_err(bad_row)?;
        let build = if knobs { DestinationRule::new_full } else { DestinationRule::new };
        let rule = build(&name, &args.host, k).map_err(|e| Error::field(&data, p.candidate.row + 1, "rules", e))?;
        let body = rule.to_yaml().map_err(|e| Error::config(format!("writing {yaml}: {e}")))?;
        let vs_file = virtual_service_beside(Path::new(&yaml)).display().to_string();
        let apply = if with_vs { format!("{yaml} -f {vs_file}") } else { yaml.clone() };
        let origin = format!(
            "# meshrl export of {}: dataset {} row {}, emulator reward {:.2} 503/s.\n# kubectl apply -f {apply}, then: {command}\n",
            args.cell.display(),
            cell.dataset,
            p.candidate.row + 1,
            p.truth_reward.unwrap_or(f64::NAN)
        );
        let text = format!("{origin}{body}");
        if with_vs {
            let vs = VirtualService::new(&name, &args.host, &k.retries)
                .map_err(|e| Error::field(&data, p.candidate.row + 1, "retry_attempts", e))?;
            let vs_body = vs.to_yaml().map_err(|e| Error::config(format!("writing {vs_file}: {e}")))?;
            files.push((vs_file, format!("{origin}{vs_body}")));
        }
        let rules = if knobs { format!("{},{}", k.csv_fields(), k.knob_csv_fields()) } else { k.csv_fields() };
        let _ = writeln!(
            manifest,
            "{i},{},{yaml},{},{result},{},{},{},{:.4},{:.4}",
            run.side,
            csv_cell(&command),
            rules,
            p.candidate.threads,
            p.candidate.calls,
            p.model_reward,
            p.truth_reward.unwrap_or(f64::NAN)
        );
        files.push((yaml, text));
    }
    files.push(("manifest.csv".to_string(), manifest));
    check_replaceable(&args.out)?;
    crate::atomic::write_dir(&args.out, |dir| {
        for (name, text) in &files {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        }
        Ok(())
    })?;
    Ok(runs)
}

/// [`export`], then prints the exported runs and what to do with them.
pub fn run(args: &ExportOptions) -> Result<()> {
    crate::paths::refuse_input_inside_output("--out", &args.out, std::slice::from_ref(&args.cell))?;
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
        "apply each run_<i>.yaml (and its run_<i>.virtual-service.yaml, if any), run its fortio_command (manifest.csv), \
         then: meshrl ingest fortio {} --out trace.csv",
        args.out.display()
    );
    Ok(())
}

/// The manifest's columns beside `result` and the rules: four before them, four after.
pub const MANIFEST_EXTRA_COLUMNS: [&str; 8] = ["run", "side", "yaml", "fortio_command", "threads", "calls", "sim_reward", "emu_reward"];

/// The Fortio script of a rule bundle.
pub const BUNDLE_FORTIO: &str = "fortio.sh";

/// Checks a rule bundle's object name (a Kubernetes name) and service host, so that an
/// experiment can refuse them before it runs rather than when it writes the bundle.
pub fn check_bundle_names(name: &str, host: &str) -> Result<()> {
    use crate::k8s::{check_host, check_name, NameKind};
    check_name("rule bundle name", NameKind::Subdomain1123, name)?;
    check_host(&format!("rule bundle `{name}`: host"), host)
}

/// Writes one rule and the loads to run under it into `dir` (created if needed), for a
/// cluster: `destination-rule.yaml` (every setting written out, defaults included:
/// [`DestinationRule::new_full`]), `virtual-service.yaml` (the route's retries, `attempts: 0`
/// when off, so Istio's own default retries do not apply) and `fortio.sh`, one
/// `fortio load -c T -qps 0 -n N -json load_<k>.json http://<host>:8000/get` line per load
/// (httpbin's port and path, as Istio's circuit-breaking task), in export's command format.
/// Every file is built before any is written, and each is written atomically, so an error
/// leaves none half-written; other files in `dir` are left alone. The results, once run,
/// ingest with `meshrl ingest fortio <dir>` (a bundle's rules apply to every result in it).
pub fn write_rule_bundle(dir: &Path, name: &str, host: &str, rules: &TrafficRules, loads: &[Load]) -> Result<()> {
    check_bundle_names(name, host)?;
    if loads.is_empty() {
        return Err(Error::config(format!("rule bundle `{name}`: no load to run")));
    }
    for (k, load) in loads.iter().enumerate() {
        if load.threads == 0 || load.calls < load.threads {
            return Err(Error::config(format!(
                "rule bundle `{name}`: load {k} (-c {} -n {}) is no load: it needs 1 <= threads <= calls",
                load.threads, load.calls
            )));
        }
    }
    let bad = |what: &str, why: String| Error::config(format!("rule bundle `{name}`: {what}: {why}"));
    let rule = DestinationRule::new_full(name, host, rules).map_err(|e| bad(BUNDLE_DESTINATION_RULE, e))?;
    let vs = VirtualService::new(name, host, &rules.retries).map_err(|e| bad(BUNDLE_VIRTUAL_SERVICE, e))?;
    let url = shell_word(&format!("http://{host}:8000/get"));
    let apply = format!("kubectl apply -f {BUNDLE_DESTINATION_RULE} -f {BUNDLE_VIRTUAL_SERVICE}");
    let header = format!("# meshrl rule bundle {name}: {apply}, then run {BUNDLE_FORTIO}.\n");
    let mut script = format!("#!/bin/sh\n{header}set -e\n");
    for (k, load) in loads.iter().enumerate() {
        let _ = writeln!(script, "fortio load -c {} -qps 0 -n {} -json load_{}.json {url}", load.threads, load.calls, k + 1);
    }
    let files = [
        (BUNDLE_DESTINATION_RULE, header.clone() + &rule.to_yaml().map_err(|e| bad(BUNDLE_DESTINATION_RULE, e))?),
        (BUNDLE_VIRTUAL_SERVICE, header + &vs.to_yaml().map_err(|e| bad(BUNDLE_VIRTUAL_SERVICE, e))?),
        (BUNDLE_FORTIO, script),
    ];
    for (file, text) in &files {
        crate::atomic::write_file(&dir.join(file), text)?;
    }
    Ok(())
}

/// The rules a rule bundle directory holds ([`write_rule_bundle`]): its DestinationRule and
/// the retries of its VirtualService.
pub fn read_rule_bundle(dir: &Path) -> Result<TrafficRules> {
    crate::destination_rule::read_rule_files(&dir.join(BUNDLE_DESTINATION_RULE))
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
        small_run_of(dir, pairs, &[], &repo().join("datasets/S1.csv"))
    }

    /// [`small_run`] with baseline pairs and a dataset file of the test's choice.
    fn small_run_of(dir: &Path, pairs: &[Pair], baseline: &[Pair], dataset: &Path) -> PathBuf {
        let cell = dir.join("cells/S1/call_seed1.json");
        std::fs::create_dir_all(cell.parent().unwrap()).unwrap();
        let json = serde_json::json!({ "key": "k", "dataset": "S1", "configuration": "call", "seed": 1, "best_rl": pairs, "best_baseline": baseline });
        std::fs::write(&cell, json.to_string()).unwrap();
        let config = format!("kind = \"table5\"\n[[dataset]]\nname = \"S1\"\npath = \"{}\"\n", dataset.display());
        std::fs::write(dir.join("config.resolved.toml"), config).unwrap();
        cell
    }

    /// The files of a directory, sorted, with their contents.
    fn snapshot(dir: &Path) -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap_or_default())
            })
            .collect();
        files.sort();
        files
    }

    fn names(dir: &Path) -> Vec<String> {
        snapshot(dir).into_iter().map(|(n, _)| n).collect()
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

    /// S1's header and first `rows` rows, with the optional rule columns: odd rows retry with
    /// Istio's default policy under least request and a limit of 16 requests; row 9 (0-based)
    /// has a connect timeout of 1.5 ms, which a trace may hold but Istio cannot.
    fn s1_with_rule_settings(dir: &Path, rows: usize) -> PathBuf {
        let s1 = std::fs::read_to_string(repo().join("datasets/S1.csv")).unwrap();
        let mut lines: Vec<String> = s1.lines().take(rows + 1).map(str::to_string).collect();
        lines[0] += ",load_balancer,retry_attempts,http2_max_requests,connect_timeout_ms";
        for (k, line) in lines.iter_mut().enumerate().skip(1) {
            let row = k - 1;
            let timeout = if row == 9 { "1.5" } else { "10000" };
            *line += &if row % 2 == 1 { format!(",LEAST_REQUEST,2,16,{timeout}") } else { format!(",ROUND_ROBIN,0,4294967295,{timeout}") };
        }
        let path = dir.join("S1_rules.csv");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }

    #[test]
    fn rule_settings_of_the_dataset_are_exported_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let dataset = s1_with_rule_settings(dir.path(), 12);
        let pairs = [pair(0, 3, 30, Some(9.0)), pair(1, 3, 30, Some(8.0)), pair(3, 4, 40, Some(7.0))];
        let cell = small_run_of(dir.path(), &pairs, &[], &dataset);
        let out = dir.path().join("export");
        let runs = export(&args(cell.clone(), out.clone(), 5)).unwrap();
        assert_eq!(runs.len(), 3);
        assert!(runs[0].rules.has_default_knobs() && !runs[1].rules.has_default_knobs());
        assert_eq!(runs[1].rules.retries, crate::rules::RetryPolicy::istio_default());
        // Every run states all its settings, run_1's no-retries and round robin included.
        assert_eq!(
            names(&out),
            [
                "manifest.csv",
                "run_1.virtual-service.yaml",
                "run_1.yaml",
                "run_2.virtual-service.yaml",
                "run_2.yaml",
                "run_3.virtual-service.yaml",
                "run_3.yaml"
            ]
        );
        let yaml = std::fs::read_to_string(out.join("run_1.yaml")).unwrap();
        assert!(yaml.contains("simple: ROUND_ROBIN") && yaml.contains("connectTimeout: 10s"), "{yaml}");
        assert!(std::fs::read_to_string(out.join("run_1.virtual-service.yaml")).unwrap().ends_with("retries:\n      attempts: 0\n"));
        for (n, run) in runs.iter().enumerate() {
            assert_eq!(crate::ingest::read_rule_files(&out.join(format!("run_{}.yaml", n + 1))).unwrap(), run.rules, "run_{}", n + 1);
        }
        let yaml = std::fs::read_to_string(out.join("run_2.yaml")).unwrap();
        assert!(yaml.contains("# kubectl apply -f run_2.yaml -f run_2.virtual-service.yaml, then: fortio load -c 3"), "{yaml}");
        let manifest = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
        assert!(manifest.starts_with(&format!(
            "run,side,yaml,fortio_command,result,{},{},threads,",
            RULE_COLUMNS.join(","),
            KNOB_COLUMNS.join(",")
        )));
        let by_result = crate::ingest::read_manifest(&out.join("manifest.csv")).unwrap();
        assert_eq!(by_result["run_2.json"], runs[1].rules);
        // The VirtualService files are the export's own: a new export replaces them.
        export(&args(cell, out.clone(), 1)).unwrap();
        assert_eq!(names(&out), ["manifest.csv", "run_1.yaml"]);
        // A value Istio cannot hold is refused naming the dataset, row and column.
        let cell = small_run_of(dir.path(), &[pair(9, 3, 30, Some(9.0))], &[], &dataset);
        let err = export(&args(cell, out.clone(), 5)).unwrap_err().to_string();
        assert!(err.contains("S1_rules.csv") && err.contains("row 10") && err.contains("connect_timeout_ms"), "{err}");
    }

    #[test]
    fn a_dataset_of_the_seven_rules_exports_what_it_always_did() {
        let dir = tempfile::tempdir().unwrap();
        let cell = small_run(dir.path(), &[pair(0, 3, 30, Some(4.0)), pair(5, 6, 200, Some(8.0))]);
        let out = dir.path().join("export");
        export(&args(cell, out.clone(), 5)).unwrap();
        assert_eq!(names(&out), ["manifest.csv", "run_1.yaml", "run_2.yaml"]);
        let manifest = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
        assert_eq!(
            manifest.lines().next().unwrap(),
            "run,side,yaml,fortio_command,result,max_pending_requests,max_connections,max_requests_per_connection,\
             ejection_time_s,max_ejection_percent,interval_s,consecutive_errors,threads,calls,sim_reward,emu_reward"
        );
        let yaml = std::fs::read_to_string(out.join("run_1.yaml")).unwrap();
        assert!(yaml.contains("# kubectl apply -f run_1.yaml, then: fortio load") && !yaml.contains("connectTimeout"), "{yaml}");
    }

    #[test]
    fn a_rule_bundle_holds_the_rule_and_its_loads() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle");
        std::fs::create_dir(&bundle).unwrap();
        std::fs::write(bundle.join("notes.txt"), "mine").unwrap();
        let loads = [Load { threads: 4, calls: 40 }, Load { threads: 2, calls: 200 }];
        let every = TrafficRules {
            http2_max_requests: Some(8),
            max_retries: Some(1),
            connect_timeout_ms: 2_000.0,
            load_balancer: crate::rules::LoadBalancer::Random,
            retries: crate::rules::RetryPolicy::istio_1_24_default(),
            ..TrafficRules::default()
        };
        for rules in [TrafficRules::default(), every] {
            write_rule_bundle(&bundle, "meshrl-defend-1", "httpbin", &rules, &loads).unwrap();
            assert_eq!(read_rule_bundle(&bundle).unwrap(), rules);
        }
        assert_eq!(names(&bundle), ["destination-rule.yaml", "fortio.sh", "notes.txt", "virtual-service.yaml"]);
        let script = std::fs::read_to_string(bundle.join("fortio.sh")).unwrap();
        let lines: Vec<&str> = script.lines().filter(|l| l.starts_with("fortio")).collect();
        assert_eq!(
            lines,
            [
                "fortio load -c 4 -qps 0 -n 40 -json load_1.json http://httpbin:8000/get",
                "fortio load -c 2 -qps 0 -n 200 -json load_2.json http://httpbin:8000/get"
            ]
        );
        // At the defaults every setting is still written out: the cluster runs the emulator's.
        write_rule_bundle(&bundle, "meshrl-defend-1", "httpbin", &TrafficRules::default(), &loads).unwrap();
        let rule = std::fs::read_to_string(bundle.join("destination-rule.yaml")).unwrap();
        assert!(rule.contains("connectTimeout: 10s") && rule.contains("simple: ROUND_ROBIN"), "{rule}");
        assert!(std::fs::read_to_string(bundle.join("virtual-service.yaml")).unwrap().ends_with("retries:\n      attempts: 0\n"));
        // Bad input: an error, and nothing written.
        let before = snapshot(&bundle);
        let odd = TrafficRules { connect_timeout_ms: 1.5, ..TrafficRules::default() };
        for (name, rules, loads, needle) in [
            ("Meshrl_1", TrafficRules::default(), &loads[..], "Meshrl_1"),
            ("meshrl-1", TrafficRules::default(), &[Load { threads: 0, calls: 10 }][..], "load 0"),
            ("meshrl-1", TrafficRules::default(), &[Load { threads: 5, calls: 4 }][..], "load 0"),
            ("meshrl-1", TrafficRules::default(), &[][..], "no load"),
            ("meshrl-1", odd, &loads[..], "connect_timeout_ms"),
        ] {
            let err = write_rule_bundle(&bundle, name, "httpbin", &rules, loads).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
            assert_eq!(snapshot(&bundle), before);
        }
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

    #[test]
    fn a_failure_at_the_third_run_leaves_the_old_export_untouched() {
        let dir = tempfile::tempdir().unwrap();
        // S1 with data row 10 (0-based 9) given a max_ejection_percent no DestinationRule can hold.
        let s1 = std::fs::read_to_string(repo().join("datasets/S1.csv")).unwrap();
        let mut lines: Vec<String> = s1.lines().map(str::to_string).collect();
        let mut cells: Vec<&str> = lines[10].split(',').collect();
        cells[4] = "33.5";
        lines[10] = cells.join(",");
        let dataset = dir.path().join("S1_odd.csv");
        std::fs::write(&dataset, lines.join("\n") + "\n").unwrap();
        let good = [pair(0, 3, 30, Some(9.0)), pair(1, 3, 30, Some(8.0)), pair(2, 3, 30, Some(7.0)), pair(3, 3, 30, Some(6.0))];
        let cell = small_run_of(dir.path(), &good, &[], &dataset);
        let out = dir.path().join("export");
        export(&args(cell.clone(), out.clone(), 5)).unwrap();
        let before = snapshot(&out);
        assert_eq!(before.len(), 5, "{before:?}");
        let bad = [pair(4, 5, 50, Some(9.0)), pair(5, 5, 50, Some(8.0)), pair(9, 5, 50, Some(7.0))];
        let cell = small_run_of(dir.path(), &bad, &[], &dataset);
        let err = export(&args(cell, out.clone(), 5)).unwrap_err().to_string();
        assert!(err.contains("S1_odd.csv") && err.contains("row 10") && err.contains("max_ejection_percent"), "{err}");
        assert_eq!(snapshot(&out), before, "the old export is untouched");
        let mut siblings = names(dir.path());
        siblings.retain(|n| n != "cells");
        assert_eq!(siblings, ["S1_odd.csv", "config.resolved.toml", "export"], "no temporary folder is left");
    }

    #[test]
    fn a_smaller_export_replaces_a_larger_one_whole() {
        let dir = tempfile::tempdir().unwrap();
        let pairs: Vec<Pair> = (0..5).map(|r| pair(r, 3, 30, Some(10.0 - r as f64))).collect();
        let cell = small_run(dir.path(), &pairs);
        let out = dir.path().join("export");
        export(&args(cell.clone(), out.clone(), 5)).unwrap();
        assert_eq!(names(&out).len(), 6);
        export(&args(cell, out.clone(), 2)).unwrap();
        assert_eq!(names(&out), ["manifest.csv", "run_1.yaml", "run_2.yaml"], "no stale run_3..5");
        assert_eq!(std::fs::read_to_string(out.join("manifest.csv")).unwrap().lines().count(), 3);
    }

    #[test]
    fn a_folder_that_is_not_a_previous_export_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let cell = small_run(dir.path(), &[pair(0, 3, 30, Some(4.0)), pair(1, 3, 30, Some(3.0))]);
        let out = dir.path().join("export");
        // A user's folder: no manifest.
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("notes.txt"), "mine").unwrap();
        let err = export(&args(cell.clone(), out.clone(), 5)).unwrap_err().to_string();
        assert!(err.contains("export") && err.contains("notes.txt") && err.contains("no manifest.csv"), "{err}");
        assert_eq!(snapshot(&out), [("notes.txt".to_string(), "mine".to_string())]);
        // A manifest that is not an export's.
        std::fs::write(out.join("manifest.csv"), "a,b\n1,2\n").unwrap();
        let err = export(&args(cell.clone(), out.clone(), 5)).unwrap_err().to_string();
        assert!(err.contains("`yaml` and `result`"), "{err}");
        // An empty folder is fine.
        std::fs::remove_dir_all(&out).unwrap();
        std::fs::create_dir(&out).unwrap();
        export(&args(cell.clone(), out.clone(), 5)).unwrap();
        // A previous export with a Fortio result beside it, or another file: refused, kept.
        std::fs::write(out.join("run_1.json"), "{}").unwrap();
        let before = snapshot(&out);
        let err = export(&args(cell.clone(), out.clone(), 1)).unwrap_err().to_string();
        assert!(err.contains("run_1.json") && err.contains("Fortio result"), "{err}");
        assert_eq!(snapshot(&out), before);
        std::fs::remove_file(out.join("run_1.json")).unwrap();
        std::fs::create_dir(out.join("sub")).unwrap();
        let err = export(&args(cell.clone(), out.clone(), 1)).unwrap_err().to_string();
        assert!(err.contains("`sub`") && err.contains("not part of the previous export"), "{err}");
        std::fs::remove_dir(out.join("sub")).unwrap();
        export(&args(cell.clone(), out.clone(), 1)).unwrap();
        assert_eq!(names(&out), ["manifest.csv", "run_1.yaml"]);
        // Only run_<i>.yaml files of the manifest count as the export's, whatever it lists.
        let manifest = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
        std::fs::write(out.join("manifest.csv"), manifest.replace(",run_1.yaml,", ",notes.txt,")).unwrap();
        std::fs::write(out.join("notes.txt"), "mine").unwrap();
        let err = export(&args(cell.clone(), out.clone(), 1)).unwrap_err().to_string();
        assert!(err.contains("`notes.txt`"), "{err}");
        assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
        // A file where the folder should be.
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = export(&args(cell, file.clone(), 1)).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    }

    #[test]
    fn a_pair_without_a_real_load_is_refused_naming_the_field() {
        let table = load_table(&repo().join("datasets/S1.csv"), &TableSpec::default()).unwrap();
        let cases = [
            (pair(1, 0, 30, Some(2.0)), "best_rl[1].threads", "-c 0"),
            (pair(1, 3, 0, Some(2.0)), "best_rl[1].calls", "-n 0"),
            (pair(1, 5, 4, Some(2.0)), "best_rl[1].calls", "fewer than the 5 threads"),
            // Not validated, so never exported, but the cell is damaged all the same.
            (pair(1, 0, 0, None), "best_rl[1].threads", "-c 0"),
        ];
        for (bad, field, why) in cases {
            let pairs = [pair(0, 3, 30, Some(4.0)), bad];
            let err = select(Path::new("cell.json"), &pairs, &table, 5).unwrap_err().to_string();
            assert!(err.starts_with("cell.json: ") && err.contains(field) && err.contains(why), "{err}");
        }
        assert!(select(Path::new("cell.json"), &[pair(0, 3, 3, Some(1.0))], &table, 5).is_ok(), "calls == threads is a load");
        // Through export, and on the baseline's side of a validation export; nothing written.
        let dir = tempfile::tempdir().unwrap();
        let cell = small_run(dir.path(), &[pair(0, 0, 30, Some(4.0))]);
        let out = dir.path().join("export");
        let err = export(&args(cell, out.clone(), 5)).unwrap_err().to_string();
        assert!(err.contains("call_seed1.json") && err.contains("best_rl[0].threads"), "{err}");
        let s1 = repo().join("datasets/S1.csv");
        let cell = small_run_of(dir.path(), &[pair(0, 3, 30, Some(4.0))], &[pair(2, 4, 40, Some(1.0)), pair(3, 4, 0, Some(1.0))], &s1);
        let err = export(&ExportOptions { validation: true, ..args(cell, out.clone(), 5) }).unwrap_err().to_string();
        assert!(err.contains("call_seed1.json") && err.contains("best_baseline[1].calls"), "{err}");
        assert!(!out.exists());
    }
}

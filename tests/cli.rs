//! Integration tests: the real `meshrl` executable, run in throwaway directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn meshrl(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshrl")).args(args).current_dir(cwd).output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(out.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", out.status.code(), text(&out.stdout), text(&out.stderr));
}

#[track_caller]
fn assert_exit_2_naming(out: &Output, needles: &[&str]) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr should name {n:?}:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn help_lists_every_subcommand_with_a_description() {
    let out = meshrl(&["--help"], &repo());
    assert_ok(&out);
    let help = text(&out.stdout);
    for sub in ["generate", "emulate", "inspect", "ingest", "export", "validate"] {
        let line = help.lines().find(|l| l.trim_start().starts_with(sub)).unwrap_or_else(|| panic!("{sub} missing:\n{help}"));
        assert!(line.split_whitespace().count() > 3, "{sub} has no description: {line}");
    }
}

#[test]
fn regenerated_prefix_is_byte_identical_to_the_committed_datasets() {
    let tmp = tempfile::tempdir().unwrap();
    let config = repo().join("configs/datasets.toml");
    let out =
        meshrl(&["generate", "--config", config.to_str().unwrap(), "--rows", "150", "--out-dir", tmp.path().to_str().unwrap()], &repo());
    assert_ok(&out);
    for name in ["S1", "S2", "S3", "S4", "S5"] {
        let fresh = std::fs::read_to_string(tmp.path().join(format!("{name}.csv"))).unwrap();
        let committed = std::fs::read_to_string(repo().join(format!("datasets/{name}.csv"))).unwrap();
        let n = fresh.lines().count();
        assert_eq!(n, 151, "header plus 150 rows");
        let committed_prefix: Vec<&str> = committed.lines().take(n).collect();
        assert_eq!(fresh.lines().collect::<Vec<_>>(), committed_prefix, "{name} differs from datasets/{name}.csv");
    }
    assert!(!tmp.path().join("README.md").exists(), "a partial generation does not write the README");
}

#[test]
fn committed_datasets_have_the_protocol_row_counts_and_load() {
    for (name, rows) in [("S1", 9302), ("S2", 12005), ("S3", 20592), ("S4", 12310), ("S5", 6970)] {
        let path = repo().join(format!("datasets/{name}.csv"));
        let out = meshrl(&["inspect", path.to_str().unwrap()], &repo());
        assert_ok(&out);
        let stdout = text(&out.stdout);
        assert!(stdout.lines().next().unwrap().ends_with(&format!(": {rows} rows")), "{stdout}");
        assert!(stdout.contains("failure_rate histogram"), "{stdout}");
    }
}

#[test]
fn generate_rejects_a_bad_config_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "seed = 1\n[[dataset]]\nname = \"X\"\nrows = 5\nthreads = [5, 1]\n").unwrap();
    let out = meshrl(&["generate", "--config", bad.to_str().unwrap(), "--out-dir", tmp.path().to_str().unwrap()], tmp.path());
    assert_exit_2_naming(&out, &["bad.toml", "missing field"]);
    let unknown = tmp.path().join("unknown.toml");
    let valid = std::fs::read_to_string(repo().join("configs/datasets.toml")).unwrap();
    std::fs::write(&unknown, format!("speed = 3\n{valid}")).unwrap();
    let out = meshrl(&["generate", "--config", unknown.to_str().unwrap()], tmp.path());
    assert_exit_2_naming(&out, &["unknown.toml", "speed"]);
    let missing = meshrl(&["generate", "--config", "nowhere.toml"], tmp.path());
    assert_exit_2_naming(&missing, &["nowhere.toml"]);
}

#[test]
fn inspect_rejects_a_bad_trace_naming_file_row_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let committed = std::fs::read_to_string(repo().join("datasets/S1.csv")).unwrap();
    let mut lines: Vec<String> = committed.lines().take(6).map(String::from).collect();
    // Row 3 gets a failure rate of 1.5 (column 11 of the schema).
    let mut cells: Vec<String> = lines[3].split(',').map(String::from).collect();
    cells[10] = "1.5".into();
    lines[3] = cells.join(",");
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let out = meshrl(&["inspect", bad.to_str().unwrap()], tmp.path());
    assert_exit_2_naming(&out, &["bad.csv", "row 3", "failure_rate"]);
}

#[test]
fn inspect_loads_a_real_testbed_csv_with_its_own_columns() {
    let path = repo().join("../shared/external/tnsm2023/data.csv");
    if !path.exists() {
        eprintln!("skipped: {} is absent", path.display());
        return;
    }
    let out = meshrl(&["inspect", path.to_str().unwrap(), "--features", "max_l1,l1,cl1,p1,b1,c1", "--targets", "d1"], &repo());
    assert_ok(&out);
    assert!(text(&out.stdout).contains(": 4500 rows"));
}

#[test]
fn emulate_prints_the_distribution_and_the_published_runs() {
    let out = meshrl(&["emulate", "--threads", "3", "--calls", "30", "--runs", "200", "--fault-share", "0"], &repo());
    assert_ok(&out);
    let stdout = text(&out.stdout);
    for needle in ["503 share (%)", "qps", "mean latency (ms)", "published real runs", "Fortio 1.3.1"] {
        assert!(stdout.contains(needle), "{needle} missing:\n{stdout}");
    }
    let bad = meshrl(&["emulate", "--threads", "0"], &repo());
    assert_exit_2_naming(&bad, &["threads must be >= 1"]);
}

/// A tiny Table 4 config: two datasets, few rows, small networks, two seeds.
fn tiny_table4(dir: &Path, extra: &str) -> PathBuf {
    let repo = repo();
    let config = format!(
        r#"kind = "table4"
seed = 3
repeats = 2
out_dir = "{out}"
models_dir = "{out}/models"
{extra}
[[dataset]]
name = "S1"
path = "{repo}/datasets/S1.csv"
max_rows = 400

[[dataset]]
name = "S4"
path = "{repo}/datasets/S4.csv"
max_rows = 400

[mlp]
hidden = [32, 32]
max_epochs = 4

[svr]
max_train_rows = 150
"#,
        out = dir.join("out").display(),
        repo = repo.display()
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn table4_tiny_run_writes_tables_plots_models_and_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_table4(tmp.path(), "");
    let out = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("claim 1 (the MLP has the lowest simulator MSE on every dataset)"), "{stdout}");
    let dir = tmp.path().join("out");
    for f in ["table4.csv", "table4.md", "parity_S1.png", "parity_S4.png", "config.resolved.toml"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    assert!(dir.join("models/S1/mlp_seed3.safetensors").exists());
    assert!(dir.join("models/S1/mlp_seed4.inputs.json").exists());
    let csv = std::fs::read_to_string(dir.join("table4.csv")).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("S1,mlp,all,mse,") && l.ends_with(",2,3 4,0.13")), "{csv}");
    assert_eq!(csv.lines().filter(|l| l.contains(",all,mse,")).count(), 2 * 4);

    // Same seed from scratch: the same table, byte for byte.
    let again = tempfile::tempdir().unwrap();
    let config2 = tiny_table4(again.path(), "");
    assert_ok(&meshrl(&["run", config2.to_str().unwrap()], again.path()));
    let md = |d: &Path| std::fs::read_to_string(d.join("out/table4.md")).unwrap();
    assert_eq!(csv, std::fs::read_to_string(again.path().join("out/table4.csv")).unwrap());
    assert_eq!(md(tmp.path()), md(again.path()));

    // A rerun resumes: no cell is fitted again, the table is unchanged.
    let resumed = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert_ok(&resumed);
    assert!(!text(&resumed.stdout).contains("test MSE"), "cells were refitted:\n{}", text(&resumed.stdout));
    assert_eq!(csv, std::fs::read_to_string(dir.join("table4.csv")).unwrap());

    // The saved simulator predicts a trace file from the command line.
    let model = dir.join("models/S1/mlp_seed3.safetensors");
    let pred = meshrl(&["predict", model.to_str().unwrap(), repo().join("datasets/S1.csv").to_str().unwrap()], tmp.path());
    assert_ok(&pred);
    assert!(text(&pred.stdout).contains("failure_rate: MSE"));

    // A model file of the wrong shape, and a corrupt one: exit 2, the file named.
    let s4_model = dir.join("models/S4/mlp_seed3.safetensors");
    let trace = repo().join("../shared/external/tnsm2023/data.csv");
    let wrong = tmp.path().join("wrong.safetensors");
    // Wrong shape: weights of a 9-input network with a 6-input normaliser.
    std::fs::copy(&s4_model, &wrong).unwrap();
    std::fs::write(tmp.path().join("wrong.inputs.json"), r#"{"names":["a","b","c","d","e","f"],"mean":[0,0,0,0,0,0],"std":[1,1,1,1,1,1]}"#)
        .unwrap();
    std::fs::copy(dir.join("models/S4/mlp_seed3.outputs.json"), tmp.path().join("wrong.outputs.json")).unwrap();
    let out = meshrl(&["predict", wrong.to_str().unwrap(), trace.to_str().unwrap()], tmp.path());
    assert_exit_2_naming(&out, &["wrong.safetensors", "9 inputs"]);
    std::fs::write(&model, b"\x10\x00\x00\x00\x00\x00\x00\x00{broken").unwrap();
    let out = meshrl(&["predict", model.to_str().unwrap(), repo().join("datasets/S1.csv").to_str().unwrap()], tmp.path());
    assert_exit_2_naming(&out, &["mlp_seed3.safetensors", "safetensors"]);
}

#[test]
fn table4_rejects_bad_configs_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_table4(tmp.path(), "colour = \"blue\"");
    assert_exit_2_naming(&meshrl(&["run", config.to_str().unwrap()], tmp.path()), &["tiny.toml", "colour"]);

    let config = tiny_table4(tmp.path(), "");
    let missing = meshrl(&["run", config.to_str().unwrap(), "--set", "models=[\"mlp\", \"boosting\"]"], tmp.path());
    assert_exit_2_naming(&missing, &["boosting"]);

    let text_cfg = std::fs::read_to_string(&config).unwrap().replace("datasets/S4.csv", "datasets/S9.csv");
    std::fs::write(&config, text_cfg).unwrap();
    assert_exit_2_naming(&meshrl(&["run", config.to_str().unwrap()], tmp.path()), &["S9.csv"]);

    let text_cfg = std::fs::read_to_string(&config)
        .unwrap()
        .replace("datasets/S9.csv\"", "datasets/S4.csv\"\ntargets = [\"qps\", \"latency_p999_ms\"]");
    std::fs::write(&config, text_cfg).unwrap();
    assert_exit_2_naming(&meshrl(&["run", config.to_str().unwrap()], tmp.path()), &["S4.csv", "latency_p999_ms"]);
}

/// A tiny Table 5 config: S1, three configurations, small networks, a simulator trained
/// on the spot (none exists in the temporary directory).
fn tiny_table5(dir: &Path) -> PathBuf {
    let repo = repo();
    let config = format!(
        r#"kind = "table5"
seed = 5
repeats = 1
out_dir = "{out}"
epochs = 4
steps_per_epoch = 60
rolling_window = 2
configurations = ["call", "thread-call", "thread&call*5"]
datasets_config = "{repo}/configs/datasets.toml"
simulators_dir = "{out}/models"
validation_pairs = 40

[[dataset]]
name = "S1"
path = "{repo}/datasets/S1.csv"

[simulator]
hidden = [32, 32]
max_epochs = 2

[dqn]
hidden = 32
learning_rate = 1e-3
learning_rate_multi = 1e-3
learning_starts = 30
"#,
        out = dir.join("out").display(),
        repo = repo.display()
    );
    let path = dir.join("tiny5.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn table5_tiny_run_writes_tables_curves_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_table5(tmp.path());
    let out = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("no simulator at"), "a missing simulator is trained first:\n{stdout}");
    for claim in ["claim 2", "claim 3", "claim 5", "claim 6", "oracle: the agents reach"] {
        assert!(stdout.contains(claim), "{claim} missing:\n{stdout}");
    }
    let dir = tmp.path().join("out");
    for f in [
        "table5.csv",
        "table5.md",
        "metrics.csv",
        "figure7.png",
        "config.resolved.toml",
        "curves/S1_thread_and_call_x5.png",
        "pairs/S1/call_seed5.csv",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let csv = std::fs::read_to_string(dir.join("table5.csv")).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("S1,thread-call,sim,") && l.ends_with(",2.24")), "{csv}");
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 1 + 3 * 4, "one line per cell and epoch");
    // On the simulator the oracle takes the best load of every state: nothing beats it.
    let mean_of = |conf: &str, metric: &str| -> f64 {
        let prefix = format!("S1,{conf},{metric},");
        let line = csv.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{prefix} missing:\n{csv}"));
        line[prefix.len()..].split(',').next().unwrap().parse().unwrap()
    };
    for conf in ["call", "thread-call", "thread&call*5"] {
        let (agent, fixed, oracle) = (mean_of(conf, "best_epoch_sim"), mean_of(conf, "fixed_sim"), mean_of(conf, "oracle_sim"));
        assert!(oracle >= agent && oracle >= fixed && fixed > 0.0, "{conf}: agent {agent}, fixed {fixed}, oracle {oracle}");
        assert!(mean_of(conf, "reach_sim") <= 1.0);
    }
    let md = std::fs::read_to_string(dir.join("table5.md")).unwrap();
    assert!(md.contains("## Yardsticks") && md.contains("Oracle Val."), "{md}");
    let pairs = std::fs::read_to_string(dir.join("pairs/S1/call_seed5.csv")).unwrap();
    assert_eq!(pairs.lines().count(), 1 + 2 * 40, "validation_pairs per side");

    // Interrupted run: one finished cell lost, the tables not yet written. The rerun
    // redoes only that cell and ends with the same table.
    std::fs::remove_file(dir.join("cells/S1/thread-call_seed5.json")).unwrap();
    std::fs::remove_file(dir.join("table5.csv")).unwrap();
    let resumed = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert_ok(&resumed);
    let lines = text(&resumed.stdout);
    assert!(lines.contains("resuming: 2 of 3 cells already done"), "{lines}");
    assert_eq!(lines.matches("seed 5: Sim. ").count(), 1, "only the lost cell is retrained:\n{lines}");
    assert_eq!(csv, std::fs::read_to_string(dir.join("table5.csv")).unwrap());

    // The same seed from scratch (with the simulator already there): the same table.
    std::fs::remove_dir_all(dir.join("cells")).unwrap();
    assert_ok(&meshrl(&["run", config.to_str().unwrap()], tmp.path()));
    assert_eq!(csv, std::fs::read_to_string(dir.join("table5.csv")).unwrap());

    // A real cell exports: its best validated loads as DestinationRules and a manifest.
    let export = tmp.path().join("export");
    let out = meshrl(
        &["export", dir.join("cells/S1/call_seed5.json").to_str().unwrap(), "--top", "3", "--out", export.to_str().unwrap()],
        tmp.path(),
    );
    assert_ok(&out);
    for f in ["run_1.yaml", "run_2.yaml", "run_3.yaml", "manifest.csv"] {
        assert!(export.join(f).exists(), "{f} missing:\n{}", text(&out.stdout));
    }
    assert_eq!(std::fs::read_to_string(export.join("manifest.csv")).unwrap().lines().count(), 4);

    // Every validated pair of both sides, then Val. from "real" runs: with the same Fortio
    // result for every run, the agents and the baseline tie at exactly 1.
    let export_val = tmp.path().join("export_val");
    let cell = dir.join("cells/S1/call_seed5.json");
    assert_ok(&meshrl(&["export", cell.to_str().unwrap(), "--validation", "--out", export_val.to_str().unwrap()], tmp.path()));
    let manifest = std::fs::read_to_string(export_val.join("manifest.csv")).unwrap();
    assert_eq!(manifest.lines().count(), 1 + 2 * 40, "validation_pairs per side");
    let partial = meshrl(&["validate", "--fortio", export_val.to_str().unwrap()], tmp.path());
    assert_exit_2_naming(&partial, &["manifest.csv", "no Fortio result"]);
    for line in manifest.lines().skip(1) {
        let result = line.split(',').find(|f| f.starts_with("run_") && f.ends_with(".json")).unwrap();
        std::fs::copy(fortio_fixtures().join("run_a.json"), export_val.join(result)).unwrap();
    }
    let out = meshrl(&["validate", "--fortio", export_val.to_str().unwrap()], tmp.path());
    assert_ok(&out);
    assert!(text(&out.stdout).contains("Val. from 40 agent and 40 baseline runs: 1.000"), "{}", text(&out.stdout));
}

/// A run killed (SIGKILL, no chance to clean up) after its first finished cell: every cell
/// file on disk reads back whole, and the rerun keeps them and does only the rest.
#[test]
fn table5_killed_run_resumes_without_redoing_finished_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_table5(tmp.path());
    let text_cfg = std::fs::read_to_string(&config).unwrap().replace(
        "configurations = [\"call\", \"thread-call\", \"thread&call*5\"]",
        "configurations = [\"call\", \"thread\", \"thread-call\", \"call-thread\", \"thread&call\"]\nparallel_cells = 1",
    );
    std::fs::write(&config, text_cfg).unwrap();
    let cells = tmp.path().join("out/cells/S1");
    let finished = || -> Vec<(PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(&cells)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect())
            .unwrap_or_default();
        v.sort();
        v.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshrl"))
        .args(["run", config.to_str().unwrap()])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while finished().is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = finished();
    assert!(!before.is_empty() && before.len() < 5, "killed between the first and the last cell: {}", before.len());
    for (path, bytes) in &before {
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{} is not whole: {e}", path.display()));
        assert!(v.get("yardsticks").is_some());
    }
    let resumed = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert_ok(&resumed);
    let lines = text(&resumed.stdout);
    assert!(lines.contains(&format!("resuming: {} of 5 cells already done", before.len())), "{lines}");
    assert_eq!(lines.matches("seed 5: Sim. ").count(), 5 - before.len(), "only unfinished cells run:\n{lines}");
    let after = finished();
    for cell in &before {
        assert!(after.contains(cell), "{} was rewritten", cell.0.display());
    }
    assert_eq!(after.len(), 5);
}

#[test]
fn table5_rejects_bad_configs_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_table5(tmp.path());
    let bad = meshrl(&["run", config.to_str().unwrap(), "--set", "configurations=[\"call\", \"threads\"]"], tmp.path());
    assert_exit_2_naming(&bad, &["tiny5.toml", "threads"]);
    let bad = meshrl(&["run", config.to_str().unwrap(), "--set", "dqn.gamma=2"], tmp.path());
    assert_exit_2_naming(&bad, &["gamma"]);
    let text_cfg = std::fs::read_to_string(&config).unwrap().replace("name = \"S1\"", "name = \"S7\"");
    std::fs::write(&config, text_cfg).unwrap();
    assert_exit_2_naming(&meshrl(&["run", config.to_str().unwrap()], tmp.path()), &["S7", "grid"]);
}

#[test]
fn table4_redoes_cells_when_the_dataset_file_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let s1 = std::fs::read_to_string(repo().join("datasets/S1.csv")).unwrap();
    let data = tmp.path().join("mine.csv");
    std::fs::write(&data, s1.lines().take(301).collect::<Vec<_>>().join("\n")).unwrap();
    let config = tmp.path().join("t4.toml");
    std::fs::write(
        &config,
        format!(
            "kind = \"table4\"\nrepeats = 1\nmodels = [\"ridge\"]\nout_dir = \"{}\"\n[[dataset]]\nname = \"mine\"\npath = \"{}\"\n",
            tmp.path().join("out").display(),
            data.display()
        ),
    )
    .unwrap();
    let fitted = |out: &Output| text(&out.stdout).contains("test MSE");
    let first = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert_ok(&first);
    assert!(fitted(&first));
    let again = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert!(!fitted(&again), "unchanged file: the cell is reused");
    // Same path, other content (one row fewer): the finished cell no longer counts.
    std::fs::write(&data, s1.lines().take(300).collect::<Vec<_>>().join("\n")).unwrap();
    let changed = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert_ok(&changed);
    assert!(fitted(&changed), "{}", text(&changed.stdout));
}

fn fortio_fixtures() -> PathBuf {
    repo().join("tests/fixtures/fortio")
}

#[test]
fn ingest_fortio_writes_a_trace_that_inspect_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let by_yaml = tmp.path().join("by_yaml.csv");
    let out = meshrl(&["ingest", "fortio", fortio_fixtures().to_str().unwrap(), "--out", by_yaml.to_str().unwrap()], tmp.path());
    assert_ok(&out);
    assert!(text(&out.stdout).starts_with("3 Fortio results"), "{}", text(&out.stdout));
    let trace = std::fs::read_to_string(&by_yaml).unwrap();
    let lines: Vec<&str> = trace.lines().collect();
    assert_eq!(
        lines[0],
        "max_pending_requests,max_connections,max_requests_per_connection,ejection_time_s,max_ejection_percent,interval_s,consecutive_errors,\
         threads,calls,qps,failure_rate,latency_mean_ms,latency_p50_ms,latency_p90_ms,latency_p99_ms,duration_s"
    );
    // run_a: Istio's circuit-breaking task, 12 of 30 calls answered 503.
    assert_eq!(lines[1], "1,1,1,180,100,1,1,3,30,1093.762,0.400000,2.6810,2.3750,5.0000,12.0136,0.027428");
    // run_c: socket errors (code -1) count as failures: 163 of 200.
    assert!(lines[3].starts_with("3,2,2,60,100,10,5,10,200,2310.447,0.815000,"), "{}", lines[3]);
    let inspect = meshrl(&["inspect", by_yaml.to_str().unwrap()], tmp.path());
    assert_ok(&inspect);
    assert!(text(&inspect.stdout).lines().next().unwrap().ends_with(": 3 rows"), "{}", text(&inspect.stdout));
    // The manifest gives the same rules as the YAML files: the same trace, byte for byte.
    let by_manifest = tmp.path().join("by_manifest.csv");
    let manifest = fortio_fixtures().join("manifest.csv");
    let out = meshrl(
        &[
            "ingest",
            "fortio",
            fortio_fixtures().to_str().unwrap(),
            "--rules",
            manifest.to_str().unwrap(),
            "--out",
            by_manifest.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_ok(&out);
    assert_eq!(trace, std::fs::read_to_string(&by_manifest).unwrap());
}

#[test]
fn ingest_fortio_rejects_bad_inputs_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("results");
    std::fs::create_dir(&dir).unwrap();
    let json = std::fs::read_to_string(fortio_fixtures().join("run_a.json")).unwrap();
    let yaml = std::fs::read_to_string(fortio_fixtures().join("run_a.yaml")).unwrap();
    let out_csv = tmp.path().join("trace.csv");
    let ingest = |extra: &[&str]| {
        let mut args = vec!["ingest", "fortio", dir.to_str().unwrap(), "--out", out_csv.to_str().unwrap()];
        args.extend_from_slice(extra);
        meshrl(&args, tmp.path())
    };
    // A result with no rules.
    std::fs::write(dir.join("r1.json"), &json).unwrap();
    assert_exit_2_naming(&ingest(&[]), &["r1.json", "no rules", "r1.yaml"]);
    // A duration with a unit Istio does not have.
    std::fs::write(dir.join("r1.yaml"), yaml.replace("baseEjectionTime: 3m", "baseEjectionTime: 3min")).unwrap();
    assert_exit_2_naming(&ingest(&[]), &["r1.yaml", "baseEjectionTime", "3min"]);
    // A rule field the trace cannot record.
    std::fs::write(dir.join("r1.yaml"), yaml.replace("maxEjectionPercent: 100", "maxEjectionPercent: 100\n      minHealthPercent: 50"))
        .unwrap();
    assert_exit_2_naming(&ingest(&[]), &["r1.yaml", "minHealthPercent"]);
    // A Fortio field of the wrong type.
    std::fs::write(dir.join("r1.yaml"), &yaml).unwrap();
    std::fs::write(dir.join("r1.json"), json.replace("\"ActualDuration\": 27428191", "\"ActualDuration\": \"27ms\"")).unwrap();
    assert_exit_2_naming(&ingest(&[]), &["r1.json", "ActualDuration"]);
    // A manifest without a row for the result.
    std::fs::write(dir.join("r1.json"), &json).unwrap();
    let manifest = tmp.path().join("manifest.csv");
    let text_m = std::fs::read_to_string(fortio_fixtures().join("manifest.csv")).unwrap();
    std::fs::write(&manifest, &text_m).unwrap();
    assert_exit_2_naming(&ingest(&["--rules", manifest.to_str().unwrap()]), &["manifest.csv", "result", "r1.json"]);
    assert!(!out_csv.exists(), "no trace is written on error");
    // An empty directory.
    std::fs::remove_file(dir.join("r1.json")).unwrap();
    assert_exit_2_naming(&ingest(&[]), &["results", "no Fortio result"]);
}

/// A Table 5 run directory made by hand: one S1 cell whose dataset path is relative to the
/// repository, as in a run made there.
fn hand_made_run(dir: &Path) -> PathBuf {
    let pair = |row: usize, threads: u32, calls: u32, emu: f64| serde_json::json!({ "service": 0, "row": row, "threads": threads, "calls": calls, "sim_reward": emu * 0.9, "emu_reward": emu });
    let cell = dir.join("run/cells/S1/thread-call_seed2.json");
    std::fs::create_dir_all(cell.parent().unwrap()).unwrap();
    let json = serde_json::json!({
        "key": "hand made", "dataset": "S1", "configuration": "thread-call", "seed": 2,
        "best_rl": [pair(10, 3, 30, 12.5), pair(4, 6, 300, 40.0), pair(4, 6, 300, 40.0), pair(0, 2, 200, 25.0)],
        "best_baseline": [],
    });
    std::fs::write(&cell, json.to_string()).unwrap();
    std::fs::write(dir.join("run/config.resolved.toml"), "kind = \"table5\"\n\n[[dataset]]\nname = \"S1\"\npath = \"datasets/S1.csv\"\n")
        .unwrap();
    cell
}

#[test]
fn export_writes_rules_that_ingest_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let cell = hand_made_run(tmp.path());
    let export = tmp.path().join("export");
    let out = meshrl(&["export", cell.to_str().unwrap(), "--out", export.to_str().unwrap(), "--url", "http://httpbin:8000/get"], &repo());
    assert_ok(&out);
    let manifest = std::fs::read_to_string(export.join("manifest.csv")).unwrap();
    let lines: Vec<&str> = manifest.lines().collect();
    assert_eq!(lines.len(), 1 + 3, "the duplicate pair is exported once:\n{manifest}");
    assert!(
        lines[1].starts_with("1,rl,run_1.yaml,fortio load -c 6 -qps 0 -n 300 -json run_1.json http://httpbin:8000/get,run_1.json,"),
        "{manifest}"
    );
    assert!(lines[2].starts_with("2,rl,run_2.yaml,fortio load -c 2 -qps 0 -n 200 "), "{manifest}");
    // Running the commands leaves run_<i>.json beside run_<i>.yaml; stand-ins here.
    for i in 1..=3 {
        std::fs::copy(fortio_fixtures().join("run_b.json"), export.join(format!("run_{i}.json"))).unwrap();
    }
    let trace = tmp.path().join("trace.csv");
    assert_ok(&meshrl(&["ingest", "fortio", export.to_str().unwrap(), "--out", trace.to_str().unwrap()], tmp.path()));
    let rules_of = |line: &str| line.split(',').take(7).map(|c| c.parse::<f64>().unwrap()).collect::<Vec<_>>();
    let trace_text = std::fs::read_to_string(&trace).unwrap();
    let s1 = std::fs::read_to_string(repo().join("datasets/S1.csv")).unwrap();
    for (i, row) in [4usize, 0, 10].iter().enumerate() {
        let expected = rules_of(s1.lines().nth(row + 1).unwrap());
        assert_eq!(rules_of(trace_text.lines().nth(i + 1).unwrap()), expected, "run_{}", i + 1);
        let from_manifest: Vec<f64> = lines[i + 1].split(',').skip(5).take(7).map(|c| c.parse().unwrap()).collect();
        assert_eq!(from_manifest, expected);
    }
    let via_manifest = tmp.path().join("trace_m.csv");
    let m = export.join("manifest.csv");
    assert_ok(&meshrl(
        &["ingest", "fortio", export.to_str().unwrap(), "--rules", m.to_str().unwrap(), "--out", via_manifest.to_str().unwrap()],
        tmp.path(),
    ));
    assert_eq!(trace_text, std::fs::read_to_string(&via_manifest).unwrap());
}

#[test]
fn export_rejects_bad_inputs_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let cell = hand_made_run(tmp.path());
    let out_dir = tmp.path().join("export");
    let export = |cwd: &Path| meshrl(&["export", cell.to_str().unwrap(), "--out", out_dir.to_str().unwrap()], cwd);
    // Made elsewhere: the relative dataset path does not resolve.
    assert_exit_2_naming(&export(tmp.path()), &["datasets/S1.csv", "config.resolved.toml", "relative"]);
    std::fs::remove_file(tmp.path().join("run/config.resolved.toml")).unwrap();
    assert_exit_2_naming(&export(&repo()), &["config.resolved.toml"]);
    std::fs::write(&cell, "{\"dataset\": \"S1\"}").unwrap();
    assert_exit_2_naming(&export(&repo()), &["thread-call_seed2.json", "best_rl"]);
    let out = meshrl(&["export", cell.to_str().unwrap(), "--out", out_dir.to_str().unwrap(), "--top", "0"], &repo());
    assert_exit_2_naming(&out, &["--top"]);
    assert!(!out_dir.exists(), "nothing is written on error");
}

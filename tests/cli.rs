//! Integration tests: the real `meshrl` executable, run in throwaway directories.

mod common;
use common::{assert_exit_2_naming, assert_ok, meshrl, repo, text, tree};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// A DestinationRule as a user may have it: most fields left to Istio's defaults.
const SPARSE_RULE: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: httpbin
spec:
  host: httpbin
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 10
    outlierDetection:
      consecutive5xxErrors: 3
";

#[test]
fn emulate_takes_the_users_rules_with_istio_defaults_and_flags_on_top() {
    let tmp = tempfile::tempdir().unwrap();
    let dr = tmp.path().join("dr.yaml");
    std::fs::write(&dr, SPARSE_RULE).unwrap();
    let rule_line = |args: &[&str]| {
        let out = meshrl(&[&["emulate", "--runs", "5"], args].concat(), tmp.path());
        assert_ok(&out);
        text(&out.stdout).lines().find(|l| l.starts_with("rule: ")).expect("the rule is printed").to_string()
    };
    // No file: the circuit-breaking task's rule, as before.
    assert!(rule_line(&[]).starts_with("rule: conn 1, pending 1, in-flight unlimited, req/conn 1, 5xx 1, eject 100% for 180 s, no retries"));
    // The file: what it omits takes Istio's (and Envoy's) defaults.
    let from_file = rule_line(&["--destination-rule", "dr.yaml"]);
    assert!(
        from_file.starts_with("rule: conn 10, pending unlimited, in-flight unlimited, req/conn unlimited, 5xx 3, eject 10% for 30 s, no retries, RoundRobin; outlier interval 10 s, connect timeout 10000 ms"),
        "{from_file}"
    );
    // Flags override the file, knobs included; the VirtualService brings its retries.
    let vs = tmp.path().join("vs.yaml");
    std::fs::write(
        &vs,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: httpbin\nspec:\n  hosts: [httpbin]\n  http:\n  - route:\n    - destination:\n        host: httpbin\n    retries:\n      attempts: 3\n      retryOn: 5xx\n",
    )
    .unwrap();
    let both = rule_line(&[
        "--destination-rule",
        "dr.yaml",
        "--virtual-service",
        "vs.yaml",
        "--max-connections",
        "4",
        "--http2-max-requests",
        "8",
        "--load-balancer",
        "LEAST_REQUEST",
    ]);
    assert!(both.starts_with("rule: conn 4, pending unlimited, in-flight 8, req/conn unlimited, 5xx 3, eject 10% for 30 s, 3 retries (503 too), LeastRequest"), "{both}");
    assert!(rule_line(&["--destination-rule", "dr.yaml", "--retry-attempts", "0", "--virtual-service", "vs.yaml"]).contains("no retries"));

    // Bad input: the file and its field, or the flag, and exit 2.
    std::fs::write(&dr, SPARSE_RULE.replace("maxConnections: 10", "maxConnections: 0")).unwrap();
    assert_exit_2_naming(&meshrl(&["emulate", "--destination-rule", "dr.yaml"], tmp.path()), &["dr.yaml", "maxConnections"]);
    std::fs::write(&dr, SPARSE_RULE.replace("maxConnections: 10", "maxConnections: 10\n        idleTimeout: 1s")).unwrap();
    assert_exit_2_naming(&meshrl(&["emulate", "--destination-rule", "dr.yaml"], tmp.path()), &["dr.yaml", "idleTimeout"]);
    assert_exit_2_naming(&meshrl(&["emulate", "--destination-rule", "missing.yaml"], tmp.path()), &["missing.yaml"]);
    assert_exit_2_naming(&meshrl(&["emulate", "--load-balancer", "MAGLEV"], tmp.path()), &["--load-balancer", "MAGLEV"]);
    assert_exit_2_naming(&meshrl(&["emulate", "--retry-on-503", "yes"], tmp.path()), &["--retry-on-503"]);

    // Every knob the defender searches has a flag, listed by --help.
    let help = text(&meshrl(&["emulate", "--help"], tmp.path()).stdout);
    for flag in [
        "--destination-rule",
        "--virtual-service",
        "--http2-max-requests",
        "--max-retries",
        "--connect-timeout-ms",
        "--load-balancer",
        "--retry-attempts",
        "--retry-on-503",
        "--retry-on-connect-failure",
        "--retry-previous-hosts",
        "--retry-backoff-ms",
        "--consecutive-errors",
        "--ejection-time-s",
        "--max-ejection-percent",
    ] {
        assert!(help.contains(flag), "{flag} missing from emulate --help:\n{help}");
    }
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

/// The tiny Table 5 with other configurations (a TOML list's items), one cell at a time.
fn tiny_table5_one_at_a_time(dir: &Path, configurations: &str) -> PathBuf {
    let config = tiny_table5(dir);
    let text_cfg = std::fs::read_to_string(&config).unwrap().replace(
        "configurations = [\"call\", \"thread-call\", \"thread&call*5\"]",
        &format!("configurations = [{configurations}]\nparallel_cells = 1"),
    );
    std::fs::write(&config, text_cfg).unwrap();
    config
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
    // Wall times go to the uncommitted file; the committed snapshot only on request.
    let timing = std::fs::read_to_string(dir.join("wall_time.md")).unwrap();
    assert!(timing.contains("| thread&call*5 | 1 |") && timing.contains("| 64 |"), "{timing}");
    assert!(!dir.join("timing.md").exists(), "timing.md is written only with --timing-snapshot");
    assert_ok(&meshrl(&["report", config.to_str().unwrap(), "--timing-snapshot"], tmp.path()));
    assert_eq!(timing, std::fs::read_to_string(dir.join("timing.md")).unwrap());
    let pairs = std::fs::read_to_string(dir.join("pairs/S1/call_seed5.csv")).unwrap();
    assert_eq!(pairs.lines().count(), 1 + 3 * 40, "validation_pairs per side");

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
    assert_eq!(manifest.lines().count(), 1 + 2 * 40, "validation_pairs per side (the agents and the baseline)");
    let partial = meshrl(&["validate", "--fortio", export_val.to_str().unwrap()], tmp.path());
    assert_exit_2_naming(&partial, &["manifest.csv", "no Fortio result"]);
    fill_results(&export_val, "run_a.json");
    let out = meshrl(&["validate", "--fortio", export_val.to_str().unwrap()], tmp.path());
    assert_ok(&out);
    // Every run has the fixture's qps and, up to rounding to whole calls, its 503 share: the
    // agents and the baseline tie at about 1.
    let stdout = text(&out.stdout);
    let val: f64 = stdout
        .split("Val. from 40 agent and 40 baseline runs: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!((val - 1.0).abs() < 0.01, "{stdout}");
}

/// git, in `dir`, with an identity (for the commit of the miniature checkout).
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=meshrl", "-c", "user.email=meshrl@localhost", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The main command must leave a checkout clean: a run's committed files (everything the
/// repository's .gitignore keeps) come out byte for byte the same on a rerun of a finished
/// run, and on a fresh run of a fresh clone (no cells, no simulators).
#[test]
fn rerunning_a_committed_run_changes_no_committed_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let checkout = tmp.path();
    std::fs::copy(repo().join(".gitignore"), checkout.join(".gitignore")).unwrap();
    let config = tiny_table5(checkout);
    let out = checkout.join("out").display().to_string();
    let in_results = checkout.join("results/tiny").display().to_string();
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap().replace(&out, &in_results)).unwrap();
    assert_ok(&meshrl(&["run", config.to_str().unwrap()], checkout));
    git(checkout, &["init", "-q"]);
    git(checkout, &["add", "-A"]);
    git(checkout, &["commit", "-q", "-m", "a run"]);
    let committed = git(checkout, &["ls-files"]);
    assert!(committed.contains("results/tiny/table5.md") && committed.contains("results/tiny/figure7.png"), "{committed}");
    assert!(!committed.contains("wall_time.md") && !committed.contains("cells/"), "{committed}");

    assert_ok(&meshrl(&["run", config.to_str().unwrap()], checkout));
    assert_eq!(git(checkout, &["status", "--porcelain"]), "", "a rerun of a finished run");
    git(checkout, &["clean", "-q", "-f", "-d", "-X"]);
    assert!(!checkout.join("results/tiny/cells").exists() && !checkout.join("results/tiny/models").exists());
    assert_ok(&meshrl(&["run", config.to_str().unwrap()], checkout));
    assert_eq!(git(checkout, &["status", "--porcelain"]), "", "a fresh clone's run");
}

/// A run killed (SIGKILL, no chance to clean up) after its first finished cell: every cell
/// file on disk reads back whole, and the rerun keeps them and does only the rest.
#[test]
fn table5_killed_run_resumes_without_redoing_finished_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_table5_one_at_a_time(tmp.path(), "\"call\", \"thread\", \"thread-call\", \"call-thread\", \"thread&call\"");
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

/// A cell killed mid-way resumes from its last checkpoint and ends with the very cell an
/// uninterrupted run writes.
#[test]
fn table5_cell_killed_mid_way_resumes_from_its_checkpoint_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tiny_table5_one_at_a_time(tmp.path(), "\"thread-call\"");
    let text_cfg = std::fs::read_to_string(&reference).unwrap().replace("epochs = 4", "epochs = 400\ncheckpoint_every = 3");
    std::fs::write(&reference, &text_cfg).unwrap();
    // The same experiment in another directory, on the same simulator.
    let out = tmp.path().join("out");
    let killed = tmp.path().join("killed.toml");
    std::fs::write(
        &killed,
        text_cfg.replace(&format!("out_dir = \"{}\"", out.display()), &format!("out_dir = \"{}\"", tmp.path().join("out2").display())),
    )
    .unwrap();
    assert_ok(&meshrl(&["run", reference.to_str().unwrap()], tmp.path()));
    let (checkpoint, cell) =
        (tmp.path().join("out2/checkpoints/S1/thread-call_seed5.ckpt"), tmp.path().join("out2/cells/S1/thread-call_seed5.json"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshrl"))
        .args(["run", killed.to_str().unwrap()])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while !checkpoint.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!cell.exists(), "killed before the cell finished");
    let resumed = meshrl(&["run", killed.to_str().unwrap()], tmp.path());
    assert_ok(&resumed);
    assert!(
        text(&resumed.stdout).contains("S1 thread-call seed 5: resuming from its checkpoint after epoch "),
        "{}",
        text(&resumed.stdout)
    );
    assert!(!checkpoint.exists(), "a finished cell's checkpoint is deleted");
    let read = |p: &Path| {
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("seconds");
        v
    };
    assert_eq!(read(&cell), read(&out.join("cells/S1/thread-call_seed5.json")), "the resumed cell is the uninterrupted one");
}

/// PPO trains the same cells through the same loop, selected in the config.
#[test]
fn table5_runs_with_ppo_agents() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_table5_one_at_a_time(tmp.path(), "\"call\", \"thread-call*5\"");
    let mut text_cfg =
        std::fs::read_to_string(&config).unwrap().replace("validation_pairs = 40", "validation_pairs = 40\nlearner = \"ppo\"");
    text_cfg.push_str("\n[ppo]\nn_steps = 32\nbatch_size = 16\nn_epochs = 2\ngamma = 0.0\n");
    std::fs::write(&config, text_cfg).unwrap();
    let out = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert_ok(&out);
    let dir = tmp.path().join("out");
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert!(metrics.lines().next().unwrap().ends_with(",policy_loss,value_loss,entropy,approx_kl,clip_fraction,updates"), "{metrics}");
    let resolved = std::fs::read_to_string(dir.join("config.resolved.toml")).unwrap();
    assert!(resolved.contains("learner = \"ppo\"") && resolved.contains("n_steps = 32"), "{resolved}");
    let md = std::fs::read_to_string(dir.join("table5.md")).unwrap();
    assert!(md.contains("thread-call*5") && !md.contains("NaN"), "{md}");
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

#[test]
fn ingest_fortio_refuses_what_it_cannot_interpret() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("results");
    std::fs::create_dir(&dir).unwrap();
    let refused = fortio_fixtures().join("refused");
    let json = std::fs::read_to_string(fortio_fixtures().join("run_a.json")).unwrap();
    let yaml = std::fs::read_to_string(fortio_fixtures().join("run_a.yaml")).unwrap();
    std::fs::write(dir.join("r1.yaml"), &yaml).unwrap();
    let out_csv = tmp.path().join("trace.csv");
    let ingest = |extra: &[&str]| {
        let mut args = vec!["ingest", "fortio", dir.to_str().unwrap(), "--out", out_csv.to_str().unwrap()];
        args.extend_from_slice(extra);
        meshrl(&args, tmp.path())
    };
    let codes = "\"200\": 18,\n    \"503\": 12";
    assert!(json.contains(codes));
    let cases = [
        // Counts that overflow a sum (once a failure rate of 2.0, exit 0).
        (json.replace(codes, "\"200\": 18446744073709551615, \"503\": 2"), &["r1.json", "RetCodes"][..]),
        // More codes than calls.
        (json.replace(codes, "\"200\": 3600, \"503\": 2400"), &["r1.json", "RetCodes", "DurationHistogram.Count"][..]),
        // Fortio 0.9.0's gRPC ping: code 1 is SERVING.
        (std::fs::read_to_string(refused.join("grpc_ping.json")).unwrap(), &["r1.json", "RunType"][..]),
        // Fortio 1.57.3 at -qps 8.
        (std::fs::read_to_string(refused.join("fixed_rate.json")).unwrap(), &["r1.json", "RequestedQPS"][..]),
        // A timed run (-t 30s).
        (json.replace("\"Exactly\": 30", "\"Exactly\": 0").replace("exactly 30 calls", "30s"), &["r1.json", "Exactly"][..]),
    ];
    for (text, needles) in cases {
        std::fs::write(dir.join("r1.json"), &text).unwrap();
        assert_exit_2_naming(&ingest(&[]), needles);
        assert!(!out_csv.exists(), "no trace is written on error");
    }
    // A subset's own circuit breakers.
    std::fs::write(dir.join("r1.json"), &json).unwrap();
    std::fs::copy(refused.join("subset_policy.yaml"), dir.join("r1.yaml")).unwrap();
    assert_exit_2_naming(&ingest(&[]), &["r1.yaml", "spec.subsets[1].trafficPolicy.connectionPool", "v2"]);
    assert!(!out_csv.exists(), "no trace is written on error");
    // A byte-order mark is skipped: the same row as without it.
    std::fs::write(dir.join("r1.yaml"), &yaml).unwrap();
    std::fs::write(dir.join("r1.json"), format!("\u{feff}{json}")).unwrap();
    let out = ingest(&[]);
    assert_ok(&out);
    let trace = std::fs::read_to_string(&out_csv).unwrap();
    assert!(trace.lines().nth(1).unwrap().starts_with("1,1,1,180,100,1,1,3,30,1093.762,0.400000,"), "{trace}");
}

#[test]
fn ingest_fortio_warns_of_manifest_rows_without_a_result() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("results");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(fortio_fixtures().join("run_b.json"), dir.join("run_b.json")).unwrap();
    let manifest = fortio_fixtures().join("manifest.csv");
    let out_csv = tmp.path().join("trace.csv");
    let out = meshrl(
        &["ingest", "fortio", dir.to_str().unwrap(), "--rules", manifest.to_str().unwrap(), "--out", out_csv.to_str().unwrap()],
        tmp.path(),
    );
    assert_ok(&out);
    assert!(text(&out.stdout).starts_with("1 Fortio results"), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("warning: ") && err.contains("manifest.csv") && err.contains("row 1 (run_a.json), row 3 (run_c.json)"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&out_csv).unwrap().lines().count(), 2);
}

/// A Fortio result made as the fixture `name` was, at another load: `threads` connections
/// and `calls` calls, the same share of each return code.
fn fixture_at_load(name: &str, threads: u32, calls: u64) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fortio_fixtures().join(name)).unwrap()).unwrap();
    let codes = v["RetCodes"].as_object().unwrap().clone();
    let total: u64 = codes.values().map(|n| n.as_u64().unwrap()).sum();
    let mut left = calls;
    let mut scaled = serde_json::Map::new();
    for (i, (code, n)) in codes.iter().enumerate() {
        let share = if i + 1 == codes.len() { left } else { (n.as_u64().unwrap() * calls / total).min(left) };
        left -= share;
        scaled.insert(code.clone(), share.into());
    }
    v["RetCodes"] = scaled.into();
    v["NumThreads"] = threads.into();
    v["Exactly"] = calls.into();
    v["DurationHistogram"]["Count"] = calls.into();
    v.to_string()
}

/// Every run of an export's manifest given a result made from the fixture `name` at the
/// row's own load (`threads`, `calls`), as a cluster would.
fn fill_results(export: &Path, name: &str) {
    let manifest = std::fs::read_to_string(export.join("manifest.csv")).unwrap();
    let header: Vec<&str> = manifest.lines().next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    for line in manifest.lines().skip(1) {
        // The fortio_command column holds no comma: fields split plainly.
        let f: Vec<&str> = line.split(',').collect();
        let (threads, calls) = (f[col("threads")].parse().unwrap(), f[col("calls")].parse().unwrap());
        std::fs::write(export.join(f[col("result")]), fixture_at_load(name, threads, calls)).unwrap();
    }
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
fn export_ingest_and_validate_carry_the_rule_settings_beyond_the_seven() {
    let tmp = tempfile::tempdir().unwrap();
    // S1's first 8 rows with three of the optional rule columns: the odd rows retry.
    let s1 = std::fs::read_to_string(repo().join("datasets/S1.csv")).unwrap();
    let mut lines: Vec<String> = s1.lines().take(9).map(str::to_string).collect();
    lines[0] += ",load_balancer,retry_attempts,http2_max_requests";
    for (k, line) in lines.iter_mut().enumerate().skip(1) {
        *line += if k % 2 == 0 { ",LEAST_REQUEST,2,16" } else { ",ROUND_ROBIN,0,4294967295" };
    }
    let dataset = tmp.path().join("S1_rules.csv");
    std::fs::write(&dataset, lines.join("\n") + "\n").unwrap();
    assert_ok(&meshrl(&["inspect", dataset.to_str().unwrap()], tmp.path()));
    let pair = |row: usize, emu: f64| serde_json::json!({ "service": 0, "row": row, "threads": 3, "calls": 30, "sim_reward": emu, "emu_reward": emu });
    let cell = tmp.path().join("run/cells/S1/thread-call_seed2.json");
    std::fs::create_dir_all(cell.parent().unwrap()).unwrap();
    let json =
        serde_json::json!({ "dataset": "S1", "best_rl": [pair(1, 9.0), pair(2, 8.0)], "best_baseline": [pair(3, 4.0), pair(4, 4.0)] });
    std::fs::write(&cell, json.to_string()).unwrap();
    let config = format!("[[dataset]]\nname = \"S1\"\npath = \"{}\"\n", dataset.display());
    std::fs::write(tmp.path().join("run/config.resolved.toml"), config).unwrap();
    let val = tmp.path().join("val");
    assert_ok(&meshrl(&["export", cell.to_str().unwrap(), "--validation", "--out", val.to_str().unwrap()], tmp.path()));
    // Rows 1 and 3 (runs 1 and 3) retry; runs 2 and 4 say so too (`attempts: 0`), or Istio's
    // default retries would run there.
    for (i, attempts) in [(1, 2), (2, 0), (3, 2), (4, 0)] {
        let vs = std::fs::read_to_string(val.join(format!("run_{i}.virtual-service.yaml"))).unwrap();
        assert!(vs.contains(&format!("attempts: {attempts}\n")), "run_{i}: {vs}");
        std::fs::copy(fortio_fixtures().join("run_a.json"), val.join(format!("run_{i}.json"))).unwrap();
    }
    let manifest = std::fs::read_to_string(val.join("manifest.csv")).unwrap();
    assert!(manifest.lines().next().unwrap().contains(",consecutive_errors,http2_max_requests,max_retries,"), "{manifest}");
    let by_manifest = meshrl(&["validate", "--fortio", val.to_str().unwrap()], tmp.path());
    assert_ok(&by_manifest);
    // Under another scenario (a fitted one), the emulator's Val. is recomputed from the runs'
    // rules and loads; the measured Val. stays the same.
    std::fs::write(tmp.path().join("slow.toml"), "handshake_ms = 3.0\nservice_time_ms = 4.0\n").unwrap();
    let by_scenario = meshrl(&["validate", "--fortio", val.to_str().unwrap(), "--scenario", "slow.toml"], tmp.path());
    assert_ok(&by_scenario);
    let (a, b) = (text(&by_manifest.stdout), text(&by_scenario.stdout));
    let split = |t: &str| t.split_once("; the emulator's Val.").map(|(m, e)| (m.to_string(), e.to_string())).unwrap();
    assert_eq!(split(&a).0, split(&b).0, "the measured Val. does not depend on the scenario");
    assert_ne!(split(&a).1, split(&b).1, "the emulator's Val. is recomputed:\n{a}\n{b}");
    std::fs::write(tmp.path().join("bad.toml"), "handshake_millis = 3.0\n").unwrap();
    assert_exit_2_naming(
        &meshrl(&["validate", "--fortio", val.to_str().unwrap(), "--scenario", "bad.toml"], tmp.path()),
        &["bad.toml", "handshake_millis"],
    );
    // Ingest reads the same rules from the YAML files as from the manifest.
    let (by_yaml, by_manifest) = (tmp.path().join("by_yaml.csv"), tmp.path().join("by_manifest.csv"));
    assert_ok(&meshrl(&["ingest", "fortio", val.to_str().unwrap(), "--out", by_yaml.to_str().unwrap()], tmp.path()));
    let m = val.join("manifest.csv");
    let args = ["ingest", "fortio", val.to_str().unwrap(), "--rules", m.to_str().unwrap(), "--out", by_manifest.to_str().unwrap()];
    assert_ok(&meshrl(&args, tmp.path()));
    let trace = std::fs::read_to_string(&by_yaml).unwrap();
    assert_eq!(trace, std::fs::read_to_string(&by_manifest).unwrap());
    assert!(trace.lines().next().unwrap().contains(",load_balancer,retry_attempts,"), "{trace}");
    assert!(trace.lines().nth(1).unwrap().contains(",16,4294967295,10000,LEAST_REQUEST,2,1,1,1,25,"), "{trace}");
    assert_ok(&meshrl(&["inspect", by_yaml.to_str().unwrap()], tmp.path()));
    // A VirtualService edited after export: both refuse it, naming the file and the field.
    let vs = val.join("run_1.virtual-service.yaml");
    let text = std::fs::read_to_string(&vs).unwrap();
    std::fs::write(&vs, text.replace("retryOn: connect-failure,", "retryOn: sometimes,")).unwrap();
    assert_exit_2_naming(&meshrl(&["validate", "--fortio", val.to_str().unwrap()], tmp.path()), &["run_1.virtual-service.yaml", "retryOn"]);
    let out = meshrl(&["ingest", "fortio", val.to_str().unwrap(), "--out", by_yaml.to_str().unwrap()], tmp.path());
    assert_exit_2_naming(&out, &["run_1.virtual-service.yaml", "spec.http[0].retries.retryOn", "sometimes"]);
    // One that still parses but says other retries: validate names the column that differs.
    std::fs::write(&vs, text.replace("attempts: 2", "attempts: 5")).unwrap();
    assert_exit_2_naming(&meshrl(&["validate", "--fortio", val.to_str().unwrap()], tmp.path()), &["run_1.yaml", "retry_attempts"]);
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

/// Degenerate settings are refused before anything is written, and a failed run leaves the
/// good run's directory as it was.
#[test]
fn degenerate_table5_settings_are_refused_and_a_failed_run_keeps_the_good_one() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_table5(tmp.path());
    let config = config.to_str().unwrap();
    for (set, needle) in [
        ("oracle_runs=0", "oracle_runs"),
        ("oracle_validation_states=0", "oracle_validation_states"),
        ("validation_pairs=0", "validation_pairs"),
        ("train_fraction=1.5", "train_fraction"),
        ("configurations=[]", "configurations is empty"),
        ("configurations=[\"call\", \"call\"]", "listed twice"),
        ("dataset=[{name=\"S1\",path=\"a.csv\"},{name=\"S1\",path=\"b.csv\"}]", "two [[dataset]] entries"),
    ] {
        let out = meshrl(&["run", config, "--set", set], tmp.path());
        assert_exit_2_naming(&out, &["tiny5.toml with --set", needle]);
        assert!(!tmp.path().join("out").exists(), "{set}: nothing written");
    }
    assert_ok(&meshrl(&["run", config, "--set", "configurations=[\"call\"]"], tmp.path()));
    let resolved = tmp.path().join("out/config.resolved.toml");
    let table = tmp.path().join("out/table5.csv");
    let (good_config, good_table) = (std::fs::read(&resolved).unwrap(), std::fs::read(&table).unwrap());
    // Another config in the good run's folder is refused before any input loads; in a folder
    // of its own, the missing input is named and nothing is written.
    let bad = meshrl(&["run", config, "--set", "dataset=[{name=\"S1\",path=\"datasets/nope.csv\"}]"], tmp.path());
    assert_exit_2_naming(&bad, &["config.resolved.toml", "another config"]);
    assert_eq!(std::fs::read(&resolved).unwrap(), good_config, "the failed run left config.resolved.toml alone");
    assert_eq!(std::fs::read(&table).unwrap(), good_table);
    let elsewhere = tmp.path().join("out2");
    let bad = meshrl(
        &[
            "run",
            config,
            "--set",
            "dataset=[{name=\"S1\",path=\"datasets/nope.csv\"}]",
            "--set",
            &format!("out_dir=\"{}\"", elsewhere.display()),
        ],
        tmp.path(),
    );
    assert_exit_2_naming(&bad, &["nope.csv"]);
    assert!(!elsewhere.exists(), "nothing written");
}

#[test]
fn degenerate_command_line_counts_and_broken_models_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    assert_exit_2_naming(&meshrl(&["emulate", "--runs", "0"], &repo()), &["--runs"]);
    let out_dir = tmp.path().join("gen");
    assert_exit_2_naming(&meshrl(&["generate", "--rows", "0", "--out-dir", out_dir.to_str().unwrap()], &repo()), &["--rows"]);
    assert!(!out_dir.exists());
    // A missing model is named as such (not its normaliser files).
    let missing = tmp.path().join("x.safetensors");
    let out = meshrl(&["predict", missing.to_str().unwrap(), "datasets/S1.csv"], &repo());
    assert_exit_2_naming(&out, &["x.safetensors", "no such model file"]);
    assert!(!text(&out.stderr).contains("inputs.json"));
    // A model whose weights hold a NaN (its last value) is refused.
    let config = tiny_table5(tmp.path());
    assert_ok(&meshrl(&["run", config.to_str().unwrap(), "--set", "configurations=[\"call\"]"], tmp.path()));
    let models = tmp.path().join("out/models/S1");
    let mut bytes = std::fs::read(models.join("mlp_seed1.safetensors")).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    for f in ["mlp_seed1.inputs.json", "mlp_seed1.outputs.json"] {
        std::fs::copy(models.join(f), tmp.path().join(f.replace("mlp_seed1", "broken"))).unwrap();
    }
    let broken = tmp.path().join("broken.safetensors");
    std::fs::write(&broken, bytes).unwrap();
    let out = meshrl(&["predict", broken.to_str().unwrap(), &repo().join("datasets/S1.csv").to_string_lossy()], tmp.path());
    assert_exit_2_naming(&out, &["broken.safetensors", "NaN"]);
}

/// Two runs of one config on one directory at once share the cells (each computed once) and
/// give the tables of a single run; a run of another config refuses the directory.
#[test]
fn concurrent_runs_share_a_directory_and_another_config_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config =
        tiny_table5_one_at_a_time(tmp.path(), "\"call\", \"thread\", \"thread-call\", \"call-thread\", \"thread&call\", \"call*5\"");
    // The simulator first, so that both runs start on the cells together.
    assert_ok(&meshrl(&["run", config.to_str().unwrap(), "--set", "out_dir=\"single\""], tmp.path()));
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_meshrl"))
            .args(["run", config.to_str().unwrap()])
            .current_dir(tmp.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_ok(&a);
    assert_ok(&b);
    let computed = |o: &Output| text(&o.stdout).matches("seed 5: Sim. ").count();
    assert_eq!(computed(&a) + computed(&b), 6, "every cell computed once:\n{}\n{}", text(&a.stdout), text(&b.stdout));
    let out = tmp.path().join("out");
    for f in ["table5.csv", "metrics.csv", "table5.md"] {
        assert_eq!(std::fs::read(out.join(f)).unwrap(), std::fs::read(tmp.path().join("single").join(f)).unwrap(), "{f}");
    }
    let claims = std::fs::read_dir(out.join("cells/S1"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "claim"))
        .count();
    assert_eq!(claims, 0, "no claim left behind");
    let other = meshrl(&["run", config.to_str().unwrap(), "--set", "epochs=3"], tmp.path());
    assert_exit_2_naming(&other, &["config.resolved.toml", "another config", "`epochs` is 4 there, 3 here"]);
    // Scheduling alone may differ.
    assert_ok(&meshrl(&["run", config.to_str().unwrap(), "--set", "parallel_cells=2"], tmp.path()));
}

/// The names and contents of the files in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap_or_default())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn export_replaces_a_previous_export_whole_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let cell = hand_made_run(tmp.path());
    let out_dir = tmp.path().join("export");
    let export = |top: &str, out: &Path| meshrl(&["export", cell.to_str().unwrap(), "--top", top, "--out", out.to_str().unwrap()], &repo());
    assert_ok(&export("3", &out_dir));
    assert_eq!(files_in(&out_dir).len(), 4);
    // A smaller export over a larger one: exactly the new files, no stale run_2, run_3.
    assert_ok(&export("1", &out_dir));
    let names: Vec<String> = files_in(&out_dir).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["manifest.csv", "run_1.yaml"]);
    assert_eq!(files_in(tmp.path()).len(), 2, "only `run` and `export` beside each other, no temporary folder");
    // A folder of the user's own: refused, untouched.
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "my notes").unwrap();
    assert_exit_2_naming(&export("3", &mine), &["mine", "notes.txt", "no manifest.csv", "--out"]);
    assert_eq!(files_in(&mine), [("notes.txt".to_string(), b"my notes".to_vec())]);
    // The Fortio result of a run of the previous export is a measurement: kept, refused.
    std::fs::copy(fortio_fixtures().join("run_b.json"), out_dir.join("run_1.json")).unwrap();
    let before = files_in(&out_dir);
    assert_exit_2_naming(&export("3", &out_dir), &["export", "run_1.json", "Fortio result"]);
    assert_eq!(files_in(&out_dir), before);
}

#[test]
fn export_refuses_a_pair_that_is_no_load_and_keeps_the_old_export() {
    let tmp = tempfile::tempdir().unwrap();
    let cell = hand_made_run(tmp.path());
    let out_dir = tmp.path().join("export");
    let export = || meshrl(&["export", cell.to_str().unwrap(), "--out", out_dir.to_str().unwrap()], &repo());
    assert_ok(&export());
    let before = files_in(&out_dir);
    let good = std::fs::read_to_string(&cell).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&good).unwrap();
    for (field, value, needles) in [
        ("threads", 0, ["best_rl[3].threads", "-c 0"]),
        ("calls", 0, ["best_rl[3].calls", "-n 0"]),
        ("calls", 1, ["best_rl[3].calls", "fewer than the 2 threads"]),
    ] {
        json["best_rl"][3][field] = serde_json::json!(value);
        std::fs::write(&cell, json.to_string()).unwrap();
        let out = export();
        assert_exit_2_naming(&out, &["thread-call_seed2.json", needles[0], needles[1]]);
        assert_eq!(files_in(&out_dir), before, "the old export is untouched");
        json = serde_json::from_str(&good).unwrap();
    }
}

/// A run whose cell has two validated pairs per side, exported with `--validation` into
/// `<dir>/val`; returns that folder and the result file of each side's runs.
fn validation_export(dir: &Path) -> (PathBuf, Vec<String>, Vec<String>) {
    let cell = hand_made_run(dir);
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cell).unwrap()).unwrap();
    let pair = |row: usize, emu: f64| serde_json::json!({ "service": 0, "row": row, "threads": 4, "calls": 40, "sim_reward": emu, "emu_reward": emu });
    json["best_rl"] = serde_json::json!([pair(1, 10.0), pair(2, 20.0)]);
    json["best_baseline"] = serde_json::json!([pair(3, 5.0), pair(4, 5.0)]);
    std::fs::write(&cell, json.to_string()).unwrap();
    let out = dir.join("val");
    assert_ok(&meshrl(&["export", cell.to_str().unwrap(), "--validation", "--out", out.to_str().unwrap()], &repo()));
    let manifest = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
    let (mut rl, mut baseline) = (Vec::new(), Vec::new());
    for line in manifest.lines().skip(1) {
        let result = line.split(',').find(|f| f.starts_with("run_") && f.ends_with(".json")).unwrap().to_string();
        if line.split(',').nth(1) == Some("rl") {
            rl.push(result)
        } else {
            baseline.push(result)
        }
    }
    assert_eq!((rl.len(), baseline.len()), (2, 2), "{manifest}");
    (out, rl, baseline)
}

#[test]
fn validate_says_when_val_is_undefined_and_names_missing_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, rl, baseline) = validation_export(tmp.path());
    // The agents' runs got 503s (as run_a: 12 of 30), the one baseline run that ran none (run_b),
    // each at its row's load (-c 4 -n 40).
    for r in &rl {
        std::fs::write(out.join(r), fixture_at_load("run_a.json", 4, 40)).unwrap();
    }
    std::fs::write(out.join(&baseline[0]), fixture_at_load("run_b.json", 4, 40)).unwrap();
    // A run of another load than its row asked, or whose rule file is gone, is refused.
    std::fs::copy(fortio_fixtures().join("run_a.json"), out.join(&rl[1])).unwrap();
    assert_exit_2_naming(
        &meshrl(&["validate", "--fortio", out.to_str().unwrap()], tmp.path()),
        &[rl[1].as_str(), "`NumThreads`", "-c 3 -n 30", "-c 4 -n 40"],
    );
    std::fs::write(out.join(&rl[1]), fixture_at_load("run_a.json", 4, 40)).unwrap();
    let yaml = out.join(rl[0].replace(".json", ".yaml"));
    let rule = std::fs::read(&yaml).unwrap();
    std::fs::remove_file(&yaml).unwrap();
    assert_exit_2_naming(
        &meshrl(&["validate", "--fortio", out.to_str().unwrap()], tmp.path()),
        &[&rl[0].replace(".json", ".yaml"), "missing"],
    );
    std::fs::write(&yaml, rule).unwrap();
    let done = meshrl(&["validate", "--fortio", out.to_str().unwrap()], tmp.path());
    assert_ok(&done);
    let stdout = text(&done.stdout);
    assert!(stdout.contains("Val. undefined: the baseline's 1 runs had no 503s"), "{stdout}");
    assert!(!stdout.contains("NaN"), "{stdout}");
    assert!(stdout.contains(&format!("1 of the 4 runs have no result yet and are left out of both means: {}", baseline[1])), "{stdout}");
    // A broken result is named; no result of a side, or fewer than half of its runs: exit 2.
    std::fs::remove_file(out.join(&rl[1])).unwrap();
    std::fs::write(out.join(&rl[0]), "{}").unwrap();
    assert_exit_2_naming(&meshrl(&["validate", "--fortio", out.to_str().unwrap()], tmp.path()), &[rl[0].as_str()]);
    std::fs::remove_file(out.join(&rl[0])).unwrap();
    assert_exit_2_naming(
        &meshrl(&["validate", "--fortio", out.to_str().unwrap()], tmp.path()),
        &["manifest.csv", "no Fortio result", "`rl`"],
    );
    let mut manifest = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
    manifest += &manifest.lines().nth(1).unwrap().replace(rl[0].as_str(), "run_9.json").replacen("1,", "9,", 1);
    manifest += "\n";
    std::fs::write(out.join("manifest.csv"), &manifest).unwrap();
    std::fs::write(out.join("run_9.json"), fixture_at_load("run_a.json", 4, 40)).unwrap();
    assert_exit_2_naming(
        &meshrl(&["validate", "--fortio", out.to_str().unwrap()], tmp.path()),
        &["manifest.csv", "only 1 of the 3 `rl` runs", &format!("Missing: {}, {}", rl[0], rl[1])],
    );
}

/// A run spread over shards (prepare, the shards at once into one directory, report) gives
/// the tables of a single run; a shard without its simulator refuses to start, and a report
/// names the cells no shard has written.
#[test]
fn shards_then_report_give_the_tables_of_a_single_run() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_table5(tmp.path());
    let config = config.to_str().unwrap();
    let early = meshrl(&["run", config, "--shard", "0/3"], tmp.path());
    assert_exit_2_naming(&early, &["mlp_seed1.safetensors", "meshrl prepare"]);
    assert_exit_2_naming(&meshrl(&["run", config, "--shard", "3/3"], tmp.path()), &["--shard 3/3"]);
    assert_ok(&meshrl(&["prepare", config], tmp.path()));
    let partial = meshrl(&["report", config], tmp.path());
    assert_ok(&partial);
    assert!(text(&partial.stdout).contains("missing 3 of 3 cells"), "{}", text(&partial.stdout));
    // The three shards at once, into one directory.
    let running: Vec<_> = (0..3)
        .map(|k| {
            Command::new(env!("CARGO_BIN_EXE_meshrl"))
                .args(["run", config, "--shard", &format!("{k}/3")])
                .current_dir(tmp.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let shards: Vec<Output> = running.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for s in &shards {
        assert_ok(s);
        let out = text(&s.stdout);
        assert!(out.contains("cells' share") && !out.contains("claim 2"), "a shard writes cells, not the report:\n{out}");
        assert!(out.contains("estimate: 1 cell to compute"), "a shard estimates its own share:\n{out}");
    }
    assert_ok(&meshrl(&["report", config], tmp.path()));
    assert_ok(&meshrl(&["run", config, "--set", "out_dir=\"single\""], tmp.path()));
    for f in ["table5.csv", "metrics.csv", "table5.md", "figure7.png"] {
        assert_eq!(
            std::fs::read(tmp.path().join("out").join(f)).unwrap(),
            std::fs::read(tmp.path().join("single").join(f)).unwrap(),
            "{f}"
        );
    }
}

/// The cluster manifests agree with themselves: the Indexed Job's completions, parallelism
/// and shard count, the volume every step mounts, the Slurm array and its shard count.
#[test]
fn cluster_manifests_run_every_shard_on_a_shared_volume() {
    let text_k8s = std::fs::read_to_string(repo().join("deploy/kubernetes/table5.yaml")).unwrap();
    let docs: Vec<serde_yaml::Value> =
        serde_yaml::Deserializer::from_str(&text_k8s).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    let by_name = |name: &str| docs.iter().find(|d| d["metadata"]["name"].as_str() == Some(name)).unwrap_or_else(|| panic!("{name}"));
    let volume = by_name("meshrl-results");
    assert_eq!(volume["kind"].as_str(), Some("PersistentVolumeClaim"));
    assert_eq!(volume["spec"]["accessModes"][0].as_str(), Some("ReadWriteMany"));
    let shards = by_name("meshrl-table5-shards");
    let spec = &shards["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let n = spec["completions"].as_u64().unwrap();
    assert_eq!(spec["parallelism"].as_u64(), Some(n));
    let container = &spec["template"]["spec"]["containers"][0];
    let command = container["args"][0].as_str().unwrap();
    assert!(command.contains(&format!("--shard \"${{JOB_COMPLETION_INDEX}}/{n}\"")), "{command}");
    for name in ["meshrl-table5-prepare", "meshrl-table5-shards", "meshrl-table5-report"] {
        let pod = &by_name(name)["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"].as_str(), Some("meshrl-results"), "{name}");
        assert_eq!(pod["containers"][0]["volumeMounts"][0]["mountPath"].as_str(), Some("/results"), "{name}");
        let args: String =
            pod["containers"][0]["args"].as_sequence().unwrap().iter().filter_map(|a| a.as_str()).collect::<Vec<_>>().join(" ");
        assert!(args.contains("/results/table5") && args.contains("/results/models"), "{name}: {args}");
    }
    assert_eq!(by_name("meshrl-table5-prepare")["spec"]["template"]["spec"]["containers"][0]["args"][0].as_str(), Some("prepare"));
    assert_eq!(by_name("meshrl-table5-report")["spec"]["template"]["spec"]["containers"][0]["args"][0].as_str(), Some("report"));
    let sbatch = std::fs::read_to_string(repo().join("deploy/slurm/table5_shard.sbatch")).unwrap();
    let submit = std::fs::read_to_string(repo().join("deploy/slurm/table5.sh")).unwrap();
    let shards: u64 = submit.lines().find_map(|l| l.strip_prefix("SHARDS=")).unwrap().parse().unwrap();
    assert!(sbatch.contains(&format!("#SBATCH --array=0-{}", shards - 1)), "the array's default matches SHARDS");
    assert!(sbatch.contains("--shard \"${SLURM_ARRAY_TASK_ID}/${SHARDS:-8}\"") && shards == 8);
    assert!(submit.contains("--array=0-$((SHARDS - 1))") && submit.contains("afterok:$prepare") && submit.contains("afterok:$shards"));
}

/// A small full-factorial trace in the TNSM2023 framework's columns: loads 1 and 4, routing
/// 0 or 100, blocking 0 or 0.5, replicas 1 or 2, two samples each. One replica is fast at
/// load 1 and too slow at load 4 unless half the load is blocked or a second replica added;
/// one sample at load 4 with one replica completed nothing (d1 = 0).
fn control_trace(dir: &Path) -> PathBuf {
    let mut csv = String::from("max_l1,l1,cl1,p1,b1,c1,d1\n");
    for load in [1.0, 4.0] {
        for p in [0, 100] {
            for blocking in [0.0, 0.5] {
                for c in [1, 2] {
                    for sample in 0..2 {
                        let admitted = (1.0 - blocking) * load;
                        let slow = load > 2.0 && c == 1 && blocking == 0.0 && p == 100;
                        let d1 = if slow && sample == 1 {
                            0.0
                        } else if slow {
                            3.0
                        } else {
                            0.2 + 0.01 * sample as f64
                        };
                        let completed = if d1 == 0.0 { 0.0 } else { 5.0 * admitted };
                        csv.push_str(&format!("{load},{},{completed},{p},{admitted},{c},{d1}\n", 5.0 * load));
                    }
                }
            }
        }
    }
    let path = dir.join("trace.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

fn tiny_control(dir: &Path) -> PathBuf {
    let trace = control_trace(dir);
    let config = format!(
        r#"kind = "control"
seed = 3
seeds = 2
out_dir = "{out}"
epochs = 3
steps_per_epoch = 100

[trace]
path = "{trace}"

[loads]
values = [1, 4]

[forest]
trees = 5

[ppo]
n_steps = 50
batch_size = 25
n_epochs = 2
gamma = 0.0

[dqn]
hidden = 16
learning_starts = 20

[[objectives]]
name = "scaling"
reward = "replicas"
routing = [100]
replicas = [1, 2]

[[objectives]]
name = "throughput"
reward = "throughput"
routing = [100]
blocking = [0, 0.5]
replicas = [1]

[deploy]
service = "web"
subsets = ["v1", "v2"]
deployment = "web-v1"
"#,
        out = dir.join("out").display(),
        trace = trace.display()
    );
    let path = dir.join("control.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn control_tiny_run_writes_tables_policies_and_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_control(tmp.path());
    let out = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert_ok(&out);
    let dir = tmp.path().join("out");
    let md = std::fs::read_to_string(dir.join("control.md")).unwrap();
    for needle in [
        "scaling on the tnsm2023 model",
        "scaling on the controller model",
        "throughput on the controller model",
        "DQN (greedy)",
        "PPO (greedy)",
        "Optimum on the measured table",
        "Best fixed action on the model",
        "held out",
        "1 with nothing completed",
        "bound 1 s, margin 0.4 s",
    ] {
        assert!(md.contains(needle), "{needle} missing:\n{md}");
    }
    assert!(!md.contains("throughput on the tnsm2023 model"), "the framework's features cannot score carried load");
    assert!(!md.contains("NaN"), "{md}");
    // The measured optimum: one replica at load 1, two at load 4 (the yardstick needs no agent).
    let optimum = std::fs::read_to_string(dir.join("policies/scaling/controller/measured_optimum.csv")).unwrap();
    let rows: Vec<&str> = optimum.lines().collect();
    assert_eq!(rows[0], "l,r,p,c,d");
    assert!(rows[1].starts_with("1,2.000000,100,1,") && rows[2].starts_with("4,1.000000,100,2,"), "{optimum}");
    let blocking = std::fs::read_to_string(dir.join("policies/throughput/controller/measured_optimum.csv")).unwrap();
    assert!(blocking.starts_with("l,r,p,c,d,blocking\n") && blocking.lines().nth(2).unwrap().ends_with(",0.5"), "{blocking}");
    for f in ["control.csv", "curves.csv", "curves.png", "config.resolved.toml", "policies/scaling/tnsm2023/ppo.csv"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }

    // The same seed gives the same bytes.
    let again =
        meshrl(&["run", config.to_str().unwrap(), "--set", &format!("out_dir=\"{}\"", tmp.path().join("again").display())], tmp.path());
    assert_ok(&again);
    for f in ["control.md", "control.csv", "curves.csv", "policies/throughput/controller/ppo.csv"] {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), std::fs::read(tmp.path().join("again").join(f)).unwrap(), "{f} differs");
    }

    // One row applied to a cluster, with the config's names.
    let policy = dir.join("policies/scaling/controller/measured_optimum.csv");
    let apply = meshrl(&["apply-policy", policy.to_str().unwrap(), "--load", "4", "--config", config.to_str().unwrap()], tmp.path());
    assert_ok(&apply);
    let yaml = text(&apply.stdout);
    assert!(yaml.contains("kind: VirtualService") && yaml.contains("subset: v1\n      weight: 100"), "{yaml}");
    assert!(yaml.contains("kubectl scale deployment/web-v1 --replicas=2 -n default"), "{yaml}");
    let missing = meshrl(&["apply-policy", policy.to_str().unwrap(), "--load", "3"], tmp.path());
    assert_exit_2_naming(&missing, &["measured_optimum.csv", "no row for load 3"]);
}

#[test]
fn control_refuses_loads_outside_the_trace_and_bad_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_control(tmp.path());
    let outside = meshrl(&["run", config.to_str().unwrap(), "--set", "loads.values=[1, 8]"], tmp.path());
    assert_exit_2_naming(&outside, &["load 8", "outside", "extrapolation"]);
    let unmeasured = meshrl(
        &["run", config.to_str().unwrap(), "--set", "objectives=[{name=\"x\", reward=\"replicas\", routing=[50], replicas=[1]}]"],
        tmp.path(),
    );
    assert_exit_2_naming(&unmeasured, &["objective x", "no rows", "routing 50"]);
    // A value listed twice would compute the same cells twice and collide in the report.
    for (set, needle) in [
        ("learners=[\"dqn\", \"dqn\"]", "learners lists Dqn twice"),
        ("loads.values=[1, 2, 1]", "loads.values lists 1.0 twice"),
        ("objectives=[{name=\"x\", reward=\"replicas\", routing=[100], replicas=[1, 1]}]", "objective x: replicas lists 1 twice"),
    ] {
        assert_exit_2_naming(&meshrl(&["run", config.to_str().unwrap(), "--set", set], tmp.path()), &[needle]);
    }
    let trace = tmp.path().join("trace.csv");
    let text_trace = std::fs::read_to_string(&trace).unwrap().replacen(",1,0.2\n", ",0,0.2\n", 1);
    std::fs::write(&trace, text_trace).unwrap();
    let bad = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert_exit_2_naming(&bad, &["trace.csv", "row 1", "c1"]);
    assert!(!tmp.path().join("out").exists(), "nothing written before the inputs load");
}

/// A `meshrl serve` child process and the address it printed.
struct Served {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

fn serve_policy(policy: &Path) -> Served {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshrl"))
        .args(["serve", policy.to_str().unwrap(), "--addr", "127.0.0.1:0", "--workers", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split_whitespace().find_map(|w| w.strip_prefix("http://")).and_then(|a| a.parse().ok());
    let Some(addr) = addr else {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("no address printed: {line:?}\nstderr:\n{}", text(&out.stderr));
    };
    Served { child, addr }
}

/// One request on a keep-alive connection; the answer's status and body.
fn http(stream: &mut std::net::TcpStream, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk).expect("an answer within the read timeout");
        assert!(n > 0, "the server closed the connection after {method} {path}: {}", text(&buf));
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = text(&buf[..end]).to_ascii_lowercase();
            let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
            break (end + 4, length);
        }
    };
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "truncated answer");
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = text(&buf[9..12]).parse().unwrap();
    (status, text(&buf[head_end..head_end + length]))
}

/// Sends SIGTERM; the server must exit 0 within a few seconds, although a keep-alive
/// connection is still open.
fn stop_gracefully(mut served: Served) {
    let pid = served.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            break status;
        }
        // A guard against a server that never stops, not a speed check: generous, so that a
        // busy machine cannot fail it.
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = served.child.kill();
            panic!("still running 60 s after SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = served.child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("stopped"), "{}", text(&out.stderr));
}

fn connect(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    stream
}

#[track_caller]
fn assert_refused(answer: (u16, String), status: u16, needles: &[&str]) {
    assert_eq!(answer.0, status, "{}", answer.1);
    let message: serde_json::Value = serde_json::from_str(&answer.1).unwrap_or_else(|e| panic!("not JSON ({e}): {}", answer.1));
    let message = message["error"].as_str().unwrap_or_else(|| panic!("no error message: {}", answer.1));
    for n in needles {
        assert!(message.contains(n), "the message should name {n:?}: {message}");
    }
}

#[test]
fn serve_answers_a_lookup_policy_over_http_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("lookup.csv");
    std::fs::write(
        &policy,
        "load,ready,starting,delta,replicas,predicted_latency_s\n\
         1,1,0,0,1,0.3\n1,2,0,-1,1,0.3\n4,1,0,1,2,2.0\n4,1,1,0,2,2.0\n4,2,0,0,2,0.5\n",
    )
    .unwrap();
    let served = serve_policy(&policy);
    let mut s = connect(served.addr);
    assert_eq!(http(&mut s, "GET", "/healthz", ""), (200, "ok".to_string()));

    // Seed 004's five fields; 3 req/s rounds up to the table's 4.
    let (status, body) = http(&mut s, "POST", "/predict", r#"{"cpu_usage":0.8,"memory_usage":0.4,"n_replicas":1,"latency":950.0,"rps":3}"#);
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((answer["action"].as_u64(), answer["delta"].as_i64(), answer["replicas"].as_u64()), (Some(2), Some(1), Some(2)), "{body}");
    assert_eq!(answer["predicted_latency_s"].as_f64(), Some(2.0), "{body}");
    // Our own names, and a scale-down.
    let (status, body) = http(&mut s, "POST", "/predict", r#"{"load":1,"ready":2,"starting":0}"#);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""action":0"#) && body.contains(r#""delta":-1"#), "{body}");
    let (status, body) = http(&mut s, "POST", "/predict", r#"{"rps":4,"n_replicas":1,"starting":1}"#);
    assert!(status == 200 && body.contains(r#""action":1"#), "{status} {body}");

    assert_refused(http(&mut s, "POST", "/predict", r#"{"rps":3,"n_replicas":"#), 400, &["malformed JSON"]);
    assert_refused(http(&mut s, "POST", "/predict", ""), 400, &["malformed JSON"]);
    assert_refused(http(&mut s, "POST", "/predict", r#"{"rps":-5,"n_replicas":1}"#), 400, &["rps", ">= 0"]);
    assert_refused(http(&mut s, "POST", "/predict", r#"{"rps":50,"n_replicas":1}"#), 400, &["rps 50", "above"]);
    assert_refused(http(&mut s, "POST", "/predict", r#"{"rps":1,"n_replicas":1.5}"#), 400, &["n_replicas", "whole"]);
    assert_refused(http(&mut s, "POST", "/predict", r#"{"rps":1,"n_replicas":9}"#), 400, &["no decision"]);
    assert_refused(http(&mut s, "POST", "/predict", r#"{"rps":1}"#), 400, &["missing", "n_replicas"]);
    assert_refused(http(&mut s, "POST", "/predict", r#"{"rps":1,"replicas":1}"#), 400, &["unknown field `replicas`"]);
    assert_refused(http(&mut s, "POST", "/predict", r#"{"rps":1,"n_replicas":1,"cpu_usage":"high"}"#), 400, &["cpu_usage"]);
    assert_refused(http(&mut s, "GET", "/predict", ""), 405, &["POST"]);
    assert_refused(http(&mut s, "DELETE", "/healthz", ""), 405, &["GET"]);
    assert_refused(http(&mut s, "POST", "/suggest", "{}"), 404, &["/suggest"]);
    // After all that, the same connection still answers.
    assert_eq!(http(&mut s, "GET", "/healthz", ""), (200, "ok".to_string()));

    let addr = served.addr;
    stop_gracefully(served);
    assert!(std::net::TcpStream::connect(addr).is_err(), "nothing listens after the shutdown");
}

#[test]
fn serve_answers_a_network_policy_and_refuses_bad_policy_files() {
    use meshrl::agent::dqn::DqnConfig;
    use meshrl::agent::ppo::PpoConfig;
    use meshrl::agent::{LearnerKind, LearnerSpec};
    use meshrl::env::autoscale::{LoadDynamics, ScalingEnv, ScalingReward, ScalingSpec};
    use meshrl::env::Environment;
    use meshrl::policy::{NetworkPolicy, ScalingPolicy, ScalingQuery};
    use rand::SeedableRng;

    let tmp = tempfile::tempdir().unwrap();
    let spec = ScalingSpec {
        loads: vec![1.0, 4.0],
        min_replicas: 1,
        max_replicas: 3,
        start_replicas: 1,
        provision_steps: 1,
        horizon: 20,
        step_s: 10.0,
        dynamics: LoadDynamics::Markov { transition: vec![vec![0.5, 0.5], vec![0.5, 0.5]], start: vec![1.0, 0.0] },
        reward: ScalingReward { soft_s: 0.35, hard_s: 1.0, replica_weight: 0.3, latency_weight: 0.7, invalid_reward: -1.0 },
        model_latency: vec![vec![0.3, 0.3, 0.3], vec![2.0, 0.5, 0.3]],
        truth_latency: vec![vec![0.3, 0.3, 0.3], vec![2.0, 0.5, 0.3]],
    };
    let env = ScalingEnv::new(spec.clone()).unwrap();
    let ppo = PpoConfig::default();
    let learner = ppo.build(env.layout(), &mut rand_chacha::ChaCha8Rng::seed_from_u64(11)).unwrap();
    let path = tmp.path().join("ppo.policy");
    NetworkPolicy::save(&path, &spec, LearnerKind::Ppo, &DqnConfig::default(), &ppo, learner.as_ref()).unwrap();
    let want = NetworkPolicy::load(&path).unwrap().decide(&ScalingQuery { load: 4.0, ready: 2, starting: 0 }).unwrap();

    let served = serve_policy(&path);
    let mut s = connect(served.addr);
    let (status, body) = http(&mut s, "POST", "/predict", r#"{"cpu_usage":0.5,"memory_usage":0.5,"n_replicas":2,"latency":400,"rps":2.5}"#);
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["delta"].as_i64(), Some(want.delta as i64), "{body}");
    assert_eq!(answer["action"].as_i64(), Some(want.delta as i64 + 1), "{body}");
    assert_eq!(answer["replicas"].as_u64(), Some(want.replicas as u64), "{body}");
    assert_refused(http(&mut s, "POST", "/predict", r#"{"rps":2,"n_replicas":5}"#), 400, &["replicas must lie in [1, 3]"]);
    assert_refused(http(&mut s, "POST", "/predict", r#"{"rps":9,"n_replicas":1}"#), 400, &["above"]);
    assert_eq!(http(&mut s, "GET", "/healthz", ""), (200, "ok".to_string()));
    stop_gracefully(served);

    // A policy file that does not load: exit 2, naming it, before listening.
    let missing = meshrl(&["serve", "nowhere.csv", "--addr", "127.0.0.1:0"], tmp.path());
    assert_exit_2_naming(&missing, &["nowhere.csv", "cannot read"]);
    std::fs::write(tmp.path().join("bad.csv"), "load,ready,starting,delta,replicas,predicted_latency_s\n1,1,0,3,1,0.3\n").unwrap();
    let bad = meshrl(&["serve", "bad.csv", "--addr", "127.0.0.1:0"], tmp.path());
    assert_exit_2_naming(&bad, &["bad.csv", "row 1", "delta"]);
    std::fs::write(tmp.path().join("junk.policy"), b"not a policy").unwrap();
    let junk = meshrl(&["serve", "junk.policy", "--addr", "127.0.0.1:0"], tmp.path());
    assert_exit_2_naming(&junk, &["junk.policy", "magic"]);
    assert!(text(&junk.stdout).is_empty(), "nothing listened: {}", text(&junk.stdout));
}

fn tiny_autoscale(dir: &Path) -> PathBuf {
    let trace = control_trace(dir);
    let config = format!(
        r#"kind = "autoscale"
seed = 2
seeds = 2
out_dir = "{out}"
loads = [1, 4]
min_replicas = 1
max_replicas = 2
horizon = 20
epochs = 2
steps_per_epoch = 100
eval_episodes = 3

[trace]
path = "{trace}"

[forest]
trees = 60

[[scenarios]]
name = "drift"
load = {{ kind = "markov", stay = 0.8 }}

[[scenarios]]
name = "ramp"
load = {{ kind = "profile", start = 1, stages = [[5, 4], [10, 4]] }}

[ppo]
n_steps = 40
batch_size = 20
n_epochs = 2

[dqn]
hidden = 16
learning_starts = 20
"#,
        out = dir.join("out").display(),
        trace = trace.display()
    );
    let path = dir.join("autoscale.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn autoscale_tiny_run_scores_the_optimum_the_hpa_and_the_agents_and_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_autoscale(tmp.path());
    assert_ok(&meshrl(&["run", config.to_str().unwrap()], tmp.path()));
    let dir = tmp.path().join("out");
    let md = std::fs::read_to_string(dir.join("autoscale.md")).unwrap();
    for needle in [
        "Scenario `drift`",
        "Scenario `ramp`",
        "Optimum on the model",
        "Myopic",
        "HPA, target",
        "DQN (greedy)",
        "PPO (greedy)",
        "over the myopic policy",
    ] {
        assert!(md.contains(needle), "{needle} missing:\n{md}");
    }
    assert!(!md.contains("NaN"), "{md}");
    let hpa = std::fs::read_to_string(dir.join("hpa.yaml")).unwrap();
    assert!(hpa.contains("apiVersion: autoscaling/v2") && hpa.contains("stabilizationWindowSeconds: 300"), "{hpa}");
    let optimum = std::fs::read_to_string(dir.join("policies/ramp/optimum.csv")).unwrap();
    assert!(optimum.starts_with("load,ready,starting,delta,replicas,predicted_latency_s\n"), "{optimum}");
    // Served without a clock: at the high load two ready replicas stay (the profile's own
    // next step, back at the low load, must not leak into the table).
    assert!(optimum.lines().any(|l| l.starts_with("4,2,0,0,2,")), "{optimum}\n{md}");
    assert!(!dir.join("policies/ramp/ppo.csv").exists(), "a time-dependent agent is not served as a table");
    for f in
        ["autoscale.csv", "curves.png", "episode.png", "policies/drift/ppo.json", "policies/drift/dqn.csv", "policies/drift/ppo.policy"]
    {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let again = tmp.path().join("again");
    assert_ok(&meshrl(&["run", config.to_str().unwrap(), "--set", &format!("out_dir=\"{}\"", again.display())], tmp.path()));
    for f in ["autoscale.md", "autoscale.csv", "policies/drift/ppo.csv"] {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), std::fs::read(again.join(f)).unwrap(), "{f} differs");
    }
    let outside = meshrl(&["run", config.to_str().unwrap(), "--set", "loads=[1, 6]"], tmp.path());
    assert_exit_2_naming(&outside, &["load 6", "outside"]);
    let bad = meshrl(&["run", config.to_str().unwrap(), "--set", "max_replicas=3"], tmp.path());
    assert_exit_2_naming(&bad, &["3 replicas"]);
}

#[test]
fn no_command_writes_over_its_own_input() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("d");
    std::fs::create_dir(&d).unwrap();
    for f in ["run_a.json", "run_a.yaml", "run_b.json", "run_b.yaml", "manifest.csv"] {
        std::fs::copy(fortio_fixtures().join(f), d.join(f)).unwrap();
    }
    let before = tree(tmp.path());
    // A raw Fortio result, however the path is spelled; a rule; the manifest.
    for out in ["d/run_a.json", "d/../d/./run_a.json", "d/run_b.yaml"] {
        assert_exit_2_naming(&meshrl(&["ingest", "fortio", "d", "--out", out], tmp.path()), &["--out is the input", "run_"]);
    }
    assert_exit_2_naming(
        &meshrl(&["ingest", "fortio", "d", "--rules", "d/manifest.csv", "--out", "d/manifest.csv"], tmp.path()),
        &["--out is the input", "manifest.csv"],
    );
    // A hard link to a result is the same file.
    std::fs::hard_link(d.join("run_a.json"), tmp.path().join("linked.json")).unwrap();
    assert_exit_2_naming(&meshrl(&["ingest", "fortio", "d", "--out", "linked.json"], tmp.path()), &["--out is the input"]);
    std::fs::remove_file(tmp.path().join("linked.json")).unwrap();
    assert_eq!(tree(tmp.path()), before, "a refusal changes no file");
    // A new file beside them is fine.
    assert_ok(&meshrl(&["ingest", "fortio", "d", "--out", "d/trace.csv"], tmp.path()));

    // export: the cell it reads inside the folder it replaces.
    let cell = hand_made_run(tmp.path());
    let before = tree(tmp.path());
    let run_dir = cell.parent().unwrap().to_str().unwrap().to_string();
    assert_exit_2_naming(
        &meshrl(&["export", cell.to_str().unwrap(), "--out", &run_dir], tmp.path()),
        &["--out holds the input", "thread-call_seed2.json"],
    );
    assert_eq!(tree(tmp.path()), before);

    // generate: an output that is its own config.
    let out_dir = tmp.path().join("gen");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::copy(repo().join("configs/datasets.toml"), out_dir.join("README.md")).unwrap();
    let before = tree(tmp.path());
    let generate = meshrl(&["generate", "--config", "gen/README.md", "--out-dir", "gen", "--rows", "3"], tmp.path());
    assert_exit_2_naming(&generate, &["README.md", "is the input"]);
    assert_eq!(tree(tmp.path()), before);
}

#[test]
fn a_run_takes_only_a_folder_of_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_table5(tmp.path());
    // A user's folder: refused, naming out_dir, nothing written.
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("thesis.tex"), "months of work").unwrap();
    let before = tree(tmp.path());
    assert_exit_2_naming(
        &meshrl(&["run", config.to_str().unwrap()], tmp.path()),
        &["out_dir holds `thesis.tex`", "no config.resolved.toml"],
    );
    assert_eq!(tree(tmp.path()), before);
    // The current directory, by an empty out_dir: refused too.
    assert_exit_2_naming(&meshrl(&["run", config.to_str().unwrap(), "--set", "out_dir=\"\""], tmp.path()), &["out_dir is empty"]);
    assert_eq!(tree(tmp.path()), before);
}

/// A name from a config or a flag never becomes a shell command or a manifest's structure:
/// it is checked as Kubernetes checks it, and nothing is written.
#[test]
fn names_that_would_inject_a_command_or_a_manifest_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let control = tiny_control(tmp.path());
    let before = tree(tmp.path());
    for (set, needle) in [
        ("deploy.namespace=\"x; rm -rf /\"", "deploy.namespace \"x; rm -rf /\" is not an RFC 1123 label"),
        ("deploy.service=\"compute\\nkind: Secret\"", "deploy.service"),
        ("deploy.deployment=\"$(reboot)\"", "deploy.deployment"),
        ("deploy.subsets=[\"node1\", \"a b\"]", "deploy.subsets[1]"),
    ] {
        assert_exit_2_naming(&meshrl(&["run", control.to_str().unwrap(), "--set", set], tmp.path()), &[needle]);
    }
    assert_eq!(tree(tmp.path()), before, "nothing written");
    let autoscale = tiny_autoscale(tmp.path());
    let before_autoscale = tree(tmp.path());
    assert_exit_2_naming(
        &meshrl(&["run", autoscale.to_str().unwrap(), "--set", "deployment=\"x; rm -rf /\""], tmp.path()),
        &["deployment \"x; rm -rf /\" is not an RFC 1123 subdomain"],
    );
    assert_eq!(tree(tmp.path()), before_autoscale);
    let cell = hand_made_run(tmp.path());
    for (flag, value, needle) in [
        ("--host", "httpbin\nkind: Secret", "--host"),
        ("--url", "http://h:8000/get; rm -rf /", "--url"),
        ("--url", "file:///etc/passwd", "not an absolute http"),
    ] {
        let out = meshrl(&["export", cell.to_str().unwrap(), "--out", "export", flag, value], tmp.path());
        assert_exit_2_naming(&out, &[needle]);
    }
    assert!(!tmp.path().join("export").exists());
    // The names that pass are quoted where they reach a command.
    let policy = tmp.path().join("p.csv");
    std::fs::write(&policy, "l,r,p,c,d\n1,0,100,2,0.3\n").unwrap();
    let out = meshrl(&["apply-policy", policy.to_str().unwrap(), "--load", "1"], tmp.path());
    assert_ok(&out);
    assert!(text(&out.stdout).contains("kubectl scale deployment/compute --replicas=2 -n default"), "{}", text(&out.stdout));
}

/// Autoscaling settings that make no sense are refused before the run, naming the field.
#[test]
fn autoscale_refuses_nonsense_before_it_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_autoscale(tmp.path());
    let before = tree(tmp.path());
    for (set, needle) in [
        ("step_s=0", "step_s must be a number of seconds > 0, but is 0"),
        ("step_s=-5", "step_s"),
        ("step_s=nan", "step_s"),
        ("min_replicas=3", "min_replicas (3) must not exceed max_replicas (2)"),
        (
            "scenarios=[{name=\"r\", load={kind=\"profile\", start=1, stages=[[5, 9]]}}]",
            "the profile's stages[0] load 9 lies outside loads 1-4",
        ),
        ("scenarios=[{name=\"r\", load={kind=\"profile\", start=0.5, stages=[[5, 4]]}}]", "the profile's start load 0.5"),
        ("scenarios=[{name=\"r\", load={kind=\"profile\", start=1, stages=[[5, 2], [0, 4], [5, 1]]}}]", "stages[1] lasts 0 steps"),
    ] {
        assert_exit_2_naming(&meshrl(&["run", config.to_str().unwrap(), "--set", set], tmp.path()), &[needle]);
    }
    assert_eq!(tree(tmp.path()), before, "nothing written");
}

/// `serve` refuses a worker count outside 1-1024, timeouts that are not positive numbers of
/// seconds and a policy file that never ends, with exit 2 and before it listens.
#[test]
fn serve_refuses_absurd_workers_and_endless_policy_files() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("p.csv");
    std::fs::write(&policy, "load,ready,starting,delta,replicas,predicted_latency_s\n1,1,0,0,1,0.3\n").unwrap();
    for workers in ["0", "2000"] {
        let out = meshrl(&["serve", policy.to_str().unwrap(), "--addr", "127.0.0.1:0", "--workers", workers], tmp.path());
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("--workers"), "{}", text(&out.stderr));
    }
    for (flag, value) in [("--request-timeout", "0"), ("--idle-timeout", "-1"), ("--idle-timeout", "NaN"), ("--grace", "inf")] {
        let out = meshrl(&["serve", policy.to_str().unwrap(), "--addr", "127.0.0.1:0", &format!("{flag}={value}")], tmp.path());
        assert_exit_2_naming(&out, &[flag, "seconds"]);
    }
    #[cfg(unix)]
    {
        let out = meshrl(&["serve", "/dev/zero", "--addr", "127.0.0.1:0"], tmp.path());
        assert_exit_2_naming(&out, &["/dev/zero", "larger than 64 MiB"]);
    }
}

/// Budget curves on the measured control trace: a setting's evaluation is one of its
/// samples, the value the measured table's; the exhaustive search finds the best setting,
/// and every method and learner stays within its budget.
#[test]
fn budget_curves_on_a_measured_control_trace_stay_within_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let control = tiny_control(tmp.path());
    let config = tmp.path().join("budget.toml");
    std::fs::write(
        &config,
        format!(
            "kind = \"budget\"\nseed = 1\nseeds = 5\nout_dir = \"{}\"\nbudgets = [2, 20]\n\
             methods = [{{ method = \"random\" }}, {{ method = \"successive_halving\" }}]\nagents = [\"dqn\"]\nscore_runs = 1\n\
             [problem.control]\nexperiment = \"{}\"\nobjectives = [\"scaling\", \"throughput\"]\n\
             [dqn]\nhidden = 8\nlearning_starts = 2\nbatch_size = 2\n",
            tmp.path().join("b").display(),
            control.display()
        ),
    )
    .unwrap();
    let out = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert_ok(&out);
    let csv = std::fs::read_to_string(tmp.path().join("b/budget.csv")).unwrap();
    // Scaling: at load 1 one replica meets the bound (reward 2), at load 4 two are needed
    // (reward 1); the loads are equally likely, so the best policy is worth 1.5.
    assert!(csv.contains("scaling,exhaustive_x3,") && csv.contains(",1.500000,1.500000,0,,"), "{csv}");
    for line in csv.lines().skip(1).filter(|l| !l.contains("exhaustive")) {
        let f: Vec<&str> = line.split(',').collect();
        let (budget, spent): (f64, f64) = (f[2].parse().unwrap(), f[4].parse().unwrap());
        assert!(spent <= budget && f[3] == "5", "{line}");
    }
    let md = std::fs::read_to_string(tmp.path().join("b/budget.md")).unwrap();
    assert!(md.contains("## scaling") && md.contains("## throughput") && md.contains("dqn vs halving"), "{md}");
    let bad = tmp.path().join("bad");
    let out = meshrl(
        &[
            "run",
            config.to_str().unwrap(),
            "--set",
            "problem.control.objectives=[\"nope\"]",
            "--set",
            &format!("out_dir=\"{}\"", bad.display()),
        ],
        tmp.path(),
    );
    assert_exit_2_naming(&out, &["objective \"nope\""]);
    assert!(!bad.exists());
}

/// Budget curves on the SFR2L load search of a shipped dataset: states are distinct traffic
/// rules of its trace, the grid the protocol's; the learners act at the states.
#[test]
fn budget_curves_on_the_load_search_of_s2_stay_within_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo();
    let config = tmp.path().join("budget.toml");
    std::fs::write(
        &config,
        format!(
            "kind = \"budget\"\nseed = 1\nseeds = 2\nout_dir = \"{}\"\nbudgets = [6]\n\
             methods = [{{ method = \"random\" }}, {{ method = \"model_based\", forest = {{ trees = 3 }} }}]\nagents = [\"ppo\"]\n\
             score_runs = 2\n[problem.attack]\ndatasets_config = \"{}\"\nstates = 3\n\
             [[problem.attack.dataset]]\nname = \"S2\"\npath = \"{}\"\n[exhaustive]\nrepeats = 1\nshortlist = 2\nrefine = 1\n\
             [ppo]\nn_steps = 2\nbatch_size = 2\n",
            tmp.path().join("b").display(),
            repo.join("configs/datasets.toml").display(),
            repo.join("datasets/S2.csv").display()
        ),
    )
    .unwrap();
    let out = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert_ok(&out);
    let csv = std::fs::read_to_string(tmp.path().join("b/budget.csv")).unwrap();
    // 35 loads once, the 2 best once more, at each of 3 states.
    assert!(csv.contains("S2,exhaustive_x1,111,1,111,"), "{csv}");
    for m in ["random", "model_based_50pct_top5_trees3", "ppo"] {
        assert!(csv.contains(&format!("S2,{m},6,2,6.0,")), "{m}: {csv}");
    }
    let bad = tmp.path().join("bad");
    let out = meshrl(
        &["run", config.to_str().unwrap(), "--set", "problem.attack.states=100000", "--set", &format!("out_dir=\"{}\"", bad.display())],
        tmp.path(),
    );
    assert_exit_2_naming(&out, &["S2.csv", "distinct traffic rules"]);
    assert!(!bad.exists());
}

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
    for sub in ["generate", "emulate", "inspect"] {
        let line = help.lines().find(|l| l.trim_start().starts_with(sub)).unwrap_or_else(|| panic!("{sub} missing:\n{help}"));
        assert!(line.split_whitespace().count() > 3, "{sub} has no description: {line}");
    }
}

#[test]
fn regenerated_prefix_is_byte_identical_to_the_committed_datasets() {
    let tmp = tempfile::tempdir().unwrap();
    let config = repo().join("configs/datasets.toml");
    let out = meshrl(
        &["generate", "--config", config.to_str().unwrap(), "--rows", "150", "--out-dir", tmp.path().to_str().unwrap()],
        &repo(),
    );
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

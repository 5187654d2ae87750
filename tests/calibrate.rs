//! `meshrl calibrate` end to end: a trace emulated under a scenario the test keeps to
//! itself, fitted by the real CLI on a tiny config; the fitted file read back by the other
//! commands; bad input refused with exit 2.

mod common;

use std::path::Path;

use common::{assert_exit_2_naming, assert_ok, meshrl, repo, text};
use meshrl::emulator::calibration::calibration_rules;
use meshrl::emulator::{run_load_test, Scenario};
use meshrl::ingest::{write_trace, FortioRun, TraceRow};
use meshrl::rules::{Load, TrafficRules};

/// `runs` runs of each (connections and pending, threads) under a slower cluster than the
/// default: slower pods and handshakes.
fn write_hidden_trace(path: &Path, configurations: &[(u32, u32)], runs: u64) {
    let hidden = Scenario { service_time_ms: 3.0, handshake_ms: 1.2, fault_share: 0.0, ..Scenario::default() };
    let mut rows = Vec::new();
    for &(n, threads) in configurations {
        let rules = TrafficRules { max_connections: n, max_pending_requests: n, ..calibration_rules() };
        let load = Load { threads, calls: threads * 50 };
        for seed in 0..runs {
            let r = run_load_test(&rules, &load, &hidden, 1000 + seed);
            let d = r.details;
            let run = FortioRun {
                threads,
                calls: load.calls,
                qps: r.qps,
                failure_rate: r.failure_rate,
                latency_mean_ms: d.latency_mean_ms,
                latency_p50_ms: d.latency_p50_ms,
                latency_p90_ms: d.latency_p90_ms,
                latency_p99_ms: d.latency_p99_ms,
                duration_s: d.duration_s,
            };
            rows.push(TraceRow { result: format!("run_{n}_{threads}_{seed}.json"), rules, run });
        }
    }
    write_trace(path, &rows).unwrap();
}

const TINY: &str = "levels = 9\nruns = 6\nbudget = 40\ndesign = 12\nresamples = 40\n\
[[field]]\nname = \"service_time_ms\"\nlow = 0.3\nhigh = 10\n\
[[field]]\nname = \"handshake_ms\"\nlow = 0.05\nhigh = 5\n";

#[test]
fn calibrate_fits_a_trace_writes_a_scenario_every_command_reads_and_suggests_runs() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    write_hidden_trace(&trace, &[(1, 2), (1, 8), (10, 8), (10, 32), (100, 4)], 4);
    std::fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
    let out = meshrl(
        &[
            "calibrate",
            "trace.csv",
            "--out",
            "fit.toml",
            "--config",
            "tiny.toml",
            "--hold-out",
            "1",
            "--suggest",
            "2",
            "--report",
            "fit.md",
        ],
        dir.path(),
    );
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("| `service_time_ms` |") && stdout.contains("Held out of the fit"), "{stdout}");
    let fitted = std::fs::read_to_string(dir.path().join("fit.toml")).unwrap();
    for field in ["service_time_ms", "handshake_ms", "envoy_workers", "slow_connect_ms", "replica_behaviour"] {
        assert!(fitted.contains(&format!("{field} =")), "the file names `{field}`:\n{fitted}");
    }
    assert!(fitted.contains("service_time_ms = ") && fitted.contains("# fitted: 90 % interval"), "{fitted}");
    assert!(stdout.ends_with(&std::fs::read_to_string(dir.path().join("fit.md")).unwrap()), "the report is what was printed");
    for k in 1..=2 {
        let script = std::fs::read_to_string(dir.path().join(format!("fit.suggest/suggest_{k}/fortio.sh"))).unwrap();
        assert!(script.contains("fortio load -c "), "{script}");
        assert!(dir.path().join(format!("fit.suggest/suggest_{k}/destination-rule.yaml")).is_file());
    }
    // The same seed gives the same file.
    assert_ok(&meshrl(&["calibrate", "trace.csv", "--out", "again.toml", "--config", "tiny.toml", "--hold-out", "1"], dir.path()));
    assert_eq!(fitted, std::fs::read_to_string(dir.path().join("again.toml")).unwrap());
    // Read back: `emulate --scenario`, and an experiment config's `scenario_file`.
    let emulated = meshrl(&["emulate", "--scenario", "fit.toml", "--runs", "20"], dir.path());
    assert_ok(&emulated);
    let defend = repo().join("experiments/defend.toml");
    let table =
        meshrl::experiment::load_experiment(&defend, &[format!("scenario_file=\"{}\"", dir.path().join("fit.toml").display())]).unwrap();
    let scenario: Scenario = table["scenario"].clone().try_into().unwrap();
    let fit: Scenario = meshrl::generate::load_scenario(&dir.path().join("fit.toml")).unwrap();
    assert_eq!(scenario.service_time_ms, fit.service_time_ms);
    assert_ne!(scenario, fit, "the experiment's inline [scenario] fields stay over the file's");
}

#[test]
fn calibrate_refuses_bad_input_with_exit_2_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    write_hidden_trace(&dir.path().join("one.csv"), &[(1, 2)], 3);
    write_hidden_trace(&dir.path().join("two.csv"), &[(1, 2), (10, 8)], 2);
    std::fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
    let run = |trace: &str, config: &str| {
        std::fs::write(dir.path().join("c.toml"), config).unwrap();
        meshrl(&["calibrate", trace, "--out", "fit.toml", "--config", "c.toml"], dir.path())
    };
    assert_exit_2_naming(&run("one.csv", TINY), &["one.csv", "1 configuration"]);
    let field = |name: &str, low: &str, high: &str| format!("budget = 10\n[[field]]\nname = \"{name}\"\nlow = {low}\nhigh = {high}\n");
    assert_exit_2_naming(&run("two.csv", &field("handshake_ms", "2", "1")), &["handshake_ms", "empty or inverted"]);
    assert_exit_2_naming(&run("two.csv", &field("handshake_millis", "1", "2")), &["handshake_millis", "no such field"]);
    assert_exit_2_naming(&run("two.csv", "budgett = 3\n"), &["c.toml", "budgett"]);
    // A column the fit compares, missing.
    let csv = std::fs::read_to_string(dir.path().join("two.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let drop = header.iter().position(|c| *c == "latency_mean_ms").unwrap();
    let cut: String = csv
        .lines()
        .map(|l| l.split(',').enumerate().filter(|(i, _)| *i != drop).map(|(_, c)| c).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    std::fs::write(dir.path().join("nolatency.csv"), cut).unwrap();
    assert_exit_2_naming(&run("nolatency.csv", TINY), &["nolatency.csv", "latency_mean_ms"]);
    assert!(!dir.path().join("fit.toml").exists(), "no refused fit wrote a file");
}

#[test]
fn the_documented_fits_of_the_published_runs_reproduce_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for testbed in ["istio_docs_2018", "istio_docs_2020", "writeup_2022"] {
        let (toml, md) = (dir.path().join(format!("{testbed}.toml")), dir.path().join(format!("{testbed}.md")));
        let out = meshrl(
            &[
                "calibrate",
                &format!("datasets/published/{testbed}.csv"),
                "--scenario",
                "datasets/published/no_faults.toml",
                "--out",
                toml.to_str().unwrap(),
                "--report",
                md.to_str().unwrap(),
            ],
            &repo(),
        );
        assert_ok(&out);
        let committed = |ext: &str| std::fs::read_to_string(repo().join(format!("results/calibrate/{testbed}.{ext}"))).unwrap();
        let strip = |text: String| text.replace(&format!("{}", dir.path().display()), "results/calibrate");
        assert_eq!(strip(std::fs::read_to_string(&toml).unwrap()), committed("toml"), "{testbed}.toml");
        assert_eq!(strip(std::fs::read_to_string(&md).unwrap()), committed("md"), "{testbed}.md");
        let report = committed("md");
        assert!(report.contains("single-run mode") && !report.contains("**no**"), "{testbed}: every run inside its band:\n{report}");
    }
}

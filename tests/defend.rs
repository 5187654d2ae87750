//! The defend experiment through the real CLI, on a tiny grid.

mod common;
use common::{meshrl, repo, text, tree};

use std::path::{Path, PathBuf};

fn tiny_defend(dir: &Path) -> PathBuf {
    let config = format!(
        r#"kind = "defend"
seed = 3
seeds = 2
out_dir = "{out}"
epochs = 2
steps_per_epoch = 40
select_runs = 2
score_runs = 3
midpoints_from = "{datasets}"

[scenario]
replicas = 3
run_speed_sigma = 0.15
fault_share = 0.0
replica_behaviour = [{{ fault_share = 0.5 }}]

[loads]
threads = [2, 16]
calls = [200]

[grid]
max_connections = ["unlimited"]
max_pending_requests = ["unlimited"]
http2_max_requests = [4, "unlimited"]
consecutive_errors = [1, "unlimited"]
max_ejection_percent = [34]
ejection_time_s = [30]
retry_attempts = [0]
load_balancer = ["ROUND_ROBIN"]

[[objectives]]
name = "goodput"

[[objectives]]
name = "share"
reward = "share_503"
reward_unit = 0.1

[dqn]
hidden = 16
batch_size = 8
buffer_size = 64

[ppo]
gamma = 0.0
n_steps = 16
batch_size = 8
shared_layers = [16]

[attack]
threads = [1, 8]
calls = [100]
epochs = 2
steps_per_epoch = 20
"#,
        out = dir.join("out").display(),
        datasets = repo().join("configs/datasets.toml").display()
    );
    let path = dir.join("defend.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn defend_tiny_run_writes_tables_rule_yaml_and_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_defend(tmp.path());
    let out = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert!(out.status.success(), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    let dir = tmp.path().join("out");
    let md = std::fs::read_to_string(dir.join("defend.md")).unwrap();
    for needle in [
        "4 joint rules over 2 fields",
        "Mode `per_load`",
        "Mode `robust`",
        "oracle (per load)",
        "best single rule (worst load)",
        "Istio defaults (>= 1.24)",
        "S3 midpoint",
        "DQN (greedy)",
        "PPO (greedy)",
        "(2 of 2)",
        "against best single rule (mean)",
        "Attacker against defender",
    ] {
        assert!(md.contains(needle), "{needle} missing:\n{md}");
    }
    assert!(!md.contains("NaN"), "{md}");
    // The oracle is never beaten on the mean over loads by more than the fresh runs' noise,
    // and its regret against itself is 0.
    let csv = std::fs::read_to_string(dir.join("defend.csv")).unwrap();
    let oracle = csv.lines().find(|l| l.starts_with("goodput,per_load,\"oracle")).unwrap();
    assert_eq!(oracle.split(',').nth(8), Some("0.0000"), "{oracle}");
    for f in ["per_load.csv", "attack.csv", "curves.png", "curves.csv", "share_503_by_load.png", "wall_time.md", "config.resolved.toml"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    // Every field written out, no limit as the largest int32 (Istio's fields are int32).
    let yaml = std::fs::read_to_string(dir.join("recommended/goodput/destination-rule.yaml")).unwrap();
    for field in ["apiVersion: networking.istio.io/v1", "http2MaxRequests: ", "maxRetries: ", "connectTimeout: ", "simple: ROUND_ROBIN"] {
        assert!(yaml.contains(field), "{field} missing:\n{yaml}");
    }
    assert!(!yaml.contains("4294967295"), "{yaml}");
    let vs = std::fs::read_to_string(dir.join("recommended/goodput/virtual-service.yaml")).unwrap();
    assert!(vs.contains("kind: VirtualService") && vs.contains("attempts: 0"), "{vs}");
    let fortio = std::fs::read_to_string(dir.join("recommended/goodput/fortio.sh")).unwrap();
    assert!(fortio.contains("fortio load -c 16 -qps 0 -n 200"), "{fortio}");

    // The same seed gives the same bytes.
    let again = tmp.path().join("again");
    let out = meshrl(&["run", config.to_str().unwrap(), "--set", &format!("out_dir=\"{}\"", again.display())], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in ["defend.md", "defend.csv", "per_load.csv", "attack.csv", "curves.csv", "recommended/share/destination-rule.yaml"] {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), std::fs::read(again.join(f)).unwrap(), "{f} differs");
    }
}

#[test]
fn a_bad_rule_value_exits_2_naming_the_field_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_defend(tmp.path());
    for (set, field) in [
        ("grid.http2_max_requests=[0]", "grid.http2_max_requests[0]"),
        ("grid.max_ejection_percent=[150]", "grid.max_ejection_percent[0]"),
        ("scenario.replicas=0", "scenario.replicas"),
        ("loads.threads=[0]", "loads.threads[0]"),
        // Refused before the run, not when the recommended rule is written at its end.
        ("grid.connect_timeout_ms=[2.5]", "grid.connect_timeout_ms[0]"),
        ("deploy.name=\"Not_A_Name\"", "deploy"),
        ("modes=[\"robust\",\"robust\"]", "modes"),
    ] {
        let out = meshrl(&["run", config.to_str().unwrap(), "--set", set], tmp.path());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{set}: {err}");
        assert!(err.contains(field) && !err.contains("panicked"), "{set} should name {field}: {err}");
        assert!(!tmp.path().join("out").exists(), "{set}: nothing is written");
    }
}

/// A grid of 1.92 M rules at 16 loads, 1 000 selection runs each (about 300 h on two cores;
/// above 2 h on any machine whose load test takes over 0.5 us): the estimate is printed and
/// the run refused before it writes anything, unless the user says yes.
#[test]
fn a_run_estimated_above_two_hours_is_refused_before_it_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_defend(tmp.path());
    let before = tree(tmp.path());
    let huge = [
        "grid.max_connections=[1, 2, 4, 8, 16, 32, 64, 128, 256, \"unlimited\"]",
        "grid.max_pending_requests=[1, 2, 4, 8, 16, 32, 64, 128, 256, \"unlimited\"]",
        "grid.http2_max_requests=[1, 2, 4, 8, 16, 32, 64, 128, 256, \"unlimited\"]",
        "grid.consecutive_errors=[1, 2, 3, 5, 8, 13, 21, \"unlimited\"]",
        "grid.max_ejection_percent=[10, 20, 34, 50, 100]",
        "grid.ejection_time_s=[1, 5, 10, 30, 60, 120]",
        "grid.retry_attempts=[0, 1, 2, 3]",
        "grid.load_balancer=[\"ROUND_ROBIN\", \"LEAST_REQUEST\"]",
        "loads.threads=[1, 2, 4, 8, 16, 32, 64, 128]",
        "loads.calls=[200, 400]",
        "select_runs=1000",
    ];
    let mut args = vec!["run", config.to_str().unwrap()];
    for set in &huge {
        args.extend(["--set", set]);
    }
    let out = meshrl(&args, tmp.path());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("estimate:") && stdout.contains("30 720 000 000 load tests in the exhaustive search"), "{stdout}");
    assert!(stderr.contains("--yes") && stderr.contains("allow_long_run") && !stderr.contains("panicked"), "{stderr}");
    assert_eq!(tree(tmp.path()), before, "a refused run wrote something");

    // The field must be a boolean; a tiny run starts without being asked.
    let out = meshrl(&["run", config.to_str().unwrap(), "--set", "allow_long_run=\"maybe\""], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("allow_long_run must be true or false"), "{}", text(&out.stderr));
    assert_eq!(tree(tmp.path()), before);
}

/// A budget experiment on the tiny defender: every method within its budget, the
/// exhaustive yardstick, the report files, the same bytes twice, bad input refused.
#[test]
fn budget_curves_on_the_tiny_defender_are_written_within_budget_and_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let defend = tiny_defend(tmp.path());
    let config = tmp.path().join("budget.toml");
    std::fs::write(
        &config,
        format!(
            "kind = \"budget\"\nseed = 2\nseeds = 3\nout_dir = \"{}\"\n\
             budgets = [2, 12]\nmethods = [{{ method = \"random\" }}, {{ method = \"successive_halving\" }}, \
             {{ method = \"cma_es\" }}, {{ method = \"model_based\", candidates = 2, forest = {{ trees = 5 }} }}, \
             {{ method = \"tpe\", startup = 4 }}]\n\
             agents = [\"dqn\", \"ppo\"]\nscore_runs = 3\n[problem.defend]\nexperiment = \"{}\"\nobjective = \"goodput\"\n\
             [exhaustive]\nrepeats = 2\nshortlist = 2\nrefine = 1\n[dqn]\nhidden = 8\nlearning_starts = 2\nbatch_size = 2\n\
             [ppo]\nn_steps = 4\nbatch_size = 2\n",
            tmp.path().join("b").display(),
            defend.display()
        ),
    )
    .unwrap();
    let out = meshrl(&["run", config.to_str().unwrap()], tmp.path());
    assert!(out.status.success(), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    let dir = tmp.path().join("b");
    let md = std::fs::read_to_string(dir.join("budget.md")).unwrap();
    for needle in [
        "## per_load",
        "## robust",
        "Exhaustive yardstick",
        "halving vs random",
        "model_based_50pct_top2_trees5 vs random",
        "| ppo vs dqn |",
        "| pair | B = 2 | B = 12 |",
        "tpe_startup4 vs random",
        "(3; 12)",
        "budget.png",
    ] {
        assert!(md.contains(needle), "{needle} missing:\n{md}");
    }
    let csv = std::fs::read_to_string(dir.join("budget.csv")).unwrap();
    assert!(csv.starts_with("variant,method,budget,n_seeds,spent_mean,"), "{csv}");
    for line in csv.lines().skip(1).filter(|l| !l.contains("exhaustive")) {
        let f: Vec<&str> = line.split(',').collect();
        let (budget, spent): (f64, f64) = (f[2].parse().unwrap(), f[4].parse().unwrap());
        assert!(spent <= budget && f[3] == "3", "{line}");
    }
    // The exhaustive search runs 4 rules x 2 runs and its 2 best once more, per load (2 loads)
    // and robust (each evaluation runs both loads) alike.
    assert!(csv.contains("per_load,exhaustive_x2,20,1,20,") && csv.contains("robust,exhaustive_x2,20,1,20,"), "{csv}");
    assert!(dir.join("budget.png").exists() && dir.join("config.resolved.toml").exists());

    let again = tmp.path().join("again");
    let out = meshrl(&["run", config.to_str().unwrap(), "--set", &format!("out_dir=\"{}\"", again.display())], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in ["budget.md", "budget.csv"] {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), std::fs::read(again.join(f)).unwrap(), "{f} differs");
    }
    // A finished run grows by a budget (its other cells kept); another scoring is refused.
    let out = meshrl(&["run", config.to_str().unwrap(), "--set", "budgets=[2, 12, 20]"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let grown = std::fs::read_to_string(dir.join("budget.csv")).unwrap();
    assert!(grown.contains("per_load,random,20,3,") && grown.contains(csv.lines().nth(2).unwrap()), "{grown}");
    let out = meshrl(&["run", config.to_str().unwrap(), "--set", "score_runs=4"], tmp.path());
    common::assert_exit_2_naming(&out, &["score_runs"]);
    for (set, needle) in [
        ("budgets=[0]", "budgets[0]"),
        ("problem.defend.objective=\"nope\"", "objective \"nope\""),
        ("agents=[\"dqn\",\"dqn\"]", "agents"),
        ("dqn.hidden=0", "hidden"),
        ("methods=[{method=\"exhaustive\"}]", "methods[0]"),
        ("methods=[{method=\"random\",foo=1}]", "foo"),
        ("methods=[{method=\"model_based\",forest={trees=0}}]", "model_based.forest.trees"),
        ("methods=[{method=\"tpe\",gamma=0}]", "tpe.gamma"),
    ] {
        let bad = tmp.path().join("bad");
        let out = meshrl(&["run", config.to_str().unwrap(), "--set", set, "--set", &format!("out_dir=\"{}\"", bad.display())], tmp.path());
        common::assert_exit_2_naming(&out, &[needle]);
        assert!(!bad.exists(), "{set}: something was written");
    }
}

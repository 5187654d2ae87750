//! Integration tests of `meshrl mesh`: the real executable on small topologies.

mod common;
use common::{assert_exit_2_naming, assert_ok, meshrl, repo, text};

use std::path::Path;

/// `mesh tree` writes the committed 100-service tree byte for byte; nonsense exits 2 and
/// writes nothing.
#[test]
fn mesh_tree_regenerates_the_committed_tree_and_refuses_nonsense() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tree100.yaml");
    assert_ok(&meshrl(&["mesh", "tree", "--out", out.to_str().unwrap()], tmp.path()));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(repo().join("topologies/tree100.yaml")).unwrap());
    let bad = tmp.path().join("bad.yaml");
    for args in [&["--services", "0"][..], &["--heavy-tail", "-1"], &["--sleep-ms", "3", "1"]] {
        let mut all = vec!["mesh", "tree", "--out", bad.to_str().unwrap()];
        all.extend_from_slice(args);
        let result = meshrl(&all, tmp.path());
        assert_eq!(result.status.code(), Some(2), "{args:?}: {}", text(&result.stderr));
        assert!(!bad.exists(), "{args:?} wrote a file");
    }
}

/// A service `a` calling `b`, which fails every second request (Isotope's errorRate 50 %).
const FLAKY: &str =
    "services:\n- {name: a, isEntrypoint: true, script: [{sleep: 1ms}, {call: b}]}\n- {name: b, errorRate: 50%, script: [{sleep: 1ms}]}\n";

fn write(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn mesh_run_gives_the_same_bytes_for_a_seed_and_writes_its_series() {
    let tmp = tempfile::tempdir().unwrap();
    let chain = repo().join("topologies/chain3.yaml");
    let out = tmp.path().join("out");
    let args = ["mesh", "run", chain.to_str().unwrap(), "--qps", "200", "--duration-s", "3", "--runs", "2", "--json"];
    let first = meshrl(&args, tmp.path());
    assert_ok(&first);
    let mut with_out = args.to_vec();
    with_out.extend(["--out", out.to_str().unwrap()]);
    let second = meshrl(&with_out, tmp.path());
    assert_ok(&second);
    assert_eq!(first.stdout, second.stdout);
    let lines: Vec<serde_json::Value> = text(&first.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0]["seed"].as_u64(), lines[1]["seed"].as_u64()), (Some(1), Some(2)));
    for key in ["requests", "ok", "failed", "failure_share", "goodput_per_s"] {
        assert!(lines[0]["entry"][key].is_number(), "entry.{key}");
    }
    for key in ["mean", "p50", "p90", "p99"] {
        assert!(lines[0]["entry"]["latency_ms"][key].as_f64().unwrap() > 0.0, "latency_ms.{key}");
    }
    let edges = lines[0]["edges"].as_array().unwrap();
    assert_eq!(
        edges.iter().map(|e| format!("{}>{}", e["source"].as_str().unwrap(), e["destination"].as_str().unwrap())).collect::<Vec<_>>(),
        ["load>a", "a>b", "b>c"]
    );
    assert_eq!(std::fs::read_to_string(out.join("runs.jsonl")).unwrap(), text(&first.stdout));
    let csv = std::fs::read_to_string(out.join("series-1.csv")).unwrap();
    assert!(csv.starts_with("second,arrivals,ok,failed,p99_ms,a_in_flight,b_in_flight,c_in_flight,a_queued,b_queued,c_queued\n"), "{csv}");
    assert!(csv.lines().count() >= 4, "{csv}");
    assert!(std::fs::metadata(out.join("series-1.png")).unwrap().len() > 1000);
    assert!(out.join("series-2.csv").exists() && !out.join("series-2.png").exists());
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("Seeds: 1, 2.") && summary.contains("| entry goodput, 200/s | 2 |"), "{summary}");
    let command = std::fs::read_to_string(out.join("command.txt")).unwrap();
    assert!(command.starts_with("mesh run ") && command.contains("--runs 2 --json") && !command.contains("--out"), "{command}");
}

#[test]
fn mesh_run_applies_rules_per_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let topology = write(tmp.path(), "flaky.yaml", FLAKY);
    let share = |extra: &[&str]| {
        let mut args = vec!["mesh", "run", topology.as_str(), "--threads", "2", "--calls", "400", "--json"];
        args.extend_from_slice(extra);
        let out = meshrl(&args, tmp.path());
        assert_ok(&out);
        let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
        (v["entry"]["failure_share"].as_f64().unwrap(), v["edges"][1]["retries"].as_u64().unwrap())
    };
    // Istio 1.30's default retries skip a 500: half the calls fail.
    let (plain, retries) = share(&[]);
    assert!((0.45..0.55).contains(&plain) && retries == 0, "{plain} {retries}");
    // A VirtualService retrying 5xx on `b`: most of Isotope's every-second failures are retried
    // away (two concurrent callers sometimes retry into the failing turn again).
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: b}\nspec:\n  hosts: [b]\n  http:\n  - route:\n    - destination: {host: b}\n    retries: {attempts: 2, retryOn: 5xx}\n";
    let rules = tmp.path().join("rules");
    write(&rules, "b.yaml", vs);
    let (fixed, retries) = share(&["--rules-dir", rules.to_str().unwrap()]);
    assert!(fixed < 0.1 && retries > 100, "{fixed} {retries}");
}

#[test]
fn mesh_run_refuses_bad_input_naming_the_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let svc = |name: &str, rest: &str| format!("- {{name: {name}, {rest}}}\n");
    let topologies = [
        (
            "cycle",
            format!("services:\n{}{}", svc("a", "isEntrypoint: true, script: [{call: b}]"), svc("b", "script: [{call: a}]")),
            "cycle",
        ),
        ("unknown", format!("services:\n{}", svc("a", "isEntrypoint: true, script: [{call: nobody}]")), "nobody"),
        ("no_entry", format!("services:\n{}{}", svc("a", "script: [{call: b}]"), svc("b", "script: []")), "isEntrypoint"),
        ("two_entries", format!("services:\n{}{}", svc("a", "isEntrypoint: true"), svc("b", "isEntrypoint: true")), "isEntrypoint"),
        ("twice", format!("services:\n{}{}", svc("a", "isEntrypoint: true"), svc("a", "script: []")), "name"),
        ("negative", format!("services:\n{}", svc("a", "isEntrypoint: true, script: [{sleep: -1ms}]")), "sleep"),
        ("unparseable", format!("services:\n{}", svc("a", "isEntrypoint: true, script: [{sleep: 10 ms}]")), "sleep"),
        (
            "probability",
            format!(
                "services:\n{}{}",
                svc("a", "isEntrypoint: true, script: [{call: {service: b, probability: 150}}]"),
                svc("b", "script: []")
            ),
            "probability",
        ),
    ];
    for (name, body, field) in topologies {
        let path = write(tmp.path(), &format!("{name}.yaml"), &body);
        let result = meshrl(&["mesh", "run", &path, "--qps", "10", "--duration-s", "1", "--out", out.to_str().unwrap()], tmp.path());
        assert_exit_2_naming(&result, &[&format!("{name}.yaml"), field]);
        assert!(!out.exists(), "{name}: wrote --out");
    }
    let good = write(tmp.path(), "good.yaml", FLAKY);
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec:\n  host: ghost\n";
    let rules = tmp.path().join("rules");
    let rule = write(&rules, "ghost.yaml", dr);
    let budget = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec:\n  host: b\n  trafficPolicy:\n    retryBudget: {percent: 20}\n";
    let old = tmp.path().join("old");
    write(&old, "b.yaml", budget);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["--rules-dir", rules.to_str().unwrap(), "--qps", "10", "--duration-s", "1"], vec![rule.as_str(), "spec.host", "ghost"]),
        (
            vec!["--rules-dir", old.to_str().unwrap(), "--istio-version", "1.24", "--qps", "10", "--duration-s", "1"],
            vec!["b.yaml", "retryBudget", "1.27"],
        ),
        (vec!["--schedule", "60s@100,10x@5"], vec!["--schedule", "segment 2"]),
        (vec!["--schedule", "60s"], vec!["--schedule", "segment 1"]),
        (vec!["--istio-version", "2.0", "--qps", "10", "--duration-s", "1"], vec!["--istio-version"]),
        (vec!["--threads", "0", "--calls", "10"], vec!["--threads"]),
        (vec!["--qps", "10"], vec!["--duration-s"]),
    ];
    for (extra, needles) in cases {
        let mut args = vec!["mesh", "run", good.as_str(), "--out", out.to_str().unwrap()];
        args.extend_from_slice(&extra);
        assert_exit_2_naming(&meshrl(&args, tmp.path()), &needles);
        assert!(!out.exists(), "{extra:?}: wrote --out");
    }
}

/// Every documented mesh run (results/mesh/*/command.txt) reproduces its committed first
/// seed: the same JSON line and the same per-second series, byte for byte.
#[test]
fn documented_mesh_runs_reproduce_their_committed_first_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let results = repo().join("results/mesh");
    let mut runs: Vec<_> = std::fs::read_dir(&results).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    runs.sort();
    assert!(runs.len() >= 8, "{runs:?}");
    for run in runs {
        let command = std::fs::read_to_string(run.join("command.txt")).unwrap();
        let mut words = shlex::split(command.trim()).unwrap();
        let at = words.iter().position(|w| w == "--runs").expect("a documented run names its seeds");
        words[at + 1] = "1".into();
        let out = tmp.path().join(run.file_name().unwrap());
        words.extend(["--out".into(), out.to_str().unwrap().into()]);
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        assert_ok(&meshrl(&args, &repo()));
        let first_line = |p: &Path| std::fs::read_to_string(p.join("runs.jsonl")).unwrap().lines().next().unwrap().to_string();
        assert_eq!(first_line(&out), first_line(&run), "{}", run.display());
        assert_eq!(std::fs::read(out.join("series-1.csv")).unwrap(), std::fs::read(run.join("series-1.csv")).unwrap(), "{}", run.display());
    }
}

/// A budget experiment on the mesh defender, tiny: a caller and two callees with capacity,
/// two states. Every entry within its budget (the learners' probes counted), the
/// yardsticks with their runs, the same bytes twice, bad input refused naming the field.
#[test]
fn mesh_defend_budget_runs_every_entry_and_yardstick_within_budget_and_reproducibly() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "three.yaml",
        "services:\n- {name: a, isEntrypoint: true, script: [{sleep: 1ms}, {call: b}, {call: c}]}\n\
         - {name: b, numReplicas: 2, concurrency: 2, queueLimit: 10, script: [{sleep: 4ms}]}\n\
         - {name: c, numReplicas: 2, concurrency: 2, queueLimit: 10, script: [{sleep: 2ms}]}\n",
    );
    let config = tmp.path().join("mesh_defend.toml");
    std::fs::write(
        &config,
        "kind = \"budget\"\nseed = 3\nseeds = 2\nout_dir = \"m\"\nbudgets = [6, 12]\n\
         methods = [{ method = \"random\" }]\nagents = [\"dqn\", \"ppo\"]\nscore_runs = 2\n\
         [problem.mesh]\ntopology = \"three.yaml\"\nevaluation_states = 2\nprobe_s = 2.0\n\
         [problem.mesh.states]\nentry_qps = [300.0]\nbefore_s = 2.0\nafter_s = 4.0\nspike_duration_s = [2.0]\n\
         [problem.mesh.yardsticks]\nuniform_coarse = 3\nuniform_shortlist = 1\nuniform_refine = 0\ndescent_runs = 1\n\
         [exhaustive]\nrepeats = 0\n[dqn]\nhidden = 8\nlearning_starts = 2\nbatch_size = 2\n[ppo]\nn_steps = 4\nbatch_size = 2\n",
    )
    .unwrap();
    assert_ok(&meshrl(&["run", config.to_str().unwrap()], tmp.path()));
    let dir = tmp.path().join("m");
    let md = std::fs::read_to_string(dir.join("budget.md")).unwrap();
    for needle in [
        "rules for the 2 destinations of `three.yaml`",
        "| istio_defaults |",
        "| istio_retry_budget |",
        "| coordinate_descent |",
        "dqn_sequential vs dqn_independent",
        "ppo_shared_trunk vs istio_defaults",
    ] {
        assert!(md.contains(needle), "{needle} missing:\n{md}");
    }
    let csv = std::fs::read_to_string(dir.join("budget.csv")).unwrap();
    // One destination's fields: 3 x 4 x 3 x 4 x 3 x 4 x 4 x 4 x 2; the best uniform rule
    // tries 3 at random, then its leader and the leader's 22 one-field changes, per state.
    assert!(csv.contains("per_state,best_uniform,52,1,52,"), "{csv}");
    assert!(csv.contains("per_state,istio_defaults,0,1,0,"), "{csv}");
    for line in csv.lines().skip(1).filter(|l| l.contains(",2,")) {
        let f: Vec<&str> = line.split(',').collect();
        let (budget, spent): (f64, f64) = (f[2].parse().unwrap(), f[4].parse().unwrap());
        assert!(spent <= budget, "{line}");
        if f[1].starts_with("dqn") || f[1].starts_with("ppo") {
            assert_eq!(spent, budget, "a learner spends its budget, probes included: {line}");
        }
    }
    // The recommended rules per state: a folder per state that the mesh run reads, the
    // Fortio commands, the worst state before and after.
    assert!(md.contains("### Recommended rules") && md.contains("recommended/worst_after.png"), "{md}");
    for state in ["state1", "state2"] {
        let folder = dir.join("recommended").join(state);
        for f in ["b.yaml", "c.yaml", "fortio.sh"] {
            assert!(folder.join(f).exists(), "{state}/{f} missing");
        }
        let fortio = std::fs::read_to_string(folder.join("fortio.sh")).unwrap();
        assert!(fortio.contains("fortio load -qps 300 -t 2s -c 64 -json segment_1.json http://a:8080/"), "{fortio}");
        let run = meshrl(
            &["mesh", "run", "three.yaml", "--rules-dir", folder.to_str().unwrap(), "--qps", "100", "--duration-s", "2"],
            tmp.path(),
        );
        assert_ok(&run);
    }
    assert!(dir.join("recommended/worst_before.png").exists() && dir.join("recommended/worst_after.png").exists());
    let out = meshrl(&["run", config.to_str().unwrap(), "--set", "out_dir=\"again\""], tmp.path());
    assert_ok(&out);
    for f in ["budget.md", "budget.csv"] {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), std::fs::read(tmp.path().join("again").join(f)).unwrap(), "{f} differs");
    }
    for (set, needle) in [
        ("problem.mesh.layouts=[]", "layouts"),
        ("problem.mesh.evaluation_states=0", "evaluation_states"),
        ("problem.mesh.states.spike_share=2.0", "spike_share"),
        ("problem.mesh.grid.retry_attempts=[]", "retry_attempts"),
        ("problem.mesh.topology=\"missing.yaml\"", "missing.yaml"),
        ("problem.mesh.release=\"0.1\"", "release"),
    ] {
        let out = meshrl(&["run", config.to_str().unwrap(), "--set", set, "--set", "out_dir=\"bad\""], tmp.path());
        assert_exit_2_naming(&out, &[needle]);
        assert!(!tmp.path().join("bad").exists(), "{set}: something was written");
    }
}

//! `meshrl validate --fortio <dir>`: a Table 5 cell's Val. from real load tests instead of
//! the emulator. `meshrl export <cell> --validation --out <dir>` writes every validated pair
//! of the cell, the agents' and the random baseline's, with its DestinationRule and Fortio
//! command; once they have run on a cluster (`run_<i>.json` beside the manifest), this
//! takes the same ratio as Table 5: total 503/s of the agents' pairs over the baseline's.
//! The rules of each measured run are read back from its YAML files and must be the
//! manifest's, those the emulator's Val. was computed for.

use std::collections::BTreeSet;
use std::path::Path;

use crate::error::{Error, Result};
use crate::ingest::{read_csv_as_text, read_fortio, read_manifest_rows, read_rule_files};
use crate::rules::{KNOB_COLUMNS, RULE_COLUMNS};

/// Val. of one cell from real runs, beside the emulator's Val. of the same pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    pub rl_runs: usize,
    pub baseline_runs: usize,
    /// Runs listed in the manifest whose result file is not there (yet), in manifest
    /// order; they are left out of both means (at most half of each side, see [`validate`]).
    pub missing: Vec<String>,
    /// Mean 503/s of the measured runs, per side.
    pub rl_mean: f64,
    pub baseline_mean: f64,
    /// Measured ratio: the agents' 503/s over the baseline's (means, so that a side with a
    /// missing run is not penalised; equal to the ratio of totals when none is missing).
    /// NaN (undefined, and printed as such) when the baseline's runs had no 503s.
    pub val: f64,
    /// The emulator's ratio over the same measured runs, from the manifest; NaN when the
    /// emulator gave the baseline's runs no 503s.
    pub emulator_val: f64,
}

struct ManifestRun {
    row: usize,
    side: String,
    result: String,
    emu_reward: f64,
    /// The load the row asked for (`threads`, `calls`), when the manifest has the columns.
    load: Option<(u32, u32)>,
}

fn read_validation_manifest(path: &Path) -> Result<Vec<ManifestRun>> {
    let frame = read_csv_as_text(path)?;
    let column = |name: &str| -> Result<Vec<Option<String>>> {
        let c = frame.column(name).map_err(|_| {
            Error::file(path, format!("missing column `{name}` (write the manifest with `meshrl export <cell> --validation`)"))
        })?;
        let cells = c.str().map_err(|e| Error::file(path, format!("column `{name}`: {e}")))?;
        Ok(cells.iter().map(|v| v.map(|s| s.trim().to_string())).collect())
    };
    let (sides, results, rewards) = (column("side")?, column("result")?, column("emu_reward")?);
    let loads = match (frame.column("threads"), frame.column("calls")) {
        (Ok(_), Ok(_)) => Some((column("threads")?, column("calls")?)),
        _ => None,
    };
    let mut runs = Vec::with_capacity(sides.len());
    for i in 0..sides.len() {
        let row = i + 1;
        let side = sides[i].clone().filter(|s| s == "rl" || s == "baseline");
        let side = side.ok_or_else(|| Error::field(path, row, "side", "expected `rl` or `baseline`"))?;
        let result = results[i].clone().filter(|s| !s.is_empty()).ok_or_else(|| Error::field(path, row, "result", "empty cell"))?;
        let text = rewards[i].clone().unwrap_or_default();
        let emu_reward = text.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0);
        let emu_reward = emu_reward.ok_or_else(|| Error::field(path, row, "emu_reward", format!("`{text}` is not a number >= 0")))?;
        let whole = |cells: &[Option<String>], name: &str| -> Result<u32> {
            let text = cells[i].clone().unwrap_or_default();
            text.parse::<u32>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| Error::field(path, row, name, format!("`{text}` is not a whole number >= 1")))
        };
        let load = match &loads {
            Some((threads, calls)) => Some((whole(threads, "threads")?, whole(calls, "calls")?)),
            None => None,
        };
        runs.push(ManifestRun { row, side, result, emu_reward, load });
    }
    Ok(runs)
}

/// For an export's manifest (a `yaml` column and the seven rule columns): each measured
/// run's DestinationRule, with its VirtualService if there is one, must hold the manifest's
/// rules, or the run measured other rules than the ones the emulator's Val. is of (a YAML
/// edited or swapped after export): an error naming the file and the first column that
/// differs. A measured run whose YAML file is gone is refused too (nothing says what it was
/// made under); a manifest without these columns (written by hand) is not checked.
fn check_rule_files(dir: &Path, manifest: &Path, measured: &BTreeSet<&str>) -> Result<()> {
    let frame = read_csv_as_text(manifest)?;
    let Ok(column) = frame.column("yaml") else { return Ok(()) };
    if RULE_COLUMNS.iter().any(|c| frame.column(c).is_err()) {
        return Ok(());
    }
    let yamls: Vec<Option<String>> = match column.str() {
        Ok(cells) => cells.iter().map(|c| c.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())).collect(),
        Err(e) => return Err(Error::file(manifest, format!("column `yaml`: {e}"))),
    };
    for (listed, yaml) in read_manifest_rows(manifest)?.iter().zip(yamls) {
        let Some(yaml) = yaml.filter(|_| measured.contains(listed.result.as_str())) else { continue };
        let path = dir.join(&yaml);
        if !path.is_file() {
            return Err(Error::file(
                &path,
                format!(
                    "missing: row {} of {} lists it as the rule the run {} was made under; restore it (or export again and rerun)",
                    listed.row,
                    manifest.display(),
                    listed.result
                ),
            ));
        }
        let found = read_rule_files(&path)?;
        if found == listed.rules {
            continue;
        }
        let fields = |r: &crate::rules::TrafficRules| format!("{},{}", r.csv_fields(), r.knob_csv_fields());
        let (a, b) = (fields(&found), fields(&listed.rules));
        let columns = RULE_COLUMNS.iter().chain(&KNOB_COLUMNS);
        let differs = a.split(',').zip(b.split(',')).zip(columns).find(|((x, y), _)| x != y);
        let what = match differs {
            Some(((x, y), column)) => format!("`{column}` is {x} there but {y} in row {} of the manifest", listed.row),
            None => format!("its rules differ from row {} of the manifest", listed.row),
        };
        return Err(Error::file(
            &path,
            format!(
                "{what}: the run {} was not made under the rules the emulator's Val. is of (restore the exported file, \
                 or export again and rerun)",
                listed.result
            ),
        ));
    }
    Ok(())
}

/// Reads the manifest and every present result. A side with fewer than half of its runs
/// measured is an error naming the missing results: a mean over a few runs (and maybe
/// not a random few: the quick ones, the ones that did not crash) is no Val. of the cell.
pub fn validate(dir: &Path) -> Result<Validation> {
    validate_under(dir, None)
}

/// Emulated runs behind each measured run's emulator reward under a given scenario.
pub const SCENARIO_RUNS: u64 = 20;

/// [`validate`]; with a scenario (a fitted one, from `meshrl calibrate`), the emulator's Val.
/// is recomputed under it: each measured run's rules and load, the mean 503/s of
/// [`SCENARIO_RUNS`] emulated runs (seeds 1 to 20), instead of the manifest's `emu_reward`.
pub fn validate_under(dir: &Path, scenario: Option<&crate::emulator::Scenario>) -> Result<Validation> {
    let manifest = dir.join("manifest.csv");
    let runs = read_validation_manifest(&manifest)?;
    let listed_rules = match scenario {
        Some(_) => read_manifest_rows(&manifest)?.into_iter().map(|r| (r.result.clone(), r.rules)).collect(),
        None => std::collections::BTreeMap::new(),
    };
    let mut measured: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    let mut missing_of: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let mut missing = Vec::new();
    for run in &runs {
        let k = usize::from(run.side == "baseline");
        let file = dir.join(&run.result);
        if !file.exists() {
            missing.push(run.result.clone());
            missing_of[k].push(run.result.clone());
            continue;
        }
        let r = read_fortio(&file)?;
        if let Some((threads, calls)) = run.load.filter(|&(t, c)| (t, c) != (r.threads, r.calls)) {
            return Err(Error::file(
                &file,
                format!(
                    "fields `NumThreads` and `DurationHistogram.Count`: the run made -c {} -n {}, but row {} of the manifest asked \
                     for -c {threads} -n {calls}: it measured another load than the one the emulator's Val. is of",
                    r.threads, r.calls, run.row
                ),
            ));
        }
        let emu_reward = match (scenario, listed_rules.get(&run.result)) {
            (Some(scenario), Some(rules)) => {
                let load = crate::rules::Load { threads: r.threads, calls: r.calls };
                (1..=SCENARIO_RUNS).map(|seed| crate::emulator::run_load_test(rules, &load, scenario, seed).reward()).sum::<f64>()
                    / SCENARIO_RUNS as f64
            }
            _ => run.emu_reward,
        };
        measured[k].push((r.qps * r.failure_rate, emu_reward));
    }
    let present: BTreeSet<&str> = runs.iter().map(|r| r.result.as_str()).filter(|r| !missing.iter().any(|m| m.as_str() == *r)).collect();
    check_rule_files(dir, &manifest, &present)?;
    for (k, side) in ["rl", "baseline"].iter().enumerate() {
        let (have, listed) = (measured[k].len(), measured[k].len() + missing_of[k].len());
        if listed == 0 {
            return Err(Error::file(
                &manifest,
                format!("lists no `{side}` run: a Val. needs both sides (write it with `meshrl export <cell> --validation`)"),
            ));
        }
        if have == 0 {
            return Err(Error::file(
                &manifest,
                format!("no Fortio result of a `{side}` run is in {} yet (0 of {listed}; first: {})", dir.display(), missing_of[k][0]),
            ));
        }
        if 2 * have < listed {
            return Err(Error::file(
                &manifest,
                format!(
                    "only {have} of the {listed} `{side}` runs have a Fortio result in {}: a Val. needs at least half of each \
                     side's runs. Missing: {}",
                    dir.display(),
                    missing_of[k].join(", ")
                ),
            ));
        }
    }
    let mean = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let (rl_mean, baseline_mean) = (mean(&measured[0], |x| x.0), mean(&measured[1], |x| x.0));
    Ok(Validation {
        rl_runs: measured[0].len(),
        baseline_runs: measured[1].len(),
        missing,
        rl_mean,
        baseline_mean,
        val: ratio(rl_mean, baseline_mean),
        emulator_val: ratio(mean(&measured[0], |x| x.1), mean(&measured[1], |x| x.1)),
    })
}

/// What `meshrl validate` prints: the Val. (or why there is none), the emulator's, and the
/// runs left out.
fn report(v: &Validation) -> String {
    let emulator = if v.emulator_val.is_finite() {
        format!("the emulator's Val. of the same runs: {:.3}", v.emulator_val)
    } else {
        "the emulator's Val. of the same runs: undefined (it gave the baseline's runs no 503s)".to_string()
    };
    let mut text = if v.val.is_finite() {
        format!(
            "Val. from {} agent and {} baseline runs: {:.3} (agents {:.2} 503/s, baseline {:.2} 503/s); {emulator}",
            v.rl_runs, v.baseline_runs, v.val, v.rl_mean, v.baseline_mean
        )
    } else {
        format!(
            "Val. undefined: the baseline's {} runs had no 503s, so there is no ratio to take (agents {:.2} 503/s over {} runs); {emulator}",
            v.baseline_runs, v.rl_mean, v.rl_runs
        )
    };
    if !v.missing.is_empty() {
        let listed = v.rl_runs + v.baseline_runs + v.missing.len();
        text += &format!(
            "\n{} of the {listed} runs have no result yet and are left out of both means: {}",
            v.missing.len(),
            v.missing.join(", ")
        );
    }
    text
}

/// [`validate`] of the directory `meshrl export --validation` wrote, printed.
pub fn run(dir: &Path, scenario: Option<&Path>) -> Result<()> {
    let scenario = scenario.map(crate::generate::load_scenario).transpose()?;
    println!("{}", report(&validate_under(dir, scenario.as_ref())?));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Fortio result with the fields `read_fortio` needs: `qps` and `n503` of `calls`.
    fn fortio_json(qps: f64, calls: u64, n503: u64) -> String {
        format!(
            r#"{{"RunType":"HTTP","Labels":"","StartTime":"2026-11-23T10:00:00Z","RequestedQPS":"max","RequestedDuration":"exactly {calls} calls","ActualQPS":{qps},"ActualDuration":1000000000,"NumThreads":4,"Exactly":{calls},"URL":"http://x/","SocketCount":4,
            "DurationHistogram":{{"Count":{calls},"Min":0.001,"Max":0.01,"Sum":0.1,"Avg":0.002,"StdDev":0.001,"Data":[],"Percentiles":[{{"Percentile":50,"Value":0.002}},{{"Percentile":90,"Value":0.004}},{{"Percentile":99,"Value":0.008}}]}},
            "RetCodes":{{"200":{},"503":{n503}}}}}"#,
            calls - n503
        )
    }

    #[test]
    fn val_is_the_ratio_of_mean_503_per_second() {
        let dir = tempfile::tempdir().unwrap();
        let manifest =
            "run,side,result,emu_reward\n1,rl,run_1.json,40\n2,rl,run_2.json,20\n3,baseline,run_3.json,10\n4,baseline,run_4.json,10\n";
        std::fs::write(dir.path().join("manifest.csv"), manifest).unwrap();
        // rl: 100 qps x 0.5 = 50 and 100 x 0.3 = 30; baseline: 100 x 0.2 = 20, run 4 missing.
        std::fs::write(dir.path().join("run_1.json"), fortio_json(100.0, 10, 5)).unwrap();
        std::fs::write(dir.path().join("run_2.json"), fortio_json(100.0, 10, 3)).unwrap();
        std::fs::write(dir.path().join("run_3.json"), fortio_json(100.0, 10, 2)).unwrap();
        let v = validate(dir.path()).unwrap();
        assert_eq!((v.rl_runs, v.baseline_runs), (2, 1));
        assert_eq!(v.missing, vec!["run_4.json".to_string()]);
        assert!((v.val - 40.0 / 20.0).abs() < 1e-9, "{v:?}");
        assert!((v.emulator_val - 30.0 / 10.0).abs() < 1e-9, "{v:?}");
    }

    #[test]
    fn a_side_without_results_or_a_bad_manifest_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("manifest.csv"), "run,side,result,emu_reward\n1,rl,run_1.json,4\n").unwrap();
        std::fs::write(dir.path().join("run_1.json"), fortio_json(50.0, 10, 1)).unwrap();
        let e = validate(dir.path()).unwrap_err().to_string();
        assert!(e.contains("manifest.csv") && e.contains("baseline"), "{e}");
        std::fs::write(dir.path().join("manifest.csv"), "run,side,result,emu_reward\n1,agents,run_1.json,4\n").unwrap();
        let e = validate(dir.path()).unwrap_err().to_string();
        assert!(e.contains("row 1") && e.contains("side"), "{e}");
        std::fs::write(dir.path().join("manifest.csv"), "run,result\n1,run_1.json\n").unwrap();
        let e = validate(dir.path()).unwrap_err().to_string();
        assert!(e.contains("missing column `side`") && e.contains("--validation"), "{e}");
    }

    #[test]
    fn a_rule_file_changed_after_export_is_refused() {
        use crate::destination_rule::{DestinationRule, VirtualService};
        use crate::rules::{LoadBalancer, RetryPolicy, TrafficRules};
        let dir = tempfile::tempdir().unwrap();
        let one = TrafficRules { max_connections: 2, interval_s: 0.5, ..TrafficRules::default() };
        let two = TrafficRules { load_balancer: LoadBalancer::LeastRequest, retries: RetryPolicy::istio_default(), ..one };
        let mut manifest = format!("run,side,yaml,result,{},{},emu_reward\n", RULE_COLUMNS.join(","), KNOB_COLUMNS.join(","));
        for (i, (side, rules)) in [("rl", one), ("baseline", two)].iter().enumerate() {
            let i = i + 1;
            manifest += &format!("{i},{side},run_{i}.yaml,run_{i}.json,{},{},4\n", rules.csv_fields(), rules.knob_csv_fields());
            let yaml = DestinationRule::new("x", "httpbin", rules).unwrap().to_yaml().unwrap();
            std::fs::write(dir.path().join(format!("run_{i}.yaml")), yaml).unwrap();
            std::fs::write(dir.path().join(format!("run_{i}.json")), fortio_json(100.0, 10, 2)).unwrap();
        }
        let vs = VirtualService::new("x", "httpbin", &two.retries).unwrap().to_yaml().unwrap();
        std::fs::write(dir.path().join("run_2.virtual-service.yaml"), vs).unwrap();
        std::fs::write(dir.path().join("manifest.csv"), manifest).unwrap();
        assert!(validate(dir.path()).is_ok());
        // A DestinationRule edited after export.
        let yaml = std::fs::read_to_string(dir.path().join("run_1.yaml")).unwrap();
        std::fs::write(dir.path().join("run_1.yaml"), yaml.replace("interval: 500ms", "interval: 1s")).unwrap();
        let e = validate(dir.path()).unwrap_err().to_string();
        assert!(e.contains("run_1.yaml") && e.contains("`interval_s` is 1 there but 0.5 in row 1") && e.contains("run_1.json"), "{e}");
        std::fs::write(dir.path().join("run_1.yaml"), yaml).unwrap();
        // A VirtualService gone: the run retried as Istio's default policy says, or not at all.
        std::fs::remove_file(dir.path().join("run_2.virtual-service.yaml")).unwrap();
        let e = validate(dir.path()).unwrap_err().to_string();
        assert!(e.contains("run_2.yaml") && e.contains("`retry_attempts` is 0 there but 2 in row 2"), "{e}");
        // A rule file that is gone: nothing says what the run was made under.
        std::fs::remove_file(dir.path().join("run_2.yaml")).unwrap();
        let e = validate(dir.path()).unwrap_err().to_string();
        assert!(e.contains("run_2.yaml") && e.contains("missing: row 2"), "{e}");
    }

    /// A manifest of `rl` and `baseline` runs `run_<i>.json` with emulator reward `emu`.
    fn write_manifest(dir: &Path, sides: &[(&str, f64)]) {
        let mut text = String::from("run,side,result,emu_reward\n");
        for (n, (side, emu)) in sides.iter().enumerate() {
            text += &format!("{},{side},run_{}.json,{emu}\n", n + 1, n + 1);
        }
        std::fs::write(dir.join("manifest.csv"), text).unwrap();
    }

    #[test]
    fn a_baseline_without_503s_gives_an_undefined_val_said_in_words() {
        let dir = tempfile::tempdir().unwrap();
        write_manifest(dir.path(), &[("rl", 5.0), ("baseline", 0.0), ("baseline", 0.0)]);
        std::fs::write(dir.path().join("run_1.json"), fortio_json(100.0, 10, 5)).unwrap();
        std::fs::write(dir.path().join("run_2.json"), fortio_json(100.0, 10, 0)).unwrap();
        std::fs::write(dir.path().join("run_3.json"), fortio_json(100.0, 10, 0)).unwrap();
        let v = validate(dir.path()).unwrap();
        assert!(v.val.is_nan() && v.emulator_val.is_nan(), "{v:?}");
        let text = report(&v);
        assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
        assert!(text.starts_with("Val. undefined: the baseline's 2 runs had no 503s"), "{text}");
        assert!(text.contains("agents 50.00 503/s over 1 runs"), "{text}");
        assert!(text.contains("the emulator's Val. of the same runs: undefined"), "{text}");
        // With 503s on the baseline's side the number is back.
        write_manifest(dir.path(), &[("rl", 5.0), ("baseline", 2.0), ("baseline", 0.0)]);
        std::fs::write(dir.path().join("run_2.json"), fortio_json(100.0, 10, 1)).unwrap();
        let text = report(&validate(dir.path()).unwrap());
        assert!(
            text.starts_with("Val. from 1 agent and 2 baseline runs: 10.000") && text.contains("Val. of the same runs: 5.000"),
            "{text}"
        );
    }

    #[test]
    fn missing_results_are_named_and_too_many_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_manifest(dir.path(), &[("rl", 4.0), ("rl", 4.0), ("rl", 4.0), ("baseline", 2.0), ("baseline", 2.0)]);
        for i in [1, 2, 4] {
            std::fs::write(dir.path().join(format!("run_{i}.json")), fortio_json(100.0, 10, 2)).unwrap();
        }
        // Half of a side or more: the Val., and the runs left out by name.
        let v = validate(dir.path()).unwrap();
        assert_eq!(v.missing, ["run_3.json", "run_5.json"]);
        let text = report(&v);
        assert!(text.contains("\n2 of the 5 runs have no result yet and are left out of both means: run_3.json, run_5.json"), "{text}");
        // Fewer than half of a side: an error naming them.
        std::fs::remove_file(dir.path().join("run_2.json")).unwrap();
        let e = validate(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("manifest.csv") && e.contains("only 1 of the 3 `rl` runs") && e.contains("Missing: run_2.json, run_3.json"),
            "{e}"
        );
        // None at all of a side.
        std::fs::write(dir.path().join("run_2.json"), fortio_json(100.0, 10, 2)).unwrap();
        std::fs::remove_file(dir.path().join("run_4.json")).unwrap();
        let e = validate(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no Fortio result of a `baseline` run") && e.contains("0 of 2; first: run_4.json"), "{e}");
    }
}

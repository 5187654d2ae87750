//! `meshrl validate --fortio <dir>`: a Table 5 cell's Val. from real load tests instead of
//! the emulator. `meshrl export <cell> --validation --out <dir>` writes every validated pair
//! of the cell, the agents' and the random baseline's, with its DestinationRule and Fortio
//! command; once they have run on a cluster (`run_<i>.json` beside the manifest), this
//! takes the same ratio as Table 5: total 503/s of the agents' pairs over the baseline's.

use std::path::Path;

use crate::error::{Error, Result};
use crate::ingest::{read_csv_as_text, read_fortio};

/// Val. of one cell from real runs, beside the emulator's Val. of the same pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    pub rl_runs: usize,
    pub baseline_runs: usize,
    /// Runs listed in the manifest whose result file is not there (yet).
    pub missing: Vec<String>,
    /// Mean 503/s of the measured runs, per side.
    pub rl_mean: f64,
    pub baseline_mean: f64,
    /// Measured ratio: the agents' 503/s over the baseline's (means, so that a side with a
    /// missing run is not penalised; equal to the ratio of totals when none is missing).
    pub val: f64,
    /// The emulator's ratio over the same measured runs, from the manifest.
    pub emulator_val: f64,
}

struct ManifestRun {
    side: String,
    result: String,
    emu_reward: f64,
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
    let mut runs = Vec::with_capacity(sides.len());
    for i in 0..sides.len() {
        let row = i + 1;
        let side = sides[i].clone().filter(|s| s == "rl" || s == "baseline");
        let side = side.ok_or_else(|| Error::field(path, row, "side", "expected `rl` or `baseline`"))?;
        let result = results[i].clone().filter(|s| !s.is_empty()).ok_or_else(|| Error::field(path, row, "result", "empty cell"))?;
        let text = rewards[i].clone().unwrap_or_default();
        let emu_reward = text.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0);
        let emu_reward = emu_reward.ok_or_else(|| Error::field(path, row, "emu_reward", format!("`{text}` is not a number >= 0")))?;
        runs.push(ManifestRun { side, result, emu_reward });
    }
    Ok(runs)
}

/// Reads the manifest and every present result; a side without any result is an error.
pub fn validate(dir: &Path) -> Result<Validation> {
    let manifest = dir.join("manifest.csv");
    let runs = read_validation_manifest(&manifest)?;
    let mut measured: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    let mut missing = Vec::new();
    for run in &runs {
        let file = dir.join(&run.result);
        if !file.exists() {
            missing.push(run.result.clone());
            continue;
        }
        let r = read_fortio(&file)?;
        measured[usize::from(run.side == "baseline")].push((r.qps * r.failure_rate, run.emu_reward));
    }
    for (k, side) in ["rl", "baseline"].iter().enumerate() {
        if measured[k].is_empty() {
            return Err(Error::file(&manifest, format!("no Fortio result of a `{side}` run is in {} yet", dir.display())));
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

/// [`validate`] of the directory `meshrl export --validation` wrote, printed.
pub fn run(dir: &Path) -> Result<()> {
    let v = validate(dir)?;
    println!(
        "Val. from {} agent and {} baseline runs: {:.3} (agents {:.2} 503/s, baseline {:.2} 503/s); the emulator's Val. of the same runs: {:.3}",
        v.rl_runs, v.baseline_runs, v.val, v.rl_mean, v.baseline_mean, v.emulator_val
    );
    if !v.missing.is_empty() {
        println!("{} runs have no result yet (first: {})", v.missing.len(), v.missing[0]);
    }
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
}

//! `meshrl emulate`: one load-test configuration run many times on the emulator, its
//! distribution printed beside the published real runs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use meshrl::emulator::calibration::{self, Distribution};
use meshrl::emulator::Scenario;
use meshrl::rules::{Load, TrafficRules};

#[derive(Args, Debug)]
pub struct EmulateArgs {
    #[arg(long, default_value_t = 1)]
    pub max_pending_requests: u32,
    #[arg(long, default_value_t = 1)]
    pub max_connections: u32,
    #[arg(long, default_value_t = 1)]
    pub max_requests_per_connection: u32,
    #[arg(long, default_value_t = 180.0)]
    pub ejection_time_s: f64,
    #[arg(long, default_value_t = 100.0)]
    pub max_ejection_percent: f64,
    #[arg(long, default_value_t = 1.0)]
    pub interval_s: f64,
    #[arg(long, default_value_t = 1)]
    pub consecutive_errors: u32,
    /// Fortio `-c`: concurrent connections.
    #[arg(long, default_value_t = 3)]
    pub threads: u32,
    /// Fortio `-n`: total calls.
    #[arg(long, default_value_t = 30)]
    pub calls: u32,
    /// Number of load tests (seeds) to run.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Scenario TOML (fields of the `[scenario]` table); defaults to the built-in scenario.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Override the scenario's injected upstream fault share (0 for the published runs).
    #[arg(long)]
    pub fault_share: Option<f64>,
    /// Also check every published run of Istio's circuit-breaking task.
    #[arg(long)]
    pub calibration: bool,
}

pub fn emulate(args: &EmulateArgs) -> Result<()> {
    let mut scenario = match &args.scenario {
        Some(path) => meshrl::generate::load_scenario(path)?,
        None => Scenario::default(),
    };
    if let Some(f) = args.fault_share {
        scenario.fault_share = f;
    }
    scenario.validate().map_err(meshrl::Error::config)?;
    let rules = TrafficRules {
        max_pending_requests: args.max_pending_requests,
        max_connections: args.max_connections,
        max_requests_per_connection: args.max_requests_per_connection,
        ejection_time_s: args.ejection_time_s,
        max_ejection_percent: args.max_ejection_percent,
        interval_s: args.interval_s,
        consecutive_errors: args.consecutive_errors,
        ..TrafficRules::default()
    };
    meshrl::generate::validate_rules(&rules, &Load { threads: args.threads, calls: args.calls })
        .map_err(meshrl::Error::config)
        .context("checking the command-line settings")?;
    if args.runs == 0 {
        return Err(meshrl::Error::config("--runs must be >= 1").into());
    }
    let load = Load { threads: args.threads, calls: args.calls };
    let dist = calibration::distribution(&rules, &load, &scenario, args.runs, args.seed);
    println!(
        "{} runs of `fortio load -c {} -qps 0 -n {}` (seeds {}..{}), fault share {}:",
        args.runs,
        args.threads,
        args.calls,
        args.seed,
        args.seed + args.runs as u64 - 1,
        scenario.fault_share
    );
    print_distribution(&dist);
    let published: Vec<_> = calibration::PUBLISHED_RUNS
        .iter()
        .filter(|p| p.threads == args.threads && p.calls == args.calls && rules == calibration::calibration_rules())
        .collect();
    if !published.is_empty() {
        println!("\npublished real runs of this configuration (inside the 5-95 % band?):");
        for p in published {
            let inside = |x: f64, b: &calibration::Band| if b.contains(x) { "inside" } else { "OUTSIDE" };
            print!("  {:<34} 503 share {:>5.1} % ({})", p.source, 100.0 * p.failure_rate, inside(p.failure_rate, &dist.failure_rate));
            if let Some(q) = p.qps {
                print!(", qps {q:>4.0} ({})", inside(q, &dist.qps));
            }
            println!();
        }
    }
    if args.calibration {
        println!("\ncalibration: every published run against {} emulated runs (fault share 0):", args.runs);
        for check in calibration::check_published(&scenario, args.runs, args.seed) {
            let p = check.published;
            let misses = check.misses();
            println!(
                "  -c {} -n {:<3} {:<34} published 503 {:>5.1} %, emulated p05-p95 {:>5.1}-{:>5.1} %: {}",
                p.threads,
                p.calls,
                p.source,
                100.0 * p.failure_rate,
                100.0 * check.emulated.failure_rate.p05,
                100.0 * check.emulated.failure_rate.p95,
                if misses.is_empty() { "inside".to_string() } else { format!("OUTSIDE ({})", misses.join(", ")) }
            );
        }
    }
    Ok(())
}

fn print_distribution(d: &Distribution) {
    println!("  {:<18} {:>10} {:>10} {:>10} {:>10}", "quantity", "p05", "median", "p95", "mean");
    let rows = [
        ("503 share (%)", d.failure_rate, 100.0),
        ("qps", d.qps, 1.0),
        ("mean latency (ms)", d.latency_mean_ms, 1.0),
        ("503/s (reward)", d.reward, 1.0),
    ];
    for (name, b, k) in rows {
        println!("  {:<18} {:>10.1} {:>10.1} {:>10.1} {:>10.1}", name, k * b.p05, k * b.p50, k * b.p95, k * b.mean);
    }
}

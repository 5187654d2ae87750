//! `meshrl emulate`: one load-test configuration run many times on the emulator, its
//! distribution printed beside the published real runs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use meshrl::destination_rule;
use meshrl::emulator::calibration::{self, Distribution};
use meshrl::emulator::Scenario;
use meshrl::rules::{Load, TrafficRules, KNOB_COLUMNS};

/// The rule comes from, in order: the flags given, then `--destination-rule` (and
/// `--virtual-service`) as `meshrl ingest` reads them (a field the file omits takes Istio's
/// default), then the circuit-breaking task's rule (1 connection, 1 pending request, 1
/// request per connection, eject on 1 consecutive 5xx for 180 s, 100 %, every 1 s), which
/// the published runs and `--calibration` are compared under.
#[derive(Args, Debug)]
pub struct EmulateArgs {
    /// A DestinationRule YAML file (networking.istio.io/v1) to emulate.
    #[arg(long, value_name = "FILE")]
    pub destination_rule: Option<PathBuf>,
    /// A VirtualService YAML file whose route's `retries` apply (without it: no retries, as
    /// `ingest` reads a run without a VirtualService file).
    #[arg(long, value_name = "FILE")]
    pub virtual_service: Option<PathBuf>,
    /// `connectionPool.http.http1MaxPendingRequests` [task's rule: 1]
    #[arg(long)]
    pub max_pending_requests: Option<u32>,
    /// `connectionPool.tcp.maxConnections` [task's rule: 1]
    #[arg(long)]
    pub max_connections: Option<u32>,
    /// `connectionPool.http.maxRequestsPerConnection` [task's rule: 1]
    #[arg(long)]
    pub max_requests_per_connection: Option<u32>,
    /// `outlierDetection.baseEjectionTime`, seconds [task's rule: 180]
    #[arg(long)]
    pub ejection_time_s: Option<f64>,
    /// `outlierDetection.maxEjectionPercent`, 0-100 [task's rule: 100]
    #[arg(long)]
    pub max_ejection_percent: Option<f64>,
    /// `outlierDetection.interval`, seconds [task's rule: 1]
    #[arg(long)]
    pub interval_s: Option<f64>,
    /// `outlierDetection.consecutive5xxErrors` [task's rule: 1]
    #[arg(long)]
    pub consecutive_errors: Option<u32>,
    /// `connectionPool.http.http2MaxRequests` (4294967295: no limit) [default: no limit]
    #[arg(long, value_name = "N")]
    pub http2_max_requests: Option<String>,
    /// `connectionPool.http.maxRetries` (4294967295: no limit) [default: no limit]
    #[arg(long, value_name = "N")]
    pub max_retries: Option<String>,
    /// `connectionPool.tcp.connectTimeout`, ms [default: Istio's 10000]
    #[arg(long, value_name = "MS")]
    pub connect_timeout_ms: Option<String>,
    /// `loadBalancer.simple`: ROUND_ROBIN, LEAST_REQUEST (or LEAST_CONN) or RANDOM [default: ROUND_ROBIN]
    #[arg(long, value_name = "NAME")]
    pub load_balancer: Option<String>,
    /// VirtualService `retries.attempts` (0: no retries) [default: 0]
    #[arg(long, value_name = "N")]
    pub retry_attempts: Option<String>,
    /// `retryOn` includes connect-failure: 0 or 1 [default: 1]
    #[arg(long, value_name = "0|1")]
    pub retry_on_connect_failure: Option<String>,
    /// `retryOn` retries an upstream 503: 0 or 1 [default: 1]
    #[arg(long, value_name = "0|1")]
    pub retry_on_503: Option<String>,
    /// Retries prefer other hosts (Istio's previous_hosts predicate): 0 or 1 [default: 1]
    #[arg(long, value_name = "0|1")]
    pub retry_previous_hosts: Option<String>,
    /// `retries.backoff`, ms (Envoy's base interval) [default: 25]
    #[arg(long, value_name = "MS")]
    pub retry_backoff_ms: Option<String>,
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
    let rules = resolve_rules(args)?;
    meshrl::generate::validate_rules(&rules, &Load { threads: args.threads, calls: args.calls })
        .map_err(meshrl::Error::config)
        .context("checking the command-line settings")?;
    if args.runs == 0 {
        return Err(meshrl::Error::config("--runs must be >= 1").into());
    }
    let load = Load { threads: args.threads, calls: args.calls };
    let dist = calibration::distribution(&rules, &load, &scenario, args.runs, args.seed);
    println!("rule: {}; outlier interval {} s, connect timeout {} ms", rules.describe(), rules.interval_s, rules.connect_timeout_ms);
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

/// The rule to emulate: the files' rule (or the task's), then each flag given on top.
fn resolve_rules(args: &EmulateArgs) -> Result<TrafficRules> {
    let mut rules = match &args.destination_rule {
        Some(path) => destination_rule::read_destination_rule(path)?,
        None => calibration::calibration_rules(),
    };
    if let Some(path) = &args.virtual_service {
        rules.retries = destination_rule::read_virtual_service(path)?;
    }
    let a = args;
    rules.max_pending_requests = a.max_pending_requests.unwrap_or(rules.max_pending_requests);
    rules.max_connections = a.max_connections.unwrap_or(rules.max_connections);
    rules.max_requests_per_connection = a.max_requests_per_connection.unwrap_or(rules.max_requests_per_connection);
    rules.ejection_time_s = a.ejection_time_s.unwrap_or(rules.ejection_time_s);
    rules.max_ejection_percent = a.max_ejection_percent.unwrap_or(rules.max_ejection_percent);
    rules.interval_s = a.interval_s.unwrap_or(rules.interval_s);
    rules.consecutive_errors = a.consecutive_errors.unwrap_or(rules.consecutive_errors);
    // The knob flags are spelled as the trace's optional columns, and read by the same code.
    let knobs = [
        ("http2_max_requests", &args.http2_max_requests),
        ("max_retries", &args.max_retries),
        ("connect_timeout_ms", &args.connect_timeout_ms),
        ("load_balancer", &args.load_balancer),
        ("retry_attempts", &args.retry_attempts),
        ("retry_on_connect_failure", &args.retry_on_connect_failure),
        ("retry_on_503", &args.retry_on_503),
        ("retry_previous_hosts", &args.retry_previous_hosts),
        ("retry_backoff_ms", &args.retry_backoff_ms),
    ];
    debug_assert_eq!(knobs.map(|k| k.0), KNOB_COLUMNS);
    for (column, value) in knobs {
        if let Some(text) = value {
            let flag = format!("--{}", column.replace('_', "-"));
            rules.set_knob(column, text).map_err(|e| meshrl::Error::config(format!("{flag}: {e}")))?;
        }
    }
    rules.validate_knobs().map_err(meshrl::Error::config).context("checking the rule")?;
    Ok(rules)
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

//! `meshrl mesh`: service graphs in Isotope's format (the library's [`meshrl::mesh`]).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use meshrl::emulator::Scenario;
use meshrl::mesh::engine::{MeshOptions, SickReplica};
use meshrl::mesh::generate::{Fanout, TreeSpec};
use meshrl::mesh::load::{parse_schedule, Arrivals, MeshLoad, Segment};
use meshrl::mesh::result::{summary_markdown, MeshResult};
use meshrl::mesh::rules::{IstioRelease, MeshRules};
use meshrl::mesh::topology::Topology;
use meshrl::Error;

#[derive(Subcommand, Debug)]
pub enum MeshCommand {
    /// Run a load on a topology: every hop through Envoy sidecars, under the rules of
    /// --rules-dir and the Istio release's defaults elsewhere.
    Run(Box<RunArgs>),
    /// Write a tree of services as an Isotope topology (e.g. topologies/tree100.yaml).
    Tree(TreeArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ArrivalsArg {
    Poisson,
    Uniform,
}

/// With --threads, Fortio's closed loop; otherwise an open loop of arrivals at the entry.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The topology, in Isotope's MockServiceGraph YAML (topologies/*.yaml).
    pub topology: PathBuf,
    /// The entry service, when the topology marks none or several `isEntrypoint`.
    #[arg(long, value_name = "NAME")]
    pub entry: Option<String>,
    /// A directory of DestinationRule and VirtualService YAML, any host of the topology;
    /// repeatable (the directories add up: one rule of each kind per host in all).
    #[arg(long, value_name = "DIR")]
    pub rules_dir: Vec<PathBuf>,
    /// The Istio release whose defaults apply where no rule says otherwise (1.0 to 1.31,
    /// optionally with a patch: 1.28.5).
    #[arg(long, default_value = "1.30", value_name = "VERSION")]
    pub istio_version: String,
    /// A scenario TOML: the per-hop fields of docs/mesh.md apply (latencies, noise, faults).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Fortio's closed loop: this many connections.
    #[arg(long)]
    pub threads: Option<u32>,
    /// Closed loop: calls in all (Fortio's -n).
    #[arg(long)]
    pub calls: Option<u32>,
    /// Seconds of load (Fortio's -t in a closed loop; the open loop's length at --qps).
    #[arg(long, value_name = "SECONDS")]
    pub duration_s: Option<f64>,
    /// Requests per second: the open loop's rate, or Fortio's pacing in a closed loop.
    #[arg(long)]
    pub qps: Option<f64>,
    /// Open loop: how arrivals are spaced.
    #[arg(long, value_enum, default_value = "poisson")]
    pub arrivals: ArrivalsArg,
    /// Open loop: rates over time, `DURATION@QPS,...` (e.g. "60s@100,10s@250,120s@100").
    #[arg(long, value_name = "SCHEDULE", conflicts_with_all = ["qps", "duration_s", "threads"])]
    pub schedule: Option<String>,
    /// Make a service this many times slower (its sleeps scale), e.g. `c=3`; repeatable.
    #[arg(long, value_name = "NAME=FACTOR")]
    pub slowdown: Vec<String>,
    /// Make one replica sick: `NAME` (its first replica) or `NAME/REPLICA` (0-based); see
    /// --sick-slowdown and --sick-fail-share.
    #[arg(long, value_name = "NAME[/REPLICA]")]
    pub sick: Option<String>,
    /// The sick replica's sleeps take this many times longer.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR", requires = "sick")]
    pub sick_slowdown: f64,
    /// The share of the sick replica's requests it answers 500 at once.
    #[arg(long, default_value_t = 0.0, value_name = "SHARE", requires = "sick")]
    pub sick_fail_share: f64,
    /// Also count the entry's 200s answered within this many ms (goodput within the bound).
    #[arg(long, value_name = "MS")]
    pub latency_bound_ms: Option<f64>,
    /// Record each edge's latency (mean and percentiles, `edges[].latency_ms`), as the
    /// source sidecar's request duration shows it.
    #[arg(long)]
    pub edge_latency: bool,
    /// A replica stops working on a request its caller's sidecar gave up on (default: it
    /// keeps working, as Isotope does).
    #[arg(long)]
    pub cancel_abandoned: bool,
    /// Master seed; run i uses seed + i.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Runs (seeds).
    #[arg(long, default_value_t = 1)]
    pub runs: u64,
    /// Print one JSON object per run instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write, into this directory (replaced as a whole): runs.jsonl, summary.md (mean
    /// and sd over the seeds), command.txt, each run's per-second series-<SEED>.csv, and the
    /// first seed's series-<SEED>.png.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct TreeArgs {
    /// Services in all, the entry included.
    #[arg(long, default_value_t = 100)]
    pub services: usize,
    /// Services each inner service calls.
    #[arg(long, default_value_t = 3, conflicts_with = "heavy_tail")]
    pub fanout: usize,
    /// A heavy-tailed fan-out instead: P(k) proportional to k^-ALPHA, k up to --max-fanout.
    #[arg(long, value_name = "ALPHA")]
    pub heavy_tail: Option<f64>,
    /// The largest fan-out of a heavy tail.
    #[arg(long, default_value_t = 20)]
    pub max_fanout: usize,
    /// Each service's own time is drawn uniformly between these, ms.
    #[arg(long, num_args = 2, value_names = ["LOW", "HIGH"], default_values_t = [0.5, 2.0])]
    pub sleep_ms: Vec<f64>,
    /// Master seed of the fan-outs and service times.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The topology file to write (atomically).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(command: &MeshCommand) -> Result<()> {
    match command {
        MeshCommand::Run(args) => run_mesh(args),
        MeshCommand::Tree(args) => {
            let fanout = match args.heavy_tail {
                Some(alpha) => Fanout::HeavyTailed { alpha, max: args.max_fanout },
                None => Fanout::Fixed(args.fanout),
            };
            let spec = TreeSpec { services: args.services, fanout, sleep_ms: (args.sleep_ms[0], args.sleep_ms[1]), seed: args.seed };
            meshrl::atomic::write_file(&args.out, spec.yaml()?)?;
            println!("wrote {} ({} services)", args.out.display(), args.services);
            Ok(())
        }
    }
}

fn flag_error(message: impl Into<String>) -> anyhow::Error {
    Error::config(message).into()
}

/// The load the flags describe; the message names the flag.
fn load_of(args: &RunArgs) -> Result<MeshLoad> {
    let load = if let Some(threads) = args.threads {
        MeshLoad::Closed { threads, calls: args.calls, duration_s: args.duration_s, qps: args.qps }
    } else {
        if args.calls.is_some() {
            return Err(flag_error("--calls belongs to a closed loop: give --threads too"));
        }
        let arrivals = match args.arrivals {
            ArrivalsArg::Poisson => Arrivals::Poisson,
            ArrivalsArg::Uniform => Arrivals::Uniform,
        };
        let schedule = match (&args.schedule, args.qps, args.duration_s) {
            (Some(text), _, _) => parse_schedule(text).map_err(flag_error)?,
            (None, Some(qps), Some(duration_s)) => {
                if !(qps.is_finite() && qps > 0.0) {
                    return Err(flag_error(format!("--qps must be > 0, found {qps}")));
                }
                if !(duration_s.is_finite() && duration_s > 0.0) {
                    return Err(flag_error(format!("--duration-s must be > 0, found {duration_s}")));
                }
                vec![Segment { duration_s, qps }]
            }
            _ => return Err(flag_error(
                "no load: give --threads with --calls or --duration-s (closed loop), or --qps with --duration-s, or --schedule (open loop)",
            )),
        };
        MeshLoad::Open { arrivals, schedule }
    };
    load.validate().map_err(flag_error)?;
    Ok(load)
}

fn run_mesh(args: &RunArgs) -> Result<()> {
    if args.runs == 0 {
        return Err(flag_error("--runs must be >= 1"));
    }
    let mut topology = Topology::load(&args.topology, args.entry.as_deref())?;
    for spec in &args.slowdown {
        let (name, factor) =
            spec.split_once('=').ok_or_else(|| flag_error(format!("--slowdown `{spec}`: expected NAME=FACTOR, e.g. c=3")))?;
        let factor: f64 = factor.parse().map_err(|_| flag_error(format!("--slowdown `{spec}`: `{factor}` is not a number")))?;
        topology.slow_down(name, factor).map_err(|m| flag_error(format!("--slowdown `{spec}`: {m}")))?;
    }
    for w in &topology.warnings {
        eprintln!("warning: {w}");
    }
    let release = IstioRelease::parse(&args.istio_version).map_err(|m| flag_error(format!("--istio-version: {m}")))?;
    let rules = MeshRules::load(&args.rules_dir, &topology, release)?;
    let scenario = match &args.scenario {
        Some(path) => {
            let (scenario, warnings) = meshrl::mesh::load_scenario(path)?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            scenario
        }
        None => Scenario::default(),
    };
    let load = load_of(args)?;
    let sick = match &args.sick {
        Some(spec) => {
            let (name, replica) = match spec.split_once('/') {
                Some((name, r)) => {
                    (name, r.parse::<u32>().map_err(|_| flag_error(format!("--sick `{spec}`: `{r}` is not a replica number")))?)
                }
                None => (spec.as_str(), 0),
            };
            let service = topology
                .services
                .iter()
                .position(|s| s.name == name)
                .ok_or_else(|| flag_error(format!("--sick `{spec}`: no service `{name}` in the topology")))?;
            let sick = SickReplica { service, replica, slowdown: args.sick_slowdown, fail_share: args.sick_fail_share };
            sick.validate(&topology).map_err(|m| flag_error(format!("--sick `{spec}`: {m}")))?;
            Some(sick)
        }
        None => None,
    };
    if let Some(bound) = args.latency_bound_ms.filter(|b| !(b.is_finite() && *b > 0.0)) {
        return Err(flag_error(format!("--latency-bound-ms must be a number > 0, but is {bound}")));
    }
    let options = MeshOptions {
        cancel_abandoned: args.cancel_abandoned,
        time_series: args.out.is_some(),
        sick,
        latency_bound_ms: args.latency_bound_ms,
        edge_latency: args.edge_latency,
    };
    let results = meshrl::mesh::run_seeds(&topology, &rules, &load, &scenario, options, args.seed, args.runs);
    let lines: Vec<String> = results.iter().map(serde_json::to_string).collect::<std::result::Result<_, _>>()?;
    if let Some(dir) = &args.out {
        write_out(dir, args, &results, &lines)?;
    }
    if args.json {
        for line in &lines {
            println!("{line}");
        }
    } else {
        for r in &results {
            print!("{}", render(r, &topology));
        }
    }
    Ok(())
}

/// The command line as typed after `meshrl`, for the record (`--out` and its directory
/// left out, so the line does not depend on where it wrote).
fn command_line() -> String {
    let mut words: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = words.iter().position(|w| w == "--out") {
        words.drain(i..(i + 2).min(words.len()));
    }
    words.retain(|w| !w.starts_with("--out="));
    shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "))
}

/// runs.jsonl, summary.md and command.txt, every seed's series CSV, and the first seed's
/// series plot.
fn write_out(dir: &Path, args: &RunArgs, results: &[MeshResult], lines: &[String]) -> Result<()> {
    let name = args.topology.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let command = command_line();
    meshrl::atomic::write_dir(dir, |tmp| {
        meshrl::atomic::write_file(&tmp.join("runs.jsonl"), lines.iter().map(|l| format!("{l}\n")).collect::<String>())?;
        meshrl::atomic::write_file(&tmp.join("command.txt"), format!("{command}\n"))?;
        meshrl::atomic::write_file(&tmp.join("summary.md"), summary_markdown(results, &command))?;
        for (i, r) in results.iter().enumerate() {
            if let Some(series) = &r.series {
                series.write_csv(&tmp.join(format!("series-{}.csv", r.seed)))?;
                if i == 0 {
                    series.write_png(&tmp.join(format!("series-{}.png", r.seed)), &format!("{name}, seed {}", r.seed))?;
                }
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// A run as three small tables: the entry, the edges, the services.
fn render(r: &MeshResult, topology: &Topology) -> String {
    let e = &r.entry;
    let mut out = format!(
        "seed {}: {} requests at {} in {:.1} s: {} ok ({:.1} %), goodput {:.1}/s, latency ms mean {:.2} p50 {:.2} p90 {:.2} p99 {:.2}\n",
        r.seed,
        e.requests,
        topology.services[topology.entry].name,
        r.duration_s,
        e.ok,
        100.0 * (1.0 - e.failure_share),
        e.goodput_per_s,
        e.latency_ms.mean,
        e.latency_ms.p50,
        e.latency_ms.p90,
        e.latency_ms.p99
    );
    if let Some(within) = e.goodput_within_bound_per_s {
        out.push_str(&format!("  goodput within the latency bound: {within:.1}/s\n"));
    }
    if let Some(rec) = &r.recovery {
        let after = rec.recovered_after_s.map_or("not within the schedule".to_string(), |s| format!("{s} s after the spike"));
        out.push_str(&format!(
            "  spike: baseline goodput {:.1}/s; under half of it for {} s after the spike; recovered: {after}\n",
            rec.baseline_goodput_per_s, rec.seconds_below_half
        ));
    }
    out.push_str("  edge                      requests   retries        ok  overflow  no_healthy  upstream   timeout   connect\n");
    for x in &r.edges {
        out.push_str(&format!(
            "  {:<24} {:>9} {:>9} {:>9} {:>9} {:>11} {:>9} {:>9} {:>9}\n",
            format!("{} -> {}", x.source, x.destination),
            x.requests,
            x.retries,
            x.ok,
            x.overflow,
            x.no_healthy,
            x.upstream,
            x.timeout,
            x.connect
        ));
    }
    out.push_str("  service          arrivals  rejected  utilisation  sojourn_ms  in_system\n");
    for s in &r.services {
        out.push_str(&format!(
            "  {:<16} {:>8} {:>9} {:>12.3} {:>11.3} {:>10.2}\n",
            s.name, s.arrivals, s.rejected, s.utilisation, s.mean_sojourn_ms, s.mean_in_system
        ));
    }
    out
}

//! What a mesh run measured: the entry's view, every edge's counters, every service's load,
//! and (on request) a per-second time series, written as CSV and PNG.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::report::plot::{series_grid, Curve, CurvePanel};

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// The load generator's view: every request it sent, answered 200 or not.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EntryStats {
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    pub failure_share: f64,
    /// 200s per second of the run (until the last answer).
    pub goodput_per_s: f64,
    /// 200s within the run's latency bound per second; absent without a bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goodput_within_bound_per_s: Option<f64>,
    /// From the load generator's send to its answer, ms (percentiles from a histogram with
    /// three significant digits).
    pub latency_ms: Latency,
}

/// One caller-destination pair, over every replica of the caller. `requests` are calls made
/// (each ends once: ok or one failure cause); `retries` the extra attempts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeStats {
    pub source: String,
    pub destination: String,
    pub requests: u64,
    pub retries: u64,
    pub ok: u64,
    /// Local 503 UO: pending queue or `http2MaxRequests` full.
    pub overflow: u64,
    /// Local 503 UH: every host ejected.
    pub no_healthy: u64,
    /// The destination answered a 5xx (its own error, an overload 503, a failed call).
    pub upstream: u64,
    /// Local 504 UT: the route or per-try timeout.
    pub timeout: u64,
    /// Local 503 UF: no connection could be made.
    pub connect: u64,
    /// From the caller's call to its answer, over every exchange; recorded on request
    /// (`MeshOptions::edge_latency`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Latency>,
}

impl EdgeStats {
    pub fn new(source: &str, destination: &str) -> EdgeStats {
        EdgeStats {
            source: source.into(),
            destination: destination.into(),
            requests: 0,
            retries: 0,
            ok: 0,
            overflow: 0,
            no_healthy: 0,
            upstream: 0,
            timeout: 0,
            connect: 0,
            latency_ms: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceStats {
    pub name: String,
    pub replicas: u32,
    /// Requests that reached a replica (retries included), admitted or not.
    pub arrivals: u64,
    /// Arrivals answered 503 at once: the replica's queue was full.
    pub rejected: u64,
    /// Admitted requests that finished.
    pub completed: u64,
    /// Busy slots over all slots (replicas x concurrency), time-averaged; without a
    /// concurrency limit, the mean number of requests holding a slot per replica.
    pub utilisation: f64,
    /// From arrival to answer at the replica (queueing, own work and calls), ms.
    pub mean_sojourn_ms: f64,
    /// Admitted requests in the service, time-averaged (Little's L).
    pub mean_in_system: f64,
}

/// Seconds a recovered goodput must hold to count as recovered.
pub const RECOVERY_HOLD_S: usize = 10;

/// How the entry's goodput came through a spike of the schedule (`MeshLoad::spike`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Recovery {
    /// Mean 200s per second over the second half of the schedule's first segment.
    pub baseline_goodput_per_s: f64,
    /// Whole seconds after the spike during which goodput was under half the baseline.
    pub seconds_below_half: u32,
    /// Seconds from the spike's end until goodput reaches 90 % of the baseline and holds
    /// there for [`RECOVERY_HOLD_S`] seconds; `None`: not within the schedule.
    pub recovered_after_s: Option<u32>,
}

impl Recovery {
    /// From the per-second rows; seconds after the schedule's end (the drain) are left out.
    pub fn of(series: &TimeSeries, spike: &crate::mesh::load::Spike, schedule_end_s: f64) -> Recovery {
        let ok = |s: usize| series.rows.get(s).map_or(0.0, |r| r.ok as f64);
        // Row s covers second s (its 200s arrived in [s, s + 1)).
        let (half, end) = ((spike.baseline_end_s / 2.0).floor() as usize, spike.baseline_end_s.floor() as usize);
        let baseline = (half..end).map(ok).sum::<f64>() / (end - half).max(1) as f64;
        let (from, to) = (spike.spike_end_s.ceil() as usize, schedule_end_s.floor() as usize);
        let seconds_below_half = (from..to).filter(|&s| ok(s) < 0.5 * baseline).count() as u32;
        let recovered_after_s = (from..to.saturating_sub(RECOVERY_HOLD_S - 1))
            .find(|&s| (s..s + RECOVERY_HOLD_S).all(|t| ok(t) >= 0.9 * baseline))
            .map(|s| (s - from) as u32);
        Recovery { baseline_goodput_per_s: baseline, seconds_below_half, recovered_after_s }
    }
}

/// One run's measurements; the same inputs and seed give the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeshResult {
    pub seed: u64,
    /// Simulated seconds until the last answer at the entry.
    pub duration_s: f64,
    pub entry: EntryStats,
    pub edges: Vec<EdgeStats>,
    pub services: Vec<ServiceStats>,
    /// Present when the schedule has a spike.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    #[serde(skip)]
    pub series: Option<TimeSeries>,
}

/// One second of the run: entry arrivals and answers in it, the p99 of those answers, and
/// each service's requests in flight and queued at its end.
#[derive(Debug, Clone, PartialEq)]
pub struct SecondRow {
    pub second: u32,
    pub arrivals: u64,
    pub ok: u64,
    /// 200s within the run's latency bound (0 without one).
    pub ok_within: u64,
    pub failed: u64,
    pub p99_ms: f64,
    pub in_flight: Vec<u64>,
    pub queued: Vec<u64>,
}

impl SecondRow {
    pub fn new(services: usize) -> SecondRow {
        SecondRow {
            second: 0,
            arrivals: 0,
            ok: 0,
            ok_within: 0,
            failed: 0,
            p99_ms: f64::NAN,
            in_flight: vec![0; services],
            queued: vec![0; services],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimeSeries {
    pub services: Vec<String>,
    pub rows: Vec<SecondRow>,
}

impl TimeSeries {
    pub fn new(services: Vec<String>) -> TimeSeries {
        TimeSeries { services, rows: Vec::new() }
    }

    /// `second,arrivals,ok,failed,p99_ms,<service>_in_flight...,<service>_queued...`; an
    /// empty p99 where no answer came in that second.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        crate::atomic::write_with(path, |out| {
            let io = |e| Error::io(format!("writing {}", path.display()), e);
            let mut header = vec!["second".to_string(), "arrivals".into(), "ok".into(), "failed".into(), "p99_ms".into()];
            header.extend(self.services.iter().map(|s| format!("{s}_in_flight")));
            header.extend(self.services.iter().map(|s| format!("{s}_queued")));
            writeln!(out, "{}", header.join(",")).map_err(io)?;
            for r in &self.rows {
                let p99 = if r.p99_ms.is_finite() { format!("{:.3}", r.p99_ms) } else { String::new() };
                let mut line = format!("{},{},{},{},{p99}", r.second, r.arrivals, r.ok, r.failed);
                for v in r.in_flight.iter().chain(&r.queued) {
                    line.push_str(&format!(",{v}"));
                }
                writeln!(out, "{line}").map_err(io)?;
            }
            Ok(())
        })
    }

    /// Four panels against seconds: the entry's arrivals, 200s and failures; its p99; and
    /// the in-flight and queued requests of the (at most six) busiest services.
    pub fn write_png(&self, path: &Path, title: &str) -> Result<()> {
        let col = |f: &dyn Fn(&SecondRow) -> f64| self.rows.iter().map(f).collect::<Vec<f64>>();
        let mut busiest: Vec<usize> = (0..self.services.len()).collect();
        let peak = |s: usize| self.rows.iter().map(|r| r.in_flight[s]).max().unwrap_or(0);
        busiest.sort_by_key(|&s| std::cmp::Reverse(peak(s)));
        busiest.truncate(6);
        let panels = vec![
            CurvePanel {
                title: "entry: requests per second".into(),
                curves: vec![
                    Curve::line("arrivals", col(&|r| r.arrivals as f64)),
                    Curve::line("200", col(&|r| r.ok as f64)),
                    Curve::line("failed", col(&|r| r.failed as f64)),
                ],
            },
            CurvePanel { title: "entry: p99 latency, ms".into(), curves: vec![Curve::line("p99", col(&|r| r.p99_ms))] },
            CurvePanel {
                title: "in flight per service".into(),
                curves: busiest.iter().map(|&s| Curve::line(self.services[s].clone(), col(&|r| r.in_flight[s] as f64))).collect(),
            },
            CurvePanel {
                title: "queued per service".into(),
                curves: busiest.iter().map(|&s| Curve::line(self.services[s].clone(), col(&|r| r.queued[s] as f64))).collect(),
            },
        ];
        series_grid(path, title, "second", "", &panels, 2)
    }
}

/// The runs of one setting (one per seed) as a Markdown table: each measure's mean and
/// standard deviation over the seeds, with how many seeds had a value; then each edge's
/// retry amplification ((requests + retries) / requests). `command` is the line that made
/// them.
pub fn summary_markdown(results: &[MeshResult], command: &str) -> String {
    let seeds: Vec<String> = results.iter().map(|r| r.seed.to_string()).collect();
    let mut out = format!("`meshrl {command}`\n\nSeeds: {}.\n\n| measure | seeds | mean | sd |\n|---|---|---|---|\n", seeds.join(", "));
    let mut row = |name: &str, values: Vec<f64>| {
        let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        let (mean, sd) = crate::report::mean_std(&values);
        let cell = |v: f64| if values.is_empty() { "-".to_string() } else { format!("{v:.3}") };
        out.push_str(&format!("| {name} | {} | {} | {} |\n", values.len(), cell(mean), cell(sd)));
    };
    row("entry goodput, 200/s", results.iter().map(|r| r.entry.goodput_per_s).collect());
    row("entry failure share", results.iter().map(|r| r.entry.failure_share).collect());
    row("entry latency mean, ms", results.iter().map(|r| r.entry.latency_ms.mean).collect());
    row("entry latency p99, ms", results.iter().map(|r| r.entry.latency_ms.p99).collect());
    if results.iter().any(|r| r.recovery.is_some()) {
        row("baseline goodput, 200/s", results.iter().filter_map(|r| r.recovery.map(|x| x.baseline_goodput_per_s)).collect());
        row(
            "seconds under half after the spike",
            results.iter().filter_map(|r| r.recovery.map(|x| f64::from(x.seconds_below_half))).collect(),
        );
        // Runs that never recovered have no value: the seeds column says how many did.
        row(
            "recovered after, s (runs that recovered)",
            results.iter().filter_map(|r| r.recovery.and_then(|x| x.recovered_after_s).map(f64::from)).collect(),
        );
    }
    if let Some(first) = results.first() {
        for (e, edge) in first.edges.iter().enumerate() {
            let amplification = results
                .iter()
                .map(|r| {
                    let x = &r.edges[e];
                    if x.requests == 0 {
                        f64::NAN
                    } else {
                        (x.requests + x.retries) as f64 / x.requests as f64
                    }
                })
                .collect();
            row(&format!("retry amplification {} -> {}", edge.source, edge.destination), amplification);
        }
    }
    out
}

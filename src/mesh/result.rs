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

/// One run's measurements; the same inputs and seed give the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeshResult {
    pub seed: u64,
    /// Simulated seconds until the last answer at the entry.
    pub duration_s: f64,
    pub entry: EntryStats,
    pub edges: Vec<EdgeStats>,
    pub services: Vec<ServiceStats>,
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
    pub failed: u64,
    pub p99_ms: f64,
    pub in_flight: Vec<u64>,
    pub queued: Vec<u64>,
}

impl SecondRow {
    pub fn new(services: usize) -> SecondRow {
        SecondRow { second: 0, arrivals: 0, ok: 0, failed: 0, p99_ms: f64::NAN, in_flight: vec![0; services], queued: vec![0; services] }
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

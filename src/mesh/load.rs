//! The load a mesh run puts on its entry service: Fortio's closed loop (threads that each
//! wait for their answer before the next call, optionally paced to a qps), or an open loop of
//! arrivals (Poisson or fixed intervals) following a schedule of rates, for spikes.

use serde::Serialize;

use crate::mesh::topology::go_duration;

/// How an open loop spaces its arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// Exponential gaps: a Poisson process at the segment's rate.
    Poisson,
    /// Fixed gaps of 1/rate from the segment's start.
    Uniform,
}

/// One stretch of an open loop's schedule: `duration_s` at `qps`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Segment {
    pub duration_s: f64,
    pub qps: f64,
}

/// A spike in a schedule (see [`MeshLoad::spike`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spike {
    pub baseline_qps: f64,
    pub baseline_end_s: f64,
    pub spike_end_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MeshLoad {
    /// `fortio load -c threads (-n calls | -t duration) [-qps qps]`: Fortio paces each
    /// connection to qps/threads (a late call goes out at once); `qps` absent is `-qps 0`,
    /// as fast as answers come.
    Closed { threads: u32, calls: Option<u32>, duration_s: Option<f64>, qps: Option<f64> },
    /// Arrivals at the entry, independent of the answers.
    Open { arrivals: Arrivals, schedule: Vec<Segment> },
}

impl MeshLoad {
    /// Simulated seconds during which load is offered (closed loop with calls: `None`).
    pub fn offered_s(&self) -> Option<f64> {
        match self {
            MeshLoad::Closed { duration_s, .. } => *duration_s,
            MeshLoad::Open { schedule, .. } => Some(schedule.iter().map(|s| s.duration_s).sum()),
        }
    }

    /// For a schedule that starts at a rate, rises above it and comes back to it: the
    /// baseline rate, and the seconds at which the first segment and the last higher one end.
    pub fn spike(&self) -> Option<Spike> {
        let MeshLoad::Open { schedule, .. } = self else { return None };
        let (first, last) = (schedule.first()?, schedule.last()?);
        if schedule.len() < 3 || last.qps != first.qps {
            return None;
        }
        let last_high = schedule.iter().rposition(|s| s.qps > first.qps)?;
        let spike_end_s = schedule[..=last_high].iter().map(|s| s.duration_s).sum();
        Some(Spike { baseline_qps: first.qps, baseline_end_s: first.duration_s, spike_end_s })
    }

    /// Checks the numbers; the message names the flag.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self {
            MeshLoad::Closed { threads, calls, duration_s, qps } => {
                if *threads == 0 {
                    return Err("--threads must be >= 1".into());
                }
                match (calls, duration_s) {
                    (Some(0), _) => return Err("--calls must be >= 1".into()),
                    (Some(_), Some(_)) | (None, None) => return Err("a closed loop takes --calls or --duration-s (one of them)".into()),
                    (_, Some(d)) if !(d.is_finite() && *d > 0.0) => return Err(format!("--duration-s must be > 0, found {d}")),
                    _ => {}
                }
                if let Some(q) = qps {
                    if !(q.is_finite() && *q > 0.0) {
                        return Err(format!("--qps must be > 0, found {q}"));
                    }
                }
                Ok(())
            }
            MeshLoad::Open { schedule, .. } => {
                if schedule.is_empty() {
                    return Err("the schedule is empty".into());
                }
                Ok(())
            }
        }
    }
}

/// A schedule: comma-separated `duration@qps` (`60s@100,10s@250,120s@100`), durations in
/// Go's syntax, rates >= 0 requests per second.
pub fn parse_schedule(text: &str) -> std::result::Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    for (i, part) in text.split(',').enumerate() {
        let at = format!("--schedule segment {} (`{part}`)", i + 1);
        let (duration, qps) = part.split_once('@').ok_or_else(|| format!("{at}: expected DURATION@QPS, e.g. 60s@100"))?;
        let duration_s = go_duration(&at, duration.trim())?;
        if duration_s <= 0.0 {
            return Err(format!("{at}: the duration must be > 0"));
        }
        let qps: f64 = qps.trim().parse().map_err(|_| format!("{at}: `{qps}` is not a rate (requests per second)"))?;
        if !(qps.is_finite() && qps >= 0.0) {
            return Err(format!("{at}: the rate must be a number >= 0"));
        }
        segments.push(Segment { duration_s, qps });
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_refuse_with_the_segment_named() {
        let s = parse_schedule("60s@100,10s@250,2m@100").unwrap();
        assert_eq!(
            s,
            vec![
                Segment { duration_s: 60.0, qps: 100.0 },
                Segment { duration_s: 10.0, qps: 250.0 },
                Segment { duration_s: 120.0, qps: 100.0 }
            ]
        );
        for (bad, named) in
            [("60s", "segment 1"), ("60s@100,10x@5", "segment 2"), ("60s@-1", "segment 1"), ("0s@5", "segment 1"), ("1s@fast", "segment 1")]
        {
            let e = parse_schedule(bad).unwrap_err();
            assert!(e.contains(named), "{bad}: {e}");
        }
    }

    #[test]
    fn a_closed_loop_takes_calls_or_a_duration() {
        let ok = MeshLoad::Closed { threads: 4, calls: Some(100), duration_s: None, qps: None };
        assert!(ok.validate().is_ok());
        assert!(MeshLoad::Closed { threads: 4, calls: Some(100), duration_s: Some(1.0), qps: None }.validate().is_err());
        assert!(MeshLoad::Closed { threads: 0, calls: Some(100), duration_s: None, qps: None }.validate().is_err());
        assert!(MeshLoad::Closed { threads: 1, calls: None, duration_s: Some(1.0), qps: Some(0.0) }.validate().is_err());
    }
}

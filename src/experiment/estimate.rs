//! What a run is about to do, and for how long, said before it starts: its cells, the work
//! in them (agent steps, load tests) and a time from a short timing of that same work on
//! this machine. A run estimated above [`LONG_RUN`] is refused unless the user said so
//! (`--yes`, or `allow_long_run = true` in the experiment file), so that a grid of 10^6
//! rules is never started by a typo.
//!
//! The timing runs on throwaway copies (its own environment, learner and seed, a hidden bar,
//! nothing written), so the estimate changes no byte of the run's output. A shard estimates
//! its own cells only; the report's own work (the defender's exhaustive search) counts
//! where the stage writes the report.

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::cells::Planned;
use crate::agent::LearnerSpec;
use crate::env::{Environment, Scored};
use crate::error::{Error, Result};
use crate::train::{train, Schedule};

/// The longest run started without being asked for.
pub const LONG_RUN: Duration = Duration::from_secs(2 * 3600);

/// Training steps timed after updates start (more when one update period is longer).
pub const TIMED_STEPS: usize = 300;

/// One kind of work in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    /// What is counted, in the plural ("agent steps", "load tests").
    pub what: String,
    pub count: u64,
    /// Timed on this machine, on one thread.
    pub seconds_each: f64,
    /// How many of them run at once.
    pub parallel: usize,
}

impl Work {
    pub fn seconds(&self) -> f64 {
        self.count as f64 * self.seconds_each / self.parallel.max(1) as f64
    }
}

/// A run's work, before it starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Estimate {
    /// Cells this invocation computes.
    pub cells: usize,
    pub work: Vec<Work>,
}

impl Estimate {
    pub fn seconds(&self) -> f64 {
        self.work.iter().map(Work::seconds).sum()
    }

    /// One line: the cells, each kind of work with its timing, the total.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .work
            .iter()
            .filter(|w| w.count > 0)
            .map(|w| format!("{} {} at {} each, {} at a time", count(w.count), w.what, short(w.seconds_each), w.parallel))
            .collect();
        let work = if parts.is_empty() { String::new() } else { format!(": {}", parts.join("; ")) };
        let cells = if self.cells == 1 { "1 cell".to_string() } else { format!("{} cells", self.cells) };
        format!("estimate: {cells} to compute{work}; about {} in all", crate::experiment::timing::human(self.seconds()))
    }

    /// Prints the summary (if there is any work); refuses a run above [`LONG_RUN`] unless
    /// `allowed`.
    pub fn check(&self, allowed: bool) -> Result<()> {
        if self.cells > 0 || self.work.iter().any(|w| w.count > 0) {
            println!("{}", self.summary());
        }
        if self.seconds() > LONG_RUN.as_secs_f64() && !allowed {
            return Err(Error::config(format!(
                "this run would take about {} on this machine, more than {} h: start it with --yes, or set \
                 allow_long_run = true in the experiment file; or make it smaller, or spread its cells over machines with --shard K/N",
                crate::experiment::timing::human(self.seconds()),
                LONG_RUN.as_secs() / 3600
            )));
        }
        Ok(())
    }
}

/// `n` with a thousands separator ("1 920 000").
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// A short time: "12 us", "3.4 ms", "1.2 s".
fn short(seconds: f64) -> String {
    if seconds < 1e-3 {
        format!("{:.0} us", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        format!("{seconds:.1} s")
    }
}

/// Seconds per call of `f(i)`: calls it at least `min_calls` times, and on until a quarter
/// of a second has passed (at most `max_calls`).
pub fn seconds_each(min_calls: usize, max_calls: usize, mut f: impl FnMut(usize) -> Result<()>) -> Result<f64> {
    let started = Instant::now();
    let mut calls = 0;
    while calls < max_calls.max(1) && (calls < min_calls || started.elapsed() < Duration::from_millis(250)) {
        f(calls)?;
        calls += 1;
    }
    Ok(started.elapsed().as_secs_f64() / calls as f64)
}

/// Mean seconds per training step over a cell of `cell_steps` steps, from two short runs of
/// learners that `spec` builds afresh on `env` (a seed of their own, a hidden bar, no
/// checkpoint): the steps before updates start, and those plus [`TIMED_STEPS`] more (at least
/// one update period). Their difference is what a step costs once updates run.
pub fn seconds_per_step<E: Environment>(env: &E, spec: &dyn LearnerSpec, cell_steps: usize) -> Result<f64> {
    let (before, period) = spec.update_schedule();
    let warmup = before.min(cell_steps);
    let timed = TIMED_STEPS.max(period + 1).min(cell_steps - warmup);
    let time = |steps: usize| -> Result<f64> {
        if steps == 0 {
            return Ok(0.0);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut learner = spec.build(env.layout(), &mut rng)?;
        let started = Instant::now();
        train(env, learner.as_mut(), Schedule { epochs: 1, steps_per_epoch: steps }, &mut rng, &indicatif::ProgressBar::hidden(), None)?;
        Ok(started.elapsed().as_secs_f64())
    };
    let warm = time(warmup)?;
    let both = time(warmup + timed)?;
    if cell_steps == 0 {
        return Ok(0.0);
    }
    let updating = if timed > 0 { (both - warm).max(0.0) / timed as f64 } else { 0.0 };
    let acting = if warmup > 0 { warm / warmup as f64 } else { updating };
    Ok((warmup as f64 * acting + (cell_steps - warmup) as f64 * updating) / cell_steps as f64)
}

/// Seconds per candidate scored on the ground truth (a load test on the emulator), timed on
/// the alternatives of a start state, and how many alternatives a state has (the oracle's
/// width).
pub fn truth_scoring<E: Environment>(env: &E) -> Result<(f64, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let state = env.reset(&mut rng);
    let Some(first) = env.start(&state).into_iter().next() else { return Ok((0.0, 0)) };
    let alternatives = env.alternatives(&first);
    let width = alternatives.len();
    let mut batch: Vec<Scored<E::Candidate>> = alternatives.into_iter().take(32).map(Scored::new).collect();
    if batch.is_empty() {
        return Ok((0.0, 0));
    }
    let started = Instant::now();
    env.score_truth(&mut batch, 0)?;
    Ok((started.elapsed().as_secs_f64() / batch.len() as f64, width))
}

/// The training in the cells a stage computes: `steps` agent steps per cell, the cells run
/// `parallel` at a time. Cells of one `group` (learner, layout) cost alike: the first of each
/// is timed with `time` (seconds per step, e.g. from [`seconds_per_step`]).
pub fn training<J>(
    planned: &[Planned<J, impl Sized>],
    steps: impl Fn(&J) -> u64,
    parallel: usize,
    group: impl Fn(&J) -> String,
    time: impl Fn(&J) -> Result<f64>,
) -> Result<(usize, Work)> {
    let mut timed: Vec<(String, f64)> = Vec::new();
    let (mut cells, mut count, mut seconds) = (0, 0u64, 0.0);
    for job in planned.iter().filter_map(|p| match p {
        Planned::Todo(job) => Some(job),
        Planned::Done(_) => None,
    }) {
        let key = group(job);
        let each = match timed.iter().find(|(k, _)| *k == key) {
            Some((_, each)) => *each,
            None => {
                let each = time(job)?;
                timed.push((key, each));
                each
            }
        };
        cells += 1;
        count += steps(job);
        seconds += steps(job) as f64 * each;
    }
    let seconds_each = if count > 0 { seconds / count as f64 } else { 0.0 };
    Ok((cells, Work { what: "agent steps".into(), count, seconds_each, parallel: parallel.min(cells).max(1) }))
}

/// The experiment file's `allow_long_run`, taken out of the table (it says how to start a
/// run, not what the run computes, so it never reaches the resolved config).
pub fn take_allow_long_run(table: &mut toml::Table, file: &std::path::Path) -> Result<bool> {
    match table.remove("allow_long_run") {
        None => Ok(false),
        Some(toml::Value::Boolean(b)) => Ok(b),
        Some(other) => {
            Err(Error::Config { file: Some(file.to_path_buf()), message: format!("allow_long_run must be true or false, but is {other}") })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(seconds: f64) -> Estimate {
        Estimate {
            cells: 3,
            work: vec![
                Work { what: "agent steps".into(), count: 1_920_000, seconds_each: seconds / 1_920_000.0 * 2.0, parallel: 2 },
                Work { what: "load tests".into(), count: 0, seconds_each: 1e-3, parallel: 2 },
            ],
        }
    }

    #[test]
    fn a_long_run_is_refused_unless_allowed() {
        let long = estimate(3.0 * 3600.0);
        assert!((long.seconds() - 3.0 * 3600.0).abs() < 1e-6);
        let err = long.check(false).unwrap_err().to_string();
        assert!(err.contains("--yes") && err.contains("allow_long_run") && err.contains("3 h"), "{err}");
        long.check(true).unwrap();
        estimate(600.0).check(false).unwrap();
        let text = long.summary();
        assert!(text.contains("3 cells") && text.contains("1 920 000 agent steps") && !text.contains("load tests"), "{text}");
    }

    #[test]
    fn allow_long_run_is_a_boolean_taken_out_of_the_file() {
        let path = std::path::Path::new("e.toml");
        let mut t: toml::Table = toml::from_str("seed = 1\nallow_long_run = true\n").unwrap();
        assert!(take_allow_long_run(&mut t, path).unwrap());
        assert!(!t.contains_key("allow_long_run"));
        let mut t: toml::Table = toml::from_str("allow_long_run = \"yes\"\n").unwrap();
        assert!(take_allow_long_run(&mut t, path).unwrap_err().to_string().contains("allow_long_run"));
        assert!(!take_allow_long_run(&mut toml::Table::new(), path).unwrap());
    }

    #[test]
    fn timing_calls_at_least_the_minimum() {
        let mut calls = 0;
        let each = seconds_each(5, 5, |_| {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, 5);
        assert!(each >= 0.0);
    }
}

//! The cell scheduler: an experiment's cells, run by a few workers at once, each cell in a
//! thread pool of its own, with a progress bar per running cell.
//!
//! Workers take the cells in order; the cores are shared out among them, so that a cell's
//! own parallel work (its agents, Adam's chunks, the emulator's load tests) never steals
//! another cell's threads (with more cells at once than cores, each gets one thread). After
//! a cell fails, no further cell starts.
//!
//! [`run_resumable`] is what an experiment calls: its cells in table order, the finished ones
//! already read back from the run directory, the others computed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::error::{Error, Result};

/// How many cells run at once, and on how many threads each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workers {
    pub cells: usize,
    pub threads_per_cell: usize,
}

impl Workers {
    /// `parallel` cells at once (default: one per core), the cores shared out among them.
    pub fn new(parallel: Option<usize>) -> Workers {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cells = parallel.unwrap_or(cores).max(1);
        Workers { cells, threads_per_cell: (cores / cells).max(1) }
    }
}

/// What a running cell reports through.
pub struct CellProgress<'a> {
    multi: &'a MultiProgress,
    /// Advanced by the cell, in the units its label gave.
    pub bar: ProgressBar,
}

impl CellProgress<'_> {
    /// Prints a line above the bars (plainly when there is no terminal).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            println!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }
}

/// A cell's progress bar: its label and how many `unit`s it takes.
pub struct Label {
    pub prefix: String,
    pub units: u64,
}

/// Runs `run` on every job with `workers`; the results come back in job order, or the
/// first job's error (in job order). `unit` names what a bar counts ("epoch").
pub fn run_cells<J: Sync, R: Send>(
    jobs: &[J],
    workers: Workers,
    unit: &str,
    label: impl Fn(&J) -> Label + Sync,
    run: impl Fn(&J, &CellProgress) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template(&format!("{{prefix}} [{{bar:25}}] {unit} {{pos}}/{{len}}, {{eta}} left"))
        .map_err(|e| Error::config(format!("progress template: {e}")))?
        .progress_chars("=> ");
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R>>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    let pool_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers.cells.min(jobs.len()) {
            scope.spawn(|| {
                let pool = match rayon::ThreadPoolBuilder::new().num_threads(workers.threads_per_cell).build() {
                    Ok(pool) => pool,
                    Err(e) => {
                        let error = Error::config(format!("cannot start a pool of {} threads: {e}", workers.threads_per_cell));
                        *pool_error.lock().expect("no panics while holding the lock") = Some(error);
                        failed.store(true, Ordering::Relaxed);
                        return;
                    }
                };
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let Label { prefix, units } = label(job);
                    let bar = multi.add(ProgressBar::new(units).with_style(style.clone()));
                    bar.set_prefix(prefix);
                    let progress = CellProgress { multi: &multi, bar };
                    let result = pool.install(|| run(job, &progress));
                    failed.fetch_or(result.is_err(), Ordering::Relaxed);
                    progress.bar.finish_and_clear();
                    multi.remove(&progress.bar);
                    results.lock().expect("no panics while holding the lock")[i] = Some(result);
                }
            });
        }
    });
    if let Some(e) = pool_error.into_inner().expect("no panics while holding the lock") {
        return Err(e);
    }
    // Cells are taken in order, so any cell not run comes after the one that failed.
    let results = results.into_inner().expect("no panics while holding the lock");
    results.into_iter().map(|r| r.unwrap_or_else(|| Err(Error::config("a cell was not run")))).collect()
}

/// A cell of an experiment, in table order: read back from the run directory, or to compute.
pub enum Planned<J, C> {
    Done(C),
    Todo(J),
}

/// The cells a stage deals with: the finished ones and those it computes; and the names of
/// those it leaves to other stages (missing from a report).
pub fn split_by_stage<J, C>(
    planned: Vec<Planned<J, C>>,
    stage: super::Stage,
    name: impl Fn(&J) -> String,
) -> (Vec<Planned<J, C>>, Vec<String>) {
    let mut missing = Vec::new();
    let mut index = 0;
    let kept = planned
        .into_iter()
        .filter_map(|p| {
            let i = index;
            index += 1;
            match p {
                Planned::Todo(job) if !stage.computes(i) => {
                    missing.push(name(&job));
                    None
                }
                other => Some(other),
            }
        })
        .collect();
    (kept, missing)
}

/// After a stage's cells: a shard says what it wrote, a report names the cells it lacks.
/// Returns whether the stage goes on to write the report.
pub fn report_due(stage: super::Stage, computed: usize, total: usize, missing: &[String], out_dir: &std::path::Path) -> bool {
    if !stage.reports() {
        println!("wrote {computed} of {total} cells' share to {}", out_dir.display());
        return false;
    }
    if !missing.is_empty() {
        println!("missing {} of {total} cells (not in the report): {}", missing.len(), missing.join(", "));
    }
    true
}

/// How runs sharing a run directory split the cells: a cell is computed by the run that
/// claims it; the others read it back once it is written.
pub trait Coordinate<J, C>: Sync {
    /// Held while the cell is computed; dropping it releases the claim.
    type Guard;
    /// The cell's claim, or `None` when another live run holds it.
    fn claim(&self, job: &J) -> Result<Option<Self::Guard>>;
    /// The cell, if another run has finished it.
    fn read_back(&self, job: &J) -> Option<C>;
}

/// How often a run waiting for cells that other runs compute looks for them.
const POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Computes the cells still to do ([`run_cells`]) and returns every cell in table order.
/// Cells that another run has claimed are waited for (and taken over if that run dies).
pub fn run_resumable<J: Sync, C: Send, G>(
    planned: Vec<Planned<J, C>>,
    workers: Workers,
    unit: &str,
    coordination: &impl Coordinate<J, C, Guard = G>,
    label: impl Fn(&J) -> Label + Sync,
    run: impl Fn(&J, &CellProgress) -> Result<C> + Sync,
) -> Result<Vec<C>> {
    let done = planned.iter().filter(|p| matches!(p, Planned::Done(_))).count();
    if done > 0 {
        println!("resuming: {done} of {} cells already done", planned.len());
    }
    let mut cells: Vec<Option<C>> = Vec::with_capacity(planned.len());
    let mut todo: Vec<(usize, J)> = Vec::new();
    for p in planned {
        match p {
            Planned::Done(cell) => cells.push(Some(cell)),
            Planned::Todo(job) => {
                todo.push((cells.len(), job));
                cells.push(None);
            }
        }
    }
    let mut announced = false;
    while !todo.is_empty() {
        let computed = run_cells(
            &todo,
            workers,
            unit,
            |(_, job)| label(job),
            |(_, job), progress| {
                let Some(claim) = coordination.claim(job)? else { return Ok(None) };
                // Another run may have finished the cell since this one planned it.
                let cell = match coordination.read_back(job) {
                    Some(cell) => cell,
                    None => run(job, progress)?,
                };
                drop(claim);
                Ok(Some(cell))
            },
        )?;
        let mut elsewhere = Vec::new();
        for ((i, job), cell) in todo.into_iter().zip(computed) {
            match cell.or_else(|| coordination.read_back(&job)) {
                Some(cell) => cells[i] = Some(cell),
                None => elsewhere.push((i, job)),
            }
        }
        todo = elsewhere;
        if !todo.is_empty() {
            if !announced {
                println!("waiting for {} cells that another run is computing", todo.len());
                announced = true;
            }
            std::thread::sleep(POLL);
        }
    }
    Ok(cells.into_iter().flatten().collect())
}

/// Coordination for a run that is alone on its directory (tests).
#[cfg(test)]
pub struct Alone;

#[cfg(test)]
impl<J, C> Coordinate<J, C> for Alone {
    type Guard = ();
    fn claim(&self, _job: &J) -> Result<Option<()>> {
        Ok(Some(()))
    }
    fn read_back(&self, _job: &J) -> Option<C> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_job_order_with_the_first_error() {
        let jobs: Vec<u32> = (0..7).collect();
        let workers = Workers { cells: 3, threads_per_cell: 1 };
        let label = |j: &u32| Label { prefix: format!("job {j}"), units: 1 };
        let squares = run_cells(&jobs, workers, "step", label, |j, p| {
            p.bar.inc(1);
            Ok(j * j)
        })
        .unwrap();
        assert_eq!(squares, vec![0, 1, 4, 9, 16, 25, 36]);
        let failing =
            run_cells(
                &jobs,
                workers,
                "step",
                label,
                |j, _| if *j % 3 == 2 { Err(Error::config(format!("job {j} failed"))) } else { Ok(*j) },
            );
        assert!(failing.unwrap_err().to_string().contains("job 2 failed"));
    }

    #[test]
    fn a_failed_cell_stops_the_cells_after_it() {
        let jobs: Vec<u32> = (0..50).collect();
        let started = AtomicUsize::new(0);
        let result = run_cells(
            &jobs,
            Workers { cells: 1, threads_per_cell: 1 },
            "step",
            |_| Label { prefix: String::new(), units: 1 },
            |j, _| {
                started.fetch_add(1, Ordering::Relaxed);
                if *j == 3 {
                    Err(Error::config("job 3 failed"))
                } else {
                    Ok(*j)
                }
            },
        );
        assert!(result.unwrap_err().to_string().contains("job 3 failed"));
        assert_eq!(started.load(Ordering::Relaxed), 4, "no job after the failed one starts");
    }

    #[test]
    fn finished_cells_keep_their_place_among_the_computed_ones() {
        let planned = vec![Planned::Done(10), Planned::Todo(1), Planned::Done(12), Planned::Todo(3)];
        let label = |_: &u32| Label { prefix: String::new(), units: 1 };
        let cells = run_resumable(planned, Workers { cells: 2, threads_per_cell: 1 }, "step", &Alone, label, |j, _| Ok(10 + j)).unwrap();
        assert_eq!(cells, vec![10, 11, 12, 13]);
    }

    #[test]
    fn each_cell_runs_in_a_pool_of_its_share_of_threads() {
        let jobs = [(); 2];
        let workers = Workers { cells: 1, threads_per_cell: 3 };
        let threads =
            run_cells(&jobs, workers, "step", |_| Label { prefix: String::new(), units: 1 }, |_, _| Ok(rayon::current_num_threads()))
                .unwrap();
        assert_eq!(threads, vec![3, 3]);
    }
}

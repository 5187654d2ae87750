//! How long a run's cells took and how long they would take on more workers: `wall_time.md`
//! beside a report. Kept out of the tables because wall times differ between runs, while
//! the tables are the same bytes for the same seed; and kept out of git (`.gitignore`), so
//! that rerunning a committed run leaves the checkout clean. `run --timing-snapshot` also
//! writes them to `timing.md`, a snapshot meant to be committed and cited as one.

use std::fmt::Write as _;

use super::RunOptions;
use crate::report::markdown_table;

/// Every run's wall times (not committed).
pub const WALL_TIME_FILE: &str = "wall_time.md";
/// The committed snapshot, written only on request.
pub const SNAPSHOT_FILE: &str = "timing.md";

/// The files a run writes its wall times to.
pub fn files(options: RunOptions) -> Vec<&'static str> {
    if options.timing_snapshot {
        vec![WALL_TIME_FILE, SNAPSHOT_FILE]
    } else {
        vec![WALL_TIME_FILE]
    }
}

/// The makespan of `seconds` (one entry per cell) on `workers` equal workers, each cell on
/// one worker: longest cells first, each to the least-loaded worker (LPT). Never shorter
/// than the longest cell nor than the total over the workers.
pub fn projected_wall_time(seconds: &[f64], workers: usize) -> f64 {
    let mut sorted = seconds.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut loads = vec![0.0f64; workers.max(1)];
    for s in sorted {
        let least = loads.iter_mut().min_by(|a, b| a.total_cmp(b)).expect("one worker at least");
        *least += s;
    }
    loads.into_iter().fold(0.0, f64::max)
}

/// "1 h 05 min", "12 min 30 s", "45 s"
pub fn human(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600 + 30) / 60),
    }
}

/// `timing.md`: cell times by group (e.g. configuration), the total, the longest cell, and
/// the projected wall time on 1, 4, 16 and 64 workers like the cores the cells ran on.
pub fn timing_markdown(title: &str, cells: &[(String, f64)], parallel: usize, wall: Option<f64>) -> String {
    let mut s = format!("# {title}: time\n\n");
    let seconds: Vec<f64> = cells.iter().map(|c| c.1).collect();
    let total: f64 = seconds.iter().sum();
    let longest = seconds.iter().copied().fold(0.0, f64::max);
    let _ = writeln!(
        s,
        "Each cell's own wall time as this run measured it ({} cells, {} at a time, so each had \
         about 1/{} of the machine's cores; cells that shared the machine with other work took \
         longer). Total {}, longest cell {}.{}\n",
        cells.len(),
        parallel,
        parallel,
        human(total),
        human(longest),
        wall.map(|w| format!(" This run's wall time: {}.", human(w))).unwrap_or_default()
    );
    let mut groups: Vec<(String, Vec<f64>)> = Vec::new();
    for (label, secs) in cells {
        match groups.iter_mut().find(|g| &g.0 == label) {
            Some(g) => g.1.push(*secs),
            None => groups.push((label.clone(), vec![*secs])),
        }
    }
    let header: Vec<String> = ["Group", "Cells", "Mean per cell", "Longest", "Total"].iter().map(|h| h.to_string()).collect();
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|(label, v)| {
            let sum: f64 = v.iter().sum();
            vec![label.clone(), v.len().to_string(), human(sum / v.len() as f64), human(v.iter().copied().fold(0.0, f64::max)), human(sum)]
        })
        .collect();
    s.push_str(&markdown_table(&header, &rows));
    let _ = writeln!(
        s,
        "\nProjected wall time of these cells on N workers like those they ran on (a cell per \
         worker at a time, longest cells first; never shorter than the longest cell):\n"
    );
    let header: Vec<String> = ["Workers", "Projected wall time"].iter().map(|h| h.to_string()).collect();
    let rows: Vec<Vec<String>> = [1, 4, 16, 64].iter().map(|&w| vec![w.to_string(), human(projected_wall_time(&seconds, w))]).collect();
    s.push_str(&markdown_table(&header, &rows));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_first_scheduling_on_a_hand_made_set() {
        let cells = [7.0, 5.0, 4.0, 3.0, 3.0, 2.0];
        assert_eq!(projected_wall_time(&cells, 1), 24.0);
        // Two workers, each next cell to the least-loaded one: 7 | 5; 4 -> 9; 3 -> 10; 3 -> 12; 2 -> 12.
        assert_eq!(projected_wall_time(&cells, 2), 12.0);
        assert_eq!(projected_wall_time(&cells, 64), 7.0, "never shorter than the longest cell");
        assert_eq!(projected_wall_time(&[], 4), 0.0);
    }

    #[test]
    fn times_read_like_a_person_would_write_them() {
        assert_eq!(human(45.2), "45 s");
        assert_eq!(human(750.0), "12 min 30 s");
        assert_eq!(human(3900.0), "1 h 05 min");
        let md = timing_markdown("Table 5", &[("call".into(), 100.0), ("call".into(), 120.0), ("call*5".into(), 900.0)], 2, None);
        assert!(md.contains("| call | 2 | 1 min 50 s | 2 min 00 s | 3 min 40 s |"), "{md}");
        assert!(md.contains("| 64 | 15 min 00 s |"), "{md}");
    }
}

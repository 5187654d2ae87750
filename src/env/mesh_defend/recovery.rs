//! The recovery time after a spike, as issue 29 defines it: seconds from the end of the
//! spike until a 5-second average of the goodput (200s within the latency bound per second)
//! is back within 10 % of its pre-spike level and stays there for 10 s; capped at the run's
//! end; 0 without a spike. (`meshrl mesh run`'s own `recovery` line is an older, per-second
//! measure; this one smooths over 5 s so that one lucky second does not end a collapse.)

/// The averaging window, seconds.
pub const WINDOW_S: usize = 5;
/// Seconds the average must stay within the tolerance.
pub const HOLD_S: usize = 10;
/// The tolerance around the pre-spike level.
pub const TOLERANCE: f64 = 0.1;

/// `goodput[s]` is second s's goodput. The pre-spike level is its mean over the second half
/// of `[0, spike_start_s)`; the average at second t is the mean of the `WINDOW_S` seconds
/// ending with t. Seconds beyond `goodput` count as 0 (no answer came).
pub fn recovery_s(goodput: &[f64], spike_start_s: usize, spike_end_s: usize, run_end_s: usize) -> f64 {
    let at = |s: usize| goodput.get(s).copied().unwrap_or(0.0);
    let half = spike_start_s / 2;
    let level = (half..spike_start_s).map(at).sum::<f64>() / (spike_start_s - half).max(1) as f64;
    let average = |t: usize| (t + 1 - WINDOW_S.min(t + 1)..=t).map(at).sum::<f64>() / WINDOW_S.min(t + 1) as f64;
    let within = |t: usize| (average(t) - level).abs() <= TOLERANCE * level;
    let cap = run_end_s.saturating_sub(spike_end_s) as f64;
    (spike_end_s..run_end_s).find(|&t| t + HOLD_S <= run_end_s && (t..t + HOLD_S).all(within)).map_or(cap, |t| (t - spike_end_s) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_waits_for_the_smoothed_goodput_to_hold_near_its_level() {
        // 100/s for 20 s, a spike from 20 to 30 s at 0, back to 100 from 30 s on.
        let mut g = vec![100.0; 20];
        g.extend(vec![0.0; 10]);
        g.extend(vec![100.0; 30]);
        // The 5-second average is back within 10 % once its window holds only recovered
        // seconds: at 34 s, 4 s after the spike.
        assert_eq!(recovery_s(&g, 20, 30, 60), 4.0);
        // A collapse that never ends: capped at the run's end.
        let mut dead = vec![100.0; 20];
        dead.extend(vec![10.0; 40]);
        assert_eq!(recovery_s(&dead, 20, 30, 60), 30.0);
        // A recovery that does not hold for 10 s does not count.
        let mut flicker = vec![100.0; 20];
        flicker.extend(vec![0.0; 10]);
        flicker.extend(vec![100.0; 8]);
        flicker.extend(vec![0.0; 5]);
        flicker.extend(vec![100.0; 17]);
        assert_eq!(recovery_s(&flicker, 20, 30, 60), 47.0 - 30.0);
        // Not recovered before the run's end leaves no 10 s to hold: capped.
        assert_eq!(recovery_s(&g[..38], 20, 30, 38), 8.0);
    }
}

//! How well the data pins each field down: repeated fits over the candidates the search
//! and its sweeps evaluated, each on a resample of the observations.
//!
//! - Several runs per configuration: a bootstrap. Each resample draws every configuration's
//!   runs with replacement; its fit is the candidate nearest to the resample.
//! - One run per configuration (the single-run mode): a run cannot be resampled. The
//!   plausible scenarios are then every evaluated candidate under which each observed run
//!   lies inside the candidate's emulated 5-95 % band, for every configuration and response
//!   (a rejection sample, as approximate Bayesian computation takes one, with the band as
//!   its tolerance). One run carries all of a run's noise, so this set is wide.
//!
//! In single-run mode the fit is the nearest plausible scenario, when there is one.
//!
//! A field's interval is the 5th to 95th percentile of its value over the resampled fits
//! (or the plausible scenarios), widened to include the fit.
//! It is pinned if that spans at most `loose_share` of its grid, else loose. Two loose fields
//! whose resampled fits move together (|correlation| >= 0.6) cannot be separated: the data
//! fixes a combination of them, not each. A field whose sweep leaves the distance unchanged
//! is not identified at all.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{distance, CalibrateConfig, Fit};
use crate::emulator::calibration::Band;
use crate::error::Result;
use crate::seeding::mix;

/// Distinct plausible scenarios a single-run fit needs before it calls a field pinned.
pub const MIN_PLAUSIBLE: usize = 10;

/// One field's fitted value and interval.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldInterval {
    pub name: String,
    pub fitted: f64,
    /// The 5th and 95th percentile of the resampled fits.
    pub low: f64,
    pub high: f64,
    pub pinned: bool,
    /// Whether moving the field alone changes the distance at all.
    pub identified: bool,
}

impl FieldInterval {
    pub fn verdict(&self) -> &'static str {
        match (self.identified, self.pinned) {
            (false, _) => "not identified",
            (true, true) => "pinned",
            (true, false) => "loose",
        }
    }
}

/// Fills the fit's intervals and notes. `centre` is the point the sweeps went through.
pub fn estimate(fit: &mut Fit, cfg: &CalibrateConfig, centre: &[usize]) -> Result<()> {
    let fits = resampled_fits(fit, cfg)?;
    if fit.single_run {
        // One run carries all of a run's noise, and the distance of one point to a wide
        // distribution is large whatever its centre: a fit that puts every run inside its
        // band is preferred to a nearer one that does not.
        if let Some(&nearest) = fits.iter().min_by(|&&a, &&b| fit.candidates[a].distance.total_cmp(&fit.candidates[b].distance)) {
            fit.best = nearest;
        }
    }
    let n_fields = fit.grid.names.len();
    let best = fit.best().point.clone();
    let mut notes = Vec::new();
    // Fewer distinct plausible scenarios than this cannot bound a field: none is pinned.
    let distinct: std::collections::BTreeSet<&Vec<usize>> = fits.iter().map(|&c| &fit.candidates[c].point).collect();
    let too_few = fit.single_run && distinct.len() < MIN_PLAUSIBLE;
    if too_few && !fits.is_empty() {
        notes.push(format!(
            "only {} distinct scenarios evaluated are plausible (fewer than {MIN_PLAUSIBLE}): too few to bound the fields, so none \
             is called pinned",
            distinct.len()
        ));
    }
    if fits.is_empty() {
        // No interval can be given: every field spans its bounds (and is loose).
        notes.push(
            "no scenario evaluated puts every observed run inside its emulated 5-95 % band: the emulator cannot reproduce \
             this trace by moving these fields, so the fit is a compromise and its intervals are the whole bounds"
                .to_string(),
        );
    }
    let mut intervals = Vec::with_capacity(n_fields);
    for (f, &at) in best.iter().enumerate().take(n_fields) {
        let levels = fit.grid.values[f].len();
        let mut idx: Vec<usize> = fits.iter().map(|&c| fit.candidates[c].point[f]).collect();
        idx.sort_unstable();
        let pick = |q: f64| idx[((q * (idx.len() - 1) as f64).round() as usize).min(idx.len() - 1)];
        let (lo, hi) = if idx.is_empty() { (0, levels - 1) } else { (pick(0.05).min(at), pick(0.95).max(at)) };
        let span = (hi - lo) as f64 / (levels - 1) as f64;
        // The sweep of this field alone: does the distance move at all?
        let sweep: Vec<f64> = fit
            .candidates
            .iter()
            .filter(|c| c.point.iter().enumerate().all(|(g, &v)| g == f || v == centre[g]))
            .map(|c| c.distance)
            .collect();
        let spread = sweep.iter().copied().fold(f64::NEG_INFINITY, f64::max) - sweep.iter().copied().fold(f64::INFINITY, f64::min);
        let identified = spread > 1e-9;
        intervals.push(FieldInterval {
            name: fit.grid.names[f].clone(),
            fitted: fit.grid.values[f][at],
            low: fit.grid.values[f][lo],
            high: fit.grid.values[f][hi],
            pinned: identified && span <= cfg.loose_share && !too_few,
            identified,
        });
    }
    if fit.single_run {
        notes.push(
            "single-run mode: one run per configuration, so the intervals span every scenario evaluated under which \
             each observed run lies in the emulated 5-95 % band; they are wider than repeated runs would give"
                .to_string(),
        );
    }
    for (f, i) in intervals.iter().enumerate() {
        if !i.identified {
            notes.push(format!(
                "`{}` is not identified: no configuration of this trace responds to it, so its value is the base scenario's or arbitrary",
                i.name
            ));
        }
        for (g, j) in intervals.iter().enumerate().skip(f + 1) {
            if i.pinned || j.pinned || !i.identified || !j.identified {
                continue;
            }
            if fits.is_empty() {
                continue;
            }
            let r = correlation(
                &fits.iter().map(|&c| fit.candidates[c].point[f] as f64).collect::<Vec<_>>(),
                &fits.iter().map(|&c| fit.candidates[c].point[g] as f64).collect::<Vec<_>>(),
            );
            if r.abs() >= 0.6 {
                notes.push(format!(
                    "cannot separate `{}` and `{}`: their resampled fits move together (correlation {r:+.2}), so the data fixes a \
                     combination of the two, not each; runs of other configurations (`--suggest`) may tell them apart",
                    i.name, j.name
                ));
            }
        }
    }
    fit.intervals = intervals;
    fit.notes = notes;
    fit.resampled = fits;
    Ok(())
}

/// The index of the nearest candidate for each resample.
fn resampled_fits(fit: &Fit, cfg: &CalibrateConfig) -> Result<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, 2));
    let configurations = &fit.observed.configurations;
    if fit.single_run {
        let plausible: Vec<usize> = (0..fit.candidates.len())
            .filter(|&i| {
                configurations.iter().enumerate().all(|(c, conf)| {
                    conf.values.iter().enumerate().all(|(m, v)| Band::of(fit.candidates[i].emulated[c][m].clone()).contains(v[0]))
                })
            })
            .collect();
        // None plausible: the emulator cannot put every run in its band with these fields.
        return Ok(plausible);
    }
    let mut fits = Vec::with_capacity(cfg.resamples);
    for _ in 0..cfg.resamples {
        let sample: Vec<Vec<Vec<f64>>> = configurations
            .iter()
            .map(|conf| {
                let draws: Vec<usize> = (0..conf.runs()).map(|_| rng.random_range(0..conf.runs())).collect();
                conf.values.iter().map(|v| distance::sorted(draws.iter().map(|&k| v[k]).collect())).collect()
            })
            .collect();
        let nearest = fit
            .candidates
            .iter()
            .enumerate()
            .map(|(i, c)| (i, distance::criterion(&sample, &c.emulated)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("at least one candidate")
            .0;
        fits.push(nearest);
    }
    Ok(fits)
}

/// Pearson's correlation; 0 when either side is constant.
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let (va, vb): (f64, f64) = (a.iter().map(|x| (x - ma).powi(2)).sum(), b.iter().map(|y| (y - mb).powi(2)).sum());
    if va <= 0.0 || vb <= 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

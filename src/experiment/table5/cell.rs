//! One Table 5 cell: a (dataset, configuration, seed) triple. DQN agents train on the load
//! search ([`crate::train`]), the best epoch's pairs are validated on the emulator, and the
//! yardsticks are measured on the same states.

use std::fmt::Write as _;
use std::time::Instant;

use indicatif::ProgressBar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{DatasetContext, Table5Config};
use crate::env::load_search::{Configuration, LoadSearch, Pair};
use crate::env::Environment;
use crate::error::Result;
use crate::experiment::metrics::{best_epoch, sim_score, spread_after_best};
use crate::experiment::rundir::Cell;
use crate::experiment::yardstick::{self, Yardsticks};
use crate::nan_as_null;
use crate::train::{train, EpochLog, Schedule};

/// The result of one (dataset, configuration, seed) cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub key: String,
    pub dataset: String,
    pub configuration: String,
    pub seed: u64,
    pub epochs: EpochLog,
    #[serde(with = "nan_as_null::scalar")]
    pub sim: f64,
    pub best_epoch: usize,
    #[serde(with = "nan_as_null::scalar")]
    pub val: f64,
    #[serde(with = "nan_as_null::scalar")]
    pub spread_after_best: f64,
    pub best_rl: Vec<Pair>,
    pub best_baseline: Vec<Pair>,
    /// Oracle and best fixed action on the same states (`yardstick.rs`).
    pub yardsticks: Option<Yardsticks>,
    pub seconds: f64,
}

impl Cell for CellResult {
    fn key(&self) -> &str {
        &self.key
    }
}

impl CellResult {
    /// One yardstick number; NaN for a cell scored without them.
    pub(super) fn yardstick(&self, f: fn(&Yardsticks) -> f64) -> f64 {
        self.yardsticks.as_ref().map_or(f64::NAN, f)
    }

    /// The validated pairs of both sides, one line each (`pairs/<dataset>/<cell>.csv`; rows
    /// 1-based, as in the trace file).
    pub fn pairs_csv(&self) -> String {
        let mut s = String::from("side,service,row,threads,calls,sim_reward,emu_reward\n");
        for (side, pairs) in [("rl", &self.best_rl), ("baseline", &self.best_baseline)] {
            for p in pairs.iter() {
                let c = &p.candidate;
                let _ = writeln!(
                    s,
                    "{side},{},{},{},{},{:.4},{:.4}",
                    c.service,
                    c.row + 1,
                    c.threads,
                    c.calls,
                    p.model_reward,
                    p.truth_reward.unwrap_or(f64::NAN)
                );
            }
        }
        s
    }
}

/// A cell's file name in `cells/<dataset>/` (without `.json`).
pub fn cell_name(conf: &Configuration, seed: u64) -> String {
    format!("{}_seed{seed}", conf.slug())
}

/// Each cell's own random stream, named by its dataset and configuration.
fn stream_of(text: &str) -> u64 {
    crate::data::fnv1a(text.as_bytes())
}

fn subsample(pairs: &[Pair], n: Option<usize>, rng: &mut ChaCha8Rng) -> Vec<Pair> {
    match n {
        Some(n) if n < pairs.len() => rand::seq::index::sample(rng, pairs.len(), n).into_iter().map(|i| pairs[i]).collect(),
        _ => pairs.to_vec(),
    }
}

/// Trains the agents of one configuration for all epochs and validates the best epoch.
pub fn run_cell(cfg: &Table5Config, ctx: &DatasetContext, conf: &Configuration, seed: u64, bar: &ProgressBar) -> Result<CellResult> {
    let started = Instant::now();
    let name = &ctx.data.name;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream_of(&format!("{name}|{}", conf.name())));
    let env = LoadSearch::new(&ctx.data, *conf, cfg.beta);
    let mut learner = cfg.learner().build(env.layout(), &mut rng)?;
    let schedule = Schedule { epochs: cfg.epochs, steps_per_epoch: cfg.steps_per_epoch };
    let training = train(&env, learner.as_mut(), schedule, &mut rng, bar)?;
    let (rl_best, base_best) = (&training.best_agents, &training.best_baseline);
    let mut val_rng = ChaCha8Rng::seed_from_u64(seed);
    val_rng.set_stream(stream_of(&format!("validation|{name}|{}", conf.name())));
    let mut rl_val = subsample(rl_best, cfg.validation_pairs, &mut val_rng);
    let mut base_val = subsample(base_best, cfg.validation_pairs, &mut val_rng);
    let emu_seed: u64 = val_rng.random();
    env.score_truth(&mut rl_val, emu_seed)?;
    env.score_truth(&mut base_val, emu_seed.wrapping_add(1 << 32))?;
    let total = |ps: &[Pair]| ps.iter().filter_map(|p| p.truth_reward).sum::<f64>();
    let val = total(&rl_val) / total(&base_val);
    let yardstick_seed: u64 = val_rng.random();
    let yardsticks = match cfg.yardsticks {
        true => Some(yardstick::measure(
            &env,
            (rl_best, base_best),
            (&rl_val, &base_val),
            cfg.oracle_validation_states,
            cfg.oracle_runs,
            yardstick_seed,
        )?),
        false => None,
    };
    let log = training.log;
    Ok(CellResult {
        key: String::new(),
        dataset: name.clone(),
        configuration: conf.name(),
        seed,
        sim: sim_score(&log.ratio, cfg.rolling_window),
        best_epoch: best_epoch(&log.ratio),
        spread_after_best: spread_after_best(&log.ratio),
        val,
        epochs: log,
        best_rl: rl_val,
        best_baseline: base_val,
        yardsticks,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_hash_is_stable() {
        assert_eq!(stream_of(""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(stream_of("S1|call"), stream_of("S1|thread"));
    }
}

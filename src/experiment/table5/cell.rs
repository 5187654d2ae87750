//! One Table 5 cell: a (dataset, configuration, seed) triple. DQN agents train on the load
//! search ([`crate::train`]), the best epoch's pairs are validated on the emulator, and the
//! yardsticks are measured on the same states.

use std::fmt::Write as _;
use std::path::PathBuf;
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
use crate::train::{train, Checkpoints, EpochLog, Schedule};

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
    /// The greedy policy at the end of the best epoch, on that epoch's states, over the
    /// random baseline: on the simulator (all states) and on the emulator (Val.'s states).
    #[serde(with = "nan_as_null::scalar")]
    pub greedy_sim: f64,
    #[serde(with = "nan_as_null::scalar")]
    pub greedy_val: f64,
    /// The validated pairs of the best epoch: the agents' (training behaviour), the random
    /// baseline's and the greedy policy's, on the same states in the same order.
    pub best_rl: Vec<Pair>,
    pub best_baseline: Vec<Pair>,
    pub best_greedy: Vec<Pair>,
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

    /// The validated pairs of every side, one line each (`pairs/<dataset>/<cell>.csv`; rows
    /// 1-based, as in the trace file).
    pub fn pairs_csv(&self) -> String {
        let mut s = String::from("side,service,row,threads,calls,sim_reward,emu_reward\n");
        for (side, pairs) in [("rl", &self.best_rl), ("baseline", &self.best_baseline), ("greedy", &self.best_greedy)] {
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

/// The same `n` of `len` positions for every side (all of them, in order, without `n`).
fn subsample(len: usize, n: Option<usize>, rng: &mut ChaCha8Rng) -> Vec<usize> {
    match n {
        Some(n) if n < len => rand::seq::index::sample(rng, len, n).into_iter().collect(),
        _ => (0..len).collect(),
    }
}

fn pick(pairs: &[Pair], positions: &[usize]) -> Vec<Pair> {
    positions.iter().map(|&i| pairs[i]).collect()
}

fn ratio(x: f64, base: f64) -> f64 {
    if base > 0.0 {
        x / base
    } else {
        f64::NAN
    }
}

/// Trains the agents of one configuration for all epochs and validates the best epoch: the
/// agents' training behaviour (Val.) and their greedy policy, against the random baseline on
/// the same states. With `checkpoint`, the training is saved every `cfg.checkpoint_every`
/// epochs to that file and resumed from it.
pub fn run_cell(
    cfg: &Table5Config,
    ctx: &DatasetContext,
    conf: &Configuration,
    seed: u64,
    bar: &ProgressBar,
    checkpoint: Option<PathBuf>,
) -> Result<CellResult> {
    let started = Instant::now();
    let name = &ctx.data.name;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream_of(&format!("{name}|{}", conf.name())));
    let env = LoadSearch::new(&ctx.data, *conf, cfg.beta);
    let mut learner = cfg.learner().build(env.layout(), &mut rng)?;
    let schedule = Schedule { epochs: cfg.epochs, steps_per_epoch: cfg.steps_per_epoch };
    let checkpoints = checkpoint.map(|path| Checkpoints { path, every: cfg.checkpoint_every });
    let training = train(&env, learner.as_mut(), schedule, &mut rng, bar, checkpoints.as_ref())?;
    let (rl_best, base_best, greedy_best) = (&training.best_agents, &training.best_baseline, &training.best_greedy);
    let mut val_rng = ChaCha8Rng::seed_from_u64(seed);
    val_rng.set_stream(stream_of(&format!("validation|{name}|{}", conf.name())));
    // One subsample of the best epoch's interactions for every side: the same states.
    let positions = subsample(rl_best.len(), cfg.validation_pairs, &mut val_rng);
    let (mut rl_val, mut base_val, mut greedy_val) =
        (pick(rl_best, &positions), pick(base_best, &positions), pick(greedy_best, &positions));
    let emu_seed: u64 = val_rng.random();
    env.score_truth(&mut rl_val, emu_seed)?;
    env.score_truth(&mut base_val, emu_seed.wrapping_add(1 << 32))?;
    env.score_truth(&mut greedy_val, emu_seed.wrapping_add(2 << 32))?;
    let emu_total = |ps: &[Pair]| ps.iter().filter_map(|p| p.truth_reward).sum::<f64>();
    let sim_total = |ps: &[Pair]| ps.iter().map(|p| p.model_reward).sum::<f64>();
    let val = ratio(emu_total(&rl_val), emu_total(&base_val));
    let yardstick_seed: u64 = val_rng.random();
    let yardsticks = match cfg.yardsticks {
        true => Some(yardstick::measure(
            &env,
            yardstick::Sides { agents: rl_best, baseline: base_best, greedy: greedy_best },
            yardstick::Sides { agents: &rl_val, baseline: &base_val, greedy: &greedy_val },
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
        greedy_sim: ratio(sim_total(greedy_best), sim_total(base_best)),
        greedy_val: ratio(emu_total(&greedy_val), emu_total(&base_val)),
        epochs: log,
        best_rl: rl_val,
        best_baseline: base_val,
        best_greedy: greedy_val,
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

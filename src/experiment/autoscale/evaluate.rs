//! Episodes of any scaling policy on the same load paths: return, hard-bound endings,
//! invalid actions and replica-hours, on the model's latency and on the measured one.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::env::autoscale::{Ending, ScaleState, ScalingSpec, Source};
use crate::error::Result;

/// What one policy did over a seed's evaluation episodes (means per episode).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpisodeStats {
    pub episode_return: f64,
    /// Share of episodes ended by a latency above the hard bound.
    pub hard_bound_endings: f64,
    /// Share of episodes ended by scaling past the replica bounds.
    pub invalid_endings: f64,
    pub replica_hours: f64,
    pub steps: f64,
}

/// One step of an episode, for the episode plot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub load: f64,
    pub replicas: u32,
    pub latency_s: f64,
}

/// Runs `episodes` episodes from the seed's load paths; `decide` may keep state across the
/// steps of an episode (the HPA does) and is told when a new one starts (`t = 0`).
pub fn run_episodes(
    spec: &ScalingSpec,
    source: Source,
    seed: u64,
    episodes: usize,
    mut decide: impl FnMut(&ScaleState) -> Result<i32>,
) -> Result<(EpisodeStats, Vec<Trace>)> {
    let mut total = EpisodeStats::default();
    let mut first_trace = Vec::new();
    for e in 0..episodes {
        // Each episode's load path depends on the seed and episode only, never on the policy.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1000 + e as u64);
        let mut state = spec.first_state(&mut rng);
        let mut trace = Vec::new();
        loop {
            let delta = decide(&state)?;
            let after = spec.draw(&spec.next_load_distribution(state.next_load, state.t + 1), &mut rng);
            let o = spec.transition(&state, delta, after, source);
            total.episode_return += o.reward;
            total.replica_hours += o.replicas as f64 * spec.step_s / 3600.0;
            total.steps += 1.0;
            trace.push(Trace { load: spec.loads[o.next.load], replicas: o.replicas, latency_s: o.latency_s });
            match o.ended {
                Some(Ending::HardBound) => total.hard_bound_endings += 1.0,
                Some(Ending::Invalid) => total.invalid_endings += 1.0,
                None => {}
            }
            if o.ended.is_some() || o.next.t >= spec.horizon {
                break;
            }
            state = o.next;
        }
        if e == 0 {
            first_trace = trace;
        }
    }
    let n = episodes.max(1) as f64;
    let mean = EpisodeStats {
        episode_return: total.episode_return / n,
        hard_bound_endings: total.hard_bound_endings / n,
        invalid_endings: total.invalid_endings / n,
        replica_hours: total.replica_hours / n,
        steps: total.steps / n,
    };
    Ok((mean, first_trace))
}

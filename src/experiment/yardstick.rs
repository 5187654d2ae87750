//! Yardsticks beside the paper's random baseline, for any [`Environment`]: the oracle (the
//! best candidate for each state, by exhaustive search over the environment's alternatives)
//! and the best fixed action (one choice for every state, the one with the highest total),
//! each as a ratio to the random baseline on the same states, like Sim. and Val.
//!
//! Both are scored on the states of the agents' best epoch: on the simulator all of them,
//! in one batched call for the whole grid; on the emulator the first
//! `oracle_validation_states` of the validated states, in parallel, where every ratio's
//! baseline is the random baseline on those same states. Beside them: the agents' training
//! behaviour and their greedy policy, on the same states. On the emulator a
//! choice made on noisy runs would be scored on those same lucky runs, so the oracle and
//! the fixed action are chosen on the mean of `oracle_runs` runs of every candidate and
//! scored on a fresh one.

use serde::{Deserialize, Serialize};

use crate::env::{Environment, Scored, ScoredOf};
use crate::error::Result;
use crate::nan_as_null;

/// The yardsticks of one cell. Every `*_sim` / `*_val` is a ratio to the random baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Yardsticks {
    /// The agents' own ratio on the best epoch's states (the states of the Sim. yardsticks).
    #[serde(with = "nan_as_null::scalar")]
    pub agent_sim: f64,
    #[serde(with = "nan_as_null::scalar")]
    pub oracle_sim: f64,
    #[serde(with = "nan_as_null::scalar")]
    pub fixed_sim: f64,
    /// The load behind `fixed_sim`, e.g. "threads 64" or "threads 64, calls 400".
    pub fixed_sim_action: String,
    /// Share of the oracle's simulated reward the agents reach on the same states.
    #[serde(with = "nan_as_null::scalar")]
    pub reach_sim: f64,
    /// The same share for the greedy policy.
    #[serde(with = "nan_as_null::scalar")]
    pub reach_greedy_sim: f64,
    /// The agents' (training behaviour) and the greedy policy's ratios on the emulator's
    /// yardstick states (the first `val_states` validated ones).
    #[serde(with = "nan_as_null::scalar")]
    pub agent_val: f64,
    #[serde(with = "nan_as_null::scalar")]
    pub greedy_val: f64,
    #[serde(with = "nan_as_null::scalar")]
    pub oracle_val: f64,
    #[serde(with = "nan_as_null::scalar")]
    pub fixed_val: f64,
    pub fixed_val_action: String,
    /// Share of the oracle's emulated reward the agents reach on the same states.
    #[serde(with = "nan_as_null::scalar")]
    pub reach_val: f64,
    /// The same share for the greedy policy.
    #[serde(with = "nan_as_null::scalar")]
    pub reach_greedy_val: f64,
    /// States behind the emulator's yardsticks.
    pub val_states: usize,
    /// Load tests the emulator ran for them.
    pub load_tests: usize,
}

/// Index of the best candidate of every state (the first one on ties).
pub fn oracle_choices(rewards: &[Vec<f64>]) -> Vec<usize> {
    rewards.iter().map(|r| argmax(r.iter().copied())).collect()
}

/// The candidate with the highest total over all states (the first one on ties). Every state
/// has the same candidates, in the same order.
pub fn best_fixed_choice(rewards: &[Vec<f64>]) -> usize {
    let width = rewards.first().map_or(0, Vec::len);
    argmax((0..width).map(|a| rewards.iter().map(|r| r[a]).sum::<f64>()))
}

/// Index of the largest value (the first on ties).
pub fn argmax(values: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// Every alternative of every state, in state-major order, and how many each state has.
fn alternatives<E: Environment>(env: &E, states: &[ScoredOf<E>]) -> (Vec<ScoredOf<E>>, usize) {
    let width = states.first().map_or(0, |s| env.alternatives(&s.candidate).len());
    let pairs = states.iter().flat_map(|s| env.alternatives(&s.candidate).into_iter().map(Scored::new)).collect();
    (pairs, width)
}

/// The scored candidates of the best epoch's states (or of a subsample of them): the
/// agents' while training, the random baseline's and the greedy policy's, state by state in
/// the same order.
pub struct Sides<'a, C> {
    pub agents: &'a [Scored<C>],
    pub baseline: &'a [Scored<C>],
    pub greedy: &'a [Scored<C>],
}

/// The yardsticks of one cell: `best`, the best epoch's candidates scored on the model;
/// `validated`, the validated subsample with its emulator rewards.
pub fn measure<E: Environment>(
    env: &E,
    best: Sides<E::Candidate>,
    validated: Sides<E::Candidate>,
    val_states: usize,
    runs: usize,
    seed: u64,
) -> Result<Yardsticks> {
    let (best_rl, best_base) = (best.agents, best.baseline);
    let rl_val = validated.agents;
    // Simulator: every state of the best epoch, the whole grid in one call.
    let (mut pairs, width) = alternatives(env, best_rl);
    env.score_model(&mut pairs)?;
    let rewards: Vec<Vec<f64>> = pairs.chunks(width.max(1)).map(|c| c.iter().map(|p| p.model_reward).collect()).collect();
    let base: f64 = best_base.iter().map(|p| p.model_reward).sum();
    let agent: f64 = best_rl.iter().map(|p| p.model_reward).sum();
    let greedy: f64 = best.greedy.iter().map(|p| p.model_reward).sum();
    let oracle: f64 = rewards.iter().zip(oracle_choices(&rewards)).map(|(r, a)| r[a]).sum();
    let fixed_choice = best_fixed_choice(&rewards);
    let fixed: f64 = rewards.iter().map(|r| r[fixed_choice]).sum();
    let fixed_sim_action = pairs.get(fixed_choice).map(|p| env.describe(&p.candidate)).unwrap_or_default();

    // Emulator: the first `val_states` validated states; choose on the mean of `runs` runs,
    // score on a fresh one.
    let states = &rl_val[..val_states.min(rl_val.len())];
    let (pairs_emu, width_emu) = alternatives(env, states);
    let emu = |p: &ScoredOf<E>| p.truth_reward.unwrap_or(0.0);
    let mut totals = vec![0.0; pairs_emu.len()];
    for run in 0..runs.max(1) {
        let mut pairs = pairs_emu.clone();
        env.score_truth(&mut pairs, seed.wrapping_add((run as u64) << 32))?;
        for (t, p) in totals.iter_mut().zip(&pairs) {
            *t += emu(p);
        }
    }
    let emu_rewards: Vec<Vec<f64>> = totals.chunks(width_emu.max(1)).map(|c| c.to_vec()).collect();
    let pick = |s: usize, a: usize| Scored::new(pairs_emu[s * width_emu + a].candidate.clone());
    let mut oracle_pairs: Vec<ScoredOf<E>> = oracle_choices(&emu_rewards).iter().enumerate().map(|(s, &a)| pick(s, a)).collect();
    let fixed_emu_choice = best_fixed_choice(&emu_rewards);
    let mut fixed_pairs: Vec<ScoredOf<E>> = (0..states.len()).map(|s| pick(s, fixed_emu_choice)).collect();
    env.score_truth(&mut oracle_pairs, seed.wrapping_add(1 << 40))?;
    env.score_truth(&mut fixed_pairs, seed.wrapping_add(2 << 40))?;
    let mean = |ps: &[ScoredOf<E>]| ps.iter().map(emu).sum::<f64>() / ps.len().max(1) as f64;
    let on_states = |ps: &'_ [ScoredOf<E>]| mean(&ps[..states.len().min(ps.len())]);
    let base_mean = on_states(validated.baseline);
    let greedy_mean = on_states(validated.greedy);
    let ratio = |x: f64, b: f64| if b > 0.0 { x / b } else { f64::NAN };
    Ok(Yardsticks {
        agent_sim: ratio(agent, base),
        oracle_sim: ratio(oracle, base),
        fixed_sim: ratio(fixed, base),
        fixed_sim_action,
        reach_sim: ratio(agent, oracle),
        reach_greedy_sim: ratio(greedy, oracle),
        agent_val: ratio(mean(states), base_mean),
        greedy_val: ratio(greedy_mean, base_mean),
        oracle_val: ratio(mean(&oracle_pairs), base_mean),
        fixed_val: ratio(mean(&fixed_pairs), base_mean),
        fixed_val_action: fixed_pairs.first().map(|p| env.describe(&p.candidate)).unwrap_or_default(),
        reach_val: ratio(mean(states), mean(&oracle_pairs)),
        reach_greedy_val: ratio(greedy_mean, mean(&oracle_pairs)),
        val_states: states.len(),
        load_tests: pairs_emu.len() * runs.max(1) + oracle_pairs.len() + fixed_pairs.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made simulator over 4 states and a grid of 5 loads whose best load per state
    /// is known: reward = 10 - (load - peak(state))^2, peaks 0, 3, 3, 4.
    #[test]
    fn oracle_and_best_fixed_action_on_a_known_simulator() {
        let peaks = [0.0, 3.0, 3.0, 4.0];
        let simulator = |state: usize, load: usize| 10.0 - (load as f64 - peaks[state]).powi(2);
        let rewards: Vec<Vec<f64>> = (0..4).map(|s| (0..5).map(|a| simulator(s, a)).collect()).collect();
        assert_eq!(oracle_choices(&rewards), vec![0, 3, 3, 4]);
        // Totals by load: 0 -> 10+1+1-6 = 6, 1 -> 9+6+6+1 = 22, 2 -> 6+9+9+6 = 30,
        // 3 -> 1+10+10+9 = 30, 4 -> -6+9+9+10 = 22: loads 2 and 3 tie, the first wins.
        assert_eq!(best_fixed_choice(&rewards), 2);
        // Break the tie: the fixed action follows the totals, not the per-state optimum.
        let mut shifted = rewards.clone();
        shifted[0][3] += 0.5;
        assert_eq!(best_fixed_choice(&shifted), 3);
        assert_eq!(oracle_choices(&shifted), vec![0, 3, 3, 4]);
    }

    #[test]
    fn empty_and_single_candidate_grids() {
        assert_eq!(oracle_choices(&[]), Vec::<usize>::new());
        assert_eq!(best_fixed_choice(&[]), 0);
        assert_eq!(best_fixed_choice(&[vec![1.0], vec![2.0]]), 0);
    }
}

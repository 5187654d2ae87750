//! One PPO agent: its actor-critic, its Adam, its rollout and its random stream, and the
//! update (stable-baselines3's `PPO.train`) on a complete rollout.

use std::collections::HashMap;

use candle_core::{Device, Tensor, TensorId, Var, D};
use candle_nn::{Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::net::ActorCritic;
use super::rollout::{gae, End, Rollout};
use super::PpoConfig;
use crate::agent::shared::argmax;
use crate::error::{Error, Result};
use crate::nn::candle_error;
use crate::optim::FusedAdamW;

/// Sums over the minibatches of the updates since the last report, and the number of
/// updates (complete rollouts learnt from).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub policy_loss: f64,
    pub value_loss: f64,
    pub entropy: f64,
    pub approx_kl: f64,
    pub clip_fraction: f64,
    pub minibatches: usize,
    pub updates: usize,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        self.policy_loss += other.policy_loss;
        self.value_loss += other.value_loss;
        self.entropy += other.entropy;
        self.approx_kl += other.approx_kl;
        self.clip_fraction += other.clip_fraction;
        self.minibatches += other.minibatches;
        self.updates += other.updates;
    }
}

pub struct Agent {
    pub(super) net: ActorCritic,
    /// The network's variables in name order (the optimiser's, the checkpoint's order).
    pub(super) vars: Vec<(String, Var)>,
    pub(super) adam: FusedAdamW,
    pub(super) rollout: Rollout,
    pub(super) rng: ChaCha8Rng,
}

/// What an update needs of a rollout besides the rollout itself, per transition.
struct Targets {
    old_values: Vec<f32>,
    advantages: Vec<f64>,
    returns: Vec<f32>,
}

impl Agent {
    /// An agent seeing `obs_dim` values and choosing among `actions`: its generator is
    /// seeded with `seed`, and the first number it draws seeds the weights.
    pub fn new(cfg: &PpoConfig, obs_dim: usize, actions: usize, seed: u64) -> Result<Agent> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let net = ActorCritic::new(obs_dim, actions, &cfg.arch())?;
        net.init_orthogonal(rng.random())?;
        let vars = net.sorted_vars();
        let params = ParamsAdamW { lr: cfg.learning_rate, weight_decay: 0.0, eps: cfg.adam_eps, ..Default::default() };
        let adam = FusedAdamW::new(vars.iter().map(|(_, v)| v.clone()).collect(), params).map_err(candle_error)?;
        Ok(Agent { net, vars, adam, rollout: Rollout::new(obs_dim, cfg.n_steps), rng })
    }

    fn check(&self, observation: &[f32]) -> Result<()> {
        if observation.len() != self.net.input() {
            return Err(Error::config(format!("ppo: an observation of {} values for an agent of {}", observation.len(), self.net.input())));
        }
        Ok(())
    }

    /// The policy's logits for one observation.
    fn logits(&self, observation: &[f32]) -> Result<Vec<f32>> {
        self.check(observation)?;
        let x = Tensor::from_slice(observation, (1, observation.len()), &Device::Cpu).map_err(candle_error)?;
        self.net.logits(&x).and_then(|l| l.flatten_all()).and_then(|l| l.to_vec1::<f32>()).map_err(candle_error)
    }

    /// The most probable action (the first on ties).
    pub fn greedy(&self, observation: &[f32]) -> Result<usize> {
        Ok(argmax(&self.logits(observation)?))
    }

    /// An action drawn from the policy, and its log-probability.
    pub fn sample(&mut self, observation: &[f32]) -> Result<(usize, f32)> {
        let logits = self.logits(observation)?;
        let max = logits.iter().fold(f64::NEG_INFINITY, |m, &l| m.max(f64::from(l)));
        let weights: Vec<f64> = logits.iter().map(|&l| (f64::from(l) - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        let u = self.rng.random::<f64>() * total;
        let mut action = logits.len() - 1;
        let mut sum = 0.0;
        for (a, w) in weights.iter().enumerate() {
            sum += w;
            if u < sum {
                action = a;
                break;
            }
        }
        let log_prob = f64::from(logits[action]) - max - total.ln();
        Ok((action, log_prob as f32))
    }

    /// Acts on `observation`: first learns from the rollout if it is complete (with
    /// `observation` as the state after its last transition), then draws an action.
    pub fn step(&mut self, cfg: &PpoConfig, observation: &[f32]) -> Result<(usize, f32, Option<Stats>)> {
        self.check(observation)?;
        let stats = if self.rollout.len() >= cfg.n_steps { Some(self.update(cfg, observation)?) } else { None };
        let (action, log_prob) = self.sample(observation)?;
        Ok((action, log_prob, stats))
    }

    pub fn remember(&mut self, observation: &[f32], action: usize, log_prob: f32, reward: f64, end: End) {
        self.rollout.push(observation, action, log_prob, reward, end);
    }

    /// The values, advantages and returns of the rollout, `next` being the observation
    /// after its last transition.
    fn targets(&self, cfg: &PpoConfig, next: &[f32]) -> Result<Targets> {
        let r = &self.rollout;
        let values = self.net.values_of(&r.observations)?;
        let truncated = self.net.values_of(&r.truncated_observations())?;
        let bootstrap = if matches!(r.ends.last(), Some(End::Continues)) { self.net.values_of(next)?[0] } else { 0.0 };
        let (advantages, returns) = gae(r, &values, &truncated, bootstrap, cfg.gamma, cfg.gae_lambda);
        Ok(Targets {
            old_values: values.iter().map(|&v| v as f32).collect(),
            advantages,
            returns: returns.into_iter().map(|v| v as f32).collect(),
        })
    }

    /// PPO's update on the complete rollout: `n_epochs` passes, each over the rollout in a
    /// fresh random order in minibatches of `batch_size` (the last one shorter if it does
    /// not divide), one Adam step per minibatch; then the rollout is emptied.
    pub fn update(&mut self, cfg: &PpoConfig, next: &[f32]) -> Result<Stats> {
        let targets = self.targets(cfg, next)?;
        let mut stats = Stats { updates: 1, ..Stats::default() };
        let mut order: Vec<usize> = (0..self.rollout.len()).collect();
        for _ in 0..cfg.n_epochs {
            order.shuffle(&mut self.rng);
            for batch in order.chunks(cfg.batch_size) {
                let s = minibatch_step(cfg, &self.net, &self.vars, &mut self.adam, &self.rollout, &targets, batch).map_err(candle_error)?;
                stats.add(&s);
            }
        }
        self.rollout.clear();
        Ok(stats)
    }
}

/// log(softmax(x)) along the last dimension; the shift by the row maximum is a constant
/// for the gradient (it cancels), so it is detached.
fn log_softmax(x: &Tensor) -> candle_core::Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)
}

/// (a - mean) / (std + 1e-8) with the sample standard deviation (n - 1), as SB3 (torch's `std`).
fn normalise(a: &mut [f64]) {
    let n = a.len() as f64;
    let mean = a.iter().sum::<f64>() / n;
    let std = (a.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)).sqrt();
    a.iter_mut().for_each(|x| *x = (*x - mean) / (std + 1e-8));
}

/// The gradients scaled so that their global norm is at most `max_norm`, as torch's
/// `clip_grad_norm_` (coefficient max_norm / (norm + 1e-6), applied when below 1).
/// Returns them by variable id, and the norm before clipping.
pub(super) fn clip_gradients(grads: Vec<(TensorId, Tensor)>, max_norm: f64) -> candle_core::Result<(HashMap<TensorId, Tensor>, f64)> {
    let mut squares = 0f64;
    for (_, g) in &grads {
        squares += g.flatten_all()?.to_vec1::<f32>()?.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
    }
    let norm = squares.sqrt();
    let coef = max_norm / (norm + 1e-6);
    let grads = if coef < 1.0 {
        grads.into_iter().map(|(id, g)| Ok((id, (g * coef)?))).collect::<candle_core::Result<_>>()?
    } else {
        grads.into_iter().collect()
    };
    Ok((grads, norm))
}

/// One gradient step on the transitions `batch` of the rollout: SB3's loss
/// `policy_loss + ent_coef * entropy_loss + vf_coef * value_loss`, gradients clipped to a
/// global norm of `max_grad_norm`, one Adam step.
fn minibatch_step(
    cfg: &PpoConfig,
    net: &ActorCritic,
    vars: &[(String, Var)],
    adam: &mut FusedAdamW,
    rollout: &Rollout,
    targets: &Targets,
    batch: &[usize],
) -> candle_core::Result<Stats> {
    let (b, d, dev) = (batch.len(), rollout.obs_dim(), &Device::Cpu);
    let mut obs = Vec::with_capacity(b * d);
    for &i in batch {
        obs.extend_from_slice(&rollout.observations[i * d..(i + 1) * d]);
    }
    let pick = |v: &[f32]| batch.iter().map(|&i| v[i]).collect::<Vec<f32>>();
    let old_log_probs = pick(&rollout.log_probs);
    let mut advantages: Vec<f64> = batch.iter().map(|&i| targets.advantages[i]).collect();
    // Normalising a single advantage makes no sense (SB3 issue 325).
    if cfg.normalize_advantage && b > 1 {
        normalise(&mut advantages);
    }
    let x = Tensor::from_vec(obs, (b, d), dev)?;
    let actions = Tensor::from_vec(batch.iter().map(|&i| rollout.actions[i]).collect::<Vec<u32>>(), (b, 1), dev)?;
    let old_lp = Tensor::from_slice(&old_log_probs, b, dev)?;
    let adv = Tensor::from_vec(advantages.iter().map(|&a| a as f32).collect::<Vec<f32>>(), b, dev)?;
    let returns = Tensor::from_vec(pick(&targets.returns), b, dev)?;

    let (logits, values) = net.forward(&x)?;
    let log_probs = log_softmax(&logits)?;
    let log_prob = log_probs.gather(&actions, 1)?.squeeze(1)?;
    let ratio = (&log_prob - &old_lp)?.exp()?;
    let clipped = ratio.clamp(1.0 - cfg.clip_range, 1.0 + cfg.clip_range)?;
    let policy_loss = (&ratio * &adv)?.minimum(&(clipped * &adv)?)?.mean_all()?.neg()?;
    let values_pred = match cfg.clip_range_vf {
        None => values,
        Some(c) => {
            let old = Tensor::from_vec(pick(&targets.old_values), b, dev)?;
            (&old + (values - &old)?.clamp(-c, c)?)?
        }
    };
    let value_loss = (&returns - &values_pred)?.sqr()?.mean_all()?;
    // Without an entropy bonus the entropy is only reported: no graph for it.
    let lp = if cfg.ent_coef != 0.0 { log_probs.clone() } else { log_probs.detach() };
    let entropy = (lp.exp()? * &lp)?.sum(1)?.mean_all()?.neg()?;
    let mut loss = policy_loss.clone();
    if cfg.ent_coef != 0.0 {
        loss = (loss - (&entropy * cfg.ent_coef)?)?;
    }
    let loss = (loss + (&value_loss * cfg.vf_coef)?)?;

    let store = loss.backward()?;
    let grads: Vec<(TensorId, Tensor)> = vars.iter().filter_map(|(_, v)| store.get(v).map(|g| (v.id(), g.clone()))).collect();
    let (grads, _) = clip_gradients(grads, cfg.max_grad_norm)?;
    adam.step_with(&grads)?;

    // SB3's diagnostics: approx_kl = mean((r - 1) - log r), clip_fraction = share of |r - 1| > clip.
    let (mut kl, mut clipped_share) = (0.0, 0.0);
    for (new, old) in log_prob.to_vec1::<f32>()?.iter().zip(&old_log_probs) {
        let log_ratio = f64::from(new - old);
        kl += log_ratio.exp() - 1.0 - log_ratio;
        clipped_share += f64::from(u8::from((log_ratio.exp() - 1.0).abs() > cfg.clip_range));
    }
    Ok(Stats {
        policy_loss: f64::from(policy_loss.to_scalar::<f32>()?),
        value_loss: f64::from(value_loss.to_scalar::<f32>()?),
        entropy: f64::from(entropy.to_scalar::<f32>()?),
        approx_kl: kl / b as f64,
        clip_fraction: clipped_share / b as f64,
        minibatches: 1,
        updates: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_are_clipped_to_the_global_norm() {
        let dev = &Device::Cpu;
        let a = Var::new(&[0f32; 2], dev).unwrap();
        let b = Var::new(&[0f32; 1], dev).unwrap();
        let grads = vec![(a.id(), Tensor::new(&[3f32, 0.0], dev).unwrap()), (b.id(), Tensor::new(&[4f32], dev).unwrap())];
        let (clipped, norm) = clip_gradients(grads.clone(), 0.5).unwrap();
        assert!((norm - 5.0).abs() < 1e-12);
        let ga = clipped[&a.id()].to_vec1::<f32>().unwrap();
        let gb = clipped[&b.id()].to_vec1::<f32>().unwrap();
        let new_norm = (ga[0] * ga[0] + gb[0] * gb[0]).sqrt();
        assert!((new_norm - 0.5).abs() < 1e-5, "{new_norm}");
        // Below the bound: untouched.
        let (same, _) = clip_gradients(grads, 10.0).unwrap();
        assert_eq!(same[&b.id()].to_vec1::<f32>().unwrap(), vec![4.0]);
    }

    #[test]
    fn advantages_are_normalised_with_the_sample_std() {
        let mut a = vec![1.0, 2.0, 3.0];
        normalise(&mut a);
        // mean 2, sample std 1.
        assert!((a[0] + 1.0).abs() < 1e-7 && a[1].abs() < 1e-12 && (a[2] - 1.0).abs() < 1e-7, "{a:?}");
    }
}

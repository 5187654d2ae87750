//! DQN (protocol.md section 5), the paper's learner.
//!
//! The agents of one group of the layout (all thread agents, or all call agents, of a run)
//! form a [`Role`] on one [`SharedTrunkNet`]: the shared layer SNet and a private head PNet
//! per agent. One Adam optimiser per role minimises the sum of its agents' losses: PNet n
//! sees only agent n's loss, SNet the sum over agents. [`Dqn`] is the [`Learner`]: one role
//! per group.

mod checkpoint;
pub mod replay;

use std::collections::HashMap;

use candle_core::{Device, Tensor, TensorId};
use candle_nn::{Linear, Optimizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::shared::SharedTrunkNet;
use super::{Clock, Continuation, DiagnosticColumn, Diagnostics, Learner, LearnerSpec};
use crate::dense::{self, Mat};
use crate::env::Layout;
use crate::error::{Error, Result};
use crate::nn::{candle_error, init_uniform_fan_in, Values};
use crate::optim::FusedAdamW;
pub use replay::{Batch, ReplayBuffer, Transition};

/// DQN hyperparameters (protocol.md section 5), per role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DqnConfig {
    /// Width of SNet's output and of PNet's hidden layer.
    pub hidden: usize,
    /// Adam learning rate for single-service agents.
    pub learning_rate: f64,
    /// Adam learning rate for the five-service (`*5`) networks.
    pub learning_rate_multi: f64,
    /// Discount; 0 in the load search, whose next state does not depend on the action.
    pub gamma: f64,
    /// Transitions kept per agent.
    pub buffer_size: usize,
    /// Transitions per agent in one update.
    pub batch_size: usize,
    /// Steps before the first update.
    pub learning_starts: usize,
    /// One update every this many steps.
    pub train_every: usize,
    /// Copy the online networks into the target networks every this many updates.
    pub target_update_every: usize,
    /// Exploration: epsilon goes linearly from `epsilon_start` to `epsilon_end` over the
    /// first `exploration_fraction` of all steps.
    pub epsilon_start: f64,
    pub epsilon_end: f64,
    pub exploration_fraction: f64,
}

impl Default for DqnConfig {
    fn default() -> Self {
        DqnConfig {
            hidden: 512,
            learning_rate: 5e-5,
            learning_rate_multi: 1e-5,
            gamma: 0.0,
            buffer_size: 10_000,
            batch_size: 32,
            learning_starts: 1_000,
            train_every: 4,
            target_update_every: 250,
            epsilon_start: 1.0,
            epsilon_end: 0.05,
            exploration_fraction: 0.1,
        }
    }
}

impl DqnConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(m));
        if self.hidden == 0 || self.batch_size == 0 || self.buffer_size < self.batch_size || self.train_every == 0 {
            return bad("dqn: hidden, batch_size, train_every must be >= 1 and buffer_size >= batch_size".into());
        }
        if self.target_update_every == 0 {
            return bad("dqn.target_update_every must be >= 1".into());
        }
        for (name, v) in [("learning_rate", self.learning_rate), ("learning_rate_multi", self.learning_rate_multi)] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("dqn.{name} must be > 0, but is {v}"));
            }
        }
        if !(0.0..=1.0).contains(&self.gamma) {
            return bad(format!("dqn.gamma must be in [0, 1], but is {}", self.gamma));
        }
        if !(0.0..=1.0).contains(&self.epsilon_end) || !(0.0..=1.0).contains(&self.epsilon_start) {
            return bad("dqn.epsilon_start and epsilon_end must be in [0, 1]".into());
        }
        if !(self.exploration_fraction > 0.0 && self.exploration_fraction <= 1.0) {
            return bad(format!("dqn.exploration_fraction must be in (0, 1], but is {}", self.exploration_fraction));
        }
        Ok(())
    }
}

/// Linear schedule from `start` to `end` over `duration` steps, then `end`.
pub fn linear_schedule(start: f64, end: f64, duration: usize, step: usize) -> f64 {
    if step >= duration {
        return end;
    }
    start + (step as f64 / duration as f64) * (end - start)
}

/// The agents of one role: networks, target networks, optimiser, replay buffers.
pub struct Role {
    cfg: DqnConfig,
    online: SharedTrunkNet,
    target: SharedTrunkNet,
    adam: FusedAdamW,
    buffers: Vec<ReplayBuffer>,
    state_dim: usize,
    actions: Vec<usize>,
    updates: usize,
    rng: ChaCha8Rng,
    /// The gradient of PNet n's hidden weight (hidden x hidden), allocated once and
    /// rewritten by every update (see `dense::overwrite`).
    hidden_grads: Vec<Tensor>,
}

impl Role {
    /// `actions[n]` is the action count of agent n; every agent sees `state_dim` inputs.
    pub fn new(cfg: &DqnConfig, state_dim: usize, actions: &[usize], learning_rate: f64, seed: u64) -> Result<Role> {
        cfg.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let online = SharedTrunkNet::new(state_dim, cfg.hidden, actions)?;
        init_uniform_fan_in(&online.varmap, rng.random())?;
        let target = SharedTrunkNet::new(state_dim, cfg.hidden, actions)?;
        target.copy_from(&online)?;
        let params = candle_nn::ParamsAdamW { lr: learning_rate, weight_decay: 0.0, ..Default::default() };
        let adam = FusedAdamW::new(online.varmap.all_vars(), params).map_err(candle_error)?;
        let hidden_grads =
            online.heads.iter().map(|(fc0, _)| fc0.weight().zeros_like()).collect::<candle_core::Result<_>>().map_err(candle_error)?;
        Ok(Role {
            cfg: cfg.clone(),
            online,
            target,
            adam,
            buffers: actions.iter().map(|_| ReplayBuffer::new(cfg.buffer_size, state_dim)).collect(),
            state_dim,
            actions: actions.to_vec(),
            updates: 0,
            rng,
            hidden_grads,
        })
    }

    pub fn agents(&self) -> usize {
        self.actions.len()
    }

    /// Greedy actions of every agent for one state each (`states[n]` for agent n).
    pub fn greedy(&self, states: &[Vec<f32>]) -> Result<Vec<usize>> {
        self.online.argmax_outputs(states)
    }

    /// Epsilon-greedy actions at global step `step` of `total_steps`.
    pub fn act(&mut self, states: &[Vec<f32>], step: usize, total_steps: usize) -> Result<Vec<usize>> {
        let eps = self.epsilon(step, total_steps);
        let greedy = self.greedy(states)?;
        Ok(greedy
            .into_iter()
            .enumerate()
            .map(|(n, a)| if self.rng.random::<f64>() < eps { self.rng.random_range(0..self.actions[n]) } else { a })
            .collect())
    }

    pub fn epsilon(&self, step: usize, total_steps: usize) -> f64 {
        let duration = (self.cfg.exploration_fraction * total_steps as f64) as usize;
        linear_schedule(self.cfg.epsilon_start, self.cfg.epsilon_end, duration, step)
    }

    pub fn remember(&mut self, n: usize, t: Transition) {
        self.buffers[n].push(t);
    }

    /// After step `step`: one update when due (after `learning_starts`, every `train_every`).
    /// Returns the summed loss of the update, if one was made.
    pub fn maybe_train(&mut self, step: usize) -> Result<Option<f64>> {
        if step < self.cfg.learning_starts || !step.is_multiple_of(self.cfg.train_every) {
            return Ok(None);
        }
        if self.buffers.iter().any(|b| b.len() < self.cfg.batch_size) {
            return Ok(None);
        }
        self.train_step().map(Some)
    }

    /// One gradient step on a batch per agent: loss = sum over agents of the mean squared
    /// error between Q(s, a) and r + gamma * max Q_target(s').
    pub fn train_step(&mut self) -> Result<f64> {
        let batches: Vec<(usize, Batch)> =
            (0..self.agents()).map(|n| (n, self.buffers[n].sample(self.cfg.batch_size, &mut self.rng))).collect();
        let (grads, loss) = self.gradients(&batches).map_err(candle_error)?;
        self.adam.step_with(&grads).map_err(candle_error)?;
        self.updates += 1;
        if self.updates.is_multiple_of(self.cfg.target_update_every) {
            self.target.copy_from(&self.online)?;
        }
        Ok(loss)
    }

    /// The targets r + gamma * max Q_target(s') of agent `n`'s batch (r alone after a terminal state).
    fn targets(&self, n: usize, batch: &Batch) -> candle_core::Result<Vec<f32>> {
        let mut y = batch.rewards.clone();
        if self.cfg.gamma > 0.0 {
            let s2 = Tensor::from_slice(&batch.next_states, (y.len(), self.state_dim), &Device::Cpu)?;
            let next = self.target.forward(n, &s2)?.max(1)?.to_vec1::<f32>()?;
            for ((yi, qi), done) in y.iter_mut().zip(next).zip(&batch.dones) {
                if !done {
                    *yi += self.cfg.gamma as f32 * qi;
                }
            }
        }
        Ok(y)
    }

    /// The summed loss over `(agent, batch)` pairs and its gradient for every variable,
    /// by variable id. Derived by hand rather than by candle's autograd: for these three
    /// layers it is the same matrix products without the zero-filled accumulators and
    /// transposed copies of the general backward pass, about a third of an update's time
    /// (perf). A test checks it against autograd.
    ///
    /// The agents' shares run in parallel on the current rayon pool (each product on one
    /// thread); they are summed in agent order afterwards, so the result is bit for bit
    /// the same on any number of threads (tested). The PNets' hidden-weight gradients are
    /// the role's reused buffers: the next call overwrites them.
    fn gradients(&self, batches: &[(usize, Batch)]) -> candle_core::Result<(HashMap<TensorId, Tensor>, f64)> {
        let shares: Vec<AgentShare> =
            batches.par_iter().map(|(n, batch)| self.agent_share(*n, batch)).collect::<candle_core::Result<_>>()?;
        let net = &self.online;
        let (w0, b0) = (net.trunk.weight(), bias(&net.trunk));
        let mut grads = HashMap::new();
        let mut snet: Option<(Vec<f32>, Vec<f32>)> = None;
        let mut total = 0.0f64;
        for share in shares {
            total = share.loss_terms.iter().fold(total, |t, x| t + x);
            for (var, g) in share.pnet {
                grads.insert(var.id(), Tensor::from_vec(g, var.shape(), var.device())?);
            }
            let fc0 = net.heads[share.agent].0.weight();
            grads.insert(fc0.id(), self.hidden_grads[share.agent].clone());
            match &mut snet {
                None => snet = Some((share.snet_weight, share.snet_bias)),
                Some((gw, gb)) => {
                    dense::add_assign(gw, &share.snet_weight);
                    dense::add_assign(gb, &share.snet_bias);
                }
            }
        }
        if let Some((gw, gb)) = snet {
            grads.insert(w0.id(), Tensor::from_vec(gw, w0.shape(), w0.device())?);
            grads.insert(b0.id(), Tensor::from_vec(gb, b0.shape(), b0.device())?);
        }
        Ok((grads, total))
    }

    /// Agent `n`'s loss on its batch and the gradients it sends: PNet n's four and its
    /// part of SNet's two.
    fn agent_share(&self, n: usize, batch: &Batch) -> candle_core::Result<AgentShare> {
        let net = &self.online;
        let (fc0, fc1) = &net.heads[n];
        let (w0, b0) = (Values::of(net.trunk.weight())?, Values::of(bias(&net.trunk))?);
        let (w1, b1) = (Values::of(fc0.weight())?, Values::of(bias(fc0))?);
        let (w2, b2) = (Values::of(fc1.weight())?, Values::of(bias(fc1))?);
        let (w1, w2) = (w1.get(), w2.get());
        let (rows, hidden, actions) = (batch.rewards.len(), self.cfg.hidden, self.actions[n]);
        let s = Mat::new(&batch.states, rows, self.state_dim);
        // Forward, keeping the activations.
        let h1 = dense::linear(s, w0.get(), b0.get(), true);
        let h2 = dense::linear(Mat::new(&h1, rows, hidden), w1, b1.get(), true);
        let q = dense::linear(Mat::new(&h2, rows, hidden), w2, b2.get(), false);
        // d(mean (q[i, a_i] - y_i)^2) / dq: nonzero only at the chosen actions.
        let y = self.targets(n, batch)?;
        let mut dq = vec![0f32; rows * actions];
        let mut loss_terms = Vec::with_capacity(rows);
        for (i, (&yi, &action)) in y.iter().zip(&batch.actions).enumerate() {
            let a = i * actions + action as usize;
            let diff = q[a] - yi;
            loss_terms.push(f64::from(diff * diff) / rows as f64);
            dq[a] = 2.0 * diff / rows as f32;
        }
        // Backward through PNet n, then SNet. The two large products of the hidden layer
        // (towards SNet, and fc0's weight gradient) are independent: run them in parallel.
        let dq_mat = Mat::new(&dq, rows, actions);
        let dh2 = dense::relu_backward(dense::matmul(dq_mat, Mat::new(w2, actions, hidden)), &h2);
        let dh2_mat = Mat::new(&dh2, rows, hidden);
        let fc0_grad = &self.hidden_grads[n];
        let (dh1, filled) = rayon::join(
            || dense::relu_backward(dense::matmul(dh2_mat, Mat::new(w1, hidden, hidden)), &h1),
            || dense::overwrite(fc0_grad, |g| dense::matmul_into(g, dh2_mat.t(), Mat::new(&h1, rows, hidden))),
        );
        filled?;
        let pnet = [
            (fc1.weight().clone(), dense::matmul(dq_mat.t(), Mat::new(&h2, rows, hidden))),
            (bias(fc1).clone(), dense::column_sums(&dq, actions)),
            (bias(fc0).clone(), dense::column_sums(&dh2, hidden)),
        ];
        let snet_weight = dense::matmul(Mat::new(&dh1, rows, hidden).t(), s);
        Ok(AgentShare { agent: n, pnet, snet_weight, snet_bias: dense::column_sums(&dh1, hidden), loss_terms })
    }

    /// A batch per agent in `agents`, drawn from their buffers (for tests).
    #[cfg(test)]
    fn sample_batches(&mut self, agents: &[usize]) -> Vec<(usize, Batch)> {
        agents.iter().map(|&n| (n, self.buffers[n].sample(self.cfg.batch_size, &mut self.rng))).collect()
    }

    /// The same loss and gradients as [`Role::gradients`], by candle's autograd (for tests).
    #[cfg(test)]
    fn autograd_gradients(&self, batches: &[(usize, Batch)]) -> candle_core::Result<(HashMap<TensorId, Tensor>, f64)> {
        let dev = &Device::Cpu;
        let mut total: Option<Tensor> = None;
        for (n, batch) in batches {
            let b = batch.rewards.len();
            let s = Tensor::from_slice(&batch.states, (b, self.state_dim), dev)?;
            let a = Tensor::from_slice(&batch.actions, (b, 1), dev)?;
            let y = Tensor::from_vec(self.targets(*n, batch)?, b, dev)?;
            let q = self.online.forward(*n, &s)?.gather(&a, 1)?.squeeze(1)?;
            let l = candle_nn::loss::mse(&q, &y)?;
            total = Some(match total {
                None => l,
                Some(t) => (t + l)?,
            });
        }
        let total = total.expect("some batch");
        let store = total.backward()?;
        let grads = self.online.sorted_vars().into_iter().filter_map(|(_, v)| store.get(&v).map(|g| (v.id(), g.clone()))).collect();
        Ok((grads, f64::from(total.to_scalar::<f32>()?)))
    }

    /// Squared gradient norm of every variable by name; 0 for a variable without one.
    #[cfg(test)]
    fn gradient_norms(&self, grads: &HashMap<TensorId, Tensor>) -> Vec<(String, f32)> {
        self.online
            .sorted_vars()
            .into_iter()
            .map(|(k, v)| (k, grads.get(&v.id()).map_or(0.0, |g| g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap())))
            .collect()
    }
}

/// One agent's part of an update (see [`Role::agent_share`]).
struct AgentShare {
    agent: usize,
    /// Gradients of PNet n's variables but its hidden weight's (in `Role::hidden_grads`).
    pnet: [(Tensor, Vec<f32>); 3],
    /// This agent's gradient of SNet's weight and bias, summed over agents by the caller.
    snet_weight: Vec<f32>,
    snet_bias: Vec<f32>,
    /// Per-row terms of the mean squared error, added in row order by the caller.
    loss_terms: Vec<f64>,
}

fn bias(layer: &Linear) -> &Tensor {
    layer.bias().expect("linear layers have a bias")
}

/// An agent's observation and action.
type Acted = (Vec<f32>, usize);
/// An agent's transition without its next state.
type Pending = (Vec<f32>, usize, f32);

/// The DQN learner: one [`Role`] per group of the layout, and each agent's transition
/// waiting for its next observation (its next state).
pub struct Dqn {
    roles: Vec<Role>,
    /// Per group and slot: the last observation and action, until `record` adds the reward.
    acted: Vec<Vec<Option<Acted>>>,
    /// Per group and slot: a recorded (state, action, reward) waiting for its next state.
    pending: Vec<Vec<Option<Pending>>>,
    /// Summed loss and number of updates since the last diagnostics.
    loss_sum: f64,
    updates: usize,
}

impl Dqn {
    /// Completes a waiting transition of agent `slot` of `group` with its next state.
    fn complete(&mut self, group: usize, slot: usize, next_state: &[f32]) {
        if let Some((state, action, reward)) = self.pending[group][slot].take() {
            self.roles[group].remember(slot, Transition { state, action, reward, next_state: next_state.to_vec(), done: false });
        }
    }
}

impl Learner for Dqn {
    fn act(&mut self, group: usize, observations: &[Vec<f32>], clock: Clock) -> Result<Vec<usize>> {
        for (slot, obs) in observations.iter().enumerate() {
            self.complete(group, slot, obs);
        }
        let actions = self.roles[group].act(observations, clock.step, clock.total_steps)?;
        self.acted[group] = observations.iter().cloned().zip(actions.iter().copied()).map(Some).collect();
        Ok(actions)
    }

    fn act_greedy(&self, group: usize, observations: &[Vec<f32>]) -> Result<Vec<usize>> {
        self.roles[group].greedy(observations)
    }

    fn record(&mut self, group: usize, rewards: &[f64], continuation: Continuation) {
        for (slot, &reward) in rewards.iter().enumerate() {
            let Some((state, action)) = self.acted[group][slot].take() else { continue };
            match continuation {
                Continuation::Continues => self.pending[group][slot] = Some((state, action, reward as f32)),
                // The target of a terminal transition is its reward alone (its next state is unused).
                Continuation::Terminated => {
                    let next_state = state.clone();
                    self.roles[group].remember(slot, Transition { state, action, reward: reward as f32, next_state, done: true });
                }
                Continuation::Truncated(next) => {
                    let next_state = next[slot].clone();
                    self.roles[group].remember(slot, Transition { state, action, reward: reward as f32, next_state, done: false });
                }
            }
        }
    }

    /// One update per role when due, in group order.
    fn train(&mut self, clock: Clock) -> Result<()> {
        for role in &mut self.roles {
            if let Some(loss) = role.maybe_train(clock.step)? {
                self.loss_sum += loss;
                self.updates += 1;
            }
        }
        Ok(())
    }

    /// The mean loss of the updates since the last call (NaN without one) and the first
    /// group's epsilon at `clock`.
    fn diagnostics(&mut self, clock: Clock) -> Diagnostics {
        let loss = if self.updates > 0 { self.loss_sum / self.updates as f64 } else { f64::NAN };
        (self.loss_sum, self.updates) = (0.0, 0);
        let epsilon = self.roles.first().map_or(f64::NAN, |r| r.epsilon(clock.step, clock.total_steps));
        Diagnostics::from([("loss", loss), ("epsilon", epsilon)])
    }

    fn save(&self) -> Result<Vec<u8>> {
        self.save_state()
    }

    fn restore(&mut self, saved: &[u8]) -> Result<()> {
        self.restore_state(saved)
    }
}

impl LearnerSpec for DqnConfig {
    /// One role per group, seeded in group order; the five-service learning rate when the
    /// layout has several slots.
    fn build(&self, layout: &Layout, rng: &mut ChaCha8Rng) -> Result<Box<dyn Learner>> {
        let lr = if layout.slots > 1 { self.learning_rate_multi } else { self.learning_rate };
        let roles = layout
            .groups
            .iter()
            .map(|g| Role::new(self, g.observation, &vec![g.actions; layout.slots], lr, rng.random()))
            .collect::<Result<Vec<Role>>>()?;
        Ok(Box::new(Dqn {
            acted: roles.iter().map(|_| vec![None; layout.slots]).collect(),
            pending: roles.iter().map(|_| vec![None; layout.slots]).collect(),
            roles,
            loss_sum: 0.0,
            updates: 0,
        }))
    }

    fn diagnostic_columns(&self) -> &'static [DiagnosticColumn] {
        &[DiagnosticColumn { name: "loss", decimals: 5 }, DiagnosticColumn { name: "epsilon", decimals: 4 }]
    }

    fn update_schedule(&self) -> (usize, usize) {
        (self.learning_starts, self.train_every)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsilon_schedule_is_linear_then_flat() {
        assert_eq!(linear_schedule(1.0, 0.05, 100, 0), 1.0);
        assert!((linear_schedule(1.0, 0.05, 100, 50) - 0.525).abs() < 1e-12);
        assert_eq!(linear_schedule(1.0, 0.05, 100, 100), 0.05);
        assert_eq!(linear_schedule(1.0, 0.05, 100, 5000), 0.05);
    }

    /// A 4-armed bandit with a context: arm 2 pays 1, the others 0.2. The agent must learn
    /// to pick arm 2 for every state.
    #[test]
    fn dqn_learns_the_best_arm_of_a_bandit() {
        let cfg = DqnConfig { hidden: 32, learning_rate: 3e-3, learning_starts: 64, train_every: 1, ..Default::default() };
        let mut role = Role::new(&cfg, 3, &[4], cfg.learning_rate, 1).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let total = 1500;
        for step in 0..total {
            let s: Vec<f32> = (0..3).map(|_| rng.random_range(-1.0..1.0)).collect();
            let a = role.act(std::slice::from_ref(&s), step, total).unwrap()[0];
            let r = if a == 2 { 1.0 } else { 0.2 };
            role.remember(0, Transition { state: s.clone(), action: a, reward: r, next_state: s, done: false });
            role.maybe_train(step).unwrap();
        }
        for _ in 0..20 {
            let s: Vec<f32> = (0..3).map(|_| rng.random_range(-1.0..1.0)).collect();
            assert_eq!(role.greedy(&[s]).unwrap(), vec![2]);
        }
    }

    #[test]
    fn snet_gets_gradient_from_every_agent_pnet_only_from_its_own() {
        let cfg = DqnConfig { hidden: 16, batch_size: 8, ..Default::default() };
        let mut role = Role::new(&cfg, 4, &[3, 3, 3], 1e-3, 5).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for n in 0..3 {
            for _ in 0..20 {
                let s: Vec<f32> = (0..4).map(|_| rng.random_range(-1.0..1.0)).collect();
                role.remember(
                    n,
                    Transition { state: s.clone(), action: rng.random_range(0..3), reward: rng.random(), next_state: s, done: false },
                );
            }
        }
        // Loss of agent 1 alone: SNet and PNet 1 move, PNets 0 and 2 do not.
        let batches = role.sample_batches(&[1]);
        let (grads, _) = role.gradients(&batches).unwrap();
        for (name, norm) in role.gradient_norms(&grads) {
            let expect = name.starts_with("snet") || name.starts_with("pnet1.");
            assert_eq!(norm > 0.0, expect, "{name}: {norm}");
        }
        // Summed losses of all agents: every variable moves.
        let batches = role.sample_batches(&[0, 1, 2]);
        let (grads, _) = role.gradients(&batches).unwrap();
        let all = role.gradient_norms(&grads);
        assert!(all.iter().all(|(_, n)| *n > 0.0), "{all:?}");
    }

    /// The hand-derived backward pass agrees with candle's autograd, loss and every
    /// gradient, for a five-agent role and a discounted target.
    #[test]
    fn hand_derived_gradients_match_autograd() {
        let cfg = DqnConfig { hidden: 24, batch_size: 16, gamma: 0.9, ..Default::default() };
        let mut role = Role::new(&cfg, 6, &[4, 7, 4, 3, 5], 1e-3, 11).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for n in 0..5 {
            for _ in 0..40 {
                let s: Vec<f32> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
                let s2: Vec<f32> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
                let t = Transition {
                    state: s,
                    action: rng.random_range(0..role.actions[n]),
                    reward: rng.random(),
                    next_state: s2,
                    done: false,
                };
                role.remember(n, t);
            }
        }
        let batches = role.sample_batches(&[0, 1, 2, 3, 4]);
        let (hand, hand_loss) = role.gradients(&batches).unwrap();
        let (auto, auto_loss) = role.autograd_gradients(&batches).unwrap();
        assert!((hand_loss - auto_loss).abs() < 1e-5 * auto_loss.max(1.0), "{hand_loss} vs {auto_loss}");
        assert_eq!(hand.len(), auto.len());
        for (name, var) in role.online.sorted_vars() {
            let h = hand[&var.id()].flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let a = auto[&var.id()].flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
            for (x, y) in h.iter().zip(&a) {
                assert!((x - y).abs() <= 1e-5 * scale, "{name}: {x} vs {y}");
            }
        }
    }

    /// Agents' shares, the two backward products and Adam's chunks run in parallel, but
    /// are summed in a fixed order: training on one thread or on two gives the same bits.
    #[test]
    fn same_training_on_one_thread_and_on_two() {
        let cfg = DqnConfig { hidden: 48, batch_size: 16, learning_starts: 16, train_every: 1, ..Default::default() };
        let train = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut role = Role::new(&cfg, 6, &[4, 7, 4, 3, 5], 1e-3, 11).unwrap();
                let mut rng = ChaCha8Rng::seed_from_u64(3);
                let mut trace = Vec::new();
                for step in 0..80 {
                    let states: Vec<Vec<f32>> = (0..5).map(|_| (0..6).map(|_| rng.random_range(-1.0..1.0)).collect()).collect();
                    let actions = role.act(&states, step, 80).unwrap();
                    trace.extend(actions.iter().map(|&a| a as f64));
                    for (n, (s, a)) in states.into_iter().zip(actions).enumerate() {
                        role.remember(n, Transition { state: s.clone(), action: a, reward: rng.random(), next_state: s, done: false });
                    }
                    trace.extend(role.maybe_train(step).unwrap());
                }
                for (_, var) in role.online.sorted_vars() {
                    trace.extend(var.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f64::from));
                }
                trace.into_iter().map(f64::to_bits).collect::<Vec<u64>>()
            })
        };
        let one = train(1);
        assert!(one == train(2), "training differs between one and two threads");
    }

    #[test]
    fn same_seed_same_networks() {
        let cfg = DqnConfig { hidden: 8, ..Default::default() };
        let a = Role::new(&cfg, 3, &[5], 1e-3, 4).unwrap();
        let b = Role::new(&cfg, 3, &[5], 1e-3, 4).unwrap();
        let s = [vec![0.1f32, -0.4, 0.9]];
        let qa = a.online.forward(0, &Tensor::from_vec(s[0].clone(), (1, 3), &Device::Cpu).unwrap()).unwrap().to_vec2::<f32>().unwrap();
        let qb = b.online.forward(0, &Tensor::from_vec(s[0].clone(), (1, 3), &Device::Cpu).unwrap()).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(qa, qb);
    }
}

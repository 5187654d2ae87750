//! DQN's checkpoints: everything a [`Dqn`] needs to go on exactly where it stopped.
//!
//! Per role, the online and target networks' values by variable name, Adam's step count and
//! moments in the same order, the replay buffers, the update count and the random stream;
//! and the transitions waiting for their next state. What is rebuilt every step (the
//! gradient buffers) and what the training loop empties every epoch (the loss sums, the
//! actions waiting for their rewards) is not saved.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Dqn, Pending, ReplayBuffer, Role};
use crate::agent::shared::SharedTrunkNet;
use crate::error::{Error, Result};
use crate::nn::{candle_error, Values};

#[derive(Serialize, Deserialize)]
struct RoleState {
    /// (name, values) of every variable, in name order.
    online: Vec<(String, Vec<f32>)>,
    target: Vec<(String, Vec<f32>)>,
    adam_steps: usize,
    /// Adam's (first, second) moments of the variables of `online`, in the same order.
    moments: Vec<(Vec<f32>, Vec<f32>)>,
    buffers: Vec<ReplayBuffer>,
    updates: usize,
    rng: ChaCha8Rng,
}

#[derive(Serialize, Deserialize)]
struct DqnState {
    roles: Vec<RoleState>,
    pending: Vec<Vec<Option<Pending>>>,
}

fn values(net: &SharedTrunkNet) -> Result<Vec<(String, Vec<f32>)>> {
    net.sorted_vars().into_iter().map(|(name, var)| Ok((name, Values::of(var.as_tensor()).map_err(candle_error)?.get().to_vec()))).collect()
}

fn set_values(net: &SharedTrunkNet, saved: Vec<(String, Vec<f32>)>) -> Result<()> {
    let vars = net.sorted_vars();
    if vars.len() != saved.len() {
        return Err(Error::config(format!("the network has {} variables, the checkpoint {}", vars.len(), saved.len())));
    }
    for ((name, var), (saved_name, values)) in vars.into_iter().zip(saved) {
        if name != saved_name || var.elem_count() != values.len() {
            return Err(Error::config(format!("variable {name} does not match the checkpoint's {saved_name}")));
        }
        crate::nn::restore_var(&name, &var, values)?;
    }
    Ok(())
}

impl Role {
    fn state(&self) -> Result<RoleState> {
        let moments = self
            .online
            .sorted_vars()
            .iter()
            .map(|(name, var)| {
                let (m, v) = self.adam.moments(var).ok_or_else(|| Error::config(format!("no Adam moments for {name}")))?;
                Ok((m.to_vec(), v.to_vec()))
            })
            .collect::<Result<_>>()?;
        Ok(RoleState {
            online: values(&self.online)?,
            target: values(&self.target)?,
            adam_steps: self.adam.steps(),
            moments,
            buffers: self.buffers.clone(),
            updates: self.updates,
            rng: self.rng.clone(),
        })
    }

    fn restore(&mut self, s: RoleState) -> Result<()> {
        set_values(&self.online, s.online)?;
        set_values(&self.target, s.target)?;
        let vars = self.online.sorted_vars();
        if vars.len() != s.moments.len() {
            return Err(Error::config("Adam's moments do not match the network".to_string()));
        }
        for ((name, var), (m, v)) in vars.iter().zip(&s.moments) {
            if !self.adam.restore(s.adam_steps, var, m, v) {
                return Err(Error::config(format!("Adam's moments of {name} do not match the network")));
            }
        }
        if s.buffers.len() != self.buffers.len() || s.buffers.iter().zip(&self.buffers).any(|(a, b)| !a.same_shape(b)) {
            return Err(Error::config("the replay buffers do not match this configuration".to_string()));
        }
        self.buffers = s.buffers;
        self.updates = s.updates;
        self.rng = s.rng;
        Ok(())
    }
}

impl Dqn {
    pub(super) fn save_state(&self) -> Result<Vec<u8>> {
        let state = DqnState { roles: self.roles.iter().map(Role::state).collect::<Result<_>>()?, pending: self.pending.clone() };
        let mut out = Vec::new();
        ciborium::into_writer(&state, &mut out).map_err(|e| Error::config(format!("saving DQN: {e}")))?;
        Ok(out)
    }

    pub(super) fn restore_state(&mut self, saved: &[u8]) -> Result<()> {
        let state: DqnState = ciborium::from_reader(saved).map_err(|e| Error::config(format!("reading DQN: {e}")))?;
        if state.roles.len() != self.roles.len() || state.pending.len() != self.pending.len() {
            return Err(Error::config("the checkpoint has other roles than this configuration".to_string()));
        }
        for (role, s) in self.roles.iter_mut().zip(state.roles) {
            role.restore(s)?;
        }
        self.pending = state.pending;
        Ok(())
    }
}

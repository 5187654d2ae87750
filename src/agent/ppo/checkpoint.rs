//! PPO's checkpoints: everything a [`Ppo`] needs to go on exactly where it stopped.
//!
//! Per agent, the network's values by variable name, Adam's step count and moments in the
//! same order, the rollout collected so far and the random stream; and the learner's
//! actions waiting for their rewards and its diagnostics since the last report (both empty
//! between the training loop's epochs, saved so that a checkpoint taken anywhere resumes
//! bit for bit).

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::agent::{Agent, Stats};
use super::rollout::Rollout;
use super::{Acted, Ppo};
use crate::error::{Error, Result};
use crate::nn::{candle_error, Values};

#[derive(Serialize, Deserialize)]
struct AgentState {
    /// (name, values) of every variable, in name order.
    vars: Vec<(String, Vec<f32>)>,
    adam_steps: usize,
    /// Adam's (first, second) moments of the variables of `vars`, in the same order.
    moments: Vec<(Vec<f32>, Vec<f32>)>,
    rollout: Rollout,
    rng: ChaCha8Rng,
}

#[derive(Serialize, Deserialize)]
struct PpoState {
    /// Per group, per slot.
    agents: Vec<Vec<AgentState>>,
    acted: Vec<Vec<Option<Acted>>>,
    stats: Stats,
}

impl Agent {
    fn state(&self) -> Result<AgentState> {
        let mut vars = Vec::with_capacity(self.vars.len());
        let mut moments = Vec::with_capacity(self.vars.len());
        for (name, var) in &self.vars {
            vars.push((name.clone(), Values::of(var.as_tensor()).map_err(candle_error)?.get().to_vec()));
            let (m, v) = self.adam.moments(var).ok_or_else(|| Error::config(format!("no Adam moments for {name}")))?;
            moments.push((m.to_vec(), v.to_vec()));
        }
        Ok(AgentState { vars, adam_steps: self.adam.steps(), moments, rollout: self.rollout.clone(), rng: self.rng.clone() })
    }

    fn restore(&mut self, s: AgentState) -> Result<()> {
        if s.vars.len() != self.vars.len() || s.moments.len() != self.vars.len() {
            return Err(Error::config(format!("the network has {} variables, the checkpoint {}", self.vars.len(), s.vars.len())));
        }
        if !s.rollout.is_consistent(self.rollout.obs_dim()) {
            return Err(Error::config("the rollout does not match this configuration".to_string()));
        }
        for (((name, var), (saved_name, values)), (m, v)) in self.vars.iter().zip(s.vars).zip(&s.moments) {
            if *name != saved_name || var.elem_count() != values.len() {
                return Err(Error::config(format!("variable {name} does not match the checkpoint's {saved_name}")));
            }
            crate::nn::restore_var(name, var, values)?;
            if !self.adam.restore(s.adam_steps, var, m, v) {
                return Err(Error::config(format!("Adam's moments of {name} do not match the network")));
            }
        }
        self.rollout = s.rollout;
        self.rng = s.rng;
        Ok(())
    }
}

impl Ppo {
    pub(super) fn save_state(&self) -> Result<Vec<u8>> {
        let agents = self.agents.iter().map(|group| group.iter().map(Agent::state).collect::<Result<_>>()).collect::<Result<_>>()?;
        let state = PpoState { agents, acted: self.acted.clone(), stats: self.stats.clone() };
        let mut out = Vec::new();
        ciborium::into_writer(&state, &mut out).map_err(|e| Error::config(format!("saving PPO: {e}")))?;
        Ok(out)
    }

    pub(super) fn restore_state(&mut self, saved: &[u8]) -> Result<()> {
        let state: PpoState = ciborium::from_reader(saved).map_err(|e| Error::config(format!("reading PPO: {e}")))?;
        let shape = |groups: &[Vec<Agent>]| groups.iter().map(Vec::len).collect::<Vec<usize>>();
        if state.agents.iter().map(Vec::len).collect::<Vec<usize>>() != shape(&self.agents)
            || state.acted.iter().map(Vec::len).collect::<Vec<usize>>() != shape(&self.agents)
        {
            return Err(Error::config("the checkpoint has other agents than this configuration".to_string()));
        }
        for (group, saved) in self.agents.iter_mut().zip(state.agents) {
            for (agent, s) in group.iter_mut().zip(saved) {
                agent.restore(s)?;
            }
        }
        self.acted = state.acted;
        self.stats = state.stats;
        Ok(())
    }
}

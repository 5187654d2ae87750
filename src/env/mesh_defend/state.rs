//! The defender's states: a scenario drawn from config, the entry's load level, a spike
//! (magnitude and duration) or none, and a sick replica (slowed by a factor, or failing a
//! share of its requests) of a called service chosen at random, or none.

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::grid::MeshRuleGrid;
use crate::mesh::engine::SickReplica;
use crate::mesh::load::{Arrivals, MeshLoad, Segment};
use crate::mesh::topology::Topology;

/// What the states are drawn from (config `[states]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatesConfig {
    /// The entry's load levels, requests per second (Poisson arrivals).
    pub entry_qps: Vec<f64>,
    /// The share of states with a spike.
    pub spike_share: f64,
    /// A spike's rate, as a multiple of the load level.
    pub spike_magnitude: Vec<f64>,
    /// A spike's length, seconds.
    pub spike_duration_s: Vec<f64>,
    /// The share of states with a sick replica.
    pub sick_share: f64,
    /// A slow sick replica's factor on its sleeps (half the sick replicas are slow).
    pub sick_slowdown: Vec<f64>,
    /// A failing sick replica's share of requests answered 500 (the other half).
    pub sick_fail_share: Vec<f64>,
    /// Seconds at the load level before the spike (or the whole first part of the run).
    pub before_s: f64,
    /// Seconds at the load level after the spike.
    pub after_s: f64,
}

impl Default for StatesConfig {
    fn default() -> Self {
        StatesConfig {
            entry_qps: vec![200.0, 400.0, 600.0],
            spike_share: 0.5,
            spike_magnitude: vec![2.0, 4.0],
            spike_duration_s: vec![5.0, 20.0],
            sick_share: 0.5,
            sick_slowdown: vec![5.0, 20.0],
            sick_fail_share: vec![0.2, 0.5],
            before_s: 30.0,
            after_s: 60.0,
        }
    }
}

/// One state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeshState {
    pub entry_qps: f64,
    /// (magnitude, duration_s).
    pub spike: Option<(f64, f64)>,
    pub sick: Option<SickReplica>,
}

impl StatesConfig {
    /// Checks every setting; the message names it.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let positive = |name: &str, v: &[f64]| match v.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
            _ if v.is_empty() => Err(format!("states.{name} is empty")),
            Some(x) => Err(format!("states.{name}: {x} is not a number > 0")),
            None => Ok(()),
        };
        positive("entry_qps", &self.entry_qps)?;
        positive("spike_magnitude", &self.spike_magnitude)?;
        positive("spike_duration_s", &self.spike_duration_s)?;
        positive("sick_slowdown", &self.sick_slowdown)?;
        positive("before_s", &[self.before_s])?;
        positive("after_s", &[self.after_s])?;
        if self.sick_fail_share.is_empty() || self.sick_fail_share.iter().any(|x| !(0.0..=1.0).contains(x)) {
            return Err("states.sick_fail_share must list shares in [0, 1]".into());
        }
        for (name, v) in [("spike_share", self.spike_share), ("sick_share", self.sick_share)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("states.{name} must be in [0, 1], but is {v}"));
            }
        }
        Ok(())
    }

    /// One state, drawn from `rng`: the same draws in the same order whatever the topology
    /// (the sick service is drawn among the called ones last).
    pub fn draw(&self, topology: &Topology, rng: &mut ChaCha8Rng) -> MeshState {
        let pick = |v: &[f64], rng: &mut ChaCha8Rng| *v.choose(rng).expect("validated non-empty");
        let entry_qps = pick(&self.entry_qps, rng);
        let spike = (rng.random::<f64>() < self.spike_share).then(|| (pick(&self.spike_magnitude, rng), pick(&self.spike_duration_s, rng)));
        let sick = (rng.random::<f64>() < self.sick_share).then(|| {
            let slow = rng.random::<bool>();
            let (slowdown, fail_share) = if slow { (pick(&self.sick_slowdown, rng), 0.0) } else { (1.0, pick(&self.sick_fail_share, rng)) };
            let service = *MeshRuleGrid::destinations(topology).choose(rng).expect("a topology with a call");
            let replica = rng.random_range(0..topology.services[service].replicas);
            SickReplica { service, replica, slowdown, fail_share }
        });
        MeshState { entry_qps, spike, sick }
    }
}

impl MeshState {
    /// The open loop of the state: the load level for `before_s`, the spike if any, the load
    /// level for `after_s`.
    pub fn load(&self, cfg: &StatesConfig) -> MeshLoad {
        let mut schedule = vec![Segment { duration_s: cfg.before_s, qps: self.entry_qps }];
        if let Some((magnitude, duration_s)) = self.spike {
            schedule.push(Segment { duration_s, qps: self.entry_qps * magnitude });
        }
        schedule.push(Segment { duration_s: cfg.after_s, qps: self.entry_qps });
        MeshLoad::Open { arrivals: Arrivals::Poisson, schedule }
    }

    /// Seconds of the spike's start and end, when there is one.
    pub fn spike_window_s(&self, cfg: &StatesConfig) -> Option<(f64, f64)> {
        self.spike.map(|(_, d)| (cfg.before_s, cfg.before_s + d))
    }
}

//! The defender's objective on one state: the entry's responses per second that are OK and
//! within the latency bound, over the whole run (the recovery after a spike included), and
//! the recovery time beside it, usable as a penalty.

use serde::{Deserialize, Serialize};

use super::recovery::recovery_s;
use super::state::{MeshState, StatesConfig};
use crate::emulator::Scenario;
use crate::mesh::engine::{self, MeshOptions};
use crate::mesh::result::MeshResult;
use crate::mesh::rules::MeshRules;
use crate::mesh::topology::Topology;

/// Config `[objective]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshObjective {
    /// The latency bound L, ms: a 200 answered later does not count (default 200).
    pub latency_bound_ms: f64,
    /// Goodput given up per second of recovery (default 0: the recovery is reported, not
    /// penalised).
    pub recovery_penalty: f64,
}

impl Default for MeshObjective {
    fn default() -> Self {
        MeshObjective { latency_bound_ms: 200.0, recovery_penalty: 0.0 }
    }
}

/// One run's score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Outcome {
    /// 200s within the bound, per second of offered load.
    pub goodput_per_s: f64,
    /// Seconds to recover after the spike ([`recovery_s`]); 0 without one.
    pub recovery_s: f64,
    /// `goodput_per_s - recovery_penalty * recovery_s`: what the defender maximises.
    pub value: f64,
}

/// Runs `state` once under `rules` (seed `seed`) and scores it; the run itself beside the
/// score (its per-second series included).
pub fn evaluate(
    topology: &Topology,
    rules: &MeshRules,
    scenario: &Scenario,
    state: &MeshState,
    states: &StatesConfig,
    objective: &MeshObjective,
    seed: u64,
) -> (Outcome, MeshResult) {
    let load = state.load(states);
    let options =
        MeshOptions { time_series: true, sick: state.sick, latency_bound_ms: Some(objective.latency_bound_ms), ..MeshOptions::default() };
    let result = engine::run(topology, rules, &load, scenario, options, seed);
    let offered_s = load.offered_s().expect("an open loop has a length");
    let end = offered_s.floor() as usize;
    let mut per_second = vec![0.0; end];
    if let Some(series) = &result.series {
        for row in &series.rows {
            if let Some(slot) = per_second.get_mut(row.second as usize) {
                *slot = row.ok_within as f64;
            }
        }
    }
    // Answers to requests offered in the run; those after its end still count once.
    let ok_within = result.entry.goodput_within_bound_per_s.unwrap_or(0.0) * result.duration_s;
    let goodput_per_s = ok_within / offered_s;
    let recovery = match state.spike_window_s(states) {
        Some((start, stop)) => recovery_s(&per_second, start.floor() as usize, stop.ceil() as usize, end),
        None => 0.0,
    };
    (Outcome { goodput_per_s, recovery_s: recovery, value: goodput_per_s - objective.recovery_penalty * recovery }, result)
}

#[cfg(test)]
mod tests {
    use super::super::grid::MeshRuleGrid;
    use super::*;
    use crate::mesh::engine::SickReplica;
    use crate::mesh::rules::IstioRelease;
    use rand::SeedableRng;

    #[test]
    fn states_are_drawn_reproducibly_and_checked() {
        let cfg = StatesConfig::default();
        cfg.validate().unwrap();
        let topology = super::super::topology("shop11.yaml");
        let draw = |seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            (0..20).map(|_| cfg.draw(&topology, &mut rng)).collect::<Vec<_>>()
        };
        let states = draw(3);
        assert_eq!(states, draw(3));
        assert!(states.iter().any(|s| s.spike.is_some()) && states.iter().any(|s| s.spike.is_none()));
        assert!(
            states.iter().any(|s| s.sick.is_some_and(|k| k.fail_share > 0.0))
                && states.iter().any(|s| s.sick.is_some_and(|k| k.slowdown > 1.0))
        );
        for s in states.iter().filter_map(|s| s.sick) {
            s.validate(&topology).unwrap();
            assert_ne!(s.service, topology.entry);
        }
        let bad = StatesConfig { spike_share: 1.5, ..StatesConfig::default() };
        assert!(bad.validate().unwrap_err().contains("spike_share"));
        let empty = StatesConfig { entry_qps: vec![], ..StatesConfig::default() };
        assert!(empty.validate().unwrap_err().contains("entry_qps"));
    }

    #[test]
    fn outlier_detection_on_a_failing_replica_raises_goodput_and_a_spike_is_scored_with_its_recovery() {
        let topology = super::super::topology("shop11.yaml");
        let release = IstioRelease::parse("1.30").unwrap();
        let states = StatesConfig { before_s: 10.0, after_s: 20.0, ..StatesConfig::default() };
        let objective = MeshObjective::default();
        let cart = topology.services.iter().position(|s| s.name == "cartservice").unwrap();
        let state = MeshState {
            entry_qps: 200.0,
            spike: None,
            sick: Some(SickReplica { service: cart, replica: 0, slowdown: 1.0, fail_share: 0.5 }),
        };
        let scenario = Scenario { fault_share: 0.0, ..Scenario::default() };
        let defaults = evaluate(&topology, &MeshRules::defaults(&topology, release), &scenario, &state, &states, &objective, 1).0;
        // Outlier detection after one 5xx, ejecting for 30 s, on every destination.
        let grid = MeshRuleGrid::default();
        let mut point = vec![0; grid.space(&topology).fields.len()];
        for k in 0..MeshRuleGrid::destinations(&topology).len() {
            point[k * 9 + 3] = 1;
            point[k * 9 + 4] = 1;
        }
        let ejecting = evaluate(&topology, &grid.rules(&topology, release, &point), &scenario, &state, &states, &objective, 1).0;
        assert!(ejecting.goodput_per_s > defaults.goodput_per_s + 10.0, "{ejecting:?} against {defaults:?}");
        assert_eq!((defaults.recovery_s, ejecting.recovery_s), (0.0, 0.0), "no spike, no recovery");
        let spike = MeshState { entry_qps: 200.0, spike: Some((4.0, 5.0)), sick: None };
        let outcome = evaluate(&topology, &MeshRules::defaults(&topology, release), &scenario, &spike, &states, &objective, 1).0;
        assert!(outcome.goodput_per_s > 150.0 && outcome.recovery_s <= 20.0, "{outcome:?}");
    }
}

#[cfg(test)]
mod every_field {
    use super::super::grid::{MeshRuleGrid, FIELDS};
    use super::*;
    use crate::mesh::engine::SickReplica;
    use crate::mesh::rules::IstioRelease;

    /// Every value of every field of the default grid changes the objective against the
    /// field's first value on at least one of three default states (a spike, a failing
    /// replica, a slow one) of the shop with capacity, all destinations set alike; a field
    /// that only acts through another is given that one (the pending limit needs a
    /// connection limit, the ejection time outlier detection, the per-try timeout and the
    /// retry budget retries). On the shop without capacity 11 values of an earlier grid
    /// changed nothing: nothing queued, and no answer took 250 ms.
    #[test]
    fn every_value_of_every_grid_field_changes_the_objective_somewhere() {
        let topology = super::super::topology("shop11-capacity.yaml");
        let release = IstioRelease::parse("1.30").unwrap();
        let grid = MeshRuleGrid::default();
        let states_cfg = StatesConfig { before_s: 10.0, after_s: 20.0, ..StatesConfig::default() };
        let by_name = |name: &str| topology.services.iter().position(|s| s.name == name).unwrap();
        let states = [
            MeshState { entry_qps: 600.0, spike: Some((4.0, 10.0)), sick: None },
            MeshState {
                entry_qps: 400.0,
                spike: None,
                sick: Some(SickReplica { service: by_name("cartservice"), replica: 0, slowdown: 1.0, fail_share: 0.5 }),
            },
            MeshState {
                entry_qps: 400.0,
                spike: None,
                sick: Some(SickReplica { service: by_name("productcatalogservice"), replica: 0, slowdown: 20.0, fail_share: 0.0 }),
            },
        ];
        let scenario = Scenario::default();
        let objective = MeshObjective::default();
        let n = MeshRuleGrid::destinations(&topology).len();
        let values = |choice: &[usize]| -> Vec<f64> {
            let point: Vec<usize> = (0..n).flat_map(|_| choice.iter().copied()).collect();
            let rules = grid.rules(&topology, release, &point);
            states.iter().map(|s| evaluate(&topology, &rules, &scenario, s, &states_cfg, &objective, 1).0.value).collect()
        };
        let sizes: Vec<usize> = grid.labels().iter().map(Vec::len).collect();
        let mut idle = Vec::new();
        for (f, name) in FIELDS.iter().enumerate() {
            let mut context = vec![0; FIELDS.len()];
            match *name {
                "max_pending_requests" => context[0] = 1,
                "ejection_time_s" => context[3] = 1,
                "per_try_timeout_ms" => context[5] = 2,
                "retry_budget_percent" => context[5] = 3,
                _ => {}
            }
            let first = {
                let mut c = context.clone();
                c[f] = 0;
                values(&c)
            };
            for v in 1..sizes[f] {
                let mut c = context.clone();
                c[f] = v;
                let got = values(&c);
                if got.iter().zip(&first).all(|(a, b)| (a - b).abs() < 1e-9) {
                    idle.push(format!("{name} = {}", grid.labels()[f][v]));
                }
            }
        }
        assert!(idle.is_empty(), "values that change nothing on any default state: {idle:?}");
    }
}

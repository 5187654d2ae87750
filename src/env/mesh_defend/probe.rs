//! What the agents observe of a state: what Prometheus would show after a short probe run
//! under Istio's defaults, the load at its level (no spike: it has not come yet) and the sick
//! replica sick. Per edge, in the topology's order: requests per second, the share answered
//! 5xx, and the p99 latency (the source sidecar's view, `reporter="source"`).

use serde::{Deserialize, Serialize};

use super::spec::MeshDefendSpec;
use super::state::MeshState;
use crate::mesh::engine::{self, MeshOptions};
use crate::mesh::load::{Arrivals, MeshLoad, Segment};

/// One edge's reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeReading {
    pub source: String,
    pub destination: String,
    pub rps: f64,
    pub share_5xx: f64,
    pub p99_ms: f64,
}

/// One probe run's readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub edges: Vec<EdgeReading>,
}

/// The probe run of `state` for `seconds`, seeded `seed`.
pub fn probe(spec: &MeshDefendSpec, state: &MeshState, seconds: f64, seed: u64) -> Probe {
    let load = MeshLoad::Open { arrivals: Arrivals::Poisson, schedule: vec![Segment { duration_s: seconds, qps: state.entry_qps }] };
    let options = MeshOptions { sick: state.sick, edge_latency: true, ..MeshOptions::default() };
    let result = engine::run(&spec.topology, &spec.defaults(), &load, &spec.scenario, options, seed);
    let edges = result
        .edges
        .iter()
        .map(|e| EdgeReading {
            source: e.source.clone(),
            destination: e.destination.clone(),
            rps: e.requests as f64 / seconds,
            share_5xx: if e.requests > 0 { (e.requests - e.ok) as f64 / e.requests as f64 } else { 0.0 },
            p99_ms: e.latency_ms.map_or(0.0, |l| l.p99),
        })
        .collect();
    Probe { edges }
}

impl Probe {
    /// The readings as an agent's input, each near [0, 1]: requests per second over
    /// `rps_scale`, the 5xx share, the p99 over the latency bound (capped at 4).
    pub fn features(&self, rps_scale: f64, latency_bound_ms: f64) -> Vec<f32> {
        self.edges
            .iter()
            .flat_map(|e| [(e.rps / rps_scale) as f32, e.share_5xx as f32, (e.p99_ms / latency_bound_ms).min(4.0) as f32])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::Scenario;
    use crate::mesh::engine::SickReplica;
    use crate::mesh::rules::IstioRelease;

    /// A failing replica shows on the edges into its service, not on those out of it; a
    /// slow one raises its callers' p99.
    #[test]
    fn a_probe_shows_the_sick_replica_on_its_edges() {
        let topology = super::super::topology("shop11-capacity.yaml");
        let by_name = |name: &str| topology.services.iter().position(|s| s.name == name).unwrap();
        let spec = MeshDefendSpec {
            topology: topology.clone(),
            release: IstioRelease::parse("1.30").unwrap(),
            scenario: Scenario { fault_share: 0.0, ..Scenario::default() },
            grid: Default::default(),
            states: Default::default(),
            objective: Default::default(),
        };
        let healthy = probe(&spec, &MeshState { entry_qps: 200.0, spike: None, sick: None }, 10.0, 1);
        // The load generator's edge into the entry, and one per call.
        let calls: usize = (0..topology.services.len()).map(|s| topology.callees(s).count()).sum();
        assert_eq!(healthy.edges.len(), 1 + calls);
        assert!(healthy.edges.iter().all(|e| e.share_5xx == 0.0 && e.p99_ms > 0.0));
        assert!((healthy.edges[0].rps - 200.0).abs() < 20.0, "{:?}", healthy.edges[0]);
        let cart = by_name("cartservice");
        let failing = SickReplica { service: cart, replica: 0, slowdown: 1.0, fail_share: 0.5 };
        let sick = probe(&spec, &MeshState { entry_qps: 200.0, spike: None, sick: Some(failing) }, 10.0, 1);
        for e in &sick.edges {
            if e.destination == "cartservice" {
                assert!(e.share_5xx > 0.1, "{e:?}");
            }
            if e.source == "cartservice" {
                assert_eq!(e.share_5xx, 0.0, "{e:?}");
            }
        }
        let slow = SickReplica { service: cart, replica: 0, slowdown: 20.0, fail_share: 0.0 };
        let slowed = probe(&spec, &MeshState { entry_qps: 200.0, spike: None, sick: Some(slow) }, 10.0, 1);
        let p99 = |p: &Probe| p.edges.iter().find(|e| e.destination == "cartservice").unwrap().p99_ms;
        assert!(p99(&slowed) > 2.0 * p99(&healthy), "{} against {}", p99(&slowed), p99(&healthy));
        assert_eq!(sick.features(200.0, 200.0).len(), 3 * sick.edges.len());
    }
}

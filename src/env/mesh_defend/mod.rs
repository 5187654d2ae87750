//! The mesh defender (issue 29): rules for every destination of a service graph, against
//! load spikes and sick replicas.
//!
//! - [`spec`]: the problem in one struct, and its evaluation states;
//! - [`grid`]: each destination's DestinationRule and VirtualService fields and their
//!   values, a point of the joint space as the mesh's rules, and the joint space as a
//!   [`crate::search::SearchSpace`] for the equal-budget methods;
//! - [`state`]: the states (load level, spike, sick replica) drawn from config;
//! - [`objective`]: one run of a state under a mesh's rules, scored by its goodput within
//!   the latency bound, with the recovery time after a spike ([`recovery`]);
//! - [`probe`]: what the agents observe of a state, a short run under Istio's defaults;
//! - [`env`]: the agents' environment, in the paper's three layouts.
//!
//! Its default topology is `topologies/shop11-capacity.yaml`: on the shop without capacity
//! limits nothing queues, and most of the grid's values change nothing.
//!
//! The mesh emulator provides the states' sick replica and the goodput within a latency
//! bound ([`crate::mesh::engine::SickReplica`], [`crate::mesh::engine::MeshOptions`]).

pub mod env;
pub mod grid;
pub mod objective;
pub mod probe;
pub mod recovery;
pub mod spec;
pub mod state;

/// A topology of the repository's `topologies/`, for the tests.
#[cfg(test)]
pub(crate) fn topology(file: &str) -> crate::mesh::topology::Topology {
    crate::mesh::topology::Topology::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies").join(file), None).unwrap()
}

//! The mesh defender (issue 29), in progress: rules for every destination of a service
//! graph, against load spikes and sick replicas. This module holds what is built so far:
//!
//! - [`grid`]: each destination's DestinationRule and VirtualService fields and their
//!   values, a point of the joint space as the mesh's rules, and the joint space as a
//!   [`crate::search::SearchSpace`] for the equal-budget methods;
//! - [`recovery`]: the objective's recovery time after a spike, from the per-second goodput
//!   within the latency bound.
//!
//! The mesh emulator provides the states' sick replica and the goodput within a latency
//! bound ([`crate::mesh::engine::SickReplica`], [`crate::mesh::engine::MeshOptions`]).

pub mod grid;
pub mod recovery;

//! The mesh: a graph of services with a sidecar on every hop (issue 26, under way).
//!
//! - [`topology`]: Isotope's `MockServiceGraph` YAML, read with Isotope's own semantics and
//!   meshrl's documented extensions, checked as a whole (one entrypoint, no cycle, no call to
//!   an unknown service), every refusal naming the file and the field.

//! - [`generate`]: larger graphs (trees with a fixed or heavy-tailed fan-out), written in
//!   the same format (`meshrl mesh tree`).

pub mod generate;
pub mod topology;

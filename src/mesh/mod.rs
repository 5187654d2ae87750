//! The mesh: a graph of services with a sidecar on every hop (issue 26).
//!
//! - [`topology`]: Isotope's `MockServiceGraph` YAML, read with Isotope's own semantics and
//!   meshrl's documented extensions, checked as a whole (one entrypoint, no cycle, no call to
//!   an unknown service), every refusal naming the file and the field.
//! - [`generate`]: larger graphs (trees with a fixed or heavy-tailed fan-out), written in
//!   the same format (`meshrl mesh tree`).
//! - [`rules`]: a DestinationRule and a VirtualService per destination, and Istio's defaults
//!   by release where a destination has none.
//! - [`export`]: a mesh's rules written back as Istio resources, one file per destination.
//! - [`load`]: Fortio's closed loop, or open-loop arrivals on a schedule.
//! - [`engine`]: the discrete-event run; [`result`]: what it measured.

pub mod engine;
pub mod export;
pub mod generate;
pub mod load;
pub mod result;
pub mod rules;
pub mod topology;

use std::path::Path;

use rayon::prelude::*;

use crate::emulator::Scenario;
use crate::error::{Error, Result};

/// The `[scenario]` fields that apply on every hop of the mesh: each sidecar, connection
/// and replica takes them from the one scenario.
pub const PER_HOP_FIELDS: [&str; 15] = [
    "envoy_workers",
    "downstream_hop_ms",
    "sidecar_processing_ms",
    "upstream_hop_ms",
    "handshake_ms",
    "handshake_sigma",
    "event_loop_turn_ms",
    "reconnect_ms",
    "run_speed_sigma",
    "run_handshake_sigma",
    "run_fault_sigma",
    "fault_share",
    "ejection_rule",
    "panic_threshold_percent",
    "slow_connect_ms",
];

/// The `[scenario]` fields the topology sets per service instead (`numReplicas`,
/// `concurrency`, `queueLimit`, the `sleep` steps, `errorRate`): ignored, with a warning.
pub const PER_SERVICE_FIELDS: [&str; 6] =
    ["replicas", "replica_concurrency", "replica_queue_limit", "service_time_ms", "service_time_sigma", "replica_behaviour"];

/// The `[scenario]` fields the mesh does not model: overflows never count for outlier
/// detection (Envoy >= 1.26).
pub const NOT_MODELLED_FIELDS: [&str; 1] = ["overflow_counts_for_outliers"];

/// Reads a scenario TOML for a mesh run (a fitted one from `meshrl calibrate` too): the fields
/// of [`PER_HOP_FIELDS`] apply to every hop, the others are named in the returned warnings
/// unless they hold the default's value.
pub fn load_scenario(path: &Path) -> Result<(Scenario, Vec<String>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| Error::file(path, format!("not valid TOML: {e}")))?;
    let mut warnings = Vec::new();
    // A field at the default's value changes nothing: a fitted file names every field.
    let defaults = Scenario::default().full_table();
    for (key, value) in &table {
        if defaults.get(key) == Some(value) || (key == "replica_behaviour" && value.as_array().is_some_and(|a| a.is_empty())) {
            continue;
        }
        if PER_SERVICE_FIELDS.contains(&key.as_str()) {
            warnings.push(format!("{}: `{key}` is set per service by the topology in a mesh run; ignored", path.display()));
        } else if NOT_MODELLED_FIELDS.contains(&key.as_str()) {
            warnings.push(format!("{}: `{key}` is not modelled by the mesh emulator; ignored", path.display()));
        }
    }
    let scenario: Scenario = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| Error::file(path, e.to_string()))?;
    scenario.validate().map_err(|m| Error::file(path, m))?;
    Ok((scenario, warnings))
}

/// `runs` runs of one setting on seeds `seed`, `seed + 1`, ..., in parallel, in seed order.
pub fn run_seeds(
    topology: &topology::Topology,
    rules: &rules::MeshRules,
    load: &load::MeshLoad,
    scenario: &Scenario,
    options: engine::MeshOptions,
    seed: u64,
    runs: u64,
) -> Vec<result::MeshResult> {
    (0..runs).into_par_iter().map(|i| engine::run(topology, rules, load, scenario, options, seed + i)).collect()
}

#[cfg(test)]
mod tests;

//! meshrl: model-based reinforcement learning for service-mesh fault resiliency.
//!
//! The SFR2L workflow as a library: a load-test emulator of an Envoy sidecar under a
//! Fortio load test ([`emulator`]), the datasets it writes ([`generate`]), Polars loading
//! of traces ([`data`]), and (later) simulators and DQN agents.

pub mod atomic;
pub mod cli;
pub mod data;
pub mod emulator;
pub mod experiment;
pub mod error;
pub mod generate;
pub mod inspect;
pub mod report;
pub mod rules;
pub mod simulator;

pub use error::{Error, Result};

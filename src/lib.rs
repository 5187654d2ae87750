//! meshrl: model-based reinforcement learning for service-mesh fault resiliency.
//!
//! The SFR2L workflow as a library: a load-test emulator of an Envoy sidecar under a
//! Fortio load test ([`emulator`]), the datasets it writes ([`generate`]), Polars loading
//! of traces ([`data`]), simulators of a service ([`simulator`]), problems as environments
//! ([`env`](mod@env)), learners ([`agent`]) and the loop that trains one on the other ([`train`]),
//! driven by experiment files ([`experiment`]). The command line is the binary's
//! (`src/main.rs`, `src/cli/`); the library takes plain option structs.
//!
//! # Where to start reading
//!
//! - The user's view first: `README.md`, then the book in `docs/` (`docs/architecture.md`
//!   maps every module and says where a new concept goes).
//! - The ground truth: [`emulator::run_load_test`] (one Fortio run against an Envoy sidecar)
//!   under the rules of [`rules::TrafficRules`], read from Istio YAML by [`destination_rule`].
//! - A problem: an [`env::Environment`] (for example [`env::load_search`], the paper's
//!   attacker), a learner from [`agent`], and [`train::train`], the loop between them.
//! - A documented run: [`experiment::run`] reads an experiment file and dispatches to its
//!   kind ([`experiment::table5`] for the paper's Table 5); verdicts come from
//!   [`experiment::compare`].

pub mod agent;
pub mod atomic;
pub mod calibrate;
pub mod data;
pub mod dense;
pub mod destination_rule;
pub mod emulator;
pub mod env;
pub mod error;
pub mod experiment;
pub mod export;
pub mod generate;
pub mod ingest;
pub mod inspect;
pub mod k8s;
pub mod mesh;
pub mod nan_as_null;
pub mod nn;
pub mod optim;
pub mod paths;
pub mod policy;
pub mod report;
pub mod rules;
pub mod search;
pub mod seeding;
pub mod serve;
pub mod simulator;
pub mod train;
pub mod validate;

pub use error::{Error, Result};

/// Candle allocates fresh buffers for every tensor op; with glibc's allocator the large
/// ones are mmap-ed and unmapped each time, and the page faults cost more than the
/// arithmetic of a small network (measured: a DQN run spent 2/3 of its time in the kernel).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

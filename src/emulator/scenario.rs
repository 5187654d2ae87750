//! The testbed's fixed properties: everything about a load test that is not a traffic rule
//! or a load setting. Defaults describe Istio's httpbin sample behind an Envoy sidecar
//! (Istio of 2021) and are calibrated on the published runs of emulator.md (see
//! `calibration.rs`); a dataset config may override any field.

use serde::{Deserialize, Serialize};

/// How Envoy caps ejections by `max_ejection_percent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EjectionRule {
    /// Envoy 1.7-1.27 (and `always_eject_one_host`): one host may always be ejected.
    AtLeastOne,
    /// Envoy >= 1.28: the percentage is strict, so small clusters may eject no host.
    Strict,
}

/// How one replica departs from the scenario's well-behaved replica (issue 15): a scenario
/// lists them in `replica_behaviour`, entry i for replica i. Every field's default is "as
/// the scenario says", and a field at its default draws no random number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicaBehaviour {
    /// Share of the requests this replica serves that it answers with a 503 (a bad pod: a
    /// broken dependency, a failing version), on top of the scenario's `fault_share`: a
    /// request fails if either fault hits, and one uniform draw decides it, the draw every
    /// served request already makes. Not scaled by the run-to-run fault noise.
    pub fault_share: f64,
    /// Factor on this replica's median service time (1: normal; 5: a pod on a busy node).
    pub slowdown: f64,
    /// Share of new upstream connections to this replica that are refused: the attempt fails
    /// after one round trip (2 x `upstream_hop_ms`), Envoy flag UF. With Istio a pod whose
    /// sidecar is up accepts the connection even when the app is down (the app's failure
    /// then shows as 503s); refused or lost connects model the pod's network or sidecar:
    /// a node in trouble, a pod being deleted, a NetworkPolicy.
    pub connect_fail_share: f64,
    /// Share of new upstream connections to this replica whose SYN is lost: the handshake
    /// completes only after the scenario's `slow_connect_ms`, unless the rule's connect
    /// timeout fires first (UF).
    pub slow_connect_share: f64,
}

impl Default for ReplicaBehaviour {
    fn default() -> Self {
        ReplicaBehaviour { fault_share: 0.0, slowdown: 1.0, connect_fail_share: 0.0, slow_connect_share: 0.0 }
    }
}

impl ReplicaBehaviour {
    /// True when this replica behaves as the scenario says.
    pub fn is_default(&self) -> bool {
        *self == ReplicaBehaviour::default()
    }
}

/// Linux's initial SYN retransmission timeout (`TCP_TIMEOUT_INIT`, RFC 6298): a connect
/// whose first SYN is lost completes after about 1 s.
pub const SYN_RETRANSMIT_MS: f64 = 1000.0;

fn is_syn_retransmit(ms: &f64) -> bool {
    *ms == SYN_RETRANSMIT_MS
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Upstream replicas (httpbin pods) of the service. The Istio sample runs one.
    pub replicas: u32,
    /// Requests one replica serves at once (its worker processes).
    pub replica_concurrency: u32,
    /// Requests a replica holds waiting beyond its concurrency; arrivals past this answer
    /// 503 at once (overload). These 503s come from upstream and count for outlier detection.
    pub replica_queue_limit: u32,
    /// Median service time at a replica, in ms (httpbin /get plus the server sidecar).
    pub service_time_ms: f64,
    /// Log-normal shape of the service time (a heavier tail than exponential for > 1).
    pub service_time_sigma: f64,
    /// Share of requests a replica answers with an injected 503.
    pub fault_share: f64,
    /// Envoy worker threads of the client sidecar (Istio default: 2). Each downstream
    /// connection is served by one of them, chosen at random when it is accepted.
    pub envoy_workers: u32,
    /// One-way latency between Fortio and its local sidecar, in ms.
    pub downstream_hop_ms: f64,
    /// Sidecar processing of one request (filter chain, routing), in ms.
    pub sidecar_processing_ms: f64,
    /// One-way latency from the client sidecar to a replica (network and server sidecar), ms.
    pub upstream_hop_ms: f64,
    /// Median time to open an upstream connection (TCP plus mTLS handshake), in ms.
    pub handshake_ms: f64,
    /// Log-normal shape of the handshake time.
    pub handshake_sigma: f64,
    /// Time Fortio needs to open a new socket after a local 503 closed its connection, ms.
    pub reconnect_ms: f64,
    /// Delay before a freed upstream connection picks the next pending request (the next
    /// turn of Envoy's event loop), in ms.
    pub event_loop_turn_ms: f64,
    /// Log-normal shape of the per-run speed factor that scales every latency: real
    /// testbeds vary a lot from run to run (node load, CPU frequency, noisy neighbours).
    pub run_speed_sigma: f64,
    /// Log-normal shape of the per-run multiplier of the handshake time: how costly a new
    /// upstream connection is relative to a request varies between testbeds and runs
    /// (certificates, CPU of the sidecars), and it sets how long requests sit pending.
    pub run_handshake_sigma: f64,
    /// Log-normal shape of the per-run multiplier of `fault_share`.
    pub run_fault_sigma: f64,
    /// Which Envoy rule caps ejections.
    pub ejection_rule: EjectionRule,
    /// Envoy's panic threshold in percent of healthy hosts. Istio sets 0 (with every host
    /// ejected, requests fail with "no healthy upstream"); older Istio used Envoy's 50 %,
    /// under which traffic goes to all hosts, ejected or not.
    pub panic_threshold_percent: f64,
    /// Envoy < 1.26 reported a `max_requests` (http2MaxRequests) overflow to outlier
    /// detection as a local-origin connect failure, i.e. as a 5xx of the host the request was
    /// about to use (envoy#25487, fixed by envoy#25488 in 1.26). Default false: Envoy >= 1.26,
    /// where no overflow counts. A pending-queue overflow never counts (it has no host).
    #[serde(skip_serializing_if = "is_false")]
    pub overflow_counts_for_outliers: bool,
    /// Time a connect whose SYN was lost takes (see `ReplicaBehaviour::slow_connect_share`), ms,
    /// not scaled by the run's speed factor (a kernel timer). Default: Linux's initial
    /// retransmission timeout, 1 s.
    #[serde(skip_serializing_if = "is_syn_retransmit")]
    pub slow_connect_ms: f64,
    /// Replicas that misbehave: entry i describes replica i; replicas without an entry (and
    /// every replica by default) are well-behaved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replica_behaviour: Vec<ReplicaBehaviour>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            replicas: 1,
            replica_concurrency: 4,
            replica_queue_limit: 8,
            service_time_ms: 1.5,
            service_time_sigma: 0.6,
            fault_share: 0.003,
            envoy_workers: 2,
            downstream_hop_ms: 0.05,
            sidecar_processing_ms: 0.3,
            upstream_hop_ms: 1.0,
            handshake_ms: 0.35,
            handshake_sigma: 0.5,
            reconnect_ms: 0.3,
            event_loop_turn_ms: 0.02,
            run_speed_sigma: 0.5,
            run_handshake_sigma: 0.8,
            run_fault_sigma: 0.5,
            ejection_rule: EjectionRule::AtLeastOne,
            panic_threshold_percent: 0.0,
            overflow_counts_for_outliers: false,
            slow_connect_ms: SYN_RETRANSMIT_MS,
            replica_behaviour: Vec::new(),
        }
    }
}

impl Scenario {
    /// The scenario as a TOML table with every field, the ones serialisation leaves out at
    /// their defaults included (a fitted file names every field, and each can be fitted).
    pub fn full_table(&self) -> toml::Table {
        let mut table = toml::Table::try_from(self).expect("a scenario serialises");
        table.entry("overflow_counts_for_outliers").or_insert(toml::Value::Boolean(self.overflow_counts_for_outliers));
        table.entry("slow_connect_ms").or_insert(toml::Value::Float(self.slow_connect_ms));
        table
    }

    /// Checks every field once, with the bad value in the message.
    pub fn validate(&self) -> Result<(), String> {
        let positive_ints =
            [("replicas", self.replicas), ("replica_concurrency", self.replica_concurrency), ("envoy_workers", self.envoy_workers)];
        for (name, v) in positive_ints {
            if v == 0 {
                return Err(format!("scenario.{name} must be >= 1, but is 0"));
            }
        }
        let non_negative = [
            ("service_time_ms", self.service_time_ms),
            ("service_time_sigma", self.service_time_sigma),
            ("downstream_hop_ms", self.downstream_hop_ms),
            ("sidecar_processing_ms", self.sidecar_processing_ms),
            ("upstream_hop_ms", self.upstream_hop_ms),
            ("handshake_ms", self.handshake_ms),
            ("handshake_sigma", self.handshake_sigma),
            ("reconnect_ms", self.reconnect_ms),
            ("event_loop_turn_ms", self.event_loop_turn_ms),
            ("run_speed_sigma", self.run_speed_sigma),
            ("run_handshake_sigma", self.run_handshake_sigma),
            ("run_fault_sigma", self.run_fault_sigma),
            ("slow_connect_ms", self.slow_connect_ms),
        ];
        for (name, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("scenario.{name} must be a finite number >= 0, but is {v}"));
            }
        }
        if !(0.0..=1.0).contains(&self.fault_share) {
            return Err(format!("scenario.fault_share must be in [0, 1], but is {}", self.fault_share));
        }
        if !(0.0..=100.0).contains(&self.panic_threshold_percent) {
            return Err(format!("scenario.panic_threshold_percent must be in [0, 100], but is {}", self.panic_threshold_percent));
        }
        if self.replica_behaviour.len() > self.replicas as usize {
            return Err(format!(
                "scenario.replica_behaviour has {} entries but the scenario has {} replicas",
                self.replica_behaviour.len(),
                self.replicas
            ));
        }
        for (i, b) in self.replica_behaviour.iter().enumerate() {
            for (name, v) in
                [("fault_share", b.fault_share), ("connect_fail_share", b.connect_fail_share), ("slow_connect_share", b.slow_connect_share)]
            {
                if !(0.0..=1.0).contains(&v) {
                    return Err(format!("scenario.replica_behaviour[{i}].{name} must be in [0, 1], but is {v}"));
                }
            }
            if b.connect_fail_share + b.slow_connect_share > 1.0 {
                return Err(format!(
                    "scenario.replica_behaviour[{i}]: connect_fail_share + slow_connect_share must be <= 1, but is {}",
                    b.connect_fail_share + b.slow_connect_share
                ));
            }
            if !(b.slowdown.is_finite() && b.slowdown > 0.0) {
                return Err(format!("scenario.replica_behaviour[{i}].slowdown must be a finite number > 0, but is {}", b.slowdown));
            }
        }
        Ok(())
    }
}

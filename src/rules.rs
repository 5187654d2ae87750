//! The seven traffic-rule settings of an Istio DestinationRule and the two load settings
//! of a Fortio run: the 9 inputs of every trace row (protocol.md section 1).

use serde::{Deserialize, Serialize};

use crate::emulator::knobs::{
    default_connect_timeout_ms, is_default_connect_timeout, ENVOY_BASE_EJECTION_TIME_S, ENVOY_CONSECUTIVE_5XX, ENVOY_MAX_EJECTION_PERCENT,
    ENVOY_OUTLIER_INTERVAL_S, ISTIO_CONNECT_TIMEOUT_MS,
};
pub use crate::emulator::knobs::{LoadBalancer, RetryPolicy};

/// Circuit-breaker and outlier-detection settings of one service (one DestinationRule), and
/// the route's retry policy (its VirtualService). The first seven fields are the trace
/// columns; the others (issue 15) default to the emulator's behaviour before they existed,
/// are left out of serialised rules at that default, and are described with their sources
/// in `src/emulator/knobs.rs`. Build a rule with `..TrafficRules::default()` for them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrafficRules {
    /// `connectionPool.http.http1MaxPendingRequests`
    pub max_pending_requests: u32,
    /// `connectionPool.tcp.maxConnections`
    pub max_connections: u32,
    /// `connectionPool.http.maxRequestsPerConnection`
    pub max_requests_per_connection: u32,
    /// `outlierDetection.baseEjectionTime`, seconds
    pub ejection_time_s: f64,
    /// `outlierDetection.maxEjectionPercent`, 0..100
    pub max_ejection_percent: f64,
    /// `outlierDetection.interval`, seconds
    pub interval_s: f64,
    /// `outlierDetection.consecutive5xxErrors`
    pub consecutive_errors: u32,
    /// `connectionPool.http.http2MaxRequests`: Envoy's cluster `max_requests` circuit breaker,
    /// the requests in flight to all hosts (HTTP/1.1 included); beyond it a request gets a
    /// local 503 (UO). `None`: no limit (Istio's default, 2^32-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<u32>,
    /// `connectionPool.http.maxRetries`: Envoy's cluster `max_retries` circuit breaker, the
    /// retries outstanding at once. `None`: no limit (Istio's default, 2^32-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// `connectionPool.tcp.connectTimeout`, ms: a new upstream connection (TCP and mTLS
    /// handshake) not up by then fails (UF). Default: Istio's 10 s.
    #[serde(default = "default_connect_timeout_ms", skip_serializing_if = "is_default_connect_timeout")]
    pub connect_timeout_ms: f64,
    /// `loadBalancer.simple`. Default: round robin (Istio's default is LEAST_REQUEST since 1.14).
    #[serde(default, skip_serializing_if = "LoadBalancer::is_round_robin")]
    pub load_balancer: LoadBalancer,
    /// The VirtualService route's `retries`. Default: off (Istio's default is
    /// [`RetryPolicy::istio_default`]: 2 retries).
    #[serde(default = "RetryPolicy::off", skip_serializing_if = "RetryPolicy::is_off")]
    pub retries: RetryPolicy,
}

impl Default for TrafficRules {
    /// A rule that sets nothing but an empty `outlierDetection` block: no connection-pool
    /// limits (Istio's 2^32-1 for connections and pending requests, no limit on requests per
    /// connection), the outlier-detection values Istio leaves to Envoy's defaults (5
    /// consecutive 5xx, 10 s interval, 30 s base ejection, 10 %), and the emulator's
    /// defaults for the other settings (no retries, round robin, no `http2MaxRequests` or
    /// `maxRetries` limit, Istio's 10 s connect timeout).
    fn default() -> Self {
        TrafficRules {
            max_pending_requests: u32::MAX,
            max_connections: u32::MAX,
            max_requests_per_connection: u32::MAX,
            ejection_time_s: ENVOY_BASE_EJECTION_TIME_S,
            max_ejection_percent: ENVOY_MAX_EJECTION_PERCENT,
            interval_s: ENVOY_OUTLIER_INTERVAL_S,
            consecutive_errors: ENVOY_CONSECUTIVE_5XX,
            http2_max_requests: None,
            max_retries: None,
            connect_timeout_ms: ISTIO_CONNECT_TIMEOUT_MS,
            load_balancer: LoadBalancer::RoundRobin,
            retries: RetryPolicy::off(),
        }
    }
}

/// A Fortio load: `fortio load -c threads -qps 0 -n calls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    pub threads: u32,
    pub calls: u32,
}

/// The column names of the protocol schema, in order: seven rules, two loads, two responses.
pub const RULE_COLUMNS: [&str; 7] = [
    "max_pending_requests",
    "max_connections",
    "max_requests_per_connection",
    "ejection_time_s",
    "max_ejection_percent",
    "interval_s",
    "consecutive_errors",
];
pub const LOAD_COLUMNS: [&str; 2] = ["threads", "calls"];
pub const RESPONSE_COLUMNS: [&str; 2] = ["qps", "failure_rate"];

impl TrafficRules {
    /// The rules from the first seven model inputs of a trace row ([`RULE_COLUMNS`] order);
    /// the inverse of [`TrafficRules::to_features`] for whole-number counts.
    pub fn from_features(x: &[f64]) -> TrafficRules {
        TrafficRules {
            max_pending_requests: x[0] as u32,
            max_connections: x[1] as u32,
            max_requests_per_connection: x[2] as u32,
            ejection_time_s: x[3],
            max_ejection_percent: x[4],
            interval_s: x[5],
            consecutive_errors: x[6] as u32,
            ..TrafficRules::default()
        }
    }

    /// The seven values as CSV fields in [`RULE_COLUMNS`] order (whole numbers without a
    /// decimal point, as the datasets write them).
    pub fn csv_fields(&self) -> String {
        self.to_features().iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
    }

    /// The rules as the first seven model inputs, in [`RULE_COLUMNS`] order.
    pub fn to_features(&self) -> [f64; 7] {
        [
            self.max_pending_requests as f64,
            self.max_connections as f64,
            self.max_requests_per_connection as f64,
            self.ejection_time_s,
            self.max_ejection_percent,
            self.interval_s,
            self.consecutive_errors as f64,
        ]
    }
}

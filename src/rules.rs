//! The seven traffic-rule settings of an Istio DestinationRule and the two load settings
//! of a Fortio run: the 9 inputs of every trace row (protocol.md section 1).

use serde::{Deserialize, Serialize};

/// Circuit-breaker and outlier-detection settings of one service (one DestinationRule).
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

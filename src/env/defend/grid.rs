//! The rules a defender may set: candidate values per DestinationRule (and VirtualService
//! retries) field, and the joint rules they span. A field with one value is fixed; every
//! field with several is searched (one agent each). A joint rule is a choice of one value
//! per field, numbered in mixed radix (the first field varies slowest).

use serde::{Deserialize, Serialize};

use crate::emulator::knobs::ISTIO_CONNECT_TIMEOUT_MS;
use crate::rules::{LoadBalancer, RetryPolicy, TrafficRules};

/// A count limit: a whole number, or `"unlimited"` (Istio's 2^32-1, or no outlier
/// detection for `consecutive_errors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Limit {
    Count(u32),
    Word(Unlimited),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unlimited {
    Unlimited,
}

pub const UNLIMITED: Limit = Limit::Word(Unlimited::Unlimited);

impl Limit {
    /// The value in [`TrafficRules`]' terms: `u32::MAX` for no limit.
    pub fn value(&self) -> u32 {
        match self {
            Limit::Count(n) => *n,
            Limit::Word(_) => u32::MAX,
        }
    }

    /// `None` for no limit (the optional fields of [`TrafficRules`]).
    pub fn optional(&self) -> Option<u32> {
        match self {
            Limit::Count(n) => Some(*n),
            Limit::Word(_) => None,
        }
    }

    fn label(&self) -> String {
        match self {
            Limit::Count(n) => n.to_string(),
            Limit::Word(_) => "unlimited".into(),
        }
    }
}

/// Candidate values per field (config table `[grid]`). A field left out takes the default
/// grid's values: 8 searched fields, 5 x 4 x 4 x 3 x 3 x 2 x 4 x 3 = 17 280 joint rules,
/// and 4 fixed at Istio's defaults (no `maxRequestsPerConnection` or `maxRetries` limit,
/// 10 s connect timeout, 10 s interval).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleGrid {
    /// `connectionPool.tcp.maxConnections`.
    pub max_connections: Vec<Limit>,
    /// `connectionPool.http.http1MaxPendingRequests`.
    pub max_pending_requests: Vec<Limit>,
    /// `connectionPool.http.http2MaxRequests` (requests in flight, HTTP/1.1 included).
    pub http2_max_requests: Vec<Limit>,
    /// `connectionPool.http.maxRequestsPerConnection`.
    pub max_requests_per_connection: Vec<Limit>,
    /// `connectionPool.http.maxRetries` (retries outstanding at once).
    pub max_retries: Vec<Limit>,
    /// `connectionPool.tcp.connectTimeout`, ms.
    pub connect_timeout_ms: Vec<f64>,
    /// `outlierDetection.consecutive5xxErrors`; `"unlimited"`: no outlier detection.
    pub consecutive_errors: Vec<Limit>,
    /// `outlierDetection.maxEjectionPercent`.
    pub max_ejection_percent: Vec<f64>,
    /// `outlierDetection.baseEjectionTime`, s.
    pub ejection_time_s: Vec<f64>,
    /// `outlierDetection.interval`, s.
    pub interval_s: Vec<f64>,
    /// The VirtualService route's `retries.attempts` (0: off), with Istio's default
    /// `retryOn` otherwise (connect failures and 503s, other hosts preferred).
    pub retry_attempts: Vec<u32>,
    /// `loadBalancer.simple`.
    pub load_balancer: Vec<LoadBalancer>,
}

impl Default for RuleGrid {
    fn default() -> Self {
        RuleGrid {
            max_connections: vec![Limit::Count(1), Limit::Count(4), Limit::Count(16), Limit::Count(64), UNLIMITED],
            max_pending_requests: vec![Limit::Count(1), Limit::Count(16), Limit::Count(128), UNLIMITED],
            http2_max_requests: vec![Limit::Count(8), Limit::Count(32), Limit::Count(128), UNLIMITED],
            max_requests_per_connection: vec![UNLIMITED],
            max_retries: vec![UNLIMITED],
            connect_timeout_ms: vec![ISTIO_CONNECT_TIMEOUT_MS],
            consecutive_errors: vec![Limit::Count(1), Limit::Count(5), UNLIMITED],
            max_ejection_percent: vec![10.0, 67.0, 100.0],
            ejection_time_s: vec![1.0, 30.0],
            interval_s: vec![10.0],
            retry_attempts: vec![0, 1, 2, 3],
            load_balancer: vec![LoadBalancer::RoundRobin, LoadBalancer::LeastRequest, LoadBalancer::Random],
        }
    }
}

/// The grid's fields, in order (a choice is one value index per field).
const FIELDS: [&str; 12] = [
    "max_connections",
    "max_pending_requests",
    "http2_max_requests",
    "max_requests_per_connection",
    "max_retries",
    "connect_timeout_ms",
    "consecutive_errors",
    "max_ejection_percent",
    "ejection_time_s",
    "interval_s",
    "retry_attempts",
    "load_balancer",
];

impl RuleGrid {
    /// Number of values of each field, in [`RuleGrid::field_names`] order.
    pub fn sizes(&self) -> [usize; 12] {
        [
            self.max_connections.len(),
            self.max_pending_requests.len(),
            self.http2_max_requests.len(),
            self.max_requests_per_connection.len(),
            self.max_retries.len(),
            self.connect_timeout_ms.len(),
            self.consecutive_errors.len(),
            self.max_ejection_percent.len(),
            self.ejection_time_s.len(),
            self.interval_s.len(),
            self.retry_attempts.len(),
            self.load_balancer.len(),
        ]
    }

    pub fn field_names() -> &'static [&'static str; 12] {
        &FIELDS
    }

    /// The fields with more than one value: the ones the agents choose.
    pub fn searched(&self) -> Vec<usize> {
        self.sizes().iter().enumerate().filter(|(_, &n)| n > 1).map(|(i, _)| i).collect()
    }

    /// Number of joint rules.
    pub fn joint_rules(&self) -> usize {
        self.sizes().iter().fold(1usize, |acc, &n| acc.saturating_mul(n))
    }

    /// Checks every value as Istio would, naming the field (`grid.http2_max_requests[0]`).
    pub fn validate(&self) -> Result<(), String> {
        for (name, n) in FIELDS.iter().zip(self.sizes()) {
            if n == 0 {
                return Err(format!("grid.{name} needs at least one value"));
            }
        }
        let counts = [
            ("max_connections", &self.max_connections),
            ("max_pending_requests", &self.max_pending_requests),
            ("http2_max_requests", &self.http2_max_requests),
            ("max_requests_per_connection", &self.max_requests_per_connection),
            ("max_retries", &self.max_retries),
            ("consecutive_errors", &self.consecutive_errors),
        ];
        for (name, values) in counts {
            if let Some(i) = values.iter().position(|v| *v == Limit::Count(0)) {
                return Err(format!("grid.{name}[{i}] must be >= 1 or \"unlimited\", but is 0"));
            }
        }
        let reals: [(&str, &Vec<f64>, f64, f64); 4] = [
            ("connect_timeout_ms", &self.connect_timeout_ms, 1.0, f64::MAX),
            ("max_ejection_percent", &self.max_ejection_percent, 0.0, 100.0),
            ("ejection_time_s", &self.ejection_time_s, 0.001, f64::MAX),
            ("interval_s", &self.interval_s, 0.001, f64::MAX),
        ];
        for (name, values, lo, hi) in reals {
            if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= lo && **v <= hi)) {
                let range = if hi == f64::MAX { format!(">= {lo}") } else { format!("in [{lo}, {hi}]") };
                return Err(format!("grid.{name}[{i}] must be a finite number {range}, but is {v}"));
            }
        }
        if let Some((i, v)) = self.max_ejection_percent.iter().enumerate().find(|(_, v)| v.fract() != 0.0) {
            return Err(format!("grid.max_ejection_percent[{i}] must be a whole number (Istio's maxEjectionPercent), but is {v}"));
        }
        if let Some((i, v)) = self.retry_attempts.iter().enumerate().find(|(_, v)| **v > 10) {
            return Err(format!("grid.retry_attempts[{i}] must be <= 10, but is {v}"));
        }
        if self.searched().is_empty() {
            return Err("grid: every field has one value, so there is nothing to choose; give some field two or more".into());
        }
        // Every value must have a DestinationRule spelling: the recommended rule is written
        // as YAML at the end of a run, and that must not fail after hours of work.
        // Each value on an otherwise default rule, so that the message names its field.
        for (f, &n) in self.sizes().iter().enumerate() {
            for i in 0..n {
                let mut rule = TrafficRules::default();
                self.set(&mut rule, f, i);
                if let Err((_, why)) = crate::destination_rule::rule_spelling(&rule) {
                    return Err(format!("grid.{}[{i}] has no Istio spelling: {why}", FIELDS[f]));
                }
            }
        }
        if self.joint_rules() > 2_000_000 {
            return Err(format!("grid spans {} joint rules; at most 2 000 000 can be searched exhaustively", self.joint_rules()));
        }
        Ok(())
    }

    /// The value indices of joint rule `index` (mixed radix, the first field slowest).
    pub fn choice(&self, mut index: usize) -> [usize; 12] {
        let sizes = self.sizes();
        let mut choice = [0; 12];
        for f in (0..12).rev() {
            choice[f] = index % sizes[f];
            index /= sizes[f];
        }
        choice
    }

    /// The index of a joint rule.
    pub fn index(&self, choice: &[usize; 12]) -> usize {
        self.sizes().iter().zip(choice).fold(0, |acc, (n, c)| acc * n + c)
    }

    /// The rule of a choice.
    pub fn rule(&self, c: &[usize; 12]) -> TrafficRules {
        let mut rules = TrafficRules::default();
        for (field, &i) in c.iter().enumerate() {
            self.set(&mut rules, field, i);
        }
        rules
    }

    /// Sets one field of `rules` to its `i`-th value.
    fn set(&self, rules: &mut TrafficRules, field: usize, i: usize) {
        match field {
            0 => rules.max_connections = self.max_connections[i].value(),
            1 => rules.max_pending_requests = self.max_pending_requests[i].value(),
            2 => rules.http2_max_requests = self.http2_max_requests[i].optional(),
            3 => rules.max_requests_per_connection = self.max_requests_per_connection[i].value(),
            4 => rules.max_retries = self.max_retries[i].optional(),
            5 => rules.connect_timeout_ms = self.connect_timeout_ms[i],
            6 => rules.consecutive_errors = self.consecutive_errors[i].value(),
            7 => rules.max_ejection_percent = self.max_ejection_percent[i],
            8 => rules.ejection_time_s = self.ejection_time_s[i],
            9 => rules.interval_s = self.interval_s[i],
            10 => {
                let attempts = self.retry_attempts[i];
                rules.retries = if attempts == 0 { RetryPolicy::off() } else { RetryPolicy { attempts, ..RetryPolicy::istio_default() } };
            }
            _ => rules.load_balancer = self.load_balancer[i],
        }
    }

    /// The searched fields' values of a choice, for tables ("conn 4, pending 16, ...").
    pub fn describe(&self, c: &[usize; 12]) -> String {
        let mut parts = Vec::new();
        for f in self.searched() {
            parts.push(format!("{} {}", short_name(f), self.value_label(f, c[f])));
        }
        parts.join(", ")
    }

    /// One field's value, as the config writes it.
    pub fn value_label(&self, field: usize, i: usize) -> String {
        match field {
            0 => self.max_connections[i].label(),
            1 => self.max_pending_requests[i].label(),
            2 => self.http2_max_requests[i].label(),
            3 => self.max_requests_per_connection[i].label(),
            4 => self.max_retries[i].label(),
            5 => self.connect_timeout_ms[i].to_string(),
            6 => match self.consecutive_errors[i] {
                Limit::Word(_) => "off".into(),
                l => l.label(),
            },
            7 => self.max_ejection_percent[i].to_string(),
            8 => self.ejection_time_s[i].to_string(),
            9 => self.interval_s[i].to_string(),
            10 => self.retry_attempts[i].to_string(),
            _ => format!("{:?}", self.load_balancer[i]),
        }
    }
}

/// Short column names of the fields, for tables.
pub fn short_name(field: usize) -> &'static str {
    ["conn", "pending", "in-flight", "req/conn", "max-retries", "connect-ms", "5xx", "eject%", "eject-s", "interval-s", "retries", "lb"]
        [field]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_grid_is_not_a_toy_and_indices_round_trip() {
        let g = RuleGrid::default();
        g.validate().unwrap();
        assert_eq!(g.joint_rules(), 17_280);
        assert_eq!(g.searched().len(), 8);
        for index in [0, 1, 4321, 17_279] {
            assert_eq!(g.index(&g.choice(index)), index);
        }
        let last = g.rule(&g.choice(17_279));
        assert_eq!((last.max_connections, last.http2_max_requests, last.consecutive_errors), (u32::MAX, None, u32::MAX));
        assert_eq!((last.retries.attempts, last.load_balancer), (3, LoadBalancer::Random));
        let first = g.rule(&g.choice(0));
        assert!(first.retries.is_off() && first.max_connections == 1 && first.http2_max_requests == Some(8));
    }

    #[test]
    fn bad_values_name_the_field() {
        let bad: RuleGrid = toml::from_str("http2_max_requests = [4, 0]").unwrap();
        assert_eq!(bad.validate().unwrap_err(), "grid.http2_max_requests[1] must be >= 1 or \"unlimited\", but is 0");
        let bad: RuleGrid = toml::from_str("max_ejection_percent = [10, 120]").unwrap();
        assert!(bad.validate().unwrap_err().starts_with("grid.max_ejection_percent[1] must be a finite number in [0, 100]"));
        assert!(toml::from_str::<RuleGrid>("max_connections = [\"lots\"]").is_err());
        let ok: RuleGrid = toml::from_str("max_connections = [2, \"unlimited\"]\nload_balancer = [\"LEAST_REQUEST\"]").unwrap();
        assert_eq!(ok.max_connections, vec![Limit::Count(2), UNLIMITED]);
        assert_eq!(ok.load_balancer, vec![LoadBalancer::LeastRequest]);
    }
}

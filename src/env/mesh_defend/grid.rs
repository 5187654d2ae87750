//! Each destination's rule fields and the values the defender may give them (config
//! `[grid]`), one agent's action per destination. A value of 0 means Istio's default for
//! that field: no limit, no outlier detection, no timeout, no retry budget. An action is
//! one value per field (a product of the fields): the fields interact (a retry needs a
//! per-try timeout to fire before the route's), so one head per field would learn each
//! against the others' average.

use serde::{Deserialize, Serialize};

use crate::emulator::knobs::{RetryOn, RetryPolicy};
use crate::mesh::rules::{DestinationPolicy, IstioRelease, MeshRules, RetryBudget, ISTIO_RETRY_BUDGET_MIN_CONCURRENCY};
use crate::mesh::topology::Topology;
use crate::search::{Field, FieldKind, SearchSpace};

/// The values of each field (every list non-empty; 0 is Istio's default where the field
/// says so).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshRuleGrid {
    /// `connectionPool.tcp.maxConnections` (0: no limit). Without a connection limit a
    /// request never waits for a connection, so the pending limit changes nothing.
    pub max_connections: Vec<u32>,
    /// `connectionPool.http.http1MaxPendingRequests` (0: no limit).
    pub max_pending_requests: Vec<u32>,
    /// `connectionPool.http.http2MaxRequests` (0: no limit).
    pub http2_max_requests: Vec<u32>,
    /// `outlierDetection.consecutive5xxErrors` (0: no outlier detection).
    pub consecutive_5xx: Vec<u32>,
    /// `outlierDetection.baseEjectionTime`, seconds.
    pub ejection_time_s: Vec<f64>,
    /// `retries.attempts` (0: no retries); a value above 0 retries connect failures and
    /// 503s (Istio's default conditions before 1.24).
    pub retry_attempts: Vec<u32>,
    /// `retries.perTryTimeout`, ms (0: none); it acts only with retries (Istio drops it with
    /// the retry policy when `attempts` is 0).
    pub per_try_timeout_ms: Vec<f64>,
    /// The route's `timeout`, ms (0: none).
    pub route_timeout_ms: Vec<f64>,
    /// `retryBudget.percent` (0: no budget; `minRetryConcurrency` at Istio's 3).
    pub retry_budget_percent: Vec<f64>,
}

impl Default for MeshRuleGrid {
    fn default() -> Self {
        MeshRuleGrid {
            max_connections: vec![0, 2, 8],
            max_pending_requests: vec![0, 1, 8, 64],
            http2_max_requests: vec![0, 4, 16],
            consecutive_5xx: vec![0, 1, 3, 10],
            ejection_time_s: vec![1.0, 30.0, 300.0],
            retry_attempts: vec![0, 1, 2, 5],
            per_try_timeout_ms: vec![0.0, 5.0, 20.0, 100.0],
            route_timeout_ms: vec![0.0, 10.0, 25.0, 50.0],
            retry_budget_percent: vec![0.0, 20.0],
        }
    }
}

/// The field names, in the order of a destination's choice.
pub const FIELDS: [&str; 9] = [
    "max_connections",
    "max_pending_requests",
    "http2_max_requests",
    "consecutive_5xx",
    "ejection_time_s",
    "retry_attempts",
    "per_try_timeout_ms",
    "route_timeout_ms",
    "retry_budget_percent",
];

impl MeshRuleGrid {
    /// Each field's values as labels, in [`FIELDS`] order.
    pub fn labels(&self) -> Vec<Vec<String>> {
        let ints = |v: &[u32], zero: &str| v.iter().map(|&x| if x == 0 { zero.to_string() } else { x.to_string() }).collect::<Vec<_>>();
        let floats =
            |v: &[f64], zero: &str| v.iter().map(|&x| if x == 0.0 { zero.to_string() } else { format!("{x}") }).collect::<Vec<_>>();
        vec![
            ints(&self.max_connections, "unlimited"),
            ints(&self.max_pending_requests, "unlimited"),
            ints(&self.http2_max_requests, "unlimited"),
            ints(&self.consecutive_5xx, "off"),
            floats(&self.ejection_time_s, "0"),
            ints(&self.retry_attempts, "off"),
            floats(&self.per_try_timeout_ms, "none"),
            floats(&self.route_timeout_ms, "none"),
            floats(&self.retry_budget_percent, "off"),
        ]
    }

    /// Checks every list; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, labels) in FIELDS.iter().zip(self.labels()) {
            if labels.is_empty() {
                return Err(format!("grid.{name} is empty"));
            }
        }
        for (name, v) in [
            ("ejection_time_s", &self.ejection_time_s),
            ("per_try_timeout_ms", &self.per_try_timeout_ms),
            ("route_timeout_ms", &self.route_timeout_ms),
        ] {
            if let Some(x) = v.iter().find(|x| !(x.is_finite() && **x >= 0.0)) {
                return Err(format!("grid.{name}: {x} is not a number >= 0"));
            }
        }
        if self.ejection_time_s.contains(&0.0) {
            return Err("grid.ejection_time_s: 0 s is no ejection; give a time > 0".into());
        }
        if let Some(x) = self.retry_budget_percent.iter().find(|x| !(0.0..=100.0).contains(*x)) {
            return Err(format!("grid.retry_budget_percent: {x} is not in [0, 100]"));
        }
        Ok(())
    }

    /// Rules per destination: the number of points of one destination's choice.
    pub fn size(&self) -> u128 {
        self.labels().iter().map(|l| l.len() as u128).product()
    }

    /// One destination's policy for a choice (one index per field, [`FIELDS`] order), on top
    /// of what `release` applies where a field is left at its default.
    pub fn policy(&self, release: IstioRelease, choice: &[usize]) -> DestinationPolicy {
        let mut p = DestinationPolicy::release_default(release);
        let limit = |v: u32| if v == 0 { None } else { Some(v) };
        if let Some(v) = limit(self.max_connections[choice[0]]) {
            p.rules.max_connections = v;
        }
        if let Some(v) = limit(self.max_pending_requests[choice[1]]) {
            p.rules.max_pending_requests = v;
        }
        if let Some(v) = limit(self.http2_max_requests[choice[2]]) {
            p.rules.http2_max_requests = Some(v);
        }
        if let Some(v) = limit(self.consecutive_5xx[choice[3]]) {
            p.rules.consecutive_errors = v;
            p.rules.ejection_time_s = self.ejection_time_s[choice[4]];
        }
        let attempts = self.retry_attempts[choice[5]];
        if attempts == 0 {
            p.rules.retries = RetryPolicy::off();
        } else {
            p.rules.retries = RetryPolicy { attempts, ..RetryPolicy::istio_default() };
            p.retry_on = RetryOn::istio_default(true);
        }
        // Istio drops the per-try timeout with the retries when there are none.
        p.per_try_timeout_ms = Some(self.per_try_timeout_ms[choice[6]]).filter(|&t| t > 0.0 && attempts > 0);
        p.timeout_ms = Some(self.route_timeout_ms[choice[7]]).filter(|&t| t > 0.0);
        let percent = self.retry_budget_percent[choice[8]];
        if percent > 0.0 {
            p.retry_budget = Some(RetryBudget { percent, min_concurrency: ISTIO_RETRY_BUDGET_MIN_CONCURRENCY });
        }
        p
    }

    /// The destinations the defender sets rules for: every service some other one calls
    /// (the entry's own rule is never applied: no sidecar calls it).
    pub fn destinations(topology: &Topology) -> Vec<usize> {
        let mut called: Vec<usize> = (0..topology.services.len()).flat_map(|s| topology.callees(s).collect::<Vec<_>>()).collect();
        called.sort_unstable();
        called.dedup();
        called
    }

    /// The joint space: one field per destination and rule field, named
    /// `<service>.<field>`; the limits, counts and times are ordered.
    pub fn space(&self, topology: &Topology) -> SearchSpace {
        let labels = self.labels();
        let mut fields = Vec::new();
        for d in Self::destinations(topology) {
            for (name, l) in FIELDS.iter().zip(&labels) {
                fields.push(Field::new(format!("{}.{name}", topology.services[d].name), FieldKind::Ordered, l.clone()));
            }
        }
        SearchSpace::new(fields)
    }

    /// The mesh's rules for a point of [`MeshRuleGrid::space`]; the services not called
    /// keep the release's defaults.
    pub fn rules(&self, topology: &Topology, release: IstioRelease, point: &[usize]) -> MeshRules {
        let mut rules = MeshRules::defaults(topology, release);
        for (k, d) in Self::destinations(topology).into_iter().enumerate() {
            rules.destinations[d] = self.policy(release, &point[k * FIELDS.len()..(k + 1) * FIELDS.len()]);
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_joint_space_of_the_shop_is_beyond_enumeration_and_maps_to_rules() {
        let grid = MeshRuleGrid::default();
        grid.validate().unwrap();
        let topology = super::super::topology("shop11.yaml");
        let space = grid.space(&topology);
        assert_eq!(MeshRuleGrid::destinations(&topology).len(), 10, "every service but the frontend is called");
        assert!(space.points() >= 10u128.pow(15), "{}", space.points());
        assert_eq!(grid.size(), 3 * 4 * 3 * 4 * 3 * 4 * 4 * 4 * 2);
        let release = IstioRelease::parse("1.30").unwrap();
        // All zeros: every field at Istio's default, retries off; the entry keeps its default.
        let zero = grid.rules(&topology, release, &vec![0; space.fields.len()]);
        let default = MeshRules::defaults(&topology, release);
        for d in MeshRuleGrid::destinations(&topology) {
            let (a, b) = (&zero.destinations[d], &default.destinations[d]);
            assert_eq!(a.rules.max_connections, b.rules.max_connections);
            assert_eq!(a.rules.consecutive_errors, b.rules.consecutive_errors);
            assert_eq!((a.timeout_ms, a.per_try_timeout_ms, a.retry_budget), (None, None, None));
            assert!(a.rules.retries.is_off());
        }
        assert_eq!(zero.destinations[topology.entry], default.destinations[topology.entry]);
        // The last value of every field.
        let last: Vec<usize> = space.sizes().iter().map(|n| n - 1).collect();
        let p = grid.rules(&topology, release, &last).destinations[MeshRuleGrid::destinations(&topology)[0]];
        assert_eq!((p.rules.max_connections, p.rules.max_pending_requests, p.rules.http2_max_requests), (8, 64, Some(16)));
        assert_eq!((p.rules.consecutive_errors, p.rules.ejection_time_s, p.rules.retries.attempts), (10, 300.0, 5));
        assert!(p.rules.retries.on_503);
        assert_eq!((p.per_try_timeout_ms, p.timeout_ms), (Some(100.0), Some(50.0)));
        assert_eq!(p.retry_budget.map(|b| b.percent), Some(20.0));
        let bad = MeshRuleGrid { ejection_time_s: vec![0.0], ..MeshRuleGrid::default() };
        assert!(bad.validate().unwrap_err().contains("ejection_time_s"));
        let empty = MeshRuleGrid { retry_attempts: vec![], ..MeshRuleGrid::default() };
        assert!(empty.validate().unwrap_err().contains("retry_attempts"));
    }
}

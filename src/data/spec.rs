//! Which columns of a trace file are model inputs and outputs, and what each protocol column
//! may hold (protocol.md section 1).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rules::{LOAD_COLUMNS, RESPONSE_COLUMNS, RULE_COLUMNS};

/// Columns the emulator writes after the 11 protocol columns. A protocol file may carry them;
/// any other extra column in a protocol file is most likely a typo, so it is rejected.
pub const DETAIL_COLUMNS: [&str; 12] = [
    "ok_count",
    "fail_overflow",
    "fail_no_healthy",
    "fail_upstream",
    "ejections",
    "sockets",
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "duration_s",
    "seed",
];

/// The feature (model input) and target (model output) columns of a trace table, in order.
///
/// The default is the protocol's 9 -> 2 schema. A config names other columns so that a real
/// testbed's file (with its own column names) loads too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub features: Vec<String>,
    pub targets: Vec<String>,
}

impl Default for TableSpec {
    fn default() -> Self {
        let names = |cols: &[&str]| cols.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let mut features = names(&RULE_COLUMNS);
        features.extend(names(&LOAD_COLUMNS));
        TableSpec { features, targets: names(&RESPONSE_COLUMNS) }
    }
}

impl TableSpec {
    /// The protocol schema (same as `default()`), spelled out for readability at call sites.
    pub fn protocol() -> Self {
        Self::default()
    }

    /// Whether this is the protocol schema: only then are value ranges checked and unknown
    /// columns rejected, because only then do the column names carry a known meaning.
    pub fn is_protocol(&self) -> bool {
        *self == Self::default()
    }

    /// Features then targets: every column a file must have.
    pub fn required_columns(&self) -> impl Iterator<Item = &str> {
        self.features.iter().chain(&self.targets).map(String::as_str)
    }

    /// Checks the spec itself (not a file): at least one feature and one target, no empty or
    /// repeated name.
    pub fn validate(&self) -> Result<()> {
        if self.features.is_empty() {
            return Err(Error::config("the table spec names no feature column"));
        }
        if self.targets.is_empty() {
            return Err(Error::config("the table spec names no target column"));
        }
        let mut seen = HashSet::new();
        for name in self.required_columns() {
            if name.trim().is_empty() {
                return Err(Error::config("the table spec has an empty column name"));
            }
            if !seen.insert(name) {
                return Err(Error::config(format!("the table spec names column `{name}` more than once")));
            }
        }
        Ok(())
    }
}

/// The values a numeric column may hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Domain {
    /// Any finite number: custom specs and detail columns.
    Finite,
    /// A whole number in 1..=u32::MAX (the rule and load settings are `u32` in [`crate::rules`]).
    PositiveInt,
    /// A number > 0.
    Positive,
    /// A number >= 0.
    NonNegative,
    /// A number in `lo..=hi`.
    Within(f64, f64),
}

impl Domain {
    /// The domain of a protocol column (protocol.md section 1), `Finite` for any other name.
    pub(crate) fn of_protocol_column(name: &str) -> Domain {
        match name {
            "max_pending_requests" | "max_connections" | "max_requests_per_connection" | "consecutive_errors" | "threads" | "calls" => {
                Domain::PositiveInt
            }
            "ejection_time_s" | "interval_s" => Domain::Positive,
            "max_ejection_percent" => Domain::Within(0.0, 100.0),
            "qps" => Domain::NonNegative,
            "failure_rate" => Domain::Within(0.0, 1.0),
            _ => Domain::Finite,
        }
    }

    /// Why `x` (already known to be finite) is outside the domain, if it is.
    pub(crate) fn violation(self, x: f64) -> Option<String> {
        match self {
            Domain::Finite => None,
            Domain::PositiveInt if x.fract() != 0.0 => Some(format!("expected a whole number, found {x}")),
            Domain::PositiveInt if !(1.0..=f64::from(u32::MAX)).contains(&x) => {
                Some(format!("expected a whole number in 1..={}, found {x}", u32::MAX))
            }
            Domain::PositiveInt => None,
            Domain::Positive if x <= 0.0 => Some(format!("expected a number > 0, found {x}")),
            Domain::NonNegative if x < 0.0 => Some(format!("expected a number >= 0, found {x}")),
            Domain::Within(lo, hi) if !(lo..=hi).contains(&x) => Some(format!("expected a number in {lo}..={hi}, found {x}")),
            Domain::Positive | Domain::NonNegative | Domain::Within(..) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_protocol_schema() {
        let spec = TableSpec::default();
        assert_eq!(spec.features.len(), 9);
        assert_eq!(spec.features[0], "max_pending_requests");
        assert_eq!(spec.features[8], "calls");
        assert_eq!(spec.targets, ["qps", "failure_rate"]);
        assert!(spec.is_protocol());
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = TableSpec { features: vec!["l1".into(), "c1".into()], targets: vec!["d1".into()] };
        let json = serde_json::to_string(&spec).unwrap();
        let back: TableSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
        assert!(!back.is_protocol());
    }

    #[test]
    fn rejects_spec_with_repeated_column() {
        let spec = TableSpec { features: vec!["a".into()], targets: vec!["a".into()] };
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("`a`"), "{err}");
    }

    #[test]
    fn rejects_spec_without_features_or_targets() {
        let spec = TableSpec { features: vec![], targets: vec!["d1".into()] };
        assert!(spec.validate().is_err());
        let spec = TableSpec { features: vec!["l1".into()], targets: vec![] };
        assert!(spec.validate().is_err());
    }

    #[test]
    fn protocol_domains_follow_the_table() {
        let threads = Domain::of_protocol_column("threads");
        assert!(threads.violation(2.5).is_some());
        assert!(threads.violation(0.0).is_some());
        assert!(threads.violation(3.0).is_none());
        let percent = Domain::of_protocol_column("max_ejection_percent");
        assert!(percent.violation(0.0).is_none());
        assert!(percent.violation(100.0).is_none());
        assert!(percent.violation(100.5).is_some());
        assert!(Domain::of_protocol_column("interval_s").violation(0.0).is_some());
        assert!(Domain::of_protocol_column("qps").violation(0.0).is_none());
        assert!(Domain::of_protocol_column("qps").violation(-1.0).is_some());
        assert!(Domain::of_protocol_column("latency_p99_ms").violation(-1.0).is_none());
    }
}

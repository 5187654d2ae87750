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
/// Optional trace columns (issue 15) for the settings beyond the seven rules, in this order
/// after the seven when a file has them. A file may carry any of them; an absent one reads
/// as the [`TrafficRules::default`] value, so every trace written before they existed reads
/// unchanged, and writers add them only when some row sets a value other than the default.
/// They are not model inputs: they ride along so that ingest, export and validate keep the
/// rules a run was made under. Cells: `http2_max_requests` and `max_retries` a whole number,
/// 4294967295 (Istio's 2^32-1) for no limit; `connect_timeout_ms` a number >= 1;
/// `load_balancer` ROUND_ROBIN, LEAST_REQUEST (or LEAST_CONN) or RANDOM; `retry_attempts`
/// 0..=65535 (0: no retries); the three `retry_on_*`/`retry_previous_hosts` flags 0 or 1
/// (or true/false); `retry_backoff_ms` a number > 0.
pub const KNOB_COLUMNS: [&str; 9] = [
    "http2_max_requests",
    "max_retries",
    "connect_timeout_ms",
    "load_balancer",
    "retry_attempts",
    "retry_on_connect_failure",
    "retry_on_503",
    "retry_previous_hosts",
    "retry_backoff_ms",
];

/// Where each setting [`TrafficRules::validate_knobs`] names lives: its name in that
/// function's messages, its trace column and its YAML field (in the DestinationRule's
/// `spec.trafficPolicy`, or in a VirtualService route for `retries.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnobField {
    pub rust: &'static str,
    pub column: &'static str,
    pub yaml: &'static str,
}

pub const KNOB_FIELDS: [KnobField; 6] = [
    KnobField { rust: "http2_max_requests", column: "http2_max_requests", yaml: "connectionPool.http.http2MaxRequests" },
    KnobField { rust: "max_retries", column: "max_retries", yaml: "connectionPool.http.maxRetries" },
    KnobField { rust: "connect_timeout_ms", column: "connect_timeout_ms", yaml: "connectionPool.tcp.connectTimeout" },
    KnobField { rust: "retries.attempts", column: "retry_attempts", yaml: "retries.attempts" },
    KnobField { rust: "retries.backoff_base_ms", column: "retry_backoff_ms", yaml: "retries.backoff" },
    // Istio has no field for it (it always sets 5); no trace column either.
    KnobField { rust: "retries.host_selection_retry_max_attempts", column: "retry_attempts", yaml: "retries" },
];

/// The field a message of [`TrafficRules::validate_knobs`] names, and the rest of the
/// message (from the word after the name), so callers can name their own spelling of it.
pub fn knob_field_of(message: &str) -> Option<(KnobField, &str)> {
    KNOB_FIELDS.iter().find_map(|f| message.strip_prefix(f.rust).filter(|rest| rest.starts_with(' ')).map(|rest| (*f, rest.trim_start())))
}

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

    /// The seven rules of `x` (as [`TrafficRules::from_features`]) with the other settings of
    /// `knobs`: a trace row's rules when the file has [`KNOB_COLUMNS`].
    pub fn from_features_and_knobs(x: &[f64], knobs: &TrafficRules) -> TrafficRules {
        TrafficRules::from_features(x).with_knobs_of(knobs)
    }

    /// These seven rules with every other setting taken from `knobs`.
    pub fn with_knobs_of(&self, knobs: &TrafficRules) -> TrafficRules {
        TrafficRules {
            max_pending_requests: self.max_pending_requests,
            max_connections: self.max_connections,
            max_requests_per_connection: self.max_requests_per_connection,
            ejection_time_s: self.ejection_time_s,
            max_ejection_percent: self.max_ejection_percent,
            interval_s: self.interval_s,
            consecutive_errors: self.consecutive_errors,
            ..*knobs
        }
    }

    /// True when every setting beyond the seven trace columns is at its default: such a rule
    /// is written (trace, manifest, YAML) exactly as before those settings existed.
    pub fn has_default_knobs(&self) -> bool {
        TrafficRules::default().with_knobs_of(self) == TrafficRules::default()
    }

    /// The [`KNOB_COLUMNS`] values as CSV fields, in that order; [`TrafficRules::set_knob`]
    /// reads each back exactly.
    pub fn knob_csv_fields(&self) -> String {
        let limit = |n: Option<u32>| n.unwrap_or(u32::MAX).to_string();
        let r = &self.retries;
        format!(
            "{},{},{},{},{},{},{},{},{}",
            limit(self.http2_max_requests),
            limit(self.max_retries),
            self.connect_timeout_ms,
            self.load_balancer.istio_name(),
            r.attempts,
            u8::from(r.on_connect_failure),
            u8::from(r.on_503),
            u8::from(r.previous_hosts),
            r.backoff_base_ms
        )
    }

    /// Sets the setting of one [`KNOB_COLUMNS`] column from its cell text. The error says
    /// what the column holds (the caller names the file, row and column); the cross-field
    /// checks are [`TrafficRules::validate_knobs`]'s.
    pub fn set_knob(&mut self, column: &str, text: &str) -> Result<(), String> {
        let text = text.trim();
        let number = || text.parse::<f64>().ok().filter(|x| x.is_finite());
        let whole = |lo: u32, hi: u32, what: &str| -> Result<u32, String> {
            number()
                .filter(|x| x.fract() == 0.0 && (f64::from(lo)..=f64::from(hi)).contains(x))
                .map(|x| x as u32)
                .ok_or_else(|| format!("expected a whole number in {lo}..={hi}{what}, found `{text}`"))
        };
        let flag = || match text {
            "1" | "true" => Ok(true),
            "0" | "false" => Ok(false),
            _ => Err(format!("expected 0 or 1 (or false or true), found `{text}`")),
        };
        let limit = || -> Result<Option<u32>, String> {
            let n = whole(1, u32::MAX, " (4294967295: no limit)")?;
            Ok((n != u32::MAX).then_some(n))
        };
        match column {
            "http2_max_requests" => self.http2_max_requests = limit()?,
            "max_retries" => self.max_retries = limit()?,
            "connect_timeout_ms" => {
                self.connect_timeout_ms =
                    number().filter(|&x| x >= 1.0).ok_or_else(|| format!("expected a number of milliseconds >= 1, found `{text}`"))?
            }
            "load_balancer" => {
                self.load_balancer = LoadBalancer::from_istio_name(text)
                    .ok_or_else(|| format!("expected ROUND_ROBIN, LEAST_REQUEST (or LEAST_CONN) or RANDOM, found `{text}`"))?
            }
            "retry_attempts" => self.retries.attempts = whole(0, u32::from(u16::MAX), " (0: no retries)")?,
            "retry_on_connect_failure" => self.retries.on_connect_failure = flag()?,
            "retry_on_503" => self.retries.on_503 = flag()?,
            "retry_previous_hosts" => self.retries.previous_hosts = flag()?,
            "retry_backoff_ms" => {
                self.retries.backoff_base_ms =
                    number().filter(|&x| x > 0.0).ok_or_else(|| format!("expected a number of milliseconds > 0, found `{text}`"))?
            }
            _ => return Err(format!("`{column}` is not one of the optional rule columns {}", KNOB_COLUMNS.join(", "))),
        }
        Ok(())
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

impl TrafficRules {
    /// The rule in a few words, for tables and command output.
    pub fn describe(&self) -> String {
        let rules = self;
        let limit = |v: u32| if v == u32::MAX { "unlimited".to_string() } else { v.to_string() };
        let od = if rules.consecutive_errors == u32::MAX {
            "no outlier detection".to_string()
        } else {
            format!("5xx {}, eject {}% for {} s", rules.consecutive_errors, rules.max_ejection_percent, rules.ejection_time_s)
        };
        let retries = if rules.retries.is_off() {
            "no retries".to_string()
        } else {
            format!("{} retries{}", rules.retries.attempts, if rules.retries.on_503 { " (503 too)" } else { " (connect failures)" })
        };
        format!(
            "conn {}, pending {}, in-flight {}, req/conn {}, {od}, {retries}, {:?}",
            limit(rules.max_connections),
            limit(rules.max_pending_requests),
            rules.http2_max_requests.map_or("unlimited".to_string(), |v| v.to_string()),
            limit(rules.max_requests_per_connection),
            rules.load_balancer
        )
    }

    /// Checks the settings beyond the seven trace columns, naming the field and the value.
    pub fn validate_knobs(&self) -> Result<(), String> {
        if self.http2_max_requests == Some(0) {
            return Err("http2_max_requests must be >= 1 (Istio reads 0 as unset: leave it out for no limit), but is 0".into());
        }
        if self.max_retries == Some(0) {
            return Err("max_retries must be >= 1 (Istio reads 0 as unset: leave it out for no limit), but is 0".into());
        }
        if !(self.connect_timeout_ms.is_finite() && self.connect_timeout_ms >= 1.0) {
            return Err(format!("connect_timeout_ms must be a finite number >= 1 (Istio: >= 1ms), but is {}", self.connect_timeout_ms));
        }
        let r = &self.retries;
        if !(r.backoff_base_ms.is_finite() && r.backoff_base_ms > 0.0) {
            return Err(format!("retries.backoff_base_ms must be a finite number > 0, but is {}", r.backoff_base_ms));
        }
        if r.attempts > u16::MAX as u32 {
            return Err(format!("retries.attempts must be <= {}, but is {}", u16::MAX, r.attempts));
        }
        if r.host_selection_retry_max_attempts > 64 {
            return Err(format!("retries.host_selection_retry_max_attempts must be <= 64, but is {}", r.host_selection_retry_max_attempts));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn odd() -> TrafficRules {
        TrafficRules {
            http2_max_requests: Some(64),
            max_retries: None,
            connect_timeout_ms: 2.5,
            load_balancer: LoadBalancer::Random,
            retries: RetryPolicy {
                attempts: 4,
                on_503: false,
                previous_hosts: false,
                backoff_base_ms: 12.5,
                ..RetryPolicy::istio_default()
            },
            ..TrafficRules::default()
        }
    }

    /// The rules the optional columns of `rules` read back as.
    fn read_back(rules: &TrafficRules) -> TrafficRules {
        let mut back = TrafficRules::default();
        for (column, cell) in KNOB_COLUMNS.iter().zip(rules.knob_csv_fields().split(',')) {
            back.set_knob(column, cell).unwrap();
        }
        back
    }

    #[test]
    fn the_optional_columns_read_back_exactly() {
        for rules in [TrafficRules::default(), odd(), TrafficRules { retries: RetryPolicy::istio_default(), ..TrafficRules::default() }] {
            assert_eq!(read_back(&rules), rules);
        }
        assert_eq!(TrafficRules::default().knob_csv_fields(), "4294967295,4294967295,10000,ROUND_ROBIN,0,1,1,1,25");
        assert!(TrafficRules::default().has_default_knobs());
        assert!(!odd().has_default_knobs());
        let seven = TrafficRules { max_connections: 3, interval_s: 0.5, ..TrafficRules::default() };
        assert!(seven.has_default_knobs());
        assert_eq!(
            TrafficRules::from_features_and_knobs(&seven.to_features(), &odd()),
            TrafficRules { max_connections: 3, interval_s: 0.5, ..odd() }
        );
    }

    #[test]
    fn bad_cells_say_what_the_column_holds() {
        let mut r = TrafficRules::default();
        for (column, cell, needle) in [
            ("http2_max_requests", "0", "1..=4294967295"),
            ("max_retries", "2.5", "whole number"),
            ("connect_timeout_ms", "0.5", ">= 1"),
            ("load_balancer", "PASSTHROUGH", "ROUND_ROBIN"),
            ("retry_attempts", "70000", "0..=65535"),
            ("retry_on_503", "yes", "0 or 1"),
            ("retry_backoff_ms", "0", "> 0"),
            ("retry_backoff_ms", "NaN", "> 0"),
            ("colour", "1", "not one of the optional rule columns"),
        ] {
            let err = r.set_knob(column, cell).unwrap_err();
            assert!(err.contains(needle), "{column} = {cell}: {err}");
        }
        r.set_knob("retry_on_503", "false").unwrap();
        r.set_knob("load_balancer", "LEAST_CONN").unwrap();
        assert_eq!((r.retries.on_503, r.load_balancer), (false, LoadBalancer::LeastRequest));
    }

    #[test]
    fn knob_messages_name_their_field() {
        let bad = TrafficRules { http2_max_requests: Some(0), ..TrafficRules::default() };
        let message = bad.validate_knobs().unwrap_err();
        let (field, rest) = knob_field_of(&message).unwrap();
        assert_eq!((field.column, field.yaml), ("http2_max_requests", "connectionPool.http.http2MaxRequests"));
        assert!(rest.starts_with("must be >= 1"), "{rest}");
        let bad = TrafficRules { retries: RetryPolicy { attempts: 70_000, ..RetryPolicy::off() }, ..TrafficRules::default() };
        assert_eq!(knob_field_of(&bad.validate_knobs().unwrap_err()).unwrap().0.column, "retry_attempts");
    }
}

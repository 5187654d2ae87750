//! The DestinationRule and VirtualService of a run: Istio's YAML (`networking.istio.io/v1`)
//! to the traffic rules and back. `meshrl ingest` reads the rules each real run was made
//! under; `meshrl export` and [`crate::export::write_rule_bundle`] write the rules the agents
//! found: one definition of the mapping, so the round trip is exact.
//!
//! The DestinationRule holds the seven trace rules and the settings beyond them (issue 15:
//! `http2MaxRequests`, `maxRetries`, `connectTimeout`, `loadBalancer.simple`); the
//! VirtualService holds the route's `retries`. What Istio does with each is in
//! `src/emulator/knobs.rs`.
//!
//! The durations both kinds spell are in `duration.rs`, the VirtualService in
//! `virtual_service.rs`; this file holds the DestinationRule and the files of a run.

mod duration;
mod virtual_service;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::emulator::knobs::{
    ENVOY_BASE_EJECTION_TIME_S, ENVOY_CONSECUTIVE_5XX, ENVOY_MAX_EJECTION_PERCENT, ENVOY_OUTLIER_INTERVAL_S, ISTIO_CONNECT_TIMEOUT_MS,
};
use crate::error::{Error, Result};
use crate::rules::{knob_field_of, LoadBalancer, RetryPolicy, TrafficRules};
use duration::{base_ejection_time, connect_timeout, interval};
pub use duration::{IstioDuration, IstioMillis};
pub use virtual_service::{
    read_virtual_service, Destination, HttpRetry, HttpRoute, RouteDestination, RouteSettings, VirtualService, VirtualServiceSpec,
};

/// The file names of a rule bundle ([`crate::export::write_rule_bundle`]): a directory
/// whose DestinationRule and VirtualService apply to every Fortio result in it.
pub const BUNDLE_DESTINATION_RULE: &str = "destination-rule.yaml";
pub const BUNDLE_VIRTUAL_SERVICE: &str = "virtual-service.yaml";

/// An Istio DestinationRule (networking.istio.io/v1) as far as the trace is concerned.
/// Fields outside `loadBalancer`, `connectionPool` and `outlierDetection` (labels, tls ...)
/// are ignored; inside them every field must be one the rules hold. Subsets may not override
/// them ([`read_destination_rule`] refuses a subset's own settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRule {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: DestinationRuleSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    pub host: String,
    /// Absent: every setting at Istio's default.
    #[serde(default)]
    pub traffic_policy: TrafficPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Absent: the emulator's default, round robin (Istio itself then applies LEAST_REQUEST
    /// since 1.14; the full writer always writes it, see [`DestinationRule::new_full`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Absent: Istio's defaults, no limits.
    #[serde(default)]
    pub connection_pool: ConnectionPool,
    /// Absent: no outlier detection at all (Envoy ejects no host); a block that is there
    /// but omits a field gets Envoy's default for it.
    #[serde(default = "OutlierDetection::absent")]
    pub outlier_detection: OutlierDetection,
    /// Istio >= 1.27's `retryBudget`, read by the mesh emulator only (a trace has no column
    /// for it, so the trace's reader refuses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudgetSettings>,
}

/// `trafficPolicy.retryBudget`: concurrent retries at most max(`minRetryConcurrency`,
/// `percent` % of the active and pending requests). Absent fields take Istio's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryBudgetSettings {
    /// Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_retry_concurrency: Option<u32>,
}

/// `loadBalancer`: only `simple`. `consistentHash`, `localityLbSetting` or
/// `warmupDurationSecs` change how hosts are picked in ways the emulator does not model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerSettings {
    /// Kept as text so that an unmodelled value is refused with its name and the field's.
    pub simple: String,
}

/// Unknown fields are denied from here down: any other circuit-breaker setting (e.g.
/// `idleTimeout`) changes the run in a way the trace cannot record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPool {
    #[serde(default)]
    pub tcp: TcpSettings,
    #[serde(default)]
    pub http: HttpSettings,
}

/// What Istio applies to a connection-pool limit a rule leaves out: 2^32-1, no limit
/// (`maxRequestsPerConnection` 0, its default, means no limit as well).
fn istio_no_limit() -> u32 {
    u32::MAX
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpSettings {
    #[serde(default = "istio_no_limit")]
    pub max_connections: u32,
    /// Absent: Istio's `meshConfig.connectTimeout`, 10 s.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "connect_timeout")]
    pub connect_timeout: Option<IstioMillis>,
}

/// `http2MaxRequests` and `maxRetries` absent (or 2147483647 or more): no limit, Istio's 2^32-1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpSettings {
    #[serde(default = "istio_no_limit")]
    pub http1_max_pending_requests: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<u32>,
    #[serde(default = "istio_no_limit")]
    pub max_requests_per_connection: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutlierDetection {
    #[serde(rename = "consecutive5xxErrors", default = "envoy_consecutive_5xx")]
    pub consecutive_5xx_errors: u32,
    #[serde(deserialize_with = "interval", default = "envoy_interval")]
    pub interval: IstioDuration,
    #[serde(deserialize_with = "base_ejection_time", default = "envoy_base_ejection_time")]
    pub base_ejection_time: IstioDuration,
    #[serde(default = "envoy_max_ejection_percent")]
    pub max_ejection_percent: u32,
}

impl Default for TrafficPolicy {
    /// A rule without a `trafficPolicy`: Istio's defaults, no outlier detection.
    fn default() -> Self {
        TrafficPolicy {
            load_balancer: None,
            connection_pool: ConnectionPool::default(),
            outlier_detection: OutlierDetection::absent(),
            retry_budget: None,
        }
    }
}

impl OutlierDetection {
    /// A rule without an `outlierDetection` block: no host is ever ejected (in the rules'
    /// terms, `u32::MAX` consecutive 5xx), the other fields at Envoy's defaults.
    fn absent() -> OutlierDetection {
        OutlierDetection { consecutive_5xx_errors: u32::MAX, ..OutlierDetection::default() }
    }
}

impl Default for TcpSettings {
    fn default() -> Self {
        TcpSettings { max_connections: istio_no_limit(), connect_timeout: None }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            http1_max_pending_requests: istio_no_limit(),
            http2_max_requests: None,
            max_requests_per_connection: istio_no_limit(),
            max_retries: None,
        }
    }
}

impl Default for OutlierDetection {
    /// An `outlierDetection: {}` block: Envoy's defaults for every field.
    fn default() -> Self {
        OutlierDetection {
            consecutive_5xx_errors: envoy_consecutive_5xx(),
            interval: envoy_interval(),
            base_ejection_time: envoy_base_ejection_time(),
            max_ejection_percent: envoy_max_ejection_percent(),
        }
    }
}

fn envoy_consecutive_5xx() -> u32 {
    ENVOY_CONSECUTIVE_5XX
}
fn envoy_interval() -> IstioDuration {
    IstioDuration(ENVOY_OUTLIER_INTERVAL_S)
}
fn envoy_base_ejection_time() -> IstioDuration {
    IstioDuration(ENVOY_BASE_EJECTION_TIME_S)
}
fn envoy_max_ejection_percent() -> u32 {
    ENVOY_MAX_EJECTION_PERCENT as u32
}

const API_VERSION: &str = "networking.istio.io/v1";

/// Istio's connection-pool limits are int32 fields: a larger limit has no spelling, and no
/// limit (u32::MAX here, Istio's own 2^32-1 inside Envoy) is written as this, the largest
/// int32 (or, for `http2MaxRequests` and `maxRetries` in the compact writer, left out).
const ISTIO_INT32_MAX: u32 = i32::MAX as u32;

/// Why `rules` has no DestinationRule spelling, as (trace column, message): a value Istio
/// cannot hold, or one [`TrafficRules::validate_knobs`] refuses.
pub fn rule_spelling(rules: &TrafficRules) -> std::result::Result<(), (&'static str, String)> {
    let p = rules.max_ejection_percent;
    if !(p.fract() == 0.0 && (0.0..=100.0).contains(&p)) {
        return Err((
            "max_ejection_percent",
            format!("max_ejection_percent {p} is not a whole number in 0..=100 (Istio's maxEjectionPercent)"),
        ));
    }
    if let Err(why) = rules.validate_knobs() {
        return Err(match knob_field_of(&why) {
            Some((field, _)) => (field.column, why),
            None => ("rules", why),
        });
    }
    for (column, yaml, limit) in [
        ("max_connections", "maxConnections", Some(rules.max_connections)),
        ("max_pending_requests", "http1MaxPendingRequests", Some(rules.max_pending_requests)),
        ("max_requests_per_connection", "maxRequestsPerConnection", Some(rules.max_requests_per_connection)),
        ("http2_max_requests", "http2MaxRequests", rules.http2_max_requests),
        ("max_retries", "maxRetries", rules.max_retries),
    ] {
        if let Some(n) = limit.filter(|&n| n > ISTIO_INT32_MAX && n != u32::MAX) {
            return Err((
                column,
                format!(
                    "{column} {n} is beyond Istio's {yaml} (an int32, at most {ISTIO_INT32_MAX}; \
                     4294967295 here means no limit)"
                ),
            ));
        }
    }
    if IstioMillis::format(rules.connect_timeout_ms).is_none() {
        return Err((
            "connect_timeout_ms",
            format!("connect_timeout_ms {} is not a whole number of milliseconds (Istio's connectTimeout)", rules.connect_timeout_ms),
        ));
    }
    Ok(())
}

/// Why `retries` has no VirtualService spelling, as (trace column, message).
pub fn retry_spelling(retries: &RetryPolicy) -> std::result::Result<(), (&'static str, String)> {
    if retries.is_off() {
        return Ok(());
    }
    let istio = RetryPolicy::istio_default();
    if retries.host_selection_retry_max_attempts != istio.host_selection_retry_max_attempts {
        return Err((
            "retry_attempts",
            format!(
                "retries.host_selection_retry_max_attempts {} has no Istio field (Istio always sets {})",
                retries.host_selection_retry_max_attempts, istio.host_selection_retry_max_attempts
            ),
        ));
    }
    if IstioMillis::format(retries.backoff_base_ms).is_none() {
        return Err((
            "retry_backoff_ms",
            format!("retry_backoff_ms {} is not a whole number of milliseconds >= 1 (Istio's retries.backoff)", retries.backoff_base_ms),
        ));
    }
    if retries.attempts > ISTIO_INT32_MAX {
        return Err(("retry_attempts", format!("retry_attempts {} is beyond Istio's retries.attempts (an int32)", retries.attempts)));
    }
    Ok(())
}

impl DestinationRule {
    /// The rule that applies `rules` to `host`, writing each setting beyond the seven trace
    /// rules only when it differs from its default: a rule of the seven alone is written
    /// byte for byte as before those settings existed (old exports stay the same). Fails
    /// if a value has no Istio spelling ([`rule_spelling`]).
    pub fn new(name: &str, host: &str, rules: &TrafficRules) -> std::result::Result<Self, String> {
        Self::build(name, host, rules, false)
    }

    /// [`DestinationRule::new`] writing every setting, defaults included: `connectTimeout`
    /// (Istio's 10 s unless set) and `loadBalancer.simple` (ROUND_ROBIN unless set), so the
    /// cluster runs the emulator's defaults rather than Istio's (LEAST_REQUEST since 1.14).
    /// No limit is written out too, as the largest int32 (Istio's 2^32-1 does not fit its
    /// int32 fields).
    pub fn new_full(name: &str, host: &str, rules: &TrafficRules) -> std::result::Result<Self, String> {
        Self::build(name, host, rules, true)
    }

    fn build(name: &str, host: &str, rules: &TrafficRules, full: bool) -> std::result::Result<Self, String> {
        rule_spelling(rules).map_err(|(_, why)| why)?;
        let default = TrafficRules::default();
        let write = |differs: bool| full || differs;
        // Istio's connection-pool fields are int32: "no limit" (u32::MAX here) is written as
        // the largest int32, which Envoy treats as no limit as well; the full writer writes
        // it for the optional limits too, so every field is spelled out.
        let int32 = |v: u32| if v == u32::MAX { ISTIO_INT32_MAX } else { v };
        let limit = |n: Option<u32>| match n.filter(|&n| n != u32::MAX) {
            None if full => Some(ISTIO_INT32_MAX),
            other => other,
        };
        Ok(DestinationRule {
            api_version: API_VERSION.into(),
            kind: "DestinationRule".into(),
            metadata: Metadata { name: name.into() },
            spec: DestinationRuleSpec {
                host: host.into(),
                traffic_policy: TrafficPolicy {
                    load_balancer: write(rules.load_balancer != default.load_balancer)
                        .then(|| LoadBalancerSettings { simple: rules.load_balancer.istio_name().into() }),
                    connection_pool: ConnectionPool {
                        tcp: TcpSettings {
                            max_connections: int32(rules.max_connections),
                            connect_timeout: write(rules.connect_timeout_ms != default.connect_timeout_ms)
                                .then_some(IstioMillis(rules.connect_timeout_ms)),
                        },
                        http: HttpSettings {
                            http1_max_pending_requests: int32(rules.max_pending_requests),
                            http2_max_requests: limit(rules.http2_max_requests),
                            max_requests_per_connection: int32(rules.max_requests_per_connection),
                            max_retries: limit(rules.max_retries),
                        },
                    },
                    outlier_detection: OutlierDetection {
                        consecutive_5xx_errors: rules.consecutive_errors,
                        interval: IstioDuration(rules.interval_s),
                        base_ejection_time: IstioDuration(rules.ejection_time_s),
                        max_ejection_percent: rules.max_ejection_percent as u32,
                    },
                    retry_budget: None,
                },
            },
        })
    }

    /// The traffic rules (the seven checked against the protocol's ranges, the others by
    /// [`TrafficRules::validate_knobs`]), retries off (they are the VirtualService's); an
    /// error names the YAML field.
    pub fn rules(&self) -> std::result::Result<TrafficRules, String> {
        let policy = &self.spec.traffic_policy;
        let (pool, od) = (&policy.connection_pool, &policy.outlier_detection);
        let at = "spec.trafficPolicy";
        for (name, v) in [
            ("connectionPool.tcp.maxConnections", pool.tcp.max_connections),
            ("connectionPool.http.http1MaxPendingRequests", pool.http.http1_max_pending_requests),
            ("connectionPool.http.maxRequestsPerConnection", pool.http.max_requests_per_connection),
            ("outlierDetection.consecutive5xxErrors", od.consecutive_5xx_errors),
        ] {
            if v == 0 {
                return Err(format!("{at}.{name}: must be >= 1, found 0"));
            }
        }
        if od.max_ejection_percent > 100 {
            return Err(format!("{at}.outlierDetection.maxEjectionPercent: must be in 0..=100, found {}", od.max_ejection_percent));
        }
        let load_balancer = match &policy.load_balancer {
            None => LoadBalancer::default(),
            Some(lb) => LoadBalancer::from_istio_name(&lb.simple).ok_or_else(|| {
                format!(
                    "{at}.loadBalancer.simple: `{}` is not modelled by the emulator: use ROUND_ROBIN, LEAST_REQUEST (or LEAST_CONN) or RANDOM",
                    lb.simple
                )
            })?,
        };
        // The largest int32 (what the writers spell "no limit") and 4294967295 (Istio's own
        // default threshold) both mean no limit: the same as no field.
        let limit = |n: Option<u32>| n.filter(|&n| n < ISTIO_INT32_MAX);
        let unlimited = |n: u32| if n >= ISTIO_INT32_MAX { u32::MAX } else { n };
        let rules = TrafficRules {
            max_pending_requests: unlimited(pool.http.http1_max_pending_requests),
            max_connections: unlimited(pool.tcp.max_connections),
            max_requests_per_connection: unlimited(pool.http.max_requests_per_connection),
            ejection_time_s: od.base_ejection_time.0,
            max_ejection_percent: f64::from(od.max_ejection_percent),
            interval_s: od.interval.0,
            consecutive_errors: od.consecutive_5xx_errors,
            http2_max_requests: limit(pool.http.http2_max_requests),
            max_retries: limit(pool.http.max_retries),
            connect_timeout_ms: pool.tcp.connect_timeout.map_or(ISTIO_CONNECT_TIMEOUT_MS, |d| d.0),
            load_balancer,
            retries: RetryPolicy::off(),
        };
        rules.validate_knobs().map_err(|why| match knob_field_of(&why) {
            Some((field, rest)) => format!("{at}.{}: {rest}", field.yaml),
            None => format!("{at}: {why}"),
        })?;
        Ok(rules)
    }

    pub fn to_yaml(&self) -> std::result::Result<String, String> {
        serde_yaml::to_string(self).map_err(|e| e.to_string())
    }
}

/// Reads the traffic rules of one DestinationRule YAML file (retries off: see
/// [`read_rule_files`] for the VirtualService beside it).
pub fn read_destination_rule(path: &Path) -> Result<TrafficRules> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| Error::file(path, format!("not a valid DestinationRule: {e}")))?;
    let rule = destination_rule_of(path, "", doc)?;
    if rule.spec.traffic_policy.retry_budget.is_some() {
        return Err(Error::file(
            path,
            "field `spec.trafficPolicy.retryBudget`: a trace has no column for it (the mesh emulator reads it: `meshrl mesh run --rules-dir`)",
        ));
    }
    rule.rules().map_err(|e| Error::file(path, format!("field {e}")))
}

/// One DestinationRule document of `path` (`doc` names it in a file of several, e.g.
/// " (document 2)"), its kind checked and subset-level policies refused.
pub fn destination_rule_of(path: &Path, doc: &str, value: serde_yaml::Value) -> Result<DestinationRule> {
    refuse_subset_policies(path, doc, &value)?;
    let rule: DestinationRule = from_document(path, doc, "DestinationRule", &value)?;
    check_kind(path, &rule.kind, &rule.api_version, "DestinationRule")?;
    Ok(rule)
}

/// One YAML document as `T`. Read from its text, not from the parsed value: only then do
/// serde_yaml's messages carry the field's path (`spec.trafficPolicy.outlierDetection.interval`).
pub(crate) fn from_document<T: serde::de::DeserializeOwned>(path: &Path, doc: &str, kind: &str, value: &serde_yaml::Value) -> Result<T> {
    let invalid = |e: serde_yaml::Error| Error::file(path, format!("not a valid {kind}{doc}: {e}"));
    serde_yaml::from_str(&serde_yaml::to_string(value).map_err(invalid)?).map_err(invalid)
}

pub(crate) fn check_kind(path: &Path, kind: &str, api_version: &str, expected: &str) -> Result<()> {
    if kind != expected {
        return Err(Error::file(path, format!("field `kind`: expected {expected}, found {kind}")));
    }
    if !api_version.starts_with("networking.istio.io/") {
        return Err(Error::file(path, format!("field `apiVersion`: expected {API_VERSION}, found {api_version}")));
    }
    Ok(())
}

/// A subset's `trafficPolicy` overrides the rule's settings it names for the traffic routed
/// to that subset, so a circuit-breaker or outlier-detection setting there, or a load
/// balancer other than the rule's, makes the run's rules other than the ones read from
/// `spec.trafficPolicy`: refused. Other subset settings (labels, tls) are ignored, as at the
/// rule's level.
fn refuse_subset_policies(path: &Path, doc_name: &str, doc: &serde_yaml::Value) -> Result<()> {
    let Some(subsets) = doc.get("spec").and_then(|s| s.get("subsets")).and_then(|s| s.as_sequence()) else {
        return Ok(());
    };
    // The rule's load balancer as read (absent: round robin, [`TrafficPolicy::load_balancer`]).
    let rule_lb = doc.get("spec").and_then(|s| s.get("trafficPolicy")).and_then(|p| p.get("loadBalancer")).filter(|v| !v.is_null());
    let round_robin: serde_yaml::Value =
        serde_yaml::from_str(&format!("simple: {}", LoadBalancer::default().istio_name())).unwrap_or(serde_yaml::Value::Null);
    let rule_lb = rule_lb.unwrap_or(&round_robin);
    for (i, subset) in subsets.iter().enumerate() {
        let Some(policy) = subset.get("trafficPolicy") else { continue };
        for key in ["connectionPool", "outlierDetection", "loadBalancer", "portLevelSettings"] {
            let overrides = policy.get(key).is_some_and(|v| !v.is_null() && (key != "loadBalancer" || v != rule_lb));
            if overrides {
                let name = subset.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                return Err(Error::file(
                    path,
                    format!(
                        "field `spec.subsets[{i}].trafficPolicy.{key}`{doc_name} (subset `{name}`): a subset-level policy overrides the rule's \
                         for that subset's traffic, which the trace's rule columns cannot record; put the settings in \
                         `spec.trafficPolicy` only"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The VirtualService file that goes with a DestinationRule file: `virtual-service.yaml`
/// beside a bundle's `destination-rule.yaml`, `<stem>.virtual-service.yaml` beside any other
/// `<stem>.yaml` (`run_3.yaml` and `run_3.virtual-service.yaml` in an export).
pub fn virtual_service_beside(destination_rule: &Path) -> PathBuf {
    if destination_rule.file_name().is_some_and(|n| n == BUNDLE_DESTINATION_RULE) {
        return destination_rule.with_file_name(BUNDLE_VIRTUAL_SERVICE);
    }
    let stem = destination_rule.file_stem().unwrap_or_default().to_string_lossy();
    destination_rule.with_file_name(format!("{stem}.virtual-service.yaml"))
}

/// The rules of a run: its DestinationRule and, when the file is there, the retries of its
/// VirtualService ([`virtual_service_beside`]). Without a VirtualService file the retries
/// are off, the trace's default (as every trace ingested before they were read).
pub fn read_rule_files(destination_rule: &Path) -> Result<TrafficRules> {
    let mut rules = read_destination_rule(destination_rule)?;
    let vs = virtual_service_beside(destination_rule);
    if vs.is_file() {
        rules.retries = read_virtual_service(&vs)?;
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seven rules of the fixture `run_a`-like rule the ingest tests use.
    fn seven() -> TrafficRules {
        TrafficRules {
            max_pending_requests: 2,
            max_connections: 1,
            max_requests_per_connection: 3,
            ejection_time_s: 180.0,
            max_ejection_percent: 100.0,
            interval_s: 0.5,
            consecutive_errors: 1,
            ..TrafficRules::default()
        }
    }

    /// Every setting beyond the seven away from its default.
    fn every_setting() -> TrafficRules {
        TrafficRules {
            http2_max_requests: Some(64),
            max_retries: Some(3),
            connect_timeout_ms: 250.0,
            load_balancer: LoadBalancer::LeastRequest,
            retries: RetryPolicy {
                attempts: 3,
                on_connect_failure: true,
                on_503: false,
                previous_hosts: false,
                host_selection_retry_max_attempts: 5,
                backoff_base_ms: 40.0,
            },
            ..seven()
        }
    }

    /// Writes the DestinationRule (and, unless `None`, the VirtualService) of `rules` as
    /// `r.yaml` and `r.virtual-service.yaml` in `dir`; returns the rule's path.
    fn write_files(dir: &Path, rule: &DestinationRule, vs: Option<&VirtualService>) -> PathBuf {
        let path = dir.join("r.yaml");
        std::fs::write(&path, rule.to_yaml().unwrap()).unwrap();
        let vs_path = virtual_service_beside(&path);
        match vs {
            Some(vs) => std::fs::write(&vs_path, vs.to_yaml().unwrap()).unwrap(),
            None => {
                let _ = std::fs::remove_file(&vs_path);
            }
        }
        path
    }

    #[test]
    fn a_rule_of_the_seven_writes_the_yaml_it_always_did() {
        // The output of the writer before the other settings existed, byte for byte: old
        // exports (and anything compared with them) stay the same.
        let yaml = DestinationRule::new("meshrl-s1-1", "productpage", &seven()).unwrap().to_yaml().unwrap();
        assert_eq!(
            yaml,
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: meshrl-s1-1\nspec:\n  host: productpage\n  \
             trafficPolicy:\n    connectionPool:\n      tcp:\n        maxConnections: 1\n      http:\n        http1MaxPendingRequests: 2\n        \
             maxRequestsPerConnection: 3\n    outlierDetection:\n      consecutive5xxErrors: 1\n      interval: 500ms\n      \
             baseEjectionTime: 180s\n      maxEjectionPercent: 100\n"
        );
        let unlimited = DestinationRule::new("d", "h", &TrafficRules::default()).unwrap().to_yaml().unwrap();
        // No limit, as the largest int32 (Istio's fields are int32; 4294967295 would be refused).
        assert!(unlimited.contains("maxConnections: 2147483647\n") && !unlimited.contains("connectTimeout"), "{unlimited}");
        assert_eq!(serde_yaml::from_str::<DestinationRule>(&unlimited).unwrap().rules().unwrap(), TrafficRules::default());
        let full = DestinationRule::new_full("d", "h", &TrafficRules::default()).unwrap().to_yaml().unwrap();
        assert!(full.contains("http2MaxRequests: 2147483647\n") && full.contains("maxRetries: 2147483647\n"), "{full}");
        // Only a setting away from its default appears.
        let lb = TrafficRules { load_balancer: LoadBalancer::Random, ..seven() };
        let yaml = DestinationRule::new("d", "h", &lb).unwrap().to_yaml().unwrap();
        assert!(yaml.contains("  trafficPolicy:\n    loadBalancer:\n      simple: RANDOM\n") && !yaml.contains("connectTimeout"), "{yaml}");
    }

    #[test]
    fn the_full_writer_writes_the_defaults_out() {
        let yaml = DestinationRule::new_full("d", "h", &seven()).unwrap().to_yaml().unwrap();
        for needle in ["simple: ROUND_ROBIN\n", "maxConnections: 1\n        connectTimeout: 10s\n"] {
            assert!(yaml.contains(needle), "{needle:?} in:\n{yaml}");
        }
        // No limit, spelled out as the largest int32 (2^32-1 does not fit Istio's int32).
        assert!(yaml.contains("http2MaxRequests: 2147483647\n") && yaml.contains("maxRetries: 2147483647\n"), "{yaml}");
        assert_eq!(serde_yaml::from_str::<DestinationRule>(&yaml).unwrap().rules().unwrap(), seven());
        let vs = VirtualService::new("d", "h", &RetryPolicy::off()).unwrap().to_yaml().unwrap();
        assert_eq!(
            vs,
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: d\nspec:\n  hosts:\n  - h\n  http:\n  - route:\n    \
             - destination:\n        host: h\n    retries:\n      attempts: 0\n"
        );
        let vs = VirtualService::new("d", "h", &RetryPolicy::istio_default()).unwrap().to_yaml().unwrap();
        assert!(vs.ends_with("    retries:\n      attempts: 2\n      retryOn: connect-failure,retriable-status-codes,503\n"), "{vs}");
        let yaml = DestinationRule::new_full("d", "h", &every_setting()).unwrap().to_yaml().unwrap();
        for needle in ["simple: LEAST_REQUEST", "connectTimeout: 250ms", "http2MaxRequests: 64", "maxRetries: 3"] {
            assert!(yaml.contains(needle), "{needle:?} in:\n{yaml}");
        }
    }

    #[test]
    fn every_setting_round_trips_through_the_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let odd_retries = |retries: RetryPolicy| TrafficRules { retries, ..TrafficRules::default() };
        let cases = [
            TrafficRules::default(),
            seven(),
            every_setting(),
            TrafficRules { connect_timeout_ms: 3_000.0, load_balancer: LoadBalancer::Random, ..seven() },
            odd_retries(RetryPolicy::istio_default()),
            odd_retries(RetryPolicy::istio_1_24_default()),
            odd_retries(RetryPolicy { on_connect_failure: false, attempts: 1, ..RetryPolicy::istio_default() }),
        ];
        for rules in cases {
            for full in [false, true] {
                let build = if full { DestinationRule::new_full } else { DestinationRule::new };
                let rule = build("meshrl-x", "httpbin", &rules).unwrap();
                let vs = VirtualService::new("meshrl-x", "httpbin", &rules.retries).unwrap();
                let path = write_files(dir.path(), &rule, Some(&vs));
                assert_eq!(read_rule_files(&path).unwrap(), rules, "full {full}:\n{}", rule.to_yaml().unwrap());
            }
        }
        // Without a VirtualService file the retries are off, the trace's default.
        let rule = DestinationRule::new_full("x", "h", &every_setting()).unwrap();
        let path = write_files(dir.path(), &rule, None);
        assert_eq!(read_rule_files(&path).unwrap(), TrafficRules { retries: RetryPolicy::off(), ..every_setting() });
        // Istio's own "no limit" reads as none.
        let text = rule.to_yaml().unwrap().replace("http2MaxRequests: 64", "http2MaxRequests: 4294967295");
        std::fs::write(&path, text).unwrap();
        assert_eq!(read_destination_rule(&path).unwrap().http2_max_requests, None);
    }

    #[test]
    fn fields_a_rule_omits_take_istios_defaults() {
        let read = |policy: &str| {
            let yaml = format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: r\nspec:\n  host: h\n  trafficPolicy:{policy}\n");
            serde_yaml::from_str::<DestinationRule>(&yaml).unwrap().rules().unwrap()
        };
        // Only one limit: the others unlimited, and no outlier detection without its block.
        let one = read("\n    connectionPool:\n      tcp:\n        maxConnections: 10");
        assert_eq!(one, TrafficRules { max_connections: 10, consecutive_errors: u32::MAX, ..TrafficRules::default() });
        // An empty outlierDetection block: Envoy's defaults, which the rules' default holds.
        assert_eq!(read("\n    outlierDetection: {}"), TrafficRules::default());
        let nothing = TrafficRules { consecutive_errors: u32::MAX, ..TrafficRules::default() };
        assert_eq!(read(" {}"), nothing);
        let no_policy = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: r\nspec:\n  host: h\n";
        assert_eq!(serde_yaml::from_str::<DestinationRule>(no_policy).unwrap().rules().unwrap(), nothing);
        let some = read("\n    outlierDetection:\n      consecutive5xxErrors: 3\n      interval: 2s");
        assert_eq!((some.consecutive_errors, some.interval_s, some.ejection_time_s), (3, 2.0, TrafficRules::default().ejection_time_s));
    }

    #[test]
    fn a_virtual_service_reads_as_istio_applies_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vs.yaml");
        let head = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: httpbin\nspec:\n  hosts:\n  - httpbin\n  http:\n  - route:\n    - destination:\n        host: httpbin\n";
        let read = |retries: &str| {
            std::fs::write(&path, format!("{head}{retries}")).unwrap();
            read_virtual_service(&path).unwrap()
        };
        let istio = RetryPolicy::istio_default();
        let with = |attempts: u32, on_connect_failure: bool, on_503: bool| RetryPolicy { attempts, on_connect_failure, on_503, ..istio };
        // No `retries`: Istio's default policy, as Istio applies it.
        assert_eq!(read(""), istio);
        assert_eq!(read("    retries:\n      attempts: 0\n"), RetryPolicy::off());
        // A policy given starts from Istio's default: `retryOn` left out keeps its conditions.
        assert_eq!(read("    retries:\n      attempts: 3\n"), with(3, true, true));
        for (retry_on, connect_failure, on_503) in [
            ("5xx", true, true),
            ("gateway-error", true, true),
            ("connect-failure", true, false),
            ("reset", true, false),
            ("503", false, true),
            ("retriable-status-codes,503", false, true),
            // Status codes come only from the list: none given, none retried.
            ("retriable-status-codes", false, false),
            ("refused-stream,unavailable,502", false, false),
        ] {
            assert_eq!(
                read(&format!("    retries:\n      attempts: 2\n      retryOn: {retry_on}\n")),
                with(2, connect_failure, on_503),
                "{retry_on}"
            );
        }
        let p = read("    retries:\n      attempts: 1\n      retryOn: 5xx\n      retryIgnorePreviousHosts: false\n      backoff: 100ms\n");
        assert_eq!(p, RetryPolicy { previous_hosts: false, backoff_base_ms: 100.0, ..with(1, true, true) });
        // Two routes with one policy read as that policy.
        let two = format!("{head}    retries:\n      attempts: 0\n  - route:\n    - destination:\n        host: httpbin\n    retries:\n      attempts: 0\n");
        std::fs::write(&path, two).unwrap();
        assert_eq!(read_virtual_service(&path).unwrap(), RetryPolicy::off());
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let good = DestinationRule::new_full("x", "httpbin", &every_setting()).unwrap().to_yaml().unwrap();
        let path = dir.path().join("bad.yaml");
        let cases = [
            (
                good.replace("http2MaxRequests: 64", "http2MaxRequests: 0"),
                "spec.trafficPolicy.connectionPool.http.http2MaxRequests: must be >= 1",
            ),
            (good.replace("maxRetries: 3", "maxRetries: 0"), "spec.trafficPolicy.connectionPool.http.maxRetries: must be >= 1"),
            (good.replace("http2MaxRequests: 64", "http2MaxRequests: -1"), "http2MaxRequests"),
            (good.replace("connectTimeout: 250ms", "connectTimeout: 1.5ms"), "connectTimeout"),
            (good.replace("connectTimeout: 250ms", "connectTimeout: 500us"), "connectTimeout"),
            (good.replace("connectTimeout: 250ms", "connectTimeout: 250"), "connectTimeout"),
            (good.replace("simple: LEAST_REQUEST", "simple: PASSTHROUGH"), "spec.trafficPolicy.loadBalancer.simple: `PASSTHROUGH`"),
            (good.replace("simple: LEAST_REQUEST", "simple: least_request"), "spec.trafficPolicy.loadBalancer.simple"),
            (good.replace("simple: LEAST_REQUEST", "consistentHash:\n        useSourceIp: true"), "consistentHash"),
            (good.replace("maxRetries: 3", "maxRetries: 3\n        idleTimeout: 1s"), "idleTimeout"),
        ];
        for (text, needle) in cases {
            assert_ne!(text, good, "{needle}: the replacement did not apply");
            std::fs::write(&path, &text).unwrap();
            let err = read_destination_rule(&path).unwrap_err().to_string();
            assert!(err.contains("bad.yaml") && err.contains(needle), "{needle}: {err}");
        }
        // LEAST_CONN is Istio's old name of LEAST_REQUEST.
        std::fs::write(&path, good.replace("simple: LEAST_REQUEST", "simple: LEAST_CONN")).unwrap();
        assert_eq!(read_destination_rule(&path).unwrap().load_balancer, LoadBalancer::LeastRequest);

        let good = VirtualService::new("x", "httpbin", &every_setting().retries).unwrap().to_yaml().unwrap();
        assert!(good.contains("retryOn: connect-failure\n"), "{good}");
        let second_route = "  - route:\n    - destination:\n        host: httpbin\n    retries:\n      attempts: 5\n";
        let cases = [
            (good.replace("retryOn: connect-failure", "retryOn: connect-failure, 5xx"), "spec.http[0].retries.retryOn: ` 5xx`"),
            (good.replace("retryOn: connect-failure", "retryOn: connect-failure,"), "spec.http[0].retries.retryOn: ``"),
            (good.replace("retryOn: connect-failure", "retryOn: sometimes"), "spec.http[0].retries.retryOn: `sometimes`"),
            (good.replace("attempts: 3", "attempts: 0"), "spec.http[0].retries.retryOn"),
            (good.replace("attempts: 3", "attempts: 70000"), "spec.http[0].retries.attempts: must be <= 65535"),
            (good.replace("attempts: 3", "attempts: -1"), "attempts"),
            (good.replace("backoff: 40ms", "backoff: 0.5ms"), "backoff"),
            (good.replace("attempts: 3", "attempts: 3\n      perTryTimeout: 1s"), "perTryTimeout"),
            (good.replace("attempts: 3", "attempts: 3\n      retryRemoteLocalities: true"), "retryRemoteLocalities"),
            (format!("{good}{second_route}"), "spec.http[1].retries: differs from spec.http[0]'s"),
            (good.replace("  http:\n", "  http: []\n  x:\n"), "spec.http: no HTTP route"),
            (good.replace("kind: VirtualService", "kind: DestinationRule"), "field `kind`"),
        ];
        for (text, needle) in cases {
            assert_ne!(text, good, "{needle}: the replacement did not apply");
            std::fs::write(&path, &text).unwrap();
            let err = read_virtual_service(&path).unwrap_err().to_string();
            assert!(err.contains("bad.yaml") && err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn values_without_an_istio_spelling_are_refused_by_the_writers() {
        let cases = [
            (TrafficRules { connect_timeout_ms: 1.5, ..seven() }, "connect_timeout_ms"),
            (TrafficRules { http2_max_requests: Some(3_000_000_000), ..seven() }, "http2_max_requests"),
            (TrafficRules { max_retries: Some(0), ..seven() }, "max_retries"),
            (TrafficRules { max_ejection_percent: 33.5, ..seven() }, "max_ejection_percent"),
        ];
        for (rules, column) in cases {
            assert_eq!(rule_spelling(&rules).unwrap_err().0, column);
            let err = DestinationRule::new_full("x", "h", &rules).unwrap_err();
            assert!(err.contains(column), "{err}");
        }
        let istio = RetryPolicy::istio_default();
        for (retries, column) in [
            (RetryPolicy { backoff_base_ms: 0.5, ..istio }, "retry_backoff_ms"),
            (RetryPolicy { host_selection_retry_max_attempts: 3, ..istio }, "retry_attempts"),
        ] {
            assert_eq!(retry_spelling(&retries).unwrap_err().0, column);
            assert!(VirtualService::new("x", "h", &retries).is_err());
        }
        // A limit of 2^32-1 is no limit: written as Istio's default, the field left out.
        let yaml = DestinationRule::new("x", "h", &TrafficRules { http2_max_requests: Some(u32::MAX), ..seven() }).unwrap();
        assert_eq!(yaml, DestinationRule::new("x", "h", &seven()).unwrap());
    }

    #[test]
    fn milliseconds_parse_strictly_and_format_back() {
        assert_eq!(IstioMillis::parse("250ms"), Ok(250.0));
        assert_eq!(IstioMillis::parse("10s"), Ok(10_000.0));
        assert_eq!(IstioMillis::parse("0.1s"), Ok(100.0));
        assert_eq!(IstioMillis::parse("1m"), Ok(60_000.0));
        for bad in ["0.5ms", "1.5ms", "0ms", "10", "1us", "-1s"] {
            assert!(IstioMillis::parse(bad).is_err(), "{bad:?} should be refused");
        }
        for ms in [1.0, 25.0, 250.0, 1_000.0, 1_500.0, 10_000.0, 90_000.0] {
            assert_eq!(IstioMillis::parse(&IstioMillis::format(ms).unwrap()), Ok(ms));
        }
        assert_eq!(IstioMillis::format(10_000.0).as_deref(), Some("10s"));
        assert_eq!(IstioMillis::format(1_500.0).as_deref(), Some("1500ms"));
        assert_eq!(IstioMillis::format(0.5), None);
    }
}

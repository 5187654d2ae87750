//! The DestinationRule and VirtualService of a run: Istio's YAML (`networking.istio.io/v1`)
//! to the traffic rules and back. `meshrl ingest` reads the rules each real run was made
//! under; `meshrl export` and [`crate::export::write_rule_bundle`] write the rules the agents
//! found: one definition of the mapping, so the round trip is exact.
//!
//! The DestinationRule holds the seven trace rules and the settings beyond them (issue 15:
//! `http2MaxRequests`, `maxRetries`, `connectTimeout`, `loadBalancer.simple`); the
//! VirtualService holds the route's `retries`. What Istio does with each is in
//! `src/emulator/knobs.rs`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::emulator::knobs::ISTIO_CONNECT_TIMEOUT_MS;
use crate::error::{Error, Result};
use crate::rules::{knob_field_of, LoadBalancer, RetryPolicy, TrafficRules};

/// The file names of a rule bundle ([`crate::export::write_rule_bundle`]): a directory
/// whose DestinationRule and VirtualService apply to every Fortio result in it.
pub const BUNDLE_DESTINATION_RULE: &str = "destination-rule.yaml";
pub const BUNDLE_VIRTUAL_SERVICE: &str = "virtual-service.yaml";

/// A duration of an Istio field, in seconds, written as a string with one unit (`500ms`,
/// `1s`, `3m`, `1h`). Parsed strictly: a typo in a unit must not silently mean seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IstioDuration(pub f64);

impl IstioDuration {
    pub fn parse(text: &str) -> std::result::Result<f64, String> {
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let scale = match unit {
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("duration `{text}` has no unit (use ms, s, m or h, e.g. \"30s\")")),
            _ => return Err(format!("duration `{text}`: unknown unit `{unit}` (use ms, s, m or h)")),
        };
        let well_formed = {
            let mut parts = number.splitn(2, '.');
            let whole = parts.next().unwrap_or("");
            let frac = parts.next();
            !whole.is_empty() && frac.is_none_or(|f| !f.is_empty() && !f.contains('.'))
        };
        let x: f64 = match number.parse() {
            Ok(x) if well_formed => x,
            _ => return Err(format!("duration `{text}`: expected a number then a unit, e.g. \"30s\" or \"500ms\"")),
        };
        // Dividing by 1000 (not multiplying by 1e-3) keeps "500ms" exactly 0.5.
        let seconds = if unit == "ms" { x / 1000.0 } else { x * scale };
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err(format!("duration `{text}` must be > 0"));
        }
        Ok(seconds)
    }

    /// The shortest text that parses back to exactly these seconds: whole seconds as `30s`,
    /// whole milliseconds as `500ms`, anything else as decimal seconds.
    pub fn format(seconds: f64) -> String {
        if seconds.fract() == 0.0 {
            return format!("{seconds}s");
        }
        let ms = seconds * 1000.0;
        if ms.fract() == 0.0 && ms / 1000.0 == seconds {
            return format!("{ms}ms");
        }
        format!("{seconds}s")
    }
}

impl Serialize for IstioDuration {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&Self::format(self.0))
    }
}

impl<'de> Deserialize<'de> for IstioDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map(IstioDuration).map_err(serde::de::Error::custom)
    }
}

/// serde_yaml places an error raised inside a value at the enclosing map, so the duration
/// fields add their own name.
fn named_duration<'de, D: Deserializer<'de>>(d: D, field: &str) -> std::result::Result<IstioDuration, D::Error> {
    IstioDuration::deserialize(d).map_err(|e| serde::de::Error::custom(format!("{field}: {e}")))
}
fn interval<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<IstioDuration, D::Error> {
    named_duration(d, "interval")
}
fn base_ejection_time<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<IstioDuration, D::Error> {
    named_duration(d, "baseEjectionTime")
}

/// A duration Istio keeps to whole milliseconds (`connectTimeout`, a retry `backoff`), in
/// ms. Istio refuses a duration below 1 ms or with a fraction of one (its `ValidateDuration`),
/// so the reader refuses them too rather than read a value no cluster ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IstioMillis(pub f64);

impl IstioMillis {
    pub fn parse(text: &str) -> std::result::Result<f64, String> {
        let ms = IstioDuration::parse(text)? * 1000.0;
        let whole = ms.round();
        // "0.1s" is 100.00000000000001 ms after the product: whole in Istio's terms.
        if whole < 1.0 || (ms - whole).abs() > 1e-9 * whole {
            return Err(format!("duration `{text}`: Istio takes whole milliseconds, at least 1ms"));
        }
        Ok(whole)
    }

    /// Whole seconds as `10s`, other whole milliseconds as `250ms`; `None` for a value Istio
    /// cannot hold (below 1 ms, a fraction of a ms, not finite).
    pub fn format(ms: f64) -> Option<String> {
        if !(ms.is_finite() && ms >= 1.0 && ms.fract() == 0.0) {
            return None;
        }
        Some(if ms % 1000.0 == 0.0 { format!("{}s", ms / 1000.0) } else { format!("{ms}ms") })
    }
}

impl Serialize for IstioMillis {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        // The writers check the value first ([`rule_spelling`]); this fallback never shows.
        s.serialize_str(&Self::format(self.0).unwrap_or_else(|| format!("{}ms", self.0)))
    }
}

impl<'de> Deserialize<'de> for IstioMillis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map(IstioMillis).map_err(serde::de::Error::custom)
    }
}

fn named_millis<'de, D: Deserializer<'de>>(d: D, field: &str) -> std::result::Result<Option<IstioMillis>, D::Error> {
    IstioMillis::deserialize(d).map(Some).map_err(|e| serde::de::Error::custom(format!("{field}: {e}")))
}
fn connect_timeout<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<IstioMillis>, D::Error> {
    named_millis(d, "connectTimeout")
}
fn backoff<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<IstioMillis>, D::Error> {
    named_millis(d, "backoff")
}

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
    pub traffic_policy: TrafficPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Absent: the emulator's default, round robin (Istio itself then applies LEAST_REQUEST
    /// since 1.14; the full writer always writes it, see [`DestinationRule::new_full`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    pub connection_pool: ConnectionPool,
    pub outlier_detection: OutlierDetection,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPool {
    pub tcp: TcpSettings,
    pub http: HttpSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpSettings {
    pub max_connections: u32,
    /// Absent: Istio's `meshConfig.connectTimeout`, 10 s.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "connect_timeout")]
    pub connect_timeout: Option<IstioMillis>,
}

/// `http2MaxRequests` and `maxRetries` absent (or 2147483647 or more): no limit, Istio's 2^32-1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpSettings {
    pub http1_max_pending_requests: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<u32>,
    pub max_requests_per_connection: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutlierDetection {
    #[serde(rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: u32,
    #[serde(deserialize_with = "interval")]
    pub interval: IstioDuration,
    #[serde(deserialize_with = "base_ejection_time")]
    pub base_ejection_time: IstioDuration,
    pub max_ejection_percent: u32,
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
    // serde_yaml's messages carry the field's path (e.g. `spec.trafficPolicy.outlierDetection.interval`).
    let rule: DestinationRule = serde_yaml::from_str(&text).map_err(|e| Error::file(path, format!("not a valid DestinationRule: {e}")))?;
    check_kind(path, &rule.kind, &rule.api_version, "DestinationRule")?;
    refuse_subset_policies(path, &text)?;
    rule.rules().map_err(|e| Error::file(path, format!("field {e}")))
}

fn check_kind(path: &Path, kind: &str, api_version: &str, expected: &str) -> Result<()> {
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
fn refuse_subset_policies(path: &Path, text: &str) -> Result<()> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| Error::file(path, format!("not a valid DestinationRule: {e}")))?;
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
                        "field `spec.subsets[{i}].trafficPolicy.{key}` (subset `{name}`): a subset-level policy overrides the rule's \
                         for that subset's traffic, which the trace's rule columns cannot record; put the settings in \
                         `spec.trafficPolicy` only"
                    ),
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// VirtualService: the route's retries

/// An Istio VirtualService (networking.istio.io/v1) as far as the trace is concerned: the
/// `retries` of its HTTP routes. Other route fields (match, timeout, fault ...) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualService {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: VirtualServiceSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualServiceSpec {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub http: Vec<HttpRoute>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRoute {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
    /// Absent: Istio's default policy (see [`VirtualService::retries`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteDestination {
    pub destination: Destination,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    pub host: String,
}

/// Istio's `HTTPRetry`, the fields the emulator models. `perTryTimeout` and
/// `retryRemoteLocalities` are refused: per-try timeouts and localities are not modelled.
/// Istio has no field for the retriable status codes: a status code in `retryOn` (`503`) is
/// one (Istio's `parseRetryOn` moves it to Envoy's `retriable_status_codes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRetry {
    /// Absent: 0 (proto3), retries off.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
    /// True (Istio's default): a retry prefers a host not tried yet (Envoy's `previous_hosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Absent: Envoy's 25 ms.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "backoff")]
    pub backoff: Option<IstioMillis>,
}

impl VirtualService {
    /// The VirtualService that routes `host` to itself with `retries`. Retries off are
    /// written `attempts: 0` (Istio's way to turn off its default retries); otherwise
    /// `retryOn` lists `connect-failure` and `retriable-status-codes,503` as the policy
    /// retries them, and `retryIgnorePreviousHosts` and `backoff` appear only when they
    /// differ from Istio's defaults (older Istio versions lack the fields). Fails if the
    /// policy has no Istio spelling ([`retry_spelling`]).
    pub fn new(name: &str, host: &str, retries: &RetryPolicy) -> std::result::Result<Self, String> {
        retry_spelling(retries).map_err(|(_, why)| why)?;
        TrafficRules { retries: *retries, ..TrafficRules::default() }.validate_knobs()?;
        let istio = RetryPolicy::istio_default();
        let retry = if retries.is_off() {
            HttpRetry { attempts: 0, retry_on: None, retry_ignore_previous_hosts: None, backoff: None }
        } else {
            let mut on = Vec::new();
            if retries.on_connect_failure {
                on.push("connect-failure");
            }
            if retries.on_503 {
                on.extend(["retriable-status-codes", "503"]);
            }
            HttpRetry {
                attempts: retries.attempts,
                retry_on: Some(on.join(",")),
                retry_ignore_previous_hosts: (retries.previous_hosts != istio.previous_hosts).then_some(retries.previous_hosts),
                backoff: (retries.backoff_base_ms != istio.backoff_base_ms).then_some(IstioMillis(retries.backoff_base_ms)),
            }
        };
        Ok(VirtualService {
            api_version: API_VERSION.into(),
            kind: "VirtualService".into(),
            metadata: Metadata { name: name.into() },
            spec: VirtualServiceSpec {
                hosts: vec![host.into()],
                http: vec![HttpRoute {
                    route: vec![RouteDestination { destination: Destination { host: host.into() } }],
                    retries: Some(retry),
                }],
            },
        })
    }

    /// The retry policy of the routes, checked; an error names the YAML field. A route
    /// without `retries` gets Istio's default policy, [`RetryPolicy::istio_default`]
    /// (Istio 1.1-1.23: 2 retries, 503 included; Istio >= 1.24 leaves out the 503 unless its
    /// 1.23 compatibility profile is on, so write `retries` out to be sure), because that is
    /// what Istio applies; `attempts: 0` is retries off. Every route must have the same
    /// policy: a trace row records one.
    pub fn retries(&self) -> std::result::Result<RetryPolicy, String> {
        if self.spec.http.is_empty() {
            return Err("spec.http: no HTTP route, so no retry policy applies (write one route with `retries`)".into());
        }
        let mut first: Option<RetryPolicy> = None;
        for (i, route) in self.spec.http.iter().enumerate() {
            let policy = route_retries(i, route.retries.as_ref())?;
            match first {
                None => first = Some(policy),
                Some(p) if p != policy => {
                    return Err(format!(
                        "spec.http[{i}].retries: differs from spec.http[0]'s, and a trace row records one retry policy \
                         (give every route the same retries)"
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(first.unwrap_or_else(RetryPolicy::istio_default))
    }

    pub fn to_yaml(&self) -> std::result::Result<String, String> {
        serde_yaml::to_string(self).map_err(|e| e.to_string())
    }
}

/// Route `i`'s policy, following Istio's `ConvertPolicy`: no `retries`, the default policy;
/// `attempts` 0, none; else the default policy with the fields given replacing its own.
fn route_retries(i: usize, retry: Option<&HttpRetry>) -> std::result::Result<RetryPolicy, String> {
    let at = format!("spec.http[{i}].retries");
    let Some(r) = retry else { return Ok(RetryPolicy::istio_default()) };
    let retry_on = r.retry_on.as_deref().filter(|s| !s.is_empty());
    if r.attempts == 0 {
        if let Some(on) = retry_on {
            // Istio's validation refuses it: "http retry policy configured when attempts are set to 0".
            return Err(format!("{at}.retryOn: `{on}` beside attempts 0, which turns retries off (Istio refuses the pair)"));
        }
        return Ok(RetryPolicy::off());
    }
    let mut policy = RetryPolicy { attempts: r.attempts, ..RetryPolicy::istio_default() };
    if let Some(on) = retry_on {
        (policy.on_connect_failure, policy.on_503) = parse_retry_on(on).map_err(|why| format!("{at}.retryOn: {why}"))?;
    }
    if let Some(ignore) = r.retry_ignore_previous_hosts {
        policy.previous_hosts = ignore;
    }
    if let Some(b) = r.backoff {
        policy.backoff_base_ms = b.0;
    }
    TrafficRules { retries: policy, ..TrafficRules::default() }.validate_knobs().map_err(|why| match knob_field_of(&why) {
        Some((field, rest)) => format!("spec.http[{i}].{}: {rest}", field.yaml),
        None => format!("{at}: {why}"),
    })?;
    Ok(policy)
}

/// What a `retryOn` list retries on the emulator's HTTP/1.1 upstream: (connect failures,
/// upstream 503s), following Envoy's `RetryStateImpl`: a connect failure is retried under
/// `connect-failure`, `reset`, `reset-before-request`, `5xx` and `gateway-error`; a 503
/// answer under `5xx`, `gateway-error` and the status code 503. The other conditions Istio
/// accepts (refused-stream, retriable-4xx, the gRPC ones, other status codes ...) never fire
/// there. Anything else Istio's validation refuses (unknown names, blanks, spaces): so does this.
fn parse_retry_on(on: &str) -> std::result::Result<(bool, bool), String> {
    let (mut connect_failure, mut on_503) = (false, false);
    for token in on.split(',') {
        match token {
            "connect-failure" | "reset" | "reset-before-request" => connect_failure = true,
            "5xx" | "gateway-error" => (connect_failure, on_503) = (true, true),
            "503" => on_503 = true,
            "retriable-status-codes"
            | "refused-stream"
            | "retriable-4xx"
            | "retriable-headers"
            | "envoy-ratelimited"
            | "http3-post-connect-failure"
            | "cancelled"
            | "deadline-exceeded"
            | "internal"
            | "resource-exhausted"
            | "unavailable" => {}
            code if code.len() == 3 && code.parse::<u16>().is_ok_and(|c| (100..=599).contains(&c)) => {}
            _ => {
                return Err(format!(
                    "`{token}` is not a retry condition Istio accepts (comma-separated, no spaces: e.g. connect-failure, \
                     5xx, gateway-error, reset, retriable-status-codes, or a status code such as 503)"
                ))
            }
        }
    }
    Ok((connect_failure, on_503))
}

/// Reads the retry policy of one VirtualService YAML file (see [`VirtualService::retries`]).
pub fn read_virtual_service(path: &Path) -> Result<RetryPolicy> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let vs: VirtualService = serde_yaml::from_str(&text).map_err(|e| Error::file(path, format!("not a valid VirtualService: {e}")))?;
    check_kind(path, &vs.kind, &vs.api_version, "VirtualService")?;
    vs.retries().map_err(|e| Error::file(path, format!("field {e}")))
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

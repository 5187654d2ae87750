//! The DestinationRule of a run: Istio's YAML (`networking.istio.io/v1`) to the seven traffic
//! rules and back. `meshrl ingest` reads the rules each real run was made under; `meshrl
//! export` writes the rules the agents found: one definition of the mapping, so the round
//! trip is exact.

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::rules::TrafficRules;

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

/// An Istio DestinationRule (networking.istio.io/v1) as far as the trace is concerned.
/// Fields outside `connectionPool` and `outlierDetection` (labels, loadBalancer, tls ...)
/// are ignored; inside them every field must be one of the seven rules. Subsets may not
/// override them ([`read_destination_rule`] refuses a subset's circuit-breaker settings).
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
    pub connection_pool: ConnectionPool,
    pub outlier_detection: OutlierDetection,
}

/// Unknown fields are denied from here down: any other circuit-breaker setting (e.g.
/// `http2MaxRequests`) changes the run in a way the seven trace columns cannot record.
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpSettings {
    pub http1_max_pending_requests: u32,
    pub max_requests_per_connection: u32,
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

impl DestinationRule {
    /// The rule that applies `rules` to `host`; fails if a value has no Istio spelling
    /// (Istio's `maxEjectionPercent` is a whole number).
    pub fn new(name: &str, host: &str, rules: &TrafficRules) -> std::result::Result<Self, String> {
        let p = rules.max_ejection_percent;
        if !(p.fract() == 0.0 && (0.0..=100.0).contains(&p)) {
            return Err(format!("max_ejection_percent {p} is not a whole number in 0..=100 (Istio's maxEjectionPercent)"));
        }
        Ok(DestinationRule {
            api_version: API_VERSION.into(),
            kind: "DestinationRule".into(),
            metadata: Metadata { name: name.into() },
            spec: DestinationRuleSpec {
                host: host.into(),
                traffic_policy: TrafficPolicy {
                    connection_pool: ConnectionPool {
                        tcp: TcpSettings { max_connections: rules.max_connections },
                        http: HttpSettings {
                            http1_max_pending_requests: rules.max_pending_requests,
                            max_requests_per_connection: rules.max_requests_per_connection,
                        },
                    },
                    outlier_detection: OutlierDetection {
                        consecutive_5xx_errors: rules.consecutive_errors,
                        interval: IstioDuration(rules.interval_s),
                        base_ejection_time: IstioDuration(rules.ejection_time_s),
                        max_ejection_percent: p as u32,
                    },
                },
            },
        })
    }

    /// The seven trace columns, checked against the protocol's ranges; an error names the
    /// YAML field.
    pub fn rules(&self) -> std::result::Result<TrafficRules, String> {
        let pool = &self.spec.traffic_policy.connection_pool;
        let od = &self.spec.traffic_policy.outlier_detection;
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
        Ok(TrafficRules {
            max_pending_requests: pool.http.http1_max_pending_requests,
            max_connections: pool.tcp.max_connections,
            max_requests_per_connection: pool.http.max_requests_per_connection,
            ejection_time_s: od.base_ejection_time.0,
            max_ejection_percent: f64::from(od.max_ejection_percent),
            interval_s: od.interval.0,
            consecutive_errors: od.consecutive_5xx_errors,
            ..TrafficRules::default()
        })
    }

    pub fn to_yaml(&self) -> std::result::Result<String, String> {
        serde_yaml::to_string(self).map_err(|e| e.to_string())
    }
}

/// Reads the traffic rules of one DestinationRule YAML file.
pub fn read_destination_rule(path: &Path) -> Result<TrafficRules> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    // serde_yaml's messages carry the field's path (e.g. `spec.trafficPolicy.outlierDetection.interval`).
    let rule: DestinationRule = serde_yaml::from_str(&text).map_err(|e| Error::file(path, format!("not a valid DestinationRule: {e}")))?;
    if rule.kind != "DestinationRule" {
        return Err(Error::file(path, format!("field `kind`: expected DestinationRule, found {}", rule.kind)));
    }
    if !rule.api_version.starts_with("networking.istio.io/") {
        return Err(Error::file(path, format!("field `apiVersion`: expected {API_VERSION}, found {}", rule.api_version)));
    }
    refuse_subset_policies(path, &text)?;
    rule.rules().map_err(|e| Error::file(path, format!("field {e}")))
}

/// A subset's `trafficPolicy` overrides the rule's settings it names for the traffic routed
/// to that subset, so a circuit-breaker or outlier-detection setting there makes the run's
/// rules other than the seven read from `spec.trafficPolicy`: refused. Other subset settings
/// (labels, loadBalancer, tls) are ignored, as at the rule's level.
fn refuse_subset_policies(path: &Path, text: &str) -> Result<()> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| Error::file(path, format!("not a valid DestinationRule: {e}")))?;
    let Some(subsets) = doc.get("spec").and_then(|s| s.get("subsets")).and_then(|s| s.as_sequence()) else {
        return Ok(());
    };
    for (i, subset) in subsets.iter().enumerate() {
        let Some(policy) = subset.get("trafficPolicy") else { continue };
        for key in ["connectionPool", "outlierDetection", "portLevelSettings"] {
            if policy.get(key).is_some_and(|v| !v.is_null()) {
                let name = subset.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                return Err(Error::file(
                    path,
                    format!(
                        "field `spec.subsets[{i}].trafficPolicy.{key}` (subset `{name}`): a subset-level policy overrides the rule's \
                         for that subset's traffic, which the trace's seven rule columns cannot record; put the settings in \
                         `spec.trafficPolicy` only"
                    ),
                ));
            }
        }
    }
    Ok(())
}

//! An Istio VirtualService: the route's retries, which a trace records, and the route and
//! per-try timeouts, which only the mesh emulator reads (a trace has no column for them).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::duration::{backoff, per_try_timeout, route_timeout, IstioMillis};
use super::{check_kind, retry_spelling, Metadata, API_VERSION};
use crate::emulator::knobs::RetryOn;
use crate::error::{Error, Result};
use crate::rules::{knob_field_of, RetryPolicy, TrafficRules};

/// An Istio VirtualService (networking.istio.io/v1): the `retries` and `timeout` of its HTTP
/// routes. Other route fields (match, fault ...) are ignored.
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
    /// The route timeout, over all tries. Absent: none (Istio writes 0, disabled).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "route_timeout")]
    pub timeout: Option<IstioMillis>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteDestination {
    pub destination: Destination,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    pub host: String,
}

/// Istio's `HTTPRetry`, the fields the emulators model. `retryRemoteLocalities` is refused:
/// localities are not modelled; `perTryTimeout` is read by the mesh emulator only.
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
    /// Absent: the route timeout bounds each try.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "per_try_timeout")]
    pub per_try_timeout: Option<IstioMillis>,
}

/// What one destination's routes set for the mesh emulator ([`VirtualService::route_settings`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteSettings {
    /// `None`: no `retries`, so the Istio release's default policy applies.
    pub retries: Option<RetryPolicy>,
    /// `None`: no `retryOn`, so the release's default conditions apply.
    pub retry_on: Option<RetryOn>,
    pub per_try_timeout_ms: Option<f64>,
    pub timeout_ms: Option<f64>,
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
            HttpRetry { attempts: 0, retry_on: None, retry_ignore_previous_hosts: None, backoff: None, per_try_timeout: None }
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
                per_try_timeout: None,
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
                    timeout: None,
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
            let no_column = "a trace has no column for it (the mesh emulator reads it: `meshrl mesh run --rules-dir`)";
            if route.timeout.is_some() {
                return Err(format!("spec.http[{i}].timeout: {no_column}"));
            }
            if route.retries.as_ref().is_some_and(|r| r.per_try_timeout.is_some()) {
                return Err(format!("spec.http[{i}].retries.perTryTimeout: {no_column}"));
            }
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

    /// The mesh emulator's reading of the routes: retries, their conditions, the per-try
    /// and route timeouts. As for a trace, every route must set the same (the emulator routes
    /// all of a destination's traffic one way); an error names the YAML field.
    pub fn route_settings(&self) -> std::result::Result<RouteSettings, String> {
        if self.spec.http.is_empty() {
            return Err("spec.http: no HTTP route (write one route)".into());
        }
        let mut first: Option<RouteSettings> = None;
        for (i, route) in self.spec.http.iter().enumerate() {
            let at = format!("spec.http[{i}].retries");
            let mut settings =
                RouteSettings { retries: None, retry_on: None, per_try_timeout_ms: None, timeout_ms: route.timeout.map(|t| t.0) };
            if let Some(r) = &route.retries {
                settings.retries = Some(route_retries(i, Some(r))?);
                settings.per_try_timeout_ms = r.per_try_timeout.map(|t| t.0);
                if let Some(on) = r.retry_on.as_deref().filter(|s| !s.is_empty()) {
                    settings.retry_on = Some(RetryOn::parse(on).map_err(|why| format!("{at}.retryOn: {why}"))?);
                }
            }
            match first {
                None => first = Some(settings),
                Some(f) if f != settings => {
                    return Err(format!(
                        "spec.http[{i}]: its retries or timeout differ from spec.http[0]'s; the emulator routes a destination's \
                         traffic one way (give every route the same)"
                    ))
                }
                Some(_) => {}
            }
        }
        first.ok_or_else(|| "spec.http: no HTTP route (write one route)".into())
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

/// What a `retryOn` list retries on the single-service emulator's HTTP/1.1 upstream:
/// (connect failures, upstream 503s), by Envoy's rules ([`RetryOn`]). Anything Istio's
/// validation refuses (unknown names, blanks, spaces) is refused.
fn parse_retry_on(on: &str) -> std::result::Result<(bool, bool), String> {
    let r = RetryOn::parse(on)?;
    Ok((r.connect_failure(), r.status(503)))
}

/// Reads the retry policy of one VirtualService YAML file (see [`VirtualService::retries`]).
pub fn read_virtual_service(path: &Path) -> Result<RetryPolicy> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let vs: VirtualService = serde_yaml::from_str(&text).map_err(|e| Error::file(path, format!("not a valid VirtualService: {e}")))?;
    check_kind(path, &vs.kind, &vs.api_version, "VirtualService")?;
    vs.retries().map_err(|e| Error::file(path, format!("field {e}")))
}

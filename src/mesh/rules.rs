//! The rules of a mesh: one DestinationRule and one VirtualService per destination, as data
//! (`--rules-dir`), and what Istio applies where a destination has none, by release
//! (`../shared/design/mesh.md`, sections 2 and 3).
//!
//! Istio's defaults by release, as this module applies them:
//! - retries with no VirtualService `retries`: none in 1.0; 2 retries on connect failures and
//!   503 in 1.1-1.23; 2 retries on connect failures only since 1.24. A `retries` block without
//!   `retryOn` takes the release's list (1.0: `5xx,connect-failure,refused-stream`);
//! - load balancer with no `loadBalancer`: ROUND_ROBIN before 1.14, LEAST_REQUEST since;
//! - circuit-breaker limits left unset: Envoy's 1024 connections, pending and requests before
//!   1.4 (`maxRetries` 3 in 1.0, 1024 in 1.1-1.3); no limit (2^32-1) since 1.4;
//! - route timeout: none; outlier detection: off unless the DestinationRule sets it;
//! - `retryBudget`: a field since 1.27 (refused before); 1.27.x, 1.28.0-1.28.5 and
//!   1.29.0-1.29.1 sent 0.2 % instead of the percent written (fixed in 1.28.6, 1.29.2 and
//!   1.30.0). A release given without its patch (`1.28`) is read as its latest patch.

use std::path::{Path, PathBuf};

use crate::destination_rule::{check_kind, destination_rule_of, from_document, RouteSettings, VirtualService};
use crate::emulator::knobs::RetryOn;
use crate::error::{Error, Result};
use crate::mesh::topology::Topology;
use crate::rules::{LoadBalancer, RetryPolicy, TrafficRules};

/// An Istio release, `1.MINOR` or `1.MINOR.PATCH`, from 1.0 to 1.31.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IstioRelease {
    pub minor: u32,
    pub patch: Option<u32>,
}

/// The newest release whose defaults this module knows (mesh.md's sources: 1.31 pre-release).
pub const NEWEST_MINOR: u32 = 31;

impl IstioRelease {
    pub fn parse(text: &str) -> std::result::Result<IstioRelease, String> {
        let bad = || format!("istio version `{text}`: expected 1.MINOR or 1.MINOR.PATCH, from 1.0 to 1.{NEWEST_MINOR} (e.g. 1.24)");
        let mut parts = text.split('.');
        if parts.next() != Some("1") {
            return Err(bad());
        }
        let minor: u32 = parts.next().and_then(|m| m.parse().ok()).ok_or_else(bad)?;
        let patch = match parts.next() {
            None => None,
            Some(p) => Some(p.parse::<u32>().map_err(|_| bad())?),
        };
        if parts.next().is_some() || minor > NEWEST_MINOR {
            return Err(bad());
        }
        Ok(IstioRelease { minor, patch })
    }

    /// The retry policy and conditions of a route without `retries`; `None`: no retries.
    pub fn default_retries(&self) -> Option<(RetryPolicy, RetryOn)> {
        match self.minor {
            0 => None,
            1..=23 => Some((RetryPolicy::istio_default(), RetryOn::istio_default(true))),
            _ => Some((RetryPolicy::istio_1_24_default(), RetryOn::istio_default(false))),
        }
    }

    /// The conditions of a `retries` block that sets no `retryOn`.
    pub fn default_retry_on(&self) -> RetryOn {
        match self.minor {
            0 => RetryOn { any_5xx: true, connect_failure: true, ..RetryOn::default() },
            1..=23 => RetryOn::istio_default(true),
            _ => RetryOn::istio_default(false),
        }
    }

    pub fn default_load_balancer(&self) -> LoadBalancer {
        if self.minor < 14 {
            LoadBalancer::RoundRobin
        } else {
            LoadBalancer::LeastRequest
        }
    }

    /// Envoy's circuit-breaker defaults, which Istio kept before 1.4: (connections, pending,
    /// requests, retries); `None` since 1.4 (2^32-1, no limit).
    fn default_limits(&self) -> Option<(u32, u32, u32, u32)> {
        match self.minor {
            0 => Some((1024, 1024, 1024, 3)),
            1..=3 => Some((1024, 1024, 1024, 1024)),
            _ => None,
        }
    }

    /// Whether `retryBudget.percent` reaches Envoy divided by 100 (istio/istio's
    /// `retry-budget-percent` release note).
    pub fn retry_budget_percent_bug(&self) -> bool {
        match (self.minor, self.patch) {
            (27, _) => true,
            (28, Some(p)) => p <= 5,
            (29, Some(p)) => p <= 1,
            _ => false,
        }
    }
}

impl std::fmt::Display for IstioRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.patch {
            Some(p) => write!(f, "1.{}.{p}", self.minor),
            None => write!(f, "1.{}", self.minor),
        }
    }
}

/// Envoy's retry budget: at most max(`min_concurrency`, `percent` % of the cluster's active
/// and pending requests) retries outstanding; when set, it replaces `maxRetries`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    pub percent: f64,
    pub min_concurrency: u32,
}

/// Istio's `retryBudget` defaults.
pub const ISTIO_RETRY_BUDGET_PERCENT: f64 = 20.0;
pub const ISTIO_RETRY_BUDGET_MIN_CONCURRENCY: u32 = 3;

/// Everything a client sidecar applies to one destination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DestinationPolicy {
    /// Connection pool, outlier detection, load balancer, connect timeout, and the retry
    /// policy's attempts, host predicate and back-off (its `on_*` flags are not read here:
    /// `retry_on` says what is retried).
    pub rules: TrafficRules,
    pub retry_on: RetryOn,
    pub retry_budget: Option<RetryBudget>,
    /// The route timeout over all tries, ms; `None`: none (Istio's default).
    pub timeout_ms: Option<f64>,
    /// Each try's timeout, ms; `None`: only the route timeout.
    pub per_try_timeout_ms: Option<f64>,
}

impl DestinationPolicy {
    /// A destination with no DestinationRule and no VirtualService under `release`.
    pub fn release_default(release: IstioRelease) -> DestinationPolicy {
        let mut rules =
            TrafficRules { consecutive_errors: u32::MAX, load_balancer: release.default_load_balancer(), ..TrafficRules::default() };
        apply_release_limits(&mut rules, release);
        let (retries, retry_on) = release.default_retries().unwrap_or((RetryPolicy::off(), RetryOn::default()));
        rules.retries = retries;
        DestinationPolicy { rules, retry_on, retry_budget: None, timeout_ms: None, per_try_timeout_ms: None }
    }
}

/// Limits left at "no limit" take the release's defaults (before 1.4, Envoy's 1024).
fn apply_release_limits(rules: &mut TrafficRules, release: IstioRelease) {
    if let Some((conns, pending, requests, retries)) = release.default_limits() {
        let unset = |v: u32| v == u32::MAX;
        if unset(rules.max_connections) {
            rules.max_connections = conns;
        }
        if unset(rules.max_pending_requests) {
            rules.max_pending_requests = pending;
        }
        rules.http2_max_requests = rules.http2_max_requests.or(Some(requests));
        rules.max_retries = rules.max_retries.or(Some(retries));
    }
}

/// The rules of every destination of a topology, with where each came from.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshRules {
    pub release: IstioRelease,
    /// One per service, in the topology's order.
    pub destinations: Vec<DestinationPolicy>,
    /// The files read, in order (for the run's record).
    pub files: Vec<PathBuf>,
}

impl MeshRules {
    /// Every destination at the release's defaults.
    pub fn defaults(topology: &Topology, release: IstioRelease) -> MeshRules {
        MeshRules { release, destinations: vec![DestinationPolicy::release_default(release); topology.services.len()], files: Vec::new() }
    }

    /// Reads every `*.yaml` and `*.yml` file of each of `dirs` (in name order; a file may
    /// hold several documents separated by `---`). Each document is a DestinationRule or a
    /// VirtualService whose host is a service of the topology (`name`, or
    /// `name.namespace...`); at most one of each kind per host over all the directories (they
    /// add up, none overrides another). An error names the file, the document and the field.
    pub fn load(dirs: &[PathBuf], topology: &Topology, release: IstioRelease) -> Result<MeshRules> {
        let mut entries = Vec::new();
        for dir in dirs {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| Error::file(dir, format!("cannot read the rules directory: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            files.sort();
            entries.extend(files);
        }
        let n = topology.services.len();
        let mut rules: Vec<Option<(TrafficRules, bool, Option<RetryBudget>)>> = vec![None; n];
        let mut routes: Vec<Option<RouteSettings>> = vec![None; n];
        let mut origin: Vec<[Option<String>; 2]> = vec![[None, None]; n];
        for path in &entries {
            let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
            let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
                .map(serde::Deserialize::deserialize)
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::file(path, format!("not valid YAML: {e}")))?;
            let several = docs.len() > 1;
            for (d, doc) in docs.into_iter().enumerate() {
                if doc.is_null() {
                    continue;
                }
                let name = if several { format!(" (document {})", d + 1) } else { String::new() };
                let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or("").to_string();
                match kind.as_str() {
                    "DestinationRule" => {
                        let rule = destination_rule_of(path, &name, doc)?;
                        let s = service_of(path, &name, "spec.host", &rule.spec.host, topology)?;
                        claim(&mut origin[s][0], path, &name, "DestinationRule", &rule.spec.host)?;
                        let traffic = rule.rules().map_err(|e| Error::file(path, format!("field {e}{name}")))?;
                        let lb_given = rule.spec.traffic_policy.load_balancer.is_some();
                        let budget = match &rule.spec.traffic_policy.retry_budget {
                            None => None,
                            Some(b) => Some(retry_budget(path, &name, b.percent, b.min_retry_concurrency, release)?),
                        };
                        rules[s] = Some((traffic, lb_given, budget));
                    }
                    "VirtualService" => {
                        let vs: VirtualService = from_document(path, &name, "VirtualService", &doc)?;
                        check_kind(path, &vs.kind, &vs.api_version, "VirtualService")?;
                        let settings = vs.route_settings().map_err(|e| Error::file(path, format!("field {e}{name}")))?;
                        if vs.spec.hosts.is_empty() {
                            return Err(Error::file(path, format!("field `spec.hosts`{name}: no host")));
                        }
                        for (h, host) in vs.spec.hosts.iter().enumerate() {
                            let s = service_of(path, &name, &format!("spec.hosts[{h}]"), host, topology)?;
                            claim(&mut origin[s][1], path, &name, "VirtualService", host)?;
                            routes[s] = Some(settings);
                        }
                    }
                    other => {
                        return Err(Error::file(
                            path,
                            format!("field `kind`{name}: `{other}` is not a DestinationRule or a VirtualService"),
                        ))
                    }
                }
            }
        }
        let destinations = (0..n).map(|s| destination(release, rules[s], routes[s])).collect();
        Ok(MeshRules { release, destinations, files: entries })
    }
}

/// One destination's policy from its rule and route (either may be absent).
fn destination(
    release: IstioRelease,
    rule: Option<(TrafficRules, bool, Option<RetryBudget>)>,
    route: Option<RouteSettings>,
) -> DestinationPolicy {
    let mut p = DestinationPolicy::release_default(release);
    if let Some((traffic, lb_given, budget)) = rule {
        let retries = p.rules.retries;
        p.rules = TrafficRules { retries, ..traffic };
        if !lb_given {
            p.rules.load_balancer = release.default_load_balancer();
        }
        apply_release_limits(&mut p.rules, release);
        p.retry_budget = budget;
    }
    if let Some(route) = route {
        p.timeout_ms = route.timeout_ms;
        if let Some(retries) = route.retries {
            p.rules.retries = retries;
            p.retry_on = route.retry_on.unwrap_or_else(|| release.default_retry_on());
            p.per_try_timeout_ms = route.per_try_timeout_ms;
        }
    }
    p
}

fn retry_budget(path: &Path, doc: &str, percent: Option<f64>, min: Option<u32>, release: IstioRelease) -> Result<RetryBudget> {
    if release.minor < 27 {
        return Err(Error::file(
            path,
            format!("field `spec.trafficPolicy.retryBudget`{doc}: Istio {release} has no retry budget (since 1.27; set --istio-version)"),
        ));
    }
    let percent = percent.unwrap_or(ISTIO_RETRY_BUDGET_PERCENT);
    if !(percent.is_finite() && (0.0..=100.0).contains(&percent)) {
        return Err(Error::file(path, format!("field `spec.trafficPolicy.retryBudget.percent`{doc}: must be in 0..=100, found {percent}")));
    }
    let percent = if release.retry_budget_percent_bug() { percent / 100.0 } else { percent };
    Ok(RetryBudget { percent, min_concurrency: min.unwrap_or(ISTIO_RETRY_BUDGET_MIN_CONCURRENCY) })
}

/// The service a rule's host names: `name` or `name.<namespace>[.svc.cluster.local]`.
fn service_of(path: &Path, doc: &str, field: &str, host: &str, topology: &Topology) -> Result<usize> {
    let name = host.split('.').next().unwrap_or("");
    topology
        .services
        .iter()
        .position(|s| s.name == name)
        .ok_or_else(|| Error::file(path, format!("field `{field}`{doc}: host `{host}` is not a service of the topology")))
}

fn claim(slot: &mut Option<String>, path: &Path, doc: &str, kind: &str, host: &str) -> Result<()> {
    let here = format!("{}{doc}", path.display());
    if let Some(first) = slot {
        return Err(Error::file(path, format!("{kind}{doc} for host `{host}`: that host already has one, in {first}")));
    }
    *slot = Some(here);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse_and_refuse() {
        assert_eq!(IstioRelease::parse("1.24").unwrap(), IstioRelease { minor: 24, patch: None });
        assert_eq!(IstioRelease::parse("1.28.5").unwrap(), IstioRelease { minor: 28, patch: Some(5) });
        for bad in ["2.0", "1", "1.x", "1.32", "1.2.3.4", "v1.24", ""] {
            assert!(IstioRelease::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_follow_the_release_table() {
        let r = |t: &str| IstioRelease::parse(t).unwrap();
        assert!(r("1.0").default_retries().is_none());
        let (p, on) = r("1.23").default_retries().unwrap();
        assert_eq!((p.attempts, on.status(503), on.connect_failure()), (2, true, true));
        let (_, on) = r("1.24").default_retries().unwrap();
        assert!(!on.status(503) && on.connect_failure());
        assert_eq!(r("1.13").default_load_balancer(), LoadBalancer::RoundRobin);
        assert_eq!(r("1.14").default_load_balancer(), LoadBalancer::LeastRequest);
        let old = DestinationPolicy::release_default(r("1.3"));
        assert_eq!((old.rules.max_connections, old.rules.max_retries), (1024, Some(1024)));
        let new = DestinationPolicy::release_default(r("1.4"));
        assert_eq!((new.rules.max_connections, new.rules.max_retries), (u32::MAX, None));
        assert!(r("1.27").retry_budget_percent_bug() && r("1.28.5").retry_budget_percent_bug());
        assert!(!r("1.28.6").retry_budget_percent_bug() && !r("1.28").retry_budget_percent_bug() && !r("1.30").retry_budget_percent_bug());
    }
}

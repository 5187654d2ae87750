//! The DestinationRule and VirtualService settings beyond the seven traffic rules of the
//! paper (issue 15): retries, the load balancer, and the defaults Istio and Envoy use for
//! what a rule leaves out. [`crate::rules::TrafficRules`] carries them next to the seven
//! rules; every default keeps today's behaviour (no retries, round robin, no
//! `http2MaxRequests`, Istio's 10 s connect timeout), so the datasets S1-S5 do not change.
//!
//! Sources (each checked in the upstream code, see docs/emulator.md):
//! - Istio `pilot/pkg/networking/core/route/retry/retry.go` (`DefaultPolicy`, `ConvertPolicy`):
//!   the retry policy of a route that sets none.
//! - Istio `pilot/pkg/networking/core/cluster_traffic_policy.go` (`getDefaultCircuitBreakerThresholds`,
//!   `applyConnectionPool`, `applyOutlierDetection`, `defaultLBAlgorithm`).
//! - Envoy `source/common/router/retry_state_impl.cc`, `source/common/common/backoff_strategy.cc`,
//!   `source/common/upstream/load_balancer_impl.cc` (`chooseHost`, `LeastRequestLoadBalancer`),
//!   `source/common/conn_pool/conn_pool_base.cc` (`attachStreamToClient`, `purgePendingStreams`).

use serde::{Deserialize, Serialize};

/// Istio's `meshConfig.connectTimeout` default, the cluster's `connect_timeout` when a
/// DestinationRule sets no `connectionPool.tcp.connectTimeout`: 10 s.
pub const ISTIO_CONNECT_TIMEOUT_MS: f64 = 10_000.0;

/// Envoy's outlier-detection defaults, which Istio keeps for every field an
/// `outlierDetection` block leaves out (Istio's `applyOutlierDetection` copies only the
/// fields that are set): `consecutive_5xx` 5.
pub const ENVOY_CONSECUTIVE_5XX: u32 = 5;
/// Envoy's default `interval`: 10 s.
pub const ENVOY_OUTLIER_INTERVAL_S: f64 = 10.0;
/// Envoy's default `base_ejection_time`: 30 s.
pub const ENVOY_BASE_EJECTION_TIME_S: f64 = 30.0;
/// Envoy's default `max_ejection_percent`: 10 %. Istio also maps `maxEjectionPercent: 0`
/// to it (it sets the field only when > 0).
pub const ENVOY_MAX_EJECTION_PERCENT: f64 = 10.0;

/// Envoy's `least_request_lb_config.choice_count` default (Istio does not expose it): the
/// power of two choices.
pub const LEAST_REQUEST_CHOICE_COUNT: u32 = 2;

/// Envoy's default retry back-off base interval (`upstream.base_retry_backoff_ms`), in ms.
pub const ENVOY_RETRY_BACKOFF_BASE_MS: f64 = 25.0;

/// `trafficPolicy.loadBalancer.simple`: how Envoy picks a host for each request (and retry)
/// among the healthy ones (all of them in panic mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LoadBalancer {
    /// Round robin, per Envoy worker thread. Istio's default before 1.14, and the emulator's
    /// default (the datasets were generated with it).
    #[default]
    RoundRobin,
    /// Envoy's least request with equal weights: `choice_count` (2) hosts drawn at random
    /// with replacement, the one with fewer active requests wins, ties keep the first draw.
    /// Istio's default since 1.14 (istio/istio#37220); `LEAST_CONN` is its old spelling.
    #[serde(alias = "LEAST_CONN")]
    LeastRequest,
    /// One host drawn uniformly at random.
    Random,
}

impl LoadBalancer {
    /// The load balancer Istio >= 1.14 applies when a rule sets none.
    pub const ISTIO_DEFAULT: LoadBalancer = LoadBalancer::LeastRequest;

    pub fn is_round_robin(&self) -> bool {
        *self == LoadBalancer::RoundRobin
    }

    /// The `loadBalancer.simple` value, as YAML and the trace's `load_balancer` column write it.
    pub fn istio_name(self) -> &'static str {
        match self {
            LoadBalancer::RoundRobin => "ROUND_ROBIN",
            LoadBalancer::LeastRequest => "LEAST_REQUEST",
            LoadBalancer::Random => "RANDOM",
        }
    }

    /// The load balancer of a `loadBalancer.simple` value (`LEAST_CONN` is Istio's old name
    /// of `LEAST_REQUEST`); `None` for anything the emulator does not model (`PASSTHROUGH`,
    /// `UNSPECIFIED`, a typo).
    pub fn from_istio_name(name: &str) -> Option<LoadBalancer> {
        match name {
            "ROUND_ROBIN" => Some(LoadBalancer::RoundRobin),
            "LEAST_REQUEST" | "LEAST_CONN" => Some(LoadBalancer::LeastRequest),
            "RANDOM" => Some(LoadBalancer::Random),
            _ => None,
        }
    }
}

/// A route's retry policy (VirtualService `http[].retries`, Envoy's `RetryPolicy`), as far as
/// an HTTP/1.1 upstream can trigger it. A missing field in a config takes Istio's default
/// policy's value ([`RetryPolicy::istio_default`], as Istio's `ConvertPolicy` starts from it);
/// a rule without a `retries` table gets [`RetryPolicy::off`] (today's emulator).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// `retries.attempts` (Envoy `num_retries`): retries after the first try; 0 turns
    /// retries off (Istio returns no policy for `attempts: 0`).
    pub attempts: u32,
    /// `retryOn` contains `connect-failure` (also implied by `5xx`): retry a request whose
    /// upstream connection failed or timed out (Envoy flag UF).
    pub on_connect_failure: bool,
    /// `retryOn` retries an upstream 503: `retriable-status-codes` with 503 (Istio's default),
    /// `5xx` or `gateway-error`. Envoy never retries its own overflow 503s (UO: a reset of
    /// reason overflow is never retried) nor its "no healthy upstream" reply (UH).
    pub on_503: bool,
    /// Envoy's `envoy.retry_host_predicates.previous_hosts` (Istio's default, and
    /// `retryIgnorePreviousHosts`): a retry's host pick is redone while it lands on a host
    /// this request already tried, at most `host_selection_retry_max_attempts` times; then
    /// the last pick is used.
    pub previous_hosts: bool,
    /// Envoy `host_selection_retry_max_attempts`; Istio sets 5.
    pub host_selection_retry_max_attempts: u32,
    /// `retries.backoff` (Envoy `retry_back_off.base_interval`), ms; Envoy's default 25 ms.
    /// Retry n (1, 2, ...) waits a uniform whole number of ms in [0, base x 2^(n-1)),
    /// the interval capped at 10 x base (Envoy's fully jittered exponential back-off).
    pub backoff_base_ms: f64,
}

impl RetryPolicy {
    /// No retries: the emulator's default, under which the datasets were generated.
    pub const fn off() -> RetryPolicy {
        RetryPolicy { attempts: 0, ..RetryPolicy::istio_default() }
    }

    /// The policy Istio 1.1-1.23 gives a route whose VirtualService sets no `retries`
    /// (`DefaultPolicy` in Istio's `route/retry/retry.go`, since istio/istio#10566): 2 retries
    /// on "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes" with
    /// status 503, other hosts preferred (previous_hosts), 5 host-selection attempts,
    /// Envoy's 25 ms back-off. Refused streams (HTTP/2) and the gRPC statuses never occur on
    /// the emulator's HTTP/1.1 upstream. The Istio of the paper's time (2021), and of the
    /// emulator's default scenario.
    pub const fn istio_default() -> RetryPolicy {
        RetryPolicy {
            attempts: 2,
            on_connect_failure: true,
            on_503: true,
            previous_hosts: true,
            host_selection_retry_max_attempts: 5,
            backoff_base_ms: ENVOY_RETRY_BACKOFF_BASE_MS,
        }
    }

    /// Istio >= 1.24's default policy: as [`RetryPolicy::istio_default`] without the 503
    /// (`EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY` defaults to true, istio/istio#52111; the 1.23
    /// compatibility profile sets it back to false). Only connect failures are retried.
    pub const fn istio_1_24_default() -> RetryPolicy {
        RetryPolicy { on_503: false, ..RetryPolicy::istio_default() }
    }

    /// True when no request is ever retried.
    pub fn is_off(&self) -> bool {
        self.attempts == 0 || !(self.on_connect_failure || self.on_503)
    }
}

impl Default for RetryPolicy {
    /// Istio's default policy: what a `retries` table's missing fields take.
    fn default() -> Self {
        RetryPolicy::istio_default()
    }
}

/// The conditions of a `retryOn` list that an HTTP/1.1 upstream can trigger, following
/// Envoy's `RetryStateImpl`: `5xx` retries any 5xx answer, a reset (a per-try timeout) and a
/// connect failure; `gateway-error` 502, 503, 504, resets and connect failures; `reset` resets
/// and connect failures; `connect-failure` (and `reset-before-request`) connect failures; a
/// status code (`503`, with `retriable-status-codes`) that answer. The other conditions Istio
/// accepts (refused-stream, retriable-4xx, the gRPC ones ...) never fire on HTTP/1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryOn {
    pub any_5xx: bool,
    pub gateway_error: bool,
    pub reset: bool,
    pub connect_failure: bool,
    /// Status codes listed, 500-599, one bit each (bit k: 500 + k).
    pub status_5xx_codes: u128,
}

impl RetryOn {
    /// The list `retryOn` would write for [`RetryPolicy::istio_default`]'s conditions:
    /// connect failures, and 503 when `on_503`.
    pub fn istio_default(on_503: bool) -> RetryOn {
        RetryOn { connect_failure: true, status_5xx_codes: if on_503 { 1 << 3 } else { 0 }, ..RetryOn::default() }
    }

    /// Whether an upstream answer with `status` (500-599) is retried.
    pub fn status(&self, status: u16) -> bool {
        let listed = (500..600).contains(&status) && self.status_5xx_codes & (1u128 << (status - 500)) != 0;
        self.any_5xx || listed || (self.gateway_error && matches!(status, 502..=504))
    }

    /// Whether a reset (a per-try timeout) is retried.
    pub fn reset(&self) -> bool {
        self.any_5xx || self.gateway_error || self.reset
    }

    /// Whether a connect failure (refused, or not up within the connect timeout) is retried.
    pub fn connect_failure(&self) -> bool {
        self.any_5xx || self.gateway_error || self.reset || self.connect_failure
    }

    /// The `retryOn` list that [`RetryOn::parse`] reads back to these conditions.
    pub fn spelling(&self) -> String {
        let mut on: Vec<String> = Vec::new();
        for (set, token) in
            [(self.connect_failure, "connect-failure"), (self.reset, "reset"), (self.gateway_error, "gateway-error"), (self.any_5xx, "5xx")]
        {
            if set {
                on.push(token.into());
            }
        }
        if self.status_5xx_codes != 0 {
            on.push("retriable-status-codes".into());
            on.extend((0..100u16).filter(|k| self.status_5xx_codes & (1u128 << k) != 0).map(|k| (500 + k).to_string()));
        }
        on.join(",")
    }

    /// Reads a `retryOn` list as Istio's validation accepts it (comma-separated, no spaces).
    pub fn parse(on: &str) -> Result<RetryOn, String> {
        let mut r = RetryOn::default();
        for token in on.split(',') {
            match token {
                "5xx" => r.any_5xx = true,
                "gateway-error" => r.gateway_error = true,
                "reset" => r.reset = true,
                "connect-failure" | "reset-before-request" => r.connect_failure = true,
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
                code if code.len() == 3 && code.parse::<u16>().is_ok_and(|c| (100..=599).contains(&c)) => {
                    let c: u16 = code.parse().unwrap_or(0);
                    if c >= 500 {
                        r.status_5xx_codes |= 1u128 << (c - 500);
                    }
                }
                _ => {
                    return Err(format!(
                        "`{token}` is not a retry condition Istio accepts (comma-separated, no spaces: e.g. connect-failure, \
                         5xx, gateway-error, reset, retriable-status-codes, or a status code such as 503)"
                    ))
                }
            }
        }
        Ok(r)
    }
}

/// serde default of [`crate::rules::TrafficRules::connect_timeout_ms`].
pub fn default_connect_timeout_ms() -> f64 {
    ISTIO_CONNECT_TIMEOUT_MS
}

/// serde `skip_serializing_if` of [`crate::rules::TrafficRules::connect_timeout_ms`]: a rule at Istio's
/// default serialises as before the field existed.
pub fn is_default_connect_timeout(ms: &f64) -> bool {
    *ms == ISTIO_CONNECT_TIMEOUT_MS
}

//! A scaling policy behind HTTP (`meshrl serve`): the RL-Model API of seed 004 (MAESTRO,
//! section 4.6), answering from a policy file ([`crate::policy`]).
//!
//! - `POST /predict` takes the state as a JSON object and answers the decision:
//!   `{"action": 2, "delta": 1, "replicas": 3, "predicted_latency_s": 0.3}`, where `action`
//!   is 004's coding (0 scale down, 1 stay, 2 scale up), `delta` the same as a replica count,
//!   `replicas` the replicas (ready and starting) after the decision and
//!   `predicted_latency_s` the model's latency at this load with the replicas serving after it.
//! - `GET /healthz` answers `ok`.
//!
//! The request names either 004's fields or ours: the offered load as `rps` (or `load`),
//! req/s; the replicas serving as `n_replicas` (or `ready`); optionally the replicas started
//! but not serving yet as `starting` (default 0). 004's other metrics, `cpu_usage`,
//! `memory_usage` and `latency` (p95, ms), are accepted so that 004's client works unchanged,
//! checked to be numbers >= 0 and otherwise ignored: the policies here decide from load and
//! replicas. Any other field is refused (a misspelt `n_replica` would otherwise be a missing
//! field in disguise), as are a load given twice, counts that are not whole numbers >= 0, and
//! every value out of range. Each refusal is a 400 with `{"error": "..."}` naming the field;
//! so is a query the policy cannot answer (a load above its largest, replicas outside its
//! bounds). Unknown paths get a 404, other methods a 405, both with a JSON error.
//!
//! [`serve`] runs until SIGTERM or Ctrl-C, then stops accepting, lets the requests in flight
//! finish (at most [`ServeOptions::grace`]) and returns.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::policy::{ScalingPolicy, ScalingQuery};

/// How [`serve`] runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen; port 0 picks a free one (given to the `listening` callback).
    pub addr: SocketAddr,
    /// Worker threads; `None`: one per core.
    pub workers: Option<usize>,
    /// After a shutdown signal, how long requests in flight may take before the server
    /// returns anyway.
    pub grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { addr: SocketAddr::from(([127, 0, 0, 1], 8080)), workers: None, grace: Duration::from_secs(10) }
    }
}

/// A request body larger than this is refused (413): a state is a few dozen bytes.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Serves `policy` until SIGTERM or Ctrl-C. `listening` is called with the bound address once
/// the server accepts connections and the signal handlers are in place (so that a signal
/// sent after it is always a graceful shutdown).
pub fn serve(policy: Box<dyn ScalingPolicy>, options: &ServeOptions, listening: impl FnOnce(SocketAddr)) -> Result<()> {
    single_threaded_kernels();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = options.workers {
        if workers == 0 {
            return Err(Error::config("workers must be >= 1"));
        }
        runtime.worker_threads(workers);
    }
    let runtime = runtime.enable_all().build().map_err(|e| Error::io("starting the server's runtime", e))?;
    runtime.block_on(async {
        let shutdown = shutdown_signal().map_err(|e| Error::io("installing the SIGTERM and Ctrl-C handlers", e))?;
        let listener = tokio::net::TcpListener::bind(options.addr).await.map_err(|e| Error::io(format!("binding {}", options.addr), e))?;
        let addr = listener.local_addr().map_err(|e| Error::io("reading the bound address", e))?;
        listening(addr);
        run(Arc::from(policy), listener, shutdown, options.grace).await
    })
}

/// Runs candle's matrix products on the calling thread (`RAYON_NUM_THREADS=1`, unless the
/// variable is set). A network policy's products are a few thousand multiply-adds, which
/// another thread only slows down; and without the variable candle looks the core count up
/// (reading `/proc` and `/sys`) at every product, which costs far more than the products
/// (measured with a PPO policy of two layers of 64: 97 us per decision instead of 3 us).
/// Call it before other threads start; [`serve`] does.
pub fn single_threaded_kernels() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
}

/// Serves `policy` on `listener` until `shutdown` completes, then drains the connections (at
/// most `grace`). For callers with their own runtime (tests, benchmarks).
pub async fn run(
    policy: Arc<dyn ScalingPolicy>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<()> {
    use axum::serve::ListenerExt;
    // Answers are small and the client waits for each: do not let Nagle hold them back.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(policy)).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    });
    let deadline = async move {
        // The sender is dropped only once the signal came (or the server is gone).
        let _ = stopping_rx.await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server => served.map_err(|e| Error::io("serving", e)),
        () = deadline => {
            eprintln!("meshrl serve: requests still in flight {grace:?} after the shutdown signal; stopping anyway");
            Ok(())
        }
    }
}

/// Completes on the first SIGTERM or Ctrl-C (SIGINT). The handlers are installed when this
/// is called, not when the future is first polled.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// The routes, for [`run`] or for calling directly (`tower::ServiceExt::oneshot`).
pub fn router(policy: Arc<dyn ScalingPolicy>) -> Router {
    Router::new()
        .route("/predict", post(predict))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(policy)
}

/// The answer of `POST /predict`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// 004's action: 0 scale down, 1 stay, 2 scale up.
    pub action: u8,
    /// The same as replicas to add: -1, 0 or +1.
    pub delta: i32,
    /// Replicas after the decision (ready and starting).
    pub replicas: u32,
    /// The model's latency at this load with the replicas serving after the decision, s.
    pub predicted_latency_s: f64,
}

async fn predict(State(policy): State<Arc<dyn ScalingPolicy>>, body: std::result::Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => return error(e.status(), &e.body_text()),
    };
    let query = match parse_query(&body) {
        Ok(q) => q,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    // A policy that panics fails this request, not the connection's task.
    let decision = match std::panic::catch_unwind(AssertUnwindSafe(|| policy.decide(&query))) {
        Ok(Ok(d)) => d,
        Ok(Err(message)) => return error(StatusCode::BAD_REQUEST, &message),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "the policy failed on this query"),
    };
    let action = match decision.delta {
        -1..=1 => (decision.delta + 1) as u8,
        d => return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("the policy answered delta {d}, outside -1..=1")),
    };
    let answer =
        Prediction { action, delta: decision.delta, replicas: decision.replicas, predicted_latency_s: decision.predicted_latency_s };
    json(StatusCode::OK, serde_json::to_vec(&answer).unwrap_or_default())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error(StatusCode::NOT_FOUND, &format!("no such endpoint: {method} {}; the endpoints are POST /predict and GET /healthz", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let allowed = if uri.path() == "/predict" { "POST" } else { "GET" };
    error(StatusCode::METHOD_NOT_ALLOWED, &format!("{} takes {allowed}, not {method}", uri.path()))
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default())
}

/// What a request body must be (also in `RawQuery`'s `expecting`, which takes a literal).
const EXPECTED: &str = "a JSON object such as {\"rps\": 120, \"n_replicas\": 2}";

/// A request body as sent: every field optional here, checked in [`parse_query`]. A field
/// given as `null` is present (and refused), not missing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a JSON object such as {\"rps\": 120, \"n_replicas\": 2}")]
struct RawQuery {
    #[serde(default, deserialize_with = "present")]
    rps: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    load: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    n_replicas: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    ready: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    starting: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    cpu_usage: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    memory_usage: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    latency: Option<Value>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A state from a request body, or a message naming what is wrong with it.
pub fn parse_query(body: &[u8]) -> std::result::Result<ScalingQuery, String> {
    // A derived struct also reads an array (its fields in order): refuse that first.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(format!("invalid request: expected {EXPECTED}, not an array"));
    }
    let raw: RawQuery = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => format!("invalid request: {e}"),
        _ => format!("malformed JSON: {e}"),
    })?;
    for (name, value) in [("cpu_usage", &raw.cpu_usage), ("memory_usage", &raw.memory_usage), ("latency", &raw.latency)] {
        if let Some(v) = value {
            non_negative(name, v)?;
        }
    }
    let load = match (&raw.rps, &raw.load) {
        (Some(v), None) => non_negative("rps", v)?,
        (None, Some(v)) => non_negative("load", v)?,
        (Some(_), Some(_)) => return Err("give the load once: `rps` or `load`, not both".into()),
        (None, None) => return Err("missing field `rps` (or `load`): the offered load, requests per second".into()),
    };
    let ready = match (&raw.n_replicas, &raw.ready) {
        (Some(v), None) => count("n_replicas", v)?,
        (None, Some(v)) => count("ready", v)?,
        (Some(_), Some(_)) => return Err("give the replicas once: `n_replicas` or `ready`, not both".into()),
        (None, None) => return Err("missing field `n_replicas` (or `ready`): the replicas serving".into()),
    };
    let starting = raw.starting.as_ref().map_or(Ok(0), |v| count("starting", v))?;
    Ok(ScalingQuery { load, ready, starting })
}

/// A finite number >= 0.
fn non_negative(name: &str, v: &Value) -> std::result::Result<f64, String> {
    match v.as_f64() {
        Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
        Some(x) => Err(format!("`{name}` must be >= 0, but is {x}")),
        None => Err(format!("`{name}` must be a number, but is {v}")),
    }
}

/// A whole number >= 0 that fits a replica count; `2.0` counts as 2 (clients that keep the
/// state as a float vector, as 004's does, send it so).
fn count(name: &str, v: &Value) -> std::result::Result<u32, String> {
    let x = non_negative(name, v)?;
    if x.fract() != 0.0 {
        return Err(format!("`{name}` must be a whole number, but is {x}"));
    }
    if x > u32::MAX as f64 {
        return Err(format!("`{name}` must be at most {}, but is {x}", u32::MAX));
    }
    Ok(x as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{LookupPolicy, LookupRow, ScalingDecision};
    use tower::ServiceExt;

    fn q(body: &str) -> std::result::Result<ScalingQuery, String> {
        parse_query(body.as_bytes())
    }

    #[track_caller]
    fn refused(body: &str, needles: &[&str]) {
        let err = q(body).expect_err(body);
        for n in needles {
            assert!(err.contains(n), "{body}: the message should name {n:?}: {err}");
        }
    }

    #[test]
    fn requests_take_004s_names_or_ours() {
        let state = q(r#"{"cpu_usage": 0.42, "memory_usage": 0.3, "n_replicas": 2, "latency": 180.5, "rps": 3.5}"#).unwrap();
        assert_eq!(state, ScalingQuery { load: 3.5, ready: 2, starting: 0 });
        assert_eq!(q(r#"{"load": 4, "ready": 1, "starting": 1}"#).unwrap(), ScalingQuery { load: 4.0, ready: 1, starting: 1 });
        assert_eq!(
            q(r#"{"rps": 0, "n_replicas": 3.0}"#).unwrap(),
            ScalingQuery { load: 0.0, ready: 3, starting: 0 },
            "a whole float is a count"
        );
    }

    #[test]
    fn bad_requests_are_refused_naming_the_field() {
        refused("", &["malformed JSON"]);
        refused(r#"{"rps": 3, "n_replicas": 2"#, &["malformed JSON"]);
        refused(" [1, 2]", &["JSON object", "not an array"]);
        refused("3", &["JSON object"]);
        refused(r#""rps""#, &["JSON object"]);
        refused(r#"{"rps": 3, "n_replica": 2}"#, &["unknown field `n_replica`"]);
        refused(r#"{"n_replicas": 2}"#, &["missing", "rps"]);
        refused(r#"{"rps": 2}"#, &["missing", "n_replicas"]);
        refused(r#"{"rps": 2, "load": 2, "ready": 1}"#, &["rps", "load", "not both"]);
        refused(r#"{"rps": 2, "n_replicas": 1, "ready": 1}"#, &["n_replicas", "ready", "not both"]);
        refused(r#"{"rps": -1, "n_replicas": 2}"#, &["`rps`", ">= 0", "-1"]);
        refused(r#"{"rps": "fast", "n_replicas": 2}"#, &["`rps`", "number", "\"fast\""]);
        refused(r#"{"rps": null, "n_replicas": 2}"#, &["`rps`", "null"]);
        refused(r#"{"rps": 1e999, "n_replicas": 2}"#, &["malformed JSON", "out of range"]);
        refused(r#"{"rps": 1, "n_replicas": 2.5}"#, &["`n_replicas`", "whole"]);
        refused(r#"{"rps": 1, "n_replicas": -2}"#, &["`n_replicas`", ">= 0"]);
        refused(r#"{"rps": 1, "n_replicas": 1e12}"#, &["`n_replicas`", "at most"]);
        refused(r#"{"rps": 1, "ready": 1, "starting": true}"#, &["`starting`", "number"]);
        refused(r#"{"rps": 1, "n_replicas": 1, "cpu_usage": "high"}"#, &["`cpu_usage`", "number"]);
        refused(r#"{"rps": 1, "n_replicas": 1, "latency": -3}"#, &["`latency`", ">= 0"]);
        refused(r#"{"rps": 1, "rps": 2, "n_replicas": 1}"#, &["duplicate field `rps`"]);
    }

    /// Load 1 or 4 req/s, 1 or 2 ready replicas: scale up when one replica is slow.
    fn table() -> Arc<dyn ScalingPolicy> {
        let row = |load, ready, delta, replicas, lat| LookupRow { load, ready, starting: 0, delta, replicas, predicted_latency_s: lat };
        Arc::new(LookupPolicy {
            rows: vec![row(1.0, 1, 0, 1, 0.3), row(1.0, 2, -1, 1, 0.3), row(4.0, 1, 1, 2, 2.0), row(4.0, 2, 0, 2, 0.5)],
        })
    }

    async fn call(app: &Router, method: &str, path: &str, body: &str) -> (StatusCode, String) {
        let request = axum::http::Request::builder().method(method).uri(path).body(axum::body::Body::from(body.to_string())).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn the_routes_answer_and_refuse_with_json() {
        let app = router(table());
        runtime().block_on(async {
            let (status, body) =
                call(&app, "POST", "/predict", r#"{"cpu_usage":0.9,"memory_usage":0.5,"n_replicas":1,"latency":900,"rps":3}"#).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let p: Prediction = serde_json::from_str(&body).unwrap();
            assert_eq!(p, Prediction { action: 2, delta: 1, replicas: 2, predicted_latency_s: 2.0 }, "3 req/s rounds up to 4");
            let (status, body) = call(&app, "POST", "/predict", r#"{"load":1,"ready":2}"#).await;
            assert_eq!((status, serde_json::from_str::<Prediction>(&body).unwrap().action), (StatusCode::OK, 0));

            for (body, needle) in [
                (r#"{"rps":9,"n_replicas":1}"#, "above"),
                (r#"{"rps":1,"n_replicas":7}"#, "no decision"),
                (r#"{"rps":-1,"n_replicas":1}"#, "`rps`"),
                ("{", "malformed JSON"),
            ] {
                let (status, text) = call(&app, "POST", "/predict", body).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
                let message: Value = serde_json::from_str(&text).unwrap();
                assert!(message["error"].as_str().unwrap().contains(needle), "{body}: {text}");
            }
            assert_eq!(call(&app, "GET", "/healthz", "").await, (StatusCode::OK, "ok".to_string()));
            let (status, text) = call(&app, "GET", "/predict", "").await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
            assert!(text.contains("POST"), "{text}");
            let (status, text) = call(&app, "POST", "/nowhere", "").await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            assert!(text.contains("/nowhere"), "{text}");
            let (status, _) = call(&app, "POST", "/predict", &" ".repeat(BODY_LIMIT + 1)).await;
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        });
    }

    struct Faulty(i32);

    impl ScalingPolicy for Faulty {
        fn decide(&self, _q: &ScalingQuery) -> std::result::Result<ScalingDecision, String> {
            if self.0 == 0 {
                panic!("a bug in the policy");
            }
            Ok(ScalingDecision { delta: self.0, replicas: 1, predicted_latency_s: 0.1 })
        }
    }

    #[test]
    fn a_faulty_policy_fails_the_request_not_the_server() {
        runtime().block_on(async {
            for faulty in [0, 5] {
                let (status, text) = call(&router(Arc::new(Faulty(faulty))), "POST", "/predict", r#"{"rps":1,"n_replicas":1}"#).await;
                assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{text}");
            }
        });
    }

    #[test]
    fn a_network_policy_is_served_as_it_decides() {
        use crate::agent::dqn::DqnConfig;
        use crate::agent::ppo::PpoConfig;
        use crate::agent::{LearnerKind, LearnerSpec};
        use crate::env::autoscale::{tests::spec, ScalingEnv};
        use crate::env::Environment;
        use crate::policy::{load_policy, NetworkPolicy};
        use rand::SeedableRng;

        let spec = spec(1);
        let env = ScalingEnv::new(spec.clone()).unwrap();
        let ppo = PpoConfig::default();
        let learner = ppo.build(env.layout(), &mut rand_chacha::ChaCha8Rng::seed_from_u64(3)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ppo.policy");
        NetworkPolicy::save(&path, &spec, LearnerKind::Ppo, &DqnConfig::default(), &ppo, learner.as_ref()).unwrap();
        let policy: Arc<dyn ScalingPolicy> = Arc::from(load_policy(&path).unwrap());
        let want = policy.decide(&ScalingQuery { load: 4.0, ready: 2, starting: 1 }).unwrap();
        let app = router(policy);
        runtime().block_on(async {
            let (status, body) = call(&app, "POST", "/predict", r#"{"rps":3.2,"n_replicas":2,"starting":1}"#).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let p: Prediction = serde_json::from_str(&body).unwrap();
            assert_eq!(
                (p.delta, p.replicas, p.predicted_latency_s, p.action as i32),
                (want.delta, want.replicas, want.predicted_latency_s, want.delta + 1)
            );
            let (status, body) = call(&app, "POST", "/predict", r#"{"rps":1,"n_replicas":0}"#).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(body.contains("replicas must lie in"), "{body}");
        });
    }

    #[test]
    fn the_server_stops_when_told_and_drains_its_connections() {
        use std::io::{Read, Write};
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = rt.spawn(run(table(), listener, async move { stopped.await.unwrap_or(()) }, Duration::from_secs(5)));
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // The idle keep-alive connection does not hold the shutdown up.
        stop.send(()).unwrap();
        let started = std::time::Instant::now();
        rt.block_on(server).unwrap().unwrap();
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }
}

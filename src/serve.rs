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
//! [`serve`] runs until SIGTERM or Ctrl-C, then stops accepting, closes the connections with
//! no request in flight, lets the requests in flight finish (at most [`Timeouts::grace`]) and
//! returns. A connection that is slow to send a request, or idles, is closed ([`Timeouts`]).

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use tower::ServiceExt;

use crate::error::{Error, Result};
use crate::policy::{ScalingPolicy, ScalingQuery};

/// How [`serve`] runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen; port 0 picks a free one (given to the `listening` callback).
    pub addr: SocketAddr,
    /// Worker threads, 1-[`MAX_WORKERS`]; `None`: one per core.
    pub workers: Option<usize>,
    /// How long a connection may take or idle (see [`Timeouts`]).
    pub timeouts: Timeouts,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { addr: SocketAddr::from(([127, 0, 0, 1], 8080)), workers: None, timeouts: Timeouts::default() }
    }
}

/// The most worker threads [`serve`] starts: more only cost memory (the server answers in
/// microseconds), and a huge count fails at thread creation.
pub const MAX_WORKERS: usize = 1024;

/// How long a client may hold a connection without using it. Without these a few sockets
/// that open and never finish a request (or idle forever) use up the server's file
/// descriptors, and a shutdown waits for them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// From the first byte of a request to its whole head and body: a client slower than this
    /// is disconnected (408 if the head has arrived). Default 10 s.
    pub request: Duration,
    /// A keep-alive connection with no request for this long is closed. Default 60 s.
    pub idle: Duration,
    /// After a shutdown signal, how long requests in flight may take before the server returns
    /// anyway. Connections with no request in flight (idle, or a request still arriving) are
    /// closed at once. Default 10 s.
    pub grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { request: Duration::from_secs(10), idle: Duration::from_secs(60), grace: Duration::from_secs(10) }
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
        if !(1..=MAX_WORKERS).contains(&workers) {
            return Err(Error::config(format!("workers must lie in 1-{MAX_WORKERS}, but is {workers}")));
        }
        runtime.worker_threads(workers);
    }
    // Tokio panics when the system refuses a thread: an error, not a panic.
    let runtime = std::panic::catch_unwind(AssertUnwindSafe(|| runtime.enable_all().build()))
        .map_err(|_| Error::config("could not start the server's worker threads (the system refused them); try fewer --workers"))?
        .map_err(|e| Error::io("starting the server's runtime", e))?;
    runtime.block_on(async {
        let shutdown = shutdown_signal().map_err(|e| Error::io("installing the SIGTERM and Ctrl-C handlers", e))?;
        let listener = tokio::net::TcpListener::bind(options.addr).await.map_err(|e| Error::io(format!("binding {}", options.addr), e))?;
        let addr = listener.local_addr().map_err(|e| Error::io("reading the bound address", e))?;
        listening(addr);
        run(Arc::from(policy), listener, shutdown, options.timeouts).await
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
/// most `timeouts.grace`). For callers with their own runtime (tests, benchmarks).
///
/// Each connection is served by hyper's HTTP/1.1 connection and watched by its own task
/// ([`connection`]), which enforces [`Timeouts`]: hyper's own header timeout also closes
/// idle keep-alive connections after the same time, so it cannot give the two their own
/// values.
pub async fn run(
    policy: Arc<dyn ScalingPolicy>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    timeouts: Timeouts,
) -> Result<()> {
    let app = router_with(policy, timeouts.request);
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Answers are small and the client waits for each: no Nagle delay.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection(stream, app.clone(), timeouts, stopping.clone()));
                }
                // Out of file descriptors, or a connection reset before it was accepted:
                // wait a little instead of spinning (as axum::serve does).
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    let drained = tokio::time::timeout(timeouts.grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        eprintln!("meshrl serve: requests still in flight {:?} after the shutdown signal; stopping anyway", timeouts.grace);
    }
    Ok(())
}

/// What one connection is doing, as its watcher sees it.
#[derive(Debug)]
struct Activity {
    /// Requests handed to the router whose answers are not yet written.
    in_flight: usize,
    /// When the first byte of a request not yet handed to the router arrived.
    arriving_since: Option<Instant>,
    /// When the last request's answer was written (or the connection opened).
    last_answer: Instant,
}

type SharedActivity = Arc<std::sync::Mutex<Activity>>;

fn lock(activity: &SharedActivity) -> std::sync::MutexGuard<'_, Activity> {
    activity.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves one connection until it closes, a [`Timeouts`] limit passes, or the server stops
/// (then it finishes the request in flight, if any, and closes).
async fn connection(stream: tokio::net::TcpStream, app: Router, timeouts: Timeouts, mut stopping: tokio::sync::watch::Receiver<bool>) {
    let activity: SharedActivity =
        Arc::new(std::sync::Mutex::new(Activity { in_flight: 0, arriving_since: None, last_answer: Instant::now() }));
    let io = hyper_util::rt::TokioIo::new(Watched { inner: stream, activity: activity.clone() });
    let watched = activity.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        let guard = InFlight::start(watched.clone());
        async move {
            let response = app.oneshot(request.map(axum::body::Body::new)).await?;
            // The request counts as in flight until hyper has taken the whole answer.
            Ok::<_, std::convert::Infallible>(response.map(|body| axum::body::Body::new(Guarded { body, _guard: guard })))
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    // The watcher below enforces the timeouts (hyper's own would also cut idle connections).
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(None);
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let tick = (timeouts.request.min(timeouts.idle) / 4).clamp(Duration::from_millis(5), Duration::from_secs(1));
    let mut stopped = *stopping.borrow();
    if stopped {
        return;
    }
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep(tick) => {}
            changed = stopping.changed(), if !stopped => {
                stopped = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        let now = Instant::now();
        let a = lock(&activity);
        let expired = a.in_flight == 0
            && match a.arriving_since {
                // A request still arriving: too slow, or the server is stopping.
                Some(since) => stopped || now.duration_since(since) > timeouts.request,
                None => stopped || now.duration_since(a.last_answer) > timeouts.idle,
            };
        if expired {
            // Dropping the connection closes the socket.
            return;
        }
    }
}

/// Marks a request in flight from the moment hyper hands it over until its answer's body is
/// dropped (written, or abandoned with the connection).
struct InFlight(SharedActivity);

impl InFlight {
    fn start(activity: SharedActivity) -> Self {
        {
            let mut a = lock(&activity);
            a.in_flight += 1;
            a.arriving_since = None;
        }
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut a = lock(&self.0);
        a.in_flight -= 1;
        a.last_answer = Instant::now();
        a.arriving_since = None;
    }
}

/// An answer's body that keeps its request in flight while hyper writes it.
struct Guarded {
    body: axum::body::Body,
    _guard: InFlight,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A socket that notes when the bytes of a new request start to arrive.
struct Watched {
    inner: tokio::net::TcpStream,
    activity: SharedActivity,
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let mut a = lock(&self.activity);
            if a.in_flight == 0 && a.arriving_since.is_none() {
                a.arriving_since = Some(Instant::now());
            }
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
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

/// The routes, for [`run`] or for calling directly (`tower::ServiceExt::oneshot`), with the
/// default request timeout.
pub fn router(policy: Arc<dyn ScalingPolicy>) -> Router {
    router_with(policy, Timeouts::default().request)
}

/// The routes, answering 408 when a request's body takes longer than `request_timeout`.
pub fn router_with(policy: Arc<dyn ScalingPolicy>, request_timeout: Duration) -> Router {
    Router::new()
        .route("/predict", post(predict))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(request_timeout, framing))
        .with_state(policy)
}

/// Checks a request's framing before anything reads its body. A body must come with
/// `Content-Length`: `Transfer-Encoding` is refused (411), alone or with `Content-Length` (the
/// two disagree on where the body ends, the root of request smuggling; RFC 9112, section 6.3,
/// lets a server refuse such requests, and hyper would silently drop the length); a state is
/// a few dozen bytes, which every client sends with a length. A declared length above
/// [`BODY_LIMIT`] gets its 413 at once (a client that sent `Expect: 100-continue` then never
/// sends the body), and the body must arrive within `request_timeout` (408).
async fn framing(State(request_timeout): State<Duration>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let headers = request.headers();
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return error(
            StatusCode::LENGTH_REQUIRED,
            "send the body with Content-Length: Transfer-Encoding is refused, alone or beside Content-Length (RFC 9112, section 6.3)",
        );
    }
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = declared.filter(|&l| l > BODY_LIMIT as u64) {
        return error(StatusCode::PAYLOAD_TOO_LARGE, &format!("the body is {length} bytes; at most {BODY_LIMIT} are accepted"));
    }
    match tokio::time::timeout(request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(StatusCode::REQUEST_TIMEOUT, &format!("the request did not arrive within {request_timeout:?}")),
    }
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
        let server = rt.spawn(run(
            table(),
            listener,
            async move { stopped.await.unwrap_or(()) },
            Timeouts { grace: Duration::from_secs(5), ..Default::default() },
        ));
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

    /// A server on loopback with the given timeouts, in a runtime of its own.
    struct Live {
        rt: tokio::runtime::Runtime,
        addr: SocketAddr,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        server: Option<tokio::task::JoinHandle<Result<()>>>,
    }

    impl Live {
        fn start(timeouts: Timeouts) -> Live {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = rt.spawn(run(table(), listener, async move { stopped.await.unwrap_or(()) }, timeouts));
            Live { rt, addr, stop: Some(stop), server: Some(server) }
        }

        /// Signals the shutdown and returns how long the server took to return.
        fn stop(&mut self) -> Duration {
            self.stop.take().unwrap().send(()).unwrap();
            let started = std::time::Instant::now();
            self.rt.block_on(self.server.take().unwrap()).unwrap().unwrap();
            started.elapsed()
        }

        fn connect(&self) -> std::net::TcpStream {
            let s = std::net::TcpStream::connect(self.addr).unwrap();
            // A guard against a hung test, not a speed check.
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s
        }
    }

    /// Writes `request` and reads until the peer closes or the answer's body (by its
    /// Content-Length) is complete.
    fn exchange(stream: &mut std::net::TcpStream, request: &[u8]) -> String {
        use std::io::{Read, Write};
        stream.write_all(request).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length = text[..head_end]
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()));
                if length.is_some_and(|l| got.len() >= head_end + 4 + l) {
                    break;
                }
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// Whether the server has closed `stream` (a read sees end of file or a reset).
    fn closed_within(stream: &mut std::net::TcpStream, limit: Duration) -> bool {
        use std::io::Read;
        stream.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return false,
                Err(_) => return true,
            }
        }
    }

    /// The `error` of an answer's JSON body.
    fn error_of(answer: &str) -> String {
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"));
        value["error"].as_str().unwrap_or_else(|| panic!("no error field: {answer}")).to_string()
    }

    const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn slow_sockets_neither_block_the_server_nor_hold_its_shutdown() {
        use std::io::Write;
        let mut live = Live::start(Timeouts { grace: Duration::from_secs(30), ..Timeouts::default() });
        // 50 sockets that start a request and never finish it.
        let mut slow: Vec<_> = (0..50)
            .map(|_| {
                let mut s = live.connect();
                s.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le").unwrap();
                s
            })
            .collect();
        for _ in 0..20 {
            let answer = exchange(&mut live.connect(), HEALTHZ);
            assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
        }
        // The shutdown closes them at once instead of waiting the 30 s grace.
        let took = live.stop();
        assert!(took < Duration::from_secs(10), "the shutdown waited {took:?} for sockets that never sent a request");
        assert!(closed_within(&mut slow[0], Duration::from_secs(5)));
    }

    #[test]
    fn a_slow_request_and_an_idle_connection_are_closed_after_their_timeouts() {
        use std::io::Write;
        let timeouts = Timeouts { request: Duration::from_millis(300), idle: Duration::from_millis(900), grace: Duration::from_secs(5) };
        let mut live = Live::start(timeouts);
        // A head that never ends: closed after about 0.3 s, well before the idle timeout.
        let mut slow = live.connect();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
        let started = std::time::Instant::now();
        assert!(closed_within(&mut slow, Duration::from_secs(10)), "a request that never ends holds its connection");
        assert!(started.elapsed() < Duration::from_millis(850), "closed after {:?}, not the request timeout", started.elapsed());
        // A body that never ends: 408.
        let mut body = live.connect();
        let answer = exchange(&mut body, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n{\"rps\"");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(error_of(&answer).contains("did not arrive within"), "{answer}");
        // An idle keep-alive connection: answered, kept a while, then closed.
        let mut idle = live.connect();
        assert!(exchange(&mut idle, HEALTHZ).starts_with("HTTP/1.1 200"));
        assert!(!closed_within(&mut idle, Duration::from_millis(300)), "closed long before the idle timeout");
        assert!(closed_within(&mut idle, Duration::from_secs(10)), "an idle connection is never closed");
        live.stop();
    }

    #[test]
    fn ambiguous_framing_and_oversized_bodies_are_refused_before_the_body_is_read() {
        let mut live = Live::start(Timeouts::default());
        let smuggled = exchange(
            &mut live.connect(),
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        );
        assert!(smuggled.starts_with("HTTP/1.1 411"), "{smuggled}");
        assert!(error_of(&smuggled).contains("Transfer-Encoding"), "{smuggled}");
        let chunked =
            exchange(&mut live.connect(), b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
        assert!(chunked.starts_with("HTTP/1.1 411"), "{chunked}");
        // The client waits for 100 Continue before sending the body: it gets the 413 instead.
        let big = format!("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n", BODY_LIMIT + 1);
        let answer = exchange(&mut live.connect(), big.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 413") && !answer.contains("100 Continue"), "{answer}");
        assert!(error_of(&answer).contains(&format!("at most {BODY_LIMIT}")), "{answer}");
        live.stop();
    }
}

//! `meshrl serve` under load: requests per second and latency percentiles of `POST /predict`
//! over loopback, for a lookup-table policy and for a network policy (a PPO learner of
//! stable-baselines3's default sizes: two tanh layers of 64 for the policy).
//!
//!   cargo bench --bench serve
//!   cargo bench --bench serve -- network      (one policy, lookup or network, or one scenario)
//!   SERVE_BENCH_REQUESTS=50000 cargo bench --bench serve  (a shorter run; default 200 000)
//!   SERVE_BENCH_WORKERS=1 cargo bench --bench serve       (server threads; default 2)
//!
//! The server runs in this process as `meshrl serve` runs it (`meshrl::serve::run`, the
//! policy loaded from its file by `meshrl::policy::load_policy`, candle on the calling
//! thread), on a runtime of two worker threads. The load generator has a runtime of its own,
//! on one thread: keep-alive connections, each sending one request at a time and waiting
//! for the answer (no pipelining), a plain HTTP/1.1 client on tokio's `TcpStream`. The
//! bodies cycle through every state the policy answers (ten loads, 1-6 replicas, 210
//! states), in seed 004's field names. The connections first send 6 400 warm-up requests
//! between them; then all start together and every request's latency (write to last byte of
//! the answer) is recorded. Two scenarios per policy:
//!
//! - `steady`: 32 connections; targets >= 10 000 req/s and p99 <= 2 ms.
//! - `hostile`: 200 connections while 50 more sockets play slowloris (each sends the start of
//!   a request head, then one byte every 500 ms, and reconnects when the server cuts it off
//!   after its 10 s request timeout); target p99 <= 50 ms.
//!
//! Printed per policy and scenario: requests per second over the measured phase, p50, p90,
//! p99, p99.9 and the maximum, against the targets; then, on Linux, the CPU time per request
//! of the server's threads and of the load generator, the policy's `decide` alone, and how
//! long the threads were runnable but waited for a core.
//!
//! Server and load generator share the machine's cores (two on the reference machine), so
//! the numbers are a lower bound of the server alone; anything else running on the machine
//! shows in them too, mostly in the tail (the waits for a core).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshrl::agent::dqn::DqnConfig;
use meshrl::agent::ppo::PpoConfig;
use meshrl::agent::{LearnerKind, LearnerSpec};
use meshrl::env::autoscale::{LoadDynamics, ScalingEnv, ScalingReward, ScalingSpec, Source};
use meshrl::env::Environment;
use meshrl::policy::{load_policy, LookupPolicy, NetworkPolicy, ScalingPolicy, ScalingQuery};
use rand::SeedableRng;

/// Warm-up requests, shared by a scenario's connections.
const WARMUP: usize = 6_400;

/// A load pattern and what it must meet.
struct Scenario {
    name: &'static str,
    connections: usize,
    /// Sockets that send a request head one byte at a time and never finish it.
    slow_sockets: usize,
    target_rps: Option<f64>,
    target_p99: Duration,
}

const SCENARIOS: [Scenario; 2] = [
    Scenario { name: "steady", connections: 32, slow_sockets: 0, target_rps: Some(10_000.0), target_p99: Duration::from_millis(2) },
    Scenario { name: "hostile", connections: 200, slow_sockets: 50, target_rps: None, target_p99: Duration::from_millis(50) },
];

impl Scenario {
    fn targets(&self) -> String {
        let rps = self.target_rps.map(|r| format!(">= {r:.0} req/s, ")).unwrap_or_default();
        format!("{rps}p99 <= {} ms", self.target_p99.as_millis())
    }
}

/// Ten loads, 1-6 replicas, replicas serving one step after they start: 210 states.
fn spec() -> ScalingSpec {
    let loads: Vec<f64> = (1..=10).map(|i| 10.0 * i as f64).collect();
    let (min, max) = (1u32, 6u32);
    // A replica serves about 25 req/s at 0.1 s; slower as it saturates.
    let latency: Vec<Vec<f64>> =
        loads.iter().map(|&l| (min..=max).map(|r| 0.1 * (1.0 + (l / (25.0 * r as f64)).powi(2))).collect()).collect();
    let n = loads.len();
    let stay = 0.8;
    let transition = (0..n)
        .map(|i| {
            let mut row = vec![0.0; n];
            row[i] = stay;
            let neighbours: Vec<usize> = [i.checked_sub(1), (i + 1 < n).then_some(i + 1)].into_iter().flatten().collect();
            for &j in &neighbours {
                row[j] = (1.0 - stay) / neighbours.len() as f64;
            }
            row
        })
        .collect();
    ScalingSpec {
        loads,
        min_replicas: min,
        max_replicas: max,
        start_replicas: 1,
        provision_steps: 1,
        horizon: 60,
        step_s: 10.0,
        dynamics: LoadDynamics::Markov { transition, start: (0..n).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect() },
        reward: ScalingReward { soft_s: 0.2, hard_s: 0.5, replica_weight: 0.3, latency_weight: 0.7, invalid_reward: -1.0 },
        model_latency: latency.clone(),
        truth_latency: latency,
    }
}

/// Writes both policy files; returns their paths (lookup CSV, network).
fn policy_files(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let spec = spec();
    let table = LookupPolicy::tabulate(&spec, 0, |s| {
        let slow = spec.latency(Source::Model, s.load, s.ready) > spec.reward.soft_s;
        Ok(if slow && s.replicas() < spec.max_replicas {
            1
        } else if !slow && s.ready > spec.min_replicas {
            -1
        } else {
            0
        })
    })
    .expect("tabulate");
    let csv = dir.join("lookup.csv");
    std::fs::write(&csv, table.to_csv()).expect("write the table");
    let env = ScalingEnv::new(spec.clone()).expect("spec");
    let ppo = PpoConfig::default();
    let learner = ppo.build(env.layout(), &mut rand_chacha::ChaCha8Rng::seed_from_u64(7)).expect("learner");
    let network = dir.join("ppo.policy");
    NetworkPolicy::save(&network, &spec, LearnerKind::Ppo, &DqnConfig::default(), &ppo, learner.as_ref()).expect("save");
    (csv, network)
}

/// One request per state the policy answers, in 004's field names (off-grid loads, which the
/// policy rounds up).
fn requests(policy: &dyn ScalingPolicy, addr: SocketAddr) -> Vec<Vec<u8>> {
    let spec = spec();
    let mut out = Vec::new();
    for &load in &spec.loads {
        for ready in spec.min_replicas..=spec.max_replicas {
            for starting in 0..=(spec.max_replicas - ready) {
                let rps = load - 3.5;
                if policy.decide(&ScalingQuery { load: rps, ready, starting }).is_err() {
                    continue;
                }
                let body = format!(
                    r#"{{"cpu_usage":0.42,"memory_usage":0.31,"n_replicas":{ready},"starting":{starting},"latency":120.5,"rps":{rps}}}"#
                );
                let head = format!(
                    "POST /predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                out.push([head.as_bytes(), body.as_bytes()].concat());
            }
        }
    }
    assert!(!out.is_empty(), "the policy answers no state");
    out
}

/// Writes all of `buf` (tokio's readiness calls: the library's tokio has no `io-util`).
async fn write_all(stream: &tokio::net::TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match stream.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads what has arrived, waiting for something. Waits for readiness first: right after a
/// request nothing has arrived yet, and a read that fails costs a system call.
async fn read(stream: &tokio::net::TcpStream, chunk: &mut [u8]) -> std::io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(chunk) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reads one answer into `buf` (cleared first); returns the status code.
async fn read_answer(stream: &tokio::net::TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(std::io::Error::other)?;
            let status: u16 =
                head.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
            let length = head
                .lines()
                .find_map(|l| {
                    l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().parse::<usize>())
                })
                .ok_or_else(|| std::io::Error::other("no content-length"))?
                .map_err(std::io::Error::other)?;
            while buf.len() < end + 4 + length {
                let n = read(stream, &mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            assert_eq!(buf.len(), end + 4 + length, "one answer per request");
            return Ok(status);
        }
        let n = read(stream, &mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct Measured {
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// What the scheduler did over the measured phase, if the system tells.
    sched: Option<Sched>,
}

/// CPU time of this process's threads, and time they were runnable but waited for a core
/// (behind other processes, or behind each other): the server's threads (named `server`)
/// and the others (the load generator).
#[derive(Debug, Clone, Copy, Default)]
struct Sched {
    server_cpu: Duration,
    server_wait: Duration,
    client_cpu: Duration,
    client_wait: Duration,
}

/// Linux: `/proc/self/task/*/schedstat` (nanoseconds on a core, nanoseconds waiting on a
/// run queue); `None` elsewhere.
fn sched() -> Option<Sched> {
    let mut total = Sched::default();
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let stat = std::fs::read_to_string(dir.join("schedstat")).ok()?;
        let mut fields = stat.split_whitespace().map(|f| f.parse::<u64>().ok().map(Duration::from_nanos));
        let (cpu, wait) = (fields.next()??, fields.next()??);
        if std::fs::read_to_string(dir.join("comm")).ok()?.trim() == "server" {
            total.server_cpu += cpu;
            total.server_wait += wait;
        } else {
            total.client_cpu += cpu;
            total.client_wait += wait;
        }
    }
    Some(total)
}

impl Sched {
    fn since(self, before: Sched) -> Sched {
        Sched {
            server_cpu: self.server_cpu.saturating_sub(before.server_cpu),
            server_wait: self.server_wait.saturating_sub(before.server_wait),
            client_cpu: self.client_cpu.saturating_sub(before.client_cpu),
            client_wait: self.client_wait.saturating_sub(before.client_wait),
        }
    }
}

/// Keeps a socket sending a request head one byte every 500 ms, reconnecting whenever the
/// server closes it, until `stop` is set.
async fn slowloris(addr: SocketAddr, stop: Arc<std::sync::atomic::AtomicBool>) {
    const HEAD: &[u8] = b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let Ok(stream) = tokio::net::TcpStream::connect(addr).await else { return };
        for byte in HEAD.iter().cycle() {
            if stop.load(std::sync::atomic::Ordering::Relaxed) || write_all(&stream, &[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Drives the server at `addr` with the scenario's connections and `total` requests.
async fn load(addr: SocketAddr, requests: Arc<Vec<Vec<u8>>>, total: usize, scenario: &Scenario) -> Measured {
    let connections = scenario.connections;
    let per = total / connections;
    let warmup = WARMUP.div_ceil(connections);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow: Vec<_> = (0..scenario.slow_sockets).map(|_| tokio::spawn(slowloris(addr, stop.clone()))).collect();
    let start = Arc::new(tokio::sync::Barrier::new(connections + 1));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (requests, start) = (requests.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let mut buf = Vec::with_capacity(1024);
            let mut next = c * 7;
            for _ in 0..warmup {
                write_all(&stream, &requests[next % requests.len()]).await.expect("write");
                assert_eq!(read_answer(&stream, &mut buf).await.expect("read"), 200, "{}", String::from_utf8_lossy(&buf));
                next += 1;
            }
            start.wait().await;
            let mut latencies = Vec::with_capacity(per);
            for _ in 0..per {
                let t = Instant::now();
                write_all(&stream, &requests[next % requests.len()]).await.expect("write");
                let status = read_answer(&stream, &mut buf).await.expect("read");
                latencies.push(t.elapsed());
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&buf));
                next += 1;
            }
            latencies
        }));
    }
    start.wait().await;
    let (t, before) = (Instant::now(), sched());
    let mut latencies = Vec::with_capacity(per * connections);
    for task in tasks {
        latencies.extend(task.await.expect("a connection failed"));
    }
    let elapsed = t.elapsed();
    let sched = before.zip(sched()).map(|(before, after)| after.since(before));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in slow {
        task.abort();
    }
    Measured { latencies, elapsed, sched }
}

/// The server's worker threads: 2, or `SERVE_BENCH_WORKERS`.
fn workers() -> usize {
    std::env::var("SERVE_BENCH_WORKERS").ok().and_then(|v| v.parse().ok()).filter(|&w| w > 0).unwrap_or(2)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn bench(name: &str, path: &std::path::Path, total: usize, scenario: &Scenario) -> bool {
    let policy: Arc<dyn ScalingPolicy> = Arc::from(load_policy(path).expect("load the policy"));
    let policy_alone = policy.clone();
    let server_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(workers()).thread_name("server").enable_all().build().unwrap();
    let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(requests(policy.as_ref(), addr));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn(meshrl::serve::run(
        policy,
        listener,
        async move { stopped.await.unwrap_or(()) },
        meshrl::serve::Timeouts { grace: Duration::from_secs(5), ..Default::default() },
    ));

    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let states = requests.len();
    let Measured { mut latencies, elapsed, sched } = client_rt.block_on(load(addr, requests, total, scenario));
    drop(client_rt);
    stop.send(()).expect("the server runs");
    server_rt.block_on(server).expect("the server task").expect("the server");

    latencies.sort_unstable();
    let rps = latencies.len() as f64 / elapsed.as_secs_f64();
    let p99 = percentile(&latencies, 0.99);
    let ok = scenario.target_rps.is_none_or(|t| rps >= t) && p99 <= scenario.target_p99;
    let slow = if scenario.slow_sockets > 0 { format!(" and {} slow sockets", scenario.slow_sockets) } else { String::new() };
    println!(
        "{name:<8} {:<8} {} requests over {} connections{slow} ({states} states) in {:.2} s: {rps:.0} req/s; \
         p50 {}, p90 {}, p99 {}, p99.9 {}, max {}  [{} {}]",
        scenario.name,
        latencies.len(),
        scenario.connections,
        elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(p99),
        ms(percentile(&latencies, 0.999)),
        ms(*latencies.last().unwrap()),
        if ok { "meets" } else { "MISSES" },
        scenario.targets(),
    );
    let decide = {
        let query = ScalingQuery { load: 36.5, ready: 2, starting: 1 };
        let t = Instant::now();
        for _ in 0..20_000 {
            std::hint::black_box(policy_alone.decide(std::hint::black_box(&query)).expect("decide"));
        }
        t.elapsed() / 20_000
    };
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    match sched {
        Some(s) => println!(
            "{:<17} CPU per request: server {:.1} us, load generator {:.1} us (the policy's decide alone {:.1} us); \
             waiting for a core: server threads {:.0} ms, load generator {:.0} ms",
            "",
            us(s.server_cpu) / latencies.len() as f64,
            us(s.client_cpu) / latencies.len() as f64,
            us(decide),
            s.server_wait.as_secs_f64() * 1e3,
            s.client_wait.as_secs_f64() * 1e3,
        ),
        None => println!("{:<17} the policy's decide alone {:.1} us", "", us(decide)),
    }
    ok
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects one policy.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let total: usize = std::env::var("SERVE_BENCH_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    // As `meshrl serve` does: the network's small products on the calling thread.
    meshrl::serve::single_threaded_kernels();
    let dir = tempfile::tempdir().expect("temp dir");
    let (csv, network) = policy_files(dir.path());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "meshrl serve: POST /predict over loopback, {cores} cores shared by server ({} workers) and load generator (1 thread)",
        workers()
    );
    for (name, path) in [("lookup", &csv), ("network", &network)] {
        for scenario in &SCENARIOS {
            if filter.as_deref().is_none_or(|f| name.contains(f) || scenario.name.contains(f)) {
                bench(name, path, total, scenario);
            }
        }
    }
}

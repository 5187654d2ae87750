//! Isotope's `MockServiceGraph` YAML (istio/tools `isotope/`), as Isotope reads it, plus
//! meshrl's documented extensions for queueing (`../shared/design/mesh.md`, section 1).
//!
//! Isotope's semantics kept:
//! - top level `defaults` and `services`; `defaults` gives `type`, `errorRate`,
//!   `requestSize`, `responseSize`, `script` and `numReplicas` to every service without them;
//! - `errorRate` (a number in [0, 1] or a string with `%`) fails every N-th request of a
//!   replica with a 500, deterministically, N = floor(10000 / floor(rate x 10000)): 5 % is
//!   every 20th request, any rate above 50 % every request;
//! - sizes are bytes, or strings in docker's binary units (`"1 KB"` = 1024);
//! - `script` steps run in order; a step that is a list runs its calls concurrently (one
//!   level only); `call` takes a name or `{service, size, probability}`, `probability` an
//!   integer percent where 0 or absent means always;
//! - `sleep` takes a Go duration (`10ms`, `1.5s`, `250us`, `1m30s`).
//!
//! Keys Isotope knows that meshrl does not model are named in a warning; `default:` and
//! `payloadSize` (spellings of Isotope's README that its parser ignores) are refused with a
//! hint; any other unknown key is refused. Isotope itself drops unknown keys silently, which
//! turns a misspelt field into a default.
//!
//! Extensions (per service, or in `defaults`): `concurrency` (requests a replica serves at
//! once; absent: unlimited, as Isotope's Go server), `queueLimit` (requests waiting beyond
//! which a replica answers 503 at once), `holdWhileCalling` (a request keeps its slot while it
//! waits for its calls, as a thread-per-request server does; default false), and service
//! times as distributions: `sleep: {exponential: 10ms}` (the mean) and
//! `sleep: {lognormal: {median: 10ms, sigma: 0.5}}`.

use std::path::Path;

use serde_yaml::Value;

use crate::error::{Error, Result};

/// A checked topology: services in file order, calls by index.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub services: Vec<Service>,
    /// The service that receives the load.
    pub entry: usize,
    /// Keys read but not modelled, one line each, naming where they are.
    pub warnings: Vec<String>,
}

/// Isotope's service types; both are served over HTTP/1.1 by Isotope's mock service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    Http,
    Grpc,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub kind: ServiceType,
    pub replicas: u32,
    pub is_entrypoint: bool,
    /// Every `n`-th request of a replica fails with a 500 (Isotope's `errorRate`); `None`: never.
    pub error_every: Option<u64>,
    pub request_size: u64,
    pub response_size: u64,
    pub script: Vec<Step>,
    /// Requests a replica serves at once; `None`: unlimited.
    pub concurrency: Option<u32>,
    /// Requests waiting for a slot beyond which a replica answers 503; `None`: unlimited.
    pub queue_limit: Option<u32>,
    pub hold_while_calling: bool,
}

/// One step of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Sleep(ServiceTime),
    /// One call, or several made at once (the step ends when all have answered).
    Calls(Vec<Call>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Index of the callee in [`Topology::services`].
    pub service: usize,
    /// Request body, bytes.
    pub size: u64,
    /// Percent of requests that make the call (100: always).
    pub probability: u8,
}

/// How long a `sleep` step takes, seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServiceTime {
    Constant(f64),
    Exponential { mean: f64 },
    Lognormal { median: f64, sigma: f64 },
}

/// Keys Isotope reads that meshrl does not model: warned about, not refused.
const UNMODELLED_TOP: &[&str] = &["apiVersion", "kind"];
const UNMODELLED_SERVICE: &[&str] = &["numRbacPolicies", "namespace", "cluster", "labels"];
const UNMODELLED_CALL: &[&str] = &["hostname", "extra-header"];

/// Fields a service and `defaults` share.
const SHARED: &[&str] =
    &["type", "errorRate", "requestSize", "responseSize", "script", "numReplicas", "concurrency", "queueLimit", "holdWhileCalling"];

impl Topology {
    /// Reads and checks a topology file; `entry` names the entry service when the file does
    /// not mark exactly one `isEntrypoint`.
    pub fn load(path: &Path, entry: Option<&str>) -> Result<Topology> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        Topology::parse(&text, entry).map_err(|message| Error::file(path, message))
    }

    /// A topology from YAML text; errors name the field (`services[2].script[0].sleep`).
    pub fn parse(text: &str, entry: Option<&str>) -> std::result::Result<Topology, String> {
        let root: Value = serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
        let root = root.as_mapping().ok_or("a topology is a mapping with `services` (and optionally `defaults`)")?;
        let mut warnings = Vec::new();
        let mut defaults = None;
        let mut services_value = None;
        for (key, value) in root {
            match key_str(key, "the top level")? {
                "defaults" => defaults = Some(value),
                "services" => services_value = Some(value),
                "default" => return Err("`default`: Isotope reads `defaults` (its README's `default:` is ignored by its parser)".into()),
                k if UNMODELLED_TOP.contains(&k) => warnings.push(format!("`{k}`: read by nobody (Isotope does not either); ignored")),
                k => return Err(format!("unknown key `{k}` at the top level; expected `defaults` or `services`")),
            }
        }
        let defaults = match defaults {
            Some(v) => v.as_mapping().ok_or("`defaults` must be a mapping")?.clone(),
            None => serde_yaml::Mapping::new(),
        };
        for (key, _) in &defaults {
            let k = key_str(key, "`defaults`")?;
            if !SHARED.contains(&k) {
                return Err(format!("unknown key `defaults.{k}`; expected one of {}", SHARED.join(", ")));
            }
        }
        let list = services_value.ok_or("missing `services`")?.as_sequence().ok_or("`services` must be a list")?;
        if list.is_empty() {
            return Err("`services` is empty".into());
        }
        // Names first: calls refer to services defined later in the file.
        let mut names: Vec<String> = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            let map = s.as_mapping().ok_or_else(|| format!("`services[{i}]` must be a mapping"))?;
            let name = match map.get("name") {
                Some(Value::String(n)) if !n.trim().is_empty() => n.clone(),
                Some(_) => return Err(format!("`services[{i}].name` must be a non-empty string")),
                None => return Err(format!("`services[{i}].name` is missing")),
            };
            if let Some(first) = names.iter().position(|n| *n == name) {
                return Err(format!("`services[{i}].name`: `{name}` is already `services[{first}]`"));
            }
            names.push(name);
        }
        let mut services = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            let map = s.as_mapping().expect("checked above");
            services.push(service(i, map, &defaults, &names, &mut warnings)?);
        }
        let entry = match entry {
            Some(name) => names.iter().position(|n| n == name).ok_or_else(|| format!("--entry {name}: no such service"))?,
            None => {
                let marked: Vec<usize> = (0..services.len()).filter(|&i| services[i].is_entrypoint).collect();
                match marked[..] {
                    [one] => one,
                    [] => return Err("no service has `isEntrypoint: true` (mark one, or name it with --entry)".into()),
                    _ => {
                        let which: Vec<&str> = marked.iter().map(|&i| names[i].as_str()).collect();
                        return Err(format!(
                            "{} services have `isEntrypoint: true` ({}); mark one, or name it with --entry",
                            marked.len(),
                            which.join(", ")
                        ));
                    }
                }
            }
        };
        let topology = Topology { services, entry, warnings };
        topology.check_acyclic()?;
        Ok(topology)
    }

    /// Makes the service `name` `factor` times slower: every `sleep` of its script scales
    /// (a slow dependency, a pod on a busy node). A `--slowdown NAME=FACTOR` of `mesh run`.
    pub fn slow_down(&mut self, name: &str, factor: f64) -> std::result::Result<(), String> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(format!("the factor must be a number > 0, found {factor}"));
        }
        let service = self.services.iter_mut().find(|s| s.name == name).ok_or_else(|| format!("no service `{name}` in the topology"))?;
        for step in &mut service.script {
            if let Step::Sleep(time) = step {
                *time = match *time {
                    ServiceTime::Constant(s) => ServiceTime::Constant(s * factor),
                    ServiceTime::Exponential { mean } => ServiceTime::Exponential { mean: mean * factor },
                    ServiceTime::Lognormal { median, sigma } => ServiceTime::Lognormal { median: median * factor, sigma },
                };
            }
        }
        Ok(())
    }

    /// Services called from `s`, in script order (a service called twice appears twice).
    pub fn callees(&self, s: usize) -> impl Iterator<Item = usize> + '_ {
        self.services[s].script.iter().flat_map(|step| match step {
            Step::Calls(calls) => calls.iter().map(|c| c.service).collect(),
            Step::Sleep(_) => vec![],
        })
    }

    /// A call cycle would recurse for ever: refused, naming it.
    fn check_acyclic(&self) -> std::result::Result<(), String> {
        // 0 unvisited, 1 on the current path, 2 done.
        let mut state = vec![0u8; self.services.len()];
        let mut path = Vec::new();
        fn visit(t: &Topology, s: usize, state: &mut [u8], path: &mut Vec<usize>) -> std::result::Result<(), String> {
            state[s] = 1;
            path.push(s);
            for c in t.callees(s) {
                if state[c] == 1 {
                    let start = path.iter().position(|&p| p == c).unwrap_or(0);
                    let cycle: Vec<&str> = path[start..].iter().chain([&c]).map(|&i| t.services[i].name.as_str()).collect();
                    return Err(format!("a call cycle: {} (a request would never end)", cycle.join(" -> ")));
                }
                if state[c] == 0 {
                    visit(t, c, state, path)?;
                }
            }
            path.pop();
            state[s] = 2;
            Ok(())
        }
        for s in 0..self.services.len() {
            if state[s] == 0 {
                visit(self, s, &mut state, &mut path)?;
            }
        }
        Ok(())
    }
}

fn key_str<'a>(key: &'a Value, place: &str) -> std::result::Result<&'a str, String> {
    key.as_str().ok_or_else(|| format!("a key of {place} is not a string: {key:?}"))
}

fn service(
    i: usize,
    map: &serde_yaml::Mapping,
    defaults: &serde_yaml::Mapping,
    names: &[String],
    warnings: &mut Vec<String>,
) -> std::result::Result<Service, String> {
    let at = |field: &str| format!("services[{i}].{field}");
    for (key, _) in map {
        let k = key_str(key, &format!("`services[{i}]`"))?;
        match k {
            "name" | "isEntrypoint" => {}
            k if SHARED.contains(&k) => {}
            k if UNMODELLED_SERVICE.contains(&k) => warnings.push(format!("`{}`: not modelled; ignored", at(k))),
            k => return Err(format!("unknown key `{}`; expected name, isEntrypoint, {}", at(k), SHARED.join(", "))),
        }
    }
    // A service's own value, else the default's (named as where it came from).
    let get = |field: &str| -> Option<(String, &Value)> {
        map.get(field).map(|v| (at(field), v)).or_else(|| defaults.get(field).map(|v| (format!("defaults.{field}"), v)))
    };
    let kind = match get("type") {
        None => ServiceType::Http,
        Some((_, Value::String(t))) if t == "http" => ServiceType::Http,
        Some((_, Value::String(t))) if t == "grpc" => ServiceType::Grpc,
        Some((f, v)) => return Err(format!("`{f}` must be `http` or `grpc`, but is {}", show(v))),
    };
    let replicas = match get("numReplicas") {
        None => 1,
        Some((f, v)) => whole(&f, v, 1, u32::MAX as u64)? as u32,
    };
    let is_entrypoint = match map.get("isEntrypoint") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(format!("`{}` must be true or false, but is {}", at("isEntrypoint"), show(v))),
    };
    let error_every = match get("errorRate") {
        None => None,
        Some((f, v)) => error_every(&f, v)?,
    };
    let request_size = get("requestSize").map(|(f, v)| size(&f, v)).transpose()?.unwrap_or(0);
    let response_size = get("responseSize").map(|(f, v)| size(&f, v)).transpose()?.unwrap_or(0);
    let concurrency = get("concurrency").map(|(f, v)| whole(&f, v, 1, u32::MAX as u64).map(|n| n as u32)).transpose()?;
    let queue_limit = get("queueLimit").map(|(f, v)| whole(&f, v, 0, u32::MAX as u64).map(|n| n as u32)).transpose()?;
    let hold_while_calling = match get("holdWhileCalling") {
        None => false,
        Some((_, Value::Bool(b))) => *b,
        Some((f, v)) => return Err(format!("`{f}` must be true or false, but is {}", show(v))),
    };
    let script = match get("script") {
        None => vec![],
        Some((f, Value::Sequence(steps))) => {
            let mut out = Vec::with_capacity(steps.len());
            for (j, step) in steps.iter().enumerate() {
                out.push(parse_step(&format!("{f}[{j}]"), step, request_size, names, warnings, true)?);
            }
            out
        }
        Some((f, v)) => return Err(format!("`{f}` must be a list of steps, but is {}", show(v))),
    };
    Ok(Service {
        name: names[i].clone(),
        kind,
        replicas,
        is_entrypoint,
        error_every,
        request_size,
        response_size,
        script,
        concurrency,
        queue_limit,
        hold_while_calling,
    })
}

/// One step: `{sleep: ...}`, `{call: ...}`, or (at the top level only) a list of calls made
/// at once.
fn parse_step(
    at: &str,
    step: &Value,
    default_size: u64,
    names: &[String],
    warnings: &mut Vec<String>,
    top: bool,
) -> std::result::Result<Step, String> {
    match step {
        Value::Sequence(items) if top => {
            if items.is_empty() {
                return Err(format!("`{at}`: a concurrent step needs at least one call"));
            }
            let mut calls = Vec::with_capacity(items.len());
            for (k, item) in items.iter().enumerate() {
                match parse_step(&format!("{at}[{k}]"), item, default_size, names, warnings, false)? {
                    Step::Calls(mut c) => calls.append(&mut c),
                    Step::Sleep(_) => return Err(format!("`{at}[{k}]`: a concurrent step holds calls, not sleeps")),
                }
            }
            Ok(Step::Calls(calls))
        }
        Value::Sequence(_) => Err(format!("`{at}`: concurrent steps may not be nested (Isotope allows one level)")),
        Value::Mapping(m) if m.len() == 1 => {
            let (key, value) = m.iter().next().expect("one entry");
            match key_str(key, &format!("`{at}`"))? {
                "sleep" => Ok(Step::Sleep(service_time(&format!("{at}.sleep"), value)?)),
                "call" => Ok(Step::Calls(vec![call(&format!("{at}.call"), value, default_size, names, warnings)?])),
                k => Err(format!("unknown step `{at}.{k}`; a step is `sleep` or `call`")),
            }
        }
        v => Err(format!("`{at}` must be one `sleep:` or `call:`, or a list of calls made at once, but is {}", show(v))),
    }
}

fn call(at: &str, value: &Value, default_size: u64, names: &[String], warnings: &mut Vec<String>) -> std::result::Result<Call, String> {
    let callee =
        |name: &str, field: &str| names.iter().position(|n| n == name).ok_or_else(|| format!("`{field}`: no service named `{name}`"));
    match value {
        Value::String(name) => Ok(Call { service: callee(name, at)?, size: default_size, probability: 100 }),
        Value::Mapping(m) => {
            let mut out = Call { service: usize::MAX, size: default_size, probability: 100 };
            for (key, v) in m {
                let field = format!("{at}.{}", key_str(key, &format!("`{at}`"))?);
                match key.as_str().unwrap_or_default() {
                    "service" => match v {
                        Value::String(name) => out.service = callee(name, &field)?,
                        v => return Err(format!("`{field}` must be a service name, but is {}", show(v))),
                    },
                    "size" => out.size = size(&field, v)?,
                    "probability" => {
                        let p = whole(&field, v, 0, 100)? as u8;
                        // Isotope: 0 or absent means always.
                        out.probability = if p == 0 { 100 } else { p };
                    }
                    "payloadSize" => return Err(format!("`{field}`: Isotope reads `size` (its README's `payloadSize` is never parsed)")),
                    k if UNMODELLED_CALL.contains(&k) => warnings.push(format!("`{field}`: not modelled; ignored")),
                    k => return Err(format!("unknown key `{field}`; a call takes service, size, probability ({k} is not one)")),
                }
            }
            if out.service == usize::MAX {
                return Err(format!("`{at}.service` is missing"));
            }
            Ok(out)
        }
        v => Err(format!("`{at}` must be a service name or {{service, size, probability}}, but is {}", show(v))),
    }
}

/// `10ms`, or `{exponential: 10ms}`, or `{lognormal: {median: 10ms, sigma: 0.5}}`.
fn service_time(at: &str, value: &Value) -> std::result::Result<ServiceTime, String> {
    match value {
        Value::String(text) => Ok(ServiceTime::Constant(go_duration(at, text)?)),
        Value::Mapping(m) if m.len() == 1 => {
            let (key, v) = m.iter().next().expect("one entry");
            match key.as_str() {
                Some("exponential") => match v {
                    Value::String(text) => Ok(ServiceTime::Exponential { mean: go_duration(&format!("{at}.exponential"), text)? }),
                    v => Err(format!("`{at}.exponential` must be a duration (the mean), but is {}", show(v))),
                },
                Some("lognormal") => {
                    let f = format!("{at}.lognormal");
                    let m = v.as_mapping().ok_or_else(|| format!("`{f}` must be {{median: <duration>, sigma: <number>}}"))?;
                    let (mut median, mut sigma) = (None, None);
                    for (key, v) in m {
                        match key.as_str() {
                            Some("median") => match v {
                                Value::String(text) => median = Some(go_duration(&format!("{f}.median"), text)?),
                                v => return Err(format!("`{f}.median` must be a duration, but is {}", show(v))),
                            },
                            Some("sigma") => match v.as_f64() {
                                Some(s) if s.is_finite() && s >= 0.0 => sigma = Some(s),
                                _ => return Err(format!("`{f}.sigma` must be a number >= 0, but is {}", show(v))),
                            },
                            _ => return Err(format!("unknown key `{f}.{}`; expected median and sigma", show(key))),
                        }
                    }
                    match (median, sigma) {
                        (Some(median), Some(sigma)) => Ok(ServiceTime::Lognormal { median, sigma }),
                        _ => Err(format!("`{f}` needs both median and sigma")),
                    }
                }
                _ => Err(format!("`{at}`: a distribution is `exponential` or `lognormal`, not {}", show(key))),
            }
        }
        v => Err(format!("`{at}` must be a duration such as 10ms, or {{exponential: 10ms}}, but is {}", show(v))),
    }
}

/// Go's `time.ParseDuration`, non-negative: a sequence of numbers with units (ns, us, µs,
/// ms, s, m, h), such as `10ms`, `1.5s` or `1m30s`; `0` alone is zero. Seconds.
pub fn go_duration(at: &str, text: &str) -> std::result::Result<f64, String> {
    let bad = |why: &str| format!("`{at}`: `{text}` is not a duration ({why}; for example 10ms, 1.5s, 250us, 1m30s)");
    let s = text.trim();
    if s == "0" {
        return Ok(0.0);
    }
    if s.starts_with('-') {
        return Err(format!("`{at}`: `{text}` is negative"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() {
        return Err(bad("empty"));
    }
    let mut rest = s;
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().map_err(|_| bad("a number is missing or malformed"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(bad("a unit is missing")),
            u => return Err(bad(&format!("unknown unit `{u}`"))),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Bytes: a whole number, or docker/go-units' `RAMInBytes` string (binary units,
/// case-insensitive, `B` and `i` optional: `"1 KB"`, `1k` and `1KiB` are all 1024).
pub fn size(at: &str, value: &Value) -> std::result::Result<u64, String> {
    match value {
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("`{at}` must be a whole number of bytes >= 0, but is {n}")),
        Value::String(text) => {
            let s = text.trim();
            let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
            let (number, unit) = (&s[..split], s[split..].trim_start_matches(' ').to_ascii_lowercase());
            let number: f64 = number.parse().map_err(|_| format!("`{at}`: `{text}` is not a size (for example 512, \"2 KB\", 1MiB)"))?;
            let unit = unit.strip_suffix('b').unwrap_or(&unit);
            let unit = unit.strip_suffix('i').unwrap_or(unit);
            let power = match unit {
                "" => 0,
                "k" => 1,
                "m" => 2,
                "g" => 3,
                "t" => 4,
                "p" => 5,
                u => return Err(format!("`{at}`: `{text}` has an unknown unit `{u}` (k, m, g, t or p, binary)")),
            };
            Ok((number * 1024f64.powi(power)) as u64)
        }
        v => Err(format!("`{at}` must be a size in bytes, but is {}", show(v))),
    }
}

/// Isotope's `errorRate` as "every N-th request fails": N = floor(10000 / floor(rate x 10000)).
fn error_every(at: &str, value: &Value) -> std::result::Result<Option<u64>, String> {
    let rate = match value {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(text) => match text.trim().strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0).unwrap_or(f64::NAN),
            None => return Err(format!("`{at}`: `{text}` needs a % (for example \"5%\"), or write a number in [0, 1]")),
        },
        v => return Err(format!("`{at}` must be a rate in [0, 1] or a percentage, but is {}", show(v))),
    };
    if !(0.0..=1.0).contains(&rate) {
        return Err(format!("`{at}` must lie in [0, 1] (0 % to 100 %), but is {}", show(value)));
    }
    let per_10000 = (rate * 10000.0).floor() as u64;
    if rate > 0.0 && per_10000 == 0 {
        return Err(format!("`{at}`: {} is below 0.01 %, where Isotope divides by zero; use 0 or at least 0.01 %", show(value)));
    }
    Ok((per_10000 > 0).then(|| 10000 / per_10000))
}

/// A whole number in `lo..=hi`.
fn whole(at: &str, value: &Value, lo: u64, hi: u64) -> std::result::Result<u64, String> {
    match value.as_u64() {
        Some(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("`{at}` must be a whole number in {lo}..={hi}, but is {}", show(value))),
    }
}

/// A value as it would be written in YAML, on one line.
fn show(v: &Value) -> String {
    serde_yaml::to_string(v).map(|s| s.trim().replace('\n', " ")).unwrap_or_else(|_| format!("{v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of `../shared/design/mesh.md`, section 1.
    const EXAMPLE: &str = r#"
defaults:
  requestSize: 512
  responseSize: 2 KB
services:
- name: front
  isEntrypoint: true
  script:
  - sleep: 2ms
  - - call: {service: cart, size: 128}
    - call: {service: stock, probability: 50}
  - call: stock
- name: cart
  errorRate: 5%
  script: [{sleep: 1500us}]
- name: stock
  numReplicas: 3
  script: [{sleep: 800us}]
"#;

    #[test]
    fn isotopes_example_reads_with_isotopes_semantics() {
        let t = Topology::parse(EXAMPLE, None).unwrap();
        assert_eq!(t.entry, 0);
        assert!(t.warnings.is_empty());
        let [front, cart, stock] = &t.services[..] else { panic!("three services") };
        assert_eq!((front.request_size, front.response_size, front.replicas), (512, 2048, 1));
        assert_eq!(front.script[0], Step::Sleep(ServiceTime::Constant(0.002)));
        assert_eq!(
            front.script[1],
            Step::Calls(vec![Call { service: 1, size: 128, probability: 100 }, Call { service: 2, size: 512, probability: 50 }])
        );
        assert_eq!(front.script[2], Step::Calls(vec![Call { service: 2, size: 512, probability: 100 }]));
        assert_eq!(cart.error_every, Some(20), "5 % fails every 20th request");
        assert_eq!(stock.replicas, 3);
        assert!(matches!(stock.script[0], Step::Sleep(ServiceTime::Constant(s)) if (s - 0.0008).abs() < 1e-12));
        assert_eq!(t.callees(0).collect::<Vec<_>>(), vec![1, 2, 2]);
    }

    #[test]
    fn error_rates_follow_isotopes_counter() {
        let every = |v: &str| error_every("errorRate", &serde_yaml::from_str(v).unwrap());
        assert_eq!(every("0.05").unwrap(), Some(20));
        assert_eq!(every("\"30%\"").unwrap(), Some(3));
        assert_eq!(every("0.4").unwrap(), Some(2));
        assert_eq!(every("0.6").unwrap(), Some(1), "above 50 % every request fails");
        assert_eq!(every("0").unwrap(), None);
        assert_eq!(every("\"0.01%\"").unwrap(), Some(10000));
        for bad in ["1.5", "\"5\"", "\"-1%\"", "0.00001", "true"] {
            assert!(every(bad).unwrap_err().contains("errorRate"), "{bad}");
        }
    }

    #[test]
    fn durations_and_sizes_parse_as_go_and_docker_do() {
        for (text, want) in
            [("10ms", 0.01), ("1.5s", 1.5), ("250us", 250e-6), ("250µs", 250e-6), ("1m30s", 90.0), ("0", 0.0), ("2h", 7200.0)]
        {
            assert!((go_duration("sleep", text).unwrap() - want).abs() < 1e-12, "{text}");
        }
        for bad in ["10", "-5ms", "ms", "1.5.2s", "10 ms", "3d", ""] {
            assert!(go_duration("sleep", bad).unwrap_err().contains("`sleep`"), "{bad}");
        }
        let sz = |v: &str| size("size", &serde_yaml::from_str(v).unwrap());
        for (text, want) in [("512", 512), ("\"1 KB\"", 1024), ("1k", 1024), ("1KiB", 1024), ("\"2 mb\"", 2 << 20), ("\"1.5k\"", 1536)] {
            assert_eq!(sz(text).unwrap(), want, "{text}");
        }
        for bad in ["-1", "\"1 XB\"", "\"big\"", "1.5"] {
            assert!(sz(bad).unwrap_err().contains("`size`"), "{bad}");
        }
    }

    #[test]
    fn extensions_give_queues_and_distributions() {
        let text = r#"
defaults: {concurrency: 4, queueLimit: 0}
services:
- name: a
  isEntrypoint: true
  holdWhileCalling: true
  script: [{sleep: {exponential: 10ms}}, {call: b}]
- name: b
  concurrency: 1
  script: [{sleep: {lognormal: {median: 5ms, sigma: 0.5}}}]
"#;
        let t = Topology::parse(text, None).unwrap();
        let (a, b) = (&t.services[0], &t.services[1]);
        assert_eq!((a.concurrency, a.queue_limit, a.hold_while_calling), (Some(4), Some(0), true));
        assert_eq!((b.concurrency, b.queue_limit, b.hold_while_calling), (Some(1), Some(0), false));
        assert_eq!(a.script[0], Step::Sleep(ServiceTime::Exponential { mean: 0.01 }));
        assert_eq!(b.script[0], Step::Sleep(ServiceTime::Lognormal { median: 0.005, sigma: 0.5 }));
    }

    #[test]
    fn isotope_keys_not_modelled_are_warned_about() {
        let text = r#"
apiVersion: v1alpha1
kind: MockServiceGraph
services:
- name: a
  isEntrypoint: true
  numRbacPolicies: 3
  namespace: shop
  script: [{call: {service: b, hostname: b.shop, extra-header: {x: y}}}]
- name: b
"#;
        let t = Topology::parse(text, None).unwrap();
        let joined = t.warnings.join("\n");
        for key in ["apiVersion", "kind", "services[0].numRbacPolicies", "services[0].namespace", "call.hostname", "call.extra-header"] {
            assert!(joined.contains(key), "{key} not warned about:\n{joined}");
        }
    }

    #[track_caller]
    fn refused(text: &str, entry: Option<&str>, needles: &[&str]) {
        let err = Topology::parse(text, entry).expect_err(text);
        for n in needles {
            assert!(err.contains(n), "the message should name {n:?}: {err}");
        }
    }

    #[test]
    fn bad_topologies_are_refused_naming_the_field() {
        let two = |extra_a: &str, extra_b: &str| format!("services:\n- name: a\n  isEntrypoint: true\n{extra_a}- name: b\n{extra_b}");
        refused(&two("  script: [{call: b}]\n", "  script: [{call: a}]\n"), None, &["call cycle", "a -> b -> a"]);
        refused(&two("  script: [{call: c}]\n", ""), None, &["services[0].script[0].call", "no service named `c`"]);
        refused("services:\n- name: a\n- name: b\n", None, &["no service has `isEntrypoint: true`", "--entry"]);
        refused(&two("", "  isEntrypoint: true\n"), None, &["2 services", "a, b"]);
        assert_eq!(Topology::parse(&two("", "  isEntrypoint: true\n"), Some("b")).unwrap().entry, 1, "--entry decides");
        refused(&two("", ""), Some("z"), &["--entry z"]);
        refused("services:\n- name: a\n  isEntrypoint: true\n- name: a\n", None, &["services[1].name", "already `services[0]`"]);
        refused(&two("  script: [{sleep: -5ms}]\n", ""), None, &["services[0].script[0].sleep", "negative"]);
        refused(&two("  script: [{sleep: fast}]\n", ""), None, &["services[0].script[0].sleep", "not a duration"]);
        refused(&two("  script: [{call: {service: b, probability: 150}}]\n", ""), None, &["call.probability", "0..=100"]);
        refused(&two("  script: [{call: {service: b, payloadSize: 10}}]\n", ""), None, &["payloadSize", "`size`"]);
        refused("default: {numReplicas: 2}\nservices:\n- name: a\n", None, &["`default`", "`defaults`"]);
        refused(&two("  replicas: 2\n", ""), None, &["unknown key `services[0].replicas`"]);
        refused(&two("  script: [[[{call: b}]]]\n", ""), None, &["may not be nested"]);
        refused(&two("  script: [[{sleep: 1ms}]]\n", ""), None, &["holds calls, not sleeps"]);
        refused(&two("  numReplicas: 0\n", ""), None, &["services[0].numReplicas", "1..="]);
        refused(&two("  type: tcp\n", ""), None, &["services[0].type", "http"]);
        refused("defaults: {numReplica: 2}\nservices:\n- name: a\n  isEntrypoint: true\n", None, &["defaults.numReplica"]);
        refused("services: []\n", None, &["empty"]);
        refused("- a\n", None, &["mapping"]);
    }

    /// The topologies shipped in `topologies/` read without a warning, with the sizes their
    /// comments give.
    #[test]
    fn the_shipped_topologies_read_cleanly() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
        for (file, services, entry) in
            [("chain3.yaml", 3, "a"), ("bookinfo.yaml", 4, "productpage"), ("shop11.yaml", 11, "frontend"), ("tree100.yaml", 100, "s0")]
        {
            let t = Topology::load(&dir.join(file), None).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(t.services.len(), services, "{file}");
            assert_eq!(t.services[t.entry].name, entry, "{file}");
            assert!(t.warnings.is_empty(), "{file}: {:?}", t.warnings);
        }
    }
}

//! Scaling policies as files a server can load (`meshrl serve`), apart from the training
//! that made them: a lookup table (CSV or JSON: the decision at every load, ready and
//! starting replica count) or a network (a trained learner with the problem it was
//! trained on, CBOR).

use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::agent::dqn::DqnConfig;
use crate::agent::ppo::PpoConfig;
use crate::agent::{Learner, LearnerKind};
use crate::env::autoscale::{delta_of, ScaleState, ScalingEnv, ScalingSpec, Source};
use crate::env::Environment;
use crate::error::{Error, Result};

/// What a caller knows about the deployment now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalingQuery {
    /// Offered load, requests per second.
    pub load: f64,
    /// Replicas serving.
    pub ready: u32,
    /// Replicas started but not serving yet.
    pub starting: u32,
}

/// A policy's answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScalingDecision {
    /// Replicas to add (-1, 0, +1).
    pub delta: i32,
    /// Replicas after the decision (ready and starting).
    pub replicas: u32,
    /// The model's latency at this load with the replicas serving after the decision, s.
    pub predicted_latency_s: f64,
}

/// A policy a server can ask; a query it cannot answer (a load outside its table, replicas
/// outside its bounds) gets a message, not a panic.
pub trait ScalingPolicy: Send + Sync {
    fn decide(&self, q: &ScalingQuery) -> std::result::Result<ScalingDecision, String>;
}

/// One row of a lookup table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupRow {
    pub load: f64,
    pub ready: u32,
    pub starting: u32,
    pub delta: i32,
    pub replicas: u32,
    pub predicted_latency_s: f64,
}

/// A decision as served: one past the replica bounds becomes 0 (stay), never an invalid
/// scale; with its outcome at the same load.
fn served(spec: &ScalingSpec, state: &ScaleState, delta: i32) -> (i32, crate::env::autoscale::Outcome) {
    let o = spec.transition(state, delta, state.load, Source::Model);
    match o.ended {
        Some(crate::env::autoscale::Ending::Invalid) => (0, spec.transition(state, 0, state.load, Source::Model)),
        _ => (delta, o),
    }
}

/// A decision for every (load, ready, starting) of a grid. A query's load is rounded up to
/// the next load of the table (provision for at least the load asked about).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupPolicy {
    pub rows: Vec<LookupRow>,
}

const CSV_HEADER: &str = "load,ready,starting,delta,replicas,predicted_latency_s";

impl LookupPolicy {
    /// The table of a policy over every state of `spec` at step `t`, the latency predicted
    /// at the same load after the decision.
    pub fn tabulate(spec: &ScalingSpec, t: usize, mut decide: impl FnMut(&ScaleState) -> Result<i32>) -> Result<LookupPolicy> {
        let mut rows = Vec::new();
        for state in spec.states_at(t) {
            // Starting replicas are tabulated as one count: all in the newest slot.
            if state.starting.iter().rev().skip(1).any(|&s| s > 0) {
                continue;
            }
            let state = ScaleState { next_load: state.load, ..state };
            let (delta, o) = served(spec, &state, decide(&state)?);
            rows.push(LookupRow {
                load: spec.loads[state.load],
                ready: state.ready,
                starting: state.starting.iter().sum(),
                delta,
                replicas: o.replicas,
                predicted_latency_s: o.latency_s,
            });
        }
        Ok(LookupPolicy { rows })
    }

    pub fn to_csv(&self) -> String {
        let mut out = format!("{CSV_HEADER}\n");
        for r in &self.rows {
            out.push_str(&format!("{},{},{},{},{},{:.6}\n", r.load, r.ready, r.starting, r.delta, r.replicas, r.predicted_latency_s));
        }
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a `.csv` or `.json` table; errors name the file, row and field.
    pub fn load(path: &Path) -> Result<LookupPolicy> {
        let text = String::from_utf8(read_capped(path)?).map_err(|_| Error::file(path, "not UTF-8 text: not a lookup policy"))?;
        let is_json = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let policy = if is_json {
            serde_json::from_str(&text).map_err(|e| Error::file(path, format!("not a lookup policy: {e}")))?
        } else {
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("").trim();
            if header != CSV_HEADER {
                return Err(Error::file(path, format!("header must be `{CSV_HEADER}`, but is `{header}`")));
            }
            let names: Vec<&str> = CSV_HEADER.split(',').collect();
            let mut rows = Vec::new();
            for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let f: Vec<&str> = line.split(',').map(str::trim).collect();
                if f.len() != names.len() {
                    return Err(Error::field(path, i + 1, names[0], format!("expected {} fields, found {}", names.len(), f.len())));
                }
                let num = |j: usize| {
                    f[j].parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| Error::field(path, i + 1, names[j], format!("not a number: {:?}", f[j])))
                };
                let whole = |j: usize| {
                    f[j].parse::<i64>().map_err(|_| Error::field(path, i + 1, names[j], format!("not a whole number: {:?}", f[j])))
                };
                let count = |j: usize| {
                    whole(j).and_then(|v| {
                        u32::try_from(v).map_err(|_| Error::field(path, i + 1, names[j], format!("must be >= 0, but is {v}")))
                    })
                };
                let delta = whole(3)?;
                rows.push(LookupRow {
                    load: num(0)?,
                    ready: count(1)?,
                    starting: count(2)?,
                    delta: i32::try_from(delta).unwrap_or(i32::MAX),
                    replicas: count(4)?,
                    predicted_latency_s: num(5)?,
                });
            }
            LookupPolicy { rows }
        };
        policy.check(path)?;
        Ok(policy)
    }

    /// The checks every format passes alike (a CSV and a JSON table are the same policy),
    /// naming the row (1-based) and the field: no rows; a load or latency that is negative or
    /// not a number; replica counts beyond a Deployment's int32; a delta other than -1, 0 or 1; replicas other than ready + starting +
    /// delta; two rows for one state (load, ready, starting), which would make the answer
    /// depend on the order of the file.
    pub fn check(&self, path: &Path) -> Result<()> {
        if self.rows.is_empty() {
            return Err(Error::file(path, "the policy has no rows"));
        }
        let mut seen: Vec<(f64, u32, u32, usize)> = Vec::with_capacity(self.rows.len());
        for (i, r) in self.rows.iter().enumerate() {
            let row = i + 1;
            for (name, v) in [("load", r.load), ("predicted_latency_s", r.predicted_latency_s)] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(Error::field(path, row, name, format!("must be a number >= 0, but is {v}")));
                }
            }
            for (name, v) in [("ready", r.ready), ("starting", r.starting), ("replicas", r.replicas)] {
                if v > crate::k8s::MAX_REPLICAS {
                    return Err(Error::field(
                        path,
                        row,
                        name,
                        format!("is {v}, beyond a Deployment's {} replicas (an int32)", crate::k8s::MAX_REPLICAS),
                    ));
                }
            }
            if !(-1..=1).contains(&r.delta) {
                return Err(Error::field(path, row, "delta", format!("must be -1, 0 or 1, but is {}", r.delta)));
            }
            let total = i64::from(r.ready) + i64::from(r.starting) + i64::from(r.delta);
            if i64::from(r.replicas) != total {
                return Err(Error::field(path, row, "replicas", format!("is {}, but ready + starting + delta is {total}", r.replicas)));
            }
            if let Some(first) = seen.iter().find(|s| (s.0, s.1, s.2) == (r.load, r.ready, r.starting)) {
                return Err(Error::field(
                    path,
                    row,
                    "load",
                    format!("the state (load {}, ready {}, starting {}) already has row {}", r.load, r.ready, r.starting, first.3),
                ));
            }
            seen.push((r.load, r.ready, r.starting, row));
        }
        Ok(())
    }
}

/// A query's load must be a number >= 0.
fn check_load(load: f64) -> std::result::Result<(), String> {
    if load.is_finite() && load >= 0.0 {
        Ok(())
    } else {
        Err(format!("rps must be a number >= 0, but is {load}"))
    }
}

fn above_largest(load: f64, largest: f64) -> String {
    format!("rps {load} is above the policy's largest load {largest}")
}

/// The index of a query's load in ascending `loads`: the smallest at or above it.
fn round_up(loads: &[f64], load: f64) -> std::result::Result<usize, String> {
    check_load(load)?;
    loads.iter().position(|&l| l >= load - 1e-9).ok_or_else(|| above_largest(load, loads.last().copied().unwrap_or(0.0)))
}

impl ScalingPolicy for LookupPolicy {
    fn decide(&self, q: &ScalingQuery) -> std::result::Result<ScalingDecision, String> {
        // One pass over the rows, no allocation: this runs on every request.
        check_load(q.load)?;
        let load = self
            .rows
            .iter()
            .map(|r| r.load)
            .filter(|&l| l >= q.load - 1e-9)
            .min_by(f64::total_cmp)
            .ok_or_else(|| above_largest(q.load, self.rows.iter().map(|r| r.load).fold(0.0, f64::max)))?;
        self.rows
            .iter()
            .find(|r| r.load == load && r.ready == q.ready && r.starting == q.starting)
            .map(|r| ScalingDecision { delta: r.delta, replicas: r.replicas, predicted_latency_s: r.predicted_latency_s })
            .ok_or_else(|| format!("no decision for {} ready and {} starting replicas at load {load}", q.ready, q.starting))
    }
}

/// A trained learner with the problem it was trained on, as saved.
#[derive(Serialize, Deserialize)]
struct NetworkFile {
    spec: ScalingSpec,
    learner: LearnerKind,
    dqn: DqnConfig,
    ppo: PpoConfig,
    #[serde(with = "serde_bytes_vec")]
    weights: Vec<u8>,
}

/// `Vec<u8>` as a CBOR byte string (not an array of numbers).
mod serde_bytes_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let bytes: ciborium::value::Value = Deserialize::deserialize(d)?;
        bytes.into_bytes().map_err(|_| serde::de::Error::custom("expected a byte string"))
    }
}

/// A trained agent answering through its greedy action.
pub struct NetworkPolicy {
    env: ScalingEnv,
    learner: Mutex<Box<dyn Learner>>,
}

const NETWORK_MAGIC: &[u8] = b"meshrlP1";

impl NetworkPolicy {
    /// Writes a learner with its problem and settings (atomically).
    pub fn save(
        path: &Path,
        spec: &ScalingSpec,
        learner_kind: LearnerKind,
        dqn: &DqnConfig,
        ppo: &PpoConfig,
        learner: &dyn Learner,
    ) -> Result<()> {
        let file = NetworkFile { spec: spec.clone(), learner: learner_kind, dqn: dqn.clone(), ppo: ppo.clone(), weights: learner.save()? };
        let mut bytes = NETWORK_MAGIC.to_vec();
        ciborium::into_writer(&file, &mut bytes).map_err(|e| Error::config(format!("encoding {}: {e}", path.display())))?;
        crate::atomic::write_file(path, bytes)
    }

    pub fn load(path: &Path) -> Result<NetworkPolicy> {
        let bytes = read_capped(path)?;
        let body = bytes.strip_prefix(NETWORK_MAGIC).ok_or_else(|| Error::file(path, "not a meshrl network policy (wrong magic)"))?;
        let mut reader = std::io::Cursor::new(body);
        let file: NetworkFile =
            ciborium::from_reader(&mut reader).map_err(|e| Error::file(path, format!("damaged network policy: {e}")))?;
        if reader.position() != body.len() as u64 {
            return Err(Error::file(
                path,
                format!("{} bytes trail the policy: a damaged or concatenated file", body.len() as u64 - reader.position()),
            ));
        }
        let env = ScalingEnv::new(file.spec).map_err(|e| Error::file(path, e.to_string()))?;
        let spec = file.learner.spec(&file.dqn, &file.ppo);
        use rand::SeedableRng;
        let mut learner = spec.build(env.layout(), &mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
        learner.restore(&file.weights).map_err(|e| Error::file(path, format!("cannot restore the learner: {e}")))?;
        Ok(NetworkPolicy { env, learner: Mutex::new(learner) })
    }

    pub fn spec(&self) -> &ScalingSpec {
        &self.env.spec
    }
}

impl ScalingPolicy for NetworkPolicy {
    fn decide(&self, q: &ScalingQuery) -> std::result::Result<ScalingDecision, String> {
        let spec = &self.env.spec;
        let load = round_up(&spec.loads, q.load)?;
        let total = q.ready + q.starting;
        if q.ready < spec.min_replicas || total > spec.max_replicas {
            return Err(format!(
                "replicas must lie in [{}, {}], but {} are ready and {} starting",
                spec.min_replicas, spec.max_replicas, q.ready, q.starting
            ));
        }
        let mut starting = vec![0; spec.provision_steps];
        match starting.last_mut() {
            Some(newest) => *newest = q.starting,
            None if q.starting > 0 => return Err("this policy's replicas start at once: starting must be 0".into()),
            None => {}
        }
        let state = ScaleState { t: 0, load, next_load: load, ready: q.ready, starting };
        let observation = spec.observe(&state);
        let action = self
            .learner
            .lock()
            .map_err(|_| "the policy is unavailable".to_string())?
            .act_greedy(0, &[observation])
            .map_err(|e| e.to_string())?[0];
        let (delta, o) = served(spec, &state, delta_of(action));
        Ok(ScalingDecision { delta, replicas: o.replicas, predicted_latency_s: o.latency_s })
    }
}

/// Loads a policy file: `.csv` or `.json` as a lookup table, anything else as a network.
/// The largest policy file read: a lookup table of every state of a large problem is a few
/// MiB; anything near this is not a policy (a device such as /dev/zero never ends).
pub const MAX_POLICY_BYTES: u64 = 64 << 20;

/// A policy file's bytes, refused past [`MAX_POLICY_BYTES`] without reading further.
fn read_capped(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES + 1).read_to_end(&mut bytes).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(Error::file(path, format!("larger than {} MiB: not a policy file", MAX_POLICY_BYTES >> 20)));
    }
    Ok(bytes)
}

pub fn load_policy(path: &Path) -> Result<Box<dyn ScalingPolicy>> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") | Some("json") => Ok(Box::new(LookupPolicy::load(path)?)),
        _ => Ok(Box::new(NetworkPolicy::load(path)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::LearnerSpec;
    use crate::env::autoscale::tests::spec;

    fn scale_up_when_slow(spec: &ScalingSpec) -> impl FnMut(&ScaleState) -> Result<i32> + '_ {
        move |s| {
            Ok(if spec.latency(Source::Model, s.load, s.ready) > spec.reward.soft_s && s.replicas() < spec.max_replicas { 1 } else { 0 })
        }
    }

    #[test]
    fn a_lookup_table_round_trips_through_csv_and_json_and_answers_queries() {
        let spec = spec(1);
        let table = LookupPolicy::tabulate(&spec, 0, scale_up_when_slow(&spec)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [("p.csv", table.to_csv()), ("p.json", table.to_json())] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let back = LookupPolicy::load(&path).unwrap();
            assert_eq!(back.rows.len(), table.rows.len());
            let d = back.decide(&ScalingQuery { load: 3.0, ready: 1, starting: 0 }).unwrap();
            assert_eq!((d.delta, d.replicas), (1, 2), "3 req/s rounds up to 4, where one replica is slow");
            assert!(back.decide(&ScalingQuery { load: 9.0, ready: 1, starting: 0 }).unwrap_err().contains("above"));
            assert!(back.decide(&ScalingQuery { load: 1.0, ready: 7, starting: 0 }).unwrap_err().contains("no decision"));
        }
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, format!("{CSV_HEADER}\n1,1,0,2,1,0.3\n")).unwrap();
        let err = LookupPolicy::load(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.csv") && err.contains("row 1") && err.contains("delta"), "{err}");
    }

    #[test]
    fn a_network_policy_answers_as_the_learner_it_saved() {
        use rand::SeedableRng;
        let spec = spec(1);
        let env = ScalingEnv::new(spec.clone()).unwrap();
        let ppo = PpoConfig { n_steps: 16, batch_size: 8, ..PpoConfig::default() };
        let learner = ppo.build(env.layout(), &mut rand_chacha::ChaCha8Rng::seed_from_u64(4)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ppo.policy");
        NetworkPolicy::save(&path, &spec, LearnerKind::Ppo, &DqnConfig::default(), &ppo, learner.as_ref()).unwrap();
        let policy = load_policy(&path).unwrap();
        let q = ScalingQuery { load: 4.0, ready: 2, starting: 0 };
        let state = ScaleState { t: 0, load: 1, next_load: 1, ready: 2, starting: vec![0] };
        let want = delta_of(learner.act_greedy(0, &[spec.observe(&state)]).unwrap()[0]);
        assert_eq!(policy.decide(&q).unwrap().delta, want);
        assert!(policy.decide(&ScalingQuery { load: 1.0, ready: 0, starting: 0 }).is_err());
        let mut saved = std::fs::read(&path).unwrap();
        saved.extend_from_slice(b"more");
        std::fs::write(&path, &saved).unwrap();
        assert!(load_policy(&path).err().unwrap().to_string().contains("4 bytes trail the policy"));
        std::fs::write(&path, b"meshrlP1garbage").unwrap();
        assert!(load_policy(&path).err().unwrap().to_string().contains("damaged"));

        // A NaN weight (the first number of the first variable) is refused, naming it.
        NetworkPolicy::save(&path, &spec, LearnerKind::Ppo, &DqnConfig::default(), &ppo, learner.as_ref()).unwrap();
        let saved = std::fs::read(&path).unwrap();
        let mut file: NetworkFile = ciborium::from_reader(&saved[NETWORK_MAGIC.len()..]).unwrap();
        let mut weights: ciborium::value::Value = ciborium::from_reader(file.weights.as_slice()).unwrap();
        assert!(first_float_to_nan(&mut weights), "the saved learner holds no number");
        file.weights.clear();
        ciborium::into_writer(&weights, &mut file.weights).unwrap();
        let mut bytes = NETWORK_MAGIC.to_vec();
        ciborium::into_writer(&file, &mut bytes).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let err = load_policy(&path).err().unwrap().to_string();
        assert!(err.contains("ppo.policy") && err.contains("variable") && err.contains("NaN, not a finite number"), "{err}");
    }

    /// Replaces the first float of a CBOR tree (depth first) by NaN.
    fn first_float_to_nan(v: &mut ciborium::value::Value) -> bool {
        use ciborium::value::Value;
        match v {
            Value::Float(f) => {
                *f = f64::NAN;
                true
            }
            Value::Array(items) => items.iter_mut().any(first_float_to_nan),
            Value::Map(entries) => entries.iter_mut().any(|(_, v)| first_float_to_nan(v)),
            Value::Tag(_, inner) => first_float_to_nan(inner),
            _ => false,
        }
    }

    /// A file that never ends (a device) is refused without reading it all, by either reader.
    #[cfg(unix)]
    #[test]
    fn an_endless_policy_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("zero.csv");
        std::os::unix::fs::symlink("/dev/zero", &table).unwrap();
        for path in [Path::new("/dev/zero"), table.as_path()] {
            let err = load_policy(path).err().expect("refused").to_string();
            assert!(err.contains("larger than 64 MiB"), "{}: {err}", path.display());
        }
    }

    /// A CSV and a JSON table pass the same checks, naming the row and the field.
    #[test]
    fn lookup_tables_are_checked_alike_in_every_format() {
        let dir = tempfile::tempdir().unwrap();
        let good = "load,ready,starting,delta,replicas,predicted_latency_s\n1,1,0,0,1,0.3\n4,1,0,1,2,2.0\n";
        let csv = dir.path().join("p.csv");
        std::fs::write(&csv, good).unwrap();
        let policy = LookupPolicy::load(&csv).unwrap();
        let json = dir.path().join("p.json");
        std::fs::write(&json, policy.to_json()).unwrap();
        assert_eq!(LookupPolicy::load(&json).unwrap(), policy);
        let bad_rows = [
            ("4,1,0,1,3,2.0", "replicas", "ready + starting + delta is 2"),
            ("1,1,0,1,2,0.3", "load", "already has row 1"),
            ("4,1,0,2,3,2.0", "delta", "-1, 0 or 1"),
            ("-4,1,0,1,2,2.0", "load", ">= 0"),
            ("4,1,0,1,2,-2.0", "predicted_latency_s", ">= 0"),
            ("4,3000000000,0,0,3000000000,2.0", "ready", "int32"),
        ];
        for (row, field, why) in bad_rows {
            let text = format!("load,ready,starting,delta,replicas,predicted_latency_s\n1,1,0,0,1,0.3\n{row}\n");
            std::fs::write(&csv, &text).unwrap();
            let e = LookupPolicy::load(&csv).unwrap_err().to_string();
            assert!(e.contains("p.csv") && e.contains("row 2") && e.contains(field) && e.contains(why), "{row}: {e}");
            // The same table as JSON is refused the same way.
            let rows: Vec<String> = text
                .lines()
                .skip(1)
                .map(|l| {
                    let f: Vec<&str> = l.split(',').collect();
                    format!(
                        r#"{{"load":{},"ready":{},"starting":{},"delta":{},"replicas":{},"predicted_latency_s":{}}}"#,
                        f[0], f[1], f[2], f[3], f[4], f[5]
                    )
                })
                .collect();
            std::fs::write(&json, format!(r#"{{"rows":[{}]}}"#, rows.join(","))).unwrap();
            let e = LookupPolicy::load(&json).unwrap_err().to_string();
            assert!(e.contains("p.json") && e.contains("row 2") && e.contains(field) && e.contains(why), "{row} as JSON: {e}");
        }
        std::fs::write(&json, r#"{"rows":[{"load":1,"ready":1,"starting":0,"delta":0,"replicas":1,"predicted_latency_s":0.3,"cpu":1}]}"#)
            .unwrap();
        assert!(LookupPolicy::load(&json).unwrap_err().to_string().contains("unknown field `cpu`"));
        std::fs::write(&json, format!("{} trailing", policy.to_json())).unwrap();
        assert!(LookupPolicy::load(&json).unwrap_err().to_string().contains("trailing"));
    }
}

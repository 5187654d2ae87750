//! `meshrl ingest fortio`: real load tests in, trace rows out. Each Fortio JSON result
//! (`fortio load -json`) plus the DestinationRule its run was made under becomes one row of
//! the protocol schema, so that a real testbed's runs train and check simulators exactly
//! like the emulated datasets.
//!
//! The rules of each run come from its DestinationRule and VirtualService
//! ([`crate::destination_rule`]) or from a manifest CSV. The rule settings beyond the seven
//! trace columns (issue 15) become the optional columns [`KNOB_COLUMNS`], written only when
//! some run sets one to other than its default, so a trace of the seven alone is the same
//! file, byte for byte, as before they existed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use polars::prelude::{CsvReadOptions, DataFrame, SerReader};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::destination_rule::BUNDLE_DESTINATION_RULE;
pub use crate::destination_rule::{read_destination_rule, read_rule_files, read_virtual_service, DestinationRule, VirtualService};
use crate::error::{Error, Result};
use crate::rules::{knob_field_of, TrafficRules, KNOB_COLUMNS, LOAD_COLUMNS, RESPONSE_COLUMNS, RULE_COLUMNS};

/// Detail columns an ingested trace carries: the ones Fortio measures directly. The loader
/// accepts any subset of [`crate::data::DETAIL_COLUMNS`]; the 503 causes, ejections and
/// the emulator seed are not in a Fortio result, so they are left out rather than faked.
pub const FORTIO_DETAIL_COLUMNS: [&str; 5] = ["latency_mean_ms", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "duration_s"];

/// What [`run_fortio`] reads and writes.
#[derive(Debug, Clone)]
pub struct FortioOptions {
    /// Directory of Fortio JSON results; each `<stem>.json` takes its rules from `<stem>.yaml`
    /// beside it (and its retries from `<stem>.virtual-service.yaml` when there is one), or
    /// from a rule bundle's `destination-rule.yaml` (and `virtual-service.yaml`) in the
    /// directory, unless `rules` is given.
    pub dir: PathBuf,
    /// Manifest CSV with a `result` column (JSON file name), the seven rule columns and any of
    /// the optional rule columns ([`KNOB_COLUMNS`]).
    pub rules: Option<PathBuf>,
    /// The trace CSV to write.
    pub out: PathBuf,
}

/// Turns the Fortio results of `options.dir` into trace rows ([`ingest_fortio`]), writes
/// them to `options.out` and prints how many.
pub fn run_fortio(options: &FortioOptions) -> Result<()> {
    crate::paths::refuse_input_as_output("--out", &options.out, &inputs(&options.dir, options.rules.as_deref()))?;
    let Ingested { rows, warnings } = ingest(&options.dir, options.rules.as_deref())?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    write_trace(&options.out, &rows)?;
    let from = match &options.rules {
        Some(m) => format!("manifest {}", m.display()),
        None => "the DestinationRule YAML beside each result".to_string(),
    };
    println!("{} Fortio results of {} (rules from {from}) -> {}", rows.len(), options.dir.display(), options.out.display());
    Ok(())
}

/// Every file ingest may read: the manifest, and the results and rule files of `dir` (its
/// JSON and YAML files).
fn inputs(dir: &Path, manifest: Option<&Path>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = manifest.map(Path::to_path_buf).into_iter().collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        files.extend(
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "yaml" || x == "yml")),
        );
    }
    files
}

// ---------------------------------------------------------------------------------------
// Fortio results

/// What one Fortio run measured, in the trace's units.
#[derive(Debug, Clone, PartialEq)]
pub struct FortioRun {
    pub threads: u32,
    pub calls: u32,
    pub qps: f64,
    /// Non-2xx share of all return codes (socket errors, code -1, included).
    pub failure_rate: f64,
    pub latency_mean_ms: f64,
    pub latency_p50_ms: f64,
    pub latency_p90_ms: f64,
    pub latency_p99_ms: f64,
    pub duration_s: f64,
}

/// One entry of `DurationHistogram.Percentiles`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Percentile {
    percentile: f64,
    value: f64,
}

/// The value at `path` in a JSON document, typed by serde; errors name the file and the
/// field, which serde_json's own messages do not (they give only line and column).
fn field<T: DeserializeOwned>(file: &Path, root: &serde_json::Value, path: &[&str]) -> Result<T> {
    let name = path.join(".");
    let mut v = root;
    for key in path {
        v = v.get(key).ok_or_else(|| Error::file(file, format!("field `{name}`: missing")))?;
    }
    T::deserialize(v).map_err(|e| Error::file(file, format!("field `{name}`: {e}")))
}

/// Refuses a result of another regime than the trace's rows: not an HTTP run (`RunType`),
/// or a fixed-rate run (`RequestedQPS` other than "max" or 0), which measures the service
/// at an imposed rate rather than as fast as `NumThreads` closed-loop clients go.
fn check_regime(path: &Path, root: &serde_json::Value) -> Result<()> {
    let run_type: String = field(path, root, &["RunType"])?;
    if run_type != "HTTP" {
        return Err(Error::file(
            path,
            format!(
                "field `RunType`: `{run_type}`: only HTTP runs (RunType \"HTTP\") are traces; other runs' RetCodes are not HTTP statuses"
            ),
        ));
    }
    let requested = root.get("RequestedQPS").ok_or_else(|| Error::file(path, "field `RequestedQPS`: missing"))?;
    let closed_loop = match requested {
        serde_json::Value::String(s) => s == "max" || s.trim().parse::<f64>().is_ok_and(|q| q == 0.0),
        serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    };
    if !closed_loop {
        return Err(Error::file(
            path,
            format!(
                "field `RequestedQPS`: {requested}: a fixed-rate run (fortio load -qps {}) measures the service at an imposed rate, \
                 not the closed-loop load of a trace row; rerun it with -qps 0 (RequestedQPS \"max\")",
                requested.as_str().map(str::to_string).unwrap_or_else(|| requested.to_string())
            ),
        ));
    }
    Ok(())
}

/// Reads one `fortio load -json` result. Fields other than the ones the trace needs are
/// ignored, so results of any Fortio version with these fields read. Only what a trace row
/// means is accepted: an HTTP run (`RunType`), closed loop at the maximum rate
/// (`RequestedQPS` "max", i.e. `-qps 0`), of a fixed number of calls (`Exactly`, `-n`) all
/// made (`DurationHistogram.Count`), each with one HTTP status code or -1 (`RetCodes`).
/// Anything else is refused with the field named, never read as something it is not.
pub fn read_fortio(path: &Path) -> Result<FortioRun> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    // Editors on Windows save UTF-8 with a byte-order mark; JSON has no use for it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let root: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::file(path, format!("not a JSON file: {e}")))?;
    if let Some(key) = duplicate_key(text) {
        return Err(Error::file(path, format!("field `{key}` appears twice in one object: which one Fortio wrote is unknown")));
    }
    if !root.is_object() {
        return Err(Error::file(path, "not a Fortio result: the JSON is not an object"));
    }
    let bad = |name: &str, why: String| Error::file(path, format!("field `{name}`: {why}"));
    check_regime(path, &root)?;
    let threads: u32 = field(path, &root, &["NumThreads"])?;
    let count: u64 = field(path, &root, &["DurationHistogram", "Count"])?;
    let exactly: u64 = field(path, &root, &["Exactly"])?;
    let qps: f64 = field(path, &root, &["ActualQPS"])?;
    let duration_ns: u64 = field(path, &root, &["ActualDuration"])?;
    let avg: f64 = field(path, &root, &["DurationHistogram", "Avg"])?;
    let percentiles: Vec<Percentile> = field(path, &root, &["DurationHistogram", "Percentiles"])?;
    let codes: BTreeMap<String, u64> = field(path, &root, &["RetCodes"])?;

    if threads == 0 {
        return Err(bad("NumThreads", "must be >= 1, found 0".into()));
    }
    if exactly == 0 {
        let requested: String = field(path, &root, &["RequestedDuration"]).unwrap_or_default();
        return Err(bad(
            "Exactly",
            format!(
                "0: a timed run (RequestedDuration `{requested}`), whose call count is an outcome, not the load of the trace's \
                 `calls` column; ingest reads runs of a fixed number of calls (fortio load -qps 0 -n <calls>)"
            ),
        ));
    }
    let calls = u32::try_from(count)
        .ok()
        .filter(|&c| c >= 1)
        .ok_or_else(|| bad("DurationHistogram.Count", format!("must be in 1..={}, found {count}", u32::MAX)))?;
    if count != exactly {
        return Err(bad(
            "DurationHistogram.Count",
            format!("{count} calls made of the {exactly} requested (`Exactly`): an interrupted or incomplete run is not a trace row"),
        ));
    }
    if u64::from(threads) > count {
        return Err(bad("NumThreads", format!("{threads} threads for {count} calls: fortio never runs more connections than calls")));
    }
    if !(qps.is_finite() && qps > 0.0 && qps <= MAX_QPS) {
        return Err(bad(
            "ActualQPS",
            format!("must be a number > 0 and at most {MAX_QPS:e} (a run that made calls took time), found {qps}"),
        ));
    }
    if !(avg.is_finite() && (0.0..=MAX_SECONDS).contains(&avg)) {
        return Err(bad("DurationHistogram.Avg", format!("must be seconds in 0..={MAX_SECONDS:e}, found {avg}")));
    }
    let mut total = 0u64;
    let mut failed = 0u64;
    for (code, &n) in &codes {
        // Fortio's HTTP runner records the response's three-digit status, or -1 for a
        // socket error; anything else is not an HTTP result (gRPC runs record gRPC codes).
        let status = code.parse::<i64>().ok().filter(|&s| s == -1 || (100..=599).contains(&s)).ok_or_else(|| {
            bad("RetCodes", format!("key `{code}` is not an HTTP status code or -1 (socket error): only HTTP runs are traces"))
        })?;
        total = total.checked_add(n).ok_or_else(|| bad("RetCodes", "the counts add up past 2^64: not the codes of a real run".into()))?;
        if !(200..300).contains(&status) {
            failed += n;
        }
    }
    if total == 0 {
        return Err(bad("RetCodes", "holds no call: a failure rate needs at least one".into()));
    }
    if total != count {
        return Err(bad(
            "RetCodes",
            format!("the codes count {total} calls but `DurationHistogram.Count` is {count}: one code per call, the two must agree"),
        ));
    }
    let ms_at = |p: f64| -> Result<f64> {
        let hit = percentiles.iter().find(|q| q.percentile == p).ok_or_else(|| {
            bad("DurationHistogram.Percentiles", format!("has no {p}th percentile (run fortio with -p including 50,90,99)"))
        })?;
        if !(hit.value.is_finite() && (0.0..=MAX_SECONDS).contains(&hit.value)) {
            return Err(bad(
                "DurationHistogram.Percentiles",
                format!("the {p}th percentile is {} (expected seconds in 0..={MAX_SECONDS:e})", hit.value),
            ));
        }
        Ok(hit.value * 1000.0)
    };
    Ok(FortioRun {
        threads,
        calls,
        qps,
        failure_rate: failed as f64 / total as f64,
        latency_mean_ms: avg * 1000.0,
        latency_p50_ms: ms_at(50.0)?,
        latency_p90_ms: ms_at(90.0)?,
        latency_p99_ms: ms_at(99.0)?,
        duration_s: duration_ns as f64 / 1e9,
    })
}

/// The largest throughput a trace row takes (a billion calls per second: no sidecar serves
/// that, and beyond it the normaliser's squares would overflow).
const MAX_QPS: f64 = 1e9;
/// The largest latency, in seconds (a million seconds: about 11 days).
const MAX_SECONDS: f64 = 1e6;

/// The first key that appears twice in one JSON object of `text` (serde_json keeps the last
/// silently), as `path.to.key`.
fn duplicate_key(text: &str) -> Option<String> {
    use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;
    /// Walks any JSON value, recording the first repeated key with its path.
    struct Walk<'a> {
        path: Vec<String>,
        found: &'a RefCell<Option<String>>,
    }
    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
            let mut seen = std::collections::BTreeSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let mut path = self.path.clone();
                path.push(key.clone());
                if !seen.insert(key) && self.found.borrow().is_none() {
                    *self.found.borrow_mut() = Some(path.join("."));
                }
                map.next_value_seed(Walk { path, found: self.found })?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
            while seq.next_element_seed(Walk { path: self.path.clone(), found: self.found })?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> std::result::Result<(), E> {
            Ok(())
        }
    }
    let found = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let _: std::result::Result<(), _> = Walk { path: Vec::new(), found: &found }.deserialize(&mut de);
    found.into_inner()
}

// ---------------------------------------------------------------------------------------
// Manifest

/// A small CSV file with every column read as text (the caller parses and names errors).
pub(crate) fn read_csv_as_text(path: &Path) -> Result<DataFrame> {
    let mut bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    // A spreadsheet's "CSV UTF-8" starts with a byte-order mark, which would join the first
    // column's name.
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(Cursor::new(bytes))
        .finish()
        .map_err(|e| Error::file(path, format!("not a readable CSV file: {e}")))
}

/// Reads a manifest CSV: column `result` (a JSON file name) and the seven rule columns, in
/// the trace's units (seconds, percent), and any of the optional rule columns
/// ([`KNOB_COLUMNS`]; an absent one keeps its default). Other columns (e.g. those `meshrl
/// export` writes) are ignored. Returns the rules by result file name.
pub fn read_manifest(path: &Path) -> Result<BTreeMap<String, TrafficRules>> {
    Ok(read_manifest_rows(path)?.into_iter().map(|r| (r.result, r.rules)).collect())
}

/// One row of a manifest: its 1-based data row, result file name and rules.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestRow {
    pub row: usize,
    pub result: String,
    pub rules: TrafficRules,
}

/// [`read_manifest`] in row order, with each row's number (for messages).
pub fn read_manifest_rows(path: &Path) -> Result<Vec<ManifestRow>> {
    let frame = read_csv_as_text(path)?;
    let text_column = |name: &str| -> Result<Vec<Option<String>>> {
        let column = frame.column(name).map_err(|_| Error::file(path, format!("missing column `{name}`")))?;
        let cells = column.str().map_err(|e| Error::file(path, format!("column `{name}`: {e}")))?;
        Ok(cells.iter().map(|c| c.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())).collect())
    };
    for name in frame.get_column_names() {
        let known = name.as_str() == "result"
            || RULE_COLUMNS.contains(&name.as_str())
            || KNOB_COLUMNS.contains(&name.as_str())
            || crate::export::MANIFEST_EXTRA_COLUMNS.contains(&name.as_str());
        if !known {
            return Err(Error::file(
                path,
                format!(
                    "unknown column `{name}`: a manifest holds `result`, the rule columns ({}), the optional ones ({}) and \
                     export's own ({})",
                    RULE_COLUMNS.join(", "),
                    KNOB_COLUMNS.join(", "),
                    crate::export::MANIFEST_EXTRA_COLUMNS.join(", ")
                ),
            ));
        }
    }
    let results = text_column("result")?;
    let columns: Vec<Vec<Option<String>>> = RULE_COLUMNS.iter().map(|c| text_column(c)).collect::<Result<_>>()?;
    let mut knob_columns = Vec::new();
    for name in frame.get_column_names() {
        if let Some(&known) = KNOB_COLUMNS.iter().find(|k| **k == name.as_str()) {
            knob_columns.push((known, text_column(known)?));
        }
    }
    let mut out: Vec<ManifestRow> = Vec::new();
    let mut first_row: BTreeMap<String, usize> = BTreeMap::new();
    for (i, result) in results.iter().enumerate() {
        let row = i + 1;
        let result = result.clone().ok_or_else(|| Error::field(path, row, "result", "empty cell (missing value)"))?;
        let value = |j: usize| -> Result<f64> {
            let name = RULE_COLUMNS[j];
            let text = columns[j][i].as_deref().ok_or_else(|| Error::field(path, row, name, "empty cell (missing value)"))?;
            text.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| Error::field(path, row, name, format!("`{text}` is not a number")))
        };
        let whole = |j: usize| -> Result<u32> {
            let x = value(j)?;
            if x.fract() != 0.0 || !(1.0..=f64::from(u32::MAX)).contains(&x) {
                return Err(Error::field(path, row, RULE_COLUMNS[j], format!("expected a whole number >= 1, found {x}")));
            }
            Ok(x as u32)
        };
        let mut rules = TrafficRules {
            max_pending_requests: whole(0)?,
            max_connections: whole(1)?,
            max_requests_per_connection: whole(2)?,
            ejection_time_s: value(3)?,
            max_ejection_percent: value(4)?,
            interval_s: value(5)?,
            consecutive_errors: whole(6)?,
            ..TrafficRules::default()
        };
        for (j, x, ok) in [
            (3, rules.ejection_time_s, rules.ejection_time_s > 0.0),
            (4, rules.max_ejection_percent, (0.0..=100.0).contains(&rules.max_ejection_percent)),
            (5, rules.interval_s, rules.interval_s > 0.0),
        ] {
            if !ok {
                let range = if j == 4 { "in 0..=100" } else { "> 0" };
                return Err(Error::field(path, row, RULE_COLUMNS[j], format!("expected a number {range}, found {x}")));
            }
        }
        for (name, cells) in &knob_columns {
            let text = cells[i].as_deref().ok_or_else(|| Error::field(path, row, *name, "empty cell (missing value)"))?;
            rules.set_knob(name, text).map_err(|why| Error::field(path, row, *name, why))?;
        }
        rules.validate_knobs().map_err(|why| match knob_field_of(&why) {
            Some((field, rest)) => Error::field(path, row, field.column, rest),
            None => Error::file(path, format!("row {row}: {why}")),
        })?;
        if let Some(first) = first_row.insert(result.clone(), row) {
            return Err(Error::field(path, row, "result", format!("`{result}` is listed twice (first in row {first})")));
        }
        out.push(ManifestRow { row, result, rules });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Trace

/// One trace row: a Fortio result and the rules of its run.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    /// The result's file name, for messages.
    pub result: String,
    pub rules: TrafficRules,
    pub run: FortioRun,
}

/// What [`ingest`] read: the trace rows and what it left out, one line each.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    pub rows: Vec<TraceRow>,
    pub warnings: Vec<String>,
}

/// Every `*.json` result of `dir` (sorted by file name, so the output is deterministic)
/// with its rules: from `manifest` when given, else from `<stem>.yaml` beside it, else from
/// the rule bundle's `destination-rule.yaml` in `dir`; with the VirtualService that goes
/// with that file, if any ([`read_rule_files`]).
pub fn ingest_fortio(dir: &Path, manifest: Option<&Path>) -> Result<Vec<TraceRow>> {
    Ok(ingest(dir, manifest)?.rows)
}

/// [`ingest_fortio`], plus a warning for the manifest rows whose result is not in `dir`
/// (runs not made yet, as `meshrl validate` allows, or a result saved elsewhere): they are
/// left out of the trace, by name. A result without a manifest row is an error.
pub fn ingest(dir: &Path, manifest: Option<&Path>) -> Result<Ingested> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::file(dir, format!("cannot read the directory: {e}")))?;
    let mut results: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json")).collect();
    results.sort();
    if results.is_empty() {
        return Err(Error::file(dir, "holds no Fortio result (*.json)"));
    }
    let manifest_rows = manifest.map(|m| read_manifest_rows(m).map(|r| (m, r))).transpose()?;
    let by_name: BTreeMap<&str, &ManifestRow> =
        manifest_rows.iter().flat_map(|(_, listed)| listed.iter().map(|r| (r.result.as_str(), r))).collect();
    let rows = results
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let run = read_fortio(path)?;
            let rules = match &manifest_rows {
                Some((m, _)) => {
                    by_name
                        .get(name.as_str())
                        .ok_or_else(|| Error::file(*m, format!("field `result`: no row for {} (a result with no rules)", path.display())))?
                        .rules
                }
                None => {
                    let yaml = path.with_extension("yaml");
                    let bundle = dir.join(BUNDLE_DESTINATION_RULE);
                    if yaml.is_file() {
                        read_rule_files(&yaml)?
                    } else if bundle.is_file() {
                        read_rule_files(&bundle)?
                    } else {
                        return Err(Error::file(
                            path,
                            format!(
                                "no rules: expected the DestinationRule {} beside it (or a rule bundle's {BUNDLE_DESTINATION_RULE} \
                                 in its folder), or pass --rules <manifest.csv>",
                                yaml.display()
                            ),
                        ));
                    }
                }
            };
            Ok(TraceRow { result: name, rules, run })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut warnings = Vec::new();
    if let Some((m, listed)) = &manifest_rows {
        let present: std::collections::BTreeSet<&str> = rows.iter().map(|t| t.result.as_str()).collect();
        let absent: Vec<String> =
            listed.iter().filter(|r| !present.contains(r.result.as_str())).map(|r| format!("row {} ({})", r.row, r.result)).collect();
        if !absent.is_empty() {
            warnings.push(format!(
                "{}: {} of {} rows name a result that is not in {}, left out of the trace: {}",
                m.display(),
                absent.len(),
                listed.len(),
                dir.display(),
                absent.join(", ")
            ));
        }
    }
    Ok(Ingested { rows, warnings })
}

/// The trace CSV: the 11 protocol columns then [`FORTIO_DETAIL_COLUMNS`], with the
/// datasets' precision for measured values; the optional rule columns ([`KNOB_COLUMNS`])
/// follow the seven rule columns when some row sets one to other than its default.
pub fn trace_csv(rows: &[TraceRow]) -> String {
    let knobs = rows.iter().any(|r| !r.rules.has_default_knobs());
    let knob_header: &[&str] = if knobs { &KNOB_COLUMNS } else { &[] };
    let header: Vec<&str> = RULE_COLUMNS
        .iter()
        .chain(knob_header)
        .chain(&LOAD_COLUMNS)
        .chain(&RESPONSE_COLUMNS)
        .chain(&FORTIO_DETAIL_COLUMNS)
        .copied()
        .collect();
    let mut s = header.join(",");
    s.push('\n');
    for r in rows {
        let (k, f) = (&r.rules, &r.run);
        let rules = if knobs { format!("{},{}", k.csv_fields(), k.knob_csv_fields()) } else { k.csv_fields() };
        let _ = writeln!(
            s,
            "{},{},{},{:.3},{:.6},{:.4},{:.4},{:.4},{:.4},{:.6}",
            rules,
            f.threads,
            f.calls,
            f.qps,
            f.failure_rate,
            f.latency_mean_ms,
            f.latency_p50_ms,
            f.latency_p90_ms,
            f.latency_p99_ms,
            f.duration_s
        );
    }
    s
}

pub fn write_trace(path: &Path, rows: &[TraceRow]) -> Result<()> {
    crate::atomic::write_file(path, trace_csv(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load_table, TableSpec, DETAIL_COLUMNS};
    use crate::destination_rule::IstioDuration;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fortio")
    }

    fn rules() -> TrafficRules {
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

    #[test]
    fn durations_parse_strictly() {
        assert_eq!(IstioDuration::parse("500ms"), Ok(0.5));
        assert_eq!(IstioDuration::parse("1s"), Ok(1.0));
        assert_eq!(IstioDuration::parse("3m"), Ok(180.0));
        assert_eq!(IstioDuration::parse("1h"), Ok(3600.0));
        assert_eq!(IstioDuration::parse("1.5s"), Ok(1.5));
        for bad in ["", "1", "s", "1d", "1us", "1 s", "-1s", "1.s", ".5s", "1.2.3s", "0s", "1m30s", "1S"] {
            assert!(IstioDuration::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn durations_format_back_to_the_same_seconds() {
        for s in [30.0, 180.0, 0.5, 0.001, 1.5, 0.0005, 2.25, 0.1, 0.3, 7.123456789] {
            let text = IstioDuration::format(s);
            assert_eq!(IstioDuration::parse(&text), Ok(s), "{s} -> {text}");
        }
        assert_eq!(IstioDuration::format(30.0), "30s");
        assert_eq!(IstioDuration::format(0.5), "500ms");
    }

    #[test]
    fn destination_rule_round_trips_through_yaml() {
        let rule = DestinationRule::new("meshrl-s1-1", "productpage", &rules()).unwrap();
        let yaml = rule.to_yaml().unwrap();
        assert!(yaml.contains("interval: 500ms") && yaml.contains("baseEjectionTime: 180s"), "{yaml}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yaml");
        std::fs::write(&path, &yaml).unwrap();
        assert_eq!(read_destination_rule(&path).unwrap(), rules());
        let odd = TrafficRules { max_ejection_percent: 33.5, ..rules() };
        assert!(DestinationRule::new("x", "h", &odd).is_err());
    }

    #[test]
    fn reads_the_fixture_results_and_rules() {
        let run = read_fortio(&fixtures().join("run_a.json")).unwrap();
        assert_eq!((run.threads, run.calls), (3, 30));
        assert!((run.failure_rate - 0.4).abs() < 1e-12, "{run:?}");
        assert!((run.latency_p50_ms - 2.375).abs() < 1e-9, "{run:?}");
        assert!(run.latency_p50_ms <= run.latency_p90_ms && run.latency_p90_ms <= run.latency_p99_ms);
        let rows = ingest_fortio(&fixtures(), None).unwrap();
        assert_eq!(rows.len(), 3);
        let names: Vec<&str> = rows.iter().map(|r| r.result.as_str()).collect();
        assert_eq!(names, ["run_a.json", "run_b.json", "run_c.json"], "sorted by file name");
        let by_manifest = ingest_fortio(&fixtures(), Some(&fixtures().join("manifest.csv"))).unwrap();
        assert_eq!(rows, by_manifest, "the manifest says what the YAML files say");
    }

    #[test]
    fn the_written_trace_loads_as_a_protocol_file() {
        for c in FORTIO_DETAIL_COLUMNS {
            assert!(DETAIL_COLUMNS.contains(&c), "{c} is not a known detail column");
        }
        let rows = ingest_fortio(&fixtures(), None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("trace.csv");
        write_trace(&out, &rows).unwrap();
        let table = load_table(&out, &TableSpec::default()).unwrap();
        assert_eq!(table.n_rows(), 3);
        assert_eq!(&table.feature_row(0)[..7], &rows[0].rules.to_features());
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_manifest_with_an_unknown_column_is_refused() {
        let good = std::fs::read_to_string(fixtures().join("manifest.csv")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        assert!(read_manifest_rows(&write(dir.path(), "m.csv", &good)).is_ok());
        let mut lines = good.lines().map(str::to_string).collect::<Vec<_>>();
        lines[0] += ",max_conections";
        for l in lines.iter_mut().skip(1) {
            *l += ",5";
        }
        let err = read_manifest_rows(&write(dir.path(), "m.csv", &(lines.join("\n") + "\n"))).unwrap_err().to_string();
        assert!(err.contains("m.csv") && err.contains("unknown column `max_conections`"), "{err}");
    }

    #[test]
    fn a_duplicate_key_is_found_with_its_path() {
        assert_eq!(duplicate_key(r#"{"a": 1, "b": {"c": [1, {"d": 1, "d": 2}]}}"#), Some("b.c.d".to_string()));
        assert_eq!(duplicate_key(r#"{"a": 1, "b": {"a": 2}}"#), None);
    }

    #[test]
    fn bad_results_name_the_file_and_field() {
        let good = std::fs::read_to_string(fixtures().join("run_a.json")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (good.replace("\"ActualQPS\"", "\"ActualQps\""), "ActualQPS"),
            (good.replace("\"NumThreads\": 3", "\"NumThreads\": \"3\""), "NumThreads"),
            (good.replace("\"Percentile\": 90,", "\"Percentile\": 95,"), "DurationHistogram.Percentiles"),
            (good.replace("\"503\": 12", "\"UNAVAILABLE\": 12"), "RetCodes"),
            ("[1, 2]".to_string(), "not a Fortio result"),
            // Issue 25, item 8: what no real run can hold.
            (good.replace("\"503\": 12", "\"703\": 12"), "RetCodes"),
            (good.replace("\"NumThreads\": 3", "\"NumThreads\": 31"), "NumThreads"),
            (good.replacen("\"ActualQPS\": ", "\"ActualQPS\": 0, \"Ignored\": ", 1), "ActualQPS"),
            (good.replacen("\"ActualQPS\": ", "\"ActualQPS\": 1e308, \"Ignored\": ", 1), "ActualQPS"),
            (good.replacen("{", "{\"NumThreads\": 3,", 1), "`NumThreads` appears twice"),
        ];
        for (text, needle) in cases {
            let path = write(dir.path(), "bad.json", &text);
            let err = read_fortio(&path).unwrap_err().to_string();
            assert!(err.contains("bad.json") && err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn bad_rules_name_the_file_and_field() {
        let good = std::fs::read_to_string(fixtures().join("run_a.yaml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (good.replace("interval: 1s", "interval: 1d"), "interval"),
            (good.replace("interval: 1s", "interval: 1"), "interval"),
            // A connection-pool setting the trace has no column for.
            (good.replace("maxConnections: 1", "maxConnections: 1\n        idleTimeout: 30s"), "idleTimeout"),
            (good.replace("maxConnections: 1", "maxConnections: 1\n        connectTimeout: 30"), "connectTimeout"),
            (good.replace("maxEjectionPercent: 100", "maxEjectionPercent: 101"), "maxEjectionPercent"),
            (good.replace("maxEjectionPercent: 100", "maxEjectionPercent: many"), "maxEjectionPercent"),
            (good.replace("consecutive5xxErrors: 1", "consecutive5xxErrors: 0"), "consecutive5xxErrors"),
            (good.replace("kind: DestinationRule", "kind: VirtualService"), "kind"),
        ];
        for (text, needle) in cases {
            assert_ne!(text, good, "{needle}: the replacement did not apply");
            let path = write(dir.path(), "bad.yaml", &text);
            let err = read_destination_rule(&path).unwrap_err().to_string();
            assert!(err.contains("bad.yaml") && err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn bad_manifests_name_the_file_row_and_column() {
        let good = std::fs::read_to_string(fixtures().join("manifest.csv")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut lines: Vec<String> = good.lines().map(String::from).collect();
        lines[2] = lines[2].replacen(",8,", ",0,", 1);
        let path = write(dir.path(), "m.csv", &lines.join("\n"));
        let err = read_manifest(&path).unwrap_err().to_string();
        assert!(err.contains("m.csv") && err.contains("row 2") && err.contains("max_pending_requests"), "{err}");
        let path = write(dir.path(), "m.csv", &good.replace("interval_s", "interval"));
        let err = read_manifest(&path).unwrap_err().to_string();
        assert!(err.contains("m.csv") && err.contains("interval_s"), "{err}");
        // A result the manifest does not list.
        let only_two: Vec<&str> = good.lines().take(3).collect();
        let path = write(dir.path(), "m.csv", &only_two.join("\n"));
        let err = ingest_fortio(&fixtures(), Some(&path)).unwrap_err().to_string();
        assert!(err.contains("m.csv") && err.contains("result") && err.contains("run_c.json"), "{err}");
    }

    fn refused(name: &str) -> PathBuf {
        fixtures().join("refused").join(name)
    }

    #[track_caller]
    fn assert_refused(path: &Path, needles: &[&str]) {
        let err = read_fortio(path).unwrap_err().to_string();
        for n in needles {
            assert!(err.contains(n), "should name {n:?}: {err}");
        }
    }

    #[test]
    fn refuses_results_of_another_regime_naming_the_field() {
        // Fortio 0.9.0's gRPC ping sample: RetCodes {"1": 40} is 40 SERVING, not 40 failures.
        assert_refused(&refused("grpc_ping.json"), &["grpc_ping.json", "RunType", "GRPC Ping"]);
        // An HTTP run at -qps 8: a fixed rate, not the closed loop of a trace row.
        assert_refused(&refused("fixed_rate.json"), &["fixed_rate.json", "RequestedQPS", "8"]);
        let good = std::fs::read_to_string(fixtures().join("run_a.json")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            // A timed run (-t 30s): its call count is an outcome.
            (good.replace("\"Exactly\": 30", "\"Exactly\": 0").replace("exactly 30 calls", "30s"), &["Exactly", "30s"][..]),
            // An interrupted run: 30 of 40 calls made.
            (good.replace("\"Exactly\": 30", "\"Exactly\": 40"), &["DurationHistogram.Count", "30", "40"][..]),
            (good.replace("\"RunType\": \"HTTP\"", "\"RunType\": \"TCP\""), &["RunType", "TCP"][..]),
            (good.replace("\"RequestedQPS\": \"max\"", "\"RequestedQPS\": 8"), &["RequestedQPS"][..]),
            (good.replace("  \"RequestedQPS\": \"max\",\n", ""), &["RequestedQPS", "missing"][..]),
            (good.replace("  \"Exactly\": 30,\n", ""), &["Exactly", "missing"][..]),
        ];
        for (text, needles) in cases {
            assert_ne!(text, good, "{needles:?}: the replacement did not apply");
            assert_refused(&write(dir.path(), "bad.json", &text), &[&["bad.json"], needles].concat());
        }
        // "max" or 0 is the closed loop of -qps 0.
        for qps in ["\"0\"", "0", "\"max\""] {
            let text = good.replace("\"RequestedQPS\": \"max\"", &format!("\"RequestedQPS\": {qps}"));
            assert!(read_fortio(&write(dir.path(), "ok.json", &text)).is_ok(), "{qps}");
        }
    }

    #[test]
    fn ret_codes_must_count_each_call_once() {
        let good = std::fs::read_to_string(fixtures().join("run_a.json")).unwrap();
        let codes = "\"200\": 18,\n    \"503\": 12";
        assert!(good.contains(codes));
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            // Wrapping sums made this a failure rate of 2.0.
            ("\"200\": 18446744073709551615, \"503\": 2", &["RetCodes", "2^64"][..]),
            ("\"200\": 18446744073709551615", &["RetCodes", "DurationHistogram.Count"][..]),
            ("\"200\": 3600, \"503\": 2400", &["RetCodes", "6000", "DurationHistogram.Count", "30"][..]),
            ("\"200\": 18, \"503\": 11", &["RetCodes", "29", "DurationHistogram.Count"][..]),
            // gRPC status codes in an HTTP-labelled result.
            ("\"1\": 30", &["RetCodes", "`1`"][..]),
            ("\"200\": 18, \"0\": 12", &["RetCodes", "`0`"][..]),
            ("\"200\": 18, \"-2\": 12", &["RetCodes", "`-2`"][..]),
        ];
        for (replacement, needles) in cases {
            let path = write(dir.path(), "bad.json", &good.replace(codes, replacement));
            assert_refused(&path, &[&["bad.json"], needles].concat());
        }
        // Socket errors (-1) and any three-digit status are one call each.
        let path = write(dir.path(), "ok.json", &good.replace(codes, "\"200\": 18, \"-1\": 2, \"429\": 9, \"599\": 1"));
        let run = read_fortio(&path).unwrap();
        assert!((run.failure_rate - 0.4).abs() < 1e-12, "{run:?}");
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let json = std::fs::read_to_string(fixtures().join("run_a.json")).unwrap();
        let path = write(dir.path(), "bom.json", &format!("\u{feff}{json}"));
        assert_eq!(read_fortio(&path).unwrap(), read_fortio(&fixtures().join("run_a.json")).unwrap());
        let manifest = std::fs::read_to_string(fixtures().join("manifest.csv")).unwrap();
        let path = write(dir.path(), "bom.csv", &format!("\u{feff}{manifest}"));
        assert_eq!(read_manifest(&path).unwrap(), read_manifest(&fixtures().join("manifest.csv")).unwrap());
        // Anything else that is not JSON still says so.
        let path = write(dir.path(), "bad.json", &format!("\u{feff}\u{feff}{json}"));
        assert_refused(&path, &["bad.json", "not a JSON file"]);
    }

    #[test]
    fn subset_circuit_breakers_are_refused_naming_the_subset() {
        let err = read_destination_rule(&refused("subset_policy.yaml")).unwrap_err().to_string();
        assert!(
            err.contains("subset_policy.yaml") && err.contains("spec.subsets[1].trafficPolicy.connectionPool") && err.contains("`v2`"),
            "{err}"
        );
        let good = std::fs::read_to_string(fixtures().join("run_a.yaml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let with_subsets = |policy: &str| format!("{good}  subsets:\n  - name: v1\n    labels:\n      version: v1\n{policy}");
        let cases = [
            ("    trafficPolicy:\n      outlierDetection:\n        consecutive5xxErrors: 7\n", "spec.subsets[0].trafficPolicy.outlierDetection"),
            (
                "    trafficPolicy:\n      portLevelSettings:\n      - port:\n          number: 8000\n        connectionPool:\n          tcp:\n            maxConnections: 9\n",
                "spec.subsets[0].trafficPolicy.portLevelSettings",
            ),
            // The load balancer is a rule setting the trace records (issue 15).
            ("    trafficPolicy:\n      loadBalancer:\n        simple: LEAST_REQUEST\n", "spec.subsets[0].trafficPolicy.loadBalancer"),
        ];
        for (policy, needle) in cases {
            let path = write(dir.path(), "bad.yaml", &with_subsets(policy));
            let err = read_destination_rule(&path).unwrap_err().to_string();
            assert!(err.contains("bad.yaml") && err.contains(needle), "{needle}: {err}");
        }
        // Subsets that leave the rule's settings alone change nothing the trace records.
        // (A subset's load balancer equal to the rule's, round robin here, is no override.)
        for policy in [
            "",
            "    trafficPolicy:\n      tls:\n        mode: ISTIO_MUTUAL\n",
            "    trafficPolicy:\n      loadBalancer:\n        simple: ROUND_ROBIN\n",
        ] {
            let path = write(dir.path(), "ok.yaml", &with_subsets(policy));
            assert_eq!(read_destination_rule(&path).unwrap(), read_destination_rule(&fixtures().join("run_a.yaml")).unwrap());
        }
    }

    /// `rules()` with every setting beyond the seven away from its default.
    fn every_setting() -> TrafficRules {
        TrafficRules {
            http2_max_requests: Some(16),
            max_retries: Some(2),
            connect_timeout_ms: 500.0,
            load_balancer: crate::rules::LoadBalancer::LeastRequest,
            retries: crate::rules::RetryPolicy::istio_default(),
            ..rules()
        }
    }

    #[test]
    fn the_virtual_service_and_the_other_rule_settings_reach_the_trace() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["run_a.json", "run_a.yaml", "run_b.json"] {
            std::fs::copy(fixtures().join(f), dir.path().join(f)).unwrap();
        }
        let b = every_setting();
        write(dir.path(), "run_b.yaml", &DestinationRule::new("b", "httpbin", &b).unwrap().to_yaml().unwrap());
        let vs = VirtualService::new("b", "httpbin", &b.retries).unwrap().to_yaml().unwrap();
        write(dir.path(), "run_b.virtual-service.yaml", &vs);
        let rows = ingest_fortio(dir.path(), None).unwrap();
        assert_eq!(rows[0].rules, read_destination_rule(&fixtures().join("run_a.yaml")).unwrap());
        assert_eq!(rows[1].rules, b);
        // The optional columns follow the seven, and load back as the same rules.
        let csv = trace_csv(&rows);
        let header: Vec<&str> = RULE_COLUMNS
            .iter()
            .chain(&KNOB_COLUMNS)
            .chain(&LOAD_COLUMNS)
            .chain(&RESPONSE_COLUMNS)
            .chain(&FORTIO_DETAIL_COLUMNS)
            .copied()
            .collect();
        assert_eq!(csv.lines().next().unwrap(), header.join(","));
        let out = write(dir.path(), "trace.csv", &csv);
        let table = load_table(&out, &TableSpec::default()).unwrap();
        assert_eq!(table.traffic_rules(0), rows[0].rules);
        assert_eq!(table.traffic_rules(1), b);
        // Rules of the seven alone: the trace as before, without them.
        let old: Vec<&str> =
            RULE_COLUMNS.iter().chain(&LOAD_COLUMNS).chain(&RESPONSE_COLUMNS).chain(&FORTIO_DETAIL_COLUMNS).copied().collect();
        assert_eq!(trace_csv(&rows[..1]).lines().next().unwrap(), old.join(","));
        // A manifest with the optional columns says the same as the YAML files.
        let mut manifest = format!("result,{},{}\n", RULE_COLUMNS.join(","), KNOB_COLUMNS.join(","));
        for r in &rows {
            manifest += &format!("{},{},{}\n", r.result, r.rules.csv_fields(), r.rules.knob_csv_fields());
        }
        let m = write(dir.path(), "m.csv", &manifest);
        assert_eq!(ingest_fortio(dir.path(), Some(&m)).unwrap(), rows);
        let bad = manifest.replace(",ROUND_ROBIN,", ",SOMETIMES,");
        let err = read_manifest(&write(dir.path(), "m.csv", &bad)).unwrap_err().to_string();
        assert!(err.contains("m.csv") && err.contains("row 1") && err.contains("load_balancer") && err.contains("SOMETIMES"), "{err}");
        // A bad VirtualService is named with its field.
        write(dir.path(), "run_b.virtual-service.yaml", &vs.replace("retryOn: connect-failure,", "retryOn: sometimes,"));
        let err = ingest_fortio(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("run_b.virtual-service.yaml") && err.contains("spec.http[0].retries.retryOn"), "{err}");
    }

    #[test]
    fn a_rule_bundle_folder_ingests_under_its_rules() {
        let dir = tempfile::tempdir().unwrap();
        let loads = [crate::rules::Load { threads: 3, calls: 30 }];
        crate::export::write_rule_bundle(dir.path(), "meshrl-b", "httpbin", &every_setting(), &loads).unwrap();
        std::fs::copy(fixtures().join("run_a.json"), dir.path().join("load_1.json")).unwrap();
        let rows = ingest_fortio(dir.path(), None).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].rules, every_setting());
        // A result's own `<stem>.yaml` comes first.
        std::fs::copy(fixtures().join("run_a.yaml"), dir.path().join("load_1.yaml")).unwrap();
        assert_eq!(ingest_fortio(dir.path(), None).unwrap()[0].rules, read_destination_rule(&fixtures().join("run_a.yaml")).unwrap());
    }

    #[test]
    fn manifest_rows_without_a_result_are_named_in_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixtures().join("run_b.json"), dir.path().join("run_b.json")).unwrap();
        let manifest = fixtures().join("manifest.csv");
        let got = ingest(dir.path(), Some(&manifest)).unwrap();
        assert_eq!(got.rows.len(), 1);
        assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
        let w = &got.warnings[0];
        assert!(w.contains("manifest.csv") && w.contains("2 of 3 rows") && w.contains("row 1 (run_a.json), row 3 (run_c.json)"), "{w}");
        // Every row present: no warning.
        assert!(ingest(&fixtures(), Some(&manifest)).unwrap().warnings.is_empty());
    }
}

//! Loading a trace file (CSV or Parquet) into row-major feature and target buffers, checking
//! every value on the way so that a bad file fails with its file, row and column named.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use polars::prelude::*;

use super::spec::{Domain, TableSpec, DETAIL_COLUMNS};
use crate::error::{Error, Result};
use crate::rules::{knob_field_of, TrafficRules, KNOB_COLUMNS};

/// A loaded, checked trace table.
///
/// Features and targets are dense row-major `f64` buffers (row `i` is contiguous), ready to
/// hand to a tensor as `(n_rows, n_features)` without a transpose. The full file, detail
/// columns included, stays available as a typed Polars frame.
#[derive(Debug, Clone)]
pub struct TraceTable {
    path: PathBuf,
    feature_names: Vec<String>,
    target_names: Vec<String>,
    features: Vec<f64>,
    targets: Vec<f64>,
    n_rows: usize,
    frame: DataFrame,
    /// Per row, the settings of the optional rule columns ([`KNOB_COLUMNS`]) of a protocol
    /// file (the seven rules left at their defaults); `None` when it has none of them.
    knobs: Option<Vec<TrafficRules>>,
}

impl TraceTable {
    /// The file the table was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }
    pub fn target_names(&self) -> &[String] {
        &self.target_names
    }
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }
    pub fn n_targets(&self) -> usize {
        self.target_names.len()
    }
    /// All features, row-major: `n_rows * n_features` values.
    pub fn features(&self) -> &[f64] {
        &self.features
    }
    /// All targets, row-major: `n_rows * n_targets` values.
    pub fn targets(&self) -> &[f64] {
        &self.targets
    }

    /// The features of row `i` (0-based).
    ///
    /// # Panics
    /// If `i >= n_rows()`, like slice indexing.
    pub fn feature_row(&self, i: usize) -> &[f64] {
        let d = self.n_features();
        &self.features[i * d..(i + 1) * d]
    }

    /// The targets of row `i` (0-based).
    ///
    /// # Panics
    /// If `i >= n_rows()`, like slice indexing.
    pub fn target_row(&self, i: usize) -> &[f64] {
        let t = self.n_targets();
        &self.targets[i * t..(i + 1) * t]
    }

    /// The traffic rules of row `i` (0-based) of a protocol table: the seven rule columns
    /// (the first seven features) with the optional rule columns ([`KNOB_COLUMNS`]) where the
    /// file has them, their defaults where it does not. Not model inputs: the simulators see
    /// only the features.
    ///
    /// # Panics
    /// If `i >= n_rows()`, or the table has fewer than seven features.
    pub fn traffic_rules(&self, i: usize) -> TrafficRules {
        let x = self.feature_row(i);
        match &self.knobs {
            Some(knobs) => TrafficRules::from_features_and_knobs(x, &knobs[i]),
            None => TrafficRules::from_features(x),
        }
    }

    /// Whether the file has any of the optional rule columns ([`KNOB_COLUMNS`]).
    pub fn has_knob_columns(&self) -> bool {
        self.knobs.is_some()
    }

    /// The features of the given rows, row-major, in the given order (e.g. a training split).
    ///
    /// # Panics
    /// If a row index is out of range.
    pub fn gather_features(&self, rows: &[usize]) -> Vec<f64> {
        rows.iter().flat_map(|&i| self.feature_row(i)).copied().collect()
    }

    /// The targets of the given rows, row-major, in the given order.
    ///
    /// # Panics
    /// If a row index is out of range.
    pub fn gather_targets(&self, rows: &[usize]) -> Vec<f64> {
        rows.iter().flat_map(|&i| self.target_row(i)).copied().collect()
    }

    /// Every column of the file, typed: columns whose cells are all numbers are Int64, UInt64
    /// or Float64, anything else keeps the file's type.
    pub fn frame(&self) -> &DataFrame {
        &self.frame
    }

    /// Any numeric column (feature, target or detail) as `f64`, for summaries. `None` when the
    /// column is absent or not numeric; a null cell (possible only in an unchecked extra
    /// column of a custom spec) reads as NaN.
    pub fn column_f64(&self, name: &str) -> Option<Vec<f64>> {
        let column = self.frame.column(name).ok()?;
        if !column.dtype().is_numeric() {
            return None;
        }
        let cast = column.cast(&DataType::Float64).ok()?;
        let values = cast.f64().ok()?;
        Some(values.iter().map(|x| x.unwrap_or(f64::NAN)).collect())
    }
}

/// Loads a trace table from a `.csv` or `.parquet` file and checks it against `spec`.
///
/// Every required column must hold finite numbers in every row. With the protocol spec,
/// values must also lie in their protocol ranges and the file may carry only the protocol
/// and known detail columns ([`DETAIL_COLUMNS`]); with a custom spec, extra columns are kept
/// unchecked. Errors name the file, the 1-based data row and the column; when several cells
/// are bad, the earliest row is reported.
pub fn load_table(path: &Path, spec: &TableSpec) -> Result<TraceTable> {
    spec.validate()?;
    let raw = read_frame(path)?;
    if raw.height() == 0 {
        return Err(Error::file(path, "the file has a header but no data rows"));
    }
    check_column_names(path, &raw, spec)?;

    let checked = check_values(path, &raw, spec)?;
    let knobs = if spec.is_protocol() { knob_rows(path, &raw)? } else { None };
    let column = |name: &str| checked.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice());
    let n_rows = raw.height();
    let features = row_major(n_rows, spec.features.iter().filter_map(|n| column(n)));
    let targets = row_major(n_rows, spec.targets.iter().filter_map(|n| column(n)));

    Ok(TraceTable {
        path: path.to_path_buf(),
        feature_names: spec.features.clone(),
        target_names: spec.targets.clone(),
        features,
        targets,
        n_rows,
        frame: typed_frame(path, raw)?,
        knobs,
    })
}

/// The file formats a trace may come in, told apart by extension.
enum Format {
    Csv,
    Parquet,
}

impl Format {
    fn of(path: &Path) -> Result<Format> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("parquet") => Ok(Format::Parquet),
            _ => Err(Error::file(path, "unsupported file type: expected a .csv or .parquet file")),
        }
    }
}

/// Reads the whole file. CSV cells are all read as text so that each cell can be parsed
/// (and a bad one reported with its row) here rather than by Polars' type inference.
fn read_frame(path: &Path) -> Result<DataFrame> {
    let format = Format::of(path)?;
    if path.is_dir() {
        return Err(Error::file(path, "cannot read: it is a directory"));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::file(path, "the file is empty"));
    }
    let polars_error = |e: PolarsError| match format {
        Format::Csv => Error::file(path, format!("not a readable CSV file: {e}")),
        Format::Parquet => Error::file(path, format!("not a readable Parquet file: {e}")),
    };
    match format {
        Format::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .into_reader_with_file_handle(Cursor::new(check_csv_lines(path, bytes)?))
            .finish()
            .map_err(polars_error),
        Format::Parquet => ParquetReader::new(Cursor::new(bytes)).finish().map_err(polars_error),
    }
}

/// Checks what Polars would report without a row: each line is UTF-8, the header names each
/// column once, every data row has the header's number of fields (a file with quotes is left
/// to the CSV parser: a quoted field may hold commas and line breaks) and none is blank.
/// Blank lines at the end are dropped.
fn check_csv_lines(path: &Path, mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    let quoted = bytes.contains(&b'"');
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    bytes.truncate(end);
    bytes.push(b'\n');
    let mut width = 0;
    for (i, line) in bytes[..end].split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let where_ = || if i == 0 { "the header".to_string() } else { format!("row {i}") };
        let text = std::str::from_utf8(line)
            .map_err(|e| Error::file(path, format!("{}: not UTF-8 text (byte {})", where_(), e.valid_up_to() + 1)))?;
        if i == 0 {
            let names: Vec<&str> = text.split(',').map(|n| n.trim().trim_matches('"')).collect();
            if let Some((k, name)) = names.iter().enumerate().find(|(k, n)| names[..*k].contains(n)) {
                let first = names.iter().position(|n| n == name).unwrap_or(0) + 1;
                return Err(Error::file(path, format!("the header names column `{name}` twice (fields {first} and {})", k + 1)));
            }
            width = names.len();
        } else if quoted {
            break;
        } else if text.trim().is_empty() {
            return Err(Error::file(path, format!("row {i} is blank")));
        } else if text.split(',').count() != width {
            return Err(Error::file(path, format!("row {i} has {} fields, the header has {width}", text.split(',').count())));
        }
    }
    Ok(bytes)
}

/// Every required column must be present; a protocol file may carry only known columns.
fn check_column_names(path: &Path, frame: &DataFrame, spec: &TableSpec) -> Result<()> {
    let present: Vec<&str> = frame.get_column_names().into_iter().map(|n| n.as_str()).collect();
    let listing = || present.join(", ");
    if let Some(missing) = spec.required_columns().find(|name| !present.contains(name)) {
        return Err(Error::file(path, format!("missing required column `{missing}`; the file has: {}", listing())));
    }
    if spec.is_protocol() {
        let known =
            |name: &str| spec.required_columns().any(|r| r == name) || DETAIL_COLUMNS.contains(&name) || KNOB_COLUMNS.contains(&name);
        if let Some(unknown) = present.iter().find(|name| !known(name)) {
            return Err(Error::file(
                path,
                format!(
                    "unknown column `{unknown}`: a protocol trace has only the columns {}, \
                     the detail columns {} and the optional rule columns {}",
                    spec.required_columns().collect::<Vec<_>>().join(", "),
                    DETAIL_COLUMNS.join(", "),
                    KNOB_COLUMNS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Parses and checks every column that must be numeric (required columns, and detail columns
/// of a protocol file), in file order. Returns the values of each checked column, or the
/// error of the earliest bad row (leftmost column on a tie).
fn check_values(path: &Path, frame: &DataFrame, spec: &TableSpec) -> Result<Vec<(String, Vec<f64>)>> {
    let protocol = spec.is_protocol();
    let mut checked = Vec::new();
    let mut earliest: Option<(usize, Error)> = None;
    for column in frame.columns() {
        let name = column.name().as_str();
        let required = spec.required_columns().any(|r| r == name);
        let domain = match (required, protocol) {
            (true, true) => Domain::of_protocol_column(name),
            (true, false) => Domain::Finite,
            // The optional rule columns have their own reader ([`knob_rows`]).
            (false, true) if KNOB_COLUMNS.contains(&name) => continue,
            // In a protocol file every other column is a known (numeric) detail column.
            (false, true) => Domain::Finite,
            (false, false) => continue,
        };
        match column_values(path, column, domain) {
            Ok(values) => checked.push((name.to_string(), values)),
            Err(err) => {
                // A whole-column problem (wrong type) sorts before any row.
                let row = match &err {
                    Error::Field { row, .. } => *row,
                    _ => 0,
                };
                if earliest.as_ref().is_none_or(|(best, _)| row < *best) {
                    earliest = Some((row, err));
                }
            }
        }
    }
    match earliest {
        Some((_, err)) => Err(err),
        None => Ok(checked),
    }
}

/// The values of one numeric column, each parsed (text) or cast (numeric types), checked to
/// be present and finite, and within `domain`.
fn column_values(path: &Path, column: &Column, domain: Domain) -> Result<Vec<f64>> {
    let name = column.name().as_str();
    let check = |row: usize, cell: Option<f64>| -> Result<f64> {
        let x = cell.ok_or_else(|| Error::field(path, row, name, "empty cell (missing value)"))?;
        if x.is_nan() {
            return Err(Error::field(path, row, name, "value is NaN"));
        }
        if x.is_infinite() {
            return Err(Error::field(path, row, name, format!("value is infinite ({x})")));
        }
        // The models compute in f32: a value beyond its range would become infinite there.
        if x.abs() > f64::from(f32::MAX) {
            return Err(Error::field(path, row, name, format!("value {x:e} is beyond the f32 range (about 3.4e38) the models compute in")));
        }
        match domain.violation(x) {
            Some(why) => Err(Error::field(path, row, name, why)),
            None => Ok(x),
        }
    };
    let polars_error = |e: PolarsError| Error::file(path, format!("column `{name}`: {e}"));

    match column.dtype() {
        DataType::String => {
            let cells = column.str().map_err(polars_error)?;
            let mut values = Vec::with_capacity(cells.len());
            for (i, cell) in cells.iter().enumerate() {
                let row = i + 1;
                let parsed = match non_blank(cell) {
                    None => None,
                    Some(text) => {
                        Some(text.parse::<f64>().map_err(|_| Error::field(path, row, name, format!("`{text}` is not a number")))?)
                    }
                };
                values.push(check(row, parsed)?);
            }
            Ok(values)
        }
        dtype if dtype.is_numeric() => {
            let cast = column.cast(&DataType::Float64).map_err(polars_error)?;
            let cells = cast.f64().map_err(polars_error)?;
            cells.iter().enumerate().map(|(i, cell)| check(i + 1, cell)).collect()
        }
        dtype => Err(Error::file(path, format!("column `{name}` holds values of type {dtype}, expected numbers"))),
    }
}

/// The settings of the optional rule columns ([`KNOB_COLUMNS`]) of a protocol file, one rule
/// per row, or `None` when the file has none of them. A column the file lacks keeps its
/// default. Each cell is read by [`TrafficRules::set_knob`], then each row's settings are
/// checked together ([`TrafficRules::validate_knobs`]); the first bad row (leftmost column)
/// is the error, naming the file, row and column.
fn knob_rows(path: &Path, frame: &DataFrame) -> Result<Option<Vec<TrafficRules>>> {
    let mut columns = Vec::new();
    for column in frame.columns() {
        let name = column.name().as_str();
        if KNOB_COLUMNS.contains(&name) {
            columns.push((name, cell_texts(path, column)?));
        }
    }
    if columns.is_empty() {
        return Ok(None);
    }
    let mut rows = Vec::with_capacity(frame.height());
    for i in 0..frame.height() {
        let row = i + 1;
        let mut rules = TrafficRules::default();
        for (name, cells) in &columns {
            let text = cells[i].as_deref().ok_or_else(|| Error::field(path, row, *name, "empty cell (missing value)"))?;
            rules.set_knob(name, text).map_err(|why| Error::field(path, row, *name, why))?;
        }
        rules.validate_knobs().map_err(|why| match knob_field_of(&why) {
            Some((field, rest)) => Error::field(path, row, field.column, rest),
            None => Error::file(path, format!("row {row}: {why}")),
        })?;
        rows.push(rules);
    }
    Ok(Some(rows))
}

/// Every cell of a column as text (`None` for a blank or null cell): text as it is, numbers
/// as Rust writes them (whole numbers without a decimal point), booleans as `true`/`false`.
fn cell_texts(path: &Path, column: &Column) -> Result<Vec<Option<String>>> {
    let name = column.name().as_str();
    let polars_error = |e: PolarsError| Error::file(path, format!("column `{name}`: {e}"));
    match column.dtype() {
        DataType::String => Ok(column.str().map_err(polars_error)?.iter().map(|c| non_blank(c).map(str::to_string)).collect()),
        DataType::Boolean => Ok(column.bool().map_err(polars_error)?.iter().map(|c| c.map(|b| b.to_string())).collect()),
        dtype if dtype.is_numeric() => {
            let cast = column.cast(&DataType::Float64).map_err(polars_error)?;
            Ok(cast.f64().map_err(polars_error)?.iter().map(|c| c.map(|x| x.to_string())).collect())
        }
        dtype => Err(Error::file(path, format!("column `{name}` holds values of type {dtype}, expected numbers or names"))),
    }
}

/// A text cell with surrounding blanks removed; a blank cell counts as missing.
fn non_blank(cell: Option<&str>) -> Option<&str> {
    cell.map(str::trim).filter(|text| !text.is_empty())
}

/// Interleaves whole columns into one row-major buffer (row `i` = `columns[..][i]`).
fn row_major<'a>(n_rows: usize, columns: impl Iterator<Item = &'a [f64]>) -> Vec<f64> {
    let columns: Vec<&[f64]> = columns.collect();
    let width = columns.len();
    let mut buffer = vec![0.0; n_rows * width];
    for (j, column) in columns.iter().enumerate() {
        for (i, &x) in column.iter().enumerate() {
            buffer[i * width + j] = x;
        }
    }
    buffer
}

/// The frame with each all-numeric text column turned into its narrowest exact type (Int64,
/// then UInt64 for large seeds, then Float64), so detail columns can be summarised.
fn typed_frame(path: &Path, raw: DataFrame) -> Result<DataFrame> {
    let height = raw.height();
    let columns = raw.columns().iter().map(typed_column).collect();
    DataFrame::new(height, columns).map_err(|e| Error::file(path, format!("internal: {e}")))
}

fn typed_column(column: &Column) -> Column {
    let Ok(text) = column.str() else {
        return column.clone();
    };
    let cells: Vec<Option<&str>> = text.iter().map(non_blank).collect();
    if cells.iter().all(Option::is_none) {
        return column.clone();
    }
    let name = column.name().clone();
    if let Some(values) = parse_all::<i64>(&cells) {
        Column::new(name, values)
    } else if let Some(values) = parse_all::<u64>(&cells) {
        Column::new(name, values)
    } else if let Some(values) = parse_all::<f64>(&cells) {
        Column::new(name, values)
    } else {
        column.clone()
    }
}

/// Parses every non-missing cell, or gives up at the first that does not parse.
fn parse_all<T: FromStr>(cells: &[Option<&str>]) -> Option<Vec<Option<T>>> {
    cells
        .iter()
        .map(|cell| match cell {
            None => Some(None),
            Some(text) => text.parse().ok().map(Some),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{LOAD_COLUMNS, RESPONSE_COLUMNS, RULE_COLUMNS};
    use std::fs::File;

    /// The 11 protocol columns then two detail columns.
    fn header() -> Vec<&'static str> {
        let mut h: Vec<&str> = RULE_COLUMNS.to_vec();
        h.extend(LOAD_COLUMNS);
        h.extend(RESPONSE_COLUMNS);
        h.extend(["latency_mean_ms", "seed"]);
        h
    }

    /// Three valid data rows, one per slice, in [`header`] order.
    fn good_rows() -> Vec<Vec<String>> {
        let rows = [
            ["5", "3", "4", "180", "100", "1", "1", "2", "400", "250.5", "0.1", "3.2", "7"],
            ["6", "2", "7", "180", "100", "1", "1", "5", "450", "120", "0.25", "8.0", "8"],
            ["7", "7", "1", "180", "4.5", "1", "6", "1", "420", "300.25", "0", "1.5", "18446744073709551615"],
        ];
        rows.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect()
    }

    fn write_csv(dir: &Path, header: &[&str], rows: &[Vec<String>]) -> PathBuf {
        let mut text = header.join(",") + "\n";
        for row in rows {
            text += &(row.join(",") + "\n");
        }
        let path = dir.join("trace.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A valid protocol file except that data row `row` (1-based) has `value` in `column`.
    fn csv_with_cell(dir: &Path, column: &str, row: usize, value: &str) -> PathBuf {
        let header = header();
        let j = header.iter().position(|c| *c == column).unwrap();
        let mut rows = good_rows();
        rows[row - 1][j] = value.to_string();
        write_csv(dir, &header, &rows)
    }

    /// Loads a file that must fail, and checks the message names the file, row and column.
    fn assert_rejected(path: &Path, spec: &TableSpec, row: Option<usize>, column: Option<&str>) -> String {
        let err = load_table(path, spec).expect_err("the file should be rejected");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "no file in: {msg}");
        if let Some(row) = row {
            assert!(msg.contains(&format!("row {row},")), "no row {row} in: {msg}");
        }
        if let Some(column) = column {
            assert!(msg.contains(&format!("`{column}`")), "no column {column} in: {msg}");
        }
        msg
    }

    fn rejected_cell(column: &str, row: usize, value: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = csv_with_cell(dir.path(), column, row, value);
        assert_rejected(&path, &TableSpec::default(), Some(row), Some(column))
    }

    #[test]
    fn values_beyond_f32_are_rejected_with_row_and_column() {
        for (column, value) in [("qps", "1e308"), ("ejection_time_s", "3.5e38"), ("latency_mean_ms", "-1e300")] {
            let msg = rejected_cell(column, 2, value);
            assert!(msg.contains("f32"), "{msg}");
        }
    }

    /// Problems the CSV parser would report without a row, or not at all.
    #[test]
    fn csv_lines_are_checked_with_their_row() {
        let dir = tempfile::tempdir().unwrap();
        let good = write_csv(dir.path(), &header(), &good_rows());
        let text = std::fs::read_to_string(&good).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let cases = [
            // (file text, expected piece of the message)
            (text.replacen("calls", "threads", 1), "names column `threads` twice"),
            (
                format!("{}\n{}\n{}\n", lines[0], lines[1], &lines[2][..lines[2].rfind(',').unwrap()]),
                "row 2 has 12 fields, the header has 13",
            ),
            (format!("{}\n{}\n\n{}\n", lines[0], lines[1], lines[2]), "row 2 is blank"),
        ];
        for (content, expected) in cases {
            std::fs::write(&good, content).unwrap();
            let msg = load_table(&good, &TableSpec::default()).unwrap_err().to_string();
            assert!(msg.contains(expected) && msg.contains("trace.csv"), "{expected:?} not in: {msg}");
        }
        let mut bytes = text.clone().into_bytes();
        let at = text.find('\n').unwrap() + text[text.find('\n').unwrap() + 1..].find('\n').unwrap() + 3;
        bytes[at] = 0xff;
        std::fs::write(&good, bytes).unwrap();
        let msg = load_table(&good, &TableSpec::default()).unwrap_err().to_string();
        assert!(msg.contains("row 2: not UTF-8"), "{msg}");
        // Blank lines at the end, and Windows line ends, are fine.
        std::fs::write(&good, format!("{text}\n\n")).unwrap();
        assert_eq!(load_table(&good, &TableSpec::default()).unwrap().n_rows(), 3);
        std::fs::write(&good, text.replace('\n', "\r\n")).unwrap();
        assert_eq!(load_table(&good, &TableSpec::default()).unwrap().n_rows(), 3);
    }

    #[test]
    fn loads_a_protocol_csv_row_major() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_csv(dir.path(), &header(), &good_rows());
        let table = load_table(&path, &TableSpec::default()).unwrap();
        assert_eq!(table.n_rows(), 3);
        assert_eq!(table.n_features(), 9);
        assert_eq!(table.n_targets(), 2);
        assert_eq!(table.path(), path);
        assert_eq!(table.feature_row(0), [5.0, 3.0, 4.0, 180.0, 100.0, 1.0, 1.0, 2.0, 400.0]);
        assert_eq!(table.feature_row(2), [7.0, 7.0, 1.0, 180.0, 4.5, 1.0, 6.0, 1.0, 420.0]);
        assert_eq!(table.target_row(1), [120.0, 0.25]);
        assert_eq!(table.features().len(), 27);
        assert_eq!(table.gather_targets(&[2, 0]), [300.25, 0.0, 250.5, 0.1]);
        // Detail columns are kept, typed, and readable as f64.
        assert_eq!(table.frame().width(), 13);
        assert_eq!(table.column_f64("latency_mean_ms").unwrap(), [3.2, 8.0, 1.5]);
        assert_eq!(table.column_f64("threads").unwrap(), [2.0, 5.0, 1.0]);
        assert_eq!(table.frame().column("seed").unwrap().dtype(), &DataType::UInt64);
        assert_eq!(table.frame().column("calls").unwrap().dtype(), &DataType::Int64);
        assert!(table.column_f64("no_such_column").is_none());
    }

    /// [`good_rows`] with the optional rule columns `columns` set to `cells` (one per row).
    fn csv_with_knobs(dir: &Path, columns: &[&str], cells: &[&[&str]]) -> PathBuf {
        let mut h = header();
        h.extend(columns);
        let rows: Vec<Vec<String>> = good_rows()
            .into_iter()
            .zip(cells)
            .map(|(mut r, extra)| {
                r.extend(extra.iter().map(|c| c.to_string()));
                r
            })
            .collect();
        write_csv(dir, &h, &rows)
    }

    #[test]
    fn optional_rule_columns_read_with_defaults_where_absent() {
        let dir = tempfile::tempdir().unwrap();
        let columns = ["load_balancer", "http2_max_requests", "retry_attempts"];
        let cells: [&[&str]; 3] = [&["ROUND_ROBIN", "4294967295", "0"], &["LEAST_REQUEST", "8", "2"], &["RANDOM", "1", "0"]];
        let path = csv_with_knobs(dir.path(), &columns, &cells);
        let table = load_table(&path, &TableSpec::default()).unwrap();
        assert!(table.has_knob_columns());
        assert_eq!(table.n_features(), 9, "not model inputs");
        assert_eq!(table.traffic_rules(0), TrafficRules::from_features(table.feature_row(0)));
        let second = table.traffic_rules(1);
        assert_eq!(second.to_features(), table.feature_row(1)[..7]);
        assert_eq!(second.load_balancer, crate::rules::LoadBalancer::LeastRequest);
        assert_eq!(second.http2_max_requests, Some(8));
        // Only the attempts column: the rest of the policy is the default's (Istio's conditions).
        assert_eq!(second.retries, crate::rules::RetryPolicy { attempts: 2, ..crate::rules::RetryPolicy::off() });
        assert_eq!(second.connect_timeout_ms, 10_000.0);
        // Text columns are kept as text, and left out of numeric summaries.
        assert!(table.column_f64("load_balancer").is_none());
        assert_eq!(table.column_f64("retry_attempts").unwrap(), [0.0, 2.0, 0.0]);
        // A file without them reads as before.
        let plain = load_table(&write_csv(dir.path(), &header(), &good_rows()), &TableSpec::default()).unwrap();
        assert!(!plain.has_knob_columns());
        assert_eq!(plain.traffic_rules(2), TrafficRules::from_features(plain.feature_row(2)));
    }

    #[test]
    fn bad_optional_rule_cells_name_the_file_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        for (column, bad, needle) in [
            ("load_balancer", "PASSTHROUGH", "ROUND_ROBIN"),
            ("http2_max_requests", "0", "1..=4294967295"),
            ("retry_on_503", "2", "0 or 1"),
            ("connect_timeout_ms", "0.5", ">= 1"),
            ("retry_attempts", "", "empty cell"),
        ] {
            let good = if column == "load_balancer" { "RANDOM" } else { "1" };
            let cells: [&[&str]; 3] = [&[good], &[bad], &[good]];
            let path = csv_with_knobs(dir.path(), &[column], &cells);
            let msg = assert_rejected(&path, &TableSpec::default(), Some(2), Some(column));
            assert!(msg.contains(needle), "{column}: {msg}");
        }
    }

    #[test]
    fn loads_crlf_csv() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.csv");
        std::fs::write(&path, "x,y\r\n1,2\r\n3,4\r\n").unwrap();
        let spec = TableSpec { features: vec!["x".into()], targets: vec!["y".into()] };
        let table = load_table(&path, &spec).unwrap();
        assert_eq!(table.targets(), [2.0, 4.0]);
    }

    #[test]
    fn rejects_missing_column() {
        let dir = tempfile::tempdir().unwrap();
        let header: Vec<&str> = header().into_iter().filter(|c| *c != "calls").collect();
        let rows: Vec<Vec<String>> = good_rows()
            .into_iter()
            .map(|mut r| {
                r.remove(8);
                r
            })
            .collect();
        let path = write_csv(dir.path(), &header, &rows);
        let msg = assert_rejected(&path, &TableSpec::default(), None, Some("calls"));
        assert!(msg.contains("the file has: max_pending_requests"), "{msg}");
    }

    #[test]
    fn rejects_unknown_column() {
        let dir = tempfile::tempdir().unwrap();
        let mut header = header();
        header.push("colour");
        let rows: Vec<Vec<String>> = good_rows()
            .into_iter()
            .map(|mut r| {
                r.push("1".into());
                r
            })
            .collect();
        let path = write_csv(dir.path(), &header, &rows);
        assert_rejected(&path, &TableSpec::default(), None, Some("colour"));
    }

    #[test]
    fn rejects_non_numeric() {
        let msg = rejected_cell("qps", 2, "fast");
        assert!(msg.contains("`fast` is not a number"), "{msg}");
    }

    #[test]
    fn rejects_non_numeric_detail_column() {
        rejected_cell("latency_mean_ms", 3, "n/a");
    }

    #[test]
    fn rejects_non_integer_threads() {
        let msg = rejected_cell("threads", 2, "2.5");
        assert!(msg.contains("whole number"), "{msg}");
    }

    #[test]
    fn rejects_null() {
        let msg = rejected_cell("max_connections", 3, "");
        assert!(msg.contains("empty cell"), "{msg}");
    }

    #[test]
    fn rejects_nan() {
        let msg = rejected_cell("interval_s", 1, "NaN");
        assert!(msg.contains("NaN"), "{msg}");
    }

    #[test]
    fn rejects_infinite() {
        let msg = rejected_cell("latency_mean_ms", 2, "inf");
        assert!(msg.contains("infinite"), "{msg}");
    }

    #[test]
    fn rejects_failure_rate_above_one() {
        let msg = rejected_cell("failure_rate", 3, "1.5");
        assert!(msg.contains("0..=1"), "{msg}");
    }

    #[test]
    fn rejects_negative_qps() {
        rejected_cell("qps", 1, "-3");
    }

    #[test]
    fn rejects_ejection_percent_above_hundred() {
        rejected_cell("max_ejection_percent", 2, "120");
    }

    #[test]
    fn rejects_zero_ejection_time() {
        rejected_cell("ejection_time_s", 2, "0");
    }

    #[test]
    fn rejects_zero_threads() {
        let msg = rejected_cell("threads", 1, "0");
        assert!(msg.contains("1..="), "{msg}");
    }

    #[test]
    fn reports_the_earliest_bad_row_across_columns() {
        let dir = tempfile::tempdir().unwrap();
        let header = header();
        let mut rows = good_rows();
        rows[2][0] = "x".into(); // row 3, first column
        rows[1][10] = "2".into(); // row 2, failure_rate
        let path = write_csv(dir.path(), &header, &rows);
        assert_rejected(&path, &TableSpec::default(), Some(2), Some("failure_rate"));
    }

    #[test]
    fn rejects_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.csv");
        std::fs::write(&path, "").unwrap();
        let msg = assert_rejected(&path, &TableSpec::default(), None, None);
        assert!(msg.contains("empty"), "{msg}");
    }

    #[test]
    fn rejects_header_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_csv(dir.path(), &header(), &[]);
        let msg = assert_rejected(&path, &TableSpec::default(), None, None);
        assert!(msg.contains("no data rows"), "{msg}");
    }

    #[test]
    fn rejects_unreadable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.csv");
        let msg = assert_rejected(&path, &TableSpec::default(), None, None);
        assert!(msg.contains("cannot read"), "{msg}");
    }

    #[test]
    fn rejects_unsupported_extension() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.xlsx");
        std::fs::write(&path, "a,b\n1,2\n").unwrap();
        let msg = assert_rejected(&path, &TableSpec::default(), None, None);
        assert!(msg.contains(".csv or .parquet"), "{msg}");
    }

    #[test]
    fn custom_spec_keeps_extra_columns_unchecked() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![vec!["1".into(), "0.5".into(), "web".into(), "".into()], vec!["2".into(), "-7".into(), "db".into(), "3".into()]];
        let path = write_csv(dir.path(), &["x", "y", "name", "note"], &rows);
        let spec = TableSpec { features: vec!["x".into()], targets: vec!["y".into()] };
        let table = load_table(&path, &spec).unwrap();
        assert_eq!(table.features(), [1.0, 2.0]);
        assert_eq!(table.targets(), [0.5, -7.0]);
        assert!(table.column_f64("name").is_none());
        let note = table.column_f64("note").unwrap();
        assert!(note[0].is_nan() && note[1] == 3.0);
    }

    #[test]
    fn custom_spec_still_rejects_non_finite_values() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![vec!["1".into(), "0.5".into()], vec!["-inf".into(), "1".into()]];
        let path = write_csv(dir.path(), &["x", "y"], &rows);
        let spec = TableSpec { features: vec!["x".into()], targets: vec!["y".into()] };
        assert_rejected(&path, &spec, Some(2), Some("x"));
    }

    #[test]
    fn loads_parquet_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.parquet");
        let ints = |v: [i64; 2]| v.to_vec();
        let mut frame = DataFrame::new(
            2,
            vec![
                Column::new("max_pending_requests".into(), ints([5, 6])),
                Column::new("max_connections".into(), ints([3, 2])),
                Column::new("max_requests_per_connection".into(), ints([4, 7])),
                Column::new("ejection_time_s".into(), [180.0, 180.0]),
                Column::new("max_ejection_percent".into(), [100.0, 12.5]),
                Column::new("interval_s".into(), [1.0, 1.0]),
                Column::new("consecutive_errors".into(), ints([1, 4])),
                Column::new("threads".into(), ints([2, 5])),
                Column::new("calls".into(), ints([400, 450])),
                Column::new("qps".into(), [250.5, 120.0]),
                Column::new("failure_rate".into(), [0.1, 0.25]),
                Column::new("ok_count".into(), ints([360, 337])),
            ],
        )
        .unwrap();
        ParquetWriter::new(File::create(&path).unwrap()).finish(&mut frame).unwrap();

        let table = load_table(&path, &TableSpec::default()).unwrap();
        assert_eq!(table.n_rows(), 2);
        assert_eq!(table.feature_row(1), [6.0, 2.0, 7.0, 180.0, 12.5, 1.0, 4.0, 5.0, 450.0]);
        assert_eq!(table.target_row(0), [250.5, 0.1]);
        assert_eq!(table.column_f64("ok_count").unwrap(), [360.0, 337.0]);
        assert_eq!(table.frame(), &frame);
    }

    #[test]
    fn rejects_parquet_non_integer_calls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.parquet");
        let spec = TableSpec::default();
        let columns = spec
            .required_columns()
            .map(|name| {
                let values = if name == "calls" { [400.0, 400.5] } else { [1.0, 1.0] };
                Column::new(name.into(), values)
            })
            .collect();
        let mut frame = DataFrame::new(2, columns).unwrap();
        ParquetWriter::new(File::create(&path).unwrap()).finish(&mut frame).unwrap();
        assert_rejected(&path, &spec, Some(2), Some("calls"));
    }

    #[test]
    fn loads_shipped_datasets_with_protocol_spec() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets"));
        for (name, rows) in [("S1", 9302), ("S2", 12005), ("S3", 20592), ("S4", 12310), ("S5", 6970)] {
            let path = dir.join(format!("{name}.csv"));
            if !path.exists() {
                eprintln!("skipping: {} is absent", path.display());
                continue;
            }
            let table = load_table(&path, &TableSpec::default()).unwrap();
            assert_eq!(table.n_rows(), rows, "{name}");
            assert_eq!(table.frame().width(), 11 + DETAIL_COLUMNS.len(), "{name}");
        }
    }

    #[test]
    fn loads_tnsm2023_testbed_trace_with_custom_spec() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/external/tnsm2023/data.csv"));
        if !path.exists() {
            eprintln!("skipping: {} is absent", path.display());
            return;
        }
        let spec = TableSpec { features: ["max_l1", "l1", "cl1", "p1", "b1", "c1"].map(String::from).to_vec(), targets: vec!["d1".into()] };
        let table = load_table(path, &spec).unwrap();
        assert_eq!(table.n_rows(), 4500);
        assert_eq!(table.n_features(), 6);
        assert_eq!(table.n_targets(), 1);
        assert_eq!(table.feature_row(0), [1.0, 5.0, 5.0, 0.0, 1.0, 1.0]);
        assert!((table.target_row(0)[0] - 0.081_075_048_446_655_28).abs() < 1e-15);
        assert_eq!(table.frame().width(), 13);
        assert!(table.column_f64("drop1").is_some());
        // The protocol spec refuses the same file, naming a missing protocol column.
        assert_rejected(path, &TableSpec::default(), None, Some("max_pending_requests"));
    }
}

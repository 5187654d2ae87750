//! Trace data: the table schema, Polars loading of CSV and Parquet load-test traces with
//! checks that name the file, row and column of any bad value, the seeded train/test split,
//! z-score normalisers, and the two together ([`prepare`]) (protocol.md sections 1 and 3).

mod normalize;
mod prepare;
mod spec;
mod split;
mod table;

pub use normalize::Normalizer;
pub use prepare::{prepare, to_array, Prepared};
pub use spec::{TableSpec, DETAIL_COLUMNS};
pub use split::{split, DEFAULT_TRAIN_FRACTION};
pub use table::{load_table, TraceTable};

/// FNV-1a, 64 bits: a small, stable, dependency-free hash (file fingerprints, random
/// stream names). Not for security.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// A file's content fingerprint (`<bytes>-<fnv1a hex>`): finished experiment cells record
/// it, so that a regenerated dataset or retrained simulator invalidates them on resume.
pub fn fingerprint(path: &std::path::Path) -> crate::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| crate::Error::file(path, format!("cannot read: {e}")))?;
    Ok(format!("{}-{:016x}", bytes.len(), fnv1a(&bytes)))
}

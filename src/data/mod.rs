//! Trace data: the table schema, Polars loading of CSV and Parquet load-test traces with
//! checks that name the file, row and column of any bad value, the seeded train/test split,
//! and z-score normalisers (protocol.md sections 1 and 3).

mod normalize;
mod spec;
mod split;
mod table;

pub use normalize::Normalizer;
pub use spec::{TableSpec, DETAIL_COLUMNS};
pub use split::{split, DEFAULT_TRAIN_FRACTION};
pub use table::{load_table, TraceTable};

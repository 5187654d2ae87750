//! Typed errors of the library. Every error caused by user input names the file and,
//! where there is one, the row and the column; the binary turns any error into exit code 2.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem with one value of an input table: names the file, the 1-based data row
    /// (header excluded) and the column.
    #[error("{file}: row {row}, column `{column}`: {message}")]
    Field { file: PathBuf, row: usize, column: String, message: String },

    /// A problem with a whole input file (unreadable, empty, missing column ...).
    #[error("{file}: {message}")]
    File { file: PathBuf, message: String },

    /// An invalid setting in a config file or on the command line.
    #[error("invalid config{}: {message}", location(.file))]
    Config { file: Option<PathBuf>, message: String },

    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

fn location(file: &Option<PathBuf>) -> String {
    file.as_ref().map(|f| format!(" {}", f.display())).unwrap_or_default()
}

impl Error {
    pub fn file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File { file: file.into(), message: message.into() }
    }
    pub fn field(file: impl Into<PathBuf>, row: usize, column: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Field { file: file.into(), row, column: column.into(), message: message.into() }
    }
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config { file: None, message: message.into() }
    }
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

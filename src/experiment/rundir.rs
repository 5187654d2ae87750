//! A run directory: everything one experiment file writes, self-describing and resumable.
//!
//! - `config.resolved.toml`: the config with every default filled in;
//! - `cells/<dataset>/<name>.json`: one finished cell each, written atomically when it is
//!   done, with the key of the settings (and input fingerprints) it was computed under; a
//!   rerun reads back the cells whose key matches and redoes the others;
//! - the tables, plots and per-epoch files the experiment writes from its cells.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::atomic;
use crate::error::{Error, Result};

/// A finished cell, as saved: it carries the key it was computed under.
pub trait Cell: Serialize + DeserializeOwned {
    fn key(&self) -> &str;
}

/// An experiment's output directory.
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates the directory and writes the resolved config into it.
    pub fn create(root: &Path, resolved: &impl Serialize) -> Result<RunDir> {
        std::fs::create_dir_all(root).map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
        let text = toml::to_string_pretty(resolved).map_err(|e| Error::config(e.to_string()))?;
        atomic::write_file(&root.join("config.resolved.toml"), text)?;
        Ok(RunDir { root: root.to_path_buf() })
    }

    /// A path inside the run directory.
    pub fn join(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.root.join(relative)
    }

    /// Where a cell of a dataset is saved: `cells/<dataset>/<name>.json`.
    pub fn cell_path(&self, dataset: &str, name: &str) -> PathBuf {
        self.root.join("cells").join(dataset).join(format!("{name}.json"))
    }

    /// The saved cell, if there is one computed under `key` (anything else is redone).
    pub fn read_cell<T: Cell>(&self, dataset: &str, name: &str, key: &str) -> Option<T> {
        let text = std::fs::read_to_string(self.cell_path(dataset, name)).ok()?;
        let cell: T = serde_json::from_str(&text).ok()?;
        (cell.key() == key).then_some(cell)
    }

    /// Saves a finished cell, atomically.
    pub fn write_cell<T: Cell>(&self, dataset: &str, name: &str, cell: &T) -> Result<()> {
        let json = serde_json::to_string(cell).map_err(|e| Error::config(e.to_string()))?;
        atomic::write_file(&self.cell_path(dataset, name), json)
    }

    /// Writes a file of the run (a table, a CSV), atomically.
    pub fn write(&self, relative: impl AsRef<Path>, text: impl AsRef<[u8]>) -> Result<()> {
        atomic::write_file(&self.root.join(relative), text)
    }
}

/// JSON text of any settings, for cell keys.
pub fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize)]
    struct Tiny {
        key: String,
        value: u32,
    }
    impl Cell for Tiny {
        fn key(&self) -> &str {
            &self.key
        }
    }

    #[test]
    fn cells_read_back_only_under_their_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::create(&tmp.path().join("run"), &Tiny { key: "k".into(), value: 1 }).unwrap();
        assert!(std::fs::read_to_string(dir.join("config.resolved.toml")).unwrap().contains("value = 1"));
        assert!(dir.read_cell::<Tiny>("S1", "a", "k").is_none(), "nothing saved yet");
        dir.write_cell("S1", "a", &Tiny { key: "k".into(), value: 7 }).unwrap();
        assert_eq!(dir.read_cell::<Tiny>("S1", "a", "k").unwrap().value, 7);
        assert!(dir.read_cell::<Tiny>("S1", "a", "other settings").is_none());
        assert!(dir.cell_path("S1", "a").ends_with("cells/S1/a.json"));
    }
}

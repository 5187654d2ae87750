//! A run directory: everything one experiment file writes, self-describing and resumable.
//!
//! - `config.resolved.toml`: the config with every default filled in. It says which config
//!   owns the directory: a run of another config refuses it;
//! - `cells/<dataset>/<name>.json`: one finished cell each, written atomically when it is
//!   done, with the key of the settings (and input fingerprints) it was computed under; a
//!   rerun reads back the cells whose key matches and redoes the others;
//! - `cells/<dataset>/<name>.claim`: a cell being computed, by which run ([`super::claims`]);
//! - the tables, plots and per-epoch files the experiment writes from its cells.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::cells::Coordinate;
use super::claims::{Claim, Claims};
use crate::atomic;
use crate::error::{Error, Result};

/// A finished cell, as saved: it carries the key it was computed under.
pub trait Cell: Serialize + DeserializeOwned {
    fn key(&self) -> &str;
}

/// Fields of every kind that has them which change how a run is scheduled or reported, not
/// its cells: the cells at once, and the verdicts' tie margin.
pub const SCHEDULING: &[&str] = &["parallel_cells", "tie_margin"];

/// An experiment's output directory.
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates the directory and writes the resolved config into it ([`RunDir::check`] and
    /// [`CheckedRunDir::create`] at once).
    pub fn create(root: &Path, resolved: &impl Serialize, scheduling: &[&str]) -> Result<RunDir> {
        Self::check(root, resolved, scheduling, &[])?.create()
    }

    /// Every refusal of [`RunDir::create`], writing nothing, for a run that loads its inputs
    /// (and may train simulators into the directory) before it writes its config.
    ///
    /// A directory that holds another config's run is refused. [`SCHEDULING`] and
    /// `scheduling` (a kind's own) name fields that change how a run is scheduled or reported
    /// but not its cells: they may differ, and the file then takes this run's values (so that
    /// it says what made the report beside it).
    /// A directory is the run's or refused: an empty `out_dir` (the current directory) and a
    /// folder that holds files but no resolved config (a folder no meshrl run created) are
    /// refused, naming the field, so that a run never writes over a user's files. `own` are
    /// folders the run itself fills before its config (simulators it trains into `root`):
    /// another run of the same config, started at the same time, may find them there.
    pub fn check(root: &Path, resolved: &impl Serialize, scheduling: &[&str], own: &[&Path]) -> Result<CheckedRunDir> {
        if root.as_os_str().is_empty() {
            return Err(Error::config("out_dir is empty: give the run a folder of its own (for example results/<name>)"));
        }
        let text = toml::to_string_pretty(resolved).map_err(|e| Error::config(e.to_string()))?;
        let path = root.join("config.resolved.toml");
        let write = match std::fs::read_to_string(&path) {
            Ok(owner) => {
                let scheduling: Vec<&str> = SCHEDULING.iter().chain(scheduling).copied().collect();
                check_same_config(&path, &owner, &text, &scheduling)?;
                owner != text
            }
            Err(_) => {
                let foreign = std::fs::read_dir(root).ok().and_then(|entries| {
                    entries.filter_map(|e| e.ok()).find(|e| !own.iter().any(|o| crate::paths::is_inside(o, &e.path())))
                });
                if let Some(first) = foreign {
                    let name = first.file_name().to_string_lossy().into_owned();
                    return Err(Error::file(
                        root,
                        format!(
                            "out_dir holds `{name}` and no config.resolved.toml: it is not a meshrl run's folder, and a run \
                             would write over its files; choose another out_dir, or empty it"
                        ),
                    ));
                }
                true
            }
        };
        Ok(CheckedRunDir { root: root.to_path_buf(), text, write })
    }

    /// Where a cell's claim lives while a run computes it.
    pub fn claim_path(&self, dataset: &str, name: &str) -> PathBuf {
        self.root.join("cells").join(dataset).join(format!("{name}.claim"))
    }

    /// Where a cell under way keeps its checkpoint (`checkpoints/` stays out of git).
    pub fn checkpoint_path(&self, dataset: &str, name: &str) -> PathBuf {
        self.root.join("checkpoints").join(dataset).join(format!("{name}.ckpt"))
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

    /// A set of report files to replace together ([`OutputSet`]).
    pub fn outputs(&self) -> OutputSet {
        OutputSet { root: self.root.clone(), staged: Vec::new() }
    }
}

/// A run directory that [`RunDir::check`] accepted and nothing has written yet.
pub struct CheckedRunDir {
    root: PathBuf,
    text: String,
    /// Whether the resolved config must be (re)written.
    write: bool,
}

impl CheckedRunDir {
    /// A saved cell, as [`RunDir::read_cell`] reads it, before anything is written (a run
    /// plans and estimates its work first).
    pub fn read_cell<T: Cell>(&self, dataset: &str, name: &str, key: &str) -> Option<T> {
        RunDir { root: self.root.clone() }.read_cell(dataset, name, key)
    }

    /// Creates the directory and writes the resolved config into it.
    pub fn create(self) -> Result<RunDir> {
        if self.write {
            std::fs::create_dir_all(&self.root).map_err(|e| Error::io(format!("creating {}", self.root.display()), e))?;
            atomic::write_file(&self.root.join("config.resolved.toml"), &self.text)?;
        }
        Ok(RunDir { root: self.root })
    }
}

/// Report files replaced as a set: each is written under a temporary name beside its place,
/// and only when every one is written are they renamed into place. A report that fails half
/// way leaves the previous set as it was.
pub struct OutputSet {
    root: PathBuf,
    /// (temporary, final) paths.
    staged: Vec<(PathBuf, PathBuf)>,
}

impl OutputSet {
    /// The temporary path to write `relative` to (same extension, so that image writers
    /// still know the format); created directories included.
    pub fn stage(&mut self, relative: impl AsRef<Path>) -> Result<PathBuf> {
        let path = self.root.join(relative);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        let tmp = path.with_file_name(format!("{stem}.staged-{}{ext}", std::process::id()));
        self.staged.push((tmp.clone(), path));
        Ok(tmp)
    }

    /// Stages a text file.
    pub fn write(&mut self, relative: impl AsRef<Path>, text: impl AsRef<[u8]>) -> Result<()> {
        let tmp = self.stage(relative)?;
        atomic::write_file(&tmp, text)
    }

    /// Moves every staged file into place, all or none: each target is checked first (a
    /// folder where a file goes is refused before anything moves), the files it replaces are
    /// set aside, and a rename that fails half way puts them back. On failure nothing has
    /// changed and no staged or set-aside file remains.
    pub fn commit(mut self) -> Result<()> {
        for (_, path) in &self.staged {
            if path.is_dir() {
                return Err(Error::file(path, "a folder is where this report file goes: move it away and run the report again"));
            }
        }
        let staged = std::mem::take(&mut self.staged);
        // (final, set-aside previous file or None) for every file moved into place.
        let mut moved: Vec<(&Path, Option<PathBuf>)> = Vec::new();
        let rename = |from: &Path, to: &Path| {
            std::fs::rename(from, to).map_err(|e| Error::io(format!("renaming {} to {}", from.display(), to.display()), e))
        };
        let result = staged.iter().try_for_each(|(tmp, path)| {
            let aside =
                path.with_file_name(format!(".{}.previous-{}", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
            let previous = path.exists().then_some(aside);
            if let Some(aside) = &previous {
                rename(path, aside)?;
            }
            moved.push((path, previous));
            rename(tmp, path)
        });
        match result {
            Ok(()) => {
                for (_, previous) in moved {
                    if let Some(p) = previous {
                        let _ = std::fs::remove_file(p);
                    }
                }
                Ok(())
            }
            Err(e) => {
                // Undo in reverse: each new file out, its previous one back.
                for (path, previous) in moved.into_iter().rev() {
                    match previous {
                        Some(p) => {
                            let _ = std::fs::rename(&p, path);
                        }
                        None => {
                            let _ = std::fs::remove_file(path);
                        }
                    }
                }
                for (tmp, _) in &staged {
                    let _ = std::fs::remove_file(tmp);
                }
                Err(e)
            }
        }
    }
}

impl Drop for OutputSet {
    /// A set never committed leaves no temporary file behind.
    fn drop(&mut self) {
        for (tmp, _) in &self.staged {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Refuses a run whose resolved config differs from the one that owns the directory (but in
/// `scheduling` fields), naming the first differing field.
fn check_same_config(path: &Path, owner: &str, new: &str, scheduling: &[&str]) -> Result<()> {
    let parse = |text: &str| -> Result<toml::Table> {
        let mut t: toml::Table = toml::from_str(text).map_err(|e| Error::file(path, format!("not a resolved config: {e}")))?;
        for key in scheduling {
            t.remove(*key);
        }
        Ok(t)
    };
    let (old, new) = (parse(owner)?, parse(new)?);
    if old == new {
        return Ok(());
    }
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let show = |v: Option<&toml::Value>| v.map_or("absent".to_string(), |v| v.to_string());
    let field = keys.into_iter().find(|k| old.get(*k) != new.get(*k)).map(|k| k.as_str()).unwrap_or("?");
    let (was, is) = (show(old.get(field)), show(new.get(field)));
    let (was, is) = if was.len() + is.len() > 160 { ("...".to_string(), "something else".to_string()) } else { (was, is) };
    Err(Error::file(
        path,
        format!(
            "this directory holds the run of another config (`{field}` is {was} there, {is} here); \
             give the run another out_dir, or delete the directory to start over"
        ),
    ))
}

/// What identifies a cell in the run directory.
pub trait CellJob {
    fn dataset(&self) -> &str;
    /// The cell's file name without extension.
    fn name(&self) -> String;
    /// The settings (and input fingerprints) it is computed under.
    fn key(&self) -> &str;
}

/// Coordinates runs on one directory: claims through claim files, cells read back when
/// another run finished them.
pub struct DirCoordination<'a> {
    pub dir: &'a RunDir,
    pub claims: Claims,
}

impl<J: CellJob + Sync, C: Cell> Coordinate<J, C> for DirCoordination<'_> {
    type Guard = Claim;

    fn claim(&self, job: &J) -> Result<Option<Claim>> {
        self.claims.try_claim(&self.dir.claim_path(job.dataset(), &job.name()))
    }

    fn read_back(&self, job: &J) -> Option<C> {
        self.dir.read_cell(job.dataset(), &job.name(), job.key())
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
        let dir = RunDir::create(&tmp.path().join("run"), &Tiny { key: "k".into(), value: 1 }, &[]).unwrap();
        assert!(std::fs::read_to_string(dir.join("config.resolved.toml")).unwrap().contains("value = 1"));
        assert!(dir.read_cell::<Tiny>("S1", "a", "k").is_none(), "nothing saved yet");
        dir.write_cell("S1", "a", &Tiny { key: "k".into(), value: 7 }).unwrap();
        assert_eq!(dir.read_cell::<Tiny>("S1", "a", "k").unwrap().value, 7);
        assert!(dir.read_cell::<Tiny>("S1", "a", "other settings").is_none());
        assert!(dir.cell_path("S1", "a").ends_with("cells/S1/a.json"));
    }

    #[test]
    fn a_report_that_cannot_be_swapped_whole_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::create(&tmp.path().join("run"), &Tiny { key: "k".into(), value: 1 }, &[]).unwrap();
        let mut first = dir.outputs();
        first.write("a.csv", "old a").unwrap();
        first.write("policies/p.csv", "old p").unwrap();
        first.commit().unwrap();
        // A folder where a file of the new set goes: refused before anything moves.
        std::fs::create_dir(dir.join("z.md")).unwrap();
        let snapshot = |d: &RunDir| {
            let mut names: Vec<String> = Vec::new();
            for sub in [".", "policies"] {
                for e in std::fs::read_dir(d.join(sub)).unwrap() {
                    let e = e.unwrap();
                    names.push(format!(
                        "{sub}/{}:{}",
                        e.file_name().to_string_lossy(),
                        std::fs::read_to_string(e.path()).unwrap_or_default()
                    ));
                }
            }
            names.sort();
            names
        };
        let before = snapshot(&dir);
        let mut second = dir.outputs();
        second.write("policies/p.csv", "new p").unwrap();
        second.write("a.csv", "new a").unwrap();
        second.write("z.md", "new z").unwrap();
        let err = second.commit().unwrap_err().to_string();
        assert!(err.contains("z.md") && err.contains("a folder is where"), "{err}");
        assert_eq!(snapshot(&dir), before, "nothing replaced, nothing staged left");
        // A rename that fails half way (here: a staged file gone before the swap): the files
        // already moved are taken out again and the previous ones put back.
        std::fs::remove_dir(dir.join("z.md")).unwrap();
        let before = snapshot(&dir);
        let mut third = dir.outputs();
        third.write("a.csv", "new a").unwrap();
        let gone = third.stage("policies/p.csv").unwrap();
        third.write("new.md", "new").unwrap();
        assert!(!gone.exists(), "staged but never written");
        let err = third.commit().unwrap_err().to_string();
        assert!(err.contains("renaming") && err.contains("p.staged-"), "{err}");
        assert_eq!(snapshot(&dir), before, "a.csv put back, no staged or set-aside file left");
    }

    #[test]
    fn report_files_are_replaced_as_a_set() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::create(&tmp.path().join("run"), &Tiny { key: "k".into(), value: 1 }, &[]).unwrap();
        let mut first = dir.outputs();
        first.write("a.csv", "old a").unwrap();
        first.write("plots/b.png", "old b").unwrap();
        first.commit().unwrap();
        // A report that fails after writing one file: the old set stays, no temporary left.
        let mut failed = dir.outputs();
        failed.write("a.csv", "new a").unwrap();
        drop(failed);
        assert_eq!(std::fs::read_to_string(dir.join("a.csv")).unwrap(), "old a");
        let names: Vec<String> =
            std::fs::read_dir(dir.join(".")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| !n.contains("staged")), "{names:?}");
        let mut second = dir.outputs();
        let png = second.stage("plots/b.png").unwrap();
        assert_eq!(png.extension().unwrap(), "png");
        std::fs::write(&png, "new b").unwrap();
        second.write("a.csv", "new a").unwrap();
        second.commit().unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("plots/b.png")).unwrap(), "new b");
        assert_eq!(std::fs::read_to_string(dir.join("a.csv")).unwrap(), "new a");
    }

    #[test]
    fn a_folder_no_run_created_and_an_empty_out_dir_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mine = tmp.path().join("mine");
        std::fs::create_dir(&mine).unwrap();
        std::fs::write(mine.join("notes.txt"), "a user's file").unwrap();
        let err = RunDir::create(&mine, &Tiny { key: "k".into(), value: 1 }, &[]).err().expect("refused").to_string();
        assert!(err.contains("out_dir holds `notes.txt`") && err.contains("no config.resolved.toml"), "{err}");
        assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 1, "nothing written");
        let err = RunDir::create(Path::new(""), &Tiny { key: "k".into(), value: 1 }, &[]).err().expect("refused").to_string();
        assert!(err.contains("out_dir is empty"), "{err}");
        // An empty folder is fine: the run takes it.
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        RunDir::create(&empty, &Tiny { key: "k".into(), value: 1 }, &[]).expect("an empty folder is taken");
    }

    #[test]
    fn a_directory_belongs_to_one_config() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("run");
        RunDir::create(&root, &Tiny { key: "k".into(), value: 1 }, &[]).unwrap();
        RunDir::create(&root, &Tiny { key: "k".into(), value: 1 }, &[]).expect("the same config resumes");
        let err = RunDir::create(&root, &Tiny { key: "k".into(), value: 2 }, &[]).err().expect("another config is refused").to_string();
        assert!(err.contains("config.resolved.toml") && err.contains("`value` is 1 there, 2 here"), "{err}");
        RunDir::create(&root, &Tiny { key: "k".into(), value: 2 }, &["value"]).expect("scheduling fields may differ");
        assert!(
            std::fs::read_to_string(root.join("config.resolved.toml")).unwrap().contains("value = 2"),
            "the file says what made the report beside it"
        );
    }
}

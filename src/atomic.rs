//! Writing files so that a reader never sees a half-written one: write a temporary file
//! in the same directory, then rename it over the target (atomic on one filesystem).
//! [`write_dir`] does the same for a directory of files: all of it or none of it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Creates `path` through `write`, atomically. Parent directories are created.
pub fn write_with(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let tmp = temporary_path(path);
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        out.flush().map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming {} to {}", tmp.display(), path.display()), e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `contents` to `path` atomically.
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    write_with(path, |out| out.write_all(contents.as_ref()).map_err(|e| Error::io(format!("writing {}", path.display()), e)))
}

/// A sibling of `path` (same parent, so the same filesystem) named `.<name>.<pid>.<tag>`.
fn sibling(path: &Path, tag: &str) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".{}.{tag}", std::process::id()));
    path.with_file_name(name)
}

/// Removes a temporary directory when dropped, unless it has been moved into place: an
/// error or a panic in the writer leaves nothing behind.
struct TempDir {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Creates the directory `path` whole: `write` fills a new temporary directory beside it
/// (same parent, hence the same filesystem), which is then renamed to `path`. If `path`
/// exists it must be a directory; it is renamed aside, the new one renamed in and the old
/// one removed with everything in it, so after success `path` holds exactly what `write`
/// wrote. On an error (or a panic) in `write` or in a rename, `path` is left as it was and
/// the temporary directory is removed. Whether an existing `path` may be replaced is the
/// caller's decision: check its contents first. A symbolic link is followed (its target
/// is replaced); parent directories are created.
pub fn write_dir(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let exists = match std::fs::symlink_metadata(path) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    // `.`, `..` and links name a directory that is renamed under its real name.
    let target = if exists {
        let real = std::fs::canonicalize(path).map_err(|e| Error::io(format!("resolving {}", path.display()), e))?;
        if !real.is_dir() {
            return Err(Error::file(path, "exists and is not a directory; it is not replaced"));
        }
        real
    } else {
        path.to_path_buf()
    };
    if target.file_name().is_none() {
        return Err(Error::file(path, "cannot be replaced: it has no name within a parent directory"));
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let mut tmp = TempDir { path: sibling(&target, "tmp"), armed: true };
    // A leftover of a killed process that had the same id: ours to remove.
    let _ = std::fs::remove_dir_all(&tmp.path);
    std::fs::create_dir(&tmp.path).map_err(|e| Error::io(format!("creating {}", tmp.path.display()), e))?;
    write(&tmp.path)?;
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|e| Error::io(format!("renaming {} to {}", from.display(), to.display()), e))
    };
    if exists {
        let old = sibling(&target, "old");
        let _ = std::fs::remove_dir_all(&old);
        rename(&target, &old)?;
        if let Err(e) = rename(&tmp.path, &target) {
            let _ = std::fs::rename(&old, &target);
            return Err(e);
        }
        tmp.armed = false;
        // The new directory is in place; an old one that cannot be removed is only litter.
        let _ = std::fs::remove_dir_all(&old);
    } else {
        rename(&tmp.path, &target)?;
        tmp.armed = false;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_no_file_when_the_writer_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let err = write_with(&path, |_| Err(Error::config("boom"))).unwrap_err();
        assert!(err.to_string().contains("boom"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no temporary or partial file left");
    }

    #[test]
    fn replaces_an_existing_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_file(&path, "first version, longer").unwrap();
        write_file(&path, "second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    fn fill(dir: &Path, files: &[(&str, &str)]) -> Result<()> {
        for (name, text) in files {
            std::fs::write(dir.join(name), text).map_err(|e| Error::io(*name, e))?;
        }
        Ok(())
    }

    #[test]
    fn write_dir_creates_a_directory_and_its_parents() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b/out");
        write_dir(&out, |tmp| fill(tmp, &[("x.txt", "x")])).unwrap();
        assert_eq!(names_in(&out), ["x.txt"]);
        assert_eq!(names_in(&dir.path().join("a/b")), ["out"], "no temporary directory left");
    }

    #[test]
    fn write_dir_replaces_an_existing_directory_whole() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        write_dir(&out, |tmp| fill(tmp, &[("1.txt", "old"), ("2.txt", "old"), ("3.txt", "old")])).unwrap();
        write_dir(&out, |tmp| fill(tmp, &[("1.txt", "new")])).unwrap();
        assert_eq!(names_in(&out), ["1.txt"], "no stale file of the old directory");
        assert_eq!(std::fs::read_to_string(out.join("1.txt")).unwrap(), "new");
        assert_eq!(names_in(dir.path()), ["out"], "neither the temporary nor the old directory is left");
        // Through `..` and a symbolic link the real directory is replaced.
        write_dir(&out.join("..").join("out"), |tmp| fill(tmp, &[("2.txt", "two")])).unwrap();
        assert_eq!(names_in(&out), ["2.txt"]);
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&out, &link).unwrap();
            write_dir(&link, |tmp| fill(tmp, &[("3.txt", "three")])).unwrap();
            assert_eq!(names_in(&out), ["3.txt"]);
            assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is kept");
        }
    }

    #[test]
    fn write_dir_leaves_the_old_directory_untouched_when_the_writer_fails() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        write_dir(&out, |tmp| fill(tmp, &[("1.txt", "old"), ("2.txt", "old"), ("3.txt", "old")])).unwrap();
        let err = write_dir(&out, |tmp| {
            fill(tmp, &[("1.txt", "new"), ("2.txt", "new")])?;
            Err(Error::config("boom at the third file"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        assert_eq!(names_in(&out), ["1.txt", "2.txt", "3.txt"]);
        for f in ["1.txt", "2.txt", "3.txt"] {
            assert_eq!(std::fs::read_to_string(out.join(f)).unwrap(), "old", "{f}");
        }
        assert_eq!(names_in(dir.path()), ["out"], "the temporary directory is removed");
        // A panicking writer too; and a new directory is not created at all.
        let caught = std::panic::catch_unwind(|| {
            write_dir(&out, |tmp| {
                fill(tmp, &[("1.txt", "new")])?;
                panic!("writer panics")
            })
        });
        assert!(caught.is_err());
        assert_eq!(std::fs::read_to_string(out.join("1.txt")).unwrap(), "old");
        let fresh = dir.path().join("fresh");
        assert!(write_dir(&fresh, |_| Err(Error::config("boom"))).is_err());
        assert_eq!(names_in(dir.path()), ["out"]);
    }

    #[test]
    fn write_dir_refuses_to_replace_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out");
        std::fs::write(&file, "a user's file").unwrap();
        let err = write_dir(&file, |tmp| fill(tmp, &[("x.txt", "x")])).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "a user's file");
        assert_eq!(names_in(dir.path()), ["out"]);
    }
}

//! Where a command may write: never over one of its own inputs. A raw measurement (a Fortio
//! result), a rule or a config must survive any command line, however it is spelled: the
//! same file reached by another path, a symbolic link or a hard link is the same input.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The canonical form of a path that may not exist yet: its parent's canonical path joined
/// with its name (a name that does not exist cannot be a link to an input).
fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match (parent.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

/// Whether `a` and `b` are the same file: the same canonical path, or (both existing) the
/// same device and inode, as two hard links are.
pub fn same_file(a: &Path, b: &Path) -> bool {
    if canonical(a) == canonical(b) {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    false
}

/// Whether `path` lies inside the folder `dir` (or is it).
pub fn is_inside(path: &Path, dir: &Path) -> bool {
    canonical(path).starts_with(canonical(dir))
}

/// Refuses writing `output` (given as `flag`) when it is one of `inputs`, naming both.
pub fn refuse_input_as_output(flag: &str, output: &Path, inputs: &[PathBuf]) -> Result<()> {
    match inputs.iter().find(|input| same_file(output, input)) {
        Some(input) => Err(Error::file(
            output,
            format!("{flag} is the input {}: writing it would destroy what this command reads; choose another {flag}", input.display()),
        )),
        None => Ok(()),
    }
}

/// Refuses an output folder (given as `flag`, replaced or written into by the command) that
/// holds one of `inputs`, naming both.
pub fn refuse_input_inside_output(flag: &str, output_dir: &Path, inputs: &[PathBuf]) -> Result<()> {
    match inputs.iter().find(|input| is_inside(input, output_dir)) {
        Some(input) => Err(Error::file(
            output_dir,
            format!(
                "{flag} holds the input {}: the command replaces that folder's files, so it would destroy what it reads; choose another {flag}",
                input.display()
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_however_it_is_spelled() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("run.json");
        std::fs::write(&file, "{}").unwrap();
        assert!(same_file(&file, &dir.join("../d/./run.json")));
        std::fs::hard_link(&file, tmp.path().join("linked.json")).unwrap();
        assert!(same_file(&tmp.path().join("linked.json"), &file));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&file, tmp.path().join("sym.json")).unwrap();
            assert!(same_file(&tmp.path().join("sym.json"), &file));
        }
        assert!(!same_file(&dir.join("trace.csv"), &file), "a new file is no input");
        let err = refuse_input_as_output("--out", &dir.join("./run.json"), std::slice::from_ref(&file)).unwrap_err().to_string();
        assert!(err.contains("--out is the input") && err.contains("run.json"), "{err}");
        assert!(refuse_input_as_output("--out", &dir.join("trace.csv"), std::slice::from_ref(&file)).is_ok());
        assert!(is_inside(&file, &dir) && !is_inside(&file, &tmp.path().join("e")));
        assert!(refuse_input_inside_output("--out", &dir, &[file]).unwrap_err().to_string().contains("holds the input"));
    }
}

//! Claims on cells, so that several runs on one run directory (two processes, or the shards of
//! a cluster job on a shared volume) never compute a cell twice.
//!
//! A cell is claimed by creating `<cell>.claim` exclusively (`create_new`: one creator wins on
//! a local or network file system, no lock needed). The file names its owner (host, process
//! id) and a heartbeat time that the owner rewrites every [`HEARTBEAT`]; when the cell is
//! written, the claim is removed. A claim is abandoned, and taken over, when its heartbeat is
//! older than [`STALE_AFTER`], or at once when its owner is a process of this host that no
//! longer runs (a killed run). Two runs taking over the same abandoned claim at the same
//! moment may both compute that cell; the results are the same bytes, written atomically.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::atomic;
use crate::error::{Error, Result};

/// How often a run refreshes the claims of the cells it computes.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// A claim not refreshed for this long is abandoned (its run died or hangs).
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// The claims this process holds, kept alive by a heartbeat thread.
pub struct Claims {
    held: Arc<Mutex<BTreeSet<PathBuf>>>,
    /// Set to stop the heartbeat thread (with its condition variable, to wake it at once).
    stop: Arc<(Mutex<bool>, Condvar)>,
    beat: Option<std::thread::JoinHandle<()>>,
}

/// One claim held; dropping it releases the cell (removes the claim file).
pub struct Claim {
    path: PathBuf,
    held: Arc<Mutex<BTreeSet<PathBuf>>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.held.lock().expect("no panics while holding the lock").remove(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The text of a claim file: owner and heartbeat.
fn claim_text() -> String {
    format!("host={}\npid={}\nheartbeat={}\n", host(), std::process::id(), now())
}

/// Whether the claim at `path` is abandoned: its owner process of this host is gone, or its
/// heartbeat (or, unreadable, the file's time) is older than [`STALE_AFTER`].
fn abandoned(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix('='))).map(str::to_string);
    let proc_visible = Path::new("/proc/self").exists();
    if let (Some(h), Some(pid)) = (field("host"), field("pid")) {
        if proc_visible && h == host() && !Path::new("/proc").join(&pid).exists() {
            return true;
        }
    }
    let beat = field("heartbeat").and_then(|t| t.parse::<u64>().ok()).or_else(|| {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
        modified.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
    });
    beat.is_none_or(|b| now().saturating_sub(b) > STALE_AFTER.as_secs())
}

impl Claims {
    /// Starts the heartbeat for this process's claims.
    pub fn start() -> Claims {
        let held: Arc<Mutex<BTreeSet<PathBuf>>> = Arc::default();
        let stop: Arc<(Mutex<bool>, Condvar)> = Arc::default();
        let (h, s) = (held.clone(), stop.clone());
        let beat = std::thread::spawn(move || {
            let (lock, wake) = &*s;
            let mut stopped = lock.lock().expect("no panics while holding the lock");
            while !*stopped {
                stopped = wake.wait_timeout(stopped, HEARTBEAT).expect("no panics while holding the lock").0;
                let paths: Vec<PathBuf> = h.lock().expect("no panics while holding the lock").iter().cloned().collect();
                for path in paths {
                    let _ = atomic::write_file(&path, claim_text());
                }
            }
        });
        Claims { held, stop, beat: Some(beat) }
    }

    /// Claims the cell whose claim file is `path`: `None` when a live run holds it.
    pub fn try_claim(&self, path: &Path) -> Result<Option<Claim>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    file.write_all(claim_text().as_bytes()).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
                    self.held.lock().expect("no panics while holding the lock").insert(path.to_path_buf());
                    return Ok(Some(Claim { path: path.to_path_buf(), held: self.held.clone() }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !abandoned(path) {
                        return Ok(None);
                    }
                    // Move the abandoned claim out of the way (one taker's rename succeeds),
                    // then try to create ours.
                    let grave = path.with_extension(format!("claim.abandoned.{}", std::process::id()));
                    if std::fs::rename(path, &grave).is_ok() {
                        let _ = std::fs::remove_file(&grave);
                    }
                }
                Err(e) => return Err(Error::io(format!("claiming {}", path.display()), e)),
            }
        }
        Ok(None)
    }
}

impl Drop for Claims {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().expect("no panics while holding the lock") = true;
        wake.notify_all();
        if let Some(beat) = self.beat.take() {
            let _ = beat.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_cell_until_it_is_released() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cells/S1/call_seed1.claim");
        let (a, b) = (Claims::start(), Claims::start());
        let first = a.try_claim(&path).unwrap().expect("a free cell is claimed");
        assert!(std::fs::read_to_string(&path).unwrap().contains(&format!("pid={}", std::process::id())));
        // This process is alive and its heartbeat fresh: nobody else gets the cell.
        assert!(b.try_claim(&path).unwrap().is_none());
        drop(first);
        assert!(!path.exists(), "released");
        assert!(b.try_claim(&path).unwrap().is_some());
    }

    #[test]
    fn abandoned_claims_are_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let claims = Claims::start();
        // A run of this host that no longer exists (pid beyond the kernel's maximum).
        let dead = tmp.path().join("dead.claim");
        std::fs::write(&dead, format!("host={}\npid=4294967295\nheartbeat={}\n", host(), now())).unwrap();
        assert!(claims.try_claim(&dead).unwrap().is_some());
        // A run elsewhere whose heartbeat stopped long ago, and one that is alive.
        let stale = tmp.path().join("stale.claim");
        std::fs::write(&stale, format!("host=elsewhere\npid=1\nheartbeat={}\n", now() - STALE_AFTER.as_secs() - 5)).unwrap();
        assert!(claims.try_claim(&stale).unwrap().is_some());
        let live = tmp.path().join("live.claim");
        std::fs::write(&live, format!("host=elsewhere\npid=1\nheartbeat={}\n", now())).unwrap();
        assert!(claims.try_claim(&live).unwrap().is_none());
    }
}

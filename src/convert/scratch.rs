//! A run's scratch directory: staged rows, downloaded archives and spilled
//! sorts live in `<temp dir>/auditlake-XXXXXX/` for the run's life.
//!
//! A run that exits removes its directory; a run that is killed cannot. So
//! each directory holds a `.lock` file that its run keeps locked (and the
//! run's pid, for people reading it), and every run first removes the
//! directories whose lock nobody holds: their run is gone. The operating
//! system releases a lock when its process dies, however it dies, so a live
//! run's directory is never taken and a dead one's always is.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tempfile::TempDir;

/// Prefix of scratch directories.
const PREFIX: &str = "auditlake-";

/// The lock file inside a scratch directory.
const LOCK: &str = ".lock";

/// A directory without a lock file is taken only once it is this old: the
/// run that just created it may not have locked it yet. (Directories of
/// versions before the lock file have none either.)
const UNLOCKED_GRACE: Duration = Duration::from_secs(600);

/// A run's scratch directory, removed on drop.
pub struct Scratch {
    // Field order: the directory goes before the lock is released.
    dir: TempDir,
    _lock: File,
}

impl Scratch {
    /// Removes abandoned scratch directories in `root`, then creates this
    /// run's.
    pub fn create(root: &Path) -> anyhow::Result<Scratch> {
        let removed = remove_abandoned(root);
        if removed > 0 {
            tracing::info!(
                "removed {removed} scratch director{} left in {} by runs that were killed",
                if removed == 1 { "y" } else { "ies" },
                root.display()
            );
        }
        let cannot = || format!("cannot create a temporary directory in {}", root.display());
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir_in(root)
            .with_context(cannot)?;
        let mut lock = File::create(dir.path().join(LOCK)).with_context(cannot)?;
        lock.try_lock()
            .map_err(std::io::Error::from)
            .with_context(cannot)?;
        let _ = writeln!(lock, "{}", std::process::id());
        Ok(Scratch { dir, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the scratch directories in `root` whose run is gone; returns how
/// many. Failures only mean the directory stays for a later run.
pub fn remove_abandoned(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_scratch = name.to_str().is_some_and(|n| n.starts_with(PREFIX));
        if !is_scratch || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = entry.path();
        let abandoned = match File::options().write(true).open(dir.join(LOCK)) {
            // Locked by nobody: its run is gone (the lock is released when
            // we close the file, before the directory is removed).
            Ok(lock) => lock.try_lock().is_ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| {
                    SystemTime::now()
                        .duration_since(t)
                        .is_ok_and(|age| age > UNLOCKED_GRACE)
                })
            }
            Err(_) => false,
        };
        if abandoned && std::fs::remove_dir_all(&dir).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_directories_of_dead_runs_are_removed() {
        let root = tempfile::tempdir().unwrap();
        // A live run.
        let live = Scratch::create(root.path()).unwrap();
        // A run that was killed: its lock file is there, locked by nobody.
        let dead = root.path().join("auditlake-dead");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(LOCK), "123\n").unwrap();
        std::fs::write(dead.join("staged.arrow"), vec![0u8; 1024]).unwrap();
        // A directory just created, not locked yet; and somebody else's.
        let fresh = root.path().join("auditlake-fresh");
        std::fs::create_dir(&fresh).unwrap();
        let other = root.path().join("other-tool-1");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join(LOCK), "").unwrap();

        assert_eq!(remove_abandoned(root.path()), 1);
        assert!(!dead.exists());
        assert!(live.path().exists());
        assert!(fresh.exists() && other.exists());
        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists(), "a run removes its own directory");
    }
}

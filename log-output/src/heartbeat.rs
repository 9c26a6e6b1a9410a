//! The heartbeat file, kept for the contract only (docs/contract.md:
//! `HEARTBEAT_FILE` and `log-output alive`): when `HEARTBEAT_FILE` is set,
//! the write loop sets the file's modification time on every turn, and
//! `log-output alive` judges that time by the one rule of `liveness.rs`.
//! The manifests do not use it: they probe the writer's `GET /healthz`.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::liveness;

/// Marks the loop as having turned now.
///
/// # Errors
/// The file cannot be created or its time set.
pub fn beat(path: &Path) -> io::Result<()> {
    let file: File = OpenOptions::new().write(true).create(true).truncate(false).open(path)?;
    file.set_modified(SystemTime::now())
}

/// Whether the loop, writing every `interval`, last beat recently enough
/// ([`liveness::judge`]).
///
/// # Errors
/// A one-line reason: no heartbeat yet, or one too old.
pub fn check(path: &Path, interval: Duration) -> Result<(), String> {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| format!("no heartbeat at {}: {e}", path.display()))?;
    liveness::judge(SystemTime::now().duration_since(modified).unwrap_or_default(), interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_beat_passes_and_a_missing_or_old_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heartbeat");
        let interval = Duration::from_secs(1);
        assert!(check(&path, interval).unwrap_err().contains("no heartbeat"));
        beat(&path).unwrap();
        assert_eq!(check(&path, interval), Ok(()));
        let old = SystemTime::now() - Duration::from_secs(60);
        File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        assert!(check(&path, interval).unwrap_err().contains("last turned 60"));
    }
}

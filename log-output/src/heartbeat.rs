//! The writer's heartbeat: a file whose modification time the writer loop sets
//! on every turn, and the `log-output alive` check that reads it. The writer
//! serves no HTTP, so this is what its Kubernetes liveness probe runs (an exec
//! probe: the image has no shell, only this binary).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Marks the loop as alive now.
///
/// # Errors
/// The file cannot be created or its time set.
pub fn beat(path: &Path) -> io::Result<()> {
    let file: File = OpenOptions::new().write(true).create(true).truncate(false).open(path)?;
    file.set_modified(SystemTime::now())
}

/// Whether the loop turned within `max_age`.
///
/// # Errors
/// A one-line reason: no heartbeat yet, or one too old.
pub fn check(path: &Path, max_age: Duration) -> Result<(), String> {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| format!("no heartbeat at {}: {e}", path.display()))?;
    let age = SystemTime::now().duration_since(modified).unwrap_or_default();
    if age > max_age {
        return Err(format!("the writer loop last turned {age:.0?} ago (limit {max_age:.0?})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_beat_passes_and_a_missing_or_old_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heartbeat");
        assert!(check(&path, Duration::from_secs(10)).unwrap_err().contains("no heartbeat"));
        beat(&path).unwrap();
        assert_eq!(check(&path, Duration::from_secs(10)), Ok(()));
        let old = SystemTime::now() - Duration::from_secs(60);
        File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        assert!(check(&path, Duration::from_secs(10)).unwrap_err().contains("last turned"));
    }
}

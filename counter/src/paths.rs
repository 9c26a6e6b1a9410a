//! Names of the files beside a data file: its lock, temp and rotated siblings,
//! and the directory whose fsync makes a rename durable.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `path` with `suffix` appended to its name: `files/output.log` + `.lock`.
#[must_use]
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// The directory holding `path`; `.` for a bare file name.
#[must_use]
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_and_directories() {
        assert_eq!(with_suffix(Path::new("files/c.txt"), ".lock"), Path::new("files/c.txt.lock"));
        assert_eq!(dir_of(Path::new("files/c.txt")), Path::new("files"));
        assert_eq!(dir_of(Path::new("c.txt")), Path::new("."));
    }
}

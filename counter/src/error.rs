//! Why the counter could not be read or changed, naming the file and how to
//! repair it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the counter could not be read or changed. Cheap to clone, so one failed
/// group commit can answer every ping that was waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CounterError {
    /// The file holds something that is not a count. It is never overwritten.
    #[error(
        "counter file {} is corrupt: {reason}; it is left untouched: write the right count into it (e.g. `echo 42 > {}`) or delete it to start again from 0",
        .path.display(), .path.display()
    )]
    Corrupt {
        /// The counter file.
        path: PathBuf,
        /// What is wrong with its content.
        reason: String,
    },
    /// The path exists but is not a regular file (a directory, a symlink…).
    #[error(
        "counter file {} is a {kind}, not a regular file; it is left untouched: move it away and put the count in a regular file there",
        .path.display()
    )]
    NotAFile {
        /// The counter file.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// A system call failed: disk full, I/O error, read-only volume, permissions.
    #[error("counter file {}: could not {op}: {cause}", .path.display())]
    Io {
        /// The file the call was about.
        path: PathBuf,
        /// What we were doing, as a verb phrase.
        op: &'static str,
        /// The system's error.
        cause: Arc<io::Error>,
    },
}

impl CounterError {
    pub(crate) fn io(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |e| Self::Io { path, op, cause: Arc::new(e) }
    }
}

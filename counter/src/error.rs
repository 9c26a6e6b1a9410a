//! Why the counter could not be read or changed, naming the file and how to
//! repair it.

use std::io;
use std::path::{Path, PathBuf};

use file_kit::FileError;

/// What the counter file is called in messages.
pub(crate) const WHAT: &str = "counter file";

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
    #[error(transparent)]
    Io(#[from] FileError),
}

/// `map_err` for a failed call of `op` on `path` (the counter file or a sibling).
pub(crate) fn io_error(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> CounterError {
    let wrap = FileError::at(WHAT, path, op);
    move |e| CounterError::Io(wrap(e))
}

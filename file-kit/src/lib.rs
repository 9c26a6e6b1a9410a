//! The file plumbing that the counter file and the log share, written once:
//! an error that names the file and what was being done ([`FileError`]), the
//! names of a data file's siblings ([`sibling`], [`dir_of`]), its stable lock
//! file ([`LockFile`]: a separate file, never renamed, so that replacing the
//! data file by rename never drops a lock) and the directory fsync that makes
//! a rename or a new file durable ([`sync_dir`]).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A failed system call on a file: which file (`what`, e.g. "counter file",
/// and its path), what was being done (a verb phrase: "fsync it") and the
/// system's error. Cheap to clone, so one failure can answer many waiters.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what} {}: could not {op}: {cause}", .path.display())]
pub struct FileError {
    /// What the file is to the user: "counter file", "log file".
    pub what: &'static str,
    /// The file the call was about (the data file, its lock, temp or directory).
    pub path: PathBuf,
    /// What was being done, as a verb phrase.
    pub op: &'static str,
    /// The system's error.
    pub cause: Arc<io::Error>,
}

impl FileError {
    /// Wraps an `io::Error` of `op` on `path` (for `map_err`).
    pub fn at(what: &'static str, path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |cause| Self { what, path, op, cause: Arc::new(cause) }
    }

    /// The system's error kind (`StorageFull`, `ReadOnlyFilesystem`, …).
    #[must_use]
    pub fn kind(&self) -> io::ErrorKind {
        self.cause.kind()
    }
}

/// `path` with `suffix` appended to its name: `files/output.log` + `.lock`.
#[must_use]
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
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

/// fsyncs the directory `dir`, so that a rename or a new file in it survives
/// a power loss.
///
/// # Errors
/// The directory cannot be opened or flushed.
pub fn sync_dir(what: &'static str, dir: &Path) -> Result<(), FileError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(FileError::at(what, dir, "fsync its directory"))
}

/// Writes `bytes` to a new or emptied file at `path` and `fdatasync`s it;
/// the caller makes its name durable ([`sync_dir`]), or renames it into
/// place first.
///
/// # Errors
/// The file cannot be created, written or flushed.
pub fn write_synced(what: &'static str, path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    use std::io::Write;
    let mut file = File::create(path).map_err(FileError::at(what, path, "create it"))?;
    file.write_all(bytes).map_err(FileError::at(what, path, "write it"))?;
    file.sync_data().map_err(FileError::at(what, path, "fsync it"))
}

/// The stable lock file beside a data file (`<file>.lock`), on which every
/// process that changes the data file, or must read it exactly, takes an
/// advisory `flock`: exclusive to change it, shared to read it.
#[derive(Debug, Clone)]
pub struct LockFile {
    what: &'static str,
    path: PathBuf,
}

impl LockFile {
    /// The lock file of `data` (`data` + `.lock`); touches nothing on disk.
    #[must_use]
    pub fn of(what: &'static str, data: &Path) -> Self {
        Self { what, path: sibling(data, ".lock") }
    }

    /// Its path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens it for writing, creating it if missing: what a process that
    /// changes the data file does, once.
    ///
    /// # Errors
    /// It cannot be created or opened for writing (a read-only volume).
    pub fn open(&self) -> Result<File, FileError> {
        OpenOptions::new().write(true).create(true).truncate(false).open(&self.path).map_err(FileError::at(
            self.what,
            &self.path,
            "open the lock file for writing",
        ))
    }

    /// Takes it shared for an exact read, returning the open file (the lock
    /// goes when it is closed). Where it cannot be opened for writing (a
    /// read-only mount, as the log's reader has) it is opened for reading,
    /// which `flock` accepts; where it does not exist and cannot be made, no
    /// writer ever ran there, nothing can race, and `None` is returned.
    ///
    /// # Errors
    /// It exists but cannot be opened, or the lock cannot be taken.
    pub fn lock_shared(&self) -> Result<Option<File>, FileError> {
        let file = match self.open() {
            Ok(file) => file,
            Err(_) => match File::open(&self.path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(FileError::at(self.what, &self.path, "open the lock file")(e)),
            },
        };
        file.lock_shared().map_err(FileError::at(self.what, &self.path, "lock the lock file (shared)"))?;
        Ok(Some(file))
    }

    /// Opens it and takes it exclusively, returning the open file (the lock
    /// goes when it is closed).
    ///
    /// # Errors
    /// It cannot be opened for writing, or the lock cannot be taken.
    pub fn lock_exclusive(&self) -> Result<File, FileError> {
        let file = self.open()?;
        file.lock().map_err(FileError::at(self.what, &self.path, "lock the lock file"))?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_and_directories() {
        assert_eq!(sibling(Path::new("files/c.txt"), ".lock"), Path::new("files/c.txt.lock"));
        assert_eq!(dir_of(Path::new("files/c.txt")), Path::new("files"));
        assert_eq!(dir_of(Path::new("c.txt")), Path::new("."));
    }

    #[test]
    fn an_error_names_the_file_and_what_was_being_done() {
        let e = FileError::at("log file", Path::new("files/output.log"), "fsync it")(io::Error::other("EIO"));
        assert_eq!(e.to_string(), "log file files/output.log: could not fsync it: EIO");
    }

    #[test]
    fn a_shared_lock_waits_for_an_exclusive_one_and_a_missing_lock_file_means_no_writer() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let lock = LockFile::of("data file", &data);
        let exclusive = lock.lock_exclusive().unwrap();
        let other = File::open(lock.path()).unwrap();
        assert!(other.try_lock_shared().is_err(), "held exclusively");
        drop(exclusive);
        assert!(lock.lock_shared().unwrap().is_some());
        let read_only = LockFile::of("data file", &dir.path().join("missing/data"));
        assert!(read_only.lock_shared().unwrap().is_none(), "no lock file, no directory: nothing to lock");
    }
}

//! The counter file: the one owner of its format (decimal digits and a newline)
//! and of the only way it changes, a durable, cross-process increment.
//!
//! An increment takes an exclusive `flock` on `<COUNTER_FILE>.lock` (a stable
//! file, never replaced), reads the current value (another process may have
//! changed it), writes the new value to `<COUNTER_FILE>.tmp`, fsyncs it, renames
//! it over the counter file and fsyncs the directory. Readers therefore see the
//! old or the new value, never a torn or empty file, without taking the lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::paths::{dir_of, with_suffix};

/// The longest counter file we read: `u64::MAX` has 20 digits, so anything
/// longer is corrupt, and a huge file is never read whole.
const MAX_LEN: u64 = 64;

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
    fn io(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |e| Self::Io { path, op, cause: Arc::new(e) }
    }
}

/// Parses the content of a counter file: ASCII digits, surrounding ASCII
/// whitespace allowed (`echo 42 > file` works), nothing else.
///
/// # Errors
/// A human-readable reason when the bytes are not a count that fits a `u64`.
pub fn parse(bytes: &[u8]) -> Result<u64, String> {
    let text = bytes.trim_ascii();
    if text.is_empty() {
        return Err("it is empty".into());
    }
    if !text.iter().all(u8::is_ascii_digit) {
        let shown: String = String::from_utf8_lossy(text).chars().take(24).collect();
        return Err(format!("it holds {shown:?}, not a decimal count"));
    }
    // Only digits, so the one way to fail is overflow.
    std::str::from_utf8(text)
        .ok()
        .and_then(|digits| digits.parse::<u64>().ok())
        .ok_or_else(|| format!("its number is larger than the largest count, {}", u64::MAX))
}

/// The content a counter file holds for `value`.
#[must_use]
pub fn format(value: u64) -> String {
    format!("{value}\n")
}

/// Where the counter lives: the file and its two stable companions.
#[derive(Debug, Clone)]
pub struct CounterFile {
    path: PathBuf,
    lock_path: PathBuf,
    tmp_path: PathBuf,
    dir: PathBuf,
}

impl CounterFile {
    /// Names the counter file; touches nothing on disk.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let dir = dir_of(&path).to_path_buf();
        Self { lock_path: with_suffix(&path, ".lock"), tmp_path: with_suffix(&path, ".tmp"), dir, path }
    }

    /// The counter file itself.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory that holds the counter, its lock and its temp file.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the current count without locking: a missing file means 0.
    ///
    /// # Errors
    /// [`CounterError::Corrupt`], [`CounterError::NotAFile`] or [`CounterError::Io`].
    pub fn read(&self) -> Result<u64, CounterError> {
        let meta = match fs::symlink_metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(CounterError::io(&self.path, "inspect it")(e)),
        };
        let kind = meta.file_type();
        if !kind.is_file() {
            let kind = if kind.is_dir() {
                "directory"
            } else if kind.is_symlink() {
                "symlink"
            } else {
                "special file"
            };
            return Err(CounterError::NotAFile { path: self.path.clone(), kind });
        }
        let mut bytes = Vec::new();
        match File::open(&self.path) {
            Ok(file) => file.take(MAX_LEN + 1).read_to_end(&mut bytes),
            // Replaced between the two calls by a rename: a missing file is 0.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => Err(e),
        }
        .map_err(CounterError::io(&self.path, "read it"))?;
        if bytes.len() as u64 > MAX_LEN {
            return Err(CounterError::Corrupt {
                path: self.path.clone(),
                reason: format!("it is longer than {MAX_LEN} bytes, more than any count"),
            });
        }
        parse(&bytes).map_err(|reason| CounterError::Corrupt { path: self.path.clone(), reason })
    }

    /// Checks what an increment needs besides a valid file: the lock file can be
    /// opened for writing and a new file can be made in the directory.
    ///
    /// # Errors
    /// [`CounterError::Io`] naming the file that could not be written.
    pub fn probe_writable(&self) -> Result<(), CounterError> {
        open_lock_file(&self.lock_path)?;
        tempfile::Builder::new()
            .prefix(".probe-")
            .tempfile_in(&self.dir)
            .map(drop)
            .map_err(CounterError::io(&self.path, "create a file in its directory"))
    }
}

fn open_lock_file(path: &Path) -> Result<File, CounterError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(CounterError::io(path, "open the lock file for writing"))
}

/// A counter file opened for durable increments: holds the lock file and the
/// directory open so that one increment costs as few system calls as it can.
#[derive(Debug)]
pub struct CounterWriter {
    file: CounterFile,
    lock: File,
    dir: File,
}

impl CounterWriter {
    /// Creates the directory if needed and opens the lock file and directory.
    ///
    /// # Errors
    /// [`CounterError::Io`] when the directory cannot be made or written.
    pub fn open(file: CounterFile) -> Result<Self, CounterError> {
        fs::create_dir_all(&file.dir).map_err(CounterError::io(&file.path, "create its directory"))?;
        let lock = open_lock_file(&file.lock_path)?;
        let dir = File::open(&file.dir).map_err(CounterError::io(&file.path, "open its directory"))?;
        Ok(Self { file, lock, dir })
    }

    /// The counter file this writer changes.
    #[must_use]
    pub fn file(&self) -> &CounterFile {
        &self.file
    }

    /// Adds `n` to the count durably and returns the count before: the caller
    /// owns the numbers `old..old + n`. When this returns `Ok`, the file holds
    /// `old + n` and that has reached the disk; when it returns `Err`, no number
    /// was handed out and the file holds `old` (see the directory-fsync case).
    ///
    /// # Errors
    /// The file is corrupt or not a file (left untouched), or a write, fsync or
    /// rename failed.
    pub fn increment_by(&mut self, n: u64) -> Result<u64, CounterError> {
        let lock_path = &self.file.lock_path;
        self.lock.lock().map_err(CounterError::io(lock_path, "lock the lock file"))?;
        let result = self.increment_locked(n);
        // Unlock explicitly (closing would too) to keep the descriptor for the
        // next increment. flock(LOCK_UN) on an open descriptor does not fail in
        // practice; if it did, the value is durable all the same, so say so in
        // the log rather than refuse pings that are already on disk.
        if let Err(e) = self.lock.unlock() {
            tracing::error!(path = %lock_path.display(), cause = %e, "could not unlock the counter lock file");
        }
        result
    }

    fn increment_locked(&self, n: u64) -> Result<u64, CounterError> {
        let old = self.file.read()?;
        let new = old.checked_add(n).ok_or_else(|| CounterError::Corrupt {
            path: self.file.path.clone(),
            reason: format!("adding {n} to {old} would pass the largest count"),
        })?;
        self.replace(new)?;
        if let Err(e) = self.sync_dir() {
            // The rename happened but may not survive a power loss, so the pings
            // are refused. Put the old value back so that the count on disk
            // stays what was acknowledged; if even that fails, the numbers
            // old..new are skipped (never repeated): the safe direction.
            if self.replace(old).and_then(|()| self.sync_dir()).is_err() {
                tracing::error!(path = %self.file.path.display(), old, new, "could not restore the counter after a failed directory fsync; numbers may be skipped");
            }
            return Err(e);
        }
        Ok(old)
    }

    /// Writes `value` to the temp file, fsyncs it and renames it over the file.
    fn replace(&self, value: u64) -> Result<(), CounterError> {
        let tmp = &self.file.tmp_path;
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(CounterError::io(tmp, "create the temp file"))?;
        out.write_all(format(value).as_bytes()).map_err(CounterError::io(tmp, "write the temp file"))?;
        // A failed fsync is final: the page may be marked clean after a
        // writeback error, so a retry could report success for lost data.
        out.sync_data().map_err(CounterError::io(tmp, "fsync the temp file"))?;
        drop(out);
        fs::rename(tmp, &self.file.path).map_err(CounterError::io(&self.file.path, "rename the temp file over it"))
    }

    fn sync_dir(&self) -> Result<(), CounterError> {
        self.dir.sync_all().map_err(CounterError::io(&self.file.path, "fsync its directory"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_digits_with_surrounding_whitespace() {
        assert_eq!(parse(b"0"), Ok(0));
        assert_eq!(parse(b"42\n"), Ok(42));
        assert_eq!(parse(b"  7 \r\n"), Ok(7));
        assert_eq!(parse(b"18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn parse_rejects_what_is_not_a_count() {
        for bad in [&b""[..], b"\n", b"abc", b"-1", b"+1", b"1 2", b"4.2", b"\xff\x00", b"18446744073709551616"] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn format_and_parse_round_trip() {
        for v in [0, 1, 99, u64::MAX] {
            assert_eq!(parse(format(v).as_bytes()), Ok(v));
        }
    }

    #[test]
    fn increments_hand_out_consecutive_ranges_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let file = CounterFile::new(dir.path().join("sub/counter.txt"));
        let mut writer = CounterWriter::open(file.clone()).unwrap();
        assert_eq!(file.read().unwrap(), 0);
        assert_eq!(writer.increment_by(3).unwrap(), 0);
        assert_eq!(writer.increment_by(1).unwrap(), 3);
        assert_eq!(fs::read_to_string(file.path()).unwrap(), "4\n");
        assert!(!file.tmp_path.exists(), "the temp file was renamed away");
    }

    #[test]
    fn a_corrupt_file_is_reported_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let file = CounterFile::new(dir.path().join("counter.txt"));
        fs::write(file.path(), "abc").unwrap();
        let mut writer = CounterWriter::open(file.clone()).unwrap();
        let err = writer.increment_by(1).unwrap_err().to_string();
        assert!(err.contains("counter.txt") && err.contains("corrupt"), "{err}");
        assert_eq!(fs::read_to_string(file.path()).unwrap(), "abc");
    }

    #[test]
    fn a_huge_file_is_corrupt_without_being_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = CounterFile::new(dir.path().join("counter.txt"));
        fs::write(file.path(), "1".repeat(10_000)).unwrap();
        assert!(matches!(file.read(), Err(CounterError::Corrupt { .. })));
    }

    #[test]
    fn a_directory_or_symlink_is_not_a_counter_file() {
        let dir = tempfile::tempdir().unwrap();
        let as_dir = CounterFile::new(dir.path().join("d"));
        fs::create_dir(as_dir.path()).unwrap();
        assert!(matches!(as_dir.read(), Err(CounterError::NotAFile { kind: "directory", .. })));
        let target = dir.path().join("real");
        fs::write(&target, "5").unwrap();
        let link = CounterFile::new(dir.path().join("link"));
        std::os::unix::fs::symlink(&target, link.path()).unwrap();
        let mut writer = CounterWriter::open(link.clone()).unwrap();
        assert!(matches!(writer.increment_by(1), Err(CounterError::NotAFile { kind: "symlink", .. })));
        assert!(fs::symlink_metadata(link.path()).unwrap().file_type().is_symlink());
    }
}

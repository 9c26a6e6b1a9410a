//! The shared log on disk: appending (with rotation) and reading from the end.
//!
//! The log is `LOG_FILE`; when an append would take it past
//! [`DEFAULT_MAX_BYTES`] it is renamed to `LOG_FILE.1` (replacing the previous
//! one) and a new log begins. Reading starts at the end and goes back only as
//! far as the entries asked for, into `LOG_FILE.1` when needed, so the cost of
//! serving does not depend on how big the log has grown.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use file_kit::{FileError, LockFile, dir_of, sibling, sync_dir, write_synced};

use crate::entry::{Entry, last_complete_entries};

/// Rotate when the log would pass 1 MiB: about 13,000 entries, 18 hours at
/// one entry every 5 s; with `LOG_FILE.1` at most 2 MiB are on the volume.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;

/// What an append did besides appending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Appended {
    /// The log was rotated to `LOG_FILE.1` first.
    pub rotated: bool,
}

/// The log's two files as they were at one moment, read together under the
/// log's lock (shared): what a backup keeps of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogCopy {
    /// `LOG_FILE.1`'s bytes (empty when it did not exist).
    pub rotated: Vec<u8>,
    /// `LOG_FILE`'s bytes (empty when it did not exist).
    pub current: Vec<u8>,
}

impl LogCopy {
    /// Its complete entries, oldest first.
    #[must_use]
    pub fn entries(&self) -> Vec<Entry> {
        let mut entries = last_complete_entries(&self.rotated, true, usize::MAX);
        entries.extend(last_complete_entries(&self.current, true, usize::MAX));
        entries
    }

    /// Neither file holds a byte.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rotated.is_empty() && self.current.is_empty()
    }
}

/// What putting a backup's log back did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRestored {
    /// There was no log: the backup's two files are the log again.
    Whole,
    /// The log held only entries newer than the backup's (a writer ran after
    /// the loss): the backup's entries now come before them.
    Before,
    /// The log already holds entries from the backup's time or earlier, so
    /// it holds that history: it is left as it is.
    Kept,
}

/// The first piece read from the end of a file, per entry wanted: an entry
/// is about 80 bytes. The piece is doubled until it holds the entries.
const READ_PER_ENTRY: u64 = 128;

/// A failed system call on the log (or its rotated copy, lock or
/// directory), naming the file and what was being done: the one message the
/// writer logs and the reader answers.
pub type LogError = FileError;

/// What the log is called in messages.
const WHAT: &str = "log file";

fn at(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> LogError {
    FileError::at(WHAT, path, op)
}

/// The log's two files and its size limit.
#[derive(Debug, Clone)]
pub struct LogFile {
    path: PathBuf,
    rotated: PathBuf,
    lock: LockFile,
    max_bytes: u64,
}

impl LogFile {
    /// Names the log; touches nothing on disk.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>, max_bytes: u64) -> Self {
        let path = path.into();
        Self { rotated: sibling(&path, ".1"), lock: LockFile::of(WHAT, &path), path, max_bytes }
    }

    /// The current log file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir(&self) -> &Path {
        dir_of(&self.path)
    }

    /// Makes the directory and the log file if missing, so that an unusable
    /// volume stops the writer at start-up rather than at its first entry.
    ///
    /// # Errors
    /// The directory or file cannot be created or opened for appending.
    pub fn ensure_writable(&self) -> Result<(), LogError> {
        fs::create_dir_all(self.dir()).map_err(at(&self.path, "create its directory"))?;
        self.open_for_append().map(drop)
    }

    fn open_for_append(&self) -> Result<File, LogError> {
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(at(&self.path, "open it for appending"))
    }

    /// Appends one entry durably (written in one call, then fsync'd),
    /// rotating first if the log would pass its limit. Holds an exclusive
    /// lock on `LOG_FILE.lock` while it does.
    ///
    /// # Errors
    /// Any failed system call; an entry that failed may be partly written,
    /// which readers skip and the next append repairs.
    pub fn append(&self, entry: &Entry) -> Result<Appended, LogError> {
        // Two writers overlap during a rolling update; the lock (on a stable
        // file, as the log itself is renamed) keeps them from rotating twice
        // and so dropping the previous `LOG_FILE.1`, and keeps readers from
        // reading across a rotation. Released when closed.
        let _lock = self.lock.lock_exclusive()?;
        let text = entry.to_string();
        let mut file = self.open_for_append()?;
        let mut len = file.metadata().map_err(at(&self.path, "inspect it"))?.len();
        let rotated = len > 0 && len + text.len() as u64 > self.max_bytes;
        if rotated {
            fs::rename(&self.path, &self.rotated).map_err(at(&self.path, "rotate it (rename it to LOG_FILE.1)"))?;
            sync_dir(WHAT, self.dir())?;
            file = self.open_for_append()?;
            len = file.metadata().map_err(at(&self.path, "inspect it"))?.len();
        }
        let mut buf = Vec::with_capacity(text.len() + 1);
        if len > 0 && !ends_with_newline(&file, len).map_err(at(&self.path, "read its last byte"))? {
            // A torn entry from a crash: end its line so the new entry starts
            // on a line of its own. The torn line stays (nothing is erased);
            // readers skip it.
            tracing::warn!(path = %self.path.display(), "log ended in a torn entry; starting a new line");
            buf.push(b'\n');
        }
        buf.extend_from_slice(text.as_bytes());
        file.write_all(&buf).map_err(at(&self.path, "append an entry"))?;
        file.sync_data().map_err(at(&self.path, "fsync it"))?;
        if len == 0 {
            // A new file: make its name durable too.
            sync_dir(WHAT, self.dir())?;
        }
        Ok(Appended { rotated })
    }

    /// The last `n` complete entries, oldest first, reading from the end of
    /// the log and, if it holds fewer, of the rotated one. Both are read under
    /// the log's lock, shared, so a rotation cannot fall between the two
    /// reads (which would return the rotated entries twice).
    ///
    /// # Errors
    /// A file exists but cannot be read, or the lock not taken. Missing files
    /// hold no entries.
    pub fn tail(&self, n: usize) -> Result<Vec<Entry>, LogError> {
        let _lock = self.lock.lock_shared()?;
        let mut entries = last_entries(&self.path, n).map_err(at(&self.path, "read it"))?;
        if entries.len() < n {
            let mut older = last_entries(&self.rotated, n - entries.len()).map_err(at(&self.rotated, "read it"))?;
            older.append(&mut entries);
            entries = older;
        }
        Ok(entries)
    }

    /// Both files as they are now, read under the log's lock (shared), so that
    /// no append or rotation falls inside the copy. Missing files are empty.
    ///
    /// # Errors
    /// A file exists but cannot be read, or the lock not taken.
    pub fn copy(&self) -> Result<LogCopy, LogError> {
        let _lock = self.lock.lock_shared()?;
        self.read_both()
    }

    /// Puts a backup's log back, under the log's lock, never dropping an
    /// entry: with no log, the backup's files become it; with a log of only
    /// newer entries and no rotated file, the backup's entries go before
    /// them; otherwise the log already has that history and is kept. Each
    /// file is written beside its place, flushed and renamed over it.
    ///
    /// # Errors
    /// A file cannot be read, written, flushed or renamed.
    pub fn restore(&self, backup: &LogCopy) -> Result<LogRestored, LogError> {
        let _lock = self.lock.lock_exclusive()?;
        let mut now = self.read_both()?;
        // The rotated file is written first: equal to the backup's, it is an
        // earlier restore that stopped before the current one, to be finished.
        if !now.rotated.is_empty() && now.rotated == backup.rotated {
            now.rotated.clear();
        }
        let backup_last = backup.entries().last().map(|entry| entry.at);
        let first_now = now.entries().first().map(|entry| entry.at);
        let newer = backup_last.zip(first_now).is_none_or(|(backup_last, first_now)| first_now > backup_last);
        let restored = if now.is_empty() {
            LogRestored::Whole
        } else if now.rotated.is_empty() && newer {
            LogRestored::Before
        } else {
            return Ok(LogRestored::Kept);
        };
        let mut current = backup.current.clone();
        if restored == LogRestored::Before {
            // A backup that ends in a torn entry must not swallow the first
            // line of what follows it.
            if current.last().is_some_and(|&b| b != b'\n') {
                current.push(b'\n');
            }
            current.extend_from_slice(&now.current);
        }
        if !backup.rotated.is_empty() {
            self.replace(&self.rotated, &backup.rotated)?;
        }
        self.replace(&self.path, &current)?;
        Ok(restored)
    }

    /// Both files as they are, missing ones empty; the caller holds the lock.
    fn read_both(&self) -> Result<LogCopy, LogError> {
        Ok(LogCopy { rotated: read_or_empty(&self.rotated)?, current: read_or_empty(&self.path)? })
    }

    fn replace(&self, path: &Path, bytes: &[u8]) -> Result<(), LogError> {
        let temp = sibling(path, ".restoring");
        write_synced(WHAT, &temp, bytes)?;
        fs::rename(&temp, path).map_err(at(path, "rename the restored copy over it"))?;
        sync_dir(WHAT, self.dir())
    }

    /// Whether the log can be read: true when either file opens, false when
    /// neither exists yet.
    ///
    /// # Errors
    /// A file exists but cannot be opened.
    pub fn exists_readable(&self) -> Result<bool, LogError> {
        for path in [&self.path, &self.rotated] {
            match File::open(path) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(at(path, "open it")(e)),
            }
        }
        Ok(false)
    }
}

fn read_or_empty(path: &Path) -> Result<Vec<u8>, LogError> {
    match fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(at(path, "read it")(e)),
    }
}

fn ends_with_newline(file: &File, len: u64) -> io::Result<bool> {
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
}

/// The last `n` complete entries of one file, reading back from its end in
/// doubling pieces until they hold `n` entries or the whole file.
fn last_entries(path: &Path, n: usize) -> io::Result<Vec<Entry>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut want = (READ_PER_ENTRY * (n as u64 + 1)).min(len);
    loop {
        let start = len - want;
        let mut piece = vec![0; usize::try_from(want).map_err(io::Error::other)?];
        file.read_exact_at(&mut piece, start)?;
        let entries = last_complete_entries(&piece, start == 0, n);
        if entries.len() >= n || start == 0 {
            return Ok(entries);
        }
        want = (want * 2).min(len);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use uuid::Uuid;

    /// A log rotating every few entries, appended to without pause, read by
    /// tails meanwhile, until there were 2,000 tails and 300 appends (60
    /// rotations): no tail holds an entry twice. Without the shared lock a
    /// rotation between reading `output.log` and `output.log.1` returns the
    /// rotated entries twice (seen within a few hundred tails).
    #[test]
    fn a_tail_read_during_rotations_never_repeats_an_entry() {
        use std::sync::atomic::AtomicU64;
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(LogFile::new(dir.path().join("output.log"), 400));
        let stop = Arc::new(AtomicBool::new(false));
        let appended = Arc::new(AtomicU64::new(0));
        let writer = {
            let (log, stop, appended) = (Arc::clone(&log), Arc::clone(&stop), Arc::clone(&appended));
            std::thread::spawn(move || {
                let id = Uuid::new_v4();
                while !stop.load(Ordering::Relaxed) {
                    let count = appended.load(Ordering::Relaxed);
                    let _ = log.append(&Entry::now(id, count)).unwrap();
                    appended.store(count + 1, Ordering::Relaxed);
                }
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut tails = 0;
        while tails < 2000 || appended.load(Ordering::Relaxed) < 300 {
            assert!(std::time::Instant::now() < deadline, "{tails} tails, {appended:?} appends in 60 s");
            let counts: Vec<u64> = log.tail(8).unwrap().iter().map(|e| e.count).collect();
            let distinct: HashSet<&u64> = counts.iter().collect();
            assert_eq!(distinct.len(), counts.len(), "tail {tails} repeats an entry: {counts:?}");
            tails += 1;
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
    }

    fn entries(count: u64) -> Vec<Entry> {
        let id = Uuid::new_v4();
        (0..count).map(|c| Entry::now(id, c)).collect()
    }

    #[test]
    fn tail_returns_the_last_entries_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::new(dir.path().join("output.log"), DEFAULT_MAX_BYTES);
        assert!(log.tail(3).unwrap().is_empty());
        let written = entries(200);
        for e in &written {
            let _ = log.append(e).unwrap();
        }
        assert_eq!(log.tail(1).unwrap(), written[199..]);
        assert_eq!(log.tail(150).unwrap(), written[50..]);
        assert_eq!(log.tail(1000).unwrap(), written);
    }

    #[test]
    fn rotation_bounds_the_log_and_tail_reads_across_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::new(dir.path().join("output.log"), 1000);
        let written = entries(30);
        let size = || fs::metadata(log.path()).map_or(0, |m| m.len());
        for e in &written {
            let before = size();
            let appended = log.append(e).unwrap();
            assert_eq!(appended.rotated, size() < before, "reported as rotated exactly when it was");
        }
        assert!(fs::metadata(log.path()).unwrap().len() <= 1000);
        assert!(fs::metadata(&log.rotated).unwrap().len() <= 1000);
        let last = log.tail(written.len()).unwrap();
        assert!(last.len() > 12, "entries of both files are read: {}", last.len());
        assert_eq!(last, written[written.len() - last.len()..]);
    }

    #[test]
    fn an_append_after_a_torn_entry_starts_a_new_line_and_keeps_the_torn_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::new(dir.path().join("output.log"), DEFAULT_MAX_BYTES);
        let [a, b] = <[Entry; 2]>::try_from(entries(2)).unwrap();
        let torn = &a.to_string()[..40];
        fs::write(log.path(), format!("{a}{torn}")).unwrap();
        assert_eq!(log.tail(5).unwrap(), vec![a.clone()]);
        let _ = log.append(&b).unwrap();
        assert_eq!(log.tail(5).unwrap(), vec![a.clone(), b.clone()]);
        assert_eq!(fs::read_to_string(log.path()).unwrap(), format!("{a}{torn}\n{b}"));
    }
}

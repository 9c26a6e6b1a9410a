//! The durable, cross-process increment (the contract's "The counter file").
//!
//! Under an exclusive `flock` on `<COUNTER_FILE>.lock`, per increment:
//! 1. check that the file open is the one the path names now (same device and
//!    inode, asked of `statx` for the inode alone), else reopen it: a person
//!    or another process may have replaced it;
//! 2. read the count from it (`pread`; another process may have changed it);
//! 3. if it holds the canonical record, write the new record in place with one
//!    `pwrite` at offset 0 and `fdatasync`: the size never changes, so nothing
//!    but the data block is flushed; otherwise (no file yet, a hand-written
//!    count) write the record to a temp file, `fdatasync` it, rename it over
//!    the counter file and fsync the directory;
//! 4. unlock; only then may the caller answer.
//!
//! In the steady state that is `flock`, `statx`, `pread`, `pwrite`,
//! `fdatasync`, `flock(LOCK_UN)`: one device flush per increment.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::{Duration, Instant};

use crate::disk::{Disk, Real};
use crate::error::{CounterError, io_error};
use crate::file::{CounterFile, MAX_LEN, Opened};
use crate::record;

/// A counter file opened for durable increments. Keeps the lock file, the
/// directory and the counter file open between increments, so that the common
/// case costs lock, `statx`, `pread`, `pwrite`, `fdatasync`, unlock.
#[derive(Debug)]
pub struct CounterWriter {
    file: CounterFile,
    lock: File,
    dir: File,
    current: Option<Opened>,
    last_flush: Duration,
    disk: Box<dyn Disk>,
}

/// What an increment did: the caller owns the numbers `first..first + n`;
/// the file held `found` before (below `first` only when it held less than
/// the floor asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// The first number of the increment.
    pub first: u64,
    /// The count the file held.
    pub found: u64,
}

impl CounterWriter {
    /// Creates the directory if needed and opens the lock file and directory.
    ///
    /// # Errors
    /// [`CounterError::Io`] when the directory cannot be made or written.
    pub fn open(file: CounterFile) -> Result<Self, CounterError> {
        Self::open_on(file, Box::new(Real))
    }

    pub(crate) fn open_on(file: CounterFile, disk: Box<dyn Disk>) -> Result<Self, CounterError> {
        std::fs::create_dir_all(&file.dir).map_err(io_error(&file.path, "create its directory"))?;
        let lock = file.lock.open()?;
        let dir = File::open(&file.dir).map_err(io_error(&file.path, "open its directory"))?;
        Ok(Self { file, lock, dir, current: None, last_flush: Duration::ZERO, disk })
    }

    /// The counter file this writer increments.
    #[must_use]
    pub fn file(&self) -> &CounterFile {
        &self.file
    }

    /// Adds `n` to the count durably and returns the count before: the caller
    /// owns the numbers `old..old + n`. When this returns `Ok`, the file holds
    /// `old + n` on the disk; when it returns `Err`, no number was handed out
    /// and the file holds `old` (or, if even restoring it failed, a larger
    /// count: numbers are then skipped, never repeated).
    ///
    /// # Errors
    /// The file is corrupt or not a file (left untouched), or a write, flush
    /// or rename failed.
    pub fn increment_by(&mut self, n: u64) -> Result<u64, CounterError> {
        self.increment_at_least(n, 0).map(|counted| counted.first)
    }

    /// As [`CounterWriter::increment_by`], counting on from `floor` if the
    /// file holds less: the numbers `floor..` were handed out already (a
    /// process knows the highest it answered), so a count that went below
    /// them (a hand edit, a restored copy) must not hand them out again.
    /// Says what the file held, so that the caller can tell.
    ///
    /// # Errors
    /// As [`CounterWriter::increment_by`].
    pub fn increment_at_least(&mut self, n: u64, floor: u64) -> Result<Counted, CounterError> {
        self.locked(false, |writer| writer.increment_locked(n, floor))
    }

    /// As [`CounterWriter::increment_at_least`] if the lock is free now;
    /// `None`, touching nothing, if another process (or writer) holds it:
    /// for a caller that must not wait for a lock (a runtime thread).
    ///
    /// # Errors
    /// As [`CounterWriter::increment_by`].
    pub fn try_increment_at_least(&mut self, n: u64, floor: u64) -> Option<Result<Counted, CounterError>> {
        match self.lock.try_lock() {
            Ok(()) => Some(self.holding_lock(|writer| writer.increment_locked(n, floor))),
            Err(std::fs::TryLockError::WouldBlock) => None,
            Err(std::fs::TryLockError::Error(e)) => Some(Err(io_error(self.file.lock.path(), "lock the lock file")(e))),
        }
    }

    /// The time the last successful increment spent waiting for the disk
    /// (`fdatasync`, and for a replacement also the directory's `fsync`):
    /// the floor under every increment's cost.
    #[must_use]
    pub fn last_flush(&self) -> Duration {
        self.last_flush
    }

    /// Reads the count under the lock, shared, with this writer's open files:
    /// what `/pings` answers.
    ///
    /// # Errors
    /// As [`CounterFile::read`].
    pub fn read(&mut self) -> Result<u64, CounterError> {
        self.locked(true, |writer| writer.load().map(|(count, _)| count))
    }

    fn locked<T>(
        &mut self,
        shared: bool,
        f: impl FnOnce(&mut Self) -> Result<T, CounterError>,
    ) -> Result<T, CounterError> {
        let lock_path = self.file.lock.path();
        let locked = if shared { self.lock.lock_shared() } else { self.lock.lock() };
        locked.map_err(io_error(lock_path, "lock the lock file"))?;
        self.holding_lock(f)
    }

    /// Runs `f` with the lock taken, then lets it go.
    fn holding_lock<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, CounterError>) -> Result<T, CounterError> {
        let result = f(self);
        // Unlock explicitly (closing would too) to keep the descriptor for the
        // next increment. flock(LOCK_UN) on an open descriptor does not fail in
        // practice; if it did, the value is durable all the same, so say so in
        // the log rather than refuse pings that are already on disk.
        if let Err(e) = self.lock.unlock() {
            tracing::error!(path = %self.file.lock.path().display(), cause = %e, "could not unlock the counter lock file");
        }
        result
    }

    /// Steps 1 and 2: the count, and whether the file holds its canonical record.
    fn load(&mut self) -> Result<(u64, bool), CounterError> {
        // Missing or unreadable: open_checked says which.
        let id = self.file.identity().ok().flatten();
        if id.is_none() || self.current.as_ref().map(|c| c.id) != id {
            self.current = self.file.open_checked(true)?;
        }
        let Some(current) = &self.current else { return Ok((0, false)) };
        let mut bytes = [0u8; MAX_LEN as usize + 1];
        let mut len = 0;
        while len < bytes.len() {
            match current.file.read_at(&mut bytes[len..], len as u64) {
                Ok(0) => break,
                Ok(read) => len += read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(&self.file.path, "read it")(e)),
            }
        }
        let count = self.file.parse(&bytes[..len])?;
        Ok((count, record::is_canonical(&bytes[..len], count)))
    }

    fn increment_locked(&mut self, n: u64, floor: u64) -> Result<Counted, CounterError> {
        let (old, canonical) = self.load()?;
        let first = old.max(floor);
        let new = first.checked_add(n).ok_or_else(|| CounterError::Corrupt {
            path: self.file.path.clone(),
            reason: format!("adding {n} to {first} would pass the largest count"),
        })?;
        self.last_flush = if canonical { self.overwrite(old, new)? } else { self.replace(old, new)? };
        Ok(Counted { first, found: old })
    }

    /// Step 3, in place: one `pwrite` of the whole record, one `fdatasync`
    /// (whose duration it returns).
    fn overwrite(&mut self, old: u64, new: u64) -> Result<Duration, CounterError> {
        let Some(current) = &self.current else { return self.replace(old, new) };
        let path = &self.file.path;
        let mut flushed = Duration::ZERO;
        let written = self
            .disk
            .write_at(&current.file, &record::format(new), 0)
            .map_err(io_error(path, "write it in place"))
            // A failed flush is final: the page may be marked clean after a
            // writeback error, so a retry could report success for lost data.
            .and_then(|()| {
                let started = Instant::now();
                let synced = self.disk.sync_data(&current.file).map_err(io_error(path, "fdatasync it"));
                flushed = started.elapsed();
                synced
            });
        if written.is_err() {
            // The page cache may hold the new record: put the old one back so
            // the count stays what was acknowledged. If that fails too, the
            // numbers old..new are skipped (never repeated): the safe direction.
            let restored = self
                .disk
                .write_at(&current.file, &record::format(old), 0)
                .and_then(|()| self.disk.sync_data(&current.file));
            if restored.is_err() {
                tracing::error!(path = %path.display(), old, new, "could not restore the counter after a failed write; numbers may be skipped");
            }
        }
        written.map(|()| flushed)
    }

    /// Step 3, by replacement: what turns any valid file (or none) into the
    /// canonical record. The temp file, once renamed, is the open counter file.
    /// Returns the time spent in the two flushes.
    fn replace(&mut self, old: u64, new: u64) -> Result<Duration, CounterError> {
        let tmp = &self.file.tmp_path;
        let mut out = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(io_error(tmp, "create the temp file"))?;
        self.disk.write(&mut out, &record::format(new)).map_err(io_error(tmp, "write the temp file"))?;
        let started = Instant::now();
        self.disk.sync_data(&out).map_err(io_error(tmp, "fsync the temp file"))?;
        let mut flushed = started.elapsed();
        self.disk.rename(tmp, &self.file.path).map_err(io_error(&self.file.path, "rename the temp file over it"))?;
        let started = Instant::now();
        let dir_synced = self.disk.sync_dir(&self.dir);
        flushed += started.elapsed();
        if let Err(e) = dir_synced {
            // The rename happened but may not survive a power loss, so the
            // pings are refused: put the old count back (in place, the file is
            // now canonical), as `overwrite` does.
            let restored = self.disk.write_at(&out, &record::format(old), 0).and_then(|()| self.disk.sync_data(&out));
            if restored.is_err() {
                tracing::error!(path = %self.file.path.display(), old, new, "could not restore the counter after a failed directory fsync; numbers may be skipped");
            }
            self.current = None;
            return Err(io_error(&self.file.path, "fsync its directory")(e));
        }
        let meta = out.metadata().map_err(io_error(&self.file.path, "inspect it"))?;
        self.current = Some(Opened { file: out, id: (meta.dev(), meta.ino()) });
        Ok(flushed)
    }
}

#[cfg(test)]
mod tests;

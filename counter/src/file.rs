//! Where the counter lives (the file and its stable companions), and the
//! exact read: under `<COUNTER_FILE>.lock`, shared.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use file_kit::{LockFile, dir_of, sibling};

use crate::error::{CounterError, WHAT, io_error};
use crate::record;

/// The longest counter file we read: anything longer than a record with some
/// whitespace is corrupt, and a huge file is never read whole.
pub(crate) const MAX_LEN: u64 = 64;

/// The counter file, named; touches nothing on disk until asked.
#[derive(Debug, Clone)]
pub struct CounterFile {
    pub(crate) path: PathBuf,
    pub(crate) lock: LockFile,
    pub(crate) tmp_path: PathBuf,
    pub(crate) dir: PathBuf,
}

impl CounterFile {
    /// Names the counter file.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let dir = dir_of(&path).to_path_buf();
        Self { lock: LockFile::of(WHAT, &path), tmp_path: sibling(&path, ".tmp"), dir, path }
    }

    /// The counter file itself.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the count exactly: under the lock file, shared, so it never sees
    /// a record half overwritten and never a count that is not yet durable.
    /// A missing file means 0. Where the lock file cannot be opened for writing
    /// (a read-only mount), it is opened for reading; where it does not exist
    /// and cannot be made, no pingpong ever ran there and nothing can race.
    ///
    /// # Errors
    /// [`CounterError::Corrupt`], [`CounterError::NotAFile`] or [`CounterError::Io`].
    pub fn read(&self) -> Result<u64, CounterError> {
        // The lock is released when `_lock` is closed, after the read.
        let _lock = self.lock.lock_shared()?;
        let Some(file) = self.open_checked(false)? else { return Ok(0) };
        let mut bytes = Vec::new();
        (&file.file).take(MAX_LEN + 1).read_to_end(&mut bytes).map_err(io_error(&self.path, "read it"))?;
        self.parse(&bytes)
    }

    /// Checks what an increment needs besides a valid file: the lock file can be
    /// opened for writing and a new file can be made in the directory.
    ///
    /// # Errors
    /// [`CounterError::Io`] naming the file that could not be written.
    pub fn probe_writable(&self) -> Result<(), CounterError> {
        self.lock.open()?;
        tempfile::Builder::new()
            .prefix(".probe-")
            .tempfile_in(&self.dir)
            .map(drop)
            .map_err(io_error(&self.path, "create a file in its directory"))
    }

    /// Opens the file the path names now, if any, and checks that it is a
    /// regular file and the very one opened (not replaced in between).
    pub(crate) fn open_checked(&self, write: bool) -> Result<Option<Opened>, CounterError> {
        let meta = match fs::symlink_metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&self.path, "inspect it")(e)),
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
        let file = match OpenOptions::new().read(true).write(write).open(&self.path) {
            Ok(file) => file,
            // Replaced between the two calls by a rename or removed: a missing file is 0.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(io_error(&self.path, if write { "open it for writing" } else { "open it" })(e));
            }
        };
        let opened = file.metadata().map_err(io_error(&self.path, "inspect it"))?;
        if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
            return Err(io_error(&self.path, "open it")(io::Error::other(
                "it was replaced while it was being opened; try again",
            )));
        }
        Ok(Some(Opened { file, id: (meta.dev(), meta.ino()) }))
    }

    /// The (device, inode) the path names now, `None` if nothing is there:
    /// what the writer checks before every increment.
    ///
    /// On Linux, asked of `statx` alone, without the timestamps. A plain
    /// `stat` also reads mtime and ctime, and since Linux 6.13 (multigrain
    /// timestamps) a read timestamp makes the next write stamp a fine-grained
    /// time, so every increment would change mtime and dirty the inode; on
    /// ext4 without a journal `fdatasync` then writes the inode as well as
    /// the data, a second I/O per increment (docs/batching.md). Elsewhere
    /// (macOS) a plain `lstat`: the same answer, and no such kernel
    /// behaviour to avoid.
    pub(crate) fn identity(&self) -> Result<Option<(u64, u64)>, CounterError> {
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{AtFlags, CWD, StatxFlags, makedev, statx};
            match statx(CWD, &self.path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::INO) {
                Ok(st) => return Ok(Some((makedev(st.stx_dev_major, st.stx_dev_minor), st.stx_ino))),
                Err(rustix::io::Errno::NOENT) => return Ok(None),
                // A kernel without statx (before 4.11): the plain lstat below.
                Err(rustix::io::Errno::NOSYS) => {}
                Err(e) => return Err(io_error(&self.path, "inspect it")(e.into())),
            }
        }
        match fs::symlink_metadata(&self.path) {
            Ok(meta) => Ok(Some((meta.dev(), meta.ino()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&self.path, "inspect it")(e)),
        }
    }

    pub(crate) fn parse(&self, bytes: &[u8]) -> Result<u64, CounterError> {
        if bytes.len() as u64 > MAX_LEN {
            return Err(CounterError::Corrupt {
                path: self.path.clone(),
                reason: format!("it is longer than {MAX_LEN} bytes, more than any count"),
            });
        }
        record::parse(bytes).map_err(|reason| CounterError::Corrupt { path: self.path.clone(), reason })
    }
}

/// An open counter file and its identity (device, inode).
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) file: File,
    pub(crate) id: (u64, u64),
}

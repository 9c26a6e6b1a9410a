//! The system calls on which an increment's outcome hangs, behind a seam: the
//! real ones, and in tests ones that fail on cue, so that the paths that put
//! the old record back after a failed write or flush run in plain
//! `cargo test` (the strace tests in `tests/reliability.rs` fail the real
//! calls of the real binary).

use std::fmt::Debug;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Writes, flushes and renames, as the increment makes them.
pub(crate) trait Disk: Debug + Send {
    /// `pwrite` of all of `buf` at `offset`.
    fn write_at(&mut self, file: &File, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `write` of all of `buf` at the file's position.
    fn write(&mut self, file: &mut File, buf: &[u8]) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&mut self, file: &File) -> io::Result<()>;
    /// `rename`.
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    /// `fsync` of a directory.
    fn sync_dir(&mut self, dir: &File) -> io::Result<()>;
}

/// The real system calls.
#[derive(Debug, Default)]
pub(crate) struct Real;

impl Disk for Real {
    fn write_at(&mut self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(buf, offset)
    }
    fn write(&mut self, file: &mut File, buf: &[u8]) -> io::Result<()> {
        file.write_all(buf)
    }
    fn sync_data(&mut self, file: &File) -> io::Result<()> {
        file.sync_data()
    }
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&mut self, dir: &File) -> io::Result<()> {
        dir.sync_all()
    }
}

/// For tests: the real calls, except that the calls whose numbers (counted
/// from 1, across all five kinds) are in `fail` return EIO without doing
/// anything.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Failing {
    pub(crate) fail: Vec<usize>,
    pub(crate) calls: Vec<&'static str>,
}

#[cfg(test)]
impl Failing {
    fn call(&mut self, name: &'static str) -> io::Result<()> {
        self.calls.push(name);
        if self.fail.contains(&self.calls.len()) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        Ok(())
    }
}

#[cfg(test)]
impl Disk for Failing {
    fn write_at(&mut self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        self.call("pwrite")?;
        Real.write_at(file, buf, offset)
    }
    fn write(&mut self, file: &mut File, buf: &[u8]) -> io::Result<()> {
        self.call("write")?;
        Real.write(file, buf)
    }
    fn sync_data(&mut self, file: &File) -> io::Result<()> {
        self.call("fdatasync")?;
        Real.sync_data(file)
    }
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.call("rename")?;
        Real.rename(from, to)
    }
    fn sync_dir(&mut self, dir: &File) -> io::Result<()> {
        self.call("fsync dir")?;
        Real.sync_dir(dir)
    }
}

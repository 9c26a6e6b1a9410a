//! The count in the counter file on the shared volume: the `counter` crate's
//! protocol, called from the commit worker's thread (its calls block, on the
//! disk and on the lock, and that thread has nothing else to do).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use counter::{CounterError, CounterFile, CounterWriter};

use super::{Store, StoreError};

/// The counter file, opened for increments.
#[derive(Debug)]
pub struct FileStore {
    writer: CounterWriter,
}

impl FileStore {
    /// Opens the counter on `path`, making its directory if needed. A corrupt
    /// file does not stop start-up (the pings answer 503 until it is
    /// repaired); an unusable directory does.
    ///
    /// # Errors
    /// The directory cannot be created or written.
    pub fn open(path: &Path) -> Result<Self, CounterError> {
        let writer = CounterWriter::open(CounterFile::new(path))?;
        match writer.file().read() {
            Ok(count) => tracing::info!(path = %path.display(), count, "counter opened"),
            Err(e) => tracing::error!(cause = %e, "counter file unusable until repaired"),
        }
        Ok(Self { writer })
    }
}

impl Store for FileStore {
    fn describe(&self) -> String {
        format!("counter file {}", self.writer.file().path().display())
    }

    fn increment_by(&mut self, n: u64) -> impl Future<Output = Result<u64, StoreError>> {
        std::future::ready(self.writer.increment_by(n).map_err(StoreError::from))
    }

    fn read(&mut self) -> impl Future<Output = Result<u64, StoreError>> {
        std::future::ready(self.writer.read().map_err(StoreError::from))
    }

    fn check(&mut self) -> impl Future<Output = Result<(), StoreError>> {
        let checked = self.writer.read().and_then(|_| self.writer.file().probe_writable());
        std::future::ready(checked.map_err(StoreError::from))
    }

    fn last_commit(&self) -> Duration {
        self.writer.last_flush()
    }
}

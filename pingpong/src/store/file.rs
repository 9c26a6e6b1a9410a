//! The count in the counter file on the shared volume: the `counter` crate's
//! protocol, called from the commit worker's thread (its calls block, on the
//! disk and on the lock, and that thread has nothing else to do), or, for a
//! lone ping, from the request's own thread ([`Store::direct`]).

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use counter::{Counted, CounterError, CounterFile, CounterWriter};

use super::{Committed, Direct, Store, StoreError};

/// The counter file, opened for increments.
#[derive(Debug)]
pub struct FileStore {
    writer: Arc<Shared>,
}

/// The writer, shared by the commit worker and direct commits. A thread
/// holds it only for one increment or read: a panic in one leaves the
/// writer whole (its state is the file's), so a poisoned lock is taken anyway.
#[derive(Debug)]
struct Shared(Mutex<CounterWriter>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, CounterWriter> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Direct for Shared {
    fn try_increment_by(&self, n: u64, floor: u64) -> Option<Result<Committed, StoreError>> {
        // Neither lock is waited for: the mutex (the worker's) nor the
        // file's `flock` (another pingpong's, on the same volume).
        let mut writer = self.0.try_lock().ok()?;
        let counted = writer.try_increment_at_least(n, floor)?;
        Some(committed(&writer, counted))
    }
}

fn increment(writer: &mut CounterWriter, n: u64, floor: u64) -> Result<Committed, StoreError> {
    let counted = writer.increment_at_least(n, floor);
    committed(writer, counted)
}

fn committed(writer: &CounterWriter, counted: Result<Counted, CounterError>) -> Result<Committed, StoreError> {
    let counted = counted?;
    Ok(Committed { first: counted.first, found: counted.found, flush: writer.last_flush() })
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
        Ok(Self { writer: Arc::new(Shared(Mutex::new(writer))) })
    }
}

impl Store for FileStore {
    fn describe(&self) -> String {
        format!("counter file {}", self.writer.lock().file().path().display())
    }

    fn increment_by(&mut self, n: u64, floor: u64) -> impl Future<Output = Result<Committed, StoreError>> {
        std::future::ready(increment(&mut self.writer.lock(), n, floor))
    }

    fn read(&mut self) -> impl Future<Output = Result<u64, StoreError>> {
        std::future::ready(self.writer.lock().read().map_err(StoreError::from))
    }

    fn check(&mut self) -> impl Future<Output = Result<(), StoreError>> {
        let mut writer = self.writer.lock();
        let checked = writer.read().and_then(|_| writer.file().probe_writable());
        std::future::ready(checked.map_err(StoreError::from))
    }

    fn direct(&self) -> Option<Arc<dyn Direct>> {
        Some(Arc::clone(&self.writer) as Arc<dyn Direct>)
    }
}

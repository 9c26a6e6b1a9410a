//! Where the count lives, behind one seam: the counter file ([`mod@file`]) or
//! PostgreSQL ([`postgres`]). The group commit ([`crate::commit`]) drives a
//! [`Store`] and the HTTP code never knows which one runs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use counter::CounterError;

pub mod file;
pub mod postgres;

pub use self::file::FileStore;
pub use self::postgres::{DatabaseError, PgSettings, PgStore};

/// A durable count that group commits add to. Its futures run on the commit
/// worker's own thread and runtime, one at a time, so they need not be
/// `Send`, and a store whose calls block (the file's) blocks only that thread.
pub trait Store: Send + 'static {
    /// Whether the store talks over the network: its runtime then gets an
    /// I/O driver (a store of files needs only timers).
    const NETWORK: bool = false;

    /// What and where it is, for the log.
    fn describe(&self) -> String;

    /// Adds `n` to the count durably, counting on from `floor` if the store
    /// holds less (the numbers below `floor` were answered already: they
    /// must not be handed out again), and says which numbers the caller now
    /// owns: `first..first + n`. On `Err` no number may be handed out (some
    /// may have been used, and are then skipped: never handed out twice).
    fn increment_by(&mut self, n: u64, floor: u64) -> impl Future<Output = Result<Committed, StoreError>>;

    /// The count, read exactly, without counting.
    fn read(&mut self) -> impl Future<Output = Result<u64, StoreError>>;

    /// Readiness: whether an increment could succeed now.
    fn check(&mut self) -> impl Future<Output = Result<(), StoreError>>;

    /// Upkeep while nothing is asked of it (a connection to restore, say);
    /// completes when it did some. The commit worker runs it between batches
    /// and drops it when a batch arrives, so it must be cancel-safe. A store
    /// that needs none never completes.
    fn maintain(&mut self) -> impl Future<Output = ()> {
        std::future::pending()
    }

    /// A way to commit a lone ping on the request's own thread, with no
    /// hand-off to the commit worker and back: for a store whose increment
    /// is a plain blocking call that needs no runtime of its own (the
    /// file's). `None`, the default, for the others.
    fn direct(&self) -> Option<Arc<dyn Direct>> {
        None
    }
}

/// A store's increment, callable from any thread, serialised with the
/// commit worker's.
pub trait Direct: Send + Sync + std::fmt::Debug {
    /// As [`Store::increment_by`]; `None`, touching nothing, if the worker
    /// (or another request) is using the store now.
    fn try_increment_by(&self, n: u64, floor: u64) -> Option<Result<Committed, StoreError>>;
}

/// A durable increment: the numbers `first..first + n` are the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The first number of the increment.
    pub first: u64,
    /// The count the store held before it. Below the floor asked for only
    /// when the count went back below numbers already answered (a hand
    /// edit, a restore, a failover to a server that lost commits): the
    /// increment then counted on from the floor, and this says from where.
    pub found: u64,
    /// How long it waited to be durable: the file's `fdatasync`, the
    /// database's commit round trip.
    pub flush: Duration,
}

/// Why a store could not count, read or be used. Cheap to clone: one failed
/// commit answers every ping that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The counter file is corrupt or could not be read or changed.
    #[error(transparent)]
    File(#[from] CounterError),
    /// The database is away, refused the statement, or its answer was lost.
    #[error(transparent)]
    Database(#[from] DatabaseError),
}

impl StoreError {
    /// The counter file holds something that is not a count, or is not a file.
    pub const CORRUPT_FILE: &str = "corrupt_file";
    /// A system call on the counter file failed (disk full, I/O error, read-only).
    pub const IO_ERROR: &str = "io_error";

    /// Its `reason` label in `pingpong_pings_refused`.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::File(CounterError::Corrupt { .. } | CounterError::NotAFile { .. }) => Self::CORRUPT_FILE,
            Self::File(CounterError::Io(_)) => Self::IO_ERROR,
            Self::Database(e) => e.reason(),
        }
    }
}

//! Group commit: pings that arrive together share one durable increment of
//! the store, whichever store it is.
//!
//! How a ping flows: the `/pingpong` handler queues a reply channel
//! ([`Committer::count_ping`]) and waits on it. One worker, on a thread of
//! its own with a single-threaded runtime, serves the queue in batches: it
//! takes every ping, read and readiness check that queued while its last
//! commit ran (`commit/queue.rs`), drops the pings whose clients have gone,
//! adds the number of the rest to the store in one durable increment
//! ([`Store::increment_by`]: one `fdatasync`, or one database commit), and
//! only then hands each ping its own number, the reads the count after the
//! batch, and the checks their verdict. Under load the cost of a commit is
//! shared by all the pings of a batch.
//!
//! With one to four connections open, `commit/pace.rs` tunes this at two
//! points, and only there: a lone ping commits itself without the hand-off
//! (`Pace::try_alone`), and the worker holds for the group it answered
//! before its next commit (`Pace::after_batch`).
//!
//! Reads (`/pings`) and checks (`/readyz`) take the same path as the pings,
//! so readiness sees what a ping would meet (a dead worker, a corrupt file,
//! a database away), and a flood of `/pings` costs one read per batch: it
//! cannot keep the counter's lock from the increments (Linux `flock` grants
//! new shared locks while an exclusive request waits, so readers locking on
//! their own could starve the pings).
//!
//! The queue is unbounded: what waits in it is bounded by the requests being
//! handled, at most one per open connection, which the server bounds
//! (`service_kit::http_server::MAX_CONNECTIONS`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use service_kit::Service;
use tokio::sync::oneshot;

use self::pace::{BatchDone, Pace};
use self::queue::{Batch, Queue, Reply, Request};
use crate::metrics::PingMetrics;
use crate::store::{Committed, Store, StoreError};

mod pace;
mod queue;

pub use self::pace::{ALONE, REGROUP};

/// Why a ping, read or check got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// The store could not count, read or be used; nothing was counted.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The commit worker is not running: stopped at shutdown, or dead.
    #[error("the counter is unavailable: its commit worker has stopped")]
    Stopped,
}

impl CommitError {
    /// Every [`CommitError::reason`], so that each metric series exists
    /// from the start.
    pub const REASONS: [&str; 8] = [
        StoreError::CORRUPT_FILE,
        StoreError::IO_ERROR,
        crate::store::DatabaseError::UNREACHABLE,
        crate::store::DatabaseError::READ_ONLY,
        crate::store::DatabaseError::FAILED,
        crate::store::DatabaseError::WAITING,
        crate::store::DatabaseError::OUTCOME_UNKNOWN,
        Self::WORKER_STOPPED,
    ];
    const WORKER_STOPPED: &str = "worker_stopped";

    /// Its `reason` label in `pingpong_pings_refused`.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Store(e) => e.reason(),
            Self::Stopped => Self::WORKER_STOPPED,
        }
    }
}

/// What the handles share; the last one gone closes the queue.
#[derive(Debug)]
struct Shared {
    queue: Arc<Queue>,
    pace: Arc<Pace>,
    answered: Arc<Answered>,
}

/// The count after the highest number this process has answered: every
/// increment counts on from at least here, so a store whose count went back
/// below it (a hand edit while pingpong runs, a restore, a failover to a
/// server that lost commits, a split brain) never makes this process answer
/// a number twice, and says so, once, when it happens. A process started
/// afterwards knows nothing of it: a deliberate reset is made with every
/// pingpong stopped (docs/contract.md).
#[derive(Debug, Default)]
struct Answered(AtomicU64);

impl Answered {
    /// The floor for the next increment.
    fn floor(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// An increment of `n` pings came back: records it (in the metrics too)
    /// before any of its numbers is answered.
    fn record(&self, result: &Result<Committed, StoreError>, n: u64, metrics: &PingMetrics) {
        metrics.store(result.is_ok());
        let Ok(commit) = result else { return };
        if commit.found < commit.first {
            tracing::error!(
                store_held = commit.found,
                answered_up_to = commit.first - 1,
                "the count went back below numbers this process already answered; counting on from {}, so none is answered twice",
                commit.first
            );
            metrics.went_back();
        }
        self.0.fetch_max(commit.first + n, Ordering::AcqRel);
        metrics.committed(n, commit.flush, commit.first + n);
    }
}

impl Drop for Shared {
    /// The last handle gone without shutdown (a test's router, say): the
    /// worker still ends, after answering what is queued.
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// Held by the worker: when it ends, even by a panic, requests that wait or
/// arrive later fail at once with [`CommitError::Stopped`] (their reply
/// channels are dropped) instead of waiting for an answer that never comes.
struct Serving<'a>(&'a Queue);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.unserved();
    }
}

/// A handle to the commit worker; cheap to clone, one per request.
#[derive(Debug, Clone)]
pub struct Committer {
    shared: Arc<Shared>,
    metrics: Arc<PingMetrics>,
}

impl Committer {
    /// Starts the worker `counter-commit` as a worker of `service`: it serves
    /// until shutdown, when it answers what is queued and ends. It is a
    /// thread of its own, not tasks on the server's runtime, because it lives
    /// as long as the process and a store may block in every call.
    ///
    /// # Errors
    /// The thread or its runtime could not be made.
    pub fn start<S: Store>(service: &mut Service, store: S, metrics: Arc<PingMetrics>) -> std::io::Result<Self> {
        Self::start_holding(service, store, metrics, REGROUP)
    }

    /// [`Committer::start`], with the worker holding up to `within` for a
    /// group (tests hold longer, to make it certain).
    fn start_holding<S: Store>(
        service: &mut Service,
        store: S,
        metrics: Arc<PingMetrics>,
        within: Duration,
    ) -> std::io::Result<Self> {
        let mut runtime = tokio::runtime::Builder::new_current_thread();
        runtime.enable_time();
        if S::NETWORK {
            runtime.enable_io();
        }
        let runtime = runtime.build()?;
        let shared = Arc::new(Shared {
            queue: Arc::default(),
            pace: Arc::new(Pace::new(store.direct(), service.open_connections(), within)),
            answered: Arc::default(),
        });
        let (queue, pace, answered) =
            (Arc::clone(&shared.queue), Arc::clone(&shared.pace), Arc::clone(&shared.answered));
        let closed = Arc::clone(&queue);
        let worker_metrics = Arc::clone(&metrics);
        service.spawn_thread(
            "counter-commit",
            move || {
                let _serving = Serving(&queue);
                tracing::info!(store = store.describe(), "commit worker started");
                runtime.block_on(commit_loop(store, &queue, &pace, &answered, &worker_metrics));
            },
            move || closed.close(),
        )?;
        Ok(Self { shared, metrics })
    }

    /// Counts one ping and returns its number once the store durably holds it.
    ///
    /// # Errors
    /// The increment failed (nothing was counted) or the worker has stopped.
    pub async fn count_ping(&self) -> Result<u64, CommitError> {
        let Shared { queue, pace, answered } = &*self.shared;
        if let Some(result) = pace.try_alone(queue, answered.floor(), &self.metrics) {
            answered.record(&result, 1, &self.metrics);
            return Ok(result?.first);
        }
        self.ask(Request::Ping).await
    }

    /// The current count, read exactly without counting.
    ///
    /// # Errors
    /// The read failed or the worker has stopped.
    pub async fn count(&self) -> Result<u64, CommitError> {
        self.ask(Request::Read).await
    }

    /// Whether a ping could be counted now (readiness).
    ///
    /// # Errors
    /// Why not: the store's reason, or a stopped worker.
    pub async fn check(&self) -> Result<(), CommitError> {
        self.ask(Request::Check).await
    }

    async fn ask<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, CommitError> {
        let (reply, answer) = oneshot::channel();
        if !self.shared.queue.push(request(reply)) {
            return Err(CommitError::Stopped);
        }
        Ok(answer.await.map_err(|_| CommitError::Stopped)??)
    }
}

async fn commit_loop<S: Store>(mut store: S, queue: &Queue, pace: &Pace, answered: &Answered, metrics: &PingMetrics) {
    // `pingpong_store_available` from the start, and again whenever the
    // store's own upkeep changed something (a connection made or lost).
    metrics.store(store.check().await.is_ok());
    loop {
        let batch = tokio::select! {
            biased;
            batch = queue.next_batch() => batch,
            () = store.maintain() => {
                metrics.store(store.check().await.is_ok());
                continue;
            }
        };
        let Some(batch) = batch else { break };
        let done = commit(&mut store, queue, answered, batch, metrics).await;
        pace.after_batch(queue, done, metrics);
    }
    tracing::info!("commit worker stopped");
}

/// One batch: one increment for its pings, then every answer.
async fn commit<S: Store>(
    store: &mut S,
    queue: &Queue,
    answered: &Answered,
    Batch { mut pings, reads, checks }: Batch,
    metrics: &PingMetrics,
) -> BatchDone {
    // A client that went away before its turn gets no number: counting it
    // would make the count run ahead of the answers.
    pings.retain(|reply| !reply.is_closed());
    let n = pings.len();
    let mut queued = 0;
    let count = if n > 0 {
        let result = store.increment_by(n as u64, answered.floor()).await;
        answered.record(&result, n as u64, metrics);
        // Counted before the answers, some of which may be back in the
        // queue before they all are sent.
        queued = queue.pings_waiting().unwrap_or(0);
        match &result {
            // The client may have gone since; its number is then counted
            // but unanswered, as with any lost response.
            Ok(commit) => (commit.first..).zip(pings).for_each(|(number, reply)| drop(reply.send(Ok(number)))),
            Err(e) => answer_all(pings, &Err(e.clone())),
        }
        // The reads that waited meanwhile see the count after this batch.
        Some(result.map(|commit| commit.first + n as u64))
    } else if reads.is_empty() {
        None
    } else {
        let read = store.read().await;
        metrics.store(read.is_ok());
        if let Ok(count) = &read {
            metrics.saw(*count);
        }
        Some(read)
    };
    if let Some(count) = count {
        answer_all(reads, &count);
    }
    if !checks.is_empty() {
        let checked = store.check().await;
        metrics.store(checked.is_ok());
        answer_all(checks, &checked);
    }
    BatchDone { pings: n, queued }
}

fn answer_all<T: Clone>(replies: Vec<Reply<T>>, answer: &Result<T, StoreError>) {
    for reply in replies {
        let _ = reply.send(answer.clone());
    }
}

#[cfg(test)]
mod tests;

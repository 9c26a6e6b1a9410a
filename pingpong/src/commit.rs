//! Group commit: pings that arrive together share one durable increment of
//! the store, whichever store it is.
//!
//! How a ping flows: a lone ping (at most [`ALONE`] connections open, no
//! other ping in flight, the last commit a single ping, the worker idle with
//! nothing queued) is committed by its own request, on its own thread, with
//! no hand-off (for a store that allows it: the file's, [`Store::direct`]);
//! it holds the store while it does, so pings arriving meanwhile queue for
//! the worker.
//! Otherwise the `/pingpong` handler queues a reply channel
//! ([`Committer::count_ping`]) and waits on it. One worker, on a thread of
//! its own with a single-threaded runtime, serves the queue in batches: it
//! takes every ping, read and readiness check that queued while its last
//! commit ran (`commit/queue.rs`'s rule), drops the pings whose clients have gone,
//! adds the number of the rest to the store in one durable increment
//! ([`Store::increment_by`]: one `fdatasync`, or one database commit), and
//! only then hands each ping its own number, the reads the count after the
//! batch, and the checks their verdict. Under load the cost of a commit is
//! shared by all the pings of a batch; a lone ping is committed at once.
//!
//! With few connections open (at most [`ALONE`]), the worker, after
//! answering a group of two or more pings (those it committed and those that
//! queued meanwhile), waits up to [`REGROUP`] for the group to be back with
//! its next pings before it commits again (`commit/queue.rs`): otherwise two
//! connections take turns at the flush, one ping per commit each, instead
//! of sharing it. Under load it never waits: the next batch is queued, and a
//! wait would hold it (a rule that lingered at every count measured 15%
//! slower at 50 connections: `docs/batching.md`).
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
//! (`service_kit::serve::MAX_CONNECTIONS`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use service_kit::{OpenConnections, Service};
use tokio::sync::oneshot;

use self::queue::{Batch, Kind, Queue, Reply};
use crate::metrics::PingMetrics;
use crate::store::{Committed, Direct, Store, StoreError};

mod queue;

/// The most connections open for a ping to count as alone: a person's
/// client, a probe, a scrape, a proxy's spare connection. Under load there
/// are more, and every ping then goes through the worker, so that a busy
/// server never blocks one of its HTTP threads on a flush: a direct
/// commit under load measured no faster, and perhaps slower
/// (`docs/batching.md`). At 4 connections the two designs measured equal.
/// It bounds the worker's wait for a group ([`REGROUP`]) as well: with more
/// connections the next batch is already queued when one is answered.
pub const ALONE: usize = 4;

/// How long the worker, with at most [`ALONE`] connections open, waits after
/// answering a group of two or more pings for that group to be back before
/// its next commit. A client's turn (the answer out, its next ping in) takes
/// tens of microseconds here; 100 µs measured 1.21x at 4 connections where
/// 200 µs measured 1.44x (`docs/batching.md`).
pub const REGROUP: Duration = Duration::from_micros(200);

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

/// What a lone ping needs to commit itself: the store's direct increment,
/// and the server's open connections, to tell whether it is alone.
#[derive(Debug, Clone)]
struct DirectCommit {
    store: Arc<dyn Direct>,
    open: OpenConnections,
}

/// When the worker waits for the group it answered to be back: while few
/// connections are open, up to `within`.
#[derive(Debug)]
struct Regroup {
    open: OpenConnections,
    within: Duration,
}

/// What the handles share; the last one gone closes the queue.
#[derive(Debug)]
struct Shared {
    queue: Arc<Queue>,
    /// Pings between `count_ping`'s start and its answer.
    in_flight: AtomicUsize,
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

    /// `n` pings of `commit` are about to be answered.
    fn committed(&self, commit: &Committed, n: u64, metrics: &PingMetrics) {
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
    /// How a lone ping commits itself (`None`: always queue).
    direct: Option<DirectCommit>,
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
        Self::start_regrouping(service, store, metrics, REGROUP)
    }

    /// [`Committer::start`], with the worker waiting up to `within` for a
    /// group to be back (tests wait longer, to make it certain).
    fn start_regrouping<S: Store>(
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
        let open = service.open_connections();
        let direct = store
            .direct()
            .filter(|_| cfg!(feature = "direct-commit"))
            .map(|store| DirectCommit { store, open: open.clone() });
        let regroup = Regroup { open, within };
        let queue = Arc::new(Queue::default());
        let (served, closed) = (Arc::clone(&queue), Arc::clone(&queue));
        let worker_metrics = Arc::clone(&metrics);
        let answered = Arc::new(Answered::default());
        let worker_answered = Arc::clone(&answered);
        service.spawn_thread(
            "counter-commit",
            move || {
                let _serving = Serving(&served);
                tracing::info!(store = store.describe(), "commit worker started");
                runtime.block_on(commit_loop(store, &served, &worker_answered, &regroup, &worker_metrics));
            },
            move || closed.close(),
        )?;
        Ok(Self { shared: Arc::new(Shared { queue, in_flight: AtomicUsize::new(0), answered }), direct, metrics })
    }

    /// Counts one ping and returns its number once the store durably holds it.
    ///
    /// # Errors
    /// The increment failed (nothing was counted) or the worker has stopped.
    pub async fn count_ping(&self) -> Result<u64, CommitError> {
        let _in_flight = InFlight::enter(&self.shared.in_flight);
        // A lone ping: few connections are open (not a server under load),
        // no other ping is in flight, the last commit counted one ping (so
        // the pings are not coming in groups, whose next member would wait
        // behind this flush instead of sharing it), the worker waits for
        // work with nothing queued, and the store is free. The
        // increment blocks this runtime thread for one flush, as the worker's
        // thread would be blocked for it; only one request at a time can
        // hold the store, the others queue.
        if let Some(direct) = &self.direct
            && direct.open.get() <= ALONE
            && self.shared.in_flight.load(Ordering::Acquire) == 1
            && self.shared.queue.last_batch() == 1
            && self.shared.queue.idle()
            && let Some(result) = direct.store.try_increment_by(1, self.shared.answered.floor())
        {
            self.metrics.store(result.is_ok());
            self.shared.queue.committed(1);
            let commit = result?;
            self.shared.answered.committed(&commit, 1, &self.metrics);
            self.metrics.direct();
            self.metrics.committed(1, commit.flush, commit.first + 1);
            return Ok(commit.first);
        }
        self.ask(Kind::Ping).await
    }

    /// The current count, read exactly without counting.
    ///
    /// # Errors
    /// The read failed or the worker has stopped.
    pub async fn count(&self) -> Result<u64, CommitError> {
        self.ask(Kind::Read).await
    }

    /// Whether a ping could be counted now (readiness).
    ///
    /// # Errors
    /// Why not: the store's reason, or a stopped worker.
    pub async fn check(&self) -> Result<(), CommitError> {
        self.ask(Kind::Check).await.map(drop)
    }

    async fn ask(&self, kind: Kind) -> Result<u64, CommitError> {
        let (reply, answer) = oneshot::channel();
        if !self.shared.queue.push(kind, reply) {
            return Err(CommitError::Stopped);
        }
        Ok(answer.await.map_err(|_| CommitError::Stopped)??)
    }
}

async fn commit_loop<S: Store>(
    mut store: S,
    queue: &Queue,
    answered: &Answered,
    regroup: &Regroup,
    metrics: &PingMetrics,
) {
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
        // Under load, nothing of the wait is done, not even counting the group.
        let few = cfg!(feature = "regroup") && regroup.open.get() <= ALONE;
        let group = commit(&mut store, queue, answered, batch, few, metrics).await;
        // A lone ping's client is not waited for: its next ping commits
        // itself (where the store allows it), with no hand-off at all.
        if group > 1 {
            metrics.regrouped(queue.regroup(group, regroup.within));
        }
    }
    tracing::info!("commit worker stopped");
}

/// One batch: one increment for its pings, then every answer. With
/// `count_group`, returns the group to wait for before the next commit: the
/// pings answered and those that queued meanwhile (0 if none was answered,
/// or without `count_group`).
async fn commit<S: Store>(
    store: &mut S,
    queue: &Queue,
    answered: &Answered,
    Batch { mut pings, reads, checks }: Batch,
    count_group: bool,
    metrics: &PingMetrics,
) -> usize {
    // A client that went away before its turn gets no number: counting it
    // would make the count run ahead of the answers.
    pings.retain(|reply| !reply.is_closed());
    let n = pings.len() as u64;
    if n > 0 {
        queue.committed(n);
    }
    let mut group = 0;
    let count = if pings.is_empty() {
        if reads.is_empty() { None } else { Some(store.read().await) }
    } else {
        let result = store.increment_by(n, answered.floor()).await;
        match &result {
            Ok(commit) => {
                answered.committed(commit, n, metrics);
                metrics.committed(n, commit.flush, commit.first + n);
                // Counted before the answers, some of which may be back
                // in the queue before they all are sent.
                if count_group {
                    group = queue.waiting() + pings.len();
                }
                for (number, reply) in (commit.first..).zip(pings) {
                    // The client may have gone since; its number is then
                    // counted but unanswered, as with any lost response.
                    let _ = reply.send(Ok(number));
                }
            }
            Err(e) => answer_all(pings, &Err(e.clone())),
        }
        // The reads that waited meanwhile see the count after this batch.
        Some(result.map(|commit| commit.first + n))
    };
    // A batch of pings always has a count (the increment's); one of reads
    // alone, the read's.
    if let Some(count) = count {
        metrics.store(count.is_ok());
        if let Ok(count) = &count {
            metrics.saw(*count);
        }
        answer_all(reads, &count);
    }
    if !checks.is_empty() {
        let checked = store.check().await.map(|()| 0);
        metrics.store(checked.is_ok());
        answer_all(checks, &checked);
    }
    group
}

/// One ping in `count_ping`, counted while it is there (a cancelled request
/// too, by its drop).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn answer_all(replies: Vec<Reply>, answer: &Result<u64, StoreError>) {
    for reply in replies {
        let _ = reply.send(answer.clone());
    }
}

#[cfg(test)]
mod tests;

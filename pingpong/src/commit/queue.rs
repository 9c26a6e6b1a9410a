//! The commit worker's queue: the pings, reads and readiness checks that
//! wait for it, the rule by which it takes them ([`take_batch`]), its sleep
//! and wake-up, and its wait for a group to be back ([`Queue::regroup`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use crate::store::StoreError;

/// The most pings one increment counts (bounds the work of one batch).
const MAX_BATCH: usize = 4096;

/// Where the worker sends a ping's number, a read's count, or a check's
/// verdict.
pub(super) type Reply = oneshot::Sender<Result<u64, StoreError>>;

/// What a request asks the worker for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// Count a ping: a number.
    Ping,
    /// Read the count without counting.
    Read,
    /// Readiness: could a ping be counted now?
    Check,
}

/// What waits for the worker.
#[derive(Debug, Default)]
struct Pending {
    pings: Vec<Reply>,
    reads: Vec<Reply>,
    checks: Vec<Reply>,
    /// The worker waits for work: only then is it notified, so a burst of
    /// pings costs one wake-up, not one per ping.
    sleeping: bool,
    /// Stop: answer what is queued, then end.
    closed: bool,
    /// The worker has ended (normally or by a panic): nobody will answer.
    unserved: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.pings.is_empty() && self.reads.is_empty() && self.checks.is_empty()
    }
}

/// One batch: the pings to count together, and the reads and checks to
/// answer with them.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) pings: Vec<Reply>,
    pub(super) reads: Vec<Reply>,
    pub(super) checks: Vec<Reply>,
}

/// The batching rule: everything that waits, up to [`MAX_BATCH`] pings.
fn take_batch(pending: &mut Pending) -> Batch {
    let take = pending.pings.len().min(MAX_BATCH);
    Batch {
        pings: pending.pings.drain(..take).collect(),
        reads: std::mem::take(&mut pending.reads),
        checks: std::mem::take(&mut pending.checks),
    }
}

#[derive(Debug)]
pub(super) struct Queue {
    pending: Mutex<Pending>,
    changed: Notify,
    /// The pings of the last commit (the worker's, or a direct one's).
    last_batch: AtomicU64,
}

impl Default for Queue {
    fn default() -> Self {
        Self { pending: Mutex::default(), changed: Notify::new(), last_batch: AtomicU64::new(1) }
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // The lock guards plain data that every writer leaves whole, so a
        // panic elsewhere while holding it does not make it unusable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request's side: queues `reply`, waking the worker if it waits;
    /// `false` (and `reply` dropped) once the queue is closed or unserved.
    pub(super) fn push(&self, kind: Kind, reply: Reply) -> bool {
        let mut pending = self.lock();
        if pending.unserved || pending.closed {
            return false;
        }
        match kind {
            Kind::Ping => pending.pings.push(reply),
            Kind::Read => pending.reads.push(reply),
            Kind::Check => pending.checks.push(reply),
        }
        if pending.sleeping {
            pending.sleeping = false;
            self.changed.notify_one();
        }
        true
    }

    /// Stop: the worker answers what is queued, then ends; nothing more is
    /// queued.
    pub(super) fn close(&self) {
        let mut pending = self.lock();
        pending.closed = true;
        self.changed.notify_one();
    }

    /// The worker has ended: drops every waiting reply (its request fails at
    /// once) and refuses later ones.
    pub(super) fn unserved(&self) {
        let mut pending = self.lock();
        pending.unserved = true;
        pending.pings.clear();
        pending.reads.clear();
        pending.checks.clear();
    }

    /// The worker's side: the next batch, waiting for one; `None` once closed
    /// and empty. Cancel-safe: dropped while waiting, it loses nothing.
    pub(super) async fn next_batch(&self) -> Option<Batch> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut pending = self.lock();
                if !pending.is_empty() {
                    pending.sleeping = false;
                    return Some(take_batch(&mut pending));
                }
                if pending.closed {
                    return None;
                }
                pending.sleeping = true;
            }
            changed.await;
        }
    }

    /// The worker's side, after answering a group: waits until `group` pings
    /// are queued, at most `within`, or the queue is closed. Whether the
    /// group came back.
    ///
    /// It polls, yielding its core between looks, and holds the worker's
    /// thread as a flush does: the group is typically back within tens of
    /// microseconds, less than waking a sleeping thread costs on these
    /// machines. Against the direct commit alone, sleeping on a `Condvar`
    /// that the pushes notify measured 1.16x at 2 connections and 1.09x at
    /// 4, polling 1.46x and 1.29x; polling without yielding starved the
    /// threads it waits for when they shared its core (0.78x with
    /// PostgreSQL at 4 connections). See `docs/batching.md`.
    pub(super) fn regroup(&self, group: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            {
                let pending = self.lock();
                if pending.pings.len() >= group {
                    return true;
                }
                if pending.closed {
                    return false;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::yield_now();
        }
    }

    /// Pings waiting for the worker.
    pub(super) fn waiting(&self) -> usize {
        self.lock().pings.len()
    }

    /// The worker waits for work and nothing is queued: a ping may be
    /// committed directly. False once closed or unserved, so a ping after
    /// shutdown (or after the worker died) is refused as always.
    pub(super) fn idle(&self) -> bool {
        let pending = self.lock();
        pending.sleeping && pending.is_empty() && !pending.closed && !pending.unserved
    }

    /// A commit counted `pings` pings.
    pub(super) fn committed(&self, pings: u64) {
        self.last_batch.store(pings, Ordering::Relaxed);
    }

    /// How many pings the last commit counted.
    pub(super) fn last_batch(&self) -> u64 {
        self.last_batch.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_every_waiting_ping_up_to_the_bound_and_every_read_and_check() {
        let mut pending = Pending::default();
        for _ in 0..MAX_BATCH + 3 {
            pending.pings.push(oneshot::channel().0);
        }
        pending.reads.push(oneshot::channel().0);
        pending.checks.push(oneshot::channel().0);
        let batch = take_batch(&mut pending);
        assert_eq!((batch.pings.len(), batch.reads.len(), batch.checks.len()), (MAX_BATCH, 1, 1));
        assert_eq!(pending.pings.len(), 3, "the rest waits for the next batch");
        assert!(pending.reads.is_empty() && pending.checks.is_empty());
    }

    /// The wait for a group ends when its last member is queued, not at the
    /// end of its window (a minute here: a wait that missed the push would
    /// show as a test that takes a minute and fails).
    #[test]
    fn a_regroup_ends_once_the_group_is_queued() {
        let queue = Queue::default();
        assert!(queue.push(Kind::Ping, oneshot::channel().0));
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| {
                let started = Instant::now();
                (queue.regroup(2, Duration::from_secs(60)), started.elapsed())
            });
            assert!(queue.push(Kind::Ping, oneshot::channel().0));
            let (back, waited) = waiting.join().unwrap();
            assert!(back, "the group was queued");
            assert!(waited < Duration::from_secs(30), "the wait ran {waited:?}, to its window's end");
        });
    }

    #[test]
    fn a_regroup_gives_up_at_the_end_of_its_window_or_at_the_close() {
        let queue = Queue::default();
        assert!(queue.push(Kind::Ping, oneshot::channel().0));
        assert!(queue.regroup(1, Duration::ZERO), "a group already queued needs no wait");
        assert!(!queue.regroup(2, Duration::from_millis(1)), "nobody came back");
        queue.close();
        let started = Instant::now();
        assert!(!queue.regroup(2, Duration::from_secs(60)), "closed: nobody will come");
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

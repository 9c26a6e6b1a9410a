//! The group commit's tuning for few connections, and nothing else: drop
//! this file and its two calls in `commit.rs` ([`Pace::try_alone`] and
//! [`Pace::after_batch`]) and the group commit still counts every ping once,
//! only slower at one to four connections.
//!
//! Why it exists: a plain group commit hands every ping to the worker and
//! back, which a lone client pays on every ping; and two or three clients
//! take turns at the flush (one ping per commit each) instead of sharing
//! it. So:
//! - **try alone**: a ping that finds itself alone (few connections open,
//!   the last commit a single ping, the worker asleep with nothing queued,
//!   the store free) commits itself on its request's thread, with no
//!   hand-off. Under load it never does: a busy server does not block its
//!   HTTP threads on flushes.
//! - **hold for the group**: after answering a group of two or more with
//!   few connections open, the worker waits (at most [`REGROUP`]) for the
//!   group to be back with its next pings before it commits again. Under
//!   load it never waits: the next batch is already queued, and a wait
//!   would hold it.
//!
//! What each measured against the plain group commit is in
//! `docs/batching.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use service_kit::OpenConnections;

use super::queue::Queue;
use crate::metrics::PingMetrics;
use crate::store::{Committed, Direct, StoreError};

/// The most connections open for the pacing to act: a person's client, a
/// probe, a scrape, a proxy's spare connection. With more, the next batch
/// is queued when one is answered, and the plain group commit is best.
pub const ALONE: usize = 4;

/// How long the worker waits for the group it answered to be back. A
/// client's turn (the answer out, its next ping in) takes tens of
/// microseconds on a local connection.
pub const REGROUP: Duration = Duration::from_micros(200);

/// What one batch of the worker counted and left behind.
#[derive(Debug, Clone, Copy)]
pub(super) struct BatchDone {
    /// Pings committed and answered (0: a batch of reads or checks).
    pub(super) pings: usize,
    /// Pings that queued while it committed, counted before the answers.
    pub(super) queued: usize,
}

/// The pacing state, shared by the requests and the worker.
#[derive(Debug)]
pub(super) struct Pace {
    /// The store's increment callable from a request (`None`: every ping
    /// queues).
    direct: Option<Arc<dyn Direct>>,
    open: OpenConnections,
    /// How long to hold for a group.
    within: Duration,
    /// The pings of the last commit.
    last_batch: AtomicU64,
}

impl Pace {
    pub(super) fn new(direct: Option<Arc<dyn Direct>>, open: OpenConnections, within: Duration) -> Self {
        Self { direct, open, within, last_batch: AtomicU64::new(1) }
    }

    /// The pings of the last commit.
    #[cfg(test)]
    pub(super) fn last_batch(&self) -> u64 {
        self.last_batch.load(Ordering::Relaxed)
    }

    /// Try alone: commits one ping on the caller's thread if it is alone,
    /// `None` (nothing touched) if it is not.
    ///
    /// This blocks a runtime thread for one increment, the one exception to
    /// "no blocking I/O on the runtime", and bounded: it never waits for a
    /// lock (the store's mutex and the file's cross-process `flock` are
    /// only tried), so it costs one `pread`, `pwrite` and `fdatasync`, and
    /// only while at most [`ALONE`] connections are open.
    pub(super) fn try_alone(
        &self,
        queue: &Queue,
        floor: u64,
        metrics: &PingMetrics,
    ) -> Option<Result<Committed, StoreError>> {
        let direct = self.direct.as_ref()?;
        if self.open.get() > ALONE || self.last_batch.load(Ordering::Relaxed) != 1 || !queue.idle() {
            return None;
        }
        let result = direct.try_increment_by(1, floor)?;
        metrics.direct();
        Some(result)
    }

    /// Hold for the group: after the worker answered `done`, waits until
    /// the group (the pings answered and those that queued meanwhile) is
    /// queued again, if few connections are open.
    ///
    /// It polls, yielding its core between looks, and holds the worker's
    /// thread as a flush does: the group is typically back sooner than a
    /// sleeping thread wakes. Polling without yielding starved the threads
    /// it waits for when they shared its core (`docs/batching.md`).
    pub(super) fn after_batch(&self, queue: &Queue, done: BatchDone, metrics: &PingMetrics) {
        if done.pings == 0 {
            return;
        }
        self.last_batch.store(done.pings as u64, Ordering::Relaxed);
        let group = done.pings + done.queued;
        if group > 1 && self.open.get() <= ALONE {
            metrics.regrouped(hold(queue, group, self.within));
        }
    }
}

/// Waits until `group` pings are queued (`true`), at most `within`, or the
/// queue is closed.
fn hold(queue: &Queue, group: usize, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        match queue.pings_waiting() {
            Some(waiting) if waiting >= group => return true,
            None => return false,
            Some(_) => {}
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::super::queue::Request;
    use super::*;

    fn ping() -> Request {
        Request::Ping(oneshot::channel().0)
    }

    /// The hold ends when the group's last member is queued, not at the end
    /// of its window (a minute here: a hold that missed the push would show
    /// as a test that takes a minute and fails).
    #[test]
    fn a_hold_ends_once_the_group_is_queued() {
        let queue = Queue::default();
        assert!(queue.push(ping()));
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| {
                let started = Instant::now();
                (hold(&queue, 2, Duration::from_secs(60)), started.elapsed())
            });
            assert!(queue.push(ping()));
            let (back, waited) = waiting.join().unwrap();
            assert!(back, "the group was queued");
            assert!(waited < Duration::from_secs(30), "the hold ran {waited:?}, to its window's end");
        });
    }

    #[test]
    fn a_hold_gives_up_at_the_end_of_its_window_or_at_the_close() {
        let queue = Queue::default();
        assert!(queue.push(ping()));
        assert!(hold(&queue, 1, Duration::ZERO), "a group already queued needs no wait");
        assert!(!hold(&queue, 2, Duration::from_millis(1)), "nobody came back");
        queue.close();
        let started = Instant::now();
        assert!(!hold(&queue, 2, Duration::from_secs(60)), "closed: nobody will come");
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

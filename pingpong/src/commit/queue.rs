//! The commit worker's queue: the requests that wait for it, the rule by
//! which it takes them ([`take_batch`]), and its sleep and wake-up.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, oneshot};

use crate::store::StoreError;

/// The most pings one increment counts (bounds the work of one batch).
const MAX_BATCH: usize = 4096;

/// Where the worker sends a request's answer.
pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What a request asks the worker for, with where to send the answer.
#[derive(Debug)]
pub(super) enum Request {
    /// Count a ping: its number.
    Ping(Reply<u64>),
    /// Read the count without counting.
    Read(Reply<u64>),
    /// Readiness: could a ping be counted now?
    Check(Reply<()>),
}

/// One batch: the pings to count together, and the reads and checks to
/// answer with them.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) pings: Vec<Reply<u64>>,
    pub(super) reads: Vec<Reply<u64>>,
    pub(super) checks: Vec<Reply<()>>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.pings.is_empty() && self.reads.is_empty() && self.checks.is_empty()
    }
}

/// What waits for the worker.
#[derive(Debug, Default)]
struct Pending {
    waiting: Batch,
    /// The worker waits for work: only then is it notified, so a burst of
    /// pings costs one wake-up, not one per ping.
    sleeping: bool,
    /// Stop: answer what is queued, then end.
    closed: bool,
    /// The worker has ended (normally or by a panic): nobody will answer.
    unserved: bool,
}

/// The batching rule: everything that waits, up to [`MAX_BATCH`] pings.
fn take_batch(waiting: &mut Batch) -> Batch {
    let take = waiting.pings.len().min(MAX_BATCH);
    Batch {
        pings: waiting.pings.drain(..take).collect(),
        reads: std::mem::take(&mut waiting.reads),
        checks: std::mem::take(&mut waiting.checks),
    }
}

#[derive(Debug, Default)]
pub(super) struct Queue {
    pending: Mutex<Pending>,
    changed: Notify,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // The lock guards plain data that every writer leaves whole, so a
        // panic elsewhere while holding it does not make it unusable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request's side: queues it, waking the worker if it sleeps; `false`
    /// (and the request dropped) once the queue is closed or unserved.
    pub(super) fn push(&self, request: Request) -> bool {
        let mut pending = self.lock();
        if pending.unserved || pending.closed {
            return false;
        }
        match request {
            Request::Ping(reply) => pending.waiting.pings.push(reply),
            Request::Read(reply) => pending.waiting.reads.push(reply),
            Request::Check(reply) => pending.waiting.checks.push(reply),
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
        pending.waiting = Batch::default();
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
                if !pending.waiting.is_empty() {
                    pending.sleeping = false;
                    return Some(take_batch(&mut pending.waiting));
                }
                if pending.closed {
                    return None;
                }
                pending.sleeping = true;
            }
            changed.await;
        }
    }

    /// Pings waiting for the worker; `None` once the queue is closed.
    pub(super) fn pings_waiting(&self) -> Option<usize> {
        let pending = self.lock();
        (!pending.closed).then_some(pending.waiting.pings.len())
    }

    /// The worker sleeps with nothing queued (and the queue is open).
    pub(super) fn idle(&self) -> bool {
        let pending = self.lock();
        pending.sleeping && pending.waiting.is_empty() && !pending.closed && !pending.unserved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_every_waiting_ping_up_to_the_bound_and_every_read_and_check() {
        let mut waiting = Batch::default();
        for _ in 0..MAX_BATCH + 3 {
            waiting.pings.push(oneshot::channel().0);
        }
        waiting.reads.push(oneshot::channel().0);
        waiting.checks.push(oneshot::channel().0);
        let batch = take_batch(&mut waiting);
        assert_eq!((batch.pings.len(), batch.reads.len(), batch.checks.len()), (MAX_BATCH, 1, 1));
        assert_eq!(waiting.pings.len(), 3, "the rest waits for the next batch");
        assert!(waiting.reads.is_empty() && waiting.checks.is_empty());
    }
}

//! The commit thread's queue: the pings and reads that wait for it, the rule
//! by which it takes them ([`take_batch`]), and its sleep and wake-up.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use counter::CounterError;
use tokio::sync::oneshot;

/// The most pings one increment counts (bounds the work of one batch).
const MAX_BATCH: usize = 4096;

/// Where the thread sends a ping's number or a read's count.
pub(super) type Reply = oneshot::Sender<Result<u64, CounterError>>;

/// What a request asks the thread for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// Count a ping: a number.
    Ping,
    /// Read the count without counting.
    Read,
}

/// What waits for the thread.
#[derive(Debug, Default)]
struct Pending {
    pings: Vec<Reply>,
    reads: Vec<Reply>,
    /// The thread sleeps on the condition variable: only then is it notified,
    /// so a burst of pings costs one wake-up, not one per ping.
    sleeping: bool,
    /// Stop: answer what is queued, then end.
    closed: bool,
    /// The thread has ended (normally or by a panic): nobody will answer.
    unserved: bool,
}

/// One batch: the pings to count together and the reads to answer with them.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) pings: Vec<Reply>,
    pub(super) reads: Vec<Reply>,
}

/// The batching rule: everything that waits, up to [`MAX_BATCH`] pings.
fn take_batch(pending: &mut Pending) -> Batch {
    let take = pending.pings.len().min(MAX_BATCH);
    Batch { pings: pending.pings.drain(..take).collect(), reads: std::mem::take(&mut pending.reads) }
}

#[derive(Debug, Default)]
pub(super) struct Queue {
    pending: Mutex<Pending>,
    changed: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // The lock guards plain data that every writer leaves whole, so a
        // panic elsewhere while holding it does not make it unusable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request's side: queues `reply`, waking the thread if it sleeps;
    /// `false` (and `reply` dropped) once the queue is closed or unserved.
    pub(super) fn push(&self, kind: Kind, reply: Reply) -> bool {
        let mut pending = self.lock();
        if pending.unserved || pending.closed {
            return false;
        }
        match kind {
            Kind::Ping => pending.pings.push(reply),
            Kind::Read => pending.reads.push(reply),
        }
        if pending.sleeping {
            pending.sleeping = false;
            self.changed.notify_one();
        }
        true
    }

    /// Stop: the thread answers what is queued, then ends; nothing more is
    /// queued.
    pub(super) fn close(&self) {
        let mut pending = self.lock();
        pending.closed = true;
        self.changed.notify_one();
    }

    /// The thread has ended: drops every waiting reply (its request fails at
    /// once) and refuses later ones.
    pub(super) fn unserved(&self) {
        let mut pending = self.lock();
        pending.unserved = true;
        pending.pings.clear();
        pending.reads.clear();
    }

    /// The thread's side: the next batch, waiting for one; `None` once closed
    /// and empty.
    pub(super) fn next_batch(&self) -> Option<Batch> {
        let mut pending = self.lock();
        while pending.pings.is_empty() && pending.reads.is_empty() {
            if pending.closed {
                return None;
            }
            pending.sleeping = true;
            pending = self.changed.wait(pending).unwrap_or_else(PoisonError::into_inner);
            pending.sleeping = false;
        }
        Some(take_batch(&mut pending))
    }

    /// Pings waiting (for tests).
    #[cfg(test)]
    pub(super) fn waiting_pings(&self) -> usize {
        self.lock().pings.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_every_waiting_ping_up_to_the_bound_and_every_read() {
        let mut pending = Pending::default();
        for _ in 0..MAX_BATCH + 3 {
            pending.pings.push(oneshot::channel().0);
        }
        pending.reads.push(oneshot::channel().0);
        let batch = take_batch(&mut pending);
        assert_eq!((batch.pings.len(), batch.reads.len()), (MAX_BATCH, 1));
        assert_eq!((pending.pings.len(), pending.reads.len()), (3, 0), "the rest waits for the next batch");
    }
}

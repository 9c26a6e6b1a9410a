//! Group commit: pings that arrive together share one durable increment.
//!
//! Handlers put a reply channel in a queue that one dedicated thread serves.
//! The thread takes every ping waiting at that moment, adds their number to
//! the counter file in one durable increment (see the `counter` crate), and only
//! then hands each its own number. Under load the cost of an increment is
//! shared by all the pings of a batch.
//!
//! The clients answered by one batch send their next pings a moment later, so
//! a batch started at once would catch only the first of them and leave the
//! rest a whole increment behind: the clients split into cohorts that take
//! turns. So the thread expects as many pings as it just answered plus those
//! that queued meanwhile, and waits up to [`LINGER`] for them to gather. After
//! a lone ping it waits for nothing: a single client's latency is not traded.
//!
//! While it gathers, the thread is woken once, when the batch it expects is
//! complete, not once per ping: with 50 clients, waking it for every arrival
//! cost more CPU than the HTTP work (see `docs/benchmarks.md`).
//!
//! Reads (`/pings`) queue here too and are answered by the same thread: with
//! the count after the batch's increment, or, in a batch of reads alone, from
//! one read under the lock, shared. So a flood of `/pings` costs one locked
//! read per batch and cannot keep the lock from the increments: Linux `flock`
//! grants new shared locks while an exclusive request waits, and many readers
//! locking on their own could starve the pings.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use counter::{CounterError, CounterWriter};
use tokio::sync::oneshot;

use crate::error::Error;

/// The most pings one increment counts (bounds the work of one batch).
const MAX_BATCH: usize = 4096;

/// The longest a batch waits for the pings of the last batch to come back:
/// under one increment (0.5 to 0.9 ms under load on the machine in
/// docs/benchmarks.md), where 0.2 ms gave 24k pings/s and 0.5 ms 28k over 50
/// connections; 1 ms and 2 ms were no better beyond the noise.
const LINGER: Duration = Duration::from_micros(500);

type Reply = oneshot::Sender<Result<u64, CounterError>>;

/// The pings waiting for the thread, and what it waits for.
#[derive(Debug, Default)]
struct Pending {
    replies: Vec<Reply>,
    /// `/pings` waiting for the count.
    reads: Vec<Reply>,
    /// The thread sleeps on the condition variable (only then is it notified).
    sleeping: bool,
    /// It wants to be woken once this many pings wait.
    wanted: usize,
    /// Every handle is gone: answer what is queued and stop.
    closed: bool,
    /// The thread has ended (normally or by a panic): nobody will answer.
    unserved: bool,
}

#[derive(Debug, Default)]
struct Queue {
    pending: Mutex<Pending>,
    changed: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // The lock guards plain data that every writer leaves whole, so a
        // panic elsewhere while holding it does not make it unusable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_if_wanted(&self, pending: &Pending) {
        if pending.sleeping && (pending.closed || pending.replies.len() + pending.reads.len() >= pending.wanted) {
            self.changed.notify_one();
        }
    }
}

/// Closes the queue when the last [`Committer`] goes, so the thread ends.
#[derive(Debug)]
struct Handles(Arc<Queue>);

impl Drop for Handles {
    fn drop(&mut self) {
        let mut pending = self.0.lock();
        pending.closed = true;
        self.0.wake_if_wanted(&pending);
    }
}

/// Held by the commit thread: when it ends, even by a panic, pings that wait
/// or arrive later fail at once with [`Error::CommitterGone`] (their reply
/// channels are dropped) instead of waiting for an answer that never comes.
struct Serving<'a>(&'a Queue);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        let mut pending = self.0.lock();
        pending.unserved = true;
        pending.replies.clear();
        pending.reads.clear();
    }
}

/// A handle to the commit thread; cheap to clone, one per request.
#[derive(Debug, Clone)]
pub struct Committer {
    handles: Arc<Handles>,
}

impl Committer {
    /// Starts the commit thread. It is a thread of its own rather than
    /// `spawn_blocking` work because it lives as long as the process and spends
    /// its life in blocking file calls and `flock`. It ends when the last
    /// `Committer` is dropped, after answering everything queued.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn start(writer: CounterWriter) -> std::io::Result<Self> {
        // Unbounded: the number of pings waiting is bounded by the number of
        // requests in flight, which the HTTP server bounds.
        let queue = Arc::new(Queue::default());
        let served = Arc::clone(&queue);
        std::thread::Builder::new().name("counter-commit".into()).spawn(move || {
            let _serving = Serving(&served);
            commit_loop(writer, &served);
        })?;
        Ok(Self { handles: Arc::new(Handles(queue)) })
    }

    /// Counts one ping and returns its number once the file durably holds it.
    ///
    /// # Errors
    /// The increment failed (nothing was counted) or the thread is gone.
    pub async fn next(&self) -> Result<u64, Error> {
        self.ask(|pending| &mut pending.replies).await
    }

    /// The current count, read exactly (under the lock) without counting.
    ///
    /// # Errors
    /// The read failed or the thread is gone.
    pub async fn count(&self) -> Result<u64, Error> {
        self.ask(|pending| &mut pending.reads).await
    }

    async fn ask(&self, queue_of: impl FnOnce(&mut Pending) -> &mut Vec<Reply>) -> Result<u64, Error> {
        let (reply, answer) = oneshot::channel();
        {
            let queue = &self.handles.0;
            let mut pending = queue.lock();
            if pending.unserved {
                return Err(Error::CommitterGone);
            }
            queue_of(&mut pending).push(reply);
            queue.wake_if_wanted(&pending);
        }
        Ok(answer.await.map_err(|_| Error::CommitterGone)??)
    }
}

fn commit_loop(mut writer: CounterWriter, queue: &Queue) {
    // How many pings the next batch should hold: the clients just answered
    // (they will send their next ping) plus those already waiting.
    let mut expected = 1;
    loop {
        let Some((mut batch, reads)) = gather(queue, expected) else { return };
        // A client that went away before its turn gets no number: counting it
        // would make the count run ahead of the answers.
        batch.retain(|reply| !reply.is_closed());
        let answered = batch.len();
        if batch.is_empty() {
            if !reads.is_empty() {
                let count = writer.read();
                for reply in reads {
                    let _ = reply.send(count.clone());
                }
            }
            continue;
        }
        let started = Instant::now();
        let result = writer.increment_by(batch.len() as u64);
        tracing::trace!(pings = batch.len(), micros = started.elapsed().as_micros(), "committed");
        // The reads that waited meanwhile see the count after this batch.
        let count = result.clone().map(|first| first + answered as u64);
        for reply in reads {
            let _ = reply.send(count.clone());
        }
        match result {
            Ok(first) => {
                for (number, reply) in (first..).zip(batch) {
                    // The client may have gone since; its number is then
                    // counted but unanswered, as with any lost response.
                    let _ = reply.send(Ok(number));
                }
            }
            Err(e) => {
                for reply in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        let queued = queue.lock().replies.len();
        expected = (answered + queued).clamp(1, MAX_BATCH);
    }
}

/// Waits for a first ping or read, then, while fewer than `expected` pings
/// wait, up to [`LINGER`] for more; takes them (at most [`MAX_BATCH`] pings)
/// and every read. `None` once the queue is closed and empty.
fn gather(queue: &Queue, expected: usize) -> Option<(Vec<Reply>, Vec<Reply>)> {
    let mut pending = queue.lock();
    pending.wanted = 1;
    while pending.replies.is_empty() && pending.reads.is_empty() {
        if pending.closed {
            return None;
        }
        pending.sleeping = true;
        pending = queue.changed.wait(pending).unwrap_or_else(PoisonError::into_inner);
        pending.sleeping = false;
    }
    pending.wanted = expected;
    let deadline = Instant::now() + LINGER;
    while pending.replies.len() < expected && !pending.closed {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        pending.sleeping = true;
        pending = queue.changed.wait_timeout(pending, left).unwrap_or_else(PoisonError::into_inner).0;
        pending.sleeping = false;
    }
    let take = pending.replies.len().min(MAX_BATCH);
    Some((pending.replies.drain(..take).collect(), std::mem::take(&mut pending.reads)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use counter::CounterFile;

    use super::*;

    /// Many pings at once: they are gathered into batches, each gets its own
    /// number, the numbers are exactly 0..N, and the file holds N.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_pings_get_every_number_once() {
        const PINGS: u64 = 300;
        let dir = tempfile::tempdir().unwrap();
        let file = CounterFile::new(dir.path().join("counter.txt"));
        let committer = Committer::start(CounterWriter::open(file.clone()).unwrap()).unwrap();
        let tasks: Vec<_> = (0..PINGS)
            .map(|_| {
                let committer = committer.clone();
                tokio::spawn(async move { committer.next().await.unwrap() })
            })
            .collect();
        let mut numbers = BTreeSet::new();
        for task in tasks {
            assert!(numbers.insert(task.await.unwrap()), "a number was handed out twice");
        }
        assert_eq!(numbers, (0..PINGS).collect());
        assert_eq!(file.read().unwrap(), PINGS);
    }

    /// When the commit thread ends without answering (as a panic would end
    /// it), a waiting ping and a later one both fail rather than hang.
    #[tokio::test]
    async fn pings_fail_once_the_thread_is_gone() {
        let queue = Arc::new(Queue::default());
        let committer = Committer { handles: Arc::new(Handles(Arc::clone(&queue))) };
        let serving = Serving(&queue);
        let waiting = tokio::spawn({
            let committer = committer.clone();
            async move { committer.next().await }
        });
        while queue.lock().replies.is_empty() {
            tokio::task::yield_now().await;
        }
        drop(serving);
        // Without the fix the ping waits forever: bound it so that shows as a failure.
        let answer = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("the waiting ping hung");
        assert!(matches!(answer.unwrap(), Err(Error::CommitterGone)));
        assert!(matches!(committer.next().await, Err(Error::CommitterGone)));
    }
}

//! Group commit: pings that arrive together share one durable increment.
//!
//! Handlers send a reply channel to one dedicated thread. The thread takes
//! every ping waiting at that moment, adds their number to the counter file in
//! one lock/write/fsync/rename/fsync cycle, and only then hands each its own
//! number. Under load the cost of a cycle is shared by all the pings of a batch.
//!
//! The clients answered by one cycle send their next pings a moment later, so
//! a cycle started at once would catch only the first of them and leave the
//! rest a whole cycle behind: the clients split into cohorts that take turns.
//! So the thread expects as many pings as it just answered plus those that
//! queued meanwhile, and waits up to [`LINGER`] for them to gather. After a
//! lone ping it waits for nothing: a single client's latency is not traded.

use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use common::counter::{CounterError, CounterWriter};
use tokio::sync::oneshot;

use crate::error::Error;

/// The most pings one cycle commits (bounds the work a cycle does).
const MAX_BATCH: usize = 4096;

/// The longest a batch waits for the pings of the last batch to come back:
/// under one cycle (0.7 to 0.9 ms on the machine in docs/benchmarks.md),
/// where 0.2 ms gave 24k pings/s and 0.5 ms 28k over 50 connections.
const LINGER: Duration = Duration::from_micros(500);

type Reply = oneshot::Sender<Result<u64, CounterError>>;

/// A handle to the commit thread; cheap to clone, one per request.
#[derive(Debug, Clone)]
pub struct Committer {
    queue: mpsc::Sender<Reply>,
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
        let (queue, pending) = mpsc::channel();
        std::thread::Builder::new().name("counter-commit".into()).spawn(move || commit_loop(writer, &pending))?;
        Ok(Self { queue })
    }

    /// Counts one ping and returns its number once the file durably holds it.
    ///
    /// # Errors
    /// The increment failed (nothing was counted) or the thread is gone.
    pub async fn next(&self) -> Result<u64, Error> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(reply).map_err(|_| Error::CommitterGone)?;
        Ok(answer.await.map_err(|_| Error::CommitterGone)??)
    }
}

fn commit_loop(mut writer: CounterWriter, pending: &mpsc::Receiver<Reply>) {
    // How many pings the next batch should hold: the clients just answered
    // (they will send their next ping) plus those already waiting.
    let mut expected = 1;
    let mut waiting = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut waiting);
        if batch.is_empty() {
            match pending.recv() {
                Ok(first) => batch.push(first),
                Err(_) => return,
            }
        }
        gather(pending, &mut batch, expected);
        // A client that went away before its turn gets no number: counting it
        // would make the count run ahead of the answers.
        batch.retain(|reply| !reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let result = writer.increment_by(batch.len() as u64);
        tracing::trace!(pings = batch.len(), micros = started.elapsed().as_micros(), "committed");
        let answered = batch.len();
        match result {
            Ok(first) => {
                for (number, reply) in (first..).zip(batch) {
                    // The client may have gone since; its number is then
                    // counted but unanswered, as with any lost response.
                    let _ = reply.send(Ok(number));
                }
            }
            Err(e) => answer_all(batch, &Err(e)),
        }
        waiting.extend(pending.try_iter());
        expected = (answered + waiting.len()).min(MAX_BATCH);
    }
}

fn answer_all(batch: Vec<Reply>, answer: &Result<u64, CounterError>) {
    for reply in batch {
        let _ = reply.send(answer.clone());
    }
}

/// Adds every waiting ping to `batch`, then, while it holds fewer than
/// `expected`, waits up to [`LINGER`] for more.
fn gather(pending: &mpsc::Receiver<Reply>, batch: &mut Vec<Reply>, expected: usize) {
    let deadline = Instant::now() + LINGER;
    while batch.len() < MAX_BATCH {
        match pending.try_recv() {
            Ok(reply) => batch.push(reply),
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if batch.len() >= expected || left.is_zero() {
                    return;
                }
                match pending.recv_timeout(left) {
                    Ok(reply) => batch.push(reply),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
                }
            }
        }
    }
}

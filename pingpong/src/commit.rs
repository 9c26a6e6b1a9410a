//! Group commit: pings that arrive together share one durable increment.
//!
//! Handlers send a reply channel to one dedicated thread. The thread takes
//! every ping waiting at that moment, adds their number to the counter file in
//! one lock/write/fsync/rename cycle, and only then hands each its own number.
//! A lone ping is committed at once, so batching adds no latency; under load
//! the cost of a cycle is shared by all the pings that queued during the last.

use common::counter::{CounterError, CounterWriter};
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;

/// The most pings one cycle commits (bounds the work a cycle does).
const MAX_BATCH: usize = 4096;

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
        let (queue, pending) = mpsc::channel(MAX_BATCH);
        std::thread::Builder::new().name("counter-commit".into()).spawn(move || commit_loop(writer, pending))?;
        Ok(Self { queue })
    }

    /// Counts one ping and returns its number once the file durably holds it.
    ///
    /// # Errors
    /// The increment failed (nothing was counted) or the thread is gone.
    pub async fn next(&self) -> Result<u64, Error> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(reply).await.map_err(|_| Error::CommitterGone)?;
        Ok(answer.await.map_err(|_| Error::CommitterGone)??)
    }
}

fn commit_loop(mut writer: CounterWriter, mut pending: mpsc::Receiver<Reply>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = pending.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(reply) => batch.push(reply),
                Err(_) => break,
            }
        }
        // A client that went away before its turn gets no number: counting it
        // would make the count run ahead of the answers.
        batch.retain(|reply| !reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        match writer.increment_by(batch.len() as u64) {
            Ok(first) => {
                for (number, reply) in (first..).zip(batch.drain(..)) {
                    // The client may have gone since; its number is then
                    // counted but unanswered, as with any lost response.
                    let _ = reply.send(Ok(number));
                }
            }
            Err(e) => {
                for reply in batch.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

//! The writer: one entry at start-up, then one every interval, each with this
//! process's UUID and the count read from the counter file.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use counter::CounterFile;
use tokio::time::MissedTickBehavior;
use uuid::Uuid;

use crate::entry::Entry;
use crate::error::Error;
use crate::heartbeat;
use crate::log_file::LogFile;

/// The writer's state for its whole life.
#[derive(Debug)]
pub struct Writer {
    log: LogFile,
    counter: CounterFile,
    id: Uuid,
}

impl Writer {
    /// A writer with a fresh random id: after a restart the new id shows
    /// where the old life ended.
    #[must_use]
    pub fn new(log: LogFile, counter: CounterFile) -> Self {
        Self { log, counter, id: Uuid::new_v4() }
    }

    /// Reads the count and appends one entry (blocking). A corrupt or
    /// unreadable counter skips the entry rather than invent a count.
    ///
    /// # Errors
    /// [`Error::Counter`] (entry skipped) or [`Error::Log`] (append failed).
    pub fn append_entry_once(&self) -> Result<Entry, Error> {
        let entry = Entry::now(self.id, self.counter.read()?);
        self.log.append(&entry)?;
        Ok(entry)
    }

    /// Appends at once and then every `interval` until `shutdown` completes.
    /// An append under way when the signal comes is finished first. After
    /// every turn, appended or skipped, `heartbeat` (if any) is touched for
    /// the liveness probe.
    pub async fn run_until_stopped(
        self,
        interval: Duration,
        heartbeat: Option<PathBuf>,
        shutdown: impl Future<Output = ()>,
    ) {
        tracing::info!(id = %self.id, log = %self.log.path().display(), ?interval, "writer started");
        let writer = Arc::new(self);
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = ticks.tick() => {}
            }
            let w = Arc::clone(&writer);
            let beat = heartbeat.clone();
            let turn = tokio::task::spawn_blocking(move || {
                let appended = w.append_entry_once();
                (appended, beat.map(|path| heartbeat::beat(&path)))
            });
            match turn.await {
                Ok((appended, beat)) => {
                    match appended {
                        Ok(entry) => tracing::debug!(count = entry.count, "entry appended"),
                        Err(e) => tracing::error!(cause = %e, "entry skipped"),
                    }
                    if let Some(Err(e)) = beat {
                        tracing::warn!(cause = %e, "could not touch the heartbeat file");
                    }
                }
                Err(e) => tracing::error!(cause = %e, "append task failed"),
            }
        }
        tracing::info!("writer stopped");
    }
}

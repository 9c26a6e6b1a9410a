//! The writer: one entry at start-up, then one every interval, each with this
//! process's UUID and the count read from the counter file.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use counter::CounterFile;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::MissedTickBehavior;
use uuid::Uuid;

use crate::config::WriterConfig;
use crate::entry::Entry;
use crate::error::Error;
use crate::heartbeat;
use crate::log_file::{Appended, LogFile};
use crate::metrics::WriterMetrics;

/// The writer's state for its whole life.
#[derive(Debug)]
pub struct Writer {
    log: LogFile,
    counter: CounterFile,
    id: Uuid,
    metrics: WriterMetrics,
}

impl Writer {
    /// A writer with a fresh random id: after a restart the new id shows
    /// where the old life ended.
    #[must_use]
    pub fn new(log: LogFile, counter: CounterFile, metrics: WriterMetrics) -> Self {
        Self { log, counter, id: Uuid::new_v4(), metrics }
    }

    /// Reads the count and appends one entry (blocking). A corrupt or
    /// unreadable counter skips the entry rather than invent a count.
    ///
    /// # Errors
    /// [`Error::Counter`] (entry skipped) or [`Error::Log`] (append failed).
    pub fn append_entry_once(&self) -> Result<Entry, Error> {
        let result = self.try_append();
        match &result {
            Ok((_, appended)) => self.metrics.appended(appended.rotated),
            Err(e) => self.metrics.failed(e),
        }
        result.map(|(entry, _)| entry)
    }

    fn try_append(&self) -> Result<(Entry, Appended), Error> {
        let entry = Entry::now(self.id, self.counter.read()?);
        let appended = self.log.append(&entry)?;
        Ok((entry, appended))
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

    /// [`Writer::run_until_stopped`], serving `GET /metrics` (and `/healthz`)
    /// from `registry` on `listener` meanwhile; the server stops once the loop
    /// has, so the last append still shows in a scrape until then.
    ///
    /// # Errors
    /// The listener's address cannot be read.
    pub async fn run_serving_metrics(
        self,
        listener: TcpListener,
        registry: Arc<Registry>,
        config: &WriterConfig,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let app = service_kit::routes::around(service_kit::metrics::route(registry), "/metrics or /healthz");
        let (stopped, loop_stopped) = oneshot::channel::<()>();
        let server = service_kit::serve::Server::new(listener).serve(app, async {
            let _ = loop_stopped.await;
        });
        let writer = async {
            self.run_until_stopped(config.interval, config.heartbeat.clone(), shutdown).await;
            let _ = stopped.send(());
        };
        tokio::join!(writer, server).1
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;

    /// The metrics follow the files: one entry appended per turn, a rotation
    /// counted exactly when the log shrank, a failed turn not counted as
    /// appended.
    #[test]
    fn appends_and_rotations_are_counted_as_they_happen() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::new(dir.path().join("output.log"), 300);
        let counter = dir.path().join("counter.txt");
        let metrics = WriterMetrics::register(&mut Registry::default());
        let writer = Writer::new(log, CounterFile::new(&counter), metrics.clone());
        let size = || std::fs::metadata(dir.path().join("output.log")).map_or(0, |m| m.len());
        let mut shrank = 0;
        for _ in 0..10 {
            let before = size();
            writer.append_entry_once().unwrap();
            shrank += u64::from(size() < before);
        }
        assert!(shrank >= 2, "the test rotates: {shrank}");
        assert_eq!((metrics.appended_total(), metrics.rotations_total()), (10, shrank));
        std::fs::write(&counter, "garbage").unwrap();
        assert!(writer.append_entry_once().is_err());
        assert_eq!(metrics.appended_total(), 10);
    }
}

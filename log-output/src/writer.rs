//! The writer: one entry at start-up, then one every interval, each with this
//! process's UUID and the count from its [`CountSource`]; a kit service
//! whose worker is the write loop and whose port (`METRICS_PORT`) serves
//! `/metrics`, `/healthz` (alive while the loop turns: `liveness.rs`) and
//! `/readyz` (ready while the last turn appended an entry).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use service_kit::Service;
use tokio::time::MissedTickBehavior;
use uuid::Uuid;

use crate::config::WriterConfig;
use crate::count_source::{CountError, CountSource};
use crate::entry::Entry;
use crate::heartbeat;
use crate::liveness::LastTurn;
use crate::log_file::{Appended, DEFAULT_MAX_BYTES, LogError, LogFile};
use crate::metrics::WriterMetrics;

/// Why a turn appended no entry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriterError {
    /// There was no count (a corrupt counter file, pingpong away): the
    /// entry is skipped rather than carry a made-up count.
    #[error(transparent)]
    Count(#[from] CountError),
    /// The log could not be written.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The append's blocking task panicked (a bug).
    #[error("the append task panicked")]
    Panicked,
}

impl WriterError {
    /// The counter file could not be read (corrupt, missing directory…): the
    /// entry is skipped rather than carry an invented count.
    const COUNTER_UNREADABLE: &str = "counter_unreadable";
    /// pingpong (`PINGPONG_URL`) gave no count in time: the entry is skipped.
    const PINGPONG_UNREACHABLE: &str = "pingpong_unreachable";
    /// The log could not be written (disk full, read-only volume…).
    const LOG_WRITE: &str = "log_write";
    /// Every [`WriterError::reason`], so that each metric series exists from the start.
    pub const REASONS: [&str; 3] = [Self::COUNTER_UNREADABLE, Self::PINGPONG_UNREACHABLE, Self::LOG_WRITE];

    /// Its `reason` label in `log_output_writer_appends_failed`.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Count(CountError::Pingpong { .. }) => Self::PINGPONG_UNREACHABLE,
            Self::Count(CountError::File(_) | CountError::Panicked) => Self::COUNTER_UNREADABLE,
            Self::Log(_) | Self::Panicked => Self::LOG_WRITE,
        }
    }
}

/// What the last turn did, for readiness and for logging changes only.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Turn {
    NotYet,
    Appended,
    Skipped(String),
}

/// The writer's state for its whole life.
#[derive(Debug)]
pub struct Writer {
    log: LogFile,
    source: CountSource,
    id: Uuid,
    metrics: WriterMetrics,
    last: Mutex<Turn>,
    turned_at: LastTurn,
}

impl Writer {
    /// A writer with a fresh random id: after a restart the new id shows
    /// where the old life ended.
    #[must_use]
    pub fn new(log: LogFile, source: CountSource, metrics: WriterMetrics) -> Self {
        Self {
            log,
            source,
            id: Uuid::new_v4(),
            metrics,
            last: Mutex::new(Turn::NotYet),
            turned_at: LastTurn::default(),
        }
    }

    /// One turn: gets the count and appends one entry. No count (a corrupt
    /// or unreadable counter, pingpong away) skips the entry rather than
    /// invent a count. A failure is logged when it starts or changes, and
    /// the recovery when it ends, not every turn.
    ///
    /// # Errors
    /// [`WriterError::Count`] (entry skipped) or [`WriterError::Log`] (append failed).
    pub async fn append_entry_once(&self) -> Result<Entry, WriterError> {
        let result = self.try_append().await;
        let turn = match &result {
            Ok((_, appended)) => {
                self.metrics.appended(appended.rotated);
                Turn::Appended
            }
            Err(e) => {
                self.metrics.failed(e);
                Turn::Skipped(e.to_string())
            }
        };
        let previous = std::mem::replace(&mut *self.last.lock().unwrap_or_else(PoisonError::into_inner), turn.clone());
        match (&previous, &turn) {
            (_, Turn::Skipped(cause)) if previous != turn => tracing::error!(%cause, "entry skipped"),
            (Turn::Skipped(_), Turn::Appended) => tracing::info!("entries appended again"),
            _ => {}
        }
        result.map(|(entry, _)| entry)
    }

    async fn try_append(&self) -> Result<(Entry, Appended), WriterError> {
        let entry = Entry::now(self.id, self.source.fetch().await?);
        let log = self.log.clone();
        let written = entry.clone();
        let appended =
            tokio::task::spawn_blocking(move || log.append(&written)).await.map_err(|_| WriterError::Panicked)??;
        Ok((entry, appended))
    }

    /// Readiness: the last turn appended an entry.
    ///
    /// # Errors
    /// Why not, in one line.
    pub fn ready(&self) -> Result<(), String> {
        match &*self.last.lock().unwrap_or_else(PoisonError::into_inner) {
            Turn::Appended => Ok(()),
            Turn::NotYet => Err("no entry written yet".into()),
            Turn::Skipped(cause) => Err(format!("the last entry was skipped: {cause}")),
        }
    }

    /// Liveness: the loop, turning every `interval`, last turned recently
    /// enough ([`crate::liveness::judge`]).
    ///
    /// # Errors
    /// How long ago it last turned, in one line.
    pub fn alive(&self, interval: Duration) -> Result<(), String> {
        self.turned_at.check_at(Instant::now(), interval)
    }

    /// Appends at once and then every `interval` until `stop` completes. An
    /// append under way when it does is finished first. Every turn, appended
    /// or skipped, is recorded for [`Writer::alive`], and touches
    /// `heartbeat` (if any) for the contract's `log-output alive`.
    pub async fn run_until_stopped(
        self: Arc<Self>,
        interval: Duration,
        heartbeat: Option<PathBuf>,
        stop: impl Future<Output = ()>,
    ) {
        tracing::info!(id = %self.id, log = %self.log.path().display(), from = self.source.describe(), ?interval, "writer started");
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                _ = ticks.tick() => {}
            }
            if let Ok(entry) = self.append_entry_once().await {
                tracing::debug!(count = entry.count, "entry appended");
            }
            self.turned_at.turned();
            if let Some(path) = heartbeat.clone()
                && let Ok(Err(e)) = tokio::task::spawn_blocking(move || heartbeat::beat(&path)).await
            {
                tracing::warn!(cause = %e, "could not touch the heartbeat file");
            }
        }
        tracing::info!("writer stopped");
    }
}

/// Why the writer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The log's directory or file cannot be made or written.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The HTTP client for `PINGPONG_URL` cannot be made.
    #[error("cannot make the HTTP client for PINGPONG_URL: {0}")]
    Client(#[from] reqwest::Error),
}

/// The writer as `config` says: its loop as the service's worker (started
/// now: call from within the runtime), its metrics, its liveness and its
/// readiness.
///
/// # Errors
/// The log cannot be written (so an unusable volume stops start-up, not the
/// first entry).
pub fn service(config: &WriterConfig) -> Result<Service, StartError> {
    let log = LogFile::new(&config.log_file, DEFAULT_MAX_BYTES);
    log.ensure_writable()?;
    let source = match &config.pingpong_url {
        Some(url) => CountSource::pingpong(url)?,
        None => CountSource::file(&config.counter_file),
    };
    let mut service = Service::new("log_output_writer", env!("CARGO_PKG_VERSION"));
    let metrics = service.metrics(WriterMetrics::register);
    let writer = Arc::new(Writer::new(log, source, metrics));
    let (interval, heartbeat) = (config.interval, config.heartbeat.clone());
    let (looping, judged) = (Arc::clone(&writer), Arc::clone(&writer));
    service
        .spawn_task("log-writer", move |stop| looping.run_until_stopped(interval, heartbeat, stop))
        .liveness(move || judged.alive(interval))
        .readiness(move || std::future::ready(writer.ready()));
    Ok(service)
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;

    /// The metrics follow the files: one entry appended per turn, a rotation
    /// counted exactly when the log shrank, a failed turn not counted as
    /// appended and making the writer not ready.
    #[tokio::test]
    async fn appends_and_rotations_are_counted_as_they_happen() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::new(dir.path().join("output.log"), 300);
        let counter = dir.path().join("counter.txt");
        let metrics = WriterMetrics::register(&mut Registry::default());
        let writer = Writer::new(log, CountSource::file(&counter), metrics.clone());
        assert!(writer.ready().is_err(), "not ready before the first entry");
        let size = || std::fs::metadata(dir.path().join("output.log")).map_or(0, |m| m.len());
        let mut shrank = 0;
        for _ in 0..10 {
            let before = size();
            writer.append_entry_once().await.unwrap();
            shrank += u64::from(size() < before);
        }
        assert!(shrank >= 2, "the test rotates: {shrank}");
        assert_eq!((metrics.appended_total(), metrics.rotations_total()), (10, shrank));
        assert_eq!(writer.ready(), Ok(()));
        std::fs::write(&counter, "garbage").unwrap();
        assert!(writer.append_entry_once().await.is_err());
        assert_eq!(metrics.appended_total(), 10);
        assert!(writer.ready().unwrap_err().contains("skipped"));
    }
}

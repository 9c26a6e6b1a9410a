//! The reader: serves the latest entry and the tail of the log over HTTP, a
//! kit service with no worker; ready while the log can be read.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use service_kit::Service;

use crate::config::ReaderConfig;
use crate::entry::Entry;
use crate::log_file::{DEFAULT_MAX_BYTES, LogError, LogFile};

/// `GET /log` without `tail`.
pub const DEFAULT_TAIL: usize = 10;
/// The most entries `GET /log` returns (about 80 KiB).
pub const MAX_TAIL: usize = 1000;

/// What a reader's request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// The log holds no complete entry yet (the writer has not started).
    #[error("no log entry yet: {} holds none; the writer adds one at start-up", .0.display())]
    NoEntryYet(PathBuf),
    /// The log could not be read.
    #[error(transparent)]
    Log(#[from] LogError),
    /// `tail` out of range: the client's mistake.
    #[error("tail must be a whole number from 1 to {max}, got {got:?}")]
    BadTail {
        /// What was asked.
        got: String,
        /// The largest allowed.
        max: usize,
    },
    /// The read's blocking task panicked (a bug).
    #[error("internal error: the read task failed")]
    Panicked,
}

impl IntoResponse for ReaderError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::BadTail { .. } => StatusCode::BAD_REQUEST,
            Self::NoEntryYet(_) | Self::Log(_) | Self::Panicked => StatusCode::SERVICE_UNAVAILABLE,
        };
        service_kit::error_response(status, &self)
    }
}

/// The reader on `log`.
#[must_use]
pub fn service(log: LogFile) -> Service {
    let log = Arc::new(log);
    let mut service = Service::new("log_output_reader", env!("CARGO_PKG_VERSION"));
    let ready = Arc::clone(&log);
    service
        .route("/", get(latest).with_state(Arc::clone(&log)))
        .route("/log?tail=N", get(tail).with_state(log))
        .readiness(move || readyz(Arc::clone(&ready)));
    service
}

/// The reader as `config` says.
#[must_use]
pub fn from_config(config: &ReaderConfig) -> Service {
    service(LogFile::new(&config.log_file, DEFAULT_MAX_BYTES))
}

async fn last(log: &Arc<LogFile>, n: usize) -> Result<Vec<Entry>, ReaderError> {
    let log = Arc::clone(log);
    tokio::task::spawn_blocking(move || log.tail(n)).await.map_err(|_| ReaderError::Panicked)?.map_err(Into::into)
}

/// `GET /`: the latest complete entry, its two lines.
async fn latest(State(log): State<Arc<LogFile>>) -> Result<String, ReaderError> {
    let entries = last(&log, 1).await?;
    entries.last().map(ToString::to_string).ok_or_else(|| ReaderError::NoEntryYet(log.path().to_path_buf()))
}

/// Taken as text and parsed here, so that `tail=abc` gets the same sentence as
/// `tail=0`, not the query extractor's own words.
#[derive(Debug, Deserialize)]
struct TailQuery {
    tail: Option<String>,
}

/// `GET /log?tail=N`: the last N entries, oldest first (default
/// [`DEFAULT_TAIL`], at most [`MAX_TAIL`]).
async fn tail(State(log): State<Arc<LogFile>>, Query(query): Query<TailQuery>) -> Result<String, ReaderError> {
    let n = match query.tail {
        None => DEFAULT_TAIL,
        Some(text) => match text.parse() {
            Ok(n) if (1..=MAX_TAIL).contains(&n) => n,
            _ => return Err(ReaderError::BadTail { got: text, max: MAX_TAIL }),
        },
    };
    Ok(last(&log, n).await?.iter().map(ToString::to_string).collect())
}

/// Readiness: the log exists and can be read.
async fn readyz(log: Arc<LogFile>) -> Result<(), String> {
    let path = log.path().display().to_string();
    match tokio::task::spawn_blocking(move || log.exists_readable()).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(format!("log file {path} does not exist yet")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the check failed".into()),
    }
}

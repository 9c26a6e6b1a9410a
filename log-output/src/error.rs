//! log-output's one error type and how the reader answers it.

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use counter::CounterError;

use crate::log_file::LogError;

/// Everything the writer or the reader can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The log holds no complete entry yet (the writer has not started).
    #[error("no log entry yet: {} holds none; the writer adds one at start-up", .0.display())]
    NoEntryYet(PathBuf),
    /// The log could not be read or written.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The counter file is corrupt or unreadable: the entry is skipped.
    #[error(transparent)]
    Counter(#[from] CounterError),
    /// `tail` out of range.
    #[error("tail must be a whole number from 1 to {max}, got {got:?}")]
    BadTail {
        /// What was asked.
        got: String,
        /// The largest allowed.
        max: usize,
    },
    /// A blocking task panicked (a bug).
    #[error("internal error: the {0} task failed")]
    TaskFailed(&'static str),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::BadTail { .. } => StatusCode::BAD_REQUEST,
            Self::NoEntryYet(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Log(_) | Self::Counter(_) | Self::TaskFailed(_) => {
                tracing::error!(cause = %self, "request failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        (status, format!("{self}\n")).into_response()
    }
}

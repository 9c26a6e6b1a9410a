//! pingpong's one error type and how it is answered over HTTP.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use counter::CounterError;

/// Everything a request can fail with. All of it is the server's side (the
/// volume), so all of it answers 503 and is logged here, once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The counter file is corrupt, not a file, or could not be written.
    #[error(transparent)]
    Counter(#[from] CounterError),
    /// The thread that commits increments and answers reads is gone (it panicked).
    #[error("the counter is unavailable: its commit thread stopped; restart pingpong")]
    CommitterGone,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        tracing::error!(cause = %self, "request failed");
        (StatusCode::SERVICE_UNAVAILABLE, format!("{self}\n")).into_response()
    }
}

//! pingpong's HTTP error: how a failure of the counter is answered.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::commit::CommitError;

/// Everything a request can fail with. All of it is the server's side (the
/// volume, or the commit thread), so all of it answers 503 and is logged
/// here, once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The counter could not be read or changed, or its thread has stopped.
    #[error(transparent)]
    Commit(#[from] CommitError),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        tracing::error!(cause = %self, "request failed");
        (StatusCode::SERVICE_UNAVAILABLE, format!("{self}\n")).into_response()
    }
}

//! pingpong's HTTP endpoints, as in the contract, and how a failure of the
//! counter is answered. They talk to the commit worker only, whichever store
//! is behind it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::commit::CommitError;
use crate::store::StoreError;

/// `GET /pingpong`: counts this ping and answers `pong N`, N being the pings
/// answered before it. Sent only after the store durably holds N + 1.
pub async fn pingpong(State(state): State<AppState>) -> Result<String, CommitError> {
    match state.committer.count_ping().await {
        Ok(number) => Ok(format!("pong {number}")),
        Err(e) => {
            state.metrics.refused(&e);
            Err(e)
        }
    }
}

/// `GET /pings`: the current count, exactly, without counting. Answered by
/// the commit worker, so reads cannot starve pings.
pub async fn pings(State(state): State<AppState>) -> Result<String, CommitError> {
    Ok(state.committer.count().await?.to_string())
}

/// Every failure is the server's side (the store, or the commit worker):
/// 503 with the one-line reason. Logged here, except the database's, which
/// its store logs when it goes and when it is back (not once per refused
/// ping while it is away).
impl IntoResponse for CommitError {
    fn into_response(self) -> Response {
        match &self {
            Self::Store(StoreError::Database(_)) => {
                service_kit::refusal_response(StatusCode::SERVICE_UNAVAILABLE, &self)
            }
            _ => service_kit::error_response(StatusCode::SERVICE_UNAVAILABLE, &self),
        }
    }
}

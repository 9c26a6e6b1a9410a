//! pingpong's HTTP endpoints, as in the contract.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::AppState;
use crate::error::Error;

/// `GET /pingpong`: counts this ping and answers `pong N`, N being the pings
/// answered before it. Sent only after the file durably holds N + 1.
pub async fn pingpong(State(state): State<AppState>) -> Result<String, Error> {
    match state.committer.next().await {
        Ok(number) => Ok(format!("pong {number}")),
        Err(e) => {
            state.metrics.refused(&e);
            Err(e.into())
        }
    }
}

/// `GET /pings`: the current count, exactly (read under the lock), without
/// counting. Answered by the commit thread, so reads cannot starve pings.
pub async fn pings(State(state): State<AppState>) -> Result<String, Error> {
    Ok(state.committer.count().await?.to_string())
}

/// `GET /readyz`: ready when the counter file is valid and its directory
/// writable; otherwise 503 with the reason, so Kubernetes stops routing here.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let counter = state.counter.clone();
    let check = tokio::task::spawn_blocking(move || counter.read().and_then(|_| counter.probe_writable())).await;
    match check {
        Ok(Ok(())) => (StatusCode::OK, "ready".to_owned()),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: the check panicked\n".to_owned()),
    }
}

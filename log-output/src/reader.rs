//! The reader: serves the latest entry and the tail of the log over HTTP.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use service_kit::metrics::Requests;
use tokio::net::TcpListener;

use crate::entry::Entry;
use crate::error::Error;
use crate::log_file::LogFile;

/// `GET /log` without `tail`.
pub const DEFAULT_TAIL: usize = 10;
/// The most entries `GET /log` returns (about 80 KiB).
pub const MAX_TAIL: usize = 1000;

/// What the reader's handlers share.
#[derive(Debug, Clone)]
pub struct ReaderState {
    log: Arc<LogFile>,
    registry: Arc<Registry>,
    requests: Requests,
}

impl ReaderState {
    /// Serves `log`, reporting `version` in its metrics.
    #[must_use]
    pub fn new(log: LogFile, version: &'static str) -> Self {
        let (registry, requests) =
            service_kit::metrics::registry("log_output_reader", version, service_kit::metrics::register_requests);
        Self { log: Arc::new(log), registry: Arc::new(registry), requests }
    }

    async fn tail(&self, n: usize) -> Result<Vec<Entry>, Error> {
        let log = Arc::clone(&self.log);
        tokio::task::spawn_blocking(move || log.tail(n).map_err(Error::from))
            .await
            .map_err(|_| Error::TaskFailed("read"))?
    }
}

/// The reader's routes, without a socket.
pub fn app(state: ReaderState) -> Router {
    let own = Router::new()
        .route("/", get(latest))
        .route("/log", get(log))
        .route("/readyz", get(readyz))
        .merge(service_kit::metrics::route(Arc::clone(&state.registry)));
    let all = service_kit::routes::around(own, "/, /log?tail=N, /metrics, /healthz or /readyz");
    service_kit::metrics::count_requests(all, state.requests.clone()).with_state(state)
}

/// Serves [`app`] until `shutdown` completes, then finishes requests in flight.
///
/// # Errors
/// The listener's address cannot be read.
pub async fn run(
    listener: TcpListener,
    state: ReaderState,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    service_kit::serve::Server::new(listener).serve(app(state), shutdown).await
}

/// `GET /`: the latest complete entry, its two lines.
async fn latest(State(state): State<ReaderState>) -> Result<String, Error> {
    let entries = state.tail(1).await?;
    entries.last().map(ToString::to_string).ok_or_else(|| Error::NoEntryYet(state.log.path().to_path_buf()))
}

/// Taken as text and parsed here, so that `tail=abc` gets the same sentence as
/// `tail=0`, not the query extractor's own words.
#[derive(Debug, Deserialize)]
struct TailQuery {
    tail: Option<String>,
}

/// `GET /log?tail=N`: the last N entries, oldest first (default
/// [`DEFAULT_TAIL`], at most [`MAX_TAIL`]).
async fn log(State(state): State<ReaderState>, Query(query): Query<TailQuery>) -> Result<String, Error> {
    let n = match query.tail {
        None => DEFAULT_TAIL,
        Some(text) => match text.parse() {
            Ok(n) if (1..=MAX_TAIL).contains(&n) => n,
            _ => return Err(Error::BadTail { got: text, max: MAX_TAIL }),
        },
    };
    Ok(state.tail(n).await?.iter().map(ToString::to_string).collect())
}

/// `GET /readyz`: ready when the log exists and can be read.
async fn readyz(State(state): State<ReaderState>) -> impl IntoResponse {
    let log = Arc::clone(&state.log);
    match tokio::task::spawn_blocking(move || log.exists_readable()).await {
        Ok(Ok(true)) => (StatusCode::OK, "ready".to_owned()),
        Ok(Ok(false)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: log file {} does not exist yet\n", state.log.path().display()),
        ),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: the check failed\n".to_owned()),
    }
}

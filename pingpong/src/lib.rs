//! pingpong: counts pings in a file on a shared volume, durably and exactly
//! once, even with several processes on the same file.

mod commit;
pub mod config;
pub mod error;
pub mod metrics;
pub mod routes;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use counter::{CounterError, CounterFile, CounterWriter};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

pub use crate::commit::{CommitError, Committer};
pub use crate::config::Config;
pub use crate::error::Error;
pub use crate::metrics::PingMetrics;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    counter: Arc<CounterFile>,
    committer: Committer,
    metrics: Arc<PingMetrics>,
    registry: Arc<Registry>,
}

impl AppState {
    /// Opens the counter on `path`, registers the metrics (`GET /metrics`) and
    /// starts the commit thread. A corrupt
    /// file does not stop start-up (it answers 503 until repaired), an
    /// unusable directory does.
    ///
    /// # Errors
    /// The directory cannot be created or written, or the thread not started.
    pub fn open(path: &Path) -> Result<Self, StartError> {
        let file = CounterFile::new(path);
        let writer = CounterWriter::open(file.clone())?;
        let (registry, metrics) =
            service_kit::metrics::registry("pingpong", env!("CARGO_PKG_VERSION"), PingMetrics::register);
        let metrics = Arc::new(metrics);
        match file.read() {
            Ok(count) => {
                tracing::info!(path = %path.display(), count, "counter opened");
                metrics.saw(count);
            }
            Err(e) => tracing::error!(cause = %e, "counter file unusable until repaired"),
        }
        let committer = Committer::start(writer, Arc::clone(&metrics)).map_err(StartError::Thread)?;
        Ok(Self { counter: Arc::new(file), committer, metrics, registry: Arc::new(registry) })
    }
}

/// Why pingpong cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The counter's directory cannot be made or written.
    #[error(transparent)]
    Counter(#[from] CounterError),
    /// The commit thread could not be spawned.
    #[error("cannot start the counter's commit thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The routes, without a socket (tests drive it with `oneshot`).
pub fn app(state: AppState) -> Router {
    let own = Router::new()
        .route("/pingpong", get(routes::pingpong))
        .route("/pings", get(routes::pings))
        .route("/readyz", get(routes::readyz))
        .merge(service_kit::metrics::route(Arc::clone(&state.registry)));
    service_kit::routes::around(own, "/pingpong, /pings, /metrics, /healthz or /readyz").with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` completes, then finishes the
/// requests in flight, then stops the commit thread once it has answered
/// everything queued.
///
/// # Errors
/// The listener's address cannot be read.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let committer = state.committer.clone();
    let served = service_kit::serve::Server::new(listener).serve(app(state), shutdown).await;
    if tokio::task::spawn_blocking(move || committer.stop()).await.is_err() {
        tracing::error!("stopping the commit thread panicked");
    }
    served
}

//! pingpong: counts pings durably and exactly once, even with several
//! processes on one count: in a file on a shared volume, or in PostgreSQL.
//!
//! Built as a [`service_kit::Service`]: the routes ([`routes`]) queue to the
//! group commit ([`commit`]), whose worker drives a [`store::Store`].

pub mod commit;
pub mod config;
pub mod metrics;
pub mod routes;
pub mod store;

use std::sync::Arc;

use axum::routing::get;
use service_kit::Service;

pub use crate::commit::{CommitError, Committer};
pub use crate::config::{Config, StoreConfig};
pub use crate::metrics::PingMetrics;
use crate::store::{FileStore, PgStore};
pub use crate::store::{Store, StoreError};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    committer: Committer,
    metrics: Arc<PingMetrics>,
}

/// Why pingpong cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The counter file's directory cannot be made or written.
    #[error(transparent)]
    Counter(#[from] counter::CounterError),
    /// The commit worker could not be started.
    #[error("cannot start the commit worker: {0}")]
    Worker(#[source] std::io::Error),
}

/// pingpong on `store`: its routes, its metrics, its commit worker (started
/// now), readiness through that worker.
///
/// # Errors
/// The worker could not be started.
pub fn service(store: impl Store) -> Result<Service, StartError> {
    let mut service = Service::new("pingpong", env!("CARGO_PKG_VERSION"));
    let metrics = Arc::new(service.metrics(PingMetrics::register));
    let committer = Committer::start(&mut service, store, Arc::clone(&metrics)).map_err(StartError::Worker)?;
    let state = AppState { committer: committer.clone(), metrics };
    service
        .route("/pingpong", service_kit::get_only(get(routes::pingpong)).with_state(state.clone()))
        .route("/pings", get(routes::pings).with_state(state))
        .readiness(move || {
            let committer = committer.clone();
            async move { committer.check().await.map_err(|e| e.to_string()) }
        });
    Ok(service)
}

/// pingpong on the store `config` names.
///
/// # Errors
/// The store cannot be used at all (the file's directory), or the worker
/// not started.
pub fn build(config: &Config) -> Result<Service, StartError> {
    match &config.store {
        StoreConfig::File(path) => service(FileStore::open(path)?),
        StoreConfig::Postgres(settings) => service(PgStore::new((**settings).clone())),
    }
}

//! The service kit pingpong and both log-output processes are built on, one
//! way ([`Service`]): routes, readiness, metrics and background workers in;
//! `/healthz`, `/readyz`, `/metrics`, the 404, request counting, the
//! connection bound, timeouts and the shutdown sequence out. Also the
//! shutdown signal, the one-line start-up error, telemetry and typed
//! environment parsing.

pub mod causes;
mod connections;
mod counting;
pub mod env;
pub mod exit;
pub mod http_server;
pub mod metrics;
mod routes;
mod service;
pub mod shutdown;
pub mod telemetry;
mod worker;

pub use crate::connections::OpenConnections;
pub use crate::routes::{error_response, get_only, refusal_response};
pub use crate::service::Service;
pub use crate::worker::{Alive, Stop};

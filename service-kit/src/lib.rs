//! The HTTP service kit pingpong and the log-output reader are built on (the
//! counter file is the `counter` crate's): serving with timeouts and graceful
//! shutdown, the routes every service has, the shutdown signal, the one-line
//! start-up error, Prometheus metrics, telemetry and typed environment parsing.

pub mod drain;
pub mod env;
pub mod metrics;
pub mod routes;
pub mod serve;
pub mod shutdown;
pub mod startup;
pub mod telemetry;

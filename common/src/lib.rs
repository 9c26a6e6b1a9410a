//! What pingpong and log-output share: the counter-file format (pingpong writes
//! it, the log-output writer reads it), serving HTTP with timeouts and graceful
//! shutdown, the shutdown signal, telemetry and typed environment parsing.

pub mod counter;
pub mod env;
pub mod paths;
pub mod serve;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

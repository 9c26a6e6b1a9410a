//! What pingpong and log-output share besides the counter file (the `counter`
//! crate): serving HTTP with timeouts and graceful shutdown, the shutdown
//! signal, telemetry and typed environment parsing.

pub mod env;
pub mod serve;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

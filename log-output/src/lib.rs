//! log-output: a writer that appends timestamped entries with the ping count
//! to a shared log, and a reader that serves it. One image, two containers.

pub mod config;
pub mod entry;
pub mod error;
pub mod heartbeat;
pub mod log_file;
pub mod metrics;
pub mod reader;
pub mod writer;

pub use crate::error::Error;
pub use crate::reader::{ReaderState, app, run};
pub use crate::writer::Writer;

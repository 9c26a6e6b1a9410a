//! log-output: a writer that appends timestamped entries with the ping count
//! to a log, and a reader that serves it. One image, two containers; each a
//! [`service_kit::Service`]. The same binary takes and restores the file
//! mode's backups ([`backup`]).

pub mod backup;
pub mod config;
pub mod count_source;
pub mod entry;
pub mod heartbeat;
pub mod liveness;
pub mod log_file;
pub mod metrics;
pub mod reader;
pub mod writer;

pub use crate::writer::Writer;

//! pingpong's configuration, read once from the environment at start-up.

use std::path::PathBuf;

use service_kit::env::{EnvError, parsed_or, path_or};

/// Everything pingpong can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PORT`: where to listen on `0.0.0.0`.
    pub port: u16,
    /// `COUNTER_FILE`: the durable count, on the shared volume.
    pub counter_file: PathBuf,
}

impl Config {
    /// Reads `PORT` (default 3000) and `COUNTER_FILE` (default
    /// `files/pingpong_counter.txt`).
    ///
    /// # Errors
    /// A variable is set to something unusable; the message names it.
    pub fn from_env() -> Result<Self, EnvError> {
        Ok(Self {
            port: parsed_or("PORT", 3000, "a port number from 0 to 65535")?,
            counter_file: path_or("COUNTER_FILE", counter::DEFAULT_PATH)?,
        })
    }
}

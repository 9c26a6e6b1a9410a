//! pingpong's configuration, read once from the environment at start-up.

use std::path::PathBuf;

use service_kit::env::{EnvError, parsed_or, path_or};

/// Everything pingpong can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PORT`: where to listen on `0.0.0.0`.
    pub port: u16,
    /// Where the count lives.
    pub store: StoreConfig,
}

/// Where the count lives.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// `COUNTER_FILE`: the counter file on the shared volume.
    File(PathBuf),
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
            store: StoreConfig::File(path_or("COUNTER_FILE", counter::DEFAULT_PATH)?),
        })
    }

    /// The file store on `path`, on port 0 (for tests).
    #[must_use]
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self { port: 0, store: StoreConfig::File(path.into()) }
    }
}

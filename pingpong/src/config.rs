//! pingpong's configuration, read once from the environment at start-up.

use std::path::PathBuf;

use service_kit::env::{EnvError, parsed_or, path_or};

use crate::store::PgSettings;

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
    /// `DATABASE_URL` (and `PGPASSWORD`): PostgreSQL.
    Postgres(Box<PgSettings>),
}

/// A start-up mistake in the environment; its message is the one line the
/// user sees.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable set to something unusable.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// `DATABASE_URL` is not a usable libpq URL.
    #[error("{0}")]
    DatabaseUrl(String),
}

impl Config {
    /// Reads `PORT` (default 3000), and `DATABASE_URL` with `PGPASSWORD`
    /// when set, else `COUNTER_FILE` (default `files/pingpong_counter.txt`).
    ///
    /// # Errors
    /// A variable is set to something unusable; the message names it.
    pub fn from_env() -> Result<Self, ConfigError> {
        let port = parsed_or("PORT", 3000, "a port number from 0 to 65535")?;
        let store = match std::env::var_os("DATABASE_URL") {
            Some(url) => {
                let password = std::env::var_os("PGPASSWORD").map(|p| p.to_string_lossy().into_owned());
                StoreConfig::Postgres(Box::new(
                    PgSettings::from_url(&url.to_string_lossy(), password).map_err(ConfigError::DatabaseUrl)?,
                ))
            }
            None => StoreConfig::File(path_or("COUNTER_FILE", counter::DEFAULT_PATH)?),
        };
        Ok(Self { port, store })
    }

    /// The file store on `path`, on port 0 (for tests).
    #[must_use]
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self { port: 0, store: StoreConfig::File(path.into()) }
    }
}

//! log-output's command line (`writer`, `reader`, `alive`, `backup` or
//! `restore`) and environment, read once.

use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use service_kit::env::{EnvError, optional_parsed, parsed_or, path_or};

use crate::backup::Paths;

/// The usage line printed for a missing or unknown subcommand.
pub const USAGE: &str = "usage: log-output <writer|reader|alive|backup|restore>";

const DEFAULT_LOG_FILE: &str = "files/output.log";

/// What to run, with its settings.
#[derive(Debug, Clone)]
pub enum Command {
    /// Append an entry now and every interval.
    Writer(WriterConfig),
    /// Serve the log over HTTP.
    Reader(ReaderConfig),
    /// Exit 0 if the writer's heartbeat file is fresh (the contract's exec
    /// probe; the manifests probe the writer's `/healthz` instead).
    Alive(AliveConfig),
    /// Take a backup of the counter and the log into `BACKUP_DIR`.
    Backup(BackupConfig),
    /// Restore one (docs/contract.md, "Backups and restore").
    Restore(RestoreConfig),
}

/// `log-output backup`'s settings.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// `COUNTER_FILE`, `LOG_FILE` and `BACKUP_DIR` (default `backups`).
    pub paths: Paths,
    /// `BACKUP_KEEP`, default 7: the newest kept, the older removed.
    pub keep: NonZeroUsize,
}

/// `log-output restore`'s settings.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    /// As for a backup.
    pub paths: Paths,
    /// `RESTORE_FROM`: a backup's name; unset, the newest.
    pub from: Option<String>,
    /// `RESTORE_FLOOR`: the operator's word that no number at or above it was
    /// answered; unset, the bound by time applies.
    pub floor: Option<u64>,
}

/// The writer's settings.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// `LOG_FILE`, default `files/output.log`.
    pub log_file: PathBuf,
    /// `COUNTER_FILE`, default `files/pingpong_counter.txt`.
    pub counter_file: PathBuf,
    /// `PINGPONG_URL` (`http://pingpong-svc:2345`): when set, the count comes
    /// from `GET $PINGPONG_URL/pings` instead of `COUNTER_FILE`.
    pub pingpong_url: Option<String>,
    /// `WRITE_INTERVAL_MS`, default 5000, never 0.
    pub interval: Duration,
    /// `HEARTBEAT_FILE`, unset by default: touched on every turn of the loop,
    /// for the contract's `log-output alive` (`heartbeat.rs`).
    pub heartbeat: Option<PathBuf>,
    /// `METRICS_PORT`, default 9090: where `GET /metrics` is served.
    pub metrics_port: u16,
}

/// `log-output alive`'s settings: the writer's own variables.
#[derive(Debug, Clone)]
pub struct AliveConfig {
    /// `HEARTBEAT_FILE`, required.
    pub heartbeat: PathBuf,
    /// `WRITE_INTERVAL_MS`, as the writer's: the limit follows from it
    /// (`liveness::limit`).
    pub interval: Duration,
}

/// The reader's settings.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// `PORT`, default 8080.
    pub port: u16,
    /// `LOG_FILE`, default `files/output.log`.
    pub log_file: PathBuf,
}

/// A start-up mistake; its message is the one line the user sees.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No subcommand, or one we do not know.
    #[error("{USAGE} (got {0:?})")]
    Usage(String),
    /// A variable set to something unusable.
    #[error(transparent)]
    Env(#[from] EnvError),
}

fn interval() -> Result<Duration, EnvError> {
    let default = NonZeroU64::new(5000).unwrap_or(NonZeroU64::MIN);
    let ms = parsed_or("WRITE_INTERVAL_MS", default, "a whole number of milliseconds above 0")?;
    Ok(Duration::from_millis(ms.get()))
}

fn backup_paths() -> Result<Paths, EnvError> {
    Ok(Paths {
        counter_file: path_or("COUNTER_FILE", counter::DEFAULT_PATH)?,
        log_file: path_or("LOG_FILE", DEFAULT_LOG_FILE)?,
        backup_dir: path_or("BACKUP_DIR", "backups")?,
    })
}

/// `RESTORE_FROM`: a backup's name (a directory in `BACKUP_DIR`), or unset.
fn restore_from() -> Result<Option<String>, EnvError> {
    const EXPECTED: &str = "the name of a backup in BACKUP_DIR, such as 20261206T021000.123Z";
    let Some(value) = std::env::var_os("RESTORE_FROM") else { return Ok(None) };
    let value = value.to_string_lossy().trim().to_owned();
    if value.is_empty() || value.contains('/') || value.starts_with('.') {
        return Err(EnvError { name: "RESTORE_FROM", expected: EXPECTED, value });
    }
    Ok(Some(value))
}

/// `PINGPONG_URL`: an `http://` URL (no path, or `/`), or unset.
fn pingpong_url() -> Result<Option<String>, EnvError> {
    const EXPECTED: &str = "an http:// URL of pingpong, such as http://pingpong-svc:2345";
    let Some(value) = std::env::var_os("PINGPONG_URL") else { return Ok(None) };
    let value = value.to_string_lossy().trim().to_owned();
    let rest = value.strip_prefix("http://").unwrap_or("");
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
        return Err(EnvError { name: "PINGPONG_URL", expected: EXPECTED, value });
    }
    Ok(Some(format!("http://{host}")))
}

fn optional_path(name: &'static str) -> Result<Option<PathBuf>, EnvError> {
    if std::env::var_os(name).is_none() {
        return Ok(None);
    }
    path_or(name, "").map(Some)
}

impl Command {
    /// Reads the subcommand from `args` (without the program name) and the
    /// settings it needs from the environment.
    ///
    /// # Errors
    /// A wrong subcommand or a bad variable.
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, ConfigError> {
        let first = args.next();
        if let Some(extra) = args.next() {
            return Err(ConfigError::Usage(extra));
        }
        match first.as_deref() {
            Some("writer") => Ok(Self::Writer(WriterConfig {
                log_file: path_or("LOG_FILE", DEFAULT_LOG_FILE)?,
                counter_file: path_or("COUNTER_FILE", counter::DEFAULT_PATH)?,
                pingpong_url: pingpong_url()?,
                interval: interval()?,
                heartbeat: optional_path("HEARTBEAT_FILE")?,
                metrics_port: parsed_or("METRICS_PORT", 9090, "a port number from 0 to 65535")?,
            })),
            Some("alive") => Ok(Self::Alive(AliveConfig {
                heartbeat: optional_path("HEARTBEAT_FILE")?.ok_or(EnvError {
                    name: "HEARTBEAT_FILE",
                    expected: "set to the writer's heartbeat file",
                    value: String::new(),
                })?,
                interval: interval()?,
            })),
            Some("backup") => Ok(Self::Backup(BackupConfig {
                paths: backup_paths()?,
                keep: parsed_or(
                    "BACKUP_KEEP",
                    NonZeroUsize::new(7).unwrap_or(NonZeroUsize::MIN),
                    "a whole number above 0",
                )?,
            })),
            Some("restore") => Ok(Self::Restore(RestoreConfig {
                paths: backup_paths()?,
                from: restore_from()?,
                floor: optional_parsed("RESTORE_FLOOR", "a whole number: every pong answered was below it")?,
            })),
            Some("reader") => Ok(Self::Reader(ReaderConfig {
                port: parsed_or("PORT", 8080, "a port number from 0 to 65535")?,
                log_file: path_or("LOG_FILE", DEFAULT_LOG_FILE)?,
            })),
            other => Err(ConfigError::Usage(other.unwrap_or("nothing").to_owned())),
        }
    }
}

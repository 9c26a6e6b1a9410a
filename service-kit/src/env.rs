//! Typed reading of environment variables, with one clear message per mistake.

use std::ffi::OsString;
use std::path::PathBuf;
use std::str::FromStr;

/// A variable that is set to something unusable. Its message is the one line
/// a user sees on stderr when start-up stops.
#[derive(Debug, thiserror::Error)]
#[error("{name} must be {expected}, got {value:?}")]
pub struct EnvError {
    /// The variable.
    pub name: &'static str,
    /// What a good value looks like.
    pub expected: &'static str,
    /// What it was.
    pub value: String,
}

fn raw(name: &'static str, expected: &'static str) -> Result<Option<String>, EnvError> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(os) => os.into_string().map(Some).map_err(|os: OsString| EnvError {
            name,
            expected,
            value: os.to_string_lossy().into_owned(),
        }),
    }
}

/// Reads `name` as a `T`, or `default` when it is unset.
///
/// # Errors
/// The variable is set but does not parse (an empty value does not parse either).
pub fn parsed_or<T: FromStr>(name: &'static str, default: T, expected: &'static str) -> Result<T, EnvError> {
    match raw(name, expected)? {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|_| EnvError { name, expected, value }),
    }
}

/// Reads `name` as a `T`, or `None` when it is unset.
///
/// # Errors
/// The variable is set but does not parse.
pub fn optional_parsed<T: FromStr>(name: &'static str, expected: &'static str) -> Result<Option<T>, EnvError> {
    match raw(name, expected)? {
        None => Ok(None),
        Some(value) => value.trim().parse().map(Some).map_err(|_| EnvError { name, expected, value }),
    }
}

/// Reads `name` as a path, or `default` when it is unset.
///
/// # Errors
/// The variable is set but empty or not valid UTF-8.
pub fn path_or(name: &'static str, default: &str) -> Result<PathBuf, EnvError> {
    const EXPECTED: &str = "a file path";
    match raw(name, EXPECTED)? {
        None => Ok(PathBuf::from(default)),
        Some(value) if value.trim().is_empty() => Err(EnvError { name, expected: EXPECTED, value }),
        Some(value) => Ok(PathBuf::from(value)),
    }
}

//! What log-output's integration tests share: a temporary volume with the
//! counter file and the log on it, the writer and reader started on it, and
//! the entry format checked by hand.

#![allow(dead_code)] // each test file uses its own part

use std::fs;
use std::path::PathBuf;

use log_output::log_file::{DEFAULT_MAX_BYTES, LogFile};
use tempfile::TempDir;
use testkit::{Process, Served};

pub const BIN: &str = env!("CARGO_BIN_EXE_log-output");

pub struct Volume {
    _dir: TempDir,
    pub counter: PathBuf,
    pub log: PathBuf,
}

impl Volume {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        Self { counter: files.join("pingpong_counter.txt"), log: files.join("output.log"), _dir: dir }
    }

    /// The writer binary, every `interval_ms`, its metrics on a port of its
    /// own (`url`).
    pub fn writer(&self, interval_ms: u64) -> Process {
        Process::command(BIN)
            .arg("writer")
            .env("COUNTER_FILE", &self.counter)
            .env("LOG_FILE", &self.log)
            .env("WRITE_INTERVAL_MS", interval_ms.to_string())
            .http()
            .start()
    }

    /// The reader served in this process on port 0, until dropped.
    pub async fn serve_reader(&self) -> Served {
        Served::start(log_output::reader::service(LogFile::new(&self.log, DEFAULT_MAX_BYTES))).await
    }

    /// The reader as the real binary.
    pub fn reader(&self) -> Process {
        Process::command(BIN).arg("reader").env("LOG_FILE", &self.log).http().start()
    }

    pub fn set_count(&self, count: &str) {
        fs::create_dir_all(self.counter.parent().unwrap()).unwrap();
        fs::write(&self.counter, count).unwrap();
    }
}

/// Checks the two-line format by hand (not with the crate's own parser) and
/// returns the UUID and the count.
pub fn check_entry(text: &str) -> (String, u64) {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    assert_eq!(lines.len(), 2, "two lines: {text:?}");
    let header = lines[0].strip_suffix(".\n").unwrap_or_else(|| panic!("first line ends with '.': {text:?}"));
    let (time, id) = header.split_once(": ").unwrap();
    assert_eq!(time.len(), "2020-03-30T12:15:17.705Z".len(), "{time}");
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.ends_with('Z') && time.as_bytes()[19] == b'.',
        "{time}"
    );
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4, "{id}");
    assert_eq!(id, id.to_lowercase());
    let count = lines[1].strip_prefix("Ping / Pongs: ").and_then(|c| c.strip_suffix('\n')).unwrap();
    (id.to_owned(), count.parse().unwrap())
}

pub fn entries(text: &str) -> Vec<(String, u64)> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    lines.chunks(2).map(|pair| check_entry(&pair.concat())).collect()
}

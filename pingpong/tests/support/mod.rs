//! What pingpong's integration tests share: a temporary volume with the
//! counter file on it, and pingpong started on it (plain or under strace).

#![allow(dead_code)] // each test file uses its own part

use std::fs;
use std::path::{Path, PathBuf};

use common::testing::Service;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_pingpong");

/// A temp volume and the counter file on it.
pub struct Volume {
    _dir: TempDir,
    pub counter: PathBuf,
}

impl Volume {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("files/pingpong_counter.txt");
        Self { _dir: dir, counter }
    }

    /// The counter's directory, where its lock and temp files live too.
    pub fn files(&self) -> &Path {
        self.counter.parent().unwrap()
    }

    pub fn start(&self) -> Service {
        Service::start(BIN, &[], &[("COUNTER_FILE", &self.counter)], true)
    }

    /// pingpong under strace, which injects `inject` into the syscalls that
    /// touch `path` (strace follows descriptors back to their paths; for
    /// `rename` it matches the first path, the temp file).
    pub fn start_under_strace(&self, path: &Path, inject: &str) -> Service {
        let path = path.to_str().unwrap();
        let args = ["-f", "-qq", "-o", "/dev/null", "-P", path, "-e", inject, "--", BIN];
        Service::start("strace", &args, &[("COUNTER_FILE", &self.counter)], true)
    }

    pub fn on_disk(&self) -> String {
        fs::read_to_string(&self.counter).unwrap()
    }
}

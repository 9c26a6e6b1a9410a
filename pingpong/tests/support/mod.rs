//! What pingpong's integration tests share: a temporary volume with the
//! counter file on it, and pingpong started on it: in this process (its
//! router on port 0, the address a value) or as the real binary (plain or
//! under strace).

#![allow(dead_code)] // each test file uses its own part

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use testkit::{Process, Served};

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

    /// pingpong served in this process.
    pub async fn serve(&self) -> Served {
        Served::start(pingpong::build(&pingpong::Config::file(&self.counter)).unwrap()).await
    }

    /// The real binary, as a child process.
    pub fn start(&self) -> Process {
        Process::command(BIN).env("COUNTER_FILE", &self.counter).http().start()
    }

    /// pingpong under strace, injecting `inject` into the calls on `path`.
    pub fn start_under_strace(&self, path: &Path, inject: &str) -> Process {
        Process::command(BIN).env("COUNTER_FILE", &self.counter).under_strace(path, inject).http().start()
    }

    pub fn on_disk(&self) -> String {
        fs::read_to_string(&self.counter).unwrap()
    }
}

/// Floods `reader` with `/pings` from many connections while `pinger` is sent
/// `PINGS` pings one after another, the count being `first` before: all must
/// be answered, in order, within the tests' one deadline. Returns how many
/// reads were answered, to show the flood ran.
pub async fn pings_under_a_flood_of_reads(reader: &Process, pinger: &Process, first: u64) -> usize {
    const READERS: usize = 32;
    const PINGS: u64 = 100;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = Vec::new();
    for _ in 0..READERS {
        let (url, stop) = (reader.url("/pings"), stop.clone());
        flood.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let response = client.get(&url).send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.text().await.unwrap();
                reads += 1;
            }
            reads
        }));
    }
    let client = reqwest::Client::new();
    let pings = async {
        for k in 0..PINGS {
            let answer = client.get(pinger.url("/pingpong")).send().await.unwrap();
            assert_eq!(answer.text().await.unwrap(), format!("pong {}", first + k));
        }
    };
    // Starved means no progress: all of them within the tests' one deadline.
    tokio::time::timeout(testkit::DEADLINE, pings).await.unwrap_or_else(|_| {
        panic!("{PINGS} pings were not answered within {:?}: starved by the reads", testkit::DEADLINE)
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut reads = 0;
    for task in flood {
        reads += task.await.unwrap();
    }
    reads
}

/// `GET url` (a `/pingpong`): the body, which must come with 200.
pub async fn pong(url: &str) -> String {
    let (status, body) = testkit::get(url).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Pings under strace's `inject=fdatasync:error=EIO:when=1` until one is
/// answered, which must be `expected` (no refused ping was counted); returns
/// how many were refused, each with 503. strace counts `when=` per thread,
/// and a lone ping is committed by the runtime thread that runs its request
/// (or by the commit worker): each such thread's first flush fails once.
pub async fn refused_until_answered(service: &Process, expected: &str) -> usize {
    let mut refused = 0;
    loop {
        let (status, body) = testkit::try_get(&service.url("/pingpong")).await.unwrap();
        if status == 200 {
            assert_eq!(body, expected, "after {refused} refusals");
            assert!(refused <= 8, "{refused} refusals: more than one per thread");
            return refused;
        }
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("could not fdatasync"), "{body}");
        refused += 1;
    }
}

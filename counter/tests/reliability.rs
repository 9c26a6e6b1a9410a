//! The increment protocol under real faults: the `counter` binary (one
//! increment, the same code pingpong's commit worker runs) under strace,
//! which fails or kills at each system call of both ways an increment can
//! take. Needs strace; run with `./test-reliability.sh` (CI does).

#![cfg(target_os = "linux")] // strace

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use testkit::Process;

const BIN: &str = env!("CARGO_BIN_EXE_counter");

/// A temporary directory with the counter file in it.
struct Case {
    _dir: tempfile::TempDir,
    counter: PathBuf,
}

impl Case {
    /// The counter file holds the canonical record of 1 (the increment
    /// overwrites it in place) or a hand-written `1` (the increment replaces
    /// it by rename).
    fn new(canonical: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("pingpong_counter.txt");
        let content = if canonical { counter::record::format(1).to_vec() } else { b"1\n".to_vec() };
        fs::write(&counter, content).unwrap();
        Self { _dir: dir, counter }
    }

    /// The path strace filters on: the counter file, its temp or lock file, or the directory.
    fn target(&self, target: &str) -> PathBuf {
        let dir = self.counter.parent().unwrap();
        match target {
            "counter" => self.counter.clone(),
            "tmp" => dir.join("pingpong_counter.txt.tmp"),
            "lock" => dir.join("pingpong_counter.txt.lock"),
            _ => dir.to_path_buf(),
        }
    }

    fn on_disk(&self) -> String {
        fs::read_to_string(&self.counter).unwrap()
    }

    /// `counter increment FILE`: the number it handed out (what it prints),
    /// or its error line.
    fn increment(&self) -> Result<String, String> {
        let out = std::process::Command::new(BIN).arg("increment").arg(&self.counter).output().unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `counter increment FILE` under strace injecting `inject` into the calls on `path`.
    fn increment_under_strace(&self, path: &Path, inject: &str) -> Process {
        Process::command(BIN).arg("increment").arg(&self.counter).under_strace(path, inject).start()
    }
}

/// ENOSPC and EIO on each system call of both ways an increment can take
/// (in place, and replace-by-rename), and EROFS (a read-only volume) on
/// opening a file for writing. Each fails with one line naming the file,
/// leaves the count on disk as it was, and the next increment continues
/// from it: no number is skipped or repeated.
#[tokio::test]
#[ignore = "needs strace: run by ./test-reliability.sh"]
async fn injected_enospc_and_eio_fail_the_increment_and_leave_the_count_as_it_was() {
    // (syscall, target, errno, the file holds a canonical record); each on
    // the first such call of the increment.
    for (syscall, target, errno, canonical) in [
        // In place: pread64, pwrite64 and fdatasync of the counter file, and
        // opening it for writing.
        ("pread64", "counter", "EIO", true),
        ("pwrite64", "counter", "ENOSPC", true),
        ("pwrite64", "counter", "EIO", true),
        ("fdatasync", "counter", "EIO", true),
        ("fdatasync", "counter", "ENOSPC", true),
        ("openat", "counter", "EROFS", true),
        // Replace-by-rename, from a hand-written count.
        ("write", "tmp", "ENOSPC", false),
        ("write", "tmp", "EIO", false),
        ("fdatasync", "tmp", "EIO", false),
        ("fdatasync", "tmp", "ENOSPC", false),
        ("rename", "tmp", "ENOSPC", false),
        ("rename", "tmp", "EIO", false),
        ("fsync", "dir", "EIO", false),
        ("openat", "tmp", "EROFS", false),
    ] {
        let case = Case::new(canonical);
        let before = case.on_disk();
        let what = format!("{errno} on {syscall} of the {target}");
        let inject = format!("inject={syscall}:error={errno}:when=1");
        let mut run = case.increment_under_strace(&case.target(target), &inject);
        let status = run.wait_exit(Duration::from_secs(10)).await.expect("the increment ends");
        let stderr = run.stderr();
        assert!(!status.success(), "{what}: the increment fails");
        assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr}");
        assert!(stderr.contains("pingpong_counter.txt") && stderr.contains("could not"), "{what}: {stderr}");
        assert_eq!(case.on_disk().trim(), before.trim(), "{what}: the count on disk is unchanged");
        assert_eq!(case.increment(), Ok("1".into()), "{what}: the next increment continues from 1");
        assert_eq!(case.on_disk().as_bytes(), counter::record::format(2), "{what}");
    }
}

/// SIGKILL at each system call of both ways an increment can take (on entry,
/// so before the call does its work). The file afterwards holds the old or
/// the new count, never a torn one, and the next increment continues from
/// it, so no number is handed out twice.
#[tokio::test]
#[ignore = "needs strace: run by ./test-reliability.sh"]
async fn sigkill_at_each_syscall_of_an_increment_leaves_the_old_or_the_new_count() {
    // (syscall, target, the file holds a canonical record)
    for (syscall, target, canonical) in [
        ("flock", "lock", true),
        ("pread64", "counter", true),
        ("pwrite64", "counter", true),
        ("fdatasync", "counter", true),
        ("write", "tmp", false),
        ("fdatasync", "tmp", false),
        ("rename", "tmp", false),
        ("fsync", "dir", false),
    ] {
        let case = Case::new(canonical);
        let what = format!("SIGKILL at {syscall} of the {target}");
        let inject = format!("inject={syscall}:signal=KILL:when=1");
        let mut run = case.increment_under_strace(&case.target(target), &inject);
        let status = run.wait_exit(Duration::from_secs(10)).await.expect("the increment ends");
        assert!(!status.success(), "{what}: the process died");
        let left = case.on_disk();
        assert!(left.trim() == "1" || left.trim() == "2", "{what}: the file holds {left:?}");
        let next = case.increment().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(next, left.trim(), "{what}: continues from the file");
    }
}

//! The reliability suite for the log writer: injected faults on the real
//! binary. Needs strace; run with `./test-reliability.sh` (CI does).

#![cfg(target_os = "linux")] // strace

use std::fs;

use log_output::entry::last_complete_entries;
use testkit::{Process, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_log-output");

/// ENOSPC or EIO on the second append's write or fsync: that entry is
/// reported as skipped, the log holds only whole entries, and the writer goes
/// on appending.
#[tokio::test]
#[ignore = "needs strace: run by ./test-reliability.sh"]
async fn injected_enospc_and_eio_on_the_log_skip_one_entry_and_tear_none() {
    for (syscall, errno) in [("write", "ENOSPC"), ("write", "EIO"), ("fdatasync", "EIO"), ("fdatasync", "ENOSPC")] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("output.log");
        let counter = dir.path().join("pingpong_counter.txt");
        fs::write(&counter, "7").unwrap();
        let inject = format!("inject={syscall}:error={errno}:when=2");
        let writer = Process::command(BIN)
            .arg("writer")
            .env("LOG_FILE", &log)
            .env("COUNTER_FILE", &counter)
            .env("WRITE_INTERVAL_MS", "20")
            .under_strace(&log, &inject)
            .start();
        let case = format!("{errno} on {syscall} of the log");
        eventually(&format!("{case}: three entries after the failure"), || async {
            let text = fs::read(&log).ok()?;
            (last_complete_entries(&text, true, 100).len() >= 3).then_some(())
        })
        .await;
        let stderr = writer.stderr();
        assert!(stderr.contains("entry skipped") && stderr.contains("output.log"), "{case}: {stderr}");
        let text = fs::read_to_string(&log).unwrap();
        let lines = text.lines().count();
        let entries = last_complete_entries(text.as_bytes(), true, 100);
        assert_eq!(lines, 2 * entries.len(), "{case}: every line belongs to a whole entry:\n{text}");
        assert!(entries.iter().all(|e| e.count == 7), "{case}");
    }
}

/// ENOSPC or EIO on the rotation's rename (the log is full at start): that
/// entry is skipped, nothing of the old log is lost, and the next append
/// rotates and goes on.
#[tokio::test]
#[ignore = "needs strace: run by ./test-reliability.sh"]
async fn a_failed_rotation_loses_nothing_and_the_next_one_succeeds() {
    for errno in ["ENOSPC", "EIO"] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("output.log");
        let rotated = dir.path().join("output.log.1");
        let old = "2026-11-23T12:00:00.000Z: 5a0f3c2e-1b2c-4d5e-8f90-0123456789ab.\nPing / Pongs: 1\n"
            .repeat(log_output::log_file::DEFAULT_MAX_BYTES as usize / 80);
        fs::write(&log, &old).unwrap();
        let inject = format!("inject=rename:error={errno}:when=1");
        let writer = Process::command(BIN)
            .arg("writer")
            .env("LOG_FILE", &log)
            .env("WRITE_INTERVAL_MS", "20")
            .under_strace(&log, &inject)
            .start();
        let case = format!("{errno} on the rotation's rename");
        eventually(&format!("{case}: an entry in the new log"), || async {
            let text = fs::read(&log).ok()?;
            (text.len() < old.len() && !last_complete_entries(&text, true, 1).is_empty()).then_some(())
        })
        .await;
        assert!(writer.stderr().contains("entry skipped"), "{case}: the failed turn is logged");
        assert_eq!(fs::read_to_string(&rotated).unwrap(), old, "{case}: the old log is whole in output.log.1");
    }
}

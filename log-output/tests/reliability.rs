//! The reliability suite for the log writer: injected faults on the real
//! binary. Needs strace; run with `./test-reliability.sh` (CI does).

use std::fs;
use std::path::PathBuf;

use common::testing::{Service, eventually};
use log_output::entry::last_complete_entries;

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
        let args = ["-f", "-qq", "-o", "/dev/null", "-P", log.to_str().unwrap(), "-e", &inject, "--", BIN, "writer"];
        let interval = PathBuf::from("20");
        let writer = Service::start(
            "strace",
            &args,
            &[("LOG_FILE", &log), ("COUNTER_FILE", &counter), ("WRITE_INTERVAL_MS", &interval)],
            false,
        );
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

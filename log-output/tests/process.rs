//! The writer and the reader as they run in the pod: two real processes on one
//! directory, real HTTP, real signals; what needs a process (restarts, exit
//! codes, SIGTERM, the liveness probes). The reader's HTTP behaviour is tested
//! in process (`reader.rs`).

use std::collections::HashSet;
use std::fs;
use std::time::{Duration, Instant};

use testkit::{Process, Signal, assert_one_clear_line, eventually, eventually_within, get, run_to_exit};

use support::{BIN, Volume, check_entry, entries};

mod support;

#[tokio::test]
async fn the_reader_serves_the_latest_entry_in_the_course_format_with_the_current_count() {
    let volume = Volume::new();
    volume.set_count("3\n");
    let _writer = volume.writer(20);
    let reader = volume.reader();
    let body = eventually("a first entry", || async {
        let (status, body) = get(&reader.url("/")).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(check_entry(&body).1, 3);
    volume.set_count("4");
    eventually("the new count", || async { (check_entry(&get(&reader.url("/")).await.1).1 == 4).then_some(()) }).await;
    assert_eq!(get(&reader.url("/readyz")).await.0, 200);
}

#[tokio::test]
async fn the_uuid_is_constant_within_a_life_and_new_after_a_restart_and_history_survives() {
    let volume = Volume::new();
    let reader = volume.reader();
    let mut writer = volume.writer(20);
    let first_life = eventually("three entries", || async {
        let (status, body) = get(&reader.url("/log?tail=3")).await;
        let found = if status == 200 { entries(&body) } else { Vec::new() };
        (found.len() == 3).then_some(found)
    })
    .await;
    let old_id = first_life[0].0.clone();
    assert!(first_life.iter().all(|(id, count)| *id == old_id && *count == 0), "{first_life:?}");
    writer.kill();
    let _writer = volume.writer(20);
    let ids = eventually("an entry of the new life", || async {
        let ids: Vec<String> = entries(&get(&reader.url("/log?tail=1000")).await.1).into_iter().map(|e| e.0).collect();
        (ids.last() != Some(&old_id)).then_some(ids)
    })
    .await;
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 2, "one id per life: {distinct:?}");
    assert_eq!(ids[0], old_id, "the old life's entries are still in the log");
}

#[tokio::test]
async fn a_corrupt_counter_skips_entries_instead_of_inventing_a_count() {
    let volume = Volume::new();
    volume.set_count("12abc");
    let writer = volume.writer(20);
    let reader = volume.reader();
    eventually("the skipped entry to be logged", || async { writer.stderr().contains("entry skipped").then_some(()) })
        .await;
    let (status, body) = get(&reader.url("/")).await;
    assert_eq!((status, body.contains("no log entry yet")), (503, true), "{body}");
    assert!(fs::read_to_string(&volume.log).unwrap().is_empty());
    volume.set_count("5");
    eventually("an entry once repaired", || async {
        let (status, body) = get(&reader.url("/")).await;
        (status == 200 && check_entry(&body).1 == 5).then_some(())
    })
    .await;
}

#[test]
fn bad_configuration_stops_start_up_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, "").unwrap();
    let under_file = file.join("output.log");
    let under_file = under_file.to_str().unwrap();
    let good_log = dir.path().join("output.log");
    let good_log = good_log.to_str().unwrap();
    // (arguments, environment, what the one line must mention)
    type Case<'a> = (&'a [&'a str], Vec<(&'a str, &'a str)>, &'a str);
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let taken = taken.local_addr().unwrap().port().to_string();
    let cases: [Case; 8] = [
        (&[], vec![], "usage"),
        (&["sideways"], vec![], "usage"),
        (&["reader"], vec![("PORT", "http"), ("LOG_FILE", good_log)], "PORT"),
        (&["writer"], vec![("WRITE_INTERVAL_MS", "0"), ("LOG_FILE", good_log)], "WRITE_INTERVAL_MS"),
        (&["writer"], vec![("WRITE_INTERVAL_MS", "fast"), ("LOG_FILE", good_log)], "WRITE_INTERVAL_MS"),
        (&["writer"], vec![("LOG_FILE", under_file)], "not-a-dir"),
        (&["writer"], vec![("METRICS_PORT", "abc"), ("LOG_FILE", good_log)], "METRICS_PORT"),
        (&["writer"], vec![("METRICS_PORT", &taken), ("LOG_FILE", good_log)], "METRICS_PORT"),
    ];
    for (args, env, mentions) in cases {
        let (status, stderr) = run_to_exit(BIN, args, &env);
        assert_one_clear_line(status, &stderr, mentions);
    }
}

#[tokio::test]
async fn sigterm_stops_writer_and_reader_with_exit_0() {
    let volume = Volume::new();
    let mut writer = volume.writer(10);
    let mut reader = volume.reader();
    eventually("a first entry", || async { (get(&reader.url("/")).await.0 == 200).then_some(()) }).await;
    for service in [&mut writer, &mut reader] {
        service.signal(Signal::SIGTERM);
        let status = service.wait_exit(Duration::from_secs(5)).await.expect("exits within 5 s");
        assert!(status.success(), "exit status {status}");
    }
    let log = fs::read_to_string(&volume.log).unwrap();
    assert!(log.ends_with('\n') && !entries(&log).is_empty(), "the last append was finished");
}

/// The writer's liveness as every manifest probes it, `GET /healthz` on its
/// metrics port: 200 while the loop turns; 503 naming how long ago it last
/// turned once it is stuck, really stuck: the counter's lock held
/// exclusively by someone else, so the loop's shared read of the count
/// waits (the port still answers: it is the loop, not the process, that is
/// stuck); and 200 again once the loop turns again. Not before the limit's
/// floor of 10 s: one slow turn is not death.
#[tokio::test]
async fn the_writers_healthz_is_200_while_its_loop_turns_and_503_saying_when_it_last_turned_once_stuck() {
    let volume = Volume::new();
    volume.set_count("3\n");
    let writer = volume.writer(20);
    eventually("a first entry", || async { fs::read_to_string(&volume.log).ok().filter(|log| !log.is_empty()) }).await;
    assert_eq!(get(&writer.url("/healthz")).await, (200, "ok".into()));

    let lock_path = volume.counter.with_file_name("pingpong_counter.txt.lock");
    let lock = fs::File::options().write(true).create(true).truncate(false).open(&lock_path).unwrap();
    lock.lock().unwrap();
    let held = Instant::now();
    let reason = eventually_within(Duration::from_secs(30), "the writer's /healthz to fail", || async {
        let (status, body) = get(&writer.url("/healthz")).await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(held.elapsed() >= Duration::from_secs(9), "failed after {:?}, before the 10 s floor", held.elapsed());
    assert!(
        reason.starts_with("not alive: the writer loop last turned 1") && reason.ends_with("s ago (limit 10s)\n"),
        "{reason:?}"
    );
    assert_eq!(reason.lines().count(), 1, "{reason:?}");

    lock.unlock().unwrap();
    eventually("the loop to turn again", || async { (get(&writer.url("/healthz")).await.0 == 200).then_some(()) })
        .await;
}

/// The contract's `log-output alive` (kept for it; the manifests probe
/// `/healthz`): passes while the loop turns, fails once it has stalled (the
/// process alive but stopped), and passes again when it turns again.
#[tokio::test]
async fn the_alive_probe_passes_while_the_writer_loop_turns_and_fails_once_it_stalls() {
    let volume = Volume::new();
    let heartbeat = volume.log.with_file_name("heartbeat");
    let beat = heartbeat.to_str().unwrap();
    let (status, stderr) = run_to_exit(BIN, &["alive"], &[("HEARTBEAT_FILE", beat)]);
    assert!(!status.success() && stderr.contains("no heartbeat"), "{stderr}");
    let writer = Process::command(BIN)
        .arg("writer")
        .env("LOG_FILE", &volume.log)
        .env("WRITE_INTERVAL_MS", "20")
        .env("HEARTBEAT_FILE", &heartbeat)
        .start();
    eventually("the first heartbeat", || async { heartbeat.exists().then_some(()) }).await;
    let (status, stderr) = run_to_exit(BIN, &["alive"], &[("HEARTBEAT_FILE", beat)]);
    assert!(status.success(), "{stderr}");

    // Stall the loop (SIGSTOP: the process lives, the loop does not turn),
    // and let a minute pass for the heartbeat: its time is set back, as
    // waiting would, so that the probe's limit (at least 10 s) is passed.
    writer.signal(Signal::SIGSTOP);
    // The signal is delivered asynchronously: wait until the process is stopped.
    // (ps, not /proc: the same on Linux and macOS)
    let pid = writer.pid().to_string();
    eventually("the writer to be stopped", || async {
        let ps = std::process::Command::new("ps").args(["-o", "stat=", "-p", &pid]).output().ok()?;
        String::from_utf8_lossy(&ps.stdout).trim_start().starts_with('T').then_some(())
    })
    .await;
    let a_minute_ago = std::time::SystemTime::now() - Duration::from_secs(60);
    fs::File::options().write(true).open(&heartbeat).unwrap().set_modified(a_minute_ago).unwrap();
    let (status, stderr) = run_to_exit(BIN, &["alive"], &[("HEARTBEAT_FILE", beat)]);
    assert!(!status.success() && stderr.contains("last turned"), "a stalled loop fails the probe: {stderr}");

    writer.signal(Signal::SIGCONT);
    eventually("the loop to turn again", || async {
        run_to_exit(BIN, &["alive"], &[("HEARTBEAT_FILE", beat)]).0.success().then_some(())
    })
    .await;
}

//! pingpong as a process: what needs one of its own. SIGKILL and a restart,
//! two processes on one file, start-up errors and exit codes, SIGTERM under
//! load. The real binary, real HTTP, real files, real signals; HTTP
//! behaviour is tested in process (`http.rs`).

use std::collections::HashSet;
use std::fs;
use std::time::Duration;

use support::{BIN, Volume, pong};
use testkit::{Signal, assert_one_clear_line, eventually, run_to_exit};

mod support;

#[tokio::test]
async fn a_sigkilled_pingpong_continues_from_the_file() {
    let volume = Volume::new();
    let mut service = volume.start();
    for k in 0..7 {
        assert_eq!(pong(&service.url("/pingpong")).await, format!("pong {k}"));
    }
    service.kill();
    let service = volume.start();
    assert_eq!(pong(&service.url("/pingpong")).await, "pong 7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_file_never_answer_a_number_twice_nor_lose_one() {
    const TASKS: usize = 40;
    const EACH: usize = 10;
    let volume = Volume::new();
    let services = [volume.start(), volume.start()];
    let urls: Vec<String> = services.iter().map(|s| s.url("/pingpong")).collect();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let urls = urls.clone();
        // One client per task: its own connections, many in all.
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut numbers = Vec::new();
            for i in 0..EACH {
                let body = client.get(&urls[(t + i) % 2]).send().await.unwrap().text().await.unwrap();
                let n: u64 = body.strip_prefix("pong ").unwrap_or_else(|| panic!("{body}")).parse().unwrap();
                numbers.push(n);
            }
            numbers
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for n in task.await.unwrap() {
            assert!(seen.insert(n), "pong {n} was answered twice");
        }
    }
    let answers = (TASKS * EACH) as u64;
    assert_eq!(seen, (0..answers).collect(), "the answers are exactly 0..{answers}");
    assert_eq!(volume.on_disk().trim(), answers.to_string());
}

#[test]
fn bad_configuration_stops_start_up_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("c.txt");
    let counter = counter.to_str().unwrap();
    for port in ["abc", "70000", "-1", ""] {
        let (status, stderr) = run_to_exit(BIN, &[], &[("PORT", port), ("COUNTER_FILE", counter)]);
        assert_one_clear_line(status, &stderr, "PORT");
    }
    // A "directory" that is a regular file cannot be written, even by root.
    let file = dir.path().join("not-a-dir");
    fs::write(&file, "").unwrap();
    let under_file = file.join("c.txt");
    let (status, stderr) = run_to_exit(BIN, &[], &[("PORT", "0"), ("COUNTER_FILE", under_file.to_str().unwrap())]);
    assert_one_clear_line(status, &stderr, "not-a-dir");
    let (status, stderr) = run_to_exit(BIN, &[], &[("PORT", "0"), ("COUNTER_FILE", "")]);
    assert_one_clear_line(status, &stderr, "COUNTER_FILE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_answers_in_flight_requests_and_exits_0() {
    let volume = Volume::new();
    let mut service = volume.start();
    let url = service.url("/pingpong");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut answered = 0u64;
            // Bounded: stops at the first refused or closed connection.
            for _ in 0..5000 {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        let body = r.text().await.expect("an answered request has its whole body");
                        assert!(body.starts_with("pong "), "{body}");
                        answered += 1;
                    }
                    // Started after shutdown closed its gate: refused, not counted.
                    Ok(r) if r.status() == 503 => {
                        assert_eq!(r.text().await.unwrap(), "shutting down\n");
                        break;
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => break,
                }
            }
            answered
        }));
    }
    eventually("load to be under way", || async {
        let count: u64 = fs::read_to_string(&volume.counter).ok()?.trim().parse().ok()?;
        (count >= 200).then_some(())
    })
    .await;
    service.signal(Signal::SIGTERM);
    let status = service.wait_exit(Duration::from_secs(5)).await.expect("exits within 5 s");
    assert!(status.success(), "exit status {status}");
    let mut answered = 0;
    for task in tasks {
        answered += task.await.unwrap();
    }
    // Every ping the file counts was answered: none was cut off in flight.
    assert_eq!(volume.on_disk().trim(), answered.to_string());
}

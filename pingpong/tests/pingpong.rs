//! pingpong as users meet it: the real binary, real HTTP, real files, real
//! signals.

use std::collections::HashSet;
use std::fs;
use std::time::Duration;

use support::{BIN, Volume};
use testkit::{Service, Signal, assert_one_clear_line, eventually, get, run_to_exit};

mod support;

async fn ping(service: &Service) -> String {
    let (status, body) = get(&service.url("/pingpong")).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn the_first_ping_is_pong_0_and_the_file_holds_the_count() {
    let volume = Volume::new();
    let service = volume.start();
    assert_eq!(get(&service.url("/pings")).await, (200, "0".into()));
    for k in 0..5 {
        assert_eq!(ping(&service).await, format!("pong {k}"));
    }
    assert_eq!(get(&service.url("/pings")).await, (200, "5".into()));
    assert_eq!(volume.on_disk().trim(), "5");
    assert_eq!(get(&service.url("/readyz")).await.0, 200);
}

#[tokio::test]
async fn a_sigkilled_pingpong_continues_from_the_file() {
    let volume = Volume::new();
    let mut service = volume.start();
    for k in 0..7 {
        assert_eq!(ping(&service).await, format!("pong {k}"));
    }
    service.kill();
    let service = volume.start();
    assert_eq!(ping(&service).await, "pong 7");
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

#[tokio::test]
async fn a_corrupt_counter_file_is_never_overwritten_and_repairing_it_recovers() {
    let volume = Volume::new();
    let service = volume.start();
    assert_eq!(ping(&service).await, "pong 0");
    for bad in ["abc", "", "-3", "18446744073709551616", "12abc", "\u{0}\u{1}\u{ff}"] {
        fs::write(&volume.counter, bad).unwrap();
        for path in ["/pingpong", "/readyz", "/pings"] {
            let (status, body) = get(&service.url(path)).await;
            assert_eq!(status, 503, "{path} with {bad:?}: {body}");
            assert!(body.contains("pingpong_counter.txt"), "{path} names the file: {body}");
        }
        assert_eq!(fs::read(&volume.counter).unwrap(), bad.as_bytes(), "{bad:?} was overwritten");
    }
    fs::write(&volume.counter, "41\n").unwrap();
    assert_eq!(get(&service.url("/readyz")).await.0, 200);
    assert_eq!(ping(&service).await, "pong 41");
    assert!(service.stderr().contains("corrupt"), "the error is logged");
}

#[tokio::test]
async fn a_counter_path_that_is_a_directory_is_refused_and_left_alone() {
    let volume = Volume::new();
    fs::create_dir_all(&volume.counter).unwrap();
    let service = volume.start();
    let (status, body) = get(&service.url("/pingpong")).await;
    assert_eq!(status, 503);
    assert!(body.contains("is a directory"), "{body}");
    assert!(volume.counter.is_dir());
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
    let status = service.wait_exit(Duration::from_secs(5)).expect("exits within 5 s");
    assert!(status.success(), "exit status {status}");
    let mut answered = 0;
    for task in tasks {
        answered += task.await.unwrap();
    }
    // Every ping the file counts was answered: none was cut off in flight.
    assert_eq!(volume.on_disk().trim(), answered.to_string());
}

#[tokio::test]
async fn a_client_stalled_in_its_headers_neither_blocks_others_nor_holds_up_shutdown() {
    use std::io::Write;
    let volume = Volume::new();
    let mut service = volume.start();
    let addr = service.url("").trim_start_matches("http://").to_owned();
    // Slowloris: half a request, then silence.
    let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
    stalled.write_all(b"GET /pingpong HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    assert_eq!(ping(&service).await, "pong 0", "other clients are served meanwhile");
    service.signal(Signal::SIGTERM);
    // Well under the 3 s grace: shutdown does not wait for a request never sent.
    let status = service.wait_exit(Duration::from_secs(1)).expect("exits within 1 s despite the stalled client");
    assert!(status.success(), "exit status {status}");
    assert_eq!(volume.on_disk().trim(), "1", "the half request was never counted");
}

/// Sends raw bytes, reads until the server closes or 2 s pass.
fn raw_exchange(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn careless_clients_get_correct_answers() {
    let volume = Volume::new();
    let service = volume.start();
    let addr = service.url("").trim_start_matches("http://").to_owned();
    let addr2 = addr.clone();
    let answers = tokio::task::spawn_blocking(move || {
        let huge = format!("GET /pingpong HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(1 << 20));
        [
            raw_exchange(&addr2, huge.as_bytes()),
            raw_exchange(&addr2, b"BREW /pingpong HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            raw_exchange(&addr2, b"GET /teapot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            raw_exchange(&addr2, b"GET /pingpong HTTP/1.0\r\n\r\n"),
            raw_exchange(
                &addr2,
                b"GET /pingpong HTTP/1.1\r\nHost: x\r\n\r\nGET /pingpong HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ),
            raw_exchange(&addr2, b"\x16\x03\x01\x02\x00garbage, not HTTP\r\n\r\n"),
        ]
    })
    .await
    .unwrap();
    let [huge, brew, teapot, http10, pipelined, garbage] = answers;
    assert!(huge.starts_with("HTTP/1.1 431"), "oversized headers: {huge:.80}");
    assert!(brew.starts_with("HTTP/1.1 405"), "unknown method: {brew:.80}");
    assert!(teapot.starts_with("HTTP/1.1 404"), "unknown path: {teapot:.80}");
    assert!(http10.starts_with("HTTP/1.0 200") && http10.ends_with("pong 0"), "HTTP/1.0: {http10}");
    let pongs: Vec<&str> = pipelined.matches("pong ").collect();
    assert_eq!(pongs.len(), 2, "two pipelined requests, two answers: {pipelined}");
    assert!(pipelined.find("pong 1").unwrap() < pipelined.find("pong 2").unwrap(), "in order: {pipelined}");
    assert!(garbage.starts_with("HTTP/1.1 400") || garbage.is_empty(), "garbage: {garbage:.80}");
    assert_eq!(volume.on_disk().trim(), "3", "only the three real pings were counted");
    assert_eq!(get(&service.url("/pingpong")).await, (200, "pong 3".into()), "still serving");
}

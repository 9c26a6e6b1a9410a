//! pingpong's HTTP behaviour, in this process: `pingpong::service` served on port 0
//! with the address as a value, real HTTP over real sockets, real files.
//! What needs a process of its own (signals, SIGKILL, exit codes, two
//! processes on one file) is in `process.rs`.

use std::fs;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use pingpong::store::Committed;
use pingpong::{Store, StoreError};
use support::{Volume, pong};
use testkit::{Served, eventually, get};
use tower::ServiceExt;

mod support;

#[tokio::test]
async fn the_first_ping_is_pong_0_and_the_file_holds_the_count() {
    let volume = Volume::new();
    let app = volume.serve().await;
    assert_eq!(get(&app.url("/pings")).await, (200, "0".into()));
    for k in 0..5 {
        assert_eq!(pong(&app.url("/pingpong")).await, format!("pong {k}"));
    }
    assert_eq!(get(&app.url("/pings")).await, (200, "5".into()));
    assert_eq!(volume.on_disk().trim(), "5");
    assert_eq!(get(&app.url("/readyz")).await.0, 200);
}

#[tokio::test]
async fn a_corrupt_counter_file_is_never_overwritten_and_repairing_it_recovers() {
    let volume = Volume::new();
    let app = volume.serve().await;
    assert_eq!(pong(&app.url("/pingpong")).await, "pong 0");
    for bad in ["abc", "", "-3", "18446744073709551616", "12abc", "\u{0}\u{1}\u{ff}"] {
        fs::write(&volume.counter, bad).unwrap();
        for path in ["/pingpong", "/readyz", "/pings"] {
            let (status, body) = get(&app.url(path)).await;
            assert_eq!(status, 503, "{path} with {bad:?}: {body}");
            assert!(body.contains("pingpong_counter.txt"), "{path} names the file: {body}");
        }
        assert_eq!(fs::read(&volume.counter).unwrap(), bad.as_bytes(), "{bad:?} was overwritten");
    }
    fs::write(&volume.counter, "41\n").unwrap();
    assert_eq!(get(&app.url("/readyz")).await.0, 200);
    assert_eq!(pong(&app.url("/pingpong")).await, "pong 41");
}

#[tokio::test]
async fn a_counter_path_that_is_a_directory_is_refused_and_left_alone() {
    let volume = Volume::new();
    fs::create_dir_all(&volume.counter).unwrap();
    let app = volume.serve().await;
    let (status, body) = get(&app.url("/pingpong")).await;
    assert_eq!(status, 503);
    assert!(body.contains("is a directory"), "{body}");
    assert!(volume.counter.is_dir());
}

#[tokio::test]
async fn a_client_stalled_in_its_headers_neither_blocks_others_nor_holds_up_shutdown() {
    use std::io::Write;
    let volume = Volume::new();
    let app = volume.serve().await;
    let addr = app.addr.to_string();
    // Slowloris: half a request, then silence.
    let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
    stalled.write_all(b"GET /pingpong HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    assert_eq!(pong(&app.url("/pingpong")).await, "pong 0", "other clients are served meanwhile");
    // Well under the 3 s grace: shutdown does not wait for a request never sent.
    tokio::time::timeout(Duration::from_secs(1), app.shut_down())
        .await
        .expect("shuts down within 1 s despite the stalled client");
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
    let app = volume.serve().await;
    let addr = app.addr.to_string();
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
    assert_eq!(get(&app.url("/pingpong")).await, (200, "pong 3".into()), "still serving");
}

/// The router alone (`oneshot`, no socket): what is not a ping.
#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let dir = tempfile::tempdir().unwrap();
    let app = pingpong::build(&pingpong::Config::file(dir.path().join("c.txt"))).unwrap().into_router();
    for (method, path, expected) in [
        (Method::GET, "/nope", StatusCode::NOT_FOUND),
        (Method::POST, "/pingpong", StatusCode::METHOD_NOT_ALLOWED),
        (Method::DELETE, "/pings", StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/healthz", StatusCode::OK),
        (Method::GET, "/readyz", StatusCode::OK),
        (Method::GET, "/metrics", StatusCode::OK),
    ] {
        let request = Request::builder().method(method.clone()).uri(path).body(Body::empty()).unwrap();
        assert_eq!(app.clone().oneshot(request).await.unwrap().status(), expected, "{method} {path}");
    }
}

/// A count lowered while pingpong runs (a hand edit, a restored copy) is a
/// fault, not a reset: the numbers already answered are never answered
/// again; the ping counts on from above them, and it says so, once.
#[tokio::test]
async fn a_count_lowered_while_pingpong_runs_never_repeats_a_number() {
    let volume = Volume::new();
    let app = volume.serve().await;
    for k in 0..3 {
        assert_eq!(pong(&app.url("/pingpong")).await, format!("pong {k}"));
    }
    fs::write(&volume.counter, "1\n").unwrap();
    assert_eq!(pong(&app.url("/pingpong")).await, "pong 3", "pong 1 and 2 were answered already");
    assert_eq!(pong(&app.url("/pingpong")).await, "pong 4");
    assert_eq!(volume.on_disk().trim(), "5");
    let (_, metrics) = get(&app.url("/metrics")).await;
    assert!(metrics.lines().any(|l| l == "pingpong_count_went_back_total 1"), "{metrics}");
}

/// A HEAD would be a ping whose answer no client sees (axum sends HEAD to
/// a GET handler and drops the body): refused like any other method but
/// GET, with `Allow: GET` and, for those with a body, the 404's list.
#[tokio::test]
async fn head_and_post_on_pingpong_are_405_and_count_nothing() {
    let volume = Volume::new();
    let app = volume.serve().await;
    let client = reqwest::Client::new();
    for method in [reqwest::Method::HEAD, reqwest::Method::POST, reqwest::Method::PUT] {
        let answer = client.request(method.clone(), app.url("/pingpong")).send().await.unwrap();
        assert_eq!(answer.status(), 405, "{method}");
        assert_eq!(answer.headers()["allow"], "GET", "{method}");
        let body = answer.text().await.unwrap();
        if method != reqwest::Method::HEAD {
            assert!(
                body.starts_with("method not allowed: try GET /pingpong, /pings") && body.ends_with('\n'),
                "{body:?}"
            );
            assert_eq!(body.lines().count(), 1, "{body:?}");
        }
    }
    assert_eq!(pong(&app.url("/pingpong")).await, "pong 0", "none of them was counted");
    assert_eq!(volume.on_disk().trim(), "1");
}

/// A store whose every increment panics, as a bug in a store would: the
/// commit worker dies with it.
struct Panicking;

impl Store for Panicking {
    fn describe(&self) -> String {
        "a store that panics".into()
    }
    async fn increment_by(&mut self, _: u64, _: u64) -> Result<Committed, StoreError> {
        panic!("on purpose: the commit worker dies here")
    }
    async fn read(&mut self) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn check(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A dead commit worker is visible to Kubernetes: the ping that killed it
/// and every later one answer 503, and liveness and readiness fail, so the
/// pod is taken out of the Service and restarted instead of refusing every
/// ping while it looks alive.
#[tokio::test]
async fn when_the_commit_worker_dies_liveness_and_readiness_fail() {
    let app = Served::start(pingpong::service(Panicking).unwrap()).await;
    assert_eq!(get(&app.url("/healthz")).await, (200, "ok".into()));
    assert_eq!(get(&app.url("/readyz")).await.0, 200);
    let (status, body) = get(&app.url("/pingpong")).await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = get(&app.url("/pingpong")).await;
    assert_eq!((status, body.contains("commit worker has stopped")), (503, true), "{body}");
    // The thread is marked dead when it has unwound, a moment after its
    // queue refused the ping (the queue's guard drops first, in the unwinding).
    let body = eventually("liveness to fail", || async {
        let (status, body) = get(&app.url("/healthz")).await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(body.contains("counter-commit"), "{body}");
    let (status, body) = get(&app.url("/readyz")).await;
    assert_eq!((status, body.contains("not ready")), (503, true), "{body}");
}

/// Readiness takes the pings' path: a corrupt file makes it fail with the
/// file's name, a repaired one makes it pass.
#[tokio::test]
async fn readiness_follows_what_a_ping_would_meet() {
    let volume = Volume::new();
    let app = volume.serve().await;
    assert_eq!(get(&app.url("/readyz")).await, (200, "ready".into()));
    fs::write(&volume.counter, "not a count").unwrap();
    let (status, body) = get(&app.url("/readyz")).await;
    assert_eq!((status, body.contains("pingpong_counter.txt is corrupt")), (503, true), "{body}");
    fs::write(&volume.counter, "3").unwrap();
    assert_eq!(get(&app.url("/readyz")).await.0, 200);
}

/// The sum of the series of `name` in `/metrics`, read on `client`'s
/// connection (no new one), after a `/pings`: the commit worker answers that
/// only once it is done with what it did before (a wait for a group, say),
/// so what the worker recorded for it is in.
async fn metric(client: &reqwest::Client, app: &Served, name: &str) -> u64 {
    assert_eq!(client.get(app.url("/pings")).send().await.unwrap().status(), 200);
    let text = client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let values: Vec<u64> = text
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(!values.is_empty(), "no {name} in /metrics");
    values.iter().sum()
}

/// `pingpong_direct_commits_total` as `/metrics` says it now, asked on
/// `client`'s connection.
async fn direct_commits(client: &reqwest::Client, app: &Served) -> u64 {
    metric(client, app, "pingpong_direct_commits_total").await
}

/// A lone ping commits itself only while few connections are open: with
/// more (a server under load), every ping goes through the commit worker,
/// so that no HTTP thread is blocked on a flush while others wait for it.
#[tokio::test]
async fn a_ping_commits_itself_only_while_few_connections_are_open() {
    let volume = Volume::new();
    let app = volume.serve().await;
    // One connection, pings one after another: alone. (The first may find
    // the worker still starting; the rest go direct.)
    let client = reqwest::Client::new();
    for k in 0..20 {
        let answer = client.get(app.url("/pingpong")).send().await.unwrap().text().await.unwrap();
        assert_eq!(answer, format!("pong {k}"));
    }
    let alone = direct_commits(&client, &app).await;
    assert!(alone >= 10, "only {alone} of 20 lone pings committed themselves");
    // More connections open than a lone ping allows: each of these clients
    // was answered once and keeps its connection open.
    let mut others = Vec::new();
    for _ in 0..pingpong::commit::ALONE {
        let other = reqwest::Client::new();
        assert_eq!(other.get(app.url("/healthz")).send().await.unwrap().status(), 200);
        others.push(other);
    }
    for k in 20..40 {
        let answer = client.get(app.url("/pingpong")).send().await.unwrap().text().await.unwrap();
        assert_eq!(answer, format!("pong {k}"));
    }
    assert_eq!(
        direct_commits(&client, &app).await,
        alone,
        "a ping committed itself with {} connections open",
        1 + others.len()
    );
    assert_eq!(volume.on_disk().trim(), "40");
}

/// The commit worker waits for the group it answered (see `commit::REGROUP`)
/// only while few connections are open: under load the next batch is
/// already queued, and waiting would hold it.
// Two runtime threads, as the server has: on one thread a ping that commits
// itself would hold it through its flush, and the round's other pings could
// not even be read until it ended, so none would ever reach the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_waits_for_its_group_only_while_few_connections_are_open() {
    let volume = Volume::new();
    let app = volume.serve().await;
    // Three clients, each on its connection, ping at once: at most one of
    // each three commits itself, the rest go through the worker.
    let clients: Vec<_> = (0..3).map(|_| reqwest::Client::new()).collect();
    let url = app.url("/pingpong");
    let rounds = |clients: &[reqwest::Client]| {
        let pings: Vec<_> = clients.iter().map(|c| tokio::spawn(c.get(&url).send())).collect();
        async move {
            for ping in pings {
                assert_eq!(ping.await.unwrap().unwrap().status(), 200);
            }
        }
    };
    // Until the worker has waited for a group (two of a round's pings
    // committed together, or one with another queued meanwhile): almost
    // always in the first rounds, but a busy machine can spread a round out.
    let mut pinged = 0;
    let few = loop {
        rounds(&clients).await;
        pinged += clients.len();
        let few = metric(&clients[0], &app, "pingpong_regroups_total").await;
        if few > 0 {
            break few;
        }
        assert!(pinged < 1500, "the worker never waited for a group with 3 connections open");
    };
    // Two more connections, kept open: five, more than `commit::ALONE`.
    let mut others = Vec::new();
    for _ in 0..=pingpong::commit::ALONE - clients.len() {
        let other = reqwest::Client::new();
        assert_eq!(other.get(app.url("/healthz")).send().await.unwrap().status(), 200);
        others.push(other);
    }
    for _ in 0..20 {
        rounds(&clients).await;
    }
    assert_eq!(
        metric(&clients[0], &app, "pingpong_regroups_total").await,
        few,
        "the worker waited for a group with {} connections open",
        clients.len() + others.len()
    );
    assert_eq!(volume.on_disk().trim(), (pinged + 20 * clients.len()).to_string());
}

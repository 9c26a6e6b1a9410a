//! A service built with the kit, served on port 0 in this process: what the
//! kit adds around a service's own routes (liveness that sees its workers,
//! the 404 that names the routes, the connection bound, the metrics formats).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use axum::routing::get;
use service_kit::Service;
use service_kit::http_server::HEADER_READ_TIMEOUT;
use testkit::Served;
use tokio::sync::oneshot;

async fn get_text(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn demo() -> Service {
    let mut service = Service::new("demo", "1.2.3");
    service.route("/hello", get(|| async { "hello" })).route("/items?page=N", get(|| async { "items" }));
    service
}

#[tokio::test]
async fn the_404_names_exactly_the_routes_served() {
    let served = Served::start(demo()).await;
    let base = served.url("");
    let (status, body) = get_text(&format!("{base}/nowhere")).await;
    assert_eq!(status, 404);
    assert_eq!(body, "not found: try GET /hello, /items?page=N, /metrics, /healthz or /readyz\n");
    for path in ["/hello", "/items", "/metrics", "/healthz", "/readyz"] {
        assert_eq!(get_text(&format!("{base}{path}")).await.0, 200, "{path} is served");
    }
}

/// A worker that ends before shutdown (here a thread that returns at once,
/// as a panic would end it) makes liveness and readiness fail, so Kubernetes
/// restarts the pod; a readiness check that fails says why.
#[tokio::test]
async fn liveness_fails_once_a_worker_has_died_and_readiness_says_why() {
    let mut service = demo();
    let (release, released) = std::sync::mpsc::channel::<()>();
    service
        .spawn_thread(
            "commit",
            move || {
                let _ = released.recv();
            },
            || {},
        )
        .unwrap();
    service.readiness(|| async { Err("the disk is full".to_owned()) });
    let served = Served::start(service).await;
    let base = served.url("");
    assert_eq!(get_text(&format!("{base}/healthz")).await, (200, "ok".into()));
    assert_eq!(get_text(&format!("{base}/readyz")).await, (503, "not ready: the disk is full\n".into()));
    release.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get_text(&format!("{base}/healthz")).await;
        if status == 503 {
            assert!(body.contains("worker commit has stopped"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "liveness never saw the dead worker");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = get_text(&format!("{base}/readyz")).await;
    assert_eq!((status, body.contains("worker commit has stopped")), (503, true), "{body}");
}

/// A service's own liveness check (a worker that lives but is stuck): while
/// it fails, `/healthz` answers 503 with its reason and `/readyz` keeps its
/// own meaning; once it passes again, `/healthz` is 200 again.
#[tokio::test]
async fn a_failing_liveness_check_fails_healthz_with_its_reason_and_leaves_readiness_alone() {
    let stuck = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut service = demo();
    let seen = std::sync::Arc::clone(&stuck);
    service.liveness(move || {
        if seen.load(std::sync::atomic::Ordering::SeqCst) { Err("the loop last turned 1m ago".into()) } else { Ok(()) }
    });
    let served = Served::start(service).await;
    let base = served.url("");
    assert_eq!(get_text(&format!("{base}/healthz")).await, (200, "ok".into()));
    stuck.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get_text(&format!("{base}/healthz")).await, (503, "not alive: the loop last turned 1m ago\n".into()));
    assert_eq!(get_text(&format!("{base}/readyz")).await, (200, "ready".into()));
    stuck.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get_text(&format!("{base}/healthz")).await, (200, "ok".into()));
}

/// Many more idle connections than the bound (clients that connect and send
/// nothing, or half a request): the oldest give way, so the server never
/// holds more than the bound, and a normal request is answered at once, not
/// after the idle ones time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_bound_give_way_and_a_normal_request_is_answered_at_once() {
    const BOUND: usize = 8;
    const IDLE: usize = 3 * BOUND;
    let mut service = demo();
    service.max_connections(BOUND);
    let served = Served::start(service).await;
    let base = served.url("");
    let addr = base.trim_start_matches("http://").to_owned();
    let idle = tokio::task::spawn_blocking(move || {
        (0..IDLE)
            .map(|i| {
                let mut stream = TcpStream::connect(&addr).unwrap();
                if i % 2 == 0 {
                    stream.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
                }
                stream
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let started = Instant::now();
    assert_eq!(get_text(&format!("{base}/hello")).await, (200, "hello".into()));
    let took = started.elapsed();
    assert!(took < HEADER_READ_TIMEOUT / 5, "answered in {took:?}, not after the idle ones timed out");
    let closed = tokio::task::spawn_blocking(move || {
        idle.into_iter()
            .filter(|stream| {
                let mut stream = stream.try_clone().unwrap();
                stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
                matches!(stream.read(&mut [0u8; 64]), Ok(0) | Err(_)) && {
                    stream.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
                    matches!(stream.read(&mut [0u8; 64]), Ok(0))
                }
            })
            .count()
    })
    .await
    .unwrap();
    assert!(closed > IDLE - BOUND, "only {closed} of {IDLE} idle connections were closed: the bound is {BOUND}");
    let (_, metrics) = get_text(&format!("{base}/metrics")).await;
    let open: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("demo_http_connections_open "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(open <= BOUND, "{open} open, bound {BOUND}");
}

/// Prometheus asks for OpenMetrics and gets it; anything else (curl,
/// `promtool check metrics`) gets the classic text format.
#[tokio::test]
async fn metrics_come_in_the_format_asked_for() {
    let served = Served::start(demo()).await;
    let base = served.url("");
    let client = reqwest::Client::new();
    let om = client
        .get(format!("{base}/metrics"))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
        .send()
        .await
        .unwrap();
    assert!(om.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    assert!(om.text().await.unwrap().ends_with("# EOF\n"));
    let plain = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert!(plain.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = plain.text().await.unwrap();
    assert!(text.contains("# TYPE demo_http_requests_total counter\n") && !text.contains("# EOF"), "{text}");
}

/// Shutdown: a request being handled runs to its answer, the server stops,
/// then the task worker is told to stop and waited for.
#[tokio::test]
async fn shutdown_drains_the_server_then_stops_and_joins_the_workers() {
    let mut service = Service::new("demo", "1.2.3");
    let (entered, in_handler) = oneshot::channel::<()>();
    let entered = std::sync::Arc::new(std::sync::Mutex::new(Some(entered)));
    service.route(
        "/slow",
        get(move || {
            let entered = entered.lock().unwrap().take();
            async move {
                if let Some(entered) = entered {
                    let _ = entered.send(());
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }
        }),
    );
    let (worker_done, worker_stopped) = oneshot::channel::<()>();
    service.spawn_task("loop", |stop| async move {
        stop.await;
        let _ = worker_done.send(());
    });
    let mut served = Served::start(service).await;
    let base = served.url("");
    let slow = tokio::spawn(async move { get_text(&format!("{base}/slow")).await });
    in_handler.await.unwrap();
    served.signal();
    assert_eq!(slow.await.unwrap(), (200, "done".into()), "the request in flight was answered");
    served.shut_down().await;
    worker_stopped.await.expect("the worker was stopped and joined before run_until_stopped returned");
}

/// Shutdown, the other side: once the signal has come (new connections are
/// refused), a request that arrives on a connection already open is
/// answered 503 without its handler running, while the handler already
/// running runs to its answer. The open connections are the kit's own
/// count, as a handler reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_signal_no_handler_starts_and_the_one_running_is_answered() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let mut service = Service::new("demo", "1.2.3");
    let (entered, in_handler) = oneshot::channel::<()>();
    let (release, released) = oneshot::channel::<()>();
    let slow = std::sync::Mutex::new(Some((entered, released)));
    let slow = Arc::new(slow);
    service.route(
        "/slow",
        get(move || {
            let taken = slow.lock().unwrap().take();
            async move {
                if let Some((entered, released)) = taken {
                    let _ = entered.send(());
                    let _ = released.await;
                }
                "done"
            }
        }),
    );
    let ran = Arc::new(AtomicUsize::new(0));
    service.route(
        "/counted",
        get({
            let ran = Arc::clone(&ran);
            move || async move {
                ran.fetch_add(1, Ordering::SeqCst);
                "counted"
            }
        }),
    );
    let open = service.open_connections();
    assert_eq!(open.get(), 0);
    let mut served = Served::start(service).await;
    let base = served.url("");
    let addr = base.trim_start_matches("http://").to_owned();
    let in_flight = tokio::spawn({
        let base = base.clone();
        async move { get_text(&format!("{base}/slow")).await }
    });
    in_handler.await.unwrap();
    // A second connection, halfway through its request's headers.
    let mut late = TcpStream::connect(&addr).unwrap();
    late.write_all(b"GET /counted HTTP/1.1\r\nHost: x\r\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Until hyper has read them, shutdown would close the connection as
    // one that has sent nothing yet.
    let (server, client) = (late.peer_addr().unwrap().port(), late.local_addr().unwrap().port());
    while open.get() < 2 || !read_by_the_server(server, client) {
        assert!(Instant::now() < deadline, "the server never read the half request");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    served.signal();
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        assert!(Instant::now() < deadline, "the listener was never closed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    late.write_all(b"\r\n").unwrap();
    let answer = tokio::task::spawn_blocking(move || {
        let mut answer = String::new();
        late.read_to_string(&mut answer).map(|_| answer)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.ends_with("shutting down\n"), "{answer}");
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the late request's handler never ran");
    release.send(()).unwrap();
    assert_eq!(in_flight.await.unwrap(), (200, "done".into()), "the handler running was answered");
    served.shut_down().await;
    assert_eq!(open.get(), 0, "every connection closed");
}

/// Whether the server's end of the connection from `client` to `server`
/// (on 127.0.0.1) has nothing left unread in the kernel: Linux's
/// `/proc/net/tcp` shows each socket's receive queue.
fn read_by_the_server(server: u16, client: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let (local, remote) = (format!("0100007F:{server:04X}"), format!("0100007F:{client:04X}"));
    table.lines().skip(1).any(|line| {
        let fields: Vec<_> = line.split_whitespace().collect();
        fields.len() > 4 && fields[1] == local && fields[2] == remote && fields[4].ends_with(":00000000")
    })
}

//! pingpong's `/metrics`, read by Prometheus's own parser and checked against
//! what the test did. Needs Python's prometheus_client (and strace): run
//! with `./test-metrics.sh` (CI does).

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use support::Volume;
use testkit::get;
use testkit::metrics::{Scrape, promtool_check, scrape};

mod support;

fn refused(metrics: &Scrape, reason: &str) -> f64 {
    metrics.value("pingpong_pings_refused_total", &[("reason", reason)])
}

/// k pings (concurrent, so some share a commit): the answered counter grows
/// by k, the count gauge is the file's count, the histograms saw every commit
/// and every ping; build info and start time are there.
#[tokio::test]
#[ignore = "needs Python's prometheus_client: run by ./test-metrics.sh"]
async fn pings_commits_and_the_count_show_as_they_happened() {
    let volume = Volume::new();
    let service = volume.start();
    let before = scrape(&service.url("/metrics")).await;
    assert_eq!(before.value("pingpong_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let started = before.value("process_start_time_seconds", &[]);
    assert!((now - 60.0..=now).contains(&started), "started {started}, now {now}");
    assert_eq!(before.value("pingpong_pings_answered_total", &[]), 0.0);
    assert_eq!(before.value("pingpong_pings", &[]), 0.0);

    const K: usize = 40;
    let pings: Vec<_> = (0..K).map(|_| tokio::spawn(get_pong(service.url("/pingpong")))).collect();
    for ping in pings {
        ping.await.unwrap();
    }
    let after = scrape(&service.url("/metrics")).await;
    let on_disk: f64 = volume.on_disk().trim().parse().unwrap();
    assert_eq!(on_disk, K as f64);
    assert_eq!(after.value("pingpong_pings_answered_total", &[]), K as f64, "{after}");
    assert_eq!(after.value("pingpong_pings", &[]), on_disk, "{after}");
    let commits = after.value("pingpong_commits_total", &[]);
    assert!((1.0..=K as f64).contains(&commits), "{after}");
    assert_eq!(after.value("pingpong_commit_pings_count", &[]), commits, "{after}");
    assert_eq!(after.value("pingpong_commit_pings_sum", &[]), K as f64, "{after}");
    assert_eq!(after.value("pingpong_flush_duration_seconds_count", &[]), commits, "{after}");
    assert!(after.value("pingpong_flush_duration_seconds_sum", &[]) > 0.0, "{after}");
    for reason in ["corrupt_file", "io_error", "worker_stopped"] {
        assert_eq!(refused(&after, reason), 0.0, "{reason}: {after}");
    }
}

async fn get_pong(url: String) {
    let (status, body) = get(&url).await;
    assert_eq!(status, 200, "{body}");
}

/// A corrupt file: the ping is refused, counted under `corrupt_file`, and
/// nothing is counted as answered.
#[tokio::test]
#[ignore = "needs Python's prometheus_client: run by ./test-metrics.sh"]
async fn a_corrupt_file_shows_in_the_refused_counter() {
    let volume = Volume::new();
    let service = volume.start();
    assert_eq!(get(&service.url("/pingpong")).await, (200, "pong 0".into()));
    fs::write(&volume.counter, "garbage\n").unwrap();
    assert_eq!(get(&service.url("/pingpong")).await.0, 503);
    let metrics = scrape(&service.url("/metrics")).await;
    assert_eq!(refused(&metrics, "corrupt_file"), 1.0, "{metrics}");
    assert_eq!(refused(&metrics, "io_error"), 0.0, "{metrics}");
    assert_eq!(metrics.value("pingpong_pings_answered_total", &[]), 1.0, "{metrics}");
    assert_eq!(metrics.value("pingpong_pings", &[]), 1.0, "{metrics}");
}

/// An I/O error injected on the flush (strace: EIO on the first `fdatasync`
/// of the counter file): refused under `io_error`; then a ping succeeds.
#[cfg(target_os = "linux")] // strace
#[tokio::test]
#[ignore = "needs Python's prometheus_client: run by ./test-metrics.sh"]
async fn an_io_error_shows_in_the_refused_counter() {
    let volume = Volume::new();
    fs::create_dir_all(volume.files()).unwrap();
    fs::write(&volume.counter, counter::record::format(5)).unwrap();
    let service = volume.start_under_strace(&volume.counter, "inject=fdatasync:error=EIO:when=1");
    let refusals = support::refused_until_answered(&service, "pong 5").await;
    assert!(refusals >= 1, "the injected EIO refused a ping");
    let metrics = scrape(&service.url("/metrics")).await;
    assert_eq!(refused(&metrics, "io_error"), refusals as f64, "{metrics}");
    assert_eq!(refused(&metrics, "corrupt_file"), 0.0, "{metrics}");
    assert_eq!(metrics.value("pingpong_pings_answered_total", &[]), 1.0, "{metrics}");
    assert_eq!(metrics.value("pingpong_commits_total", &[]), 1.0, "{metrics}");
    assert_eq!(metrics.value("pingpong_pings", &[]), 6.0, "{metrics}");
}

/// `promtool check metrics`, the usual lint of an exporter, finds nothing in
/// what a plain client gets (the classic text format), after pings, so that
/// every metric has samples.
#[tokio::test]
#[ignore = "needs promtool: run by ./test-metrics.sh"]
async fn promtool_finds_nothing_to_lint() {
    let volume = Volume::new();
    let service = volume.start();
    get_pong(service.url("/pingpong")).await;
    promtool_check(&service.url("/metrics")).await;
}

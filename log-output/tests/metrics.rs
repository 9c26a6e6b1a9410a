//! The writer's and the reader's `/metrics`, read by Prometheus's own parser
//! and checked against the log and the requests the test made. Needs Python's
//! prometheus_client: run with `./test-metrics.sh` (CI does).

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use support::{Volume, entries};
use testkit::metrics::{Scrape, fetch, parse, scrape};
use testkit::{eventually, get};

mod support;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn entries_in_log(volume: &Volume) -> usize {
    fs::read_to_string(&volume.log).map_or(0, |text| entries(&text).len())
}

/// A scrape taken while the log did not change, and the log's entries then.
async fn scrape_with_the_log(volume: &Volume, url: &str) -> (Scrape, usize) {
    let (text, in_log) = eventually("a scrape between two appends", || async {
        let before = entries_in_log(volume);
        let text = fetch(url).await;
        (entries_in_log(volume) == before).then_some((text, before))
    })
    .await;
    (parse(&text), in_log)
}

/// The writer's entries counter is the number of entries in the log; a
/// corrupt counter file shows as failed appends (and no entry); the last
/// append was a moment ago.
#[tokio::test]
#[ignore = "needs Python's prometheus_client: run by ./test-metrics.sh"]
async fn the_writers_counters_match_its_log() {
    let volume = Volume::new();
    volume.set_count("7\n");
    let writer = volume.writer(50);
    let url = writer.url("/metrics");
    eventually("five entries", || async { (entries_in_log(&volume) >= 5).then_some(()) }).await;
    let (metrics, in_log) = scrape_with_the_log(&volume, &url).await;
    assert_eq!(metrics.value("log_output_writer_entries_appended_total", &[]), in_log as f64, "{metrics}");
    assert_eq!(metrics.value("log_output_writer_build_info", &[("version", VERSION)]), 1.0);
    assert_eq!(metrics.value("log_output_writer_rotations_total", &[]), 0.0);
    let age = metrics.value("log_output_writer_last_append_age_seconds", &[]);
    assert!((0.0..5.0).contains(&age), "{metrics}");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let last = metrics.value("log_output_writer_last_append_timestamp_seconds", &[]);
    assert!((now - 5.0..=now).contains(&last), "last {last}, now {now}");
    let failed = |m: &Scrape, reason| m.value("log_output_writer_appends_failed_total", &[("reason", reason)]);
    assert_eq!((failed(&metrics, "counter_unreadable"), failed(&metrics, "log_write")), (0.0, 0.0));

    volume.set_count("not a count");
    let skipped = eventually("three skipped turns", || async {
        let metrics = scrape(&url).await;
        (failed(&metrics, "counter_unreadable") >= 3.0).then_some(metrics)
    })
    .await;
    let (metrics, in_log) = scrape_with_the_log(&volume, &url).await;
    assert_eq!(metrics.value("log_output_writer_entries_appended_total", &[]), in_log as f64, "{metrics}");
    assert!(failed(&metrics, "counter_unreadable") >= failed(&skipped, "counter_unreadable"));
    assert_eq!(failed(&metrics, "log_write"), 0.0);
}

/// The reader counts requests by route (the declared one, so `/log?tail=abc`
/// is `/log`) and status.
#[tokio::test]
#[ignore = "needs Python's prometheus_client: run by ./test-metrics.sh"]
async fn the_reader_counts_requests_by_route_and_status() {
    let volume = Volume::new();
    volume.set_count("1\n");
    let writer = volume.writer(5000);
    let reader = volume.reader();
    eventually("the first entry", || async { (get(&reader.url("/")).await.0 == 200).then_some(()) }).await;
    let before = scrape(&reader.url("/metrics")).await;
    let requests = |m: &Scrape, route, status| {
        m.find("log_output_reader_http_requests_total", &[("route", route), ("status", status)]).unwrap_or(0.0)
    };
    let ok_before = requests(&before, "/", "200");
    for _ in 0..3 {
        assert_eq!(get(&reader.url("/")).await.0, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(&reader.url("/log?tail=abc")).await.0, 400);
    }
    assert_eq!(get(&reader.url("/log?tail=2")).await.0, 200);
    assert_eq!(get(&reader.url("/no/such/page")).await.0, 404);
    let after = scrape(&reader.url("/metrics")).await;
    assert_eq!(requests(&after, "/", "200"), ok_before + 3.0, "{after}");
    assert_eq!(requests(&after, "/log", "400"), 2.0, "{after}");
    assert_eq!(requests(&after, "/log", "200"), 1.0, "{after}");
    assert_eq!(requests(&after, "unmatched", "404"), 1.0, "{after}");
    assert_eq!(requests(&after, "/metrics", "200"), 1.0, "the first scrape: {after}");
    assert_eq!(after.value("log_output_reader_build_info", &[("version", VERSION)]), 1.0);
    drop(writer);
}

/// `promtool check metrics` finds nothing in what a plain client gets from
/// the writer and the reader (the classic text format), once each has
/// samples.
#[tokio::test]
#[ignore = "needs promtool: run by ./test-metrics.sh"]
async fn promtool_finds_nothing_to_lint() {
    let volume = Volume::new();
    volume.set_count("1\n");
    let writer = volume.writer(20);
    let reader = volume.reader();
    eventually("the first entry", || async { (get(&reader.url("/")).await.0 == 200).then_some(()) }).await;
    testkit::metrics::promtool_check(&writer.url("/metrics")).await;
    testkit::metrics::promtool_check(&reader.url("/metrics")).await;
}

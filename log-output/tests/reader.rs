//! The reader's HTTP behaviour, in this process (`log_output::reader::service`
//! on port 0, the address a value), on a log that the real writer process appends to.

use support::{Volume, check_entry, entries};
use testkit::{eventually, get};

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_never_sees_half_an_entry() {
    let volume = Volume::new();
    volume.set_count("123456");
    let _writer = volume.writer(1);
    let reader = volume.serve_reader().await;
    let url = |path: &str| reader.url(path);
    eventually("a first entry", || async { (get(&url("/")).await.0 == 200).then_some(()) }).await;
    let client = reqwest::Client::new();
    for _ in 0..300 {
        let body = client.get(url("/")).send().await.unwrap().text().await.unwrap();
        assert_eq!(check_entry(&body).1, 123_456);
        let tail = client.get(url("/log?tail=20")).send().await.unwrap().text().await.unwrap();
        assert!(entries(&tail).iter().all(|e| e.1 == 123_456));
    }
}

#[tokio::test]
async fn tail_outside_its_range_is_a_clear_400() {
    let volume = Volume::new();
    let reader = volume.serve_reader().await;
    let url = |path: &str| reader.url(path);
    for query in ["tail=0", "tail=1001", "tail=abc", "tail=-1", "tail="] {
        let (status, body) = get(&url(&format!("/log?{query}"))).await;
        assert_eq!(status, 400, "{query}");
        assert!(body.starts_with("tail must be a whole number from 1 to 1000, got"), "{query}: one voice: {body}");
        assert_eq!(body.lines().count(), 1, "{query}: one line: {body}");
    }
    assert_eq!(get(&url("/readyz")).await.0, 503, "no log yet");
    assert_eq!(get(&url("/nope")).await.0, 404);
}

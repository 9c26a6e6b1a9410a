//! The group commit's unit tests, on the real file store: numbers handed out
//! once each, what is queued answered at shutdown, a gone worker failing
//! fast.

use std::collections::BTreeSet;
use std::fs::File;
use std::time::Duration;

use counter::CounterFile;

use super::*;
use crate::store::FileStore;

fn started(dir: &tempfile::TempDir) -> (Service, Committer, CounterFile) {
    let path = dir.path().join("counter.txt");
    let mut service = Service::new("test", "0");
    let metrics = Arc::new(service.metrics(PingMetrics::register));
    let committer = Committer::start(&mut service, FileStore::open(&path).unwrap(), metrics).unwrap();
    (service, committer, CounterFile::new(path))
}

/// Many pings and reads at once: each ping gets its own number, the
/// numbers are exactly 0..N, the file holds N, every read a count in 0..=N.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pings_get_every_number_once() {
    const PINGS: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let (_service, committer, file) = started(&dir);
    let pings: Vec<_> = (0..PINGS)
        .map(|_| {
            let committer = committer.clone();
            tokio::spawn(async move { committer.count_ping().await.unwrap() })
        })
        .collect();
    let reads: Vec<_> = (0..50)
        .map(|_| {
            let committer = committer.clone();
            tokio::spawn(async move { committer.count().await.unwrap() })
        })
        .collect();
    let mut numbers = BTreeSet::new();
    for task in pings {
        assert!(numbers.insert(task.await.unwrap()), "a number was handed out twice");
    }
    assert_eq!(numbers, (0..PINGS).collect());
    for task in reads {
        assert!(task.await.unwrap() <= PINGS);
    }
    let on_disk = tokio::task::spawn_blocking(move || file.read().unwrap()).await.unwrap();
    assert_eq!(on_disk, PINGS);
    assert_eq!(committer.count().await.unwrap(), PINGS);
}

/// Shutdown closes the queue while pings wait in it: every one of them is
/// still answered, and nothing after. Deterministic: the test holds the
/// counter's lock, so the worker blocks in its first increment while the
/// rest queue up behind it; only then is the queue closed and the lock let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_queued_when_shutdown_closes_the_queue_are_all_answered() {
    const PINGS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let (_service, committer, file) = started(&dir);
    // The worker is up and idle (its start-up check, which takes the lock
    // shared, is done), so the lock taken next blocks its first increment.
    assert_eq!(committer.count().await.unwrap(), 0);
    let lock = File::options().write(true).open(dir.path().join("counter.txt.lock")).unwrap();
    lock.lock().unwrap();
    let ask = |committer: &Committer| {
        let committer = committer.clone();
        tokio::spawn(async move { committer.count_ping().await })
    };
    // The first ping is queued right here, so that the loop below sees it
    // taken, not yet to come: the worker has it and is blocked on the lock.
    let (reply, first) = oneshot::channel();
    assert!(committer.shared.queue.push(Request::Ping(reply)));
    while committer.shared.queue.pings_waiting() != Some(0) {
        tokio::task::yield_now().await;
    }
    let mut queued = Vec::new();
    queued.extend((1..PINGS).map(|_| ask(&committer)));
    while committer.shared.queue.pings_waiting() != Some(PINGS - 1) {
        tokio::task::yield_now().await;
    }
    committer.shared.queue.close();
    assert!(matches!(committer.count_ping().await, Err(CommitError::Stopped)), "nothing after the close");
    lock.unlock().unwrap();
    let mut numbers = BTreeSet::from([first.await.unwrap().expect("the first ping is answered")]);
    for task in queued {
        numbers.insert(task.await.unwrap().expect("a ping queued before the close is answered"));
    }
    assert_eq!(numbers, (0..PINGS as u64).collect());
    let on_disk = tokio::task::spawn_blocking(move || file.read().unwrap()).await.unwrap();
    assert_eq!(on_disk, PINGS as u64);
}

/// When the worker ends without answering (as a panic would end it), a
/// waiting ping and a later one both fail rather than hang.
#[tokio::test]
async fn pings_fail_once_the_worker_is_gone() {
    let queue = Arc::new(Queue::default());
    let metrics = Arc::new(PingMetrics::register(&mut prometheus_client::registry::Registry::default()));
    let pace = Pace::new(None, Service::new("test", "0").open_connections(), REGROUP);
    let committer = Committer {
        shared: Arc::new(Shared { queue: Arc::clone(&queue), pace: Arc::new(pace), answered: Arc::default() }),
        metrics,
    };
    let serving = Serving(&queue);
    let waiting = tokio::spawn({
        let committer = committer.clone();
        async move { committer.count_ping().await }
    });
    while queue.pings_waiting() == Some(0) {
        tokio::task::yield_now().await;
    }
    drop(serving);
    // Without the fix the ping waits forever: bound it so that shows as a failure.
    let answer = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("the waiting ping hung");
    assert!(matches!(answer.unwrap(), Err(CommitError::Stopped)));
    assert!(matches!(committer.count_ping().await, Err(CommitError::Stopped)));
}

/// With few connections open, the worker waits after a commit for the group
/// it answered to be back, so that the next commit counts it with the pings
/// that queued meanwhile. Deterministic: the window is a minute, and the
/// counter's lock holds the first commit until a second ping waits behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_waits_for_the_group_it_answered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("counter.txt");
    let mut service = Service::new("test", "0");
    let metrics = Arc::new(service.metrics(PingMetrics::register));
    let store = FileStore::open(&path).unwrap();
    let committer = Committer::start_holding(&mut service, store, metrics, Duration::from_secs(60)).unwrap();
    assert_eq!(committer.count().await.unwrap(), 0);
    let lock = File::options().write(true).open(dir.path().join("counter.txt.lock")).unwrap();
    lock.lock().unwrap();
    // Queued here, not through `count_ping`, so that none commits itself.
    let ask = |committer: &Committer| {
        let (reply, answer) = oneshot::channel();
        assert!(committer.shared.queue.push(Request::Ping(reply)));
        async move { answer.await.unwrap().unwrap() }
    };
    // The first ping, taken by the worker, which blocks on the lock; a
    // second queued behind it.
    let first = ask(&committer);
    while committer.shared.queue.pings_waiting() != Some(0) {
        tokio::task::yield_now().await;
    }
    let second = ask(&committer);
    lock.unlock().unwrap();
    // The first is answered: its group (it, and the second that queued
    // meanwhile) is 2, so the worker holds the second until the first's
    // client is back with its next ping.
    assert_eq!(first.await, 0);
    let third = ask(&committer);
    assert_eq!((second.await, third.await), (1, 2));
    assert_eq!(committer.shared.pace.last_batch(), 2, "the second and the third were committed together");
}

//! The reliability suite for pingpong: kill storms, a flood of reads and an
//! injected fault on the real binary (the protocol's own fault table is the
//! counter crate's). Needs strace; run with `./test-reliability.sh` (CI does).

#![cfg(target_os = "linux")] // strace

use std::collections::HashSet;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use support::Volume;
use testkit::{eventually, try_get as get};
use tokio::task::JoinHandle;

mod support;

/// EIO on the flush of the counter file (strace, on the commit worker's first
/// `fdatasync`): the ping is answered 503 naming the file, the count on
/// disk is unchanged, and the next ping continues from it. Every system call
/// of the protocol is failed in turn by the counter crate's own suite
/// (`counter/tests/reliability.rs`); this is the same fault seen over HTTP.
#[tokio::test]
#[ignore = "needs strace: run by ./test-reliability.sh"]
async fn an_injected_eio_on_the_flush_answers_503_and_leaves_the_count_as_it_was() {
    let volume = Volume::new();
    fs::create_dir_all(volume.files()).unwrap();
    fs::write(&volume.counter, counter::record::format(1)).unwrap();
    let service = volume.start_under_strace(&volume.counter, "inject=fdatasync:error=EIO:when=1");
    let (status, body) = get(&service.url("/pingpong")).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("pingpong_counter.txt") && body.contains("could not fdatasync"), "{body}");
    assert_eq!(volume.on_disk().as_bytes(), counter::record::format(1), "the count on disk is unchanged");
    support::refused_until_answered(&service, "pong 1").await;
    assert_eq!(volume.on_disk().as_bytes(), counter::record::format(2));
}

/// One client of the kill storm: pings `url` (which the storm changes) until
/// `stop`, recording every acknowledged number.
fn client(url: Arc<RwLock<String>>, acked: Arc<Mutex<Vec<u64>>>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        while !stop.load(Ordering::Relaxed) {
            let target = url.read().unwrap().clone();
            if let Ok(response) = client.get(&target).send().await
                && response.status() == 200
                && let Ok(body) = response.text().await
            {
                let n = body.strip_prefix("pong ").and_then(|n| n.parse().ok()).expect("pong N");
                acked.lock().unwrap().push(n);
            }
        }
    })
}

/// Until `stop`: the count on disk, read exactly (under the lock, shared, as
/// the contract tells readers to) as often as the disk allows, never goes
/// down. A thread of its own: the read blocks on the lock.
fn count_never_goes_down(volume: Arc<Volume>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let file = counter::CounterFile::new(&volume.counter);
        let mut last = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let now = file.read().expect("the file is always a whole count");
            assert!(now >= last, "the count went down from {last} to {now}");
            last = now;
        }
    })
}

/// 50 connections of load while pingpong is SIGKILLed and restarted 50 times.
/// Every acknowledged number is distinct, the final count is above all of
/// them, and the count on disk never goes down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a kill storm takes a while: run by ./test-reliability.sh"]
async fn a_kill_storm_under_load_repeats_and_loses_nothing() {
    const CONNECTIONS: usize = 50;
    const KILLS: usize = 50;
    let volume = Arc::new(Volume::new());
    let mut service = volume.start();
    let url = Arc::new(RwLock::new(service.url("/pingpong")));
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..CONNECTIONS).map(|_| client(url.clone(), acked.clone(), stop.clone())).collect();
    let watcher = count_never_goes_down(volume.clone(), stop.clone());
    for _ in 0..KILLS {
        let before = acked.lock().unwrap().len();
        eventually("pings to be answered before the next kill", || async {
            (acked.lock().unwrap().len() >= before + 20).then_some(())
        })
        .await;
        service.kill();
        service = volume.start();
        *url.write().unwrap() = service.url("/pingpong");
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    watcher.await.unwrap();
    let acked = acked.lock().unwrap();
    let distinct: HashSet<u64> = acked.iter().copied().collect();
    assert_eq!(distinct.len(), acked.len(), "a number was acknowledged twice");
    let count: u64 = volume.on_disk().trim().parse().unwrap();
    let highest = acked.iter().max().copied().unwrap();
    assert!(count > highest, "count {count} is not above the highest acknowledged number {highest}");
    println!("{KILLS} kills, {} acknowledged pings, final count {count}", acked.len());
}

/// Linux `flock` grants a new shared lock while an exclusive request waits, so
/// readers that each took the lock on their own could keep it from the
/// increments for as long as they flood. With every read of the counter file
/// slowed to 2 ms (strace delays `read` and `pread64` of it), 32 connections
/// flood one pingpong with `/pings`; pings to it, and to a second pingpong on
/// the same file (a replica), are all still answered, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs strace: run by ./test-reliability.sh"]
async fn a_flood_of_slow_reads_starves_no_ping_on_this_or_another_replica() {
    let volume = Volume::new();
    let slow_reads = "inject=read,pread64:delay_enter=2000";
    let flooded = volume.start_under_strace(&volume.counter, slow_reads);
    let reads = support::pings_under_a_flood_of_reads(&flooded, &flooded, 0).await;
    assert!(reads > 100, "the flood ran ({reads} reads)");
    let replica = volume.start();
    let reads = support::pings_under_a_flood_of_reads(&flooded, &replica, 100).await;
    assert!(reads > 100, "the flood ran ({reads} reads)");
}

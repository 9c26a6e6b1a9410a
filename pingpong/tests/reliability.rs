//! The reliability suite for pingpong: kill storms and injected faults on the
//! real binary. Needs strace; run with `./test-reliability.sh` (CI does).

use std::collections::HashSet;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use support::Volume;
use testkit::{eventually, try_get as get};
use tokio::task::JoinHandle;

mod support;

/// The counter file before the first ping of a case: the canonical record of 1
/// (the increment overwrites it in place) or a hand-written `1` (the increment
/// replaces it by rename).
fn prepared(volume: &Volume, canonical: bool) -> String {
    let content =
        if canonical { String::from_utf8(counter::record::format(1).to_vec()).unwrap() } else { "1\n".into() };
    fs::create_dir_all(volume.files()).unwrap();
    fs::write(&volume.counter, &content).unwrap();
    content
}

/// The path strace filters on: the counter file, its temp file or the directory.
fn target_path(volume: &Volume, target: &str) -> std::path::PathBuf {
    match target {
        "counter" => volume.counter.clone(),
        "tmp" => volume.files().join("pingpong_counter.txt.tmp"),
        "lock" => volume.files().join("pingpong_counter.txt.lock"),
        _ => volume.files().to_path_buf(),
    }
}

/// ENOSPC and EIO on each system call of both ways an increment can take
/// (in place, and replace-by-rename), and EROFS (a read-only volume) on
/// opening a file for writing. Each gives a 503 naming the file, leaves the
/// count on disk as it was, and the next ping continues from it: no number is
/// skipped or repeated.
#[tokio::test]
#[ignore = "needs strace: run by ./test-reliability.sh"]
async fn injected_enospc_and_eio_answer_503_and_leave_the_count_as_it_was() {
    // (syscall, target, errno, the nth such call, the file holds a canonical
    // record). strace counts calls per thread: these are the commit thread's.
    for (syscall, target, errno, when, canonical) in [
        // In place: pread64, pwrite64 and fdatasync of the counter file, and
        // opening it for writing (start-up's read-only open, on the main
        // thread, fails too: it is only logged).
        ("pread64", "counter", "EIO", 1, true),
        ("pwrite64", "counter", "ENOSPC", 1, true),
        ("pwrite64", "counter", "EIO", 1, true),
        ("fdatasync", "counter", "EIO", 1, true),
        ("fdatasync", "counter", "ENOSPC", 1, true),
        ("openat", "counter", "EROFS", 1, true),
        // Replace-by-rename, from a hand-written count.
        ("write", "tmp", "ENOSPC", 1, false),
        ("write", "tmp", "EIO", 1, false),
        ("fdatasync", "tmp", "EIO", 1, false),
        ("fdatasync", "tmp", "ENOSPC", 1, false),
        ("rename", "tmp", "ENOSPC", 1, false),
        ("rename", "tmp", "EIO", 1, false),
        ("fsync", "dir", "EIO", 1, false),
        ("openat", "tmp", "EROFS", 1, false),
    ] {
        let volume = Volume::new();
        let before = prepared(&volume, canonical);
        let path = target_path(&volume, target);
        let service = volume.start_under_strace(&path, &format!("inject={syscall}:error={errno}:when={when}"));
        let case = format!("{errno} on {syscall} #{when} of the {target}");
        let (status, body) = get(&service.url("/pingpong")).await.unwrap();
        assert_eq!(status, 503, "{case}: {body}");
        assert!(body.contains("pingpong_counter.txt") && body.contains("could not"), "{case}: {body}");
        assert_eq!(volume.on_disk().trim(), before.trim(), "{case}: the count on disk is unchanged");
        assert_eq!(get(&service.url("/pingpong")).await.unwrap(), (200, "pong 1".into()), "{case}: continues");
        assert_eq!(volume.on_disk().as_bytes(), counter::record::format(2), "{case}");
    }
}

/// SIGKILL at each system call of both ways an increment can take (on entry,
/// so before the call does its work). The file afterwards holds the old or
/// the new count, never a torn one, and a restarted pingpong repeats no number.
#[tokio::test]
#[ignore = "needs strace: run by ./test-reliability.sh"]
async fn sigkill_at_each_syscall_of_an_increment_leaves_the_old_or_the_new_count() {
    // (syscall, target, the nth such call, pings answered before the killed
    // one, the file holds a canonical record). strace counts calls per thread:
    // these are the commit thread's. Start-up's shared read locks on the main
    // thread, so a kill at its first flock would kill start-up: the flock case
    // kills the second ping's lock (#3: #1 and #2 lock and unlock the first).
    for (syscall, target, when, warm_up, canonical) in [
        ("flock", "lock", 3, 1, true),
        ("pread64", "counter", 1, 0, true),
        ("pwrite64", "counter", 1, 0, true),
        ("fdatasync", "counter", 1, 0, true),
        ("write", "tmp", 1, 0, false),
        ("fdatasync", "tmp", 1, 0, false),
        ("rename", "tmp", 1, 0, false),
        ("fsync", "dir", 1, 0, false),
    ] {
        let volume = Volume::new();
        prepared(&volume, canonical);
        let path = target_path(&volume, target);
        let case = format!("SIGKILL at {syscall} #{when} of the {target}");
        let mut service = volume.start_under_strace(&path, &format!("inject={syscall}:signal=KILL:when={when}"));
        for k in 0..warm_up {
            assert_eq!(get(&service.url("/pingpong")).await.unwrap(), (200, format!("pong {}", 1 + k)), "{case}");
        }
        assert!(get(&service.url("/pingpong")).await.is_err(), "{case}: the ping dies with the process");
        assert!(service.wait_exit(Duration::from_secs(5)).is_some(), "{case}: the process died");
        let left = volume.on_disk();
        let (old, new) = ((1 + warm_up).to_string(), (2 + warm_up).to_string());
        assert!(left.trim() == old || left.trim() == new, "{case}: the file holds {left:?}");
        let service = volume.start();
        let (status, body) = get(&service.url("/pingpong")).await.unwrap();
        assert_eq!((status, body.clone()), (200, format!("pong {}", left.trim())), "{case}: continues from the file");
    }
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
/// the contract tells readers to) as often as the disk allows, never goes down.
fn count_never_goes_down(volume: Arc<Volume>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let file = counter::CounterFile::new(&volume.counter);
        let mut last = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let now = file.read().expect("the file is always a whole count");
            assert!(now >= last, "the count went down from {last} to {now}");
            last = now;
            tokio::task::yield_now().await;
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

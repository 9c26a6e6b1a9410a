//! The reliability suite for pingpong: kill storms and injected faults on the
//! real binary. Needs strace; run with `./test-reliability.sh` (CI does).

use std::collections::HashSet;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use common::testing::eventually;
use support::Volume;

mod support;

async fn get(url: &str) -> Result<(u16, String), reqwest::Error> {
    let response = reqwest::get(url).await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// ENOSPC and EIO on each system call of an increment that can fail with them,
/// and EROFS (a read-only volume) on creating the temp file.
/// Each gives a 503 naming the file, leaves the old count on disk, and the
/// next ping continues from it: no number is skipped or repeated.
#[tokio::test]
#[ignore = "needs strace: run by ./test-reliability.sh"]
async fn injected_enospc_and_eio_answer_503_and_leave_the_count_as_it_was() {
    for (syscall, target, errno) in [
        ("write", "tmp", "ENOSPC"),
        ("write", "tmp", "EIO"),
        ("fdatasync", "tmp", "EIO"),
        ("fdatasync", "tmp", "ENOSPC"),
        ("rename", "tmp", "ENOSPC"),
        ("rename", "tmp", "EIO"),
        ("fsync", "dir", "EIO"),
        // A volume remounted read-only: creating the temp file fails.
        ("openat", "tmp", "EROFS"),
    ] {
        let volume = Volume::new();
        let path = match target {
            "tmp" => volume.files().join("pingpong_counter.txt.tmp"),
            _ => volume.files().to_path_buf(),
        };
        let service = volume.start_under_strace(&path, &format!("inject={syscall}:error={errno}:when=2"));
        let case = format!("{errno} on {syscall} of the {target}");
        assert_eq!(get(&service.url("/pingpong")).await.unwrap(), (200, "pong 0".into()), "{case}");
        let (status, body) = get(&service.url("/pingpong")).await.unwrap();
        assert_eq!(status, 503, "{case}: {body}");
        assert!(body.contains("pingpong_counter.txt") && body.contains("could not"), "{case}: {body}");
        assert_eq!(volume.on_disk(), "1\n", "{case}: the count on disk is unchanged");
        assert_eq!(get(&service.url("/pingpong")).await.unwrap(), (200, "pong 1".into()), "{case}: continues");
        assert_eq!(volume.on_disk(), "2\n", "{case}");
    }
}

/// SIGKILL at each system call of the increment path (on entry, so before
/// the call does its work). The file afterwards holds the old or the new
/// count, never a torn one, and a restarted pingpong repeats no number.
#[tokio::test]
#[ignore = "needs strace: run by ./test-reliability.sh"]
async fn sigkill_at_each_syscall_of_an_increment_leaves_the_old_or_the_new_count() {
    // flock is called twice per increment (lock, unlock): the 3rd is the
    // second increment's lock; each other call once per increment.
    for (syscall, target, when) in
        [("flock", "lock", 3), ("write", "tmp", 2), ("fdatasync", "tmp", 2), ("rename", "tmp", 2), ("fsync", "dir", 2)]
    {
        let volume = Volume::new();
        let path = match target {
            "lock" => volume.files().join("pingpong_counter.txt.lock"),
            "tmp" => volume.files().join("pingpong_counter.txt.tmp"),
            _ => volume.files().to_path_buf(),
        };
        let case = format!("SIGKILL at {syscall} of the {target}");
        let mut service = volume.start_under_strace(&path, &format!("inject={syscall}:signal=KILL:when={when}"));
        assert_eq!(get(&service.url("/pingpong")).await.unwrap(), (200, "pong 0".into()), "{case}");
        assert!(get(&service.url("/pingpong")).await.is_err(), "{case}: the second ping dies with the process");
        assert!(service.wait_exit(Duration::from_secs(5)).is_some(), "{case}: the process died");
        let left = volume.on_disk();
        assert!(left == "1\n" || left == "2\n", "{case}: the file holds {left:?}");
        let service = volume.start();
        let (status, body) = get(&service.url("/pingpong")).await.unwrap();
        assert_eq!((status, body.clone()), (200, format!("pong {}", left.trim())), "{case}: continues from the file");
    }
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
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (url, acked, stop) = (url.clone(), acked.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
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
        }));
    }
    // The count on disk, read as often as the disk allows, never goes down.
    let watcher = {
        let (volume, stop) = (volume.clone(), stop.clone());
        tokio::spawn(async move {
            let mut last = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(text) = fs::read_to_string(&volume.counter) {
                    let now: u64 = text.trim().parse().expect("the file is always a whole count");
                    assert!(now >= last, "the count went down from {last} to {now}");
                    last = now;
                }
                tokio::task::yield_now().await;
            }
        })
    };
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

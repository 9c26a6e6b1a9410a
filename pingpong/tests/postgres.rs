//! pingpong on a real PostgreSQL (Debian's server, started by each test in a
//! temporary directory: `testkit::postgres`), with real processes, real
//! SIGKILL and the database's own faults: stopped, restarted, crashed,
//! hung, its sessions ended. Run with `./test-postgres.sh` (CI does), which
//! installs the server if missing.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use support::BIN;
use testkit::load::Load;
use testkit::postgres::Postgres;
use testkit::{Process, assert_one_clear_line, eventually, run_to_exit, try_get};

mod support;

/// pingpong on `db`, as the real binary.
fn pingpong(db: &Postgres) -> Process {
    Process::command(BIN).env("DATABASE_URL", db.url()).env("PGPASSWORD", Postgres::PASSWORD).http().start()
}

/// pingpong on `db` on a given port.
fn pingpong_on(db: &Postgres, port: &str) -> Process {
    Process::command(BIN)
        .env("DATABASE_URL", db.url())
        .env("PGPASSWORD", Postgres::PASSWORD)
        .env("PORT", port)
        .http()
        .start()
}

/// Waits until pingpong is ready (connected, the table made).
async fn ready(service: &Process) {
    eventually("pingpong to be ready", || async {
        matches!(try_get(&service.url("/readyz")).await, Ok((200, _))).then_some(())
    })
    .await;
}

async fn pings_count(url: &str) -> u64 {
    let (status, body) = testkit::get(&format!("{url}/pings")).await;
    assert_eq!(status, 200, "{body}");
    body.parse().unwrap()
}

/// 1. Three pingpong processes on one database, 50 connections spread over
/// them: every answer distinct, the row holds the number of answers, and
/// `/pings` on each says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: run by ./test-postgres.sh"]
async fn three_replicas_on_one_database_answer_every_number_once() {
    let db = Postgres::start();
    let replicas = [pingpong(&db), pingpong(&db), pingpong(&db)];
    for replica in &replicas {
        ready(replica).await;
    }
    let urls = Arc::new(RwLock::new(replicas.iter().map(|r| r.url("")).collect::<Vec<_>>()));
    let load = Load::start(50, urls);
    load.grows(3000).await;
    let seen = load.stop().await;
    let answered = seen.assert_distinct();
    assert_eq!(seen.refused.load(Ordering::Relaxed) + seen.failed.load(Ordering::Relaxed), 0, "nothing refused");
    let mut acked = seen.acked();
    acked.sort_unstable();
    assert_eq!(acked, (0..answered as u64).collect::<Vec<_>>(), "the answers are exactly 0..{answered}");
    assert_eq!(db.count(), Some(answered as u64), "the row holds the number of answers");
    for replica in &replicas {
        assert_eq!(pings_count(&replica.url("")).await, answered as u64, "/pings is exact on every replica");
    }
}

/// 2. A kill storm: three replicas under 30 connections, one SIGKILLed and
/// restarted 30 times. No number twice; the row is above every answer (the
/// numbers of commits whose answers died with a process are skipped).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: run by ./test-postgres.sh"]
async fn a_kill_storm_of_replicas_repeats_no_number_and_loses_none() {
    const KILLS: usize = 30;
    let db = Postgres::start();
    let mut replicas = vec![pingpong(&db), pingpong(&db), pingpong(&db)];
    for replica in &replicas {
        ready(replica).await;
    }
    let urls = Arc::new(RwLock::new(replicas.iter().map(|r| r.url("")).collect::<Vec<_>>()));
    let load = Load::start(30, urls.clone());
    for kill in 0..KILLS {
        load.grows(20).await;
        let i = kill % replicas.len();
        // The clients stop picking the replica first: a connect to a port
        // nothing listens on can, now and then, be given that very port as
        // its own source port and connect to itself (Linux's TCP
        // self-connect), and then hang, which would read as a hung ping.
        // The pings already in flight to it still die with it.
        urls.write().unwrap()[i] = replicas[(i + 1) % replicas.len()].url("");
        replicas[i].kill();
        replicas[i] = pingpong(&db);
        ready(&replicas[i]).await;
        urls.write().unwrap()[i] = replicas[i].url("");
    }
    let seen = load.stop().await;
    let answered = seen.assert_distinct();
    let highest = seen.acked().into_iter().max().unwrap();
    let count = db.count().unwrap();
    assert!(count > highest, "the count {count} is above the highest answer {highest}");
    println!("{KILLS} kills: {answered} pings acknowledged, highest {highest}, count {count}");
}

/// 3. The database stopped (`pg_ctl stop -m fast`), ended under pingpong
/// (`pg_terminate_backend`) and crashed (SIGKILL, then crash recovery), each
/// under load: pings are refused meanwhile, answered again within seconds
/// after, no number twice, and every acknowledged ping survives (the row is
/// above the highest answer, also after the crash).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: run by ./test-postgres.sh"]
async fn the_database_stopped_ended_or_crashed_under_load_costs_refusals_not_numbers() {
    let db = Postgres::start();
    let replicas = [pingpong(&db), pingpong(&db)];
    for replica in &replicas {
        ready(replica).await;
    }
    let urls = Arc::new(RwLock::new(replicas.iter().map(|r| r.url("")).collect::<Vec<_>>()));
    let load = Load::start(20, urls);
    let seen = Arc::clone(&load.seen);
    for fault in ["stop", "terminate", "crash"] {
        load.grows(200).await;
        let refused_before = seen.refused.load(Ordering::Relaxed);
        match fault {
            "stop" => {
                db.stop_fast();
                tokio::time::sleep(Duration::from_millis(500)).await;
                assert!(seen.refused.load(Ordering::Relaxed) > refused_before, "pings are refused while it is down");
                db.start_again();
            }
            "terminate" => {
                // Both replicas hold sessions again after the restart
                // before they are ended (a replica may still be
                // reconnecting when the other has answered 200 pings).
                let sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pingpong'";
                eventually("two pingpong sessions", || async {
                    (db.psql(sessions).parse::<usize>().unwrap_or(0) >= 2).then_some(())
                })
                .await;
                let ended = db.terminate("pingpong");
                assert!(ended >= 2, "{ended} sessions ended");
            }
            _ => {
                db.kill();
                tokio::time::sleep(Duration::from_millis(500)).await;
                db.start_again();
            }
        }
        let back = Instant::now();
        load.grows(200).await;
        println!("{fault}: answered again {:?} after", back.elapsed());
        assert!(back.elapsed() < Duration::from_secs(8), "{fault}: answered again within seconds");
    }
    let seen = load.stop().await;
    seen.assert_distinct();
    let highest = seen.acked().into_iter().max().unwrap();
    let count = db.count().unwrap();
    assert!(count > highest, "every acknowledged ping survived: count {count}, highest answer {highest}");
    println!(
        "{} acknowledged, {} refused, {} without answer; count {count}",
        seen.acked().len(),
        seen.refused.load(Ordering::Relaxed),
        seen.failed.load(Ordering::Relaxed)
    );
}

/// 4. The database hung (SIGSTOP of the postmaster and its backends: the
/// connections stay open, nothing answers): pings are answered 503 within
/// the deadline, none hangs; readiness fails; after SIGCONT they recover.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: run by ./test-postgres.sh"]
async fn a_hung_database_gets_a_deadline_and_pingpong_recovers_after() {
    let db = Postgres::start();
    let service = pingpong(&db);
    ready(&service).await;
    assert_eq!(testkit::get(&service.url("/pingpong")).await, (200, "pong 0".into()));
    db.pause();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let response = client.get(service.url("/pingpong")).send().await.expect("an answer, not a hang");
        let took = started.elapsed();
        assert_eq!(response.status(), 503);
        let body = response.text().await.unwrap();
        assert!(took < Duration::from_secs(5), "answered in {took:?}: {body}");
        println!("hung database: 503 in {took:?}: {}", body.trim());
    }
    let (status, body) = try_get(&service.url("/readyz")).await.unwrap();
    assert_eq!((status, body.contains("database")), (503, true), "{body}");
    db.resume();
    let back = Instant::now();
    eventually("pings to be answered again", || async {
        matches!(try_get(&service.url("/pingpong")).await, Ok((200, _))).then_some(())
    })
    .await;
    println!("after SIGCONT: answered again in {:?}", back.elapsed());
    let count = db.count().unwrap();
    let (_, body) = testkit::get(&service.url("/pingpong")).await;
    assert_eq!(body, format!("pong {count}"), "continues from the row: numbers are skipped, never repeated");
}

/// 5. pingpong started before the database exists: alive, not ready (with
/// the reason), then ready once the database is up, without a restart; a
/// wrong password is not ready with the server's reason; a bad URL stops
/// start-up with one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run by ./test-postgres.sh"]
async fn pingpong_waits_for_its_database_and_says_why_it_is_not_ready() {
    let port = testkit::postgres::free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let early = Process::command(BIN).env("DATABASE_URL", &url).env("PGPASSWORD", Postgres::PASSWORD).http().start();
    assert_eq!(testkit::get(&early.url("/healthz")).await, (200, "ok".into()));
    let (status, body) = testkit::get(&early.url("/readyz")).await;
    assert_eq!((status, body.starts_with("not ready: database unreachable: ")), (503, true), "{body}");
    let (status, body) = testkit::get(&early.url("/pingpong")).await;
    assert_eq!((status, body.contains("database unreachable")), (503, true), "{body}");
    assert_eq!(testkit::get(&early.url("/pings")).await.0, 503);

    let db = Postgres::start_on(port);
    ready(&early).await;
    assert_eq!(testkit::get(&early.url("/pingpong")).await, (200, "pong 0".into()), "no restart needed");
    assert!(early.stderr().matches("database unusable").count() <= 2, "one line per change:\n{}", early.stderr());

    let wrong = Process::command(BIN).env("DATABASE_URL", db.url()).env("PGPASSWORD", "wrong").http().start();
    let reason = eventually("the server's reason", || async {
        let (status, body) = testkit::get(&wrong.url("/readyz")).await;
        (status == 503 && body.contains("password")).then_some(body)
    })
    .await;
    assert!(reason.contains("password authentication failed"), "{reason}");
    assert!(!reason.contains("wrong"), "the password is not shown: {reason}");
    let missing_db = format!("postgres://postgres@127.0.0.1:{}/nosuchdb", db.port());
    let missing =
        Process::command(BIN).env("DATABASE_URL", missing_db).env("PGPASSWORD", Postgres::PASSWORD).http().start();
    eventually("the server's reason", || async {
        let (status, body) = testkit::get(&missing.url("/readyz")).await;
        (status == 503 && body.contains("\"nosuchdb\" does not exist")).then_some(())
    })
    .await;

    for bad in ["mysql://root@db/app", "postgres://app@db:port/app", "db:5432", "postgres:///nohost"] {
        let (status, stderr) = run_to_exit(BIN, &[], &[("DATABASE_URL", bad), ("PORT", "0")]);
        assert_one_clear_line(status, &stderr, "DATABASE_URL");
    }
}

/// 6. The log-output writer over `PINGPONG_URL` (run in this process, on
/// the real pingpong and database): its entries carry the count `/pings`
/// answers; with pingpong gone its entries are skipped, not invented, and
/// it is not ready; with pingpong back, entries come again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run by ./test-postgres.sh"]
async fn the_writer_gets_the_count_over_http_and_skips_entries_while_pingpong_is_away() {
    use log_output::config::WriterConfig;
    use log_output::log_file::{DEFAULT_MAX_BYTES, LogFile};

    let db = Postgres::start();
    // A fixed port, so that pingpong comes back at the same address, as it
    // does behind its Service in a cluster.
    let port = testkit::postgres::free_port().to_string();
    let on_port = || pingpong_on(&db, &port);
    let mut service = on_port();
    ready(&service).await;
    for _ in 0..5 {
        testkit::get(&service.url("/pingpong")).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("output.log");
    let config = WriterConfig {
        log_file: log_path.clone(),
        counter_file: dir.path().join("not-used.txt"),
        pingpong_url: Some(service.url("")),
        interval: Duration::from_millis(50),
        heartbeat: None,
        metrics_port: 0,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let writer_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(log_output::writer::service(&config).unwrap().run_until_stopped(listener, std::future::pending()));
    let log = LogFile::new(&log_path, DEFAULT_MAX_BYTES);
    let counts = |log: &LogFile| log.tail(1000).unwrap().into_iter().map(|e| e.count).collect::<Vec<_>>();
    let has = |count: u64| {
        let log = log.clone();
        async move { counts(&log).contains(&count).then_some(()) }
    };
    eventually("an entry with the count 5", || has(5)).await;
    assert_eq!(testkit::get(&format!("{writer_url}/readyz")).await.0, 200);
    testkit::get(&service.url("/pingpong")).await;
    testkit::get(&service.url("/pingpong")).await;
    assert_eq!(pings_count(&service.url("")).await, 7);
    eventually("an entry with the count 7", || has(7)).await;

    service.kill();
    let reason = eventually("the writer to be not ready", || async {
        let (status, body) = testkit::get(&format!("{writer_url}/readyz")).await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(reason.contains("pingpong at") && reason.contains("skipped"), "{reason}");
    let before = counts(&log).len();
    let failed = || async {
        let (_, text) = testkit::get(&format!("{writer_url}/metrics")).await;
        text.lines()
            .find_map(|l| l.strip_prefix("log_output_writer_appends_failed_total{reason=\"pingpong_unreachable\"} "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let first = failed().await;
    eventually("three more skipped turns", || async { (failed().await >= first + 3.0).then_some(()) }).await;
    assert_eq!(counts(&log).len(), before, "no entry while pingpong is away: none invented");

    service = on_port();
    ready(&service).await;
    eventually("entries again", || async { (counts(&log).len() > before).then_some(()) }).await;
    assert_eq!(*counts(&log).last().unwrap(), 7, "the count continues from the database");
    assert_eq!(testkit::get(&format!("{writer_url}/readyz")).await.0, 200, "ready again");
}

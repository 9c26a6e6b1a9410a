//! Backups and their restore, on the real binaries and a real PostgreSQL:
//! the file mode's `log-output backup` / `log-output restore`, and the
//! database modes' `postgres/backup/backup.sh` / `restore.sh` (the
//! scripts the CronJob and the restore Jobs run), under load, everything lost
//! and restored, every answer recorded: no number is answered twice across
//! the whole run. Negative controls restore at the backup's own count and
//! must see repeats. Run with `./test-backup.sh` (CI does), which builds
//! log-output's binary beside pingpong's. The tests run on two threads, so
//! that the load goes on while a backup or restore command blocks one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, RwLock};

use counter::CounterFile;
use log_output::log_file::LogFile;
use support::BIN;
use testkit::load::{Load, Seen};
use testkit::postgres::Postgres;
use testkit::{DEADLINE, Process, Signal, eventually, try_get};

mod support;

/// log-output's binary, which `./test-backup.sh` builds beside pingpong's.
fn log_output_bin() -> PathBuf {
    let bin = Path::new(BIN).with_file_name("log-output");
    assert!(bin.exists(), "{} is missing: run ./test-backup.sh (it builds it)", bin.display());
    bin
}

/// A script of the backups' component, `postgres/backup/<name>`.
fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../postgres/backup").join(name)
}

/// What a one-shot command printed.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(mut command: Command) -> Ran {
    let out = command.output().expect("the command runs");
    let ran = Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    println!("{}{}", ran.stdout, ran.stderr);
    ran
}

async fn ready(service: &Process) {
    eventually("pingpong to be ready", || async {
        matches!(try_get(&service.url("/readyz")).await, Ok((200, _))).then_some(())
    })
    .await;
}

/// The first number of "… count N…" in a backup's line.
fn count_in(line: &str) -> u64 {
    let rest = line.split("count ").nth(1).unwrap_or_else(|| panic!("no count in {line:?}"));
    rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

/// Takes a backup between two reads of the count: its count lies between
/// them (one moment, read exactly, under load); returns it.
fn backup_between(count: impl Fn() -> u64, backup: impl FnOnce() -> Ran) -> u64 {
    let before = count();
    let taken = backup();
    assert!(taken.ok, "backup taken: {}", taken.stderr);
    let after = count();
    let held = count_in(&taken.stdout);
    assert!(before <= held && held <= after, "a backup under load is one moment: {before} <= {held} <= {after}");
    held
}

/// A negative control's verdict: the backup's own count hands out again
/// the numbers answered after the backup, and the checker sees them.
fn assert_the_checker_finds_repeats(seen: &Seen) {
    let repeats = seen.repeats();
    println!("{} numbers answered twice", repeats.len());
    assert!(!repeats.is_empty(), "restored at the backup's own count, the numbers answered since repeat");
}

fn assert_refused_with_one_line(ran: &Ran, mentions: &str) {
    assert!(!ran.ok, "refused: {}", ran.stdout);
    assert_eq!(ran.stderr.trim().lines().count(), 1, "one line: {:?}", ran.stderr);
    assert!(ran.stderr.contains(mentions), "{:?} mentions {mentions:?}", ran.stderr);
}

// ---------------------------------------------------------------- file mode

/// The shared volume, with pingpong and the writer on it, and the backups.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn files(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    fn counter(&self) -> PathBuf {
        self.files().join("pingpong_counter.txt")
    }

    fn log(&self) -> PathBuf {
        self.files().join("output.log")
    }

    fn backups(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    fn pingpong(&self) -> Process {
        Process::command(BIN).env("COUNTER_FILE", self.counter()).http().start()
    }

    fn writer(&self) -> Process {
        Process::command(log_output_bin())
            .arg("writer")
            .env("COUNTER_FILE", self.counter())
            .env("LOG_FILE", self.log())
            .env("WRITE_INTERVAL_MS", "20")
            .env("METRICS_PORT", "0")
            .start()
    }

    fn log_output(&self, subcommand: &str, env: &[(&str, &str)]) -> Ran {
        let mut command = Command::new(log_output_bin());
        command
            .arg(subcommand)
            .env("COUNTER_FILE", self.counter())
            .env("LOG_FILE", self.log())
            .env("BACKUP_DIR", self.backups())
            .envs(env.iter().copied());
        run(command)
    }

    fn count(&self) -> u64 {
        CounterFile::new(self.counter()).read().unwrap()
    }

    fn entries(&self) -> Vec<log_output::entry::Entry> {
        LogFile::new(self.log(), u64::MAX).copy().unwrap().entries()
    }
}

/// pingpong and the writer on a volume under load; a backup; more pings;
/// pingpong and the writer SIGKILLed and the volume deleted; a restore with
/// `restore_env`; both started again; more pings. What the clients saw,
/// with the volume and the entries the log held before the loss.
async fn lose_and_restore_files(restore_env: &[(&str, &str)]) -> (Arc<Seen>, Files, Vec<log_output::entry::Entry>) {
    let volume = Files::new();
    let (mut pingpong, mut writer) = (volume.pingpong(), volume.writer());
    ready(&pingpong).await;
    let urls = Arc::new(RwLock::new(vec![pingpong.url("")]));
    let load = Load::start(8, urls.clone());
    load.grows(300).await;

    let taken = volume.log_output("backup", &[]);
    assert!(taken.ok, "backup taken: {}", taken.stderr);
    load.grows(300).await;
    let before_loss = volume.entries();
    assert!(!before_loss.is_empty(), "the writer wrote");

    pingpong.kill();
    writer.kill();
    fs::remove_dir_all(volume.files()).unwrap();
    let restored = volume.log_output("restore", restore_env);
    assert!(restored.ok, "restored: {}", restored.stderr);

    let (pingpong, _writer) = (volume.pingpong(), volume.writer());
    ready(&pingpong).await;
    *urls.write().unwrap() = vec![pingpong.url("")];
    load.grows(300).await;
    (load.stop().await, volume, before_loss)
}

/// Five backups while pingpong counts under 8 connections and the writer
/// appends every 20 ms: each count lies between the counts read just before
/// and just after it (an exact read, never torn), and each backup restores
/// whole (every byte of its log in complete entries, none counting above
/// the backup's count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the backup suite: ./test-backup.sh"]
async fn file_mode_a_backup_taken_under_load_is_exact_and_whole() {
    let volume = Files::new();
    let (pingpong, _writer) = (volume.pingpong(), volume.writer());
    ready(&pingpong).await;
    let load = Load::start(8, Arc::new(RwLock::new(vec![pingpong.url("")])));
    load.grows(200).await;
    for _ in 0..5 {
        let _ = backup_between(|| volume.count(), || volume.log_output("backup", &[]));
        load.grows(50).await;
    }
    let seen = load.stop().await;
    seen.assert_distinct();

    let names = fs::read_dir(volume.backups()).unwrap().count();
    assert_eq!(names, 6, "five backups and their lock file");
    for entry in fs::read_dir(volume.backups()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".lock") {
            continue;
        }
        let scratch = Files::new();
        let mut command = Command::new(log_output_bin());
        command
            .arg("restore")
            .env("COUNTER_FILE", scratch.counter())
            .env("LOG_FILE", scratch.log())
            .env("BACKUP_DIR", volume.backups())
            .env("RESTORE_FROM", &name)
            .env("RESTORE_FLOOR", "0");
        let ran = run(command);
        assert!(ran.ok, "{name} restores: {}", ran.stderr);
        let count = scratch.count();
        let entries = scratch.entries();
        assert!(!entries.is_empty(), "{name} holds entries");
        assert!(entries.iter().all(|e| e.count <= count), "{name}: no entry above its count {count}");
        let bytes: usize = entries.iter().map(|e| e.to_string().len()).sum();
        assert_eq!(bytes as u64, fs::metadata(scratch.log()).unwrap().len(), "{name}: the log is entries only");
    }
}

/// Everything lost after a backup while pings went on, restored by the
/// rule: no number answered twice across the whole run, the count above
/// every answer, and the log's history back up to the backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the backup suite: ./test-backup.sh"]
async fn file_mode_everything_lost_and_restored_never_answers_a_number_twice() {
    let (seen, volume, before_loss) = lose_and_restore_files(&[]).await;
    let answered = seen.assert_distinct();
    let highest = seen.acked().into_iter().max().unwrap();
    assert!(volume.count() > highest, "the count {} is above every answer ({highest})", volume.count());
    let after = volume.entries();
    // The backup's entries come back (the ones written between the backup
    // and the loss are lost with it), then the new writer's.
    let restored = after.iter().zip(&before_loss).take_while(|(a, b)| a == b).count();
    assert!(restored >= 1, "the log's history up to the backup is back");
    assert!(after.len() > restored, "the log goes on after the restore");
    println!("{answered} answered, highest {highest}, count {}", volume.count());
}

/// The negative control: restored at the backup's own count (what a plain
/// copy back does), the pings answered after the backup are answered again,
/// and the same checker says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the backup suite: ./test-backup.sh"]
async fn file_mode_negative_control_a_plain_copy_back_repeats_numbers() {
    let (seen, _volume, _) = lose_and_restore_files(&[("RESTORE_FLOOR", "0")]).await;
    assert_the_checker_finds_repeats(&seen);
}

/// A damaged backup (its log cut short) and an empty one are refused with
/// one line, and the counter and log on the volume are left as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the backup suite: ./test-backup.sh"]
async fn file_mode_a_damaged_or_empty_backup_is_refused_and_nothing_is_overwritten() {
    let volume = Files::new();
    fs::create_dir_all(volume.files()).unwrap();
    fs::write(volume.counter(), "40\n").unwrap();
    let mut writer = volume.writer();
    eventually("two entries", || async { (volume.entries().len() >= 2).then_some(()) }).await;
    writer.signal(Signal::SIGTERM);
    assert!(writer.wait_exit(DEADLINE).await.is_some());
    let taken = volume.log_output("backup", &[]);
    assert!(taken.ok, "{}", taken.stderr);
    let name = taken.stdout.split_whitespace().nth(1).unwrap().trim_end_matches(':').to_owned();
    let backup_log = Path::new(&name).join("output.log");
    let bytes = fs::read(&backup_log).unwrap();
    fs::write(&backup_log, &bytes[..bytes.len() / 2]).unwrap();

    fs::write(volume.counter(), "7\n").unwrap();
    let (counter_before, log_before) = (fs::read(volume.counter()).unwrap(), fs::read(volume.log()).unwrap());
    let ran = volume.log_output("restore", &[]);
    assert_refused_with_one_line(&ran, "is damaged: output.log holds");

    let empty = volume.backups().join("20991231T235959.999Z");
    fs::create_dir(&empty).unwrap();
    fs::write(empty.join("backup.txt"), "").unwrap();
    let ran = volume.log_output("restore", &[]);
    assert_refused_with_one_line(&ran, "20991231T235959.999Z is damaged");

    assert_eq!(fs::read(volume.counter()).unwrap(), counter_before, "the counter untouched");
    assert_eq!(fs::read(volume.log()).unwrap(), log_before, "the log untouched");
}

// ----------------------------------------------------------- PostgreSQL mode

/// A server with the database `pingpong`, the backups' directory, and the
/// scripts' environment.
struct Database {
    db: Postgres,
    backups: tempfile::TempDir,
}

impl Database {
    fn new() -> Self {
        let db = Postgres::start();
        let _ = db.psql("CREATE DATABASE pingpong");
        Self { db, backups: tempfile::tempdir().unwrap() }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/pingpong", self.db.port())
    }

    fn pingpong(&self) -> Process {
        Process::command(BIN).env("DATABASE_URL", self.url()).env("PGPASSWORD", Postgres::PASSWORD).http().start()
    }

    /// `sh postgres/backup/<name>` with libpq's variables for this server.
    fn script(&self, name: &str, env: &[(&str, &str)]) -> Ran {
        let mut command = Command::new("sh");
        command
            .arg(script(name))
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.db.port().to_string())
            .env("PGUSER", "postgres")
            .env("PGPASSWORD", Postgres::PASSWORD)
            .env("PGDATABASE", "pingpong")
            .env("BACKUP_DIR", self.backups.path())
            .envs(env.iter().copied());
        run(command)
    }

    fn count(&self) -> u64 {
        self.query("SELECT count FROM pingpong_counter WHERE id = 1").parse().unwrap()
    }

    /// `sql` on the database `pingpong`.
    fn query(&self, sql: &str) -> String {
        let ran = self.script_psql(sql);
        assert!(ran.ok, "{sql}: {}", ran.stderr);
        ran.stdout.trim().to_owned()
    }

    fn script_psql(&self, sql: &str) -> Ran {
        let mut command = Command::new("psql");
        command
            .args(["-X", "-Atc", sql, "-v", "ON_ERROR_STOP=1"])
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.db.port().to_string())
            .env("PGUSER", "postgres")
            .env("PGPASSWORD", Postgres::PASSWORD)
            .env("PGDATABASE", "pingpong");
        run(command)
    }
}

/// pingpong on PostgreSQL under load; `backup.sh`; more pings; pingpong
/// SIGKILLed, the database dropped and made again empty (as the
/// StatefulSet's first start makes it); `restore.sh` with `restore_env`;
/// pingpong again; more pings.
async fn lose_and_restore_database(restore_env: &[(&str, &str)]) -> (Arc<Seen>, Database) {
    let database = Database::new();
    let mut pingpong = database.pingpong();
    ready(&pingpong).await;
    let urls = Arc::new(RwLock::new(vec![pingpong.url("")]));
    let load = Load::start(8, urls.clone());
    load.grows(300).await;

    let _ = backup_between(|| database.count(), || database.script("backup.sh", &[]));
    load.grows(300).await;

    pingpong.kill();
    let _ = database.db.psql("DROP DATABASE pingpong WITH (FORCE)");
    let _ = database.db.psql("CREATE DATABASE pingpong");
    let restored = database.script("restore.sh", restore_env);
    assert!(restored.ok, "restored: {}", restored.stderr);

    let pingpong = database.pingpong();
    ready(&pingpong).await;
    *urls.write().unwrap() = vec![pingpong.url("")];
    load.grows(300).await;
    (load.stop().await, database)
}

/// The database dropped after a backup while pings went on, restored by the
/// rule: no number answered twice, the row above every answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the backup suite: ./test-backup.sh"]
async fn postgres_the_database_dropped_and_restored_never_answers_a_number_twice() {
    let (seen, database) = lose_and_restore_database(&[]).await;
    let answered = seen.assert_distinct();
    let highest = seen.acked().into_iter().max().unwrap();
    let count = database.count();
    assert!(count > highest, "the count {count} is above every answer ({highest})");
    println!("{answered} answered, highest {highest}, count {count}");
}

/// The negative control: `pg_restore` alone (the dump's own count) repeats
/// the numbers answered after the dump, and the checker says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the backup suite: ./test-backup.sh"]
async fn postgres_negative_control_the_dumps_own_count_repeats_numbers() {
    let (seen, _database) = lose_and_restore_database(&[("RESTORE_FLOOR", "0")]).await;
    assert_the_checker_finds_repeats(&seen);
}

/// A dump cut short and an empty one are refused with one line, the row
/// untouched; backups beyond `BACKUP_KEEP` are removed, oldest first; a
/// count below the newest dump's is refused a backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the backup suite: ./test-backup.sh"]
async fn postgres_a_damaged_or_empty_dump_is_refused_and_the_row_untouched() {
    let database = Database::new();
    let pingpong = database.pingpong();
    ready(&pingpong).await;
    for _ in 0..3 {
        let taken = database.script("backup.sh", &[("BACKUP_KEEP", "2")]);
        assert!(taken.ok, "{}", taken.stderr);
    }
    let mut dumps: Vec<String> =
        fs::read_dir(database.backups.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    dumps.sort();
    assert_eq!(dumps.len(), 2, "BACKUP_KEEP=2 keeps two: {dumps:?}");
    drop(pingpong);

    database.query("UPDATE pingpong_counter SET count = 77");
    let newest = database.backups.path().join(&dumps[1]);
    let bytes = fs::read(&newest).unwrap();
    fs::write(&newest, &bytes[..bytes.len() - 40]).unwrap();
    assert_refused_with_one_line(&database.script("restore.sh", &[]), "is damaged");
    fs::write(&newest, b"").unwrap();
    assert_refused_with_one_line(&database.script("restore.sh", &[]), "is damaged");
    assert_refused_with_one_line(
        &database.script("restore.sh", &[("RESTORE_FROM", "pingpong-20991231T235959.999Z.dump")]),
        "no backup pingpong-20991231T235959.999Z.dump in",
    );
    assert_eq!(database.count(), 77, "the row untouched");

    // A count below the newest dump's (a loss, a reset) is not dumped: it
    // would push out the dumps from before.
    let taken = database.script("backup.sh", &[]);
    assert!(taken.ok, "{}", taken.stderr);
    database.query("UPDATE pingpong_counter SET count = 5");
    assert_refused_with_one_line(&database.script("backup.sh", &[]), "the count 5 is below the newest backup's");
}

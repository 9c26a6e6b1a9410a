//! A real PostgreSQL for tests: Debian's server (`postgresql`, 15 here),
//! started in a temporary data directory on 127.0.0.1 and a free port, as
//! the `postgres` user when the tests run as root (the server refuses root).
//! Passwords are real: TCP connections need the password
//! [`Postgres::PASSWORD`] (scram-sha-256); the Unix socket, which only the
//! test's own `psql` uses, trusts.
//!
//! The faults a database has are real too: a fast stop and a restart, a
//! SIGKILL of the postmaster and its backends (the next start runs crash
//! recovery), SIGSTOP/SIGCONT of them all (a hung database), and
//! `pg_terminate_backend` of a client's connection.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A PostgreSQL server of the test's own; stopped (immediately) when dropped.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    /// The password of the `postgres` role over TCP.
    pub const PASSWORD: &'static str = "test-only-password";

    /// Makes a new cluster (`initdb`) and starts it.
    ///
    /// # Panics
    /// PostgreSQL's binaries are not installed (`apt-get install postgresql`;
    /// `PG_BIN` may name their directory) or it does not start.
    #[must_use]
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// As [`Postgres::start`], on `port` (a client may be waiting for it).
    ///
    /// # Panics
    /// As [`Postgres::start`].
    #[must_use]
    pub fn start_on(port: u16) -> Self {
        Self::start_with(port, "")
    }

    /// As [`Postgres::start_on`], with `conf` (lines of `postgresql.conf`)
    /// added: `synchronous_standby_names = '*'`, say, for a primary.
    /// Every server here takes replication connections from 127.0.0.1.
    ///
    /// # Panics
    /// As [`Postgres::start`].
    #[must_use]
    pub fn start_with(port: u16, conf: &str) -> Self {
        let db = Self::made(port);
        db.run_as_owner(&["initdb", "-D", &db.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        db.write_owned("data/pg_hba.conf", HBA);
        db.append_conf(conf);
        db.start_again();
        // Committed locally: a primary whose standbys are not there yet
        // would wait for one.
        let _ = db.psql(&format!("SET synchronous_commit = local; ALTER ROLE postgres PASSWORD '{}'", Self::PASSWORD));
        db
    }

    /// A standby of `primary`, named `name` (its `application_name`, as
    /// `synchronous_standby_names` names it): a base backup
    /// (`pg_basebackup`), then streaming from `127.0.0.1:upstream` (the
    /// primary's port, or a proxy's in front of it).
    ///
    /// # Panics
    /// The backup or the start fails.
    #[must_use]
    pub fn standby_of(primary: &Postgres, name: &str, upstream: u16) -> Self {
        let db = Self::made(free_port());
        db.base_backup(primary, name, upstream);
        db
    }

    fn made(port: u16) -> Self {
        let bin = bin_dir();
        let as_postgres = nix::unistd::geteuid().is_root();
        let dir = tempfile::Builder::new().prefix("pg-test-").tempdir_in("/tmp").expect("a temp dir").keep();
        if as_postgres {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir));
        }
        Self { bin, dir, port, as_postgres }
    }

    /// Writes `text` to `file` under its directory, owned by the server's user.
    fn write_owned(&self, file: &str, text: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, text).expect("a file of the server's");
        if self.as_postgres {
            run(Command::new("chown").arg("postgres:postgres").arg(&path));
        }
    }

    fn append_conf(&self, conf: &str) {
        let path = self.dir.join("data/postgresql.conf");
        let mut text = std::fs::read_to_string(&path).expect("postgresql.conf");
        text.push_str(conf);
        text.push('\n');
        self.write_owned("data/postgresql.conf", &text);
    }

    /// This server made again as a standby of `primary`: its data replaced
    /// by a base backup (how an old primary rejoins after a failover), then
    /// started.
    ///
    /// # Panics
    /// As [`Postgres::standby_of`].
    pub fn rebuild_as_standby_of(&self, primary: &Postgres, name: &str, upstream: u16) {
        self.resume();
        self.kill();
        let _ = std::fs::remove_dir_all(self.dir.join("data"));
        self.base_backup(primary, name, upstream);
    }

    fn base_backup(&self, primary: &Postgres, name: &str, upstream: u16) {
        let port = primary.port.to_string();
        self.run_as_owner(&[
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-D",
            &self.data(),
            "-X",
            "stream",
            "--no-sync",
        ]);
        self.write_owned("data/standby.signal", "");
        self.append_conf(&format!("primary_conninfo = '{}'", conninfo(name, upstream)));
        self.start_again();
    }

    /// Promotes this standby to a primary (`pg_ctl promote`, which waits).
    ///
    /// # Panics
    /// The promotion fails.
    pub fn promote(&self) {
        self.run_as_owner(&["pg_ctl", "-D", &self.data(), "-w", "promote"]);
    }

    /// Points this standby at another upstream (a new primary), live.
    ///
    /// # Panics
    /// psql fails.
    pub fn follow(&self, name: &str, upstream: u16) {
        let _ = self
            .psql(&format!("ALTER SYSTEM SET primary_conninfo = '{}'", conninfo(name, upstream).replace('\'', "''")));
        let _ = self.psql("SELECT pg_reload_conf()");
    }

    /// How far this standby has received the primary's WAL, in bytes (0 on
    /// a primary): the most advanced standby is the one to promote.
    #[must_use]
    pub fn received(&self) -> u64 {
        self.try_psql("SELECT coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0'), 0)::bigint")
            .ok()
            .and_then(|out| out.trim().parse().ok())
            .unwrap_or(0)
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    /// The libpq URL pingpong is given (`DATABASE_URL`); the password comes
    /// separately (`PGPASSWORD`).
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Its TCP port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts it (again): after a stop or a kill; a kill's leftovers are
    /// cleared first, and the server then runs crash recovery.
    ///
    /// # Panics
    /// It does not start.
    pub fn start_again(&self) {
        let _ = std::fs::remove_file(self.dir.join("data/postmaster.pid"));
        let _ = std::fs::remove_file(self.dir.join(format!(".s.PGSQL.{}.lock", self.port)));
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on", self.port, self.dir.display());
        let log = self.dir.join("server.log").to_string_lossy().into_owned();
        self.run_as_owner(&["pg_ctl", "-D", &self.data(), "-w", "-t", "30", "-l", &log, "-o", &options, "start"]);
    }

    /// `pg_ctl stop -m fast`: clients are disconnected, the server shuts down cleanly.
    ///
    /// # Panics
    /// It does not stop.
    pub fn stop_fast(&self) {
        self.run_as_owner(&["pg_ctl", "-D", &self.data(), "-w", "-m", "fast", "stop"]);
    }

    /// SIGKILL of the postmaster and every backend: a crash. [`Postgres::start_again`]
    /// then runs crash recovery.
    pub fn kill(&self) {
        for pid in self.pids() {
            let _ = kill(pid, Signal::SIGKILL);
        }
        // Wait until the postmaster is gone, so that the port is free again.
        let postmaster = self.pids().into_iter().next();
        for _ in 0..500 {
            if postmaster.is_none_or(|pid| kill(pid, None).is_err()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// SIGSTOP of the postmaster and every backend: the server still holds
    /// its connections and its port but answers nothing (a hung database).
    pub fn pause(&self) {
        for pid in self.pids() {
            let _ = kill(pid, Signal::SIGSTOP);
        }
    }

    /// SIGCONT after [`Postgres::pause`].
    pub fn resume(&self) {
        for pid in self.pids() {
            let _ = kill(pid, Signal::SIGCONT);
        }
    }

    /// The postmaster (first) and its children.
    fn pids(&self) -> Vec<Pid> {
        let Ok(text) = std::fs::read_to_string(self.dir.join("data/postmaster.pid")) else { return Vec::new() };
        let Some(postmaster) = text.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) else {
            return Vec::new();
        };
        let children =
            std::fs::read_to_string(format!("/proc/{postmaster}/task/{postmaster}/children")).unwrap_or_default();
        std::iter::once(postmaster)
            .chain(children.split_whitespace().filter_map(|p| p.parse().ok()))
            .map(Pid::from_raw)
            .collect()
    }

    /// Runs `sql` with `psql` over the Unix socket: its output, unaligned,
    /// tuples only (`-Atc`).
    ///
    /// # Panics
    /// psql fails.
    #[must_use]
    pub fn psql(&self, sql: &str) -> String {
        let out = self.try_psql(sql).unwrap_or_else(|e| panic!("psql {sql:?}: {e}"));
        out.trim().to_owned()
    }

    /// As [`Postgres::psql`], the error as text.
    ///
    /// # Errors
    /// psql's stderr.
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args(["-X", "-h"])
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-Atc",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Whether it answers a query now, within 2 s (libpq's shortest
    /// `connect_timeout`): how an operator tells a primary is gone.
    #[must_use]
    pub fn answers(&self) -> bool {
        // Over TCP, as a client: a connect to the socket file of a stopped
        // server fails at once, where a client would wait.
        let target = format!("host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=2", self.port);
        Command::new("psql")
            .args(["-X", "-Atc", "SELECT 1", &target])
            .env("PGPASSWORD", Self::PASSWORD)
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|out| out.status.success())
    }

    /// The count in `pingpong_counter`, or `None` without the table or row.
    #[must_use]
    pub fn count(&self) -> Option<u64> {
        self.try_psql("SELECT count FROM pingpong_counter WHERE id = 1").ok()?.trim().parse().ok()
    }

    /// `pg_terminate_backend` of every connection of `application_name`:
    /// how many were ended.
    #[must_use]
    pub fn terminate(&self, application_name: &str) -> usize {
        let ended = self.psql(&format!(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{application_name}'"
        ));
        ended.parse().unwrap_or(0)
    }

    fn run_as_owner(&self, args: &[&str]) -> Output {
        let program = self.bin.join(args[0]);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(&args[1..]).current_dir("/tmp");
        run(&mut command)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.resume();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Who may connect: the test's psql over the socket, anyone from 127.0.0.1
/// with the password, and standbys from 127.0.0.1 for replication.
const HBA: &str =
    "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 trust\n";

/// A standby's `primary_conninfo`.
fn conninfo(name: &str, upstream: u16) -> String {
    format!("host=127.0.0.1 port={upstream} user=postgres application_name={name}")
}

fn run(command: &mut Command) -> Output {
    let out = command.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// PostgreSQL's binaries: `PG_BIN`, or the newest `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").exists())
        .collect();
    found.sort_by_key(|p| p.parent().and_then(Path::file_name).and_then(|v| v.to_str()?.parse::<u32>().ok()));
    found.pop().expect("PostgreSQL is not installed: apt-get install postgresql (or set PG_BIN)")
}

/// A port nothing listens on now.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

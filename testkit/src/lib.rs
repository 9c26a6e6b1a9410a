//! Test support: run the real binaries as child processes on port 0 (plain or
//! under strace), learn their address from their own log line, signal or
//! kill them ([`Process`]); serve a `service_kit::Service` in the test's own
//! process on port 0 ([`Served`]); poll with a deadline; start a real
//! PostgreSQL.

pub mod load;
pub mod metrics;
pub mod postgres;
pub mod proxy;
mod served;

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;

pub use crate::served::Served;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// How long a child may take to start listening or to exit.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// How to start a binary: arguments, environment, whether it serves HTTP
/// (then [`Launch::start`] waits for its address), and whether it runs under
/// strace with a fault injected.
#[derive(Debug)]
#[must_use]
pub struct Launch {
    bin: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    http: bool,
    strace: Option<(PathBuf, String)>,
}

impl Launch {
    /// Adds a command-line argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Sets an environment variable (on top of `PORT=0`, `METRICS_PORT=0`,
    /// `RUST_LOG=info`).
    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.env.push((name.into(), value.as_ref().to_owned()));
        self
    }

    /// It serves HTTP: [`Launch::start`] waits until it logs its address.
    pub fn http(mut self) -> Self {
        self.http = true;
        self
    }

    /// Runs it under strace, which injects `inject` (e.g.
    /// `inject=fdatasync:error=EIO:when=1`) into the system calls that touch
    /// `path`: strace follows descriptors back to their paths, and for
    /// `rename` matches the first path. strace counts `when=` per thread.
    pub fn under_strace(mut self, path: &Path, inject: &str) -> Self {
        self.strace = Some((path.to_owned(), inject.to_owned()));
        self
    }

    /// Starts it and, for an HTTP service, waits until it logs its address.
    ///
    /// # Panics
    /// The binary (or strace) cannot start, or (with [`Launch::http`]) logs no
    /// address within [`DEADLINE`].
    #[must_use]
    pub fn start(self) -> Process {
        let mut command = match &self.strace {
            None => Command::new(&self.bin),
            Some((path, inject)) => {
                let mut strace = Command::new("strace");
                strace.args(["-f", "-qq", "-o", "/dev/null", "-P"]).arg(path).args(["-e", inject, "--"]).arg(&self.bin);
                strace
            }
        };
        command
            .args(&self.args)
            .env("PORT", "0")
            .env("METRICS_PORT", "0")
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.bin));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (found, addr) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(port) = line.split("listening addr=").nth(1).and_then(|a| a.rsplit(':').next()) {
                    let _ = found.send(port.trim().parse::<u16>().ok());
                }
                let mut all = sink.lock().expect("not poisoned");
                all.push_str(&line);
                all.push('\n');
            }
        });
        let mut service = Process { child, addr: None, stderr, reader: Some(reader) };
        if self.http {
            let port = addr.recv_timeout(DEADLINE).ok().flatten();
            let port = port.unwrap_or_else(|| panic!("no `listening` line in time; stderr:\n{}", service.stderr()));
            service.addr = Some(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        service
    }
}

/// A real binary running as a child process, killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    addr: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
    /// The thread that copies the child's stderr into `stderr`.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    /// How to start `bin`: see [`Launch`].
    pub fn command(bin: impl AsRef<OsStr>) -> Launch {
        Launch { bin: bin.as_ref().to_owned(), args: Vec::new(), env: Vec::new(), http: false, strace: None }
    }

    /// `http://127.0.0.1:PORT{path}`.
    ///
    /// # Panics
    /// The service was started without [`Launch::http`].
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr.expect("an HTTP service"))
    }

    /// Everything the child wrote to stderr so far.
    ///
    /// # Panics
    /// Only if the reader thread panicked.
    #[must_use]
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("not poisoned").clone()
    }

    /// Whether the child still runs (it neither exited nor was killed).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The child's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to clean up, as when a node dies or a pod is killed.
    /// Under strace the binary is strace's child, which would outlive a
    /// killed strace (strace 6.1 has no `--kill-on-exit`): it is killed first.
    pub fn kill(&mut self) {
        let id = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{id}/task/{id}/children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|pid| pid.parse().ok()) {
            let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` without waiting.
    ///
    /// # Panics
    /// The signal cannot be sent.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits"));
        kill(pid, signal).expect("signal sent");
    }

    /// Waits for the child to exit, up to `limit`; `None` if it is still
    /// running. Once it has, [`Process::stderr`] holds all it wrote.
    ///
    /// # Panics
    /// Waiting fails.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // The pipe is at its end: the copy finishes at once.
                if let Some(reader) = self.reader.take() {
                    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
                }
                return Some(status);
            }
            if start.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `bin` to completion (for start-up errors): exit status and stderr.
///
/// # Panics
/// The binary cannot run.
#[must_use]
pub fn run_to_exit(bin: impl AsRef<Path>, args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let out = Command::new(bin.as_ref())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Polls `check` until it returns `Some`, or panics with `what` after [`DEADLINE`].
///
/// # Panics
/// The deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(DEADLINE, what, check).await
}

/// As [`eventually`], for what cannot happen sooner than a limit of the
/// product's own (the writer's liveness fails after at least 10 s): panics
/// after `deadline`.
///
/// # Panics
/// The deadline passes.
pub async fn eventually_within<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET url`: the status and the body.
///
/// # Errors
/// The request got no answer (refused, reset).
pub async fn try_get(url: &str) -> Result<(u16, String), reqwest::Error> {
    let response = reqwest::get(url).await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// `GET url`: the status and the body.
///
/// # Panics
/// The request got no answer.
pub async fn get(url: &str) -> (u16, String) {
    try_get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// What a bad setting must do at start-up: fail, with one line on stderr that
/// mentions `mentions`, and no panic.
///
/// # Panics
/// When it did not.
pub fn assert_one_clear_line(status: ExitStatus, stderr: &str, mentions: &str) {
    assert!(!status.success(), "start-up should fail: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(mentions), "mentions {mentions}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

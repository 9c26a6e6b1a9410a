//! How a binary ends: exit 0, or the start-up error as one line on stderr.

use std::fmt::Display;
use std::process::ExitCode;

/// Turns `main`'s result into its exit status: on error, prints
/// `PROGRAM: error: …` (with `{:#}`, so an `anyhow` chain stays on one line)
/// and exits 1, never with a panic's backtrace.
pub fn exit_code(program: &str, result: Result<(), impl Display>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One write of the whole line: `eprintln!` writes its pieces
            // one by one to the unbuffered stderr, and another process on
            // the same terminal (./run-local.sh runs three) can cut in.
            let line = format!("{program}: error: {e:#}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            ExitCode::FAILURE
        }
    }
}

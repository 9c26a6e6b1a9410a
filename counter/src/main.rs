//! `counter`: the counter file's protocol from a shell, for operators and for
//! the protocol's own fault tests (which run it under strace).
//!
//! - `counter read FILE`: the count, read exactly (under the lock, shared);
//! - `counter increment FILE [N]`: adds N (default 1) durably, as one
//!   increment, and prints the count before it (the first number handed out).

use std::process::ExitCode;

use counter::{CounterFile, CounterWriter};

const USAGE: &str = "usage: counter read FILE | counter increment FILE [N]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["read", path] => CounterFile::new(path).read().map_err(|e| e.to_string()),
        ["increment", path, rest @ ..] if rest.len() <= 1 => match rest.first().map_or(Ok(1), |n| n.parse::<u64>()) {
            Ok(n) if n > 0 => CounterWriter::open(CounterFile::new(path))
                .and_then(|mut writer| writer.increment_by(n))
                .map_err(|e| e.to_string()),
            _ => Err(format!("N must be a whole number above 0; {USAGE}")),
        },
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(count) => {
            println!("{count}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("counter: error: {e}");
            ExitCode::FAILURE
        }
    }
}

//! The `counter` binary's command line.

use testkit::run_to_exit;

const BIN: &str = env!("CARGO_BIN_EXE_counter");

/// The binary's own mistakes: one line, exit 1.
#[test]
fn a_bad_command_line_is_one_clear_line() {
    for args in [&[][..], &["read"], &["increment", "f", "0"], &["increment", "f", "x"], &["sideways", "f"]] {
        let (status, stderr) = run_to_exit(BIN, args, &[]);
        testkit::assert_one_clear_line(status, &stderr, "usage");
    }
}

//! The counter file that pingpong increments and the log-output writer reads:
//! the one owner of its format and of the only ways it is changed and read.
//! Both services use it; it knows nothing of HTTP.
//!
//! - [`record`]: the format, a 21-byte record (`42` + 18 spaces + `\n`).
//! - [`CounterWriter`]: the durable increment, under an exclusive `flock` on
//!   `<COUNTER_FILE>.lock`: the record overwritten in place and `fdatasync`'d
//!   (one device flush), or, for anything else on disk, replaced by rename.
//! - [`CounterFile::read`]: the exact read, under the same lock, shared.
//!
//! Why in place is safe: the record lies inside the first 512-byte sector and
//! is written with one `pwrite`, so a crash leaves the old or the new record,
//! and a power loss does too on any device that writes a sector atomically,
//! the assumption PostgreSQL makes for its control file (`pg_control`).
//! A reader that takes no lock (`cat`) may, on ext4, very rarely see a mix of
//! two records while a write is in flight; readers that must be exact lock.
//!
//! The `counter` binary (`counter read FILE`, `counter increment FILE [N]`)
//! is the same protocol from a shell: an exact read, or an increment by hand;
//! the protocol's fault tests run it under strace.

mod disk;
mod error;
mod file;
mod increment;
pub mod record;

pub use error::CounterError;

/// Where the counter lives unless `COUNTER_FILE` says otherwise: relative, so
/// a local run shares `./files/` and a container its volume at
/// `/usr/src/app/files` (the images' working directory is `/usr/src/app`).
pub const DEFAULT_PATH: &str = "files/pingpong_counter.txt";
pub use file::CounterFile;
pub use increment::{Counted, CounterWriter};

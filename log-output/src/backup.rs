//! Backups of the file mode's shared volume, and their restore: the one
//! owner of a backup's format.
//!
//! A backup is a directory in `BACKUP_DIR` named by the time it was taken
//! (`20261206T021000.123Z`), holding the log's two files as they were and
//! `backup.txt`:
//!
//! ```text
//! pingpong backup 1
//! taken: 2026-12-06T02:10:00.123Z
//! count: 1234
//! output.log.1: 0 bytes
//! output.log: 45678 bytes
//! ```
//!
//! The time is read before the count, the count under the counter's lock
//! (shared, so never torn) and the log under its own, so no append falls
//! inside the copy. The directory is written as `.partial-<name>`, flushed,
//! then renamed: a backup that exists is whole.
//!
//! Restore never answers a number twice (docs/contract.md, "Backups and
//! restore"): the backup's count is older than the last answered ping, so
//! the count is raised to the backup's count plus [`MAX_RATE`] for every
//! second since the backup was taken, or to the operator's `RESTORE_FLOOR`
//! (their word that no number at or above it was answered), and never
//! lowered. The backup is checked whole before anything is written.

use std::fmt::Write as _;
use std::fs;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use counter::{CounterError, CounterFile, CounterWriter};
use file_kit::{FileError, LockFile, sync_dir, write_synced};

use crate::log_file::{LogCopy, LogFile, LogRestored};

/// The highest rate at which pingpong could have counted since a backup,
/// pings a second: the bound behind the restored count. Far above what one
/// volume's pingpong serves (about 30,000 a second on the benchmark
/// machine, docs/benchmarks.md) and above what the fastest HTTP servers
/// answer on one machine.
pub const MAX_RATE: u64 = 10_000_000;

const HEADER: &str = "pingpong backup 1";
const MANIFEST: &str = "backup.txt";
const ROTATED: &str = "output.log.1";
const CURRENT: &str = "output.log";
const PARTIAL: &str = ".partial-";
/// A backup's name: its time, UTC, to the millisecond, in ISO 8601's basic
/// form (no `:`, so that it copies to any file system).
const NAME_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";
const TAKEN_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";
const WHAT: &str = "backup";

/// Where the data and the backups are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `COUNTER_FILE`.
    pub counter_file: PathBuf,
    /// `LOG_FILE`.
    pub log_file: PathBuf,
    /// `BACKUP_DIR`: the backups, one directory each.
    pub backup_dir: PathBuf,
}

/// What went wrong; the message is the one line the operator sees.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The counter file could not be read or raised.
    #[error(transparent)]
    Counter(#[from] CounterError),
    /// A file of the log or of the backups could not be read or written.
    #[error(transparent)]
    File(#[from] FileError),
    /// `BACKUP_DIR` holds no backup (or not the one asked for).
    #[error("no backup {what} in {}: `ls {}` lists them", .dir.display(), .dir.display())]
    NotFound {
        /// "at all", or the name asked for.
        what: String,
        /// `BACKUP_DIR`.
        dir: PathBuf,
    },
    /// The backup is not whole or not ours; nothing was written.
    #[error(
        "backup {} is damaged: {why}; nothing was restored: name an older one with RESTORE_FROM (k3d/restore.sh --from)",
        .backup.display()
    )]
    Damaged {
        /// The backup's directory.
        backup: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The count is below the newest backup's: lost, or reset.
    #[error(
        "the count {count} is below the newest backup's ({newest}: {newest_count}): the data was lost or reset; no backup taken, so that the ones from before stay; restore one (k3d/restore.sh, log-output restore), or after a deliberate reset move the old backups away"
    )]
    WentBack {
        /// The count now.
        count: u64,
        /// The newest backup's name.
        newest: String,
        /// Its count.
        newest_count: u64,
    },
    /// The backup is dated after now: the clocks disagree, so the time since
    /// it cannot bound what was answered.
    #[error(
        "backup {name} was taken at {taken}, after this machine's clock ({now}): the clocks disagree; give RESTORE_FLOOR (a number above every pong answered) instead; nothing was restored"
    )]
    Future {
        /// The backup's name.
        name: String,
        /// When it was taken.
        taken: String,
        /// Now.
        now: String,
    },
    /// The count would pass the largest count.
    #[error(
        "the restored count would pass the largest count ({count} + {MAX_RATE} a second for {seconds} s); give RESTORE_FLOOR instead; nothing was restored"
    )]
    TooLarge {
        /// The backup's count.
        count: u64,
        /// Seconds since it was taken.
        seconds: u64,
    },
}

/// A backup taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// Its directory.
    pub dir: PathBuf,
    /// The count it holds.
    pub count: u64,
    /// The log's bytes it holds.
    pub log_bytes: usize,
    /// The older backups removed to keep `BACKUP_KEEP`.
    pub pruned: usize,
}

/// A restore done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The backup's name.
    pub name: String,
    /// The count it held.
    pub backup_count: u64,
    /// The count the rule asked for.
    pub target: u64,
    /// The count the counter file held before.
    pub found: u64,
    /// The count it holds now.
    pub count: u64,
    /// Why that count: the rule applied, for the one line printed.
    pub rule: String,
    /// What was done with the log.
    pub log: LogRestored,
    /// Entries in the backup's log.
    pub log_entries: usize,
}

/// Takes a backup, `now` being read before the count is (the restore's bound
/// counts from it), and removes the oldest beyond `keep`.
///
/// # Errors
/// The counter is corrupt or unreadable, the log unreadable, or the backup
/// cannot be written; a partial backup is never left under a backup's name.
pub fn take(paths: &Paths, keep: NonZeroUsize, now: DateTime<Utc>) -> Result<Taken, BackupError> {
    fs::create_dir_all(&paths.backup_dir).map_err(FileError::at(WHAT, &paths.backup_dir, "create it"))?;
    // One backup at a time in a directory (a CronJob's overlap, a hand run).
    let _lock = LockFile::of(WHAT, &paths.backup_dir.join("backups")).lock_exclusive()?;
    // The time before the count: the restore's bound counts from here. The
    // log before the count too, so that no entry in it counts above it.
    let taken = millis(now);
    let log = LogFile::new(&paths.log_file, u64::MAX).copy()?;
    let count = CounterFile::new(&paths.counter_file).read()?;
    // A count below the newest backup's is a loss (or a reset): a backup of
    // it would become the newest, and in BACKUP_KEEP runs push out every
    // backup from before. Refused, visibly, until someone decides.
    if let Some(newest) = backups(&paths.backup_dir)?.pop() {
        let newer = Backup::read(&paths.backup_dir.join(&newest))?;
        if count < newer.count {
            return Err(BackupError::WentBack { count, newest, newest_count: newer.count });
        }
    }

    let name = taken.format(NAME_FORMAT).to_string();
    let dir = paths.backup_dir.join(&name);
    if dir.exists() {
        return Err(FileError::at(WHAT, &dir, "create it")(std::io::ErrorKind::AlreadyExists.into()).into());
    }
    let partial = paths.backup_dir.join(format!("{PARTIAL}{name}"));
    fs::create_dir(&partial).map_err(FileError::at(WHAT, &partial, "create it"))?;
    write_synced(WHAT, &partial.join(ROTATED), &log.rotated)?;
    write_synced(WHAT, &partial.join(CURRENT), &log.current)?;
    write_synced(WHAT, &partial.join(MANIFEST), manifest(taken, count, &log).as_bytes())?;
    sync_dir(WHAT, &partial)?;
    fs::rename(&partial, &dir).map_err(FileError::at(WHAT, &partial, "rename it to its name"))?;
    sync_dir(WHAT, &paths.backup_dir)?;

    let pruned = prune(&paths.backup_dir, keep)?;
    Ok(Taken { dir, count, log_bytes: log.rotated.len() + log.current.len(), pruned })
}

/// Restores the backup named `from` (default: the newest) by the rule above:
/// the count raised to `floor` if given, else by [`MAX_RATE`] a second since
/// the backup; the log put back where that loses nothing.
///
/// # Errors
/// No such backup, a damaged one, a backup dated in the future, a counter
/// file that is corrupt (it is never overwritten), or a failed write.
pub fn restore(
    paths: &Paths,
    from: Option<&str>,
    floor: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Restored, BackupError> {
    // No backup is taken (and none pruned) while one is chosen and read.
    let _lock = LockFile::of(WHAT, &paths.backup_dir.join("backups")).lock_shared()?;
    let name = match from {
        Some(name) => name.to_owned(),
        None => backups(&paths.backup_dir)?
            .pop()
            .ok_or_else(|| BackupError::NotFound { what: "at all".into(), dir: paths.backup_dir.clone() })?,
    };
    let dir = paths.backup_dir.join(&name);
    if !dir.is_dir() {
        return Err(BackupError::NotFound { what: name, dir: paths.backup_dir.clone() });
    }
    let backup = Backup::read(&dir)?;

    let (target, rule) = match floor {
        Some(floor) => (backup.count.max(floor), format!("RESTORE_FLOOR {floor}")),
        None => {
            let elapsed = now.signed_duration_since(backup.taken);
            let ms = u64::try_from(elapsed.num_milliseconds()).map_err(|_| BackupError::Future {
                name: name.clone(),
                taken: backup.taken.format(TAKEN_FORMAT).to_string(),
                now: now.format(TAKEN_FORMAT).to_string(),
            })?;
            let seconds = ms.div_ceil(1000);
            let target = seconds
                .checked_mul(MAX_RATE)
                .and_then(|skip| backup.count.checked_add(skip))
                .ok_or(BackupError::TooLarge { count: backup.count, seconds })?;
            (target, format!("{MAX_RATE} a second for the {seconds} s since the backup"))
        }
    };

    // Raised, never lowered: a count above the target stays.
    let mut writer = CounterWriter::open(CounterFile::new(&paths.counter_file))?;
    let counted = writer.increment_at_least(0, target)?;
    let log = LogFile::new(&paths.log_file, u64::MAX).restore(&backup.log)?;
    Ok(Restored {
        name,
        backup_count: backup.count,
        target,
        found: counted.found,
        count: counted.first,
        rule,
        log,
        log_entries: backup.log.entries().len(),
    })
}

impl std::fmt::Display for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "backup {}: count {}, {} bytes of log", self.dir.display(), self.count, self.log_bytes)?;
        if self.pruned > 0 {
            write!(f, "; {} older removed", self.pruned)?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Restored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "restored backup {} (count {}): ", self.name, self.backup_count)?;
        if self.count > self.target {
            write!(f, "the count stays {}, above the rule's {} ({})", self.count, self.target, self.rule)?;
        } else {
            write!(f, "the count is now {} ({}; the counter held {})", self.count, self.rule, self.found)?;
        }
        match self.log {
            LogRestored::Whole => write!(f, "; the log: its {} entries put back", self.log_entries),
            LogRestored::Before => {
                write!(f, "; the log: its {} entries put back before the newer ones", self.log_entries)
            }
            LogRestored::Kept => write!(f, "; the log already reaches back to the backup's time: kept as it is"),
        }
    }
}

/// A backup read whole and checked.
struct Backup {
    taken: DateTime<Utc>,
    count: u64,
    log: LogCopy,
}

impl Backup {
    fn read(dir: &Path) -> Result<Self, BackupError> {
        let damaged = |why: String| BackupError::Damaged { backup: dir.to_path_buf(), why };
        let read = |file: &str| fs::read(dir.join(file)).map_err(|e| damaged(format!("{file} cannot be read ({e})")));
        let text = String::from_utf8(read(MANIFEST)?).map_err(|_| damaged(format!("{MANIFEST} is not text")))?;
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(damaged(format!("{MANIFEST} does not begin with {HEADER:?}")));
        }
        let mut field = |key: &str| {
            lines
                .next()
                .and_then(|line| line.strip_prefix(key)?.strip_prefix(": "))
                .map(str::to_owned)
                .ok_or_else(|| damaged(format!("{MANIFEST} has no line {key:?} where expected")))
        };
        let taken = field("taken")?;
        let count = field("count")?;
        let sizes = [field(ROTATED)?, field(CURRENT)?];
        let taken = NaiveDateTime::parse_from_str(&taken, TAKEN_FORMAT)
            .map_err(|_| damaged(format!("its time {taken:?} is not a UTC time")))?
            .and_utc();
        let count = count.parse().map_err(|_| damaged(format!("its count {count:?} is not a number")))?;
        let mut files = Vec::with_capacity(2);
        for (file, size) in [ROTATED, CURRENT].into_iter().zip(sizes) {
            let bytes = read(file)?;
            let expected: usize = size
                .strip_suffix(" bytes")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| damaged(format!("{file}'s size {size:?} is not a number of bytes")))?;
            if bytes.len() != expected {
                return Err(damaged(format!("{file} holds {} bytes, {MANIFEST} says {expected}", bytes.len())));
            }
            files.push(bytes);
        }
        let current = files.pop().unwrap_or_default();
        let rotated = files.pop().unwrap_or_default();
        let log = LogCopy { rotated, current };
        if !log.is_empty() && log.entries().is_empty() {
            return Err(damaged("its log holds no entry".into()));
        }
        Ok(Self { taken, count, log })
    }
}

fn manifest(taken: DateTime<Utc>, count: u64, log: &LogCopy) -> String {
    let mut text = format!("{HEADER}\ntaken: {}\ncount: {count}\n", taken.format(TAKEN_FORMAT));
    let _ = writeln!(text, "{ROTATED}: {} bytes", log.rotated.len());
    let _ = writeln!(text, "{CURRENT}: {} bytes", log.current.len());
    text
}

/// The backups' names in `dir`, oldest first (the names sort by time).
fn backups(dir: &Path) -> Result<Vec<String>, BackupError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FileError::at(WHAT, dir, "list it")(e).into()),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| NaiveDateTime::parse_from_str(name, NAME_FORMAT).is_ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Removes the oldest backups beyond `keep`, and what an interrupted backup
/// left; returns how many backups went.
fn prune(dir: &Path, keep: NonZeroUsize) -> Result<usize, BackupError> {
    let entries = fs::read_dir(dir).map_err(FileError::at(WHAT, dir, "list it"))?;
    for entry in entries.filter_map(Result::ok) {
        if entry.file_name().to_string_lossy().starts_with(PARTIAL) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(FileError::at(WHAT, &path, "remove it (an interrupted backup)"))?;
        }
    }
    let names = backups(dir)?;
    let excess = names.len().saturating_sub(keep.get());
    for name in &names[..excess] {
        let path = dir.join(name);
        fs::remove_dir_all(&path).map_err(FileError::at(WHAT, &path, "remove it (an old backup)"))?;
    }
    Ok(excess)
}

/// `at` to the millisecond, as the names and manifests keep it.
fn millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use uuid::Uuid;

    use super::*;
    use crate::entry::Entry;

    struct Volume {
        _dir: tempfile::TempDir,
        paths: Paths,
    }

    fn volume() -> Volume {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            counter_file: dir.path().join("files/pingpong_counter.txt"),
            log_file: dir.path().join("files/output.log"),
            backup_dir: dir.path().join("backups"),
        };
        fs::create_dir_all(dir.path().join("files")).unwrap();
        Volume { _dir: dir, paths }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_765_000_000 + seconds, 0).unwrap()
    }

    fn log(paths: &Paths) -> LogFile {
        LogFile::new(&paths.log_file, u64::MAX)
    }

    fn append(paths: &Paths, seconds: i64, count: u64) {
        let entry = Entry { at: at(seconds), id: Uuid::nil(), count };
        let _ = log(paths).append(&entry).unwrap();
    }

    fn set_count(paths: &Paths, count: u64) {
        fs::write(&paths.counter_file, format!("{count}\n")).unwrap();
    }

    fn count(paths: &Paths) -> u64 {
        CounterFile::new(&paths.counter_file).read().unwrap()
    }

    fn keep(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    fn lose_everything(paths: &Paths) {
        fs::remove_dir_all(paths.counter_file.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_restore_after_losing_everything_counts_above_every_number_since() {
        let v = volume();
        set_count(&v.paths, 41);
        append(&v.paths, 0, 40);
        let taken = take(&v.paths, keep(7), at(1)).unwrap();
        assert_eq!(taken.count, 41);
        lose_everything(&v.paths);

        let restored = restore(&v.paths, None, None, at(61) + TimeDelta::milliseconds(1)).unwrap();
        // 60.001 s since the backup: 61 whole seconds at MAX_RATE.
        assert_eq!(restored.count, 41 + 61 * MAX_RATE);
        assert_eq!(count(&v.paths), 41 + 61 * MAX_RATE);
        assert_eq!(restored.log, LogRestored::Whole);
        let entries = log(&v.paths).tail(10).unwrap();
        assert_eq!(entries.iter().map(|e| e.count).collect::<Vec<_>>(), [40]);
    }

    #[test]
    fn a_floor_replaces_the_bound_by_time_and_never_lowers_the_backup() {
        let v = volume();
        set_count(&v.paths, 500);
        let _ = take(&v.paths, keep(7), at(0)).unwrap();
        lose_everything(&v.paths);
        assert_eq!(restore(&v.paths, None, Some(620), at(3600)).unwrap().count, 620);
        lose_everything(&v.paths);
        assert_eq!(restore(&v.paths, None, Some(3), at(3600)).unwrap().count, 500);
    }

    #[test]
    fn a_restore_never_lowers_a_count_that_survived() {
        let v = volume();
        set_count(&v.paths, 7);
        let _ = take(&v.paths, keep(7), at(0)).unwrap();
        set_count(&v.paths, 900_000_000);
        let restored = restore(&v.paths, None, Some(8), at(10)).unwrap();
        assert_eq!((restored.found, restored.count), (900_000_000, 900_000_000));
        assert_eq!(count(&v.paths), 900_000_000);
        assert!(restored.to_string().contains("the count stays 900000000"), "{restored}");
    }

    #[test]
    fn a_damaged_backup_is_refused_and_nothing_is_written() {
        let v = volume();
        set_count(&v.paths, 12);
        append(&v.paths, 0, 11);
        let taken = take(&v.paths, keep(7), at(1)).unwrap();
        lose_everything(&v.paths);
        let backup_log = taken.dir.join(CURRENT);
        let bytes = fs::read(&backup_log).unwrap();
        fs::write(&backup_log, &bytes[..bytes.len() - 5]).unwrap();

        let e = restore(&v.paths, None, None, at(2)).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("is damaged: output.log holds"), "{message}");
        assert!(message.contains("nothing was restored: name an older one with RESTORE_FROM"), "{message}");
        assert!(!v.paths.counter_file.exists() && !v.paths.log_file.exists(), "something was written");
    }

    #[test]
    fn an_empty_backup_is_refused_with_one_line() {
        let v = volume();
        let empty = v.paths.backup_dir.join("20261206T021000.123Z");
        fs::create_dir_all(&empty).unwrap();
        fs::write(empty.join(MANIFEST), "").unwrap();
        let message = restore(&v.paths, None, None, at(0)).unwrap_err().to_string();
        assert!(message.contains("20261206T021000.123Z is damaged: backup.txt does not begin with"), "{message}");
        assert_eq!(message.lines().count(), 1);
        assert!(!v.paths.counter_file.exists());
    }

    #[test]
    fn a_count_below_the_newest_backups_is_not_backed_up_and_pushes_nothing_out() {
        let v = volume();
        set_count(&v.paths, 90);
        let _ = take(&v.paths, keep(1), at(0)).unwrap();
        lose_everything(&v.paths);
        let message = take(&v.paths, keep(1), at(1)).unwrap_err().to_string();
        assert!(message.starts_with("the count 0 is below the newest backup's"), "{message}");
        let names = backups(&v.paths.backup_dir).unwrap();
        assert_eq!(names, [at(0).format(NAME_FORMAT).to_string()], "the backup from before stays");
    }

    #[test]
    fn a_log_restore_cut_short_after_its_first_file_is_finished_when_run_again() {
        let v = volume();
        let rotated_log = LogFile::new(&v.paths.log_file, 100);
        for s in 0..4 {
            let _ = rotated_log.append(&Entry { at: at(s), id: Uuid::nil(), count: s as u64 }).unwrap();
        }
        let _ = take(&v.paths, keep(7), at(5)).unwrap();
        let backup = log(&v.paths).copy().unwrap();
        assert!(!backup.rotated.is_empty(), "the backup holds a rotated file");
        lose_everything(&v.paths);
        // A restore that wrote LOG_FILE.1 and stopped.
        fs::create_dir_all(v.paths.log_file.parent().unwrap()).unwrap();
        fs::write(v.paths.log_file.with_extension("log.1"), &backup.rotated).unwrap();
        assert_eq!(restore(&v.paths, None, Some(9), at(6)).unwrap().log, LogRestored::Whole);
        assert_eq!(log(&v.paths).copy().unwrap(), backup);
    }

    #[test]
    fn no_backup_and_an_unknown_name_say_where_they_looked() {
        let v = volume();
        let message = restore(&v.paths, None, None, at(0)).unwrap_err().to_string();
        assert!(message.starts_with("no backup at all in "), "{message}");
        let message = restore(&v.paths, Some("20200101T000000.000Z"), None, at(0)).unwrap_err().to_string();
        assert!(message.starts_with("no backup 20200101T000000.000Z in "), "{message}");
    }

    #[test]
    fn a_backup_dated_after_now_needs_a_floor() {
        let v = volume();
        let _ = take(&v.paths, keep(7), at(100)).unwrap();
        let message = restore(&v.paths, None, None, at(40)).unwrap_err().to_string();
        assert!(message.contains("the clocks disagree; give RESTORE_FLOOR"), "{message}");
        assert!(!v.paths.counter_file.exists());
        assert_eq!(restore(&v.paths, None, Some(5), at(40)).unwrap().count, 5);
    }

    #[test]
    fn the_log_goes_back_before_newer_entries_and_is_kept_when_it_has_the_history() {
        let v = volume();
        append(&v.paths, 0, 0);
        append(&v.paths, 5, 1);
        let _ = take(&v.paths, keep(7), at(6)).unwrap();
        // The writer ran on after losing the log: one newer entry.
        lose_everything(&v.paths);
        fs::create_dir_all(v.paths.log_file.parent().unwrap()).unwrap();
        append(&v.paths, 100, 0);
        let restored = restore(&v.paths, None, Some(9), at(101)).unwrap();
        assert_eq!(restored.log, LogRestored::Before);
        let counts: Vec<u64> = log(&v.paths).tail(10).unwrap().iter().map(|e| e.count).collect();
        assert_eq!(counts, [0, 1, 0]);
        // Restored again: the log now reaches back to the backup; kept.
        assert_eq!(restore(&v.paths, None, Some(9), at(102)).unwrap().log, LogRestored::Kept);
        assert_eq!(log(&v.paths).tail(10).unwrap().len(), 3);
    }

    #[test]
    fn backups_beyond_keep_are_removed_oldest_first_with_interrupted_ones() {
        let v = volume();
        fs::create_dir_all(v.paths.backup_dir.join(".partial-20200101T000000.000Z")).unwrap();
        for s in 0..4 {
            set_count(&v.paths, s as u64);
            let _ = take(&v.paths, keep(2), at(s)).unwrap();
        }
        let names = backups(&v.paths.backup_dir).unwrap();
        assert_eq!(names, [at(2).format(NAME_FORMAT).to_string(), at(3).format(NAME_FORMAT).to_string()]);
        assert!(!v.paths.backup_dir.join(".partial-20200101T000000.000Z").exists());
        lose_everything(&v.paths);
        assert_eq!(restore(&v.paths, Some(&names[0]), Some(0), at(4)).unwrap().backup_count, 2);
    }

    #[test]
    fn a_corrupt_counter_is_never_backed_up_nor_overwritten() {
        let v = volume();
        fs::write(&v.paths.counter_file, "forty-two\n").unwrap();
        let message = take(&v.paths, keep(7), at(0)).unwrap_err().to_string();
        assert!(message.contains("is corrupt"), "{message}");
        assert!(backups(&v.paths.backup_dir).unwrap().is_empty());

        set_count(&v.paths, 3);
        let _ = take(&v.paths, keep(7), at(1)).unwrap();
        fs::write(&v.paths.counter_file, "forty-two\n").unwrap();
        let message = restore(&v.paths, None, None, at(2)).unwrap_err().to_string();
        assert!(message.contains("is corrupt"), "{message}");
        assert_eq!(fs::read_to_string(&v.paths.counter_file).unwrap(), "forty-two\n");
    }
}

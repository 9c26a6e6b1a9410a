//! The durable increment's unit tests: ranges, replacement, identity checks,
//! restoring after a failed write.

use std::fs;

use super::*;
use std::os::unix::fs::MetadataExt;

fn setup() -> (tempfile::TempDir, CounterFile, CounterWriter) {
    let dir = tempfile::tempdir().unwrap();
    let file = CounterFile::new(dir.path().join("sub/counter.txt"));
    let writer = CounterWriter::open(file.clone()).unwrap();
    (dir, file, writer)
}

#[test]
fn increments_hand_out_consecutive_ranges_as_canonical_records() {
    let (_dir, file, mut writer) = setup();
    assert_eq!(file.read().unwrap(), 0);
    assert_eq!(writer.increment_by(3).unwrap(), 0);
    assert_eq!(writer.increment_by(1).unwrap(), 3);
    assert_eq!(fs::read(file.path()).unwrap(), record::format(4));
    assert_eq!(file.read().unwrap(), 4);
    assert_eq!(writer.read().unwrap(), 4);
    assert!(!file.tmp_path.exists(), "the temp file was renamed away");
}

#[test]
fn a_canonical_record_is_overwritten_in_place() {
    let (_dir, file, mut writer) = setup();
    writer.increment_by(1).unwrap();
    let inode = fs::metadata(file.path()).unwrap().ino();
    writer.increment_by(1).unwrap();
    writer.increment_by(5).unwrap();
    assert_eq!(fs::metadata(file.path()).unwrap().ino(), inode, "the same file, not a replacement");
    assert_eq!(fs::read(file.path()).unwrap(), record::format(7));
}

#[test]
fn a_hand_written_count_is_continued_and_normalised() {
    let (_dir, file, mut writer) = setup();
    writer.increment_by(1).unwrap();
    // `echo 41 > file`: the same inode, another length.
    fs::write(file.path(), "41\n").unwrap();
    assert_eq!(writer.increment_by(1).unwrap(), 41);
    assert_eq!(fs::read(file.path()).unwrap(), record::format(42));
}

#[test]
fn a_file_replaced_behind_the_writer_is_reopened_not_orphaned() {
    let (dir, file, mut writer) = setup();
    writer.increment_by(2).unwrap();
    // Another process (or a person) replaces the file by rename.
    let other = dir.path().join("other");
    fs::write(&other, record::format(100)).unwrap();
    fs::rename(&other, file.path()).unwrap();
    assert_eq!(writer.increment_by(1).unwrap(), 100);
    assert_eq!(fs::read(file.path()).unwrap(), record::format(101));
    // Deleted: counting starts again from 0, in a new file.
    fs::remove_file(file.path()).unwrap();
    assert_eq!(writer.increment_by(1).unwrap(), 0);
    assert_eq!(file.read().unwrap(), 1);
}

#[test]
fn a_corrupt_file_is_reported_and_left_untouched() {
    let (_dir, file, mut writer) = setup();
    fs::write(file.path(), "abc").unwrap();
    let err = writer.increment_by(1).unwrap_err().to_string();
    assert!(err.contains("counter.txt") && err.contains("corrupt"), "{err}");
    assert_eq!(fs::read_to_string(file.path()).unwrap(), "abc");
    assert!(matches!(file.read(), Err(CounterError::Corrupt { .. })));
}

#[test]
fn a_huge_file_is_corrupt_without_being_read_whole() {
    let (_dir, file, mut writer) = setup();
    fs::write(file.path(), "1".repeat(10_000)).unwrap();
    assert!(matches!(file.read(), Err(CounterError::Corrupt { .. })));
    assert!(matches!(writer.increment_by(1), Err(CounterError::Corrupt { .. })));
}

#[test]
fn a_directory_or_symlink_is_not_a_counter_file() {
    let dir = tempfile::tempdir().unwrap();
    let as_dir = CounterFile::new(dir.path().join("d"));
    fs::create_dir(as_dir.path()).unwrap();
    assert!(matches!(as_dir.read(), Err(CounterError::NotAFile { kind: "directory", .. })));
    let target = dir.path().join("real");
    fs::write(&target, "5").unwrap();
    let link = CounterFile::new(dir.path().join("link"));
    std::os::unix::fs::symlink(&target, link.path()).unwrap();
    let mut writer = CounterWriter::open(link.clone()).unwrap();
    assert!(matches!(writer.increment_by(1), Err(CounterError::NotAFile { kind: "symlink", .. })));
    assert!(fs::symlink_metadata(link.path()).unwrap().file_type().is_symlink());
    assert_eq!(fs::read_to_string(&target).unwrap(), "5");
}

/// Two writers on one file (two pingpong processes), interleaved: every
/// range handed out is distinct and the file holds the sum.
#[test]
fn two_writers_on_one_file_never_hand_out_a_number_twice() {
    let (_dir, file, mut a) = setup();
    let mut b = CounterWriter::open(file.clone()).unwrap();
    let mut seen = Vec::new();
    for i in 0..50 {
        let writer = if i % 3 == 0 { &mut b } else { &mut a };
        seen.push(writer.increment_by(2).unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    assert_eq!(file.read().unwrap(), 100);
}

/// The check before every increment (`statx` for the inode alone) agrees with
/// the identity of the file held open, after a replacement and in place: else
/// every increment would reopen the file.
#[test]
fn the_identity_check_agrees_with_the_open_file() {
    let (_dir, file, mut writer) = setup();
    for _ in 0..2 {
        writer.increment_by(1).unwrap();
        let held = writer.current.as_ref().map(|c| c.id);
        assert_eq!(file.identity().unwrap(), held);
    }
}

/// A writer whose calls numbered in `fail` (from 1, across writes, flushes,
/// renames and directory fsyncs) fail with EIO.
fn failing(file: &CounterFile, fail: &[usize]) -> CounterWriter {
    let disk = crate::disk::Failing { fail: fail.to_vec(), calls: Vec::new() };
    CounterWriter::open_on(file.clone(), Box::new(disk)).unwrap()
}

/// In place (the file holds the canonical record of 5): a failed `pwrite`
/// (call 1) or `fdatasync` (call 2) is refused, the old record is written
/// back and flushed, and the next increment continues from 5.
#[test]
fn a_failed_write_or_flush_in_place_is_refused_and_the_old_record_put_back() {
    for fail in [1, 2] {
        let (_dir, file, mut writer) = setup();
        writer.increment_by(5).unwrap();
        let mut faulty = failing(&file, &[fail]);
        let err = faulty.increment_by(1).unwrap_err().to_string();
        assert!(err.contains("counter.txt") && err.contains("could not"), "call {fail}: {err}");
        assert_eq!(fs::read(file.path()).unwrap(), record::format(5), "call {fail}: restored");
        assert_eq!(faulty.increment_by(1).unwrap(), 5, "call {fail}: continues from the acknowledged count");
    }
}

/// In place, the flush fails and so does the restore's write (calls 2 and
/// 3): the file keeps the refused count, so the refused numbers are skipped,
/// never handed out again.
#[test]
fn when_even_the_restore_fails_numbers_are_skipped_never_repeated() {
    let (_dir, file, mut writer) = setup();
    writer.increment_by(5).unwrap();
    let mut faulty = failing(&file, &[2, 3]);
    assert!(faulty.increment_by(3).is_err());
    assert_eq!(faulty.increment_by(1).unwrap(), 8, "5, 6 and 7 are skipped: not one is repeated");
}

/// By replacement (a hand-written count): each failing call (the temp file's
/// write, its flush, the rename, the directory's fsync) is refused, leaves
/// the count as it was, and the next increment continues from it.
#[test]
fn a_failed_step_of_a_replacement_is_refused_and_leaves_the_count() {
    for fail in 1..=4 {
        let (_dir, file, _writer) = setup();
        fs::write(file.path(), "7\n").unwrap();
        let mut faulty = failing(&file, &[fail]);
        assert!(faulty.increment_by(1).is_err(), "call {fail}");
        assert_eq!(file.read().unwrap(), 7, "call {fail}: the count is unchanged");
        assert_eq!(faulty.increment_by(1).unwrap(), 7, "call {fail}: continues from 7");
        assert_eq!(fs::read(file.path()).unwrap(), record::format(8), "call {fail}");
    }
}

/// The increment that must not wait: while another process's writer holds
/// the lock it touches nothing and says so; once the lock is free it counts
/// as the waiting increment would.
#[test]
fn a_try_increment_never_waits_for_another_writers_lock() {
    let (_dir, file, mut writer) = setup();
    writer.increment_by(2).unwrap();
    let held = fs::File::options().write(true).open(file.lock.path()).unwrap();
    held.lock().unwrap();
    assert!(writer.try_increment_at_least(1, 0).is_none(), "the lock is held elsewhere");
    assert_eq!(fs::read(file.path()).unwrap(), record::format(2), "nothing was touched");
    held.unlock().unwrap();
    let counted = writer.try_increment_at_least(1, 5).expect("the lock is free").unwrap();
    assert_eq!((counted.first, counted.found), (5, 2));
    assert_eq!(file.read().unwrap(), 6);
}

//! The durable increment's unit tests: ranges, replacement, identity checks,
//! restoring after a failed write.

use std::fs;

use super::*;

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

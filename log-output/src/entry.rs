//! The log entry: the one owner of its two-line format, written by the writer
//! and parsed by the reader.
//!
//! ```text
//! 2020-03-30T12:15:17.705Z: 8523ecb1-c716-4cb6-a044-b9e83bb98e43.
//! Ping / Pongs: 3
//! ```

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use uuid::Uuid;

const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";
const COUNT_PREFIX: &str = "Ping / Pongs: ";

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it was written, UTC, to the millisecond.
    pub at: DateTime<Utc>,
    /// The writer's id for its whole life.
    pub id: Uuid,
    /// The ping count when it was written, from the writer's
    /// [`CountSource`](crate::count_source::CountSource): the counter file,
    /// or pingpong's `GET /pings`.
    pub count: u64,
}

impl Entry {
    /// An entry stamped now, to the millisecond (what the format keeps).
    #[must_use]
    pub fn now(id: Uuid, count: u64) -> Self {
        let now = Utc::now();
        let at = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        Self { at, id, count }
    }

    /// Parses the two lines of an entry (without their newlines).
    #[must_use]
    pub fn parse(header: &str, count_line: &str) -> Option<Self> {
        let (time, rest) = header.split_once(": ")?;
        let id = rest.strip_suffix('.')?;
        let at = NaiveDateTime::parse_from_str(time, TIME_FORMAT).ok()?.and_utc();
        let digits = count_line.strip_prefix(COUNT_PREFIX)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let entry = Self { at, id: Uuid::try_parse(id).ok()?, count: digits.parse().ok()? };
        // Only the canonical spelling is an entry (no `+`, no odd UUID case).
        (entry.header() == header).then_some(entry)
    }

    fn header(&self) -> String {
        format!("{}: {}.", self.at.format(TIME_FORMAT), self.id)
    }
}

impl fmt::Display for Entry {
    /// The two lines, each ending in a newline: exactly what the log holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.header())?;
        writeln!(f, "{COUNT_PREFIX}{}", self.count)
    }
}

/// The last `n` complete entries in a piece of the log, oldest first.
///
/// Only lines ending in a newline count, so an entry still being appended (or
/// torn by a crash) is never returned. When `from_start` is false the piece
/// begins mid-file and its first line may be cut, so it is dropped. Lines that
/// do not pair into an entry (a torn entry's remains) are skipped. Parsing
/// starts at the end and stops after `n` entries: the cost follows `n`, not
/// the size of the piece.
#[must_use]
pub fn last_complete_entries(piece: &[u8], from_start: bool, n: usize) -> Vec<Entry> {
    let Some(last_newline) = piece.iter().rposition(|&b| b == b'\n') else {
        return Vec::new();
    };
    let mut lines: Vec<&[u8]> = piece[..last_newline].split(|&b| b == b'\n').collect();
    if !from_start && !lines.is_empty() {
        lines.remove(0);
    }
    let line = |i: usize| std::str::from_utf8(lines[i]).unwrap_or("");
    let mut entries = Vec::new();
    let mut i = lines.len();
    while i >= 2 && entries.len() < n {
        if let Some(entry) = Entry::parse(line(i - 2), line(i - 1)) {
            entries.push(entry);
            i -= 2;
        } else {
            i -= 1;
        }
    }
    entries.reverse();
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        let at = DateTime::parse_from_rfc3339("2020-03-30T12:15:17.705Z").unwrap().to_utc();
        Entry { at, id: Uuid::parse_str("8523ecb1-c716-4cb6-a044-b9e83bb98e43").unwrap(), count: 3 }
    }

    #[test]
    fn an_entry_prints_exactly_as_in_the_course() {
        assert_eq!(
            sample().to_string(),
            "2020-03-30T12:15:17.705Z: 8523ecb1-c716-4cb6-a044-b9e83bb98e43.\nPing / Pongs: 3\n"
        );
    }

    #[test]
    fn now_keeps_milliseconds_only_so_it_round_trips() {
        let entry = Entry::now(Uuid::new_v4(), 7);
        assert_eq!(last_complete_entries(entry.to_string().as_bytes(), true, 5), vec![entry]);
    }

    #[test]
    fn a_torn_last_entry_is_not_returned() {
        let text = sample().to_string();
        for cut in 1..text.len() {
            let entries = last_complete_entries(&text.as_bytes()[..cut], true, 5);
            assert!(entries.is_empty(), "cut at {cut} gave {entries:?}");
        }
    }

    #[test]
    fn torn_remains_in_the_middle_are_skipped() {
        let e = sample().to_string();
        let text = format!("{e}{}\n{e}", &e[..30]);
        assert_eq!(last_complete_entries(text.as_bytes(), true, 5).len(), 2);
        assert_eq!(last_complete_entries(text.as_bytes(), true, 1).len(), 1);
    }

    #[test]
    fn a_piece_from_mid_file_drops_its_cut_first_line() {
        let e = sample().to_string();
        let text = format!("{e}{e}");
        // Starting inside the first entry's count line: only the second is whole.
        assert_eq!(last_complete_entries(&text.as_bytes()[e.len() - 3..], false, 5).len(), 1);
    }

    #[test]
    fn lines_that_are_nearly_entries_are_rejected() {
        let ok = "2020-03-30T12:15:17.705Z: 8523ecb1-c716-4cb6-a044-b9e83bb98e43.";
        assert!(Entry::parse(ok, "Ping / Pongs: 3").is_some());
        assert!(Entry::parse(ok, "Ping / Pongs: +3").is_none());
        assert!(Entry::parse(ok, "Ping / Pongs: ").is_none());
        assert!(Entry::parse(&ok.to_uppercase(), "Ping / Pongs: 3").is_none());
        assert!(Entry::parse(&ok.replace(".705", ""), "Ping / Pongs: 3").is_none());
        assert!(Entry::parse(ok.trim_end_matches('.'), "Ping / Pongs: 3").is_none());
    }
}

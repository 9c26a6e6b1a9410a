//! The counter file's format: the decimal count, left-aligned and padded with
//! spaces to 20 characters, then a newline: always [`LEN`] bytes. `cat` shows
//! the number; shell arithmetic accepts it; readers accept any surrounding
//! ASCII whitespace, so `echo 42 > pingpong_counter.txt` is a valid repair.

/// The length of a canonical record: `u64::MAX` has 20 digits, plus `\n`.
pub const LEN: usize = 21;

/// The canonical record for `value`.
#[must_use]
pub fn format(value: u64) -> [u8; LEN] {
    let mut out = [b' '; LEN];
    let digits = value.to_string();
    out[..digits.len()].copy_from_slice(digits.as_bytes());
    out[LEN - 1] = b'\n';
    out
}

/// Parses what a counter file holds: ASCII digits, surrounding ASCII
/// whitespace allowed, nothing else.
///
/// # Errors
/// A human-readable reason when the bytes are not a count that fits a `u64`.
pub fn parse(bytes: &[u8]) -> Result<u64, String> {
    let text = bytes.trim_ascii();
    if text.is_empty() {
        return Err("it is empty".into());
    }
    if !text.iter().all(u8::is_ascii_digit) {
        let shown: String = String::from_utf8_lossy(text).chars().take(24).collect();
        return Err(format!("it holds {shown:?}, not a decimal count"));
    }
    // Only digits, so the one way to fail is overflow.
    std::str::from_utf8(text)
        .ok()
        .and_then(|digits| digits.parse::<u64>().ok())
        .ok_or_else(|| format!("its number is larger than the largest count, {}", u64::MAX))
}

/// Whether `bytes` is exactly the canonical record of `value`: only then may
/// the next increment overwrite it in place.
#[must_use]
pub fn is_canonical(bytes: &[u8], value: u64) -> bool {
    bytes == format(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_the_number_padded_to_21_bytes() {
        assert_eq!(&format(42), b"42                  \n");
        assert_eq!(&format(0), b"0                   \n");
        assert_eq!(&format(u64::MAX), b"18446744073709551615\n");
    }

    #[test]
    fn parse_accepts_digits_with_surrounding_whitespace() {
        assert_eq!(parse(b"0"), Ok(0));
        assert_eq!(parse(b"42\n"), Ok(42));
        assert_eq!(parse(b"  7 \r\n"), Ok(7));
        assert_eq!(parse(b"18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn parse_rejects_what_is_not_a_count() {
        for bad in [&b""[..], b"\n", b"abc", b"-1", b"+1", b"1 2", b"4.2", b"\xff\x00", b"18446744073709551616"] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn records_round_trip_and_only_they_are_canonical() {
        for v in [0, 1, 99, 1 << 40, u64::MAX] {
            assert_eq!(parse(&format(v)), Ok(v));
            assert!(is_canonical(&format(v), v));
        }
        assert!(!is_canonical(b"42\n", 42), "a hand-written count is normalised first");
        assert!(!is_canonical(b" 42                 \n", 42));
        assert!(!is_canonical(&format(42), 43));
    }
}

//! The writer's liveness: one rule, "the write loop turned within three
//! intervals, and at least 10 s" ([`judge`]), and the loop's own record of
//! when it last turned ([`LastTurn`]), which the writer's `GET /healthz`
//! judges. Every manifest probes that. The contract's older `log-output
//! alive` judges the heartbeat file by the same rule (`heartbeat.rs`).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The least time a turn may take before the loop counts as stuck: one slow
/// turn (a slow disk, pingpong answering late) is not death.
pub const FLOOR: Duration = Duration::from_secs(10);

/// How long after its last turn the loop still counts as alive: three
/// intervals, and at least [`FLOOR`].
#[must_use]
pub fn limit(interval: Duration) -> Duration {
    interval.saturating_mul(3).max(FLOOR)
}

/// The rule: alive if the loop last turned `since` ago, at most
/// [`limit`]`(interval)`.
///
/// # Errors
/// A one-line reason naming how long ago the loop last turned.
pub fn judge(since: Duration, interval: Duration) -> Result<(), String> {
    let limit = limit(interval);
    if since > limit {
        return Err(format!("the writer loop last turned {since:.1?} ago (limit {limit:.0?})"));
    }
    Ok(())
}

/// When the write loop last finished a turn (appended or skipped), on the
/// monotonic clock. Counted from its making, so a loop that never turns at
/// all fails too.
#[derive(Debug)]
pub struct LastTurn(Mutex<Instant>);

impl Default for LastTurn {
    fn default() -> Self {
        Self(Mutex::new(Instant::now()))
    }
}

impl LastTurn {
    /// The loop has just turned.
    pub fn turned(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// [`judge`] at `now`.
    ///
    /// # Errors
    /// As [`judge`].
    pub fn check_at(&self, now: Instant, interval: Duration) -> Result<(), String> {
        let last = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        judge(now.saturating_duration_since(last), interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_three_intervals_and_never_below_ten_seconds() {
        assert_eq!(limit(Duration::from_millis(20)), FLOOR);
        assert_eq!(limit(Duration::from_secs(5)), Duration::from_secs(15));
        assert_eq!(limit(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn a_loop_is_alive_up_to_the_limit_and_stuck_beyond_it_with_how_long_ago() {
        let interval = Duration::from_secs(5);
        assert_eq!(judge(Duration::from_secs(15), interval), Ok(()));
        let reason = judge(Duration::from_millis(15_100), interval).unwrap_err();
        assert_eq!(reason, "the writer loop last turned 15.1s ago (limit 15s)");
    }

    #[test]
    fn the_last_turn_is_judged_from_when_it_happened() {
        let interval = Duration::from_millis(20);
        let last = LastTurn::default();
        let later = Instant::now() + Duration::from_secs(11);
        assert!(last.check_at(Instant::now(), interval).is_ok());
        assert!(last.check_at(later, interval).unwrap_err().contains("last turned 11"));
        // A turn after `later` started its count again.
        *last.0.lock().unwrap() = later;
        assert_eq!(last.check_at(later + Duration::from_secs(9), interval), Ok(()));
    }
}

//! pingpong's own metrics (`pingpong_*`): pings answered and refused, group
//! commits, their size and their flush time, the count. Everything a ping
//! costs here is recorded per commit by the commit thread (a few atomic adds
//! and two histogram observations per batch, not per ping), except a
//! refusal, which the handler counts.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use counter::CounterError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::commit::CommitError;

/// Why a ping was refused (503), as the `reason` label says it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Refusal {
    reason: &'static str,
}

const CORRUPT_FILE: &str = "corrupt_file";
const IO_ERROR: &str = "io_error";
const SHUTTING_DOWN: &str = "shutting_down";

/// The metrics, registered once at start-up and shared by the handlers and
/// the commit thread.
#[derive(Debug)]
pub struct PingMetrics {
    answered: Counter,
    refused: Family<Refusal, Counter>,
    commits: Counter,
    commit_pings: Histogram,
    flush: Histogram,
    count: Gauge<u64, AtomicU64>,
}

impl PingMetrics {
    /// Creates the metrics and registers them in `registry` (which should
    /// carry the `pingpong` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            answered: Counter::default(),
            refused: Family::default(),
            commits: Counter::default(),
            // 1, 2, 4, … 4096: the batch bound.
            commit_pings: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            // 25 µs to 0.8 s: from tmpfs and NVMe to a struggling network disk.
            flush: Histogram::new(exponential_buckets(0.000_025, 2.0, 16)),
            count: Gauge::default(),
        };
        // Every reason from the start at 0, so a rate() sees the first refusal.
        for reason in [CORRUPT_FILE, IO_ERROR, SHUTTING_DOWN] {
            let _ = metrics.refused.get_or_create(&Refusal { reason });
        }
        registry.register(
            "pings_answered",
            "Pings counted durably and answered with their number",
            metrics.answered.clone(),
        );
        registry.register("pings_refused", "Pings answered 503, by reason", metrics.refused.clone());
        registry.register("commits", "Durable increments of the counter file (group commits)", metrics.commits.clone());
        registry.register("commit_pings", "Pings counted per commit", metrics.commit_pings.clone());
        registry.register_with_unit(
            "flush_duration",
            "Time a commit waited for the disk (fdatasync; for a replaced file also the directory's fsync)",
            Unit::Seconds,
            metrics.flush.clone(),
        );
        registry.register(
            "count",
            "The count in the counter file as this process last saw it (after its last commit or read)",
            metrics.count.clone(),
        );
        metrics
    }

    /// A commit counted `pings` pings durably, waiting `flush` for the disk;
    /// the file now holds `count`.
    pub(crate) fn committed(&self, pings: u64, flush: Duration, count: u64) {
        if !cfg!(feature = "metrics") {
            return;
        }
        self.commits.inc();
        self.answered.inc_by(pings);
        #[allow(clippy::cast_precision_loss)] // at most 4096
        self.commit_pings.observe(pings as f64);
        self.flush.observe(flush.as_secs_f64());
        self.count.set(count);
    }

    /// The file was read and holds `count`.
    pub(crate) fn saw(&self, count: u64) {
        if !cfg!(feature = "metrics") {
            return;
        }
        self.count.set(count);
    }

    /// A ping got `error` instead of a number.
    pub(crate) fn refused(&self, error: &CommitError) {
        if !cfg!(feature = "metrics") {
            return;
        }
        let reason = match error {
            CommitError::Counter(CounterError::Corrupt { .. } | CounterError::NotAFile { .. }) => CORRUPT_FILE,
            CommitError::Counter(CounterError::Io { .. }) => IO_ERROR,
            CommitError::Stopped => SHUTTING_DOWN,
        };
        self.refused.get_or_create(&Refusal { reason }).inc();
    }
}

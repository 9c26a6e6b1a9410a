//! pingpong's own metrics (`pingpong_*`): pings answered and refused, group
//! commits, their size and how long each waited to be durable, the count.
//! Everything a ping costs here is recorded per commit by the commit worker
//! (a few atomic adds and two histogram observations per batch, not per
//! ping), except a refusal, which the handler counts. Requests by route and
//! status, and connections, are the kit's (`pingpong_http_*`).
//!
//! The names mean the same with either store; with PostgreSQL,
//! `pingpong_flush_duration_seconds` is the commit's round trip (the
//! `UPDATE … RETURNING` and the server's WAL flush behind it) instead of
//! the `fdatasync`, and `pingpong_pings` is the row's count.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

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

/// How a wait of the commit worker for the group it answered ended, as the
/// `outcome` label says it: [`BACK`] or [`TIMED_OUT`].
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Regrouped {
    outcome: &'static str,
}

/// The group was queued again within the wait.
const BACK: &str = "back";
/// The wait ended without it (its window passed, or shutdown closed the queue).
const TIMED_OUT: &str = "timed_out";

/// The metrics, registered once at start-up and shared by the handlers and
/// the commit worker.
#[derive(Debug)]
pub struct PingMetrics {
    answered: Counter,
    refused: Family<Refusal, Counter>,
    commits: Counter,
    direct: Counter,
    regroups: Family<Regrouped, Counter>,
    commit_pings: Histogram,
    flush: Histogram,
    count: Gauge<u64, AtomicU64>,
    store_available: Gauge,
    went_back: Counter,
}

impl PingMetrics {
    /// Creates the metrics and registers them in `registry` (which should
    /// carry the `pingpong` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            answered: Counter::default(),
            refused: Family::default(),
            commits: Counter::default(),
            direct: Counter::default(),
            regroups: Family::default(),
            // 1, 2, 4, … 4096: the batch bound.
            commit_pings: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            // 25 µs to 0.8 s: from tmpfs and NVMe to a struggling network disk.
            flush: Histogram::new(exponential_buckets(0.000_025, 2.0, 16)),
            count: Gauge::default(),
            store_available: Gauge::default(),
            went_back: Counter::default(),
        };
        for reason in CommitError::REASONS {
            let _ = metrics.refused.get_or_create(&Refusal { reason });
        }
        for outcome in [BACK, TIMED_OUT] {
            let _ = metrics.regroups.get_or_create(&Regrouped { outcome });
        }
        registry.register(
            "pings_answered",
            "Pings counted durably and answered with their number",
            metrics.answered.clone(),
        );
        registry.register("pings_refused", "Pings answered 503, by reason", metrics.refused.clone());
        registry.register("commits", "Durable increments of the count (group commits)", metrics.commits.clone());
        registry.register(
            "direct_commits",
            "Commits of a lone ping by its own request, with no hand-off to the commit worker (also in commits)",
            metrics.direct.clone(),
        );
        registry.register(
            "regroups",
            "Waits of the commit worker, with few connections open, for the group of pings it answered to be back before its next commit, by how they ended (outcome: back, timed_out)",
            metrics.regroups.clone(),
        );
        registry.register("commit_pings", "Pings counted per commit", metrics.commit_pings.clone());
        registry.register_with_unit(
            "flush_duration",
            "Time a commit waited to be durable: the file's fdatasync (for a replaced file also the directory's fsync), or the database commit's round trip",
            Unit::Seconds,
            metrics.flush.clone(),
        );
        // Not `count`: a gauge named `*_count` reads as a histogram's part
        // (promtool's lint says so); it is what `/pings` answers.
        registry.register(
            "pings",
            "The count (what /pings answers) as this process last saw it, after its last commit or read",
            metrics.count.clone(),
        );
        registry.register(
            "store_available",
            "1 while the last call to the store (a commit, a read, a readiness check) succeeded, else 0: what readiness follows",
            metrics.store_available.clone(),
        );
        registry.register(
            "count_went_back",
            "Times the store held a count below numbers this process had answered (a hand edit, a restore, a failover that lost commits): the increment then counted on from above them",
            metrics.went_back.clone(),
        );
        metrics
    }

    /// The store's count was found below numbers already answered.
    pub(crate) fn went_back(&self) {
        self.went_back.inc();
    }

    /// The last call to the store succeeded, or not.
    pub(crate) fn store(&self, available: bool) {
        self.store_available.set(i64::from(available));
    }

    /// A commit counted `pings` pings durably, waiting `flush` for it; the
    /// store now holds `count`.
    pub(crate) fn committed(&self, pings: u64, flush: Duration, count: u64) {
        self.commits.inc();
        self.answered.inc_by(pings);
        #[allow(clippy::cast_precision_loss)] // at most 4096
        self.commit_pings.observe(pings as f64);
        self.flush.observe(flush.as_secs_f64());
        self.count.set(count);
    }

    /// A lone ping was committed by its own request.
    pub(crate) fn direct(&self) {
        self.direct.inc();
    }

    /// The commit worker waited for the group it answered: it came `back`,
    /// or the wait timed out.
    pub(crate) fn regrouped(&self, back: bool) {
        self.regroups.get_or_create(&Regrouped { outcome: if back { BACK } else { TIMED_OUT } }).inc();
    }

    /// The store was read and holds `count`.
    pub(crate) fn saw(&self, count: u64) {
        self.count.set(count);
    }

    /// A ping got `error` instead of a number.
    pub(crate) fn refused(&self, error: &CommitError) {
        self.refused.get_or_create(&Refusal { reason: error.reason() }).inc();
    }
}

//! The writer's metrics (`log_output_writer_*`, served on `METRICS_PORT`):
//! entries appended, appends failed (by reason), rotations, and when the
//! last append was. The reader's are the kit's requests by route and status.

use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};

use crate::writer::WriterError;

/// Why an entry was not appended, as the `reason` label says it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Failure {
    reason: &'static str,
}

/// What the writer counts; cheap to clone (the metrics are shared handles).
#[derive(Debug, Clone, Default)]
pub struct WriterMetrics {
    appended: Counter,
    failed: Family<Failure, Counter>,
    rotations: Counter,
    last_append: Gauge<f64, AtomicU64>,
}

impl WriterMetrics {
    /// Creates the metrics and registers them in `registry` (which should
    /// carry the `log_output_writer` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        for reason in WriterError::REASONS {
            let _ = metrics.failed.get_or_create(&Failure { reason });
        }
        registry.register("entries_appended", "Entries appended to the log", metrics.appended.clone());
        registry.register("appends_failed", "Turns that appended no entry, by reason", metrics.failed.clone());
        registry.register("rotations", "Times the log was rotated to LOG_FILE.1", metrics.rotations.clone());
        registry.register_with_unit(
            "last_append_timestamp",
            "When the last entry was appended, since the Unix epoch (0: none yet)",
            Unit::Seconds,
            metrics.last_append.clone(),
        );
        registry.register_collector(Box::new(Age(metrics.last_append.clone())));
        metrics
    }

    /// An entry was appended, rotating the log first if `rotated`.
    pub(crate) fn appended(&self, rotated: bool) {
        self.appended.inc();
        if rotated {
            self.rotations.inc();
        }
        self.last_append.set(now());
    }

    /// A turn appended nothing because of `error`.
    pub(crate) fn failed(&self, error: &WriterError) {
        self.failed.get_or_create(&Failure { reason: error.reason() }).inc();
    }

    /// Entries appended so far (for tests).
    #[must_use]
    pub fn appended_total(&self) -> u64 {
        self.appended.get()
    }

    /// Rotations so far (for tests).
    #[must_use]
    pub fn rotations_total(&self) -> u64 {
        self.rotations.get()
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// `last_append_age_seconds`, computed at each scrape from the last append's
/// time; absent until the first append.
#[derive(Debug)]
struct Age(Gauge<f64, AtomicU64>);

impl Collector for Age {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let last = self.0.get();
        if last <= 0.0 {
            return Ok(());
        }
        let age = ConstGauge::new((now() - last).max(0.0));
        let metric = encoder.encode_descriptor(
            "last_append_age",
            "Seconds since the last entry was appended",
            Some(&Unit::Seconds),
            age.metric_type(),
        )?;
        age.encode(metric)
    }
}

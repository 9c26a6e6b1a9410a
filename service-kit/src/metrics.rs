//! Prometheus metrics: what every process reports (its version and start
//! time), what every server reports (requests by route and status, open and
//! evicted connections), and the `GET /metrics` route, in the format the
//! scraper asks for.
//!
//! Built on `prometheus-client`, the Prometheus project's own Rust library:
//! explicit registries (no global state, so tests in one process do not share
//! counts), metrics as atomics. It writes OpenMetrics text, which Prometheus
//! asks for first (its `Accept` names `application/openmetrics-text`); a
//! client that does not ask for it (`curl`, `promtool check metrics`, older
//! scrapers) gets the classic text format 0.0.4 ([`classic`]).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The media type of OpenMetrics 1.0 text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The media type of the classic text format.
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A registry with what every process reports: `process_start_time_seconds`
/// (now: call it at start-up) and `<prefix>_build_info{version="…"}`; the
/// service's own metrics go into its sub-registry under `prefix`.
pub(crate) fn registry(prefix: &str, version: &'static str) -> Registry {
    let mut registry = Registry::default();
    let started = Gauge::<f64, AtomicU64>::default();
    started.set(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64());
    registry.register_with_unit(
        "process_start_time",
        "Start time of the process since the Unix epoch",
        Unit::Seconds,
        started,
    );
    registry.sub_registry_with_prefix(prefix).register(
        "build",
        "The version of the running binary",
        Info::new(vec![("version", version)]),
    );
    registry
}

/// `GET /metrics`: `registry` as the client asks for it.
pub(crate) fn route(registry: Arc<Registry>) -> Router {
    Router::new().route("/metrics", get(move |headers: HeaderMap| async move { exposition(&registry, &headers) }))
}

fn exposition(registry: &Registry, headers: &HeaderMap) -> Response {
    let mut text = String::new();
    if encode(&mut text, registry).is_err() {
        // Only a metric's own encoder can fail (writing to a String cannot).
        return (StatusCode::INTERNAL_SERVER_ERROR, "could not encode the metrics\n").into_response();
    }
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if wants_openmetrics {
        ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
    } else {
        ([(header::CONTENT_TYPE, CLASSIC)], classic(&text)).into_response()
    }
}

/// OpenMetrics text (as `prometheus-client` writes it) in the classic text
/// format: metadata names the samples' own names (`# TYPE x_total counter`,
/// an info metric is a gauge named `x_info`), no `# UNIT` and no `# EOF`.
#[must_use]
pub fn classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The family's name and type, from its `# TYPE` line: the `# HELP` line
    // comes first in OpenMetrics, so the metadata is buffered until then.
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_once(' ').or(Some((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The labels of [`Requests`]: the route as declared (`/log`, not the URL
/// asked, so the number of series stays bounded; `unmatched` for a 404 of the
/// fallback) and the status code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's path pattern, or `unmatched`.
    pub route: String,
    /// The response's status code.
    pub status: u16,
}

/// HTTP requests answered, by route and status.
pub type Requests = Family<RequestLabels, Counter>;

/// What the server counts: `http_requests` (by route and status),
/// `http_connections_open` and `http_connections_evicted`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerMetrics {
    pub(crate) requests: Requests,
    pub(crate) connections: ConnectionMetrics,
}

/// The connection bound's figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionMetrics {
    pub(crate) open: Gauge,
    pub(crate) evicted: Counter,
}

impl ServerMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register("http_requests", "HTTP requests answered, by route and status", metrics.requests.clone());
        registry.register("http_connections_open", "HTTP connections open now", metrics.connections.open.clone());
        registry.register(
            "http_connections_evicted",
            "Connections closed to make room at the connection bound (the oldest with no request being handled)",
            metrics.connections.evicted.clone(),
        );
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_the_samples_and_drops_what_only_openmetrics_has() {
        let mut registry = registry("demo", "1.2.3");
        let hits = Counter::<u64>::default();
        hits.inc();
        registry.sub_registry_with_prefix("demo").register("hits", "Hits", hits);
        let mut om = String::new();
        encode(&mut om, &registry).unwrap();
        let text = classic(&om);
        assert!(
            text.contains("# HELP demo_hits_total Hits.\n# TYPE demo_hits_total counter\ndemo_hits_total 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE demo_build_info gauge\ndemo_build_info{version=\"1.2.3\"} 1\n"), "{text}");
        assert!(text.contains("# TYPE process_start_time_seconds gauge\n"), "{text}");
        assert!(!text.contains("# UNIT") && !text.contains("# EOF"), "{text}");
    }
}

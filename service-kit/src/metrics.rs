//! Prometheus metrics: what every process reports (its version and start
//! time), the `GET /metrics` route, and HTTP requests counted by route and
//! status.
//!
//! Built on `prometheus-client`, the Prometheus project's own Rust library:
//! explicit registries (no global state, so tests in one process do not share
//! counts), metrics as atomics, text in the OpenMetrics format that Prometheus
//! asks for first.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The media type of the exposition: OpenMetrics 1.0 text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A service's registry: what every process reports,
/// `process_start_time_seconds` (now, as seconds since the Unix epoch: call
/// it at start-up) and `<prefix>_build_info{version="…"}`, and the service's
/// own metrics, which `register` adds under `prefix` and returns.
pub fn registry<T>(prefix: &str, version: &'static str, register: impl FnOnce(&mut Registry) -> T) -> (Registry, T) {
    let mut registry = Registry::default();
    let started = Gauge::<f64, AtomicU64>::default();
    started.set(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64());
    registry.register_with_unit(
        "process_start_time",
        "Start time of the process since the Unix epoch",
        Unit::Seconds,
        started,
    );
    let own = registry.sub_registry_with_prefix(prefix);
    own.register("build", "The version of the running binary", Info::new(vec![("version", version)]));
    let metrics = register(own);
    (registry, metrics)
}

/// `GET /metrics`: `registry` in the OpenMetrics text format.
pub fn route<S: Clone + Send + Sync + 'static>(registry: Arc<Registry>) -> Router<S> {
    Router::new().route("/metrics", get(move || async move { exposition(&registry) }))
}

fn exposition(registry: &Registry) -> Response {
    let mut text = String::new();
    match encode(&mut text, registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        // Only a metric's own encoder can fail (writing to a String cannot).
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "could not encode the metrics\n").into_response(),
    }
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

/// Registers `http_requests` (a counter: `<prefix>_http_requests_total`) in
/// `registry` and returns it, for [`count_requests`].
pub fn register_requests(registry: &mut Registry) -> Requests {
    let requests = Requests::default();
    registry.register("http_requests", "HTTP requests answered, by route and status", requests.clone());
    requests
}

/// `router` with every response counted in `requests`. Add it after the
/// routes (and [`crate::routes::around`]) so that every route is counted.
pub fn count_requests<S: Clone + Send + Sync + 'static>(router: Router<S>, requests: Requests) -> Router<S> {
    router.layer(middleware::from_fn_with_state(requests, count))
}

async fn count(State(requests): State<Requests>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let response = next.run(request).await;
    requests.get_or_create(&RequestLabels { route, status: response.status().as_u16() }).inc();
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    async fn get_text(app: Router, uri: &str) -> (StatusCode, String) {
        let response = app.oneshot(axum::http::Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_pattern_and_status() {
        let (registry, requests) = registry("demo", "1.2.3", register_requests);
        let registry = Arc::new(registry);
        let own = Router::new().route("/item/{id}", get(|| async { "item" })).merge(route(Arc::clone(&registry)));
        let app = count_requests(crate::routes::around(own, "/item/N"), requests.clone());
        for uri in ["/item/1", "/item/2", "/nowhere"] {
            get_text(app.clone(), uri).await;
        }
        let labels = |route: &str, status| RequestLabels { route: route.to_owned(), status };
        assert_eq!(requests.get_or_create(&labels("/item/{id}", 200)).get(), 2);
        assert_eq!(requests.get_or_create(&labels("unmatched", 404)).get(), 1);
        let (status, text) = get_text(app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains("demo_build_info{version=\"1.2.3\"} 1\n"), "{text}");
        assert!(text.contains("demo_http_requests_total{route=\"/item/{id}\",status=\"200\"} 2\n"), "{text}");
        assert!(text.contains("# TYPE process_start_time_seconds gauge\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

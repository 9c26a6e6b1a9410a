//! The routes every service has around its own: liveness, a 404 that names
//! the service's paths, and request tracing.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tower_http::trace::TraceLayer;

/// `own` plus `GET /healthz` (200 while the process serves), a 404 for any
/// other path that lists `paths` (e.g. `"/pingpong, /pings, /healthz or
/// /readyz"`), and a trace span per request.
pub fn around<S: Clone + Send + Sync + 'static>(own: Router<S>, paths: &'static str) -> Router<S> {
    own.route("/healthz", get(healthz))
        .fallback(move || async move { (StatusCode::NOT_FOUND, format!("not found: try GET {paths}\n")) })
        .layer(TraceLayer::new_for_http())
}

/// Liveness: the process answers, so it lives.
async fn healthz() -> &'static str {
    "ok"
}

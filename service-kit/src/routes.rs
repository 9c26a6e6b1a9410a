//! The routes every service has around its own: liveness, readiness, a 404
//! and a 405 that name the routes really served; and how a failure is
//! answered.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};

use crate::worker::Health;

/// A service's own readiness check: `Err` with a one-line reason when it
/// should get no traffic.
pub(crate) type Check = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// A service's own liveness check: `Err` with a one-line reason when the
/// process must be restarted. Not async on purpose: it reads a state the
/// work keeps, and never waits on the work (which may be what is stuck).
pub(crate) type Live = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// `GET /healthz` (200 while every worker lives and `live` passes),
/// `GET /readyz` (200 while every worker lives and `check` passes), the 404
/// for any other path and the 405 for a method a route does not serve, both
/// listing `paths`.
pub(crate) fn around(
    own: Router,
    paths: &[&'static str],
    health: &Health,
    live: Option<Live>,
    check: Option<Check>,
) -> Router {
    let not_found = format!("not found: try GET {}\n", list(paths));
    let not_allowed = format!("method not allowed: try GET {}\n", list(paths));
    let alive = health.clone();
    let ready = health.clone();
    own.route("/healthz", get(move || async move { healthz(&alive, live.as_deref()) }))
        .route("/readyz", get(move || readyz(ready.clone(), check.clone())))
        .fallback(move || async move { (StatusCode::NOT_FOUND, not_found) })
        // Every route is a GET: `Allow: GET` here, where axum would add
        // HEAD, which a route with a side effect refuses (`get_only`).
        .method_not_allowed_fallback(move || async move {
            (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET")], not_allowed)
        })
}

/// `route` (a GET) with HEAD refused: axum answers a HEAD with the GET
/// handler and drops the body, which for a handler with a side effect (a
/// ping is counted) would use a number no client ever sees. 405 with
/// `Allow: GET`, as for any other method.
pub fn get_only<S: Clone + Send + Sync + 'static>(route: MethodRouter<S>) -> MethodRouter<S> {
    route.head(|| async { (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET")]) })
}

/// "a, b, c or d".
fn list(paths: &[&'static str]) -> String {
    match paths {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Liveness: the process answers, no worker it needs has died, and the
/// service's own check (if any) passes.
fn healthz(health: &Health, live: Option<&(dyn Fn() -> Result<(), String> + Send + Sync)>) -> Response {
    if let Some(worker) = health.dead() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not alive: its worker {worker} has stopped; the process must be restarted\n"),
        )
            .into_response();
    }
    match live.map_or(Ok(()), |live| live()) {
        Ok(()) => "ok".into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not alive: {reason}\n")).into_response(),
    }
}

async fn readyz(health: Health, check: Option<Check>) -> Response {
    if let Some(worker) = health.dead() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: its worker {worker} has stopped\n"))
            .into_response();
    }
    let checked = match check {
        Some(check) => check().await,
        None => Ok(()),
    };
    match checked {
        Ok(()) => "ready".into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")).into_response(),
    }
}

/// How a service's error enum answers: `status` with the error's one line as
/// the body; a server-side failure (5xx) is logged here, once, and a client's
/// mistake is not logged as an error.
pub fn error_response(status: StatusCode, error: &impl Display) -> Response {
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), cause = %error, "request failed");
    }
    (status, format!("{error}\n")).into_response()
}

/// As [`error_response`], for a failure whose cause is logged where it
/// starts and ends (a database away: one line when it goes, one when it is
/// back), so that a flood of refused requests does not flood the log.
pub fn refusal_response(status: StatusCode, error: &impl Display) -> Response {
    tracing::debug!(status = status.as_u16(), cause = %error, "request refused");
    (status, format!("{error}\n")).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_listed_as_a_sentence() {
        assert_eq!(super::list(&["/a"]), "/a");
        assert_eq!(super::list(&["/a", "/b", "/c"]), "/a, /b or /c");
    }
}

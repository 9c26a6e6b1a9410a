//! The drain gate of graceful shutdown: counts the requests being handled,
//! waits until none is, then lets no new one in. A handler either runs to its
//! answer or never starts, so nothing counted is cut off by the exit, and a
//! request that arrives after the drain is answered 503 without being handled.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

/// The gate; cheap to clone, all clones the same gate.
#[derive(Debug, Clone, Default)]
pub struct Drain(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    gate: Mutex<Gate>,
    /// Notified when the last request in flight leaves.
    idle: Notify,
}

#[derive(Debug, Default)]
struct Gate {
    handling: usize,
    closed: bool,
}

/// One request being handled; leaving drops it.
#[derive(Debug)]
pub struct Handling(Drain);

impl Drain {
    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.0.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request starts: `None` once the gate is closed.
    #[must_use]
    pub fn enter(&self) -> Option<Handling> {
        let mut gate = self.gate();
        if gate.closed {
            return None;
        }
        gate.handling += 1;
        Some(Handling(self.clone()))
    }

    /// A request has left (its [`Handling`] dropped).
    fn leave(&self) {
        let mut gate = self.gate();
        gate.handling -= 1;
        if gate.handling == 0 {
            self.0.idle.notify_waiters();
        }
    }

    /// Waits until no request is being handled, then closes the gate.
    pub async fn close_when_idle(&self) {
        loop {
            let notified = self.0.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut gate = self.gate();
                if gate.handling == 0 {
                    gate.closed = true;
                    return;
                }
            }
            notified.await;
        }
    }

    /// `app` with every request passing through the gate.
    pub fn guard(&self, app: Router) -> Router {
        let drain = self.clone();
        app.layer(middleware::from_fn(move |request: Request, next: Next| {
            let handling = drain.enter();
            async move {
                let Some(handling) = handling else {
                    return shutting_down();
                };
                let response = next.run(request).await;
                drop(handling);
                response
            }
        }))
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.leave();
    }
}

fn shutting_down() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// With paused time: the drain waits exactly as long as the requests in
    /// flight, however long that is, then closes.
    #[tokio::test(start_paused = true)]
    async fn the_drain_waits_for_every_request_in_flight_then_closes() {
        let drain = Drain::default();
        let (a, b) = (drain.enter().unwrap(), drain.enter().unwrap());
        let closing = tokio::spawn({
            let drain = drain.clone();
            async move { drain.close_when_idle().await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(a);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!closing.is_finished(), "one request is still in flight");
        let late = drain.enter();
        assert!(late.is_some(), "until the drain ends, requests still get in");
        drop(late);
        drop(b);
        closing.await.unwrap();
        assert!(drain.enter().is_none(), "after the drain, no request gets in");
    }

    #[tokio::test]
    async fn a_drain_with_nothing_in_flight_closes_at_once() {
        let drain = Drain::default();
        drain.close_when_idle().await;
        assert!(drain.enter().is_none());
    }

    /// Through the layer: a request after the drain is answered 503 and its
    /// handler never runs.
    #[tokio::test]
    async fn a_request_after_the_drain_gets_503_and_is_not_handled() {
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let app = Router::new().route(
            "/",
            get({
                let ran = ran.clone();
                move || async move {
                    ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    "handled"
                }
            }),
        );
        let drain = Drain::default();
        let app = drain.guard(app);
        let before = app.clone().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(before.status(), StatusCode::OK);
        drain.close_when_idle().await;
        let after = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(after.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1, "the late request was not handled");
    }
}

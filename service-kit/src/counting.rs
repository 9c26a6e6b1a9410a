//! Counting every answer in `<prefix>_http_requests_total{route, status}`,
//! at the cost of one atomic increment per request.
//!
//! A `Family` lookup per request (an owned `String` for the route, hashing
//! the labels, a read lock) and `middleware::from_fn` (a boxed future and a
//! clone of the inner service) were a measurable share of a request's CPU
//! on the `/healthz` path (`docs/http-path.md`). Here the routes are known
//! when the service is built, so each (route, common status) pair finds its
//! counter once, the first time it is answered, and keeps it; a route or a
//! status outside those still goes through the `Family`. Nothing is
//! created before it is counted, so `/metrics` shows the same series as a
//! plain `Family` would.

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use pin_project_lite::pin_project;
use prometheus_client::metrics::counter::Counter;
use tower::{Layer, Service};

use crate::metrics::{RequestLabels, Requests};

/// The statuses a counter is kept for, per route.
const STATUSES: [u16; 6] = [200, 400, 404, 405, 500, 503];
/// The route label of an answer from the fallback (a 404).
const UNMATCHED: &str = "unmatched";

/// The counters, shared by every clone of the layer and its services.
#[derive(Debug)]
struct Counts {
    requests: Requests,
    /// The routes served, and `unmatched` last.
    routes: Vec<RouteCounts>,
}

#[derive(Debug)]
struct RouteCounts {
    route: &'static str,
    by_status: [OnceLock<Counter>; STATUSES.len()],
}

impl Counts {
    /// The index of `route` in `routes`, if it is one of them.
    fn find(&self, route: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.route == route)
    }

    fn count(&self, route: Result<usize, String>, status: u16) {
        if let Ok(i) = route
            && let Some(slot) = STATUSES.iter().position(|&s| s == status)
        {
            let counts = &self.routes[i];
            let counter = counts.by_status[slot].get_or_init(|| {
                self.requests.get_or_create(&RequestLabels { route: counts.route.to_owned(), status }).clone()
            });
            counter.inc();
            return;
        }
        let route = route.map_or_else(|route| route, |i| self.routes[i].route.to_owned());
        self.requests.get_or_create(&RequestLabels { route, status }).inc();
    }
}

/// Counts every answer of the router it wraps (as `Router::layer`, so that
/// the route matched is known).
#[derive(Debug, Clone)]
pub(crate) struct CountLayer(Arc<Counts>);

impl CountLayer {
    /// Counting into `requests`, with a counter kept for each of `routes`.
    pub(crate) fn new(requests: Requests, routes: &[&'static str]) -> Self {
        let routes =
            routes.iter().chain([&UNMATCHED]).map(|&route| RouteCounts { route, by_status: Default::default() });
        Self(Arc::new(Counts { requests, routes: routes.collect() }))
    }
}

impl<S> Layer<S> for CountLayer {
    type Service = Count<S>;
    fn layer(&self, inner: S) -> Count<S> {
        Count { inner, counts: Arc::clone(&self.0) }
    }
}

/// The service of [`CountLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Count<S> {
    inner: S,
    counts: Arc<Counts>,
}

impl<S> Service<Request> for Count<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Counted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let matched = request.extensions().get::<MatchedPath>().map_or(UNMATCHED, MatchedPath::as_str);
        let route = self.counts.find(matched).ok_or_else(|| matched.to_owned());
        Counted { answer: self.inner.call(request), count: Some((Arc::clone(&self.counts), route)) }
    }
}

pin_project! {
    /// An answer on its way, counted when it comes.
    pub(crate) struct Counted<F> {
        #[pin]
        answer: F,
        count: Option<(Arc<Counts>, Result<usize, String>)>,
    }
}

impl<F, E> std::future::Future for Counted<F>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.answer.poll(cx));
        if let (Ok(response), Some((counts, route))) = (&answer, this.count.take()) {
            counts.count(route, response.status().as_u16());
        }
        Poll::Ready(answer)
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn every_answer_is_counted_by_route_and_status() {
        let requests = Requests::default();
        let app = Router::new()
            .route("/a", get(|| async { "a" }))
            .route("/teapot", get(|| async { StatusCode::IM_A_TEAPOT }))
            .route("/b/{id}", get(|| async { "b" }))
            .layer(CountLayer::new(requests.clone(), &["/a", "/teapot"]));
        for path in ["/a", "/a", "/teapot", "/b/1", "/nowhere"] {
            app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        }
        let count =
            |route: &str, status| requests.get_or_create(&RequestLabels { route: route.to_owned(), status }).get();
        assert_eq!(count("/a", 200), 2);
        assert_eq!(count("/teapot", 418), 1, "a status outside the kept ones");
        assert_eq!(count("/b/{id}", 200), 1, "a route outside the kept ones");
        assert_eq!(count("unmatched", 404), 1);
    }
}

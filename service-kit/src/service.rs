//! One way to build and run a service (zero-to-production's
//! `Application::build` then `run_until_stopped`, mini-redis's
//! `server::run`): a [`Service`] is given its routes, its liveness and
//! readiness checks, its metrics and its background workers; the kit adds `/healthz`,
//! `/readyz`, `/metrics`, the 404 that names the routes, request counting,
//! tracing, the connection bound, and the shutdown sequence that drains the
//! server and then stops and joins the workers.

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::Router;
use axum::routing::MethodRouter;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::connections::{Connections, OpenConnections};
use crate::http_server::MAX_CONNECTIONS;
use crate::metrics::ServerMetrics;
use crate::routes::{Check, Live};
use crate::shutdown::{Phase, PhaseSender};
use crate::worker::{Stop, Workers};

/// A service being built, then run.
pub struct Service {
    prefix: &'static str,
    registry: Registry,
    server: ServerMetrics,
    own: Router,
    paths: Vec<&'static str>,
    live: Option<Live>,
    check: Option<Check>,
    workers: Workers,
    max_connections: usize,
    open: OpenConnections,
    /// Where shutdown stands; the one sender of it.
    phase: PhaseSender,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("prefix", &self.prefix).field("paths", &self.paths).finish_non_exhaustive()
    }
}

impl Service {
    /// A service whose metrics are named `prefix_…` (`pingpong`,
    /// `log_output_reader`), reporting `version`. Call it at start-up: the
    /// process's start time is taken now.
    #[must_use]
    pub fn new(prefix: &'static str, version: &'static str) -> Self {
        let mut registry = crate::metrics::registry(prefix, version);
        let server = ServerMetrics::register(registry.sub_registry_with_prefix(prefix));
        let (phase, _) = tokio::sync::watch::channel(Phase::Serving);
        Self {
            prefix,
            registry,
            server,
            own: Router::new(),
            paths: Vec::new(),
            live: None,
            check: None,
            workers: Workers::new(phase.subscribe()),
            max_connections: MAX_CONNECTIONS,
            open: OpenConnections::default(),
            phase,
        }
    }

    /// Registers the service's own metrics: `register` adds them under the
    /// prefix and returns them.
    pub fn metrics<T>(&mut self, register: impl FnOnce(&mut Registry) -> T) -> T {
        register(self.registry.sub_registry_with_prefix(self.prefix))
    }

    /// Serves `handler` at `path`. A query after `?` is for the 404's list
    /// only: `"/log?tail=N"` routes `/log` and shows `/log?tail=N`.
    pub fn route(&mut self, path: &'static str, handler: MethodRouter) -> &mut Self {
        let routed = path.split_once('?').map_or(path, |(p, _)| p);
        self.own = std::mem::take(&mut self.own).route(routed, handler);
        self.paths.push(path);
        self
    }

    /// The liveness check behind `GET /healthz`, on top of the workers being
    /// alive: `Err` with a one-line reason once the process is stuck and must
    /// be restarted (a worker that lives but no longer turns). It must
    /// answer at once from a state the work keeps, never wait on the work.
    pub fn liveness(&mut self, check: impl Fn() -> Result<(), String> + Send + Sync + 'static) -> &mut Self {
        self.live = Some(Arc::new(check));
        self
    }

    /// The readiness check behind `GET /readyz`, on top of the workers being
    /// alive: `Err` with a one-line reason while the service should get no
    /// traffic.
    pub fn readiness<F, Fut>(&mut self, check: F) -> &mut Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.check = Some(Arc::new(move || Box::pin(check())));
        self
    }

    /// At most `max` connections open at once (default
    /// [`MAX_CONNECTIONS`]); `connections.rs` says who gives way.
    pub fn max_connections(&mut self, max: usize) -> &mut Self {
        self.max_connections = max;
        self
    }

    /// How many connections the server has open, as it runs.
    #[must_use]
    pub fn open_connections(&self) -> OpenConnections {
        self.open.clone()
    }

    /// A worker on a thread of its own, for work that blocks (files, locks).
    /// At shutdown, after the server has drained, `stop` is called (it must
    /// make `body` return) and the thread is joined. If `body` returns or
    /// panics before that, liveness fails.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn spawn_thread(
        &mut self,
        name: &'static str,
        body: impl FnOnce() + Send + 'static,
        stop: impl FnOnce() + Send + 'static,
    ) -> io::Result<&mut Self> {
        self.workers.spawn_thread(name, body, stop)?;
        Ok(self)
    }

    /// A worker as a task on the runtime (call from within it). `body` gets a
    /// [`Stop`] that completes at shutdown, after the server has drained;
    /// shutdown then waits for `body` to return. If it returns or panics
    /// before that, liveness fails.
    pub fn spawn_task<F>(&mut self, name: &'static str, body: impl FnOnce(Stop) -> F) -> &mut Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.workers.spawn_task(name, body);
        self
    }

    /// Everything served, without a socket (tests drive it with `oneshot`):
    /// the service's routes, `/metrics`, `/healthz`, `/readyz`, the 404,
    /// request counting and tracing. The workers keep running until their
    /// handles in the routes are dropped.
    pub fn into_router(self) -> Router {
        self.split().0
    }

    fn split(self) -> (Router, Workers, Connections, PhaseSender) {
        let Self { prefix: _, registry, server, own, mut paths, live, check, workers, max_connections, open, phase } =
            self;
        paths.extend(["/metrics", "/healthz", "/readyz"]);
        let routes: Vec<_> = paths.iter().map(|path| path.split_once('?').map_or(*path, |(p, _)| p)).collect();
        let own = own.merge(crate::metrics::route(Arc::new(registry)));
        let all = crate::routes::around(own, &paths, &workers.health(), live, check);
        let counting = crate::counting::CountLayer::new(server.requests, &routes);
        let router = all.layer(counting);
        // Everything the trace layer says is at DEBUG, and the filter is
        // fixed at start-up (`telemetry::init`, before this), so at the
        // default level it would only cost each request a span, a clock
        // read and a wrapped body to say nothing (`docs/http-path.md`).
        let router = if trace_enabled() { router.layer(trace_layer()) } else { router };
        let connections = Connections::new(max_connections, open, phase.subscribe(), server.connections);
        (router, workers, connections, phase)
    }

    /// Serves on `listener` until `shutdown` completes, then shuts down in
    /// one sequence: stop accepting, drain (see [`crate::http_server`]), then stop
    /// the workers (every [`Stop`] completes at once, each thread worker's
    /// stop is called once) and wait for each, in the order they were
    /// started.
    ///
    /// # Errors
    /// The listener's address cannot be read.
    pub async fn run_until_stopped(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> io::Result<()> {
        let (router, workers, connections, phase) = self.split();
        let served = crate::http_server::serve(listener, router, connections, &phase, shutdown).await;
        phase.send_replace(Phase::Stopping);
        workers.stop_all().await;
        tracing::info!("stopped");
        served
    }
}

/// The trace layer's events would be logged.
fn trace_enabled() -> bool {
    tracing::enabled!(target: "tower_http::trace::make_span", Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace::on_request", Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace::on_response", Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace::on_failure", Level::DEBUG)
}

/// Each request in a span, its start, its answer and its failure logged at
/// DEBUG. A failed request is logged once, by the service's error (see
/// `error_response`), not again at ERROR by the trace layer.
fn trace_layer() -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>> {
    TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG))
}

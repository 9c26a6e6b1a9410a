//! The bound on open connections, and who gives way when it is reached.
//!
//! At most `max` connections are open. When one more arrives, the oldest
//! connection on which no request is being handled is closed to make room:
//! one idle between requests, one whose client is still sending its headers
//! (slowloris), one whose client reads its answer slowly (the answer is
//! written after the handler returned). That is how nginx reuses idle
//! keep-alive connections at its limit. A slow client therefore holds a
//! place only until `max` newer connections have arrived, or until the
//! header-read timeout closes it; a connection whose request is being
//! handled is never closed (its handler runs to its answer, bounded by its
//! own deadline), and only if every connection is busy does the next one
//! wait, in the kernel's accept queue, for one to close (mini-redis's
//! `Semaphore::new(MAX_CONNECTIONS)`). Memory is bounded by `max` either way.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

use crate::metrics::ConnectionMetrics;

/// How many connections the server has open now, read with one atomic load
/// (the `*_http_connections_open` gauge, kept exact under the lock of the
/// open set): for a handler that may only do something while it is alone,
/// as pingpong's direct commit of a lone ping. 0 when nothing is served
/// (a router driven by `oneshot`).
#[derive(Debug, Clone)]
pub struct OpenConnections(prometheus_client::metrics::gauge::Gauge);

impl OpenConnections {
    pub(crate) fn new(gauge: prometheus_client::metrics::gauge::Gauge) -> Self {
        Self(gauge)
    }

    /// The connections open now.
    #[must_use]
    pub fn get(&self) -> usize {
        usize::try_from(self.0.get()).unwrap_or(0)
    }
}

/// No request is being handled on the connection.
const IDLE: u8 = 0;
/// A request's handler is running.
const BUSY: u8 = 1;
/// Chosen to make room: it closes, and no new request starts on it.
const EVICTED: u8 = 2;

/// Where shutdown stands, as every connection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Serving,
    /// Finish the request under way (if any), then close; close now if idle.
    Finishing,
    /// Close now.
    Closing,
}

#[derive(Debug)]
struct Conn {
    state: AtomicU8,
    evict: Notify,
}

impl Conn {
    /// A request starts: `false` if the connection is being closed.
    fn begin(&self) -> bool {
        self.state.compare_exchange(IDLE, BUSY, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    fn end(&self) {
        let _ = self.state.compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Chooses it to make room, if no request is being handled on it.
    fn try_evict(&self) -> bool {
        self.state.compare_exchange(IDLE, EVICTED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

#[derive(Debug)]
struct Inner {
    max: usize,
    open: Mutex<Open>,
    /// Notified whenever a connection closes.
    closed: Notify,
    phase: watch::Sender<Phase>,
    metrics: ConnectionMetrics,
}

#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    /// By id, so the oldest first.
    conns: BTreeMap<u64, Arc<Conn>>,
}

/// The open connections of one server.
#[derive(Debug, Clone)]
pub(crate) struct Connections(Arc<Inner>);

impl Connections {
    pub(crate) fn new(max: usize, metrics: ConnectionMetrics) -> Self {
        let (phase, _) = watch::channel(Phase::Serving);
        Self(Arc::new(Inner { max: max.max(1), open: Mutex::default(), closed: Notify::new(), phase, metrics }))
    }

    fn open(&self) -> MutexGuard<'_, Open> {
        self.0.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many are open.
    pub(crate) fn len(&self) -> usize {
        self.open().conns.len()
    }

    /// Returns once there is room for one more connection, closing the
    /// oldest one that is not busy if there is none; `false` if `stop`
    /// completes first.
    pub(crate) async fn make_room(&self, stop: &mut (impl Future<Output = ()> + Unpin)) -> bool {
        loop {
            let closed = self.0.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            {
                let open = self.open();
                if open.conns.len() < self.0.max {
                    return true;
                }
                // The victim closes in its own task and then notifies `closed`.
                if let Some(victim) = open.conns.values().find(|c| c.try_evict()) {
                    victim.evict.notify_one();
                    self.0.metrics.evicted.inc();
                }
            }
            tokio::select! {
                () = &mut closed => {}
                () = &mut *stop => return false,
            }
        }
    }

    /// Serves `app` on `stream` in a task of its own, counted until it closes.
    pub(crate) fn spawn(&self, stream: TcpStream, http: &http1::Builder, app: Router) {
        let conn = Arc::new(Conn { state: AtomicU8::new(IDLE), evict: Notify::new() });
        let id = {
            let mut open = self.open();
            let id = open.next_id;
            open.next_id += 1;
            open.conns.insert(id, Arc::clone(&conn));
            self.0.metrics.open.set(open.conns.len() as i64);
            id
        };
        let service = TowerToHyperService::new(app);
        let on_conn = Arc::clone(&conn);
        let guarded = hyper::service::service_fn(move |request: Request<Incoming>| {
            let started = on_conn.begin().then(|| Busy(Arc::clone(&on_conn)));
            let answer = started.is_some().then(|| hyper::service::Service::call(&service, request));
            async move {
                let Some(answer) = answer else { return Ok::<_, Infallible>(at_the_limit()) };
                let response = answer.await?;
                drop(started);
                Ok(response)
            }
        });
        let connection = http.serve_connection(TokioIo::new(stream), guarded);
        let mut phase = self.0.phase.subscribe();
        let connections = self.clone();
        tokio::spawn(async move {
            // Boxed, so that dropping it (which closes the socket) comes
            // before the connection is counted as closed.
            let mut connection = Box::pin(connection);
            let mut finishing = false;
            loop {
                let now = *phase.borrow_and_update();
                if now == Phase::Closing {
                    break;
                }
                if now == Phase::Finishing && !finishing {
                    finishing = true;
                    connection.as_mut().graceful_shutdown();
                }
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(e) = served {
                            tracing::debug!(cause = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = conn.evict.notified() => break,
                    changed = phase.changed() => if changed.is_err() { break },
                }
            }
            drop(connection);
            connections.remove(id);
        });
    }

    fn remove(&self, id: u64) {
        let mut open = self.open();
        open.conns.remove(&id);
        self.0.metrics.open.set(open.conns.len() as i64);
        drop(open);
        self.0.closed.notify_waiters();
    }

    /// Shutdown, first step: every connection finishes the request it is on,
    /// then closes; idle ones close now.
    pub(crate) fn finish(&self) {
        self.0.phase.send_replace(Phase::Finishing);
    }

    /// Shutdown, last step: every connection still open closes now.
    pub(crate) fn close(&self) {
        self.0.phase.send_replace(Phase::Closing);
    }

    /// Completes once no connection is open.
    pub(crate) async fn all_closed(&self) {
        loop {
            let closed = self.0.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.len() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// A request being handled on a connection; the connection is idle again
/// when it is dropped (answered, or cut off).
struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The answer to a request that arrived on a connection chosen to make room,
/// just before it closed: the handler never ran.
fn at_the_limit() -> Response<Body> {
    (StatusCode::SERVICE_UNAVAILABLE, [(header::CONNECTION, "close")], "too many connections; try again\n")
        .into_response()
}

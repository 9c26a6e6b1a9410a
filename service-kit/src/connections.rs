//! The open connections of a server: their bound and who gives way when it
//! is reached, and the one guard a request passes to reach its handler.
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
//!
//! Each connection has one state (an atomic): idle, busy (a handler runs),
//! evicted, drained. A request takes the connection from idle to busy
//! ([`Handling`], one compare-and-swap, and back when it is dropped), so the
//! same guard keeps its connection from being evicted and makes the
//! shutdown drain wait for it: the drain turns every idle connection to
//! drained at once (a request arriving on it is answered 503 without being
//! handled) and every busy one to "drained when its handler returns", and
//! completes when none is busy. A handler thus either runs to its answer or
//! never starts.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
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
use tokio::sync::Notify;

use crate::metrics::ConnectionMetrics;
use crate::shutdown::{Phase, PhaseReceiver};

/// How many connections the server has open now, read with one atomic load:
/// for a handler that may only do something while it is alone, as
/// pingpong's direct commit of a lone ping. Kept by the connection set
/// itself (the `*_http_connections_open` gauge is only its output); 0 when
/// nothing is served (a router driven by `oneshot`).
#[derive(Debug, Clone, Default)]
pub struct OpenConnections(Arc<AtomicUsize>);

impl OpenConnections {
    /// The connections open now.
    #[must_use]
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// No request is being handled on the connection.
const IDLE: u8 = 0;
/// A request's handler is running.
const BUSY: u8 = 1;
/// A handler is running and the drain waits for it: the connection is
/// drained when it returns.
const BUSY_DRAINING: u8 = 2;
/// Chosen to make room: it closes, and no request starts on it.
const EVICTED: u8 = 3;
/// Shutdown drained it: no request starts on it.
const DRAINED: u8 = 4;

#[derive(Debug)]
struct Conn {
    state: AtomicU8,
    evict: Notify,
    /// The server's, notified when a connection the drain waits for is
    /// drained.
    drained: Arc<Notify>,
}

impl Conn {
    /// A request starts: its guard, or why it may not.
    fn begin(self: &Arc<Self>) -> Result<Handling, Refused> {
        match self.state.compare_exchange(IDLE, BUSY, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(Handling(Arc::clone(self))),
            Err(EVICTED) => Err(Refused::AtTheLimit),
            // Drained (hyper serves one request at a time per connection,
            // so never busy here).
            Err(_) => Err(Refused::ShuttingDown),
        }
    }

    /// Chooses it to make room, if no request is being handled on it.
    fn try_evict(&self) -> bool {
        self.state.compare_exchange(IDLE, EVICTED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Lets no request start on it from now on: `true` if a handler is
    /// still running on it.
    fn drain(&self) -> bool {
        let now = self.state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| match state {
            IDLE => Some(DRAINED),
            BUSY => Some(BUSY_DRAINING),
            _ => None,
        });
        matches!(now, Ok(BUSY) | Err(BUSY_DRAINING))
    }
}

/// The one guard of a request being handled (see the module's comment); the
/// connection is idle again, or drained, when it is dropped: answered, or
/// cut off with its connection.
#[derive(Debug)]
struct Handling(Arc<Conn>);

impl Drop for Handling {
    fn drop(&mut self) {
        let conn = &self.0;
        if conn.state.compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // The drain marked it while the handler ran, and waits for it.
            conn.state.store(DRAINED, Ordering::Release);
            conn.drained.notify_waiters();
        }
    }
}

#[derive(Debug)]
struct Inner {
    max: usize,
    open: Mutex<Open>,
    /// The count of `open`, for handlers.
    count: OpenConnections,
    /// Notified whenever a connection closes.
    closed: Notify,
    /// Notified when a connection the drain waits for is drained.
    drained: Arc<Notify>,
    phase: PhaseReceiver,
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
    /// At most `max` open; `count` kept as they open and close; each
    /// connection follows `phase`.
    pub(crate) fn new(max: usize, count: OpenConnections, phase: PhaseReceiver, metrics: ConnectionMetrics) -> Self {
        Self(Arc::new(Inner {
            max: max.max(1),
            open: Mutex::default(),
            count,
            closed: Notify::new(),
            drained: Arc::default(),
            phase,
            metrics,
        }))
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

    /// A new connection, counted as open.
    fn insert(&self) -> (u64, Arc<Conn>) {
        let conn =
            Arc::new(Conn { state: AtomicU8::new(IDLE), evict: Notify::new(), drained: Arc::clone(&self.0.drained) });
        let mut open = self.open();
        let id = open.next_id;
        open.next_id += 1;
        open.conns.insert(id, Arc::clone(&conn));
        self.counted(&open);
        (id, conn)
    }

    fn remove(&self, id: u64) {
        let mut open = self.open();
        open.conns.remove(&id);
        self.counted(&open);
        drop(open);
        self.0.closed.notify_waiters();
    }

    /// The count and the gauge follow the set (under its lock, so exact).
    fn counted(&self, open: &Open) {
        self.0.count.0.store(open.conns.len(), Ordering::Relaxed);
        self.0.metrics.open.set(i64::try_from(open.conns.len()).unwrap_or(i64::MAX));
    }

    /// Serves `app` on `stream` in a task of its own, counted until it closes.
    pub(crate) fn spawn(&self, stream: TcpStream, http: &http1::Builder, app: Router) {
        let (id, conn) = self.insert();
        let service = TowerToHyperService::new(app);
        let on_conn = Arc::clone(&conn);
        let guarded = hyper::service::service_fn(move |request: Request<Incoming>| {
            let answer = on_conn.begin().map(|handling| (handling, hyper::service::Service::call(&service, request)));
            async move {
                match answer {
                    Ok((handling, answer)) => {
                        let response = answer.await;
                        drop(handling);
                        response
                    }
                    Err(refused) => Ok::<_, Infallible>(refused.response()),
                }
            }
        });
        let connection = http.serve_connection(TokioIo::new(stream), guarded);
        let mut phase = self.0.phase.clone();
        let connections = self.clone();
        tokio::spawn(async move {
            // Boxed, so that dropping it (which closes the socket) comes
            // before the connection is counted as closed.
            let mut connection = Box::pin(connection);
            let mut finishing = false;
            loop {
                let now = *phase.borrow_and_update();
                if now >= Phase::Closing {
                    break;
                }
                if now == Phase::Draining && !finishing {
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

    /// Shutdown's drain: from this call on no handler starts (a request
    /// that arrives is answered 503); the future completes once no handler
    /// is running.
    pub(crate) fn drain(&self) -> impl Future<Output = ()> + '_ {
        let mut running = self.drain_pass();
        async move {
            while running {
                let drained = self.0.drained.notified();
                tokio::pin!(drained);
                drained.as_mut().enable();
                running = self.drain_pass();
                if running {
                    drained.await;
                }
            }
        }
    }

    /// Marks every connection drained: `true` if a handler still runs.
    fn drain_pass(&self) -> bool {
        self.open().conns.values().fold(false, |running, conn| conn.drain() | running)
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

/// Why a request's handler did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// It arrived on a connection chosen to make room, just before it
    /// closed.
    AtTheLimit,
    /// It arrived after the drain began.
    ShuttingDown,
}

impl Refused {
    fn response(self) -> Response<Body> {
        match self {
            Self::AtTheLimit => {
                (StatusCode::SERVICE_UNAVAILABLE, [(header::CONNECTION, "close")], "too many connections; try again\n")
                    .into_response()
            }
            Self::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::watch;

    use super::*;

    fn connections() -> Connections {
        let (_, phase) = watch::channel(Phase::Serving);
        Connections::new(8, OpenConnections::default(), phase, ConnectionMetrics::default())
    }

    /// With paused time: the drain waits exactly as long as the handlers
    /// running, however long that is; from its start no handler starts.
    #[tokio::test(start_paused = true)]
    async fn the_drain_waits_for_every_handler_running_and_lets_none_start() {
        let connections = connections();
        let ((_, a), (_, b), (_, idle)) = (connections.insert(), connections.insert(), connections.insert());
        let (on_a, on_b) = (a.begin().unwrap(), b.begin().unwrap());
        let drained = tokio::spawn({
            let connections = connections.clone();
            async move { connections.drain().await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(idle.begin().is_err(), "an idle connection takes no request once the drain began");
        drop(on_a);
        assert!(a.begin().is_err(), "nor does one whose handler returned");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!drained.is_finished(), "one handler is still running");
        drop(on_b);
        drained.await.unwrap();
        assert_eq!(b.begin().unwrap_err(), Refused::ShuttingDown);
    }

    #[tokio::test]
    async fn a_drain_with_no_handler_running_completes_at_once() {
        let connections = connections();
        let (_, conn) = connections.insert();
        drop(conn.begin().unwrap());
        connections.drain().await;
        assert!(conn.begin().is_err());
    }

    #[test]
    fn a_busy_connection_is_never_evicted_and_an_evicted_one_takes_no_request() {
        let connections = connections();
        let ((_, busy), (_, idle)) = (connections.insert(), connections.insert());
        let handling = busy.begin().unwrap();
        assert!(!busy.try_evict(), "its handler runs to its answer");
        assert!(idle.try_evict());
        assert_eq!(idle.begin().unwrap_err(), Refused::AtTheLimit);
        drop(handling);
        assert!(busy.try_evict(), "answered, it may give way");
        assert_eq!(connections.0.count.get(), 2);
        connections.remove(0);
        assert_eq!(connections.0.count.get(), 1);
    }
}

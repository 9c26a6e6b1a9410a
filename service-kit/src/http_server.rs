//! The HTTP/1.1 server under every service: the accept loop, its bound on
//! connections (`connections.rs`), its timeouts, and graceful shutdown
//! as one sequence.
//!
//! `axum::serve` sets no header-read timeout, so a client that sends its
//! headers slowly (slowloris) would keep a connection, and graceful
//! shutdown, open for ever; here hyper's `header_read_timeout` closes such
//! connections, and the connection bound gives way to new clients first.
//!
//! Shutdown, in order (`serve`), each step a `Phase` every connection
//! reads:
//! 1. the signal (`Phase::Draining`): no handler starts from now on (a
//!    request that arrives is answered 503 without being handled), stop
//!    accepting (the listener is closed, so new connections are refused by
//!    the kernel), and every connection finishes the request it is on and
//!    then closes, idle ones at once;
//! 2. the drain: the handlers running run to their answer (at most
//!    [`SHUTDOWN_GRACE`]; `connections.rs`);
//! 3. the last answers get [`FLUSH`] to be written, then whatever is still
//!    open (a client halfway through its headers) is closed
//!    (`Phase::Closing`).
//!
//! The service's workers are stopped after this returns
//! ([`crate::Service::run_until_stopped`]).

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpStream};

use crate::connections::Connections;
use crate::shutdown::{Phase, PhaseSender};

/// How long a client may take to send a request's headers (also the idle
/// limit of a kept-alive connection between requests).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long shutdown waits for in-flight requests after the signal; well
/// inside Kubernetes' default 30 s grace period.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// After the last handler returned, the time its response has to be written
/// before the remaining connections are closed.
pub const FLUSH: Duration = Duration::from_millis(100);

/// The most connections open at once, unless a service says otherwise.
pub const MAX_CONNECTIONS: usize = 1024;

/// Serves `app` on `listener` until `shutdown` completes, then shuts down in
/// the order of the module's comment, telling each step through `phase`.
///
/// # Errors
/// Only if the listener's address cannot be read; accept errors (such as
/// running out of file descriptors) are logged and retried.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    connections: Connections,
    phase: &PhaseSender,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        if !connections.make_room(&mut shutdown).await {
            break;
        }
        let Some(stream) = accept_until(&listener, &mut shutdown).await else { break };
        connections.spawn(stream, &http, app.clone());
    }
    // 1. The signal. Handlers are stopped from starting before the listener
    // closes, so a client that sees its connection refused knows that.
    phase.send_replace(Phase::Draining);
    let drained = connections.drain();
    drop(listener);
    // 2. The drain.
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still in flight after the grace period; closing");
    }
    // 3. The last answers are written; what is left is closed.
    if tokio::time::timeout(FLUSH, connections.all_closed()).await.is_err() {
        tracing::info!(open = connections.len(), "closing the connections left (no request on them)");
    }
    phase.send_replace(Phase::Closing);
    connections.all_closed().await;
    Ok(())
}

/// The next connection, or `None` once `shutdown` completes.
async fn accept_until(listener: &TcpListener, shutdown: &mut (impl Future<Output = ()> + Unpin)) -> Option<TcpStream> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => return Some(stream),
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(cause = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut *shutdown => return None,
        }
    }
}

//! Serving an axum `Router` over HTTP/1.1 with the timeouts `axum::serve` lacks.
//!
//! `axum::serve` sets no header-read timeout, so a client that sends its
//! headers slowly (slowloris) keeps a connection, and graceful shutdown, open
//! for ever. Here hyper's `header_read_timeout` closes such connections, and
//! graceful shutdown waits at most [`SHUTDOWN_GRACE`] for in-flight requests.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// How long a client may take to send a request's headers (also the idle
/// limit of a kept-alive connection between requests).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long shutdown waits for in-flight requests after the signal; well
/// inside Kubernetes' default 30 s grace period.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Accepts connections until `shutdown` completes, then stops accepting,
/// lets in-flight requests finish (up to [`SHUTDOWN_GRACE`]) and returns.
///
/// # Errors
/// Only if the listener's address cannot be read; accept errors (such as
/// running out of file descriptors) are logged and retried.
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(cause = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let conn = builder.serve_connection(TokioIo::new(stream), service.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(cause = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; closing them"),
    }
    Ok(())
}

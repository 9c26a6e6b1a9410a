//! Serving an axum `Router` over HTTP/1.1 with the timeouts `axum::serve` lacks.
//!
//! `axum::serve` sets no header-read timeout, so a client that sends its
//! headers slowly (slowloris) keeps a connection, and graceful shutdown, open
//! for ever. Here hyper's `header_read_timeout` closes such connections. On
//! shutdown, hyper closes idle connections at once but waits for one whose
//! request head is half read; so shutdown also ends as soon as no request is
//! being handled (plus [`FLUSH`] for the last responses to be written), and in
//! any case after [`SHUTDOWN_GRACE`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};

use crate::drain::Drain;

/// How long a client may take to send a request's headers (also the idle
/// limit of a kept-alive connection between requests).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long shutdown waits for in-flight requests after the signal; well
/// inside Kubernetes' default 30 s grace period.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// After the last handler returned, the time its response has to be written
/// before the remaining (idle or stalled) connections are dropped. Requests
/// that start in this time are answered 503 without being handled.
pub const FLUSH: Duration = Duration::from_millis(100);

/// An HTTP/1.1 server on a bound listener: accepts connections until told to
/// stop, then drains ([`Server::serve`]).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    http: http1::Builder,
}

impl Server {
    /// A server on `listener` (bind port 0 and ask [`Server::local_addr`] for
    /// the port), with [`HEADER_READ_TIMEOUT`].
    #[must_use]
    pub fn new(listener: TcpListener) -> Self {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
        Self { listener, http }
    }

    /// Where it listens.
    ///
    /// # Errors
    /// The socket's address cannot be read.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `app` until `shutdown` completes, then stops accepting, lets
    /// in-flight requests finish (up to [`SHUTDOWN_GRACE`]) and returns.
    ///
    /// # Errors
    /// Only if the listener's address cannot be read; accept errors (such as
    /// running out of file descriptors) are logged and retried.
    pub async fn serve(self, app: Router, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
        tracing::info!(addr = %self.local_addr()?, "listening");
        let drain = Drain::default();
        let graceful = GracefulShutdown::new();
        let service = TowerToHyperService::new(drain.guard(app));
        tokio::pin!(shutdown);
        while let Some(stream) = self.accept_until(&mut shutdown).await {
            let conn = graceful.watch(self.http.serve_connection(TokioIo::new(stream), service.clone()));
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(cause = %e, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        close(graceful, drain).await;
        Ok(())
    }

    /// The next connection, or `None` once `shutdown` completes.
    async fn accept_until(&self, shutdown: &mut (impl Future<Output = ()> + Unpin)) -> Option<TcpStream> {
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
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
}

/// After the listener closed: ends when every connection has closed, or when
/// no request is being handled (plus [`FLUSH`]), or after [`SHUTDOWN_GRACE`].
async fn close(graceful: GracefulShutdown, drain: Drain) {
    let drained = async {
        drain.close_when_idle().await;
        tokio::time::sleep(FLUSH).await;
    };
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = drained => tracing::info!("no request in flight; closing the remaining connections"),
        () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; closing them"),
    }
}

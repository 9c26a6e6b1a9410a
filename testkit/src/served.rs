//! A [`service_kit::Service`] served in this process on `127.0.0.1:0`, as
//! `main` serves it, with its address as a value: for tests that need the
//! routes and the shutdown sequence but no process of their own.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The service being served; dropping it shuts the service down, as
/// [`Served::shut_down`] does, without waiting.
#[derive(Debug)]
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<std::io::Result<()>>,
}

impl Served {
    /// Serves `service` on `127.0.0.1:0` (call within a runtime).
    ///
    /// # Panics
    /// No port could be bound.
    pub async fn start(service: service_kit::Service) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port on 127.0.0.1");
        let addr = listener.local_addr().expect("a bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(service.run_until_stopped(listener, async {
            let _ = stopped.await;
        }));
        Self { addr, stop: Some(stop), served }
    }

    /// `http://127.0.0.1:PORT{path}`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What SIGTERM does in `main`: starts the graceful shutdown, without
    /// waiting for it (a second call does nothing).
    pub fn signal(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// [`Served::signal`], then waits until the service has ended.
    ///
    /// # Panics
    /// The service ended with an error, or its task panicked.
    pub async fn shut_down(mut self) {
        self.signal();
        self.served.await.expect("the service's task ended").expect("the service ended without an error");
    }
}

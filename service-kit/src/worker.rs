//! Background workers as parts of a service: started with it, watched by its
//! liveness, stopped and joined at shutdown.
//!
//! A worker holds an [`Alive`] token for as long as it runs. The token is
//! dropped when the worker ends, by returning or by a panic (unwinding drops
//! it too); if that happens before shutdown asked the worker to stop, the
//! worker has died: `/healthz` and `/readyz` answer 503 naming it, so
//! Kubernetes restarts the pod instead of leaving a service that refuses
//! every request while it looks alive.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

type StopFn = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// One worker as the service sees it.
#[derive(Debug)]
pub(crate) struct WorkerState {
    name: &'static str,
    ended: AtomicBool,
    stopping: AtomicBool,
}

/// Held by a worker while it runs; see the module's comment.
#[derive(Debug)]
pub struct Alive(Arc<WorkerState>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::SeqCst);
        if !self.0.stopping.load(Ordering::SeqCst) {
            tracing::error!(worker = self.0.name, "a worker ended before shutdown; liveness fails from now on");
        }
    }
}

/// Completes when shutdown asks a task worker to stop.
#[derive(Debug)]
pub struct Stop(oneshot::Receiver<()>);

impl Future for Stop {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Sent, or the sender dropped with the service: stop either way.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// What liveness and readiness read: the workers' states.
#[derive(Debug, Clone, Default)]
pub(crate) struct Health(Arc<Mutex<Vec<Arc<WorkerState>>>>);

impl Health {
    /// The first worker that has died, if any.
    pub(crate) fn dead(&self) -> Option<&'static str> {
        let states = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        states.iter().find(|s| s.ended.load(Ordering::SeqCst) && !s.stopping.load(Ordering::SeqCst)).map(|s| s.name)
    }
}

/// A service's workers: how to stop each, in the order they were started.
#[derive(Default)]
pub(crate) struct Workers {
    health: Health,
    stops: Vec<(Arc<WorkerState>, StopFn)>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").field("health", &self.health).finish_non_exhaustive()
    }
}

impl Workers {
    pub(crate) fn health(&self) -> Health {
        self.health.clone()
    }

    fn add(&mut self, name: &'static str) -> (Arc<WorkerState>, Alive) {
        let state = Arc::new(WorkerState { name, ended: AtomicBool::new(false), stopping: AtomicBool::new(false) });
        self.health.0.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::clone(&state));
        (Arc::clone(&state), Alive(state))
    }

    /// Runs `body` on a thread of its own, named `name`. At shutdown `stop`
    /// is called (it must make `body` return), then the thread is joined.
    pub(crate) fn spawn_thread(
        &mut self,
        name: &'static str,
        body: impl FnOnce() + Send + 'static,
        stop: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        let (state, alive) = self.add(name);
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || {
            let _alive = alive;
            body();
        })?;
        let stop: StopFn = Box::new(move || {
            Box::pin(async move {
                stop();
                let joined = tokio::task::spawn_blocking(move || thread.join()).await;
                if !matches!(joined, Ok(Ok(()))) {
                    tracing::error!(worker = name, "the worker's thread had panicked");
                }
            })
        });
        self.stops.push((state, stop));
        Ok(())
    }

    /// Runs `body` as a task on the runtime; it is given a [`Stop`] that
    /// completes at shutdown, after which it should finish what it is doing
    /// and return; shutdown waits for it.
    pub(crate) fn spawn_task<F>(&mut self, name: &'static str, body: impl FnOnce(Stop) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (state, alive) = self.add(name);
        let (tell, told) = oneshot::channel();
        let work = body(Stop(told));
        let task = tokio::spawn(async move {
            let _alive = alive;
            work.await;
        });
        let stop: StopFn = Box::new(move || {
            Box::pin(async move {
                let _ = tell.send(());
                if task.await.is_err() {
                    tracing::error!(worker = name, "the worker's task had panicked");
                }
            })
        });
        self.stops.push((state, stop));
    }

    /// Shutdown has begun: from now on a worker that ends has not died (the
    /// last handle to its work may go with the server, before it is asked).
    pub(crate) fn shutting_down(&self) -> impl FnOnce() + Send + 'static {
        let states: Vec<_> = self.stops.iter().map(|(state, _)| Arc::clone(state)).collect();
        move || {
            for state in states {
                state.stopping.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Asks every worker to stop and waits for each, in the order started.
    pub(crate) async fn stop_all(mut self) {
        self.shutting_down()();
        for (_, stop) in std::mem::take(&mut self.stops) {
            stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_that_ends_before_shutdown_is_dead_and_one_stopped_by_it_is_not() {
        let mut workers = Workers::default();
        let health = workers.health();
        let (release, released) = std::sync::mpsc::channel::<()>();
        workers
            .spawn_thread(
                "short-lived",
                move || {
                    let _ = released.recv();
                },
                || {},
            )
            .unwrap();
        workers.spawn_task("loop", |stop| stop);
        assert_eq!(health.dead(), None);
        release.send(()).unwrap();
        testkit_free_eventually(|| health.dead() == Some("short-lived")).await;
        let mut workers2 = Workers::default();
        let health2 = workers2.health();
        workers2.spawn_task("loop", |stop| stop);
        workers2.stop_all().await;
        assert_eq!(health2.dead(), None, "stopped by shutdown, not dead");
        drop(workers);
    }

    #[tokio::test]
    async fn a_panicking_task_is_dead() {
        let mut workers = Workers::default();
        let health = workers.health();
        workers.spawn_task("panics", |_stop| async { panic!("on purpose") });
        testkit_free_eventually(|| health.dead() == Some("panics")).await;
    }

    /// Polls `check` (without testkit, which depends on nothing of ours).
    async fn testkit_free_eventually(check: impl Fn() -> bool) {
        for _ in 0..500 {
            if check() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("timed out");
    }
}

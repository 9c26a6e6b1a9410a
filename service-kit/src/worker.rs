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

use crate::shutdown::{Phase, PhaseReceiver};

type StopFn = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// One worker as the service sees it.
#[derive(Debug)]
pub(crate) struct WorkerState {
    name: &'static str,
    ended: AtomicBool,
}

/// Held by a worker while it runs; see the module's comment.
#[derive(Debug)]
pub struct Alive {
    state: Arc<WorkerState>,
    phase: PhaseReceiver,
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.state.ended.store(true, Ordering::SeqCst);
        if *self.phase.borrow() == Phase::Serving {
            tracing::error!(worker = self.state.name, "a worker ended before shutdown; liveness fails from now on");
        }
    }
}

/// Completes when shutdown asks the task workers to stop (the phase reaches
/// `Stopping`, or the service is dropped).
pub struct Stop(Pin<Box<dyn Future<Output = ()> + Send>>);

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop").finish_non_exhaustive()
    }
}

impl Stop {
    fn new(mut phase: PhaseReceiver) -> Self {
        Self(Box::pin(async move {
            // Reached, or the sender dropped with the service: stop either way.
            let _ = phase.wait_for(|now| *now == Phase::Stopping).await;
        }))
    }
}

impl Future for Stop {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

/// What liveness and readiness read: the workers' states.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    states: Arc<Mutex<Vec<Arc<WorkerState>>>>,
    phase: PhaseReceiver,
}

impl Health {
    /// The first worker that has died (ended while serving), if any.
    pub(crate) fn dead(&self) -> Option<&'static str> {
        if *self.phase.borrow() != Phase::Serving {
            return None;
        }
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        states.iter().find(|s| s.ended.load(Ordering::SeqCst)).map(|s| s.name)
    }
}

/// A service's workers: how to stop each, in the order they were started.
pub(crate) struct Workers {
    health: Health,
    stops: Vec<StopFn>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").field("health", &self.health).finish_non_exhaustive()
    }
}

impl Workers {
    /// Workers that follow `phase`: a worker that ends before it leaves
    /// `Serving` has died; task workers stop when it reaches `Stopping`.
    pub(crate) fn new(phase: PhaseReceiver) -> Self {
        Self { health: Health { states: Arc::default(), phase }, stops: Vec::new() }
    }

    pub(crate) fn health(&self) -> Health {
        self.health.clone()
    }

    fn add(&mut self, name: &'static str) -> Alive {
        let state = Arc::new(WorkerState { name, ended: AtomicBool::new(false) });
        self.health.states.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::clone(&state));
        Alive { state, phase: self.health.phase.clone() }
    }

    /// Runs `body` on a thread of its own, named `name`. At shutdown `stop`
    /// is called (it must make `body` return), then the thread is joined.
    pub(crate) fn spawn_thread(
        &mut self,
        name: &'static str,
        body: impl FnOnce() + Send + 'static,
        stop: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        let alive = self.add(name);
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || {
            let _alive = alive;
            body();
        })?;
        self.stops.push(Box::new(move || {
            Box::pin(async move {
                stop();
                let joined = tokio::task::spawn_blocking(move || thread.join()).await;
                if !matches!(joined, Ok(Ok(()))) {
                    tracing::error!(worker = name, "the worker's thread had panicked");
                }
            })
        }));
        Ok(())
    }

    /// Runs `body` as a task on the runtime; it is given a [`Stop`] that
    /// completes at shutdown, after which it should finish what it is doing
    /// and return; shutdown waits for it.
    pub(crate) fn spawn_task<F>(&mut self, name: &'static str, body: impl FnOnce(Stop) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let alive = self.add(name);
        let work = body(Stop::new(self.health.phase.clone()));
        let task = tokio::spawn(async move {
            let _alive = alive;
            work.await;
        });
        self.stops.push(Box::new(move || {
            Box::pin(async move {
                if task.await.is_err() {
                    tracing::error!(worker = name, "the worker's task had panicked");
                }
            })
        }));
    }

    /// Once `phase` has reached `Stopping` (which tells the task workers):
    /// calls each thread worker's stop, and waits for every worker, in the
    /// order started.
    pub(crate) async fn stop_all(self) {
        debug_assert_eq!(*self.health.phase.borrow(), Phase::Stopping);
        for stop in self.stops {
            stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_that_ends_before_shutdown_is_dead_and_one_stopped_by_it_is_not() {
        let (phase, _) = tokio::sync::watch::channel(Phase::Serving);
        let mut workers = Workers::new(phase.subscribe());
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
        testkit::eventually("the worker to be dead", || async { (health.dead() == Some("short-lived")).then_some(()) })
            .await;
        let (phase2, _) = tokio::sync::watch::channel(Phase::Serving);
        let mut workers2 = Workers::new(phase2.subscribe());
        let health2 = workers2.health();
        workers2.spawn_task("loop", |stop| stop);
        phase2.send_replace(Phase::Stopping);
        workers2.stop_all().await;
        assert_eq!(health2.dead(), None, "stopped by shutdown, not dead");
        drop(workers);
    }

    #[tokio::test]
    async fn a_panicking_task_is_dead() {
        let (phase, _) = tokio::sync::watch::channel(Phase::Serving);
        let mut workers = Workers::new(phase.subscribe());
        let health = workers.health();
        workers.spawn_task("panics", |_stop| async { panic!("on purpose") });
        testkit::eventually("the task to be dead", || async { (health.dead() == Some("panics")).then_some(()) }).await;
    }
}

//! The one shutdown signal (SIGINT or SIGTERM), and the one place that knows
//! how far shutdown has gone (`Phase`).

use tokio::signal::unix::{SignalKind, signal};

/// Completes when the process receives SIGINT or SIGTERM: what every
/// `main` passes to [`crate::Service::run_until_stopped`], which then runs
/// the shutdown sequence (the server's drain, then the workers, the writer
/// loop among them).
pub async fn shutdown_signal() {
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        // Only possible when the runtime has no signal driver; then the default
        // dispositions (terminate) still apply, so waiting forever is right.
        tracing::error!("could not install the SIGINT/SIGTERM handlers");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    };
    tracing::info!(signal = name, "shutting down");
}

/// How far shutdown has gone, in order. One `watch` of it, sent by
/// [`crate::Service::run_until_stopped`] and the server it runs, is read by
/// every connection and worker (mini-redis's one broadcast): nothing else
/// holds a copy of the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Serving,
    /// The signal came: no connection is accepted and no handler starts;
    /// every connection finishes the request it is on, then closes.
    Draining,
    /// Every connection still open closes now.
    Closing,
    /// The server is gone: the workers are told to stop.
    Stopping,
}

/// The sending side of the phase.
pub(crate) type PhaseSender = tokio::sync::watch::Sender<Phase>;
/// A reader of the phase.
pub(crate) type PhaseReceiver = tokio::sync::watch::Receiver<Phase>;

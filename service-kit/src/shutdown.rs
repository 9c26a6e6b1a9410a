//! The one shutdown signal: SIGINT (Ctrl-C) or SIGTERM (Kubernetes, podman).

use tokio::signal::unix::{SignalKind, signal};

/// Completes when the process receives SIGINT or SIGTERM. Used by the HTTP
/// servers' graceful shutdown and by the writer loop.
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

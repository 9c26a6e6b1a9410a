//! pingpong's entry point: configuration, logging, listener, then the library.

use std::process::ExitCode;

use anyhow::Context;
use pingpong::Config;
use service_kit::shutdown::shutdown_signal;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::telemetry::init();
    service_kit::exit::exit_code("pingpong", start().await)
}

async fn start() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let service = pingpong::build(&config)?;
    let listener = TcpListener::bind(("0.0.0.0", config.port))
        .await
        .with_context(|| format!("cannot listen on port {}", config.port))?;
    service.run_until_stopped(listener, shutdown_signal()).await?;
    Ok(())
}

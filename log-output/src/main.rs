//! log-output's entry point: `log-output writer` or `log-output reader`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use counter::CounterFile;
use log_output::config::Command;
use log_output::log_file::{DEFAULT_MAX_BYTES, LogFile};
use log_output::metrics::WriterMetrics;
use log_output::{ReaderState, Writer};
use service_kit::shutdown::shutdown_signal;
use tokio::net::TcpListener;

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::telemetry::init();
    service_kit::startup::exit_code("log-output", start().await)
}

async fn start() -> anyhow::Result<()> {
    match Command::parse(std::env::args().skip(1))? {
        Command::Writer(config) => {
            let log = LogFile::new(&config.log_file, DEFAULT_MAX_BYTES);
            log.ensure_writable()?;
            let listener = TcpListener::bind(("0.0.0.0", config.metrics_port))
                .await
                .with_context(|| format!("cannot listen on METRICS_PORT {}", config.metrics_port))?;
            let (registry, metrics) =
                service_kit::metrics::registry("log_output_writer", VERSION, WriterMetrics::register);
            Writer::new(log, CounterFile::new(&config.counter_file), metrics)
                .run_serving_metrics(listener, Arc::new(registry), &config, shutdown_signal())
                .await?;
        }
        Command::Alive(config) => {
            log_output::heartbeat::check(&config.heartbeat, config.max_age).map_err(anyhow::Error::msg)?;
        }
        Command::Reader(config) => {
            let listener = TcpListener::bind(("0.0.0.0", config.port))
                .await
                .with_context(|| format!("cannot listen on port {}", config.port))?;
            let state = ReaderState::new(LogFile::new(&config.log_file, DEFAULT_MAX_BYTES), VERSION);
            log_output::run(listener, state, shutdown_signal()).await?;
        }
    }
    Ok(())
}

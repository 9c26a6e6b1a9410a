//! log-output's entry point: `log-output writer` or `log-output reader`.

use std::process::ExitCode;

use anyhow::Context;
use counter::CounterFile;
use log_output::config::Command;
use log_output::log_file::{DEFAULT_MAX_BYTES, LogFile};
use log_output::{ReaderState, Writer};
use service_kit::shutdown::shutdown_signal;
use tokio::net::TcpListener;

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
            Writer::new(log, CounterFile::new(&config.counter_file))
                .run_until_stopped(config.interval, config.heartbeat, shutdown_signal())
                .await;
        }
        Command::Alive(config) => {
            log_output::heartbeat::check(&config.heartbeat, config.max_age).map_err(anyhow::Error::msg)?;
        }
        Command::Reader(config) => {
            let listener = TcpListener::bind(("0.0.0.0", config.port))
                .await
                .with_context(|| format!("cannot listen on port {}", config.port))?;
            let state = ReaderState::new(LogFile::new(&config.log_file, DEFAULT_MAX_BYTES));
            log_output::run(listener, state, shutdown_signal()).await?;
        }
    }
    Ok(())
}

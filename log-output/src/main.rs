//! log-output's entry point: `log-output writer`, `log-output reader`,
//! `log-output alive` (the contract's exec probe of the writer's heartbeat
//! file; the manifests probe its `/healthz`), or `log-output backup`
//! and `log-output restore` (the file mode's backups, run by a CronJob and a
//! Job; each prints one line).

use std::process::ExitCode;

use anyhow::Context;
use log_output::backup;
use log_output::config::Command;
use service_kit::shutdown::shutdown_signal;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::telemetry::init();
    service_kit::exit::exit_code("log-output", start().await)
}

async fn start() -> anyhow::Result<()> {
    match Command::parse(std::env::args().skip(1))? {
        Command::Writer(config) => {
            // Bound first: the loop starts with the service.
            let listener = TcpListener::bind(("0.0.0.0", config.metrics_port))
                .await
                .with_context(|| format!("cannot listen on METRICS_PORT {}", config.metrics_port))?;
            log_output::writer::service(&config)?.run_until_stopped(listener, shutdown_signal()).await?;
        }
        Command::Reader(config) => {
            let listener = TcpListener::bind(("0.0.0.0", config.port))
                .await
                .with_context(|| format!("cannot listen on port {}", config.port))?;
            log_output::reader::from_config(&config).run_until_stopped(listener, shutdown_signal()).await?;
        }
        Command::Alive(config) => {
            log_output::heartbeat::check(&config.heartbeat, config.interval).map_err(anyhow::Error::msg)?;
        }
        Command::Backup(config) => {
            println!("{}", backup::take(&config.paths, config.keep, chrono::Utc::now())?);
        }
        Command::Restore(config) => {
            let restored = backup::restore(&config.paths, config.from.as_deref(), config.floor, chrono::Utc::now())?;
            println!("{restored}");
        }
    }
    Ok(())
}

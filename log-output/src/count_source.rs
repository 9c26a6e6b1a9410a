//! Where the writer gets the ping count: the counter file on the shared
//! volume (read exactly, under its lock, shared), or pingpong itself over
//! HTTP (`GET $PINGPONG_URL/pings`), when the two share no volume.

use std::time::Duration;

use counter::{CounterError, CounterFile};

/// How long a fetch from pingpong may take before the entry is skipped.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the count comes from.
#[derive(Debug, Clone)]
pub enum CountSource {
    /// The counter file (`COUNTER_FILE`).
    File(CounterFile),
    /// pingpong's `GET /pings` (`PINGPONG_URL`).
    Pingpong {
        /// `$PINGPONG_URL/pings`.
        url: String,
        /// One client for the writer's life (its connection is reused).
        client: reqwest::Client,
    },
}

/// Why there is no count this turn: the entry is skipped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CountError {
    /// The counter file is corrupt or unreadable.
    #[error(transparent)]
    File(#[from] CounterError),
    /// pingpong did not answer `/pings` with a count.
    #[error("pingpong at {url} gave no count: {reason}")]
    Pingpong {
        /// What was asked.
        url: String,
        /// What happened instead.
        reason: String,
    },
    /// The read's blocking task panicked (a bug).
    #[error("the counter file's read panicked")]
    Panicked,
}

impl CountSource {
    /// The counter file at `path`.
    #[must_use]
    pub fn file(path: &std::path::Path) -> Self {
        Self::File(CounterFile::new(path))
    }

    /// pingpong at `base` (`http://pingpong-svc:2345`): asks `base/pings`,
    /// giving up after [`FETCH_TIMEOUT`].
    ///
    /// # Errors
    /// The HTTP client cannot be made (no TLS or DNS backend: a bug).
    pub fn pingpong(base: &str) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build()?;
        Ok(Self::Pingpong { url: format!("{}/pings", base.trim_end_matches('/')), client })
    }

    /// Where it reads, for the log.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::File(file) => format!("counter file {}", file.path().display()),
            Self::Pingpong { url, .. } => format!("pingpong at {url}"),
        }
    }

    /// The count now.
    ///
    /// # Errors
    /// The file is corrupt or unreadable, or pingpong gave no count in time.
    pub async fn fetch(&self) -> Result<u64, CountError> {
        match self {
            Self::File(file) => {
                let file = file.clone();
                // The shared lock and the read block: not on the runtime's threads.
                Ok(tokio::task::spawn_blocking(move || file.read()).await.map_err(|_| CountError::Panicked)??)
            }
            Self::Pingpong { url, client } => {
                let fail = |reason: String| CountError::Pingpong { url: url.clone(), reason };
                let response = client.get(url).send().await.map_err(|e| fail(describe(&e)))?;
                let status = response.status();
                let body = response.text().await.map_err(|e| fail(describe(&e)))?;
                let body = body.trim();
                if !status.is_success() {
                    let first = body.lines().next().unwrap_or("");
                    return Err(fail(format!("{status}: {first}")));
                }
                body.parse().map_err(|_| fail(format!("the answer {body:?} is not a count")))
            }
        }
    }
}

/// reqwest's error with its causes (the bare error says only "error sending
/// request"): `connection refused`, `timed out`, `dns error: …`.
fn describe(error: &reqwest::Error) -> String {
    let text = if error.is_timeout() { format!("no answer within {FETCH_TIMEOUT:?}") } else { error.to_string() };
    service_kit::causes::with_causes(text, error)
}

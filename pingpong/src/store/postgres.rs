//! The count in PostgreSQL: one row of `pingpong_counter`, shared by every
//! pingpong replica on every node.
//!
//! One group commit is one autocommitted
//! `UPDATE pingpong_counter SET count = count + $1 WHERE id = 1 RETURNING count`
//! in a session with `synchronous_commit = on`. The row lock orders the
//! replicas' commits, and each batch's numbers come from the count the
//! database returns (`count - k` … `count - 1`), never from one computed
//! here, so no number is handed out twice across replicas. The answer is
//! durable when it arrives: the client returns only once the server has sent
//! `ReadyForQuery`, which follows the implicit transaction's commit, which
//! with `synchronous_commit = on` follows the WAL flush.
//!
//! The database may be away. pingpong starts anyway; the connection is made
//! and remade in the background ([`Store::maintain`]) with backoff, a line
//! logged when the state changes, not per try. While there is none, pings,
//! reads and readiness fail at once with `database unreachable: <reason>`
//! (the server's own reason for a wrong password or a missing database). A
//! statement that gets no answer within [`DEADLINE`] is given up, as is its
//! connection. A commit whose answer never came (the connection dropped,
//! the deadline passed, the session was ended) may have been applied: its
//! pings are refused, and its numbers, if they were used, are skipped,
//! since the next commit starts from whatever the row holds.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config, NoTls, Statement};

pub use self::settings::PgSettings;

use service_kit::causes::one_line;

use super::{Store, StoreError};

mod settings;

/// How long a statement (a commit, a read) may take before it is given up.
pub const DEADLINE: Duration = Duration::from_secs(2);
/// How long making a connection (TCP, authentication) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The first wait before trying again after a failed connection; it doubles
/// up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between tries: the database is back in use at most this
/// long after it is reachable again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

const CREATE: &str = "CREATE TABLE IF NOT EXISTS pingpong_counter (id integer PRIMARY KEY CHECK (id = 1), count bigint NOT NULL CHECK (count >= 0))";
const INSERT_ROW: &str = "INSERT INTO pingpong_counter (id, count) VALUES (1, 0) ON CONFLICT (id) DO NOTHING";
const UPDATE: &str = "UPDATE pingpong_counter SET count = count + $1 WHERE id = 1 RETURNING count";
/// The row is missing (someone deleted it): a missing row means 0.
const UPSERT: &str = "INSERT INTO pingpong_counter (id, count) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET count = pingpong_counter.count + EXCLUDED.count RETURNING count";
const SELECT: &str = "SELECT count FROM pingpong_counter WHERE id = 1";
/// Serialises the replicas' table creation (two concurrent `CREATE TABLE`s of
/// one name can fail on a catalog index): an arbitrary, fixed key.
const SCHEMA_LOCK: i64 = 0x7069_6e67_706f_6e67; // "pingpong"

/// Why the database could not count or read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DatabaseError {
    /// No connection: refused, timed out, wrong password, missing database.
    #[error("database unreachable: {0}")]
    Unreachable(String),
    /// The statement failed and nothing was counted (its transaction rolled back).
    #[error("database error: {0}")]
    Failed(String),
    /// The commit was sent but its answer never came: it may have been
    /// applied, so its numbers are skipped, never handed out again.
    #[error(
        "database commit outcome unknown: {0}; the pings were not counted as answered, and their numbers, if used, are skipped"
    )]
    OutcomeUnknown(String),
}

/// A live session, its statements prepared.
struct Session {
    client: Client,
    /// The task that drives the connection; it ends when the connection does.
    connection: JoinHandle<()>,
    update: Statement,
    upsert: Statement,
    select: Statement,
}

impl Drop for Session {
    /// A session given up (its statement timed out, say) closes its socket
    /// now, not when the kernel gives up on a peer that stopped answering.
    fn drop(&mut self) {
        self.connection.abort();
    }
}

enum State {
    Connected(Session),
    Connecting(JoinHandle<Result<Session, String>>),
    /// The next try, after a failed one.
    Waiting(tokio::time::Instant),
}

/// The count in PostgreSQL.
pub struct PgStore {
    settings: PgSettings,
    state: State,
    /// Why the database is unusable, while it is (for answers and for
    /// logging changes only).
    down: Option<String>,
    ever_connected: bool,
    backoff: Duration,
    last_commit: Duration,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("target", &self.settings.target()).field("down", &self.down).finish()
    }
}

impl PgStore {
    /// The store on `settings`. Connects in the background, on the commit
    /// worker's runtime; nothing is tried before [`Store::maintain`] first
    /// runs there.
    #[must_use]
    pub fn new(settings: PgSettings) -> Self {
        Self {
            settings,
            state: State::Waiting(tokio::time::Instant::now()),
            down: None,
            ever_connected: false,
            backoff: FIRST_BACKOFF,
            last_commit: Duration::ZERO,
        }
    }

    fn start_connecting(&mut self) {
        let config = self.settings.config.clone();
        let connect = async move {
            let session = tokio::time::timeout(CONNECT_TIMEOUT + DEADLINE, open(config)).await;
            session.unwrap_or_else(|_| Err(format!("no answer within {:?}", CONNECT_TIMEOUT + DEADLINE)))
        };
        self.state = State::Connecting(tokio::spawn(connect));
    }

    /// A connection attempt ended.
    fn connected(&mut self, result: Result<Session, String>) {
        match result {
            Ok(session) => {
                if self.down.take().is_some() || self.ever_connected {
                    tracing::info!(database = self.settings.target(), "database reachable again");
                } else {
                    tracing::info!(database = self.settings.target(), "connected to the database");
                }
                self.ever_connected = true;
                self.backoff = FIRST_BACKOFF;
                self.state = State::Connected(session);
            }
            Err(reason) => {
                self.went_down(reason, Duration::ZERO);
                self.state = State::Waiting(tokio::time::Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// The database became unusable (or its reason changed): logged then
    /// only. A live session is given up, and a new one tried after `pause`.
    fn went_down(&mut self, reason: String, pause: Duration) {
        if self.down.as_deref() != Some(reason.as_str()) {
            tracing::error!(
                database = self.settings.target(),
                cause = reason,
                "database unusable; reconnecting with backoff"
            );
        } else {
            tracing::debug!(cause = reason, "database still unusable");
        }
        self.down = Some(reason);
        if matches!(self.state, State::Connected(_)) {
            self.state = State::Waiting(tokio::time::Instant::now() + pause);
        }
    }

    /// The live session. A finished connection attempt is taken and a due
    /// one started here too, not only in [`Store::maintain`]: under load the
    /// commit worker may never be idle.
    async fn session(&mut self) -> Result<&Session, StoreError> {
        match &mut self.state {
            State::Connecting(attempt) if attempt.is_finished() => {
                let result = attempt.await.unwrap_or_else(|_| Err("the connection attempt panicked".into()));
                self.connected(result);
            }
            State::Waiting(at) if *at <= tokio::time::Instant::now() => self.start_connecting(),
            _ => {}
        }
        if !matches!(self.state, State::Connected(_)) {
            // Let the connection attempt (a task on this runtime) run: a
            // failing batch does not wait on anything else.
            tokio::task::yield_now().await;
        }
        match &self.state {
            State::Connected(session) => Ok(session),
            _ => Err(unreachable(self.down.as_deref().unwrap_or("not connected yet"))),
        }
    }

    /// A statement on the session failed: how to answer, and the session is
    /// given up unless the failure was the statement's alone.
    fn statement_failed(&mut self, error: &tokio_postgres::Error, commit: bool) -> StoreError {
        let reason = one_line(error);
        // An ERROR ends the statement and rolls its transaction back, before
        // any commit; FATAL and PANIC end the session, perhaps after it.
        let rolled_back = error.as_db_error().is_some_and(|db| db.severity() == "ERROR");
        // A lost session is made again at once; after a statement's own
        // error, a little later, so that one that persists (a revoked
        // privilege) does not turn every ping into a new connection.
        self.went_down(reason.clone(), if rolled_back { FIRST_BACKOFF } else { Duration::ZERO });
        if rolled_back {
            StoreError::Database(DatabaseError::Failed(reason))
        } else if commit {
            StoreError::Database(DatabaseError::OutcomeUnknown(reason))
        } else {
            unreachable(&reason)
        }
    }

    fn timed_out(&mut self, commit: bool) -> StoreError {
        let reason = format!("no answer within {DEADLINE:?}");
        self.went_down(reason.clone(), Duration::ZERO);
        if commit { StoreError::Database(DatabaseError::OutcomeUnknown(reason)) } else { unreachable(&reason) }
    }
}

fn unreachable(reason: &str) -> StoreError {
    StoreError::Database(DatabaseError::Unreachable(reason.to_owned()))
}

impl Store for PgStore {
    const NETWORK: bool = true;

    fn describe(&self) -> String {
        format!("PostgreSQL {}", self.settings.target())
    }

    async fn increment_by(&mut self, n: u64) -> Result<u64, StoreError> {
        let k = i64::try_from(n).map_err(|_| StoreError::Database(DatabaseError::Failed("batch too large".into())))?;
        let session = self.session().await?;
        let started = Instant::now();
        let mut answer = tokio::time::timeout(DEADLINE, session.client.query_opt(&session.update, &[&k])).await;
        if let Ok(Ok(None)) = answer {
            answer = tokio::time::timeout(DEADLINE, session.client.query_opt(&session.upsert, &[&k])).await;
        }
        match answer {
            Ok(Ok(Some(row))) => {
                self.last_commit = started.elapsed();
                let count: i64 = row.try_get(0).map_err(|e| self.statement_failed(&e, true))?;
                // count >= k, as the row's CHECK keeps it >= 0 before the add;
                // anything else is not a count to hand numbers out from.
                u64::try_from(count - k).map_err(|_| {
                    StoreError::Database(DatabaseError::OutcomeUnknown(format!("the row returned {count} for +{k}")))
                })
            }
            Ok(Ok(None)) => Err(StoreError::Database(DatabaseError::Failed("the counter row vanished".into()))),
            Ok(Err(e)) => Err(self.statement_failed(&e, true)),
            Err(_) => Err(self.timed_out(true)),
        }
    }

    async fn read(&mut self) -> Result<u64, StoreError> {
        let session = self.session().await?;
        match tokio::time::timeout(DEADLINE, session.client.query_opt(&session.select, &[])).await {
            Ok(Ok(None)) => Ok(0),
            Ok(Ok(Some(row))) => {
                let count: i64 = row.try_get(0).map_err(|e| self.statement_failed(&e, false))?;
                u64::try_from(count)
                    .map_err(|_| StoreError::Database(DatabaseError::Failed(format!("the row holds {count}"))))
            }
            Ok(Err(e)) => Err(self.statement_failed(&e, false)),
            Err(_) => Err(self.timed_out(false)),
        }
    }

    async fn check(&mut self) -> Result<(), StoreError> {
        self.read().await.map(drop)
    }

    fn last_commit(&self) -> Duration {
        self.last_commit
    }

    /// Connects, waits out the backoff, or watches the live connection: the
    /// server closing it (a restart, `pg_terminate_backend`) is noticed here,
    /// before the next ping meets it. Each arm awaits something that keeps
    /// its state when dropped (a task handle, a deadline), so being dropped
    /// for a batch loses nothing.
    async fn maintain(&mut self) {
        match &mut self.state {
            State::Waiting(at) => {
                tokio::time::sleep_until(*at).await;
                self.start_connecting();
            }
            State::Connecting(attempt) => {
                let result = attempt.await.unwrap_or_else(|_| Err("the connection attempt panicked".into()));
                self.connected(result);
            }
            State::Connected(session) => {
                let _ = (&mut session.connection).await;
                self.went_down("the server closed the connection".into(), Duration::ZERO);
            }
        }
    }
}

/// Connects, prepares the session, makes the table and its row if missing,
/// prepares the statements.
async fn open(config: Config) -> Result<Session, String> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| one_line(&e))?;
    let connection = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(cause = one_line(&e), "database connection ended");
        }
    });
    let prepared = async {
        let exists: Option<String> =
            client.query_one("SELECT to_regclass('pingpong_counter')::text", &[]).await?.try_get(0)?;
        if exists.is_none() {
            client
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {CREATE}; {INSERT_ROW}; COMMIT"
                ))
                .await?;
            tracing::info!("created the table pingpong_counter");
        } else {
            client.execute(INSERT_ROW, &[]).await?;
        }
        Ok::<_, tokio_postgres::Error>((
            client.prepare(UPDATE).await?,
            client.prepare(UPSERT).await?,
            client.prepare(SELECT).await?,
        ))
    };
    match prepared.await {
        Ok((update, upsert, select)) => Ok(Session { client, connection, update, upsert, select }),
        Err(e) => {
            connection.abort();
            Err(one_line(&e))
        }
    }
}

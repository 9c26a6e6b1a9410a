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
//! with `synchronous_commit = on` follows the WAL flush, and, with
//! synchronous replication, a standby's confirmation.
//!
//! A commit is answered only if PostgreSQL reported it as done. A commit
//! that came back with a WARNING (above all "canceling wait for synchronous
//! replication … might not have been replicated", when someone cancels the
//! wait for the standby) committed on this server only: its outcome after a
//! failover is unknown, so its pings are refused and its numbers skipped.
//! pingpong never cancels a commit itself.
//!
//! The database may be away. pingpong starts anyway; the connection is made
//! and remade in the background ([`Store::maintain`]) with backoff, each
//! host of the URL within a deadline of its own (`session.rs`), a line
//! logged when the state changes (naming the host actually connected), not
//! per try. While there is none, pings, reads and readiness fail at once
//! with the reason: `database unreachable`, or `database refuses writes`
//! (a standby, a read-only server).
//!
//! No statement outlives pingpong's deadline on the server: the session's
//! `lock_timeout` and `statement_timeout` end a statement that waits or runs
//! too long before pingpong gives up on it ([`DEADLINE`]), and a read given
//! up is cancelled. A commit that has no answer by the deadline (waiting for
//! a standby that is away, or a server that hangs) is not cancelled: its
//! pings are refused, and its session is kept, its commit awaited in the
//! background ("in doubt"). The next session asks the server whether it
//! still runs that backend: if so (the same server, still waiting), pings
//! are refused with what it waits for, rather than each sending a commit
//! that would wait behind it (one more backend per try, until the server
//! refuses connections); if not (a failover: another server), the commit in
//! doubt is given up and counting goes on. So pingpong holds at most two
//! sessions per process. The numbers of a commit in doubt, if it is applied
//! after all, are skipped: the next commit starts from whatever the row
//! holds.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use self::session::{NoSession, Session, refuses_writes};
pub use self::settings::PgSettings;

use service_kit::causes::one_line;

use super::{Committed, Store, StoreError};

mod session;
mod settings;

/// How long a statement (a commit, a read) may take before it is given up.
pub const DEADLINE: Duration = Duration::from_secs(2);
/// The session's `statement_timeout`: the server ends a statement that runs
/// this long, before pingpong's deadline.
const STATEMENT_TIMEOUT: Duration = Duration::from_millis(1500);
/// The session's `lock_timeout`: the server ends a statement that waits this
/// long for the row (an operator's open transaction holds it, say).
const LOCK_TIMEOUT: Duration = Duration::from_secs(1);
/// The first wait before trying again after a failed connection; it doubles
/// up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between tries: the database is back in use at most this
/// long (and a host's deadline) after it takes writes again.
pub const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// How long a host that hung is left out of the connection tries.
const HUNG_RETRY: Duration = Duration::from_secs(5);

/// Why the database could not count or read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DatabaseError {
    /// No connection: refused, timed out, wrong password, missing database.
    #[error("database unreachable: {0}")]
    Unreachable(String),
    /// The server takes no writes: a standby, a demoted primary, a
    /// read-only setting. Nothing was counted.
    #[error("database refuses writes: {0}")]
    ReadOnly(String),
    /// The statement failed and nothing was counted (its transaction rolled back).
    #[error("database error: {0}")]
    Failed(String),
    /// The commit was sent but not confirmed: its answer never came, or it
    /// came with a warning that it might not have reached a standby. It may
    /// have been applied, so its numbers are skipped, never handed out again.
    #[error(
        "database commit outcome unknown: {0}; the pings were not counted as answered, and their numbers, if used, are skipped"
    )]
    OutcomeUnknown(String),
    /// An earlier commit still waits on the server; another would wait
    /// behind it. Nothing was counted.
    #[error("database commit still waiting: {0}")]
    Waiting(String),
}

impl DatabaseError {
    /// The database could not be reached (refused, timed out, wrong password).
    pub const UNREACHABLE: &str = "database_unreachable";
    /// The database takes no writes (a standby, read-only); nothing was counted.
    pub const READ_ONLY: &str = "database_read_only";
    /// The database refused the statement; nothing was counted.
    pub const FAILED: &str = "database_error";
    /// An earlier commit still waits on the database (for a standby, say).
    pub const WAITING: &str = "database_waiting";
    /// The commit was sent but its answer lost; its numbers are skipped.
    pub const OUTCOME_UNKNOWN: &str = "outcome_unknown";

    /// Its `reason` label in `pingpong_pings_refused`.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => Self::UNREACHABLE,
            Self::ReadOnly(_) => Self::READ_ONLY,
            Self::Failed(_) => Self::FAILED,
            Self::Waiting(_) => Self::WAITING,
            Self::OutcomeUnknown(_) => Self::OUTCOME_UNKNOWN,
        }
    }
}

type Pending = Pin<Box<dyn Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send>>;

/// A commit given up at its deadline, still awaited: never cancelled.
struct InDoubt {
    session: Session,
    commit: Pending,
    since: Instant,
}

type Attempt = JoinHandle<(Result<Session, NoSession>, Vec<usize>)>;

enum State {
    Connected(Session),
    Connecting(Attempt),
    /// The next try, after a failed one.
    Waiting(tokio::time::Instant),
}

/// What [`Store::maintain`] waited for.
enum Event {
    Due,
    Attempted(Result<(Result<Session, NoSession>, Vec<usize>), tokio::task::JoinError>),
    Closed,
    DoubtEnded(Result<Option<Row>, tokio_postgres::Error>),
}

/// The count in PostgreSQL.
pub struct PgStore {
    settings: PgSettings,
    state: State,
    in_doubt: Option<InDoubt>,
    /// Why the database is unusable, while it is (for answers and for
    /// logging changes only).
    down: Option<DatabaseError>,
    ever_connected: bool,
    backoff: Duration,
    /// Hosts that gave no answer in time (or left a commit unanswered),
    /// and since when: left out of the tries for [`HUNG_RETRY`], so that
    /// their deadline is not spent on every try while another host is
    /// being promoted.
    hung: Vec<(usize, Instant)>,
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
            in_doubt: None,
            down: None,
            ever_connected: false,
            backoff: FIRST_BACKOFF,
            hung: Vec::new(),
        }
    }

    fn start_connecting(&mut self) {
        let settings = self.settings.clone();
        // The URL's order, hosts that hung lately left out (unless all did).
        self.hung.retain(|&(_, since)| since.elapsed() < HUNG_RETRY);
        let hung = |i: &usize| self.hung.iter().any(|(h, _)| h == i);
        let mut order: Vec<usize> = (0..settings.hosts.len()).filter(|i| !hung(i)).collect();
        if order.is_empty() {
            order = (0..settings.hosts.len()).collect();
        }
        self.state = State::Connecting(tokio::spawn(async move { session::connect(&settings, &order).await }));
    }

    /// A connection attempt ended.
    fn attempted(&mut self, result: Result<(Result<Session, NoSession>, Vec<usize>), tokio::task::JoinError>) {
        let (result, hung) = result
            .unwrap_or_else(|_| (Err(NoSession::Unreachable("the connection attempt panicked".into())), Vec::new()));
        for i in hung {
            self.hang(i);
        }
        match result {
            Ok(session) => {
                if self.down.take().is_some() || self.ever_connected {
                    tracing::info!(database = session.host, "database reachable again");
                } else {
                    tracing::info!(database = session.host, "connected to the database");
                }
                self.ever_connected = true;
                self.backoff = FIRST_BACKOFF;
                self.state = State::Connected(session);
            }
            Err(no) => {
                let error = match no {
                    NoSession::Unreachable(reason) => DatabaseError::Unreachable(reason),
                    NoSession::ReadOnly(reason) => DatabaseError::ReadOnly(reason),
                };
                self.went_down(&error);
                self.state = State::Waiting(tokio::time::Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// Host `i` gave no answer in time: left out of the tries for a while.
    fn hang(&mut self, i: usize) {
        self.hung.retain(|&(h, _)| h != i);
        self.hung.push((i, Instant::now()));
    }

    /// The database became unusable (or its reason changed): logged then
    /// only.
    fn went_down(&mut self, error: &DatabaseError) {
        let reason = error.to_string();
        if self.down.as_ref().map(ToString::to_string).as_deref() != Some(reason.as_str()) {
            tracing::error!(database = self.settings.target(), cause = reason, "database unusable");
        } else {
            tracing::debug!(cause = reason, "database still unusable");
        }
        self.down = Some(error.clone());
    }

    /// The session is given up; a new one is tried after `pause`.
    fn give_up_session(&mut self, pause: Duration) {
        if matches!(self.state, State::Connected(_)) {
            self.state = State::Waiting(tokio::time::Instant::now() + pause);
        }
    }

    /// The database answered as it should again.
    fn usable(&mut self) {
        if let Some(was) = self.down.take() {
            tracing::info!(database = self.host(), was = %was, "database usable again");
        }
    }

    fn host(&self) -> &str {
        match &self.state {
            State::Connected(session) => &session.host,
            _ => self.settings.target(),
        }
    }

    /// The live session. A finished connection attempt is taken and a due
    /// one started here too, not only in [`Store::maintain`]: under load the
    /// commit worker may never be idle.
    async fn session(&mut self) -> Result<&mut Session, StoreError> {
        match &mut self.state {
            State::Connecting(attempt) if attempt.is_finished() => {
                let result = attempt.await;
                self.attempted(result);
            }
            State::Waiting(at) if *at <= tokio::time::Instant::now() => self.start_connecting(),
            _ => {}
        }
        if !matches!(self.state, State::Connected(_)) {
            // Let the connection attempt (a task on this runtime) run: a
            // failing batch does not wait on anything else.
            tokio::task::yield_now().await;
        }
        match &mut self.state {
            State::Connected(session) => Ok(session),
            _ => Err(StoreError::Database(
                self.down.clone().unwrap_or_else(|| DatabaseError::Unreachable("not connected yet".into())),
            )),
        }
    }

    /// A session for a commit: none while a commit in doubt still waits on
    /// the server this session is on.
    async fn session_for_commit(&mut self) -> Result<(), StoreError> {
        self.session().await?;
        let Some(doubt) = &mut self.in_doubt else { return Ok(()) };
        if let Some(result) = ready_now(&mut doubt.commit) {
            self.doubt_ended(result);
            return Ok(());
        }
        let State::Connected(session) = &mut self.state else { return Ok(()) };
        let backend = doubt.session.backend.clone();
        match tokio::time::timeout(DEADLINE, session.backend_state(&backend)).await {
            Ok(Ok(Some(waiting))) => {
                let what = if waiting.ends_with("SyncRep") {
                    format!("{waiting}: no synchronous standby has confirmed it")
                } else {
                    waiting
                };
                let error = DatabaseError::Waiting(format!(
                    "a commit sent {:.1?} ago to {} has not ended ({what}); pings are refused until it does, rather than wait behind it",
                    doubt.since.elapsed(),
                    doubt.session.host
                ));
                self.went_down(&error);
                Err(StoreError::Database(error))
            }
            Ok(Ok(None)) => {
                tracing::warn!(
                    database = doubt.session.host,
                    "the commit in doubt is no longer on the server connected now (a failover, or its session ended): given up; its numbers, if used, are skipped"
                );
                self.in_doubt = None;
                Ok(())
            }
            Ok(Err(e)) => Err(self.statement_failed(&e, false)),
            Err(_) => Err(self.timed_out(false)),
        }
    }

    /// The commit in doubt has ended: logged; its pings were refused long
    /// ago, so its numbers, if it was applied, are skipped.
    fn doubt_ended(&mut self, result: Result<Option<Row>, tokio_postgres::Error>) {
        let Some(mut doubt) = self.in_doubt.take() else { return };
        let warnings = doubt.session.warnings();
        match (&result, warnings) {
            (Ok(_), None) => tracing::info!(
                database = doubt.session.host,
                after = ?doubt.since.elapsed(),
                "the commit in doubt was applied; its pings had been refused, its numbers are skipped"
            ),
            (Ok(_), Some(warnings)) => tracing::warn!(
                database = doubt.session.host,
                after = ?doubt.since.elapsed(),
                cause = warnings,
                "the commit in doubt ended with a warning; its pings had been refused, its numbers are skipped"
            ),
            (Err(e), _) => tracing::info!(
                database = doubt.session.host,
                after = ?doubt.since.elapsed(),
                cause = one_line(e),
                "the commit in doubt failed; its pings had been refused"
            ),
        }
        // A session on that server that works is kept, if there is none now.
        if result.is_ok() && !matches!(self.state, State::Connected(_)) {
            self.state = State::Connected(doubt.session);
        }
    }

    /// One commit of `k` on the session (with `floor`: counting on from at
    /// least there): the count after it, once the server has confirmed it.
    async fn commit(&mut self, k: i64, floor: Option<i64>) -> Result<i64, StoreError> {
        let State::Connected(session) = &mut self.state else {
            return Err(StoreError::Database(DatabaseError::Unreachable("not connected".into())));
        };
        session.clear_notices();
        let client = Arc::clone(&session.client);
        let (update, upsert, raise) = (session.update.clone(), session.upsert.clone(), session.raise.clone());
        // Owned, so that at the deadline it can be kept and awaited.
        let mut pending: Pending = Box::pin(async move {
            if let Some(floor) = floor {
                return client.query_opt(&raise, &[&k, &floor]).await;
            }
            match client.query_opt(&update, &[&k]).await? {
                Some(row) => Ok(Some(row)),
                None => client.query_opt(&upsert, &[&k]).await,
            }
        });
        let started = Instant::now();
        match tokio::time::timeout(DEADLINE, &mut pending).await {
            Ok(Ok(Some(row))) => {
                let State::Connected(session) = &mut self.state else { unreachable!("the session is the one used") };
                if let Some(warnings) = session.warnings() {
                    let reason = format!("the server confirmed it with a warning: {warnings}");
                    tracing::error!(
                        database = session.host,
                        cause = reason,
                        "database commit not confirmed as durable; its pings are refused, their numbers skipped"
                    );
                    return Err(StoreError::Database(DatabaseError::OutcomeUnknown(reason)));
                }
                let count: i64 = row.try_get(0).map_err(|e| self.statement_failed(&e, true))?;
                self.usable();
                Ok(count)
            }
            Ok(Ok(None)) => Err(StoreError::Database(DatabaseError::Failed("the counter row vanished".into()))),
            Ok(Err(e)) => Err(self.statement_failed(&e, true)),
            Err(_) => {
                let reason = format!("no answer within {DEADLINE:?}");
                let error = DatabaseError::OutcomeUnknown(reason);
                self.went_down(&error);
                let waiting = std::mem::replace(&mut self.state, State::Waiting(tokio::time::Instant::now()));
                if let State::Connected(session) = waiting {
                    // Its host may hang: the next try leaves it out.
                    if let Some(i) = self.settings.hosts.iter().position(|h| h.name == session.host) {
                        self.hang(i);
                    }
                    tracing::warn!(
                        database = session.host,
                        "database commit unanswered at the deadline: awaited on its session, never cancelled; a new session is tried"
                    );
                    // One in doubt at most: an older one is given up now
                    // (its server was left for this one, after a failover).
                    self.in_doubt = Some(InDoubt { session, commit: pending, since: started });
                }
                Err(StoreError::Database(error))
            }
        }
    }

    /// A statement on the session failed: how to answer. The session is
    /// kept after the statement's own error (it rolled back: a lock or
    /// statement timeout, a constraint), except when the server takes no
    /// writes; a lost session is made again at once.
    fn statement_failed(&mut self, error: &tokio_postgres::Error, commit: bool) -> StoreError {
        let reason = one_line(error);
        // An ERROR ends the statement and rolls its transaction back, before
        // any commit; FATAL and PANIC end the session, perhaps after it.
        let rolled_back = error.as_db_error().is_some_and(|db| db.severity() == "ERROR");
        let failure = if error.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
            self.give_up_session(FIRST_BACKOFF);
            DatabaseError::ReadOnly(reason)
        } else if rolled_back {
            DatabaseError::Failed(reason)
        } else {
            self.give_up_session(Duration::ZERO);
            if commit { DatabaseError::OutcomeUnknown(reason) } else { DatabaseError::Unreachable(reason) }
        };
        self.went_down(&failure);
        StoreError::Database(failure)
    }

    /// A read or check had no answer by the deadline: it is cancelled (the
    /// server may still be working on it), and the session given up.
    fn timed_out(&mut self, commit: bool) -> StoreError {
        if let State::Connected(session) = &self.state {
            let token = session.client.cancel_token();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(session::HOST_DEADLINE, token.cancel_query(tokio_postgres::NoTls)).await;
            });
        }
        let reason = format!("no answer within {DEADLINE:?}");
        let error = if commit { DatabaseError::OutcomeUnknown(reason) } else { DatabaseError::Unreachable(reason) };
        self.went_down(&error);
        self.give_up_session(Duration::ZERO);
        StoreError::Database(error)
    }

    /// Runs a read-only statement on the session within the deadline.
    async fn query(&mut self, check: bool) -> Result<Row, StoreError> {
        let session = self.session().await?;
        let statement = if check { session.check.clone() } else { session.select.clone() };
        let client = Arc::clone(&session.client);
        let query = async move {
            match client.query_opt(&statement, &[]).await? {
                Some(row) => Ok(row),
                // No row: the SELECT of a missing row (0).
                None => client.query_one("SELECT NULL::bigint", &[]).await,
            }
        };
        match tokio::time::timeout(DEADLINE, query).await {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(e)) => Err(self.statement_failed(&e, false)),
            Err(_) => Err(self.timed_out(false)),
        }
    }
}

/// The future's output if it is ready now, without waiting.
fn ready_now(pending: &mut Pending) -> Option<Result<Option<Row>, tokio_postgres::Error>> {
    match pending.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

fn count_of(row: &Row) -> Result<u64, StoreError> {
    let count: Option<i64> = row.try_get(0).map_err(|e| StoreError::Database(DatabaseError::Failed(one_line(&e))))?;
    let count = count.unwrap_or(0);
    u64::try_from(count).map_err(|_| StoreError::Database(DatabaseError::Failed(format!("the row holds {count}"))))
}

impl Store for PgStore {
    const NETWORK: bool = true;

    fn describe(&self) -> String {
        format!("PostgreSQL {}", self.settings.target())
    }

    async fn increment_by(&mut self, n: u64, floor: u64) -> Result<Committed, StoreError> {
        let too_large = || StoreError::Database(DatabaseError::Failed("batch or floor too large".into()));
        let k = i64::try_from(n).map_err(|_| too_large())?;
        self.session_for_commit().await?;
        let started = Instant::now();
        let count = self.commit(k, None).await?;
        // count >= k, as the row's CHECK keeps it >= 0 before the add;
        // anything else is not a count to hand numbers out from.
        let before = u64::try_from(count - k).map_err(|_| {
            StoreError::Database(DatabaseError::OutcomeUnknown(format!("the row returned {count} for +{k}")))
        })?;
        if before >= floor {
            return Ok(Committed { first: before, found: before, flush: started.elapsed() });
        }
        // The count went back below numbers this process answered: this
        // commit's numbers may repeat them, so they are skipped, and the
        // pings are counted again from the floor.
        let count = self.commit(k, Some(i64::try_from(floor).map_err(|_| too_large())?)).await?;
        let first = u64::try_from(count - k).map_err(|_| too_large())?;
        Ok(Committed { first, found: before, flush: started.elapsed() })
    }

    async fn read(&mut self) -> Result<u64, StoreError> {
        let row = self.query(false).await?;
        count_of(&row)
    }

    /// What a ping would meet: a session, no commit in doubt waiting on its
    /// server, the row readable, and a server that takes writes.
    async fn check(&mut self) -> Result<(), StoreError> {
        self.session_for_commit().await?;
        let row = self.query(true).await?;
        count_of(&row)?;
        let writable = row.try_get::<_, bool>(1).and_then(|recovery| Ok((recovery, row.try_get::<_, String>(2)?)));
        if let Ok((recovery, read_only)) = writable
            && let Some(reason) = refuses_writes(recovery, &read_only)
        {
            let error = DatabaseError::ReadOnly(reason);
            self.went_down(&error);
            self.give_up_session(FIRST_BACKOFF);
            return Err(StoreError::Database(error));
        }
        self.usable();
        Ok(())
    }

    /// Connects, waits out the backoff, watches the live connection (the
    /// server closing it, a restart or `pg_terminate_backend`, is noticed
    /// here, before the next ping meets it), and awaits a commit in doubt.
    /// Each awaits something that keeps its state when dropped (a task
    /// handle, a deadline, a boxed future), so being dropped for a batch
    /// loses nothing.
    async fn maintain(&mut self) {
        let doubt = async {
            match &mut self.in_doubt {
                Some(doubt) => (&mut doubt.commit).await,
                None => std::future::pending().await,
            }
        };
        let state = async {
            match &mut self.state {
                State::Waiting(at) => {
                    tokio::time::sleep_until(*at).await;
                    Event::Due
                }
                State::Connecting(attempt) => Event::Attempted(attempt.await),
                State::Connected(session) => {
                    let _ = (&mut session.connection).await;
                    Event::Closed
                }
            }
        };
        let event = tokio::select! {
            result = doubt => Event::DoubtEnded(result),
            event = state => event,
        };
        match event {
            Event::Due => self.start_connecting(),
            Event::Attempted(result) => self.attempted(result),
            Event::Closed => {
                self.went_down(&DatabaseError::Unreachable("the server closed the connection".into()));
                self.give_up_session(Duration::ZERO);
            }
            Event::DoubtEnded(result) => self.doubt_ended(result),
        }
    }
}

//! One session with the database: made host by host, each within a deadline
//! of its own; the server's notices read as they come (a commit's warning
//! that its wait for a standby was cancelled arrives as one); the
//! statements prepared; the backend named, so that another session can find
//! it in `pg_stat_activity`.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::{AsyncMessage, Client, NoTls, Statement};

use service_kit::causes::one_line;

use super::settings::{HostConfig, PgSettings};

/// How long one host may take to become a session: TCP, startup,
/// authentication, the checks and the prepared statements. A host that
/// accepts and then answers nothing (a frozen server whose kernel still
/// answers TCP) costs this much, and the next host is tried.
pub const HOST_DEADLINE: Duration = Duration::from_secs(1);

const CREATE: &str = "CREATE TABLE IF NOT EXISTS pingpong_counter (id integer PRIMARY KEY CHECK (id = 1), count bigint NOT NULL CHECK (count >= 0))";
const INSERT_ROW: &str = "INSERT INTO pingpong_counter (id, count) VALUES (1, 0) ON CONFLICT (id) DO NOTHING";
const UPDATE: &str = "UPDATE pingpong_counter SET count = count + $1 WHERE id = 1 RETURNING count";
/// The row is missing (someone deleted it): a missing row means 0.
const UPSERT: &str = "INSERT INTO pingpong_counter (id, count) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET count = pingpong_counter.count + EXCLUDED.count RETURNING count";
/// Counting on from a floor: the count went back below numbers answered.
const RAISE: &str = "INSERT INTO pingpong_counter (id, count) VALUES (1, $2::bigint + $1::bigint) ON CONFLICT (id) DO UPDATE SET count = GREATEST(pingpong_counter.count, $2::bigint) + $1::bigint RETURNING count";
const SELECT: &str = "SELECT count FROM pingpong_counter WHERE id = 1";
/// Readiness: the count, and whether this server takes writes now.
const CHECK: &str = "SELECT (SELECT count FROM pingpong_counter WHERE id = 1), pg_is_in_recovery(), current_setting('transaction_read_only')";
/// Another session's backend, if this server runs it: what it waits for.
const BACKEND: &str = "SELECT coalesce(wait_event_type || ': ' || wait_event, state, '') FROM pg_stat_activity WHERE pid = $1 AND backend_start::text = $2";
/// Serialises the replicas' table creation (two concurrent `CREATE TABLE`s of
/// one name can fail on a catalog index): an arbitrary, fixed key.
const SCHEMA_LOCK: i64 = 0x7069_6e67_706f_6e67; // "pingpong"

/// Why a session could not be had.
#[derive(Debug, Clone)]
pub(super) enum NoSession {
    /// Nothing usable answered: refused, timed out, wrong password.
    Unreachable(String),
    /// Every host that answered refuses writes (a standby, a demoted
    /// primary, `default_transaction_read_only`).
    ReadOnly(String),
}

/// A live session, its statements prepared.
pub(super) struct Session {
    pub(super) client: Arc<Client>,
    /// The task that drives the connection; it ends when the connection does.
    pub(super) connection: JoinHandle<()>,
    notices: UnboundedReceiver<DbError>,
    pub(super) update: Statement,
    pub(super) upsert: Statement,
    pub(super) raise: Statement,
    pub(super) select: Statement,
    pub(super) check: Statement,
    backend_query: Statement,
    /// `USER@HOST:PORT/DB` of the host it is connected to.
    pub(super) host: String,
    /// Its backend on the server: process id and start time, together a
    /// name no other backend of that server has had.
    pub(super) backend: (i32, String),
}

impl Drop for Session {
    /// A session given up closes its socket now, not when the kernel gives
    /// up on a peer that stopped answering.
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Session {
    /// Forgets the notices received so far (before a commit, so that what
    /// it reads after are the commit's own).
    pub(super) fn clear_notices(&mut self) {
        while self.notices.try_recv().is_ok() {}
    }

    /// The warnings received since [`Session::clear_notices`], on one line;
    /// `None` if there were none. The server sends them before the end of
    /// the statement they belong to, and the connection task passes them on
    /// as it reads them, so a statement's are here once it has returned.
    pub(super) fn warnings(&mut self) -> Option<String> {
        let mut warnings = Vec::new();
        while let Ok(notice) = self.notices.try_recv() {
            // The severity as sent, not translated (lc_messages).
            if matches!(notice.parsed_severity(), Some(tokio_postgres::error::Severity::Warning)) {
                let detail = notice.detail().map(|d| format!(" ({d})")).unwrap_or_default();
                warnings.push(format!("{}{detail}", notice.message()));
            } else {
                tracing::debug!(notice = notice.message(), "database notice");
            }
        }
        (!warnings.is_empty()).then(|| warnings.join("; "))
    }

    /// What the backend `(pid, start)` of this server waits for, if this
    /// server runs it; `None` if it does not (it ended, or it was another
    /// server's).
    pub(super) async fn backend_state(&self, backend: &(i32, String)) -> Result<Option<String>, tokio_postgres::Error> {
        let row = self.client.query_opt(&self.backend_query, &[&backend.0, &backend.1]).await?;
        row.map(|row| row.try_get(0)).transpose()
    }
}

/// Tries each host of `settings` in `order`, each within [`HOST_DEADLINE`];
/// the first usable one is the session. Also says which hosts gave no
/// answer in time, for the caller to try them last next time.
pub(super) async fn connect(settings: &PgSettings, order: &[usize]) -> (Result<Session, NoSession>, Vec<usize>) {
    let mut reasons = Vec::new();
    let mut hung = Vec::new();
    let mut read_only = true;
    for &i in order {
        let host = &settings.hosts[i];
        match tokio::time::timeout(HOST_DEADLINE, open(host)).await {
            Ok(Ok(session)) => return (Ok(session), hung),
            Ok(Err(NoSession::ReadOnly(reason))) => reasons.push((host, reason)),
            Ok(Err(NoSession::Unreachable(reason))) => {
                read_only = false;
                reasons.push((host, reason));
            }
            Err(_) => {
                read_only = false;
                hung.push(i);
                reasons.push((host, format!("no answer within {HOST_DEADLINE:?}")));
            }
        }
    }
    let reason = match reasons.as_slice() {
        [(_, reason)] => reason.clone(),
        _ => reasons.iter().map(|(host, reason)| format!("{}: {reason}", host.name)).collect::<Vec<_>>().join("; "),
    };
    (Err(if read_only { NoSession::ReadOnly(reason) } else { NoSession::Unreachable(reason) }), hung)
}

/// Connects to one host, checks that it takes writes (pingpong only writes:
/// with or without `target_session_attrs=read-write`, a host that does not
/// is passed over), makes the table and its row if missing, prepares the
/// statements.
async fn open(host: &HostConfig) -> Result<Session, NoSession> {
    let unreachable = |e: tokio_postgres::Error| NoSession::Unreachable(one_line(&e));
    let (client, connection) = host.config.connect(NoTls).await.map_err(unreachable)?;
    let (notices_in, notices) = unbounded_channel();
    let connection = tokio::spawn(drive(connection, notices_in));
    let prepared = async {
        let row = client
            .query_one("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')", &[])
            .await
            .map_err(unreachable)?;
        let (recovery, read_only): (bool, String) =
            (row.try_get(0).map_err(unreachable)?, row.try_get(1).map_err(unreachable)?);
        if let Some(reason) = refuses_writes(recovery, &read_only) {
            return Err(NoSession::ReadOnly(reason));
        }
        let schema = async {
            let exists: Option<String> =
                client.query_one("SELECT to_regclass('pingpong_counter')::text", &[]).await?.try_get(0)?;
            if exists.is_none() {
                client
                    .batch_execute(&format!(
                        "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {CREATE}; {INSERT_ROW}; COMMIT"
                    ))
                    .await?;
                tracing::info!("created the table pingpong_counter");
            }
            let backend = client
                .query_one("SELECT pid, backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()", &[])
                .await?;
            Ok::<_, tokio_postgres::Error>((
                [
                    client.prepare(UPDATE).await?,
                    client.prepare(UPSERT).await?,
                    client.prepare(RAISE).await?,
                    client.prepare(SELECT).await?,
                    client.prepare(CHECK).await?,
                    client.prepare(BACKEND).await?,
                ],
                (backend.try_get(0)?, backend.try_get(1)?),
            ))
        };
        // A read-only server found only now (no target_session_attrs):
        // making the table fails with read_only_sql_transaction.
        schema.await.map_err(|e| match e.code() {
            Some(&SqlState::READ_ONLY_SQL_TRANSACTION) => NoSession::ReadOnly(one_line(&e)),
            _ => unreachable(e),
        })
    };
    match prepared.await {
        Ok(([update, upsert, raise, select, check, backend_query], backend)) => Ok(Session {
            client: Arc::new(client),
            connection,
            notices,
            update,
            upsert,
            raise,
            select,
            check,
            backend_query,
            host: host.name.clone(),
            backend,
        }),
        Err(e) => {
            connection.abort();
            Err(e)
        }
    }
}

/// Why a server with these settings refuses writes, if it does.
pub(super) fn refuses_writes(in_recovery: bool, transaction_read_only: &str) -> Option<String> {
    if in_recovery {
        Some("the server is a standby (in recovery): it takes no writes".into())
    } else if transaction_read_only == "on" {
        Some("the server is read-only (transaction_read_only is on: default_transaction_read_only, or a primary being demoted)".into())
    } else {
        None
    }
}

/// Drives the connection, passing the server's notices on as they come.
async fn drive(
    mut connection: tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    notices: UnboundedSender<DbError>,
) {
    loop {
        match poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notice(notice))) => {
                let _ = notices.send(notice);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::debug!(cause = one_line(&e), "database connection ended");
                return;
            }
            None => return,
        }
    }
}

//! The PostgreSQL side of the engine layer: one client per
//! [`super::Conn`], its prepared statements, the advisory locks that stand
//! in for SQLite's write lock, reconnecting after a lost connection, and
//! the PostgreSQL twin of every migration. Only `db` uses it; it runs no
//! query on behalf of a table module.
//!
//! The client is `tokio_postgres` (the async core of sfackler's
//! `postgres` crate) driven by a current-thread runtime of the
//! connection's own, which is all the synchronous `postgres` crate does,
//! plus a deadline on every call: a database host that stops answering
//! without closing the connection (a stopped server process, whose kernel
//! still acknowledges) would otherwise hold a worker forever.
//!
//! A connection that fails at the connection level (closed, reset, the
//! server shutting down, no answer by the deadline) is dropped; the next
//! call outside a transaction connects again, so a worker comes back by
//! itself when the database does. A transaction that loses its connection
//! fails as a whole: nothing acknowledged was in it.
//!
//! The URL's password (or `PGPASSWORD`) is used to connect and never
//! appears in an error: errors name the host, port and database.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

use super::pg_tls::{self, Tls};
use super::{Behavior, Conn, Error, Result, Value};

/// The advisory lock every IMMEDIATE transaction takes first: PostgreSQL's
/// stand-in for SQLite's single write lock (an arbitrary fixed key, "sesswrit"
/// in ASCII).
pub(super) const WRITE_LOCK: i64 = 0x7365_7373_7772_6974;

/// The advisory lock held while migrating, so that servers starting at
/// once on an empty database migrate one after the other.
const MIGRATION_LOCK: i64 = 0x7365_7373_6d69_6772;

/// How long connecting (the socket, the start-up and authentication) may
/// take before the call fails (and the request gets 503).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a statement may run on the server, waits for the write lock
/// included: as long as a SQLite writer waits for the lock
/// ([`super::BUSY_TIMEOUT`]).
const STATEMENT_TIMEOUT_MS: u128 = super::BUSY_TIMEOUT.as_millis();

/// How long a call waits for the server's answer before it gives the
/// connection up: the statement timeout and a little more, so that the
/// server's own timeout (an error, the connection kept) comes first when
/// the server is alive.
const ANSWER_DEADLINE: Duration = Duration::from_secs(12);

/// Unacknowledged data older than this closes the connection (a database
/// host gone from the network).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// The most prepared statements kept per connection; the program has fewer
/// SQL texts than this, so the map is only ever emptied by a reconnect.
const STATEMENTS_KEPT: usize = 256;

pub(super) struct PgConn {
    config: tokio_postgres::Config,
    tls: Tls,
    /// `--db` as given, for [`super::durable_writes`] (never printed).
    url: String,
    /// "the PostgreSQL database `D` on `H:P`", for errors.
    place: String,
    state: RefCell<State>,
    in_transaction: Cell<bool>,
}

struct State {
    session: Option<Session>,
    statements: HashMap<String, tokio_postgres::Statement>,
}

/// One connection: the client, and the runtime that drives its socket
/// (only while a call runs).
struct Session {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

/// Why a call failed: the server's or driver's error, or no answer in time.
enum CallError {
    Db(tokio_postgres::Error),
    NoAnswer,
}

impl From<tokio_postgres::Error> for CallError {
    fn from(error: tokio_postgres::Error) -> CallError {
        CallError::Db(error)
    }
}

impl Session {
    fn connect(config: &tokio_postgres::Config, tls: &Tls) -> std::result::Result<Session, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start its client: {error}"))?;
        // The timer is made inside the runtime, which it needs.
        let connecting = runtime.block_on(async {
            tokio::time::timeout(CONNECT_TIMEOUT, connect_and_drive(config, tls)).await
        });
        match connecting {
            Ok(Ok(client)) => Ok(Session { runtime, client }),
            Ok(Err(error)) => Err(error_text(&error)),
            Err(_) => Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
        }
    }

    /// Runs one call to the server, waiting at most [`ANSWER_DEADLINE`].
    fn call<'a, T>(
        &'a mut self,
        call: impl FnOnce(
            &'a tokio_postgres::Client,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>
                    + 'a,
            >,
        >,
    ) -> std::result::Result<T, CallError> {
        let future = call(&self.client);
        let answer =
            self.runtime.block_on(async { tokio::time::timeout(ANSWER_DEADLINE, future).await });
        match answer {
            Ok(result) => Ok(result?),
            Err(_) => Err(CallError::NoAnswer),
        }
    }

    fn prepared(
        &mut self,
        statements: &mut HashMap<String, tokio_postgres::Statement>,
        sql: &str,
    ) -> std::result::Result<tokio_postgres::Statement, CallError> {
        if let Some(statement) = statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.call(|client| Box::pin(client.prepare(sql)))?;
        if statements.len() >= STATEMENTS_KEPT {
            statements.clear();
        }
        statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// Connects, and spawns the task that drives the connection's socket on
/// the current runtime, polled whenever a call runs on it.
async fn connect_and_drive(
    config: &tokio_postgres::Config,
    tls: &Tls,
) -> std::result::Result<tokio_postgres::Client, tokio_postgres::Error> {
    match tls {
        Tls::Off => {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        }
        Tls::Verified(connector) => {
            let (client, connection) = config.connect(connector.clone()).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        }
    }
}

impl PgConn {
    /// Connects to the database at `url`; the error names the host, port
    /// and database.
    pub(super) fn connect(url: &str) -> anyhow::Result<PgConn> {
        let parsed = crate::settings::PostgresUrl::parse(url)
            .map_err(|reason| anyhow::anyhow!("invalid PostgreSQL URL: {reason}"))?
            .ok_or_else(|| anyhow::anyhow!("not a PostgreSQL URL"))?;
        let (for_driver, tls) = pg_tls::from_url(url).map_err(|reason| {
            anyhow::anyhow!("invalid PostgreSQL URL `{}`: {reason}", parsed.masked)
        })?;
        let mut config: tokio_postgres::Config =
            for_driver.parse().map_err(|error: tokio_postgres::Error| {
                anyhow::anyhow!("invalid PostgreSQL URL `{}`: {error}", parsed.masked)
            })?;
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
        }
        if config.get_user().is_none() {
            let user = std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| String::from("postgres"));
            config.user(&user);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        config.keepalives(true).keepalives_idle(Duration::from_secs(5));
        let options = format!(
            "{} -c statement_timeout={STATEMENT_TIMEOUT_MS} -c idle_in_transaction_session_timeout=60000",
            config.get_options().unwrap_or("")
        );
        config.options(options.trim());
        config.application_name("sessiond");
        let database = config
            .get_dbname()
            .map(str::to_owned)
            .unwrap_or_else(|| config.get_user().unwrap_or("").to_owned());
        let place =
            format!("the PostgreSQL database `{database}` on `{}:{}`", parsed.host, parsed.port);
        let conn = PgConn {
            config,
            tls,
            url: url.to_owned(),
            place,
            state: RefCell::new(State { session: None, statements: HashMap::new() }),
            in_transaction: Cell::new(false),
        };
        {
            let mut state = conn.state.borrow_mut();
            conn.reconnect(&mut state).map_err(|error| anyhow::anyhow!("{error}"))?;
        }
        Ok(conn)
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    pub(super) fn in_transaction(&self) -> bool {
        self.in_transaction.get()
    }

    fn reconnect(&self, state: &mut State) -> Result<()> {
        state.statements.clear();
        state.session = None;
        match Session::connect(&self.config, &self.tls) {
            Ok(session) => {
                state.session = Some(session);
                Ok(())
            }
            Err(reason) => {
                Err(Error::Unavailable(format!("cannot reach {}: {reason}", self.place)))
            }
        }
    }

    /// Runs `work` on the connection, connecting first when the last one
    /// was lost (outside a transaction only); a connection-level failure
    /// drops the connection.
    ///
    /// Outside a transaction, a call that finds its connection already gone
    /// (closed, or ended by the server while idle: a restart) is tried once
    /// more on a new connection: the statement never ran, so running it
    /// again cannot repeat a write. Any other connection failure is the
    /// caller's (a 503), since a write may or may not have been committed.
    fn with_client<T>(
        &self,
        mut work: impl FnMut(
            &mut Session,
            &mut HashMap<String, tokio_postgres::Statement>,
        ) -> std::result::Result<T, CallError>,
    ) -> Result<T> {
        let mut state = self.state.borrow_mut();
        let mut retried = false;
        loop {
            if state.session.as_ref().is_some_and(|session| session.client.is_closed()) {
                state.session = None;
            }
            if state.session.is_none() {
                if self.in_transaction.get() {
                    return Err(Error::Unavailable(format!(
                        "the connection to {} was lost in a transaction",
                        self.place
                    )));
                }
                self.reconnect(&mut state)?;
            }
            let State { session, statements } = &mut *state;
            let session = session.as_mut().expect("connected above");
            let error = match work(session, statements) {
                Ok(value) => return Ok(value),
                Err(CallError::Db(error)) if !is_connection_lost(&error) => {
                    return Err(Error::Postgres(error));
                }
                Err(error) => error,
            };
            state.session = None;
            state.statements.clear();
            let (reason, never_ran) = match &error {
                CallError::Db(error) => (error_text(error), never_ran(error)),
                CallError::NoAnswer => {
                    (format!("no answer within {} s", ANSWER_DEADLINE.as_secs()), false)
                }
            };
            if !retried && !self.in_transaction.get() && never_ran {
                retried = true;
                continue;
            }
            return Err(Error::Unavailable(format!(
                "lost the connection to {}: {reason}",
                self.place
            )));
        }
    }

    pub(super) fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<usize> {
        self.with_client(|session, statements| {
            let statement = session.prepared(statements, sql)?;
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|value| value as &(dyn ToSql + Sync)).collect();
            session.call(|client| Box::pin(async move { client.execute(&statement, &refs).await }))
        })
        .map(|changed| usize::try_from(changed).unwrap_or(usize::MAX))
    }

    pub(super) fn query(
        &self,
        sql: &str,
        params: &[Value<'_>],
    ) -> Result<Vec<tokio_postgres::Row>> {
        self.with_client(|session, statements| {
            let statement = session.prepared(statements, sql)?;
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|value| value as &(dyn ToSql + Sync)).collect();
            session.call(|client| Box::pin(async move { client.query(&statement, &refs).await }))
        })
    }

    pub(super) fn batch_execute(&self, sql: &str) -> Result<()> {
        self.with_client(|session, _| session.call(|client| Box::pin(client.batch_execute(sql))))
    }

    pub(super) fn begin(&self, behavior: Option<Behavior>) -> Result<()> {
        let sql = match behavior {
            // Every writer that SQLite would serialize takes this lock first.
            Some(Behavior::Immediate) => "BEGIN; SELECT pg_advisory_xact_lock(8315179226771908980)",
            Some(Behavior::Deferred) => "BEGIN ISOLATION LEVEL REPEATABLE READ",
            None => "BEGIN",
        };
        self.batch_execute(sql)?;
        self.in_transaction.set(true);
        Ok(())
    }

    pub(super) fn end(&self, commit: bool) -> Result<()> {
        let lost = self.state.borrow().session.is_none();
        let result = if lost {
            if commit {
                Err(Error::Unavailable(format!(
                    "the connection to {} was lost in a transaction",
                    self.place
                )))
            } else {
                Ok(())
            }
        } else {
            self.batch_execute(if commit { "COMMIT" } else { "ROLLBACK" })
        };
        self.in_transaction.set(false);
        result
    }

    /// Whether commits wait for the WAL flush (`synchronous_commit` other
    /// than `off`).
    pub(super) fn synchronous_commit_on(&self) -> Result<bool> {
        let rows = self.query("SELECT current_setting('synchronous_commit')", &[])?;
        let setting: String = rows.first().map(|row| row.get(0)).unwrap_or_default();
        Ok(setting != "off")
    }
}

/// An error's text without the URL (the driver never puts the password in
/// one, but says "db error" for the server's own messages).
fn error_text(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

/// A failure of the connection rather than of the statement.
pub(super) fn is_connection_lost(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    if let Some(code) = error.code() {
        let code = code.code();
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
    }
    std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
}

/// A connection failure that shows the statement was not run: the client
/// knew the connection closed before sending it, or the server had ended
/// the session (shutdown, restart) before reading it.
fn never_ran(error: &tokio_postgres::Error) -> bool {
    error.is_closed() || error.code().is_some_and(|code| matches!(code.code(), "57P01" | "57P02"))
}

/// Another writer held a lock too long, or the transaction lost a race.
pub(super) fn is_busy(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| matches!(code.code(), "55P03" | "57014" | "40001" | "40P01"))
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(value) => match *ty {
                Type::INT8 => value.to_sql(ty, out),
                Type::INT4 => i32::try_from(value)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(value)?.to_sql(ty, out),
                Type::BOOL => (value != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot be bound to a `{ty}` parameter").into()),
            },
            Value::Text(text) => text.to_sql(ty, out),
            Value::Blob(bytes) => bytes.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// An integer column of any width (or a boolean, as 0 or 1).
pub(super) fn integer(row: &tokio_postgres::Row, index: usize) -> Result<i64> {
    let ty = row.columns().get(index).map(|column| column.type_().clone());
    Ok(match ty {
        Some(Type::INT4) => i64::from(row.try_get::<_, i32>(index)?),
        Some(Type::INT2) => i64::from(row.try_get::<_, i16>(index)?),
        Some(Type::BOOL) => i64::from(row.try_get::<_, bool>(index)?),
        _ => row.try_get::<_, i64>(index)?,
    })
}

/// Whether a column is NULL, whatever its type.
pub(super) fn is_null(row: &tokio_postgres::Row, index: usize) -> Result<bool> {
    Ok(row.try_get::<_, Nullness>(index)?.0)
}

struct Nullness(bool);

impl<'a> FromSql<'a> for Nullness {
    fn from_sql(
        _: &Type,
        _: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Nullness(false))
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Nullness(true))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Applies the PostgreSQL migrations that the database has not seen yet,
/// in one transaction under [`MIGRATION_LOCK`]; the version is kept in
/// `sessiond_schema`. Two servers starting at once on an empty database:
/// the second waits for the lock, then reads the version the first wrote.
pub(super) fn migrate_to(conn: &Conn, target: usize) -> anyhow::Result<()> {
    let target = target.min(MIGRATIONS.len());
    let pg = match &conn.inner {
        super::Inner::Postgres(pg) => pg,
        super::Inner::Sqlite(_) => unreachable!("a PostgreSQL connection"),
    };
    // A plain transaction, without the statement timeout: a step may build
    // an index on a large table, and a second server starting meanwhile
    // must wait for it rather than fail. The migration lock, then the write
    // lock every writer takes (no writer takes them the other way round).
    pg.begin(None)?;
    let tx = super::Transaction { conn, open: true };
    tx.execute_batch("SET LOCAL statement_timeout = 0")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", super::params![MIGRATION_LOCK])?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", super::params![WRITE_LOCK])?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS sessiond_schema (version BIGINT NOT NULL)")?;
    let version: Option<i64> = tx
        .prepare_cached("SELECT max(version) FROM sessiond_schema")?
        .query_row([], |row| row.get(0))?;
    let version = usize::try_from(version.unwrap_or(0)).unwrap_or(0);
    let before_nocase = super::sqlite::version_before_usernames_unique_regardless_of_case();
    for (step_index, step) in MIGRATIONS.iter().enumerate().take(target).skip(version) {
        if step_index == before_nocase {
            refuse_case_duplicates(&tx)?;
        }
        tx.execute_batch(step)?;
    }
    if version < target {
        tx.execute("DELETE FROM sessiond_schema", [])?;
        tx.execute(
            "INSERT INTO sessiond_schema (version) VALUES ($1)",
            super::params![target as i64],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn refuse_case_duplicates(conn: &Conn) -> anyhow::Result<()> {
    let groups = crate::users::case_duplicates(conn)?;
    if groups.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = groups
        .iter()
        .map(|group| group.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", "))
        .collect();
    anyhow::bail!(
        "usernames must be unique regardless of case, and these differ only in case: {}; rename all but one of each and start again (nothing was changed)",
        named.join("; ")
    )
}

/// The PostgreSQL schema, one step per entry, each the twin of the SQLite
/// step of the same number (`super::sqlite::MIGRATIONS`): the same tables,
/// columns and indexes, BIGINT for every integer (the program binds i64),
/// BYTEA for blobs, identity columns for the keys SQLite numbers itself.
/// Append only, with its SQLite twin.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: users, meta, web sessions, JWT sessions, cleanup runs.
    "
    CREATE TABLE users (
        id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        email         TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL,
        is_superuser  BIGINT NOT NULL DEFAULT 0,
        is_staff      BIGINT NOT NULL DEFAULT 0,
        is_active     BIGINT NOT NULL DEFAULT 1,
        date_joined   BIGINT NOT NULL
    );
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE web_sessions (
        id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        key_hash      BYTEA NOT NULL UNIQUE,
        user_id       BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created       BIGINT NOT NULL,
        last_activity BIGINT NOT NULL,
        expire_date   BIGINT NOT NULL,
        client_addr   TEXT NOT NULL DEFAULT '',
        user_agent    TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX web_sessions_expire_date ON web_sessions(expire_date);
    CREATE INDEX web_sessions_user ON web_sessions(user_id, id);
    CREATE TABLE jwt_sessions (
        seq           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        jti           TEXT NOT NULL UNIQUE,
        user_id       BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created       BIGINT NOT NULL,
        last_activity BIGINT NOT NULL,
        expires_at    BIGINT NOT NULL,
        revoked_at    BIGINT,
        revoked_by    BIGINT REFERENCES users(id) ON DELETE SET NULL,
        client_addr   TEXT NOT NULL DEFAULT '',
        user_agent    TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX jwt_sessions_expires_at ON jwt_sessions(expires_at);
    CREATE INDEX jwt_sessions_user ON jwt_sessions(user_id, seq);
    CREATE TABLE cleanup_runs (
        id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        trigger     TEXT NOT NULL,
        started     BIGINT NOT NULL,
        duration_ms BIGINT NOT NULL,
        web_deleted BIGINT NOT NULL,
        jwt_deleted BIGINT NOT NULL,
        outcome     TEXT NOT NULL
    );
    ",
    // 2: indexes for the admin lists and counts.
    "
    CREATE INDEX web_sessions_user_expiry ON web_sessions(user_id, expire_date);
    CREATE INDEX jwt_sessions_revoked ON jwt_sessions(seq) WHERE revoked_at IS NOT NULL;
    CREATE INDEX jwt_sessions_unrevoked_expiry ON jwt_sessions(expires_at)
        WHERE revoked_at IS NULL;
    ",
    // 3: one row per scheduled cleanup time, claimed by one server.
    "
    CREATE TABLE cleanup_claims (
        scheduled_at BIGINT PRIMARY KEY,
        run_id       BIGINT NOT NULL,
        claimed_at   BIGINT NOT NULL
    );
    ",
    // 4: usernames unique regardless of case (`lower`: usernames are ASCII).
    "
    CREATE UNIQUE INDEX users_username_nocase ON users(lower(username));
    ",
    // 5: the login throttle's failures.
    "
    CREATE TABLE login_failures (
        id      BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        kind    BIGINT NOT NULL,
        key     TEXT NOT NULL,
        at      BIGINT NOT NULL,
        attempt TEXT NOT NULL
    );
    CREATE INDEX login_failures_key ON login_failures(kind, key, at);
    CREATE INDEX login_failures_at ON login_failures(at);
    CREATE INDEX login_failures_attempt ON login_failures(attempt);
    ",
    // 6: forward-auth rules, tried in `id` order.
    "
    CREATE TABLE access_rules (
        id      BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        pattern TEXT NOT NULL,
        path    TEXT,
        policy  TEXT NOT NULL
    );
    ",
    // 7: no index on the expiry alone; `web_sessions_user_expiry` serves.
    "
    DROP INDEX web_sessions_expire_date;
    ",
    // 8: no index on the random key hashes; the rows already here are found
    // by hash through a partial index (see the SQLite step).
    "
    ALTER TABLE web_sessions DROP CONSTRAINT web_sessions_key_hash_key;
    ALTER TABLE web_sessions ADD COLUMN found_by_hash BIGINT NOT NULL DEFAULT 1;
    ALTER TABLE web_sessions ALTER COLUMN found_by_hash SET DEFAULT 0;
    CREATE UNIQUE INDEX web_sessions_found_by_hash ON web_sessions(key_hash)
        WHERE found_by_hash = 1;
    ",
];

#[cfg(test)]
mod tests {
    #[test]
    fn the_immediate_transaction_takes_the_write_lock() {
        let sql = "BEGIN; SELECT pg_advisory_xact_lock(8315179226771908980)";
        assert!(sql.ends_with(&format!("({})", super::WRITE_LOCK)));
    }
}

//! The database engine layer: one connection type, [`Conn`], over SQLite
//! (a file) or PostgreSQL (a `postgres://` URL), with the few calls the
//! table modules make, and opening, migrating and checking either.
//!
//! The table modules keep their SQL as literal text and run it through
//! [`Conn::prepare_cached`], [`Statement::execute`], [`Statement::query_row`]
//! and [`Statement::query_map`], with `$1, $2, ...` placeholders that both
//! engines read the same way (each `$N` first appears in increasing order,
//! checked at every prepare in debug builds). Where the engines differ, a
//! module keeps two literals side by side and picks one with
//! [`Conn::by_engine`]. This module runs no query on behalf of a table
//! module: it knows the schema as a whole (the migrations), never a
//! table's rows.
//!
//! **Invariant:** SQLite's single-writer behaviour holds on both engines: an
//! IMMEDIATE transaction ([`Behavior::Immediate`]) is, on PostgreSQL, a
//! transaction that first takes one fixed advisory lock
//! ([`pg::WRITE_LOCK`]), so writers that relied on SQLite's global write
//! lock (check, then write) keep relying on it. [`unless_busy`], for a
//! one-row write that may be put off (a sliding expiry), gives up at once
//! on SQLite when another writer holds the lock; PostgreSQL locks rows, so
//! there it writes at once, without the advisory lock, which no
//! check-then-write needs for one row.
//!
//! Connections commit with `synchronous=NORMAL` on SQLite; a write that ends
//! access (SPEC 8) runs in a [`DurableTransaction`] (`synchronous=FULL` for
//! that commit). On PostgreSQL every commit is durable (the server's own
//! `synchronous_commit`), and a lost connection is dropped and made again on
//! the next call ([`pg`]), so a worker comes back by itself with the
//! database.

mod pg;
mod pg_tls;
mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

pub use self::sqlite::{
    BUSY_TIMEOUT, FileWatch, MMAP_BYTES, PAGE_CACHE_KIB, checkpoint, private_permissions,
};

/// The results of this module and the table modules.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which engine a [`Conn`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// One connection of either engine. Not `Sync`: each thread owns its own.
pub struct Conn {
    inner: Inner,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres(Box<pg::PgConn>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn({:?})", self.engine())
    }
}

/// Whether `SESSIOND_DB` (or `--db`) names a PostgreSQL database rather
/// than a file.
pub fn is_postgres_url(db: &Path) -> bool {
    db.to_str().is_some_and(|text| {
        let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
        lower.starts_with("postgres://") || lower.starts_with("postgresql://")
    })
}

/// Opens the database named by `db` (a SQLite file, created when missing
/// with its folder; or a PostgreSQL URL) and brings its schema up to date.
pub fn open(db: &Path) -> anyhow::Result<Conn> {
    if is_postgres_url(db) {
        let mut conn = Conn::postgres(pg::PgConn::connect(url_text(db)?)?);
        migrate(&mut conn)?;
        Ok(conn)
    } else {
        sqlite::open(db).map(Conn::sqlite)
    }
}

/// [`open`] for a database that must exist already (the commands on users
/// and sessions). A PostgreSQL database always exists once it can be
/// reached; a missing SQLite file is refused rather than made.
pub fn open_existing(db: &Path) -> anyhow::Result<Conn> {
    if is_postgres_url(db) { open(db) } else { sqlite::open_existing(db).map(Conn::sqlite) }
}

/// Opens one more connection to a database that [`open`] has migrated; each
/// HTTP worker, login thread, the timer and the metrics listener have their own.
pub fn connect(db: &Path) -> anyhow::Result<Conn> {
    if is_postgres_url(db) {
        Ok(Conn::postgres(pg::PgConn::connect(url_text(db)?)?))
    } else {
        sqlite::connect(db).map(Conn::sqlite)
    }
}

fn url_text(db: &Path) -> anyhow::Result<&str> {
    db.to_str().ok_or_else(|| anyhow::anyhow!("the PostgreSQL URL is not UTF-8"))
}

/// Whether the database answers a query, for `/healthz`.
pub fn ping(conn: &Conn) -> Result<()> {
    conn.prepare_cached("SELECT count(*) FROM meta")?.query_row([], |row| row.get::<_, i64>(0))?;
    Ok(())
}

impl Conn {
    fn sqlite(conn: rusqlite::Connection) -> Conn {
        Conn { inner: Inner::Sqlite(conn) }
    }

    fn postgres(conn: pg::PgConn) -> Conn {
        Conn { inner: Inner::Postgres(Box::new(conn)) }
    }

    fn into_sqlite(self) -> rusqlite::Connection {
        match self.inner {
            Inner::Sqlite(conn) => conn,
            Inner::Postgres(_) => unreachable!("a SQLite connection"),
        }
    }

    pub fn engine(&self) -> Engine {
        match self.inner {
            Inner::Sqlite(_) => Engine::Sqlite,
            Inner::Postgres(_) => Engine::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas, backups,
    /// the cleanup's emptying of a table); `None` on PostgreSQL.
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(conn) => Some(conn),
            Inner::Postgres(_) => None,
        }
    }

    /// One of two literals, by engine: for the statements the engines
    /// spell differently (planner hints, collations, DDL).
    pub fn by_engine<'a>(&self, sqlite: &'a str, postgres: &'a str) -> &'a str {
        match self.engine() {
            Engine::Sqlite => sqlite,
            Engine::Postgres => postgres,
        }
    }

    /// A statement, prepared once per connection and kept (SQLite's
    /// statement cache; on PostgreSQL a map from the SQL to its prepared
    /// statement, which saves a round trip per query).
    pub fn prepare_cached<'c>(&'c self, sql: &'c str) -> Result<Statement<'c>> {
        match &self.inner {
            Inner::Sqlite(conn) => {
                let statement = conn.prepare_cached(sql)?;
                debug_check_placeholders(&statement, sql);
                Ok(Statement { inner: StatementInner::Sqlite(statement) })
            }
            Inner::Postgres(conn) => {
                Ok(Statement { inner: StatementInner::Postgres { conn, sql } })
            }
        }
    }

    /// [`Conn::prepare_cached`]; kept for the shape of rusqlite's API.
    pub fn prepare<'c>(&'c self, sql: &'c str) -> Result<Statement<'c>> {
        self.prepare_cached(sql)
    }

    /// Runs one statement; returns the rows it changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// Runs one statement that returns a row, and maps it.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        map: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.prepare_cached(sql)?.query_row(params, map)
    }

    /// Runs several statements without parameters (schema steps).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Inner::Postgres(conn) => conn.batch_execute(sql),
        }
    }

    /// Whether no transaction is open on this connection.
    pub fn is_autocommit(&self) -> bool {
        match &self.inner {
            Inner::Sqlite(conn) => conn.is_autocommit(),
            Inner::Postgres(conn) => !conn.in_transaction(),
        }
    }

    /// Starts a transaction; it rolls back when dropped uncommitted. The
    /// connection must not be in one already.
    pub fn transaction(&self, behavior: Behavior) -> Result<Transaction<'_>> {
        match &self.inner {
            Inner::Sqlite(conn) => conn.execute_batch(match behavior {
                Behavior::Deferred => "BEGIN DEFERRED",
                Behavior::Immediate => "BEGIN IMMEDIATE",
            })?,
            Inner::Postgres(conn) => conn.begin(Some(behavior))?,
        }
        Ok(Transaction { conn: self, open: true })
    }

    fn end_transaction(&self, commit: bool) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(conn) => {
                Ok(conn.execute_batch(if commit { "COMMIT" } else { "ROLLBACK" })?)
            }
            Inner::Postgres(conn) => conn.end(commit),
        }
    }
}

/// In debug builds, that a statement with `$N` placeholders has them first
/// appearing in the order `$1, $2, ...`: SQLite binds positional values to
/// named parameters by order of first appearance, PostgreSQL by number, so
/// only such SQL binds the same on both. (SQLite's own `?N`, which only
/// tests use, binds by number there.)
fn debug_check_placeholders(statement: &rusqlite::Statement<'_>, sql: &str) {
    let dollars = statement.parameter_name(1).is_some_and(|name| name.starts_with('$'));
    if cfg!(debug_assertions) && dollars {
        for index in 1..=statement.parameter_count() {
            let expected = format!("${index}");
            assert_eq!(
                statement.parameter_name(index),
                Some(expected.as_str()),
                "placeholders must be `$1, $2, ...` in order of first appearance: {sql}"
            );
        }
    }
}

/// How a transaction starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Reads see one snapshot; on SQLite the write lock is taken at the
    /// first write, on PostgreSQL the transaction is REPEATABLE READ.
    Deferred,
    /// Holds the one write lock from the start (SQLite's IMMEDIATE; on
    /// PostgreSQL the advisory lock [`pg::WRITE_LOCK`]), waiting up to
    /// [`BUSY_TIMEOUT`] for it.
    Immediate,
}

/// An open transaction; derefs to its connection. Rolled back when dropped
/// without [`Transaction::commit`].
pub struct Transaction<'c> {
    conn: &'c Conn,
    open: bool,
}

impl Transaction<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.open = false;
        self.conn.end_transaction(true)
    }

    pub fn rollback(mut self) -> Result<()> {
        self.open = false;
        self.conn.end_transaction(false)
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.end_transaction(false);
        }
    }
}

/// A prepared statement of either engine.
pub struct Statement<'c> {
    inner: StatementInner<'c>,
}

enum StatementInner<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    Postgres { conn: &'c pg::PgConn, sql: &'c str },
}

impl Statement<'_> {
    /// Runs it; returns the rows it changed.
    pub fn execute(&mut self, params: impl Params) -> Result<usize> {
        let params = params.to_values();
        match &mut self.inner {
            StatementInner::Sqlite(statement) => {
                bind_sqlite(statement, &params)?;
                Ok(statement.raw_execute()?)
            }
            StatementInner::Postgres { conn, sql } => conn.execute(sql, &params),
        }
    }

    /// Runs it and maps its first row; [`Error::NoRows`] when it has none.
    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        map: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        let params = params.to_values();
        match &mut self.inner {
            StatementInner::Sqlite(statement) => {
                bind_sqlite(statement, &params)?;
                let mut rows = statement.raw_query();
                match rows.next()? {
                    Some(row) => map(&Row::Sqlite(row)),
                    None => Err(Error::NoRows),
                }
            }
            StatementInner::Postgres { conn, sql } => {
                let rows = conn.query(sql, &params)?;
                match rows.first() {
                    Some(row) => map(&Row::Postgres(row)),
                    None => Err(Error::NoRows),
                }
            }
        }
    }

    /// Runs it and maps every row, in order. The rows are read whole
    /// before the first is handed out.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut map: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let params = params.to_values();
        let mut mapped = Vec::new();
        match &mut self.inner {
            StatementInner::Sqlite(statement) => {
                bind_sqlite(statement, &params)?;
                let mut rows = statement.raw_query();
                while let Some(row) = rows.next()? {
                    mapped.push(map(&Row::Sqlite(row)));
                }
            }
            StatementInner::Postgres { conn, sql } => {
                for row in conn.query(sql, &params)? {
                    mapped.push(map(&Row::Postgres(&row)));
                }
            }
        }
        Ok(mapped.into_iter())
    }
}

fn bind_sqlite(statement: &mut rusqlite::CachedStatement<'_>, params: &[Value<'_>]) -> Result<()> {
    let expected = statement.parameter_count();
    if expected != params.len() {
        return Err(Error::Sqlite(rusqlite::Error::InvalidParameterCount(params.len(), expected)));
    }
    for (index, value) in params.iter().enumerate() {
        statement.raw_bind_parameter(index + 1, value)?;
    }
    Ok(())
}

/// A value bound to a statement, as both engines take it.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Null,
    Integer(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// What can be bound to a statement on both engines.
pub trait Param {
    fn value(&self) -> Value<'_>;
}

impl Param for i64 {
    fn value(&self) -> Value<'_> {
        Value::Integer(*self)
    }
}

impl Param for i32 {
    fn value(&self) -> Value<'_> {
        Value::Integer(i64::from(*self))
    }
}

impl Param for bool {
    fn value(&self) -> Value<'_> {
        Value::Integer(i64::from(*self))
    }
}

impl Param for str {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Param for String {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Param for [u8] {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl Param for Vec<u8> {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Value<'_> {
        (**self).value()
    }
}

impl<T: Param> Param for Option<T> {
    fn value(&self) -> Value<'_> {
        match self {
            Some(value) => value.value(),
            None => Value::Null,
        }
    }
}

/// The values of one statement: `[]`, [`params!`], or a slice of them.
pub trait Params {
    fn to_values(&self) -> Vec<Value<'_>>;
}

impl Params for [&dyn Param; 0] {
    fn to_values(&self) -> Vec<Value<'_>> {
        Vec::new()
    }
}

/// `[a, b]` of values of one type, and what [`params!`] makes (an array
/// of `&dyn Param`), up to 16 values.
macro_rules! impl_params_for_arrays {
    ($($n:literal)*) => {$(
        impl<T: Param> Params for [T; $n] {
            fn to_values(&self) -> Vec<Value<'_>> {
                self.iter().map(|param| param.value()).collect()
            }
        }
    )*};
}

impl_params_for_arrays!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);

impl Params for &[&dyn Param] {
    fn to_values(&self) -> Vec<Value<'_>> {
        self.iter().map(|param| param.value()).collect()
    }
}

impl Params for &[i64] {
    fn to_values(&self) -> Vec<Value<'_>> {
        self.iter().map(|value| Value::Integer(*value)).collect()
    }
}

/// The values of a statement, in the order of its `$1, $2, ...`.
#[macro_export]
macro_rules! params {
    () => { [] as [&dyn $crate::db::Param; 0] };
    ($($value:expr),+ $(,)?) => { [$(&$value as &dyn $crate::db::Param),+] };
}

pub use crate::params;

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match *self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Integer(value) => ToSqlOutput::Borrowed(ValueRef::Integer(value)),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::Blob(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        })
    }
}

/// One row of a result, of either engine.
pub enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a tokio_postgres::Row),
}

/// A column's place in a row (by number only).
pub trait RowIndex {
    fn index(self) -> usize;
}

impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}

impl Row<'_> {
    /// The value of a column, converted.
    pub fn get<I: RowIndex, T: FromSql>(&self, index: I) -> Result<T> {
        let index = index.index();
        match self {
            Row::Sqlite(row) => Ok(row.get::<_, T>(index)?),
            Row::Postgres(row) => T::from_postgres(row, index),
        }
    }
}

/// What a column can be read as, on both engines.
pub trait FromSql: rusqlite::types::FromSql + Sized {
    fn from_postgres(row: &tokio_postgres::Row, index: usize) -> Result<Self>;
}

impl FromSql for i64 {
    fn from_postgres(row: &tokio_postgres::Row, index: usize) -> Result<i64> {
        pg::integer(row, index)
    }
}

impl FromSql for bool {
    fn from_postgres(row: &tokio_postgres::Row, index: usize) -> Result<bool> {
        if row.columns().get(index).is_some_and(|c| *c.type_() == tokio_postgres::types::Type::BOOL)
        {
            Ok(row.try_get(index)?)
        } else {
            Ok(pg::integer(row, index)? != 0)
        }
    }
}

impl FromSql for String {
    fn from_postgres(row: &tokio_postgres::Row, index: usize) -> Result<String> {
        Ok(row.try_get(index)?)
    }
}

impl FromSql for Vec<u8> {
    fn from_postgres(row: &tokio_postgres::Row, index: usize) -> Result<Vec<u8>> {
        Ok(row.try_get(index)?)
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_postgres(row: &tokio_postgres::Row, index: usize) -> Result<Option<T>> {
        if pg::is_null(row, index)? { Ok(None) } else { T::from_postgres(row, index).map(Some) }
    }
}

/// Any column as SQLite's dynamic value (for tests that compare rows).
impl FromSql for rusqlite::types::Value {
    fn from_postgres(row: &tokio_postgres::Row, index: usize) -> Result<Self> {
        use rusqlite::types::Value as Dynamic;
        use tokio_postgres::types::Type;
        if pg::is_null(row, index)? {
            return Ok(Dynamic::Null);
        }
        let ty = row.columns().get(index).map(|column| column.type_().clone());
        Ok(match ty {
            Some(Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL) => {
                Dynamic::Integer(pg::integer(row, index)?)
            }
            Some(Type::BYTEA) => Dynamic::Blob(row.try_get(index)?),
            Some(Type::FLOAT8) => Dynamic::Real(row.try_get(index)?),
            _ => Dynamic::Text(row.try_get(index)?),
        })
    }
}

/// A database error, of either engine, with the kinds the code branches on.
#[derive(Debug)]
pub enum Error {
    Sqlite(rusqlite::Error),
    Postgres(tokio_postgres::Error),
    /// A statement that should return a row returned none.
    NoRows,
    /// The database cannot be reached (a PostgreSQL connection lost or
    /// refused); the next call tries again.
    Unavailable(String),
    /// A value that the program cannot use (a key hash of the wrong size).
    Conversion(String),
}

impl Error {
    /// Another writer holds the lock (SQLite busy or locked; PostgreSQL a
    /// lock or statement timeout, a serialization failure or deadlock).
    pub fn is_busy(&self) -> bool {
        match self {
            Error::Sqlite(error) => matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            Error::Postgres(error) => pg::is_busy(error),
            _ => false,
        }
    }

    /// A UNIQUE constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(error, _)) => {
                error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            Error::Postgres(error) => {
                error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
            }
            _ => false,
        }
    }

    /// The database cannot take the request now but may later: the
    /// server answers 503 (a lost PostgreSQL connection; a SQLite file made
    /// read-only, full, or unopenable).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Unavailable(_) => true,
            Error::Sqlite(error) => matches!(
                error.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::ReadOnly
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::SystemIoFailure
                )
            ),
            Error::Postgres(error) => pg::is_connection_lost(error),
            _ => false,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Sqlite(error) => error.fmt(f),
            Error::Postgres(error) => match error.as_db_error() {
                Some(db) => write!(f, "{}: {}", db.severity(), db.message()),
                None => error.fmt(f),
            },
            Error::NoRows => f.write_str("query returned no rows"),
            Error::Unavailable(reason) => f.write_str(reason),
            Error::Conversion(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Sqlite(error) => Some(error),
            Error::Postgres(error) => Some(error),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Error {
        match error {
            rusqlite::Error::QueryReturnedNoRows => Error::NoRows,
            error => Error::Sqlite(error),
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(error: tokio_postgres::Error) -> Error {
        Error::Postgres(error)
    }
}

/// `.optional()` on a query's result: no row is `Ok(None)`.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(Error::NoRows) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// Runs `write`, one statement that changes one row, on `conn` without
/// waiting for another writer: on SQLite `Ok(None)` when the write lock is
/// held elsewhere at this moment, where a plain write would wait up to
/// [`BUSY_TIMEOUT`]. For writes that may be put off, such as a sliding
/// expiry still within its allowed lag. PostgreSQL locks the row alone,
/// which only a writer of that same row holds, and briefly: the write runs
/// at once, as its own statement (one round trip), and never takes the
/// advisory write lock.
pub fn unless_busy<T>(conn: &Conn, write: impl FnOnce(&Conn) -> Result<T>) -> Result<Option<T>> {
    match &conn.inner {
        Inner::Sqlite(sqlite) => sqlite::unless_busy(sqlite, || write(conn)),
        Inner::Postgres(_) => write(conn).map(Some),
    }
}

/// Whether the engine runs one write at a time for the whole database
/// (SQLite), so that a process's own writers are better queued in the
/// process than in the engine's busy handler.
pub fn writes_one_at_a_time(conn: &Conn) -> bool {
    conn.engine() == Engine::Sqlite
}

/// Runs `work` with this connection's own commits returning before their
/// WAL reaches the disk: PostgreSQL's `synchronous_commit = off` for the
/// session, reset afterwards whatever `work` returns (a connection lost on
/// the way comes back with the server's default). SQLite connections
/// already commit with `synchronous=NORMAL`: nothing to change. For a run
/// of single-statement writes that a power cut may undo harmlessly, such
/// as the cleanup's deletes on PostgreSQL.
pub fn without_flush<T>(
    conn: &Conn,
    work: impl FnOnce(&Conn) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    if conn.engine() == Engine::Sqlite {
        return work(conn);
    }
    conn.execute_batch("SET synchronous_commit = off")?;
    let result = work(conn);
    let reset = conn.execute_batch("RESET synchronous_commit");
    let value = result?;
    reset?;
    Ok(value)
}

/// An IMMEDIATE transaction whose commit survives a power loss once it
/// returns: on SQLite it commits with `synchronous=FULL` (the connection's
/// own setting is put back when it is dropped, committed or not; SQLite
/// does not let the setting change inside a transaction, so the connection
/// must not be in one when this starts); on PostgreSQL every commit is.
pub struct DurableTransaction<'c> {
    tx: Option<Transaction<'c>>,
    conn: &'c Conn,
    previous_synchronous: Option<i64>,
}

/// Starts a [`DurableTransaction`] on `conn`.
pub fn durable_transaction(conn: &Conn) -> Result<DurableTransaction<'_>> {
    let previous_synchronous = match conn.as_sqlite() {
        Some(sqlite) => Some(sqlite::synchronous_full(sqlite)?),
        None => None,
    };
    match conn.transaction(Behavior::Immediate) {
        Ok(tx) => Ok(DurableTransaction { tx: Some(tx), conn, previous_synchronous }),
        Err(error) => {
            if let (Some(sqlite), Some(previous)) = (conn.as_sqlite(), previous_synchronous) {
                let _ = sqlite.pragma_update(None, "synchronous", previous);
            }
            Err(error)
        }
    }
}

impl DurableTransaction<'_> {
    /// Commits; durable once this returns.
    pub fn commit(mut self) -> Result<()> {
        self.tx.take().expect("a transaction until it is committed").commit()
    }
}

impl std::ops::Deref for DurableTransaction<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for DurableTransaction<'_> {
    fn drop(&mut self) {
        // Roll back first (when not committed): the setting cannot change
        // inside a transaction.
        drop(self.tx.take());
        if let (Some(sqlite), Some(previous)) = (self.conn.as_sqlite(), self.previous_synchronous) {
            let _ = sqlite.pragma_update(None, "synchronous", previous);
        }
    }
}

/// Runs one write that ends access. On a connection outside a transaction it
/// gets a [`DurableTransaction`] of its own; inside one, the caller's
/// transaction must be durable (see [`DurableTransaction`]). `what` names the
/// write for [`durable_writes`].
pub fn ending_access<T>(
    conn: &Conn,
    what: &'static str,
    write: impl FnOnce(&Conn) -> Result<T>,
) -> Result<T> {
    if conn.is_autocommit() {
        let tx = durable_transaction(conn)?;
        let value = write(&tx)?;
        note_ending_write(&tx, what)?;
        tx.commit()?;
        Ok(value)
    } else {
        let value = write(conn)?;
        note_ending_write(conn, what)?;
        Ok(value)
    }
}

/// One write that ends access, as [`durable_writes`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndingWrite {
    /// The database file, as SQLite names it (on PostgreSQL, the URL as
    /// `--db` gave it).
    pub db: PathBuf,
    /// The function that wrote, e.g. `web_sessions::delete`.
    pub what: &'static str,
    /// `PRAGMA synchronous` read inside the write's transaction, just before
    /// its commit: 2 is FULL. On PostgreSQL, 2 when `synchronous_commit` is
    /// on (every commit is flushed before it returns).
    pub synchronous: i64,
}

static RECORDING: AtomicBool = AtomicBool::new(false);
static ENDING_WRITES: Mutex<Vec<EndingWrite>> = Mutex::new(Vec::new());

/// From now on, every write that ends access in this process is recorded
/// with the `synchronous` setting its transaction commits with, so that
/// tests can check it from the outside of each action. Off unless asked for:
/// recording costs one query per such write.
pub fn record_ending_writes() {
    RECORDING.store(true, Ordering::SeqCst);
}

/// The writes that ended access on the database at `db`, in order, since
/// [`record_ending_writes`].
pub fn durable_writes(db: &Path) -> Vec<EndingWrite> {
    let wanted = if is_postgres_url(db) {
        db.to_path_buf()
    } else {
        std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf())
    };
    let writes = ENDING_WRITES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    writes.iter().filter(|write| write.db == wanted).cloned().collect()
}

fn note_ending_write(conn: &Conn, what: &'static str) -> Result<()> {
    if !RECORDING.load(Ordering::Relaxed) {
        return Ok(());
    }
    let (db, synchronous) = match &conn.inner {
        Inner::Sqlite(sqlite) => {
            let synchronous: i64 =
                sqlite.pragma_query_value(None, "synchronous", |row| row.get(0))?;
            let db = sqlite.path().map(PathBuf::from).unwrap_or_default();
            (std::fs::canonicalize(&db).unwrap_or(db), synchronous)
        }
        Inner::Postgres(pg) => {
            let on = pg.synchronous_commit_on()?;
            (PathBuf::from(pg.url()), if on { 2 } else { 1 })
        }
    };
    let mut writes = ENDING_WRITES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    writes.push(EndingWrite { db, what, synchronous });
    Ok(())
}

/// The schema version of a database this program has migrated.
pub fn schema_version() -> i64 {
    sqlite::MIGRATIONS.len() as i64
}

/// Applies the migrations that the database has not seen yet, all in one
/// transaction; running it twice is a no-op. Safe when several processes
/// start at once: SQLite's IMMEDIATE transaction, or on PostgreSQL the
/// migration advisory lock, lets one migrate while the others wait and then
/// find the work done.
pub fn migrate(conn: &mut Conn) -> anyhow::Result<()> {
    migrate_to(conn, sqlite::MIGRATIONS.len())
}

/// [`migrate`] up to schema version `target` only; tests use it to make a
/// database as an older sessiond left it.
pub fn migrate_to(conn: &mut Conn, target: usize) -> anyhow::Result<()> {
    match conn.engine() {
        Engine::Sqlite => sqlite::migrate_to(conn, target),
        Engine::Postgres => pg::migrate_to(conn, target),
    }
}

/// The schema version just before usernames became unique regardless of
/// case.
pub fn version_before_usernames_unique_regardless_of_case() -> usize {
    sqlite::version_before_usernames_unique_regardless_of_case()
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_engines_have_the_same_number_of_migrations() {
        assert_eq!(super::sqlite::MIGRATIONS.len(), super::pg::MIGRATIONS.len());
    }

    /// Every string literal in `src/` that holds `$N` placeholders has them
    /// first appearing as `$1, $2, ...` (see `debug_check_placeholders`),
    /// and no SQL uses SQLite's own `?N`, which PostgreSQL does not read.
    #[test]
    fn every_sql_literal_numbers_its_placeholders_in_order() {
        let mut problems = Vec::new();
        let mut folders =
            vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else if path.extension().is_some_and(|ext| ext == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    // Unit tests run on SQLite only (and this one's examples
                    // are wrong on purpose).
                    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
                    for literal in string_literals(code) {
                        if let Some(problem) = placeholder_problem(&literal) {
                            problems.push(format!("{}: {problem}: {literal}", path.display()));
                        }
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// The text of each `"..."` literal (escapes kept as written; a `'"'`
    /// char literal skipped).
    fn string_literals(text: &str) -> Vec<String> {
        let mut literals = Vec::new();
        let mut chars = text.chars().peekable();
        let mut previous = ' ';
        while let Some(c) = chars.next() {
            if c == '"' && previous != '\'' {
                let mut literal = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            literal.push(c);
                            if let Some(next) = chars.next() {
                                literal.push(next);
                            }
                        }
                        '"' => break,
                        c => literal.push(c),
                    }
                }
                literals.push(literal);
                previous = '"';
            } else if c == '/' && chars.peek() == Some(&'/') {
                // A comment: skip to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                previous = '\n';
            } else {
                previous = c;
            }
        }
        literals
    }

    fn placeholder_problem(literal: &str) -> Option<String> {
        let numbers = |mark: char| -> Vec<usize> {
            let mut found = Vec::new();
            let bytes: Vec<char> = literal.chars().collect();
            for (index, c) in bytes.iter().enumerate() {
                if *c == mark {
                    let digits: String =
                        bytes[index + 1..].iter().take_while(|c| c.is_ascii_digit()).collect();
                    if let Ok(number) = digits.parse() {
                        found.push(number);
                    }
                }
            }
            found
        };
        let sql = ["SELECT ", "INSERT ", "UPDATE ", "DELETE ", " WHERE "]
            .iter()
            .any(|keyword| literal.contains(keyword));
        if sql && !numbers('?').is_empty() {
            return Some(String::from("`?N` placeholders (write `$N`)"));
        }
        let mut first_seen: Vec<usize> = Vec::new();
        for number in numbers('$') {
            if !first_seen.contains(&number) {
                first_seen.push(number);
            }
        }
        let expected: Vec<usize> = (1..=first_seen.len()).collect();
        (first_seen != expected).then(|| format!("placeholders first appear as {first_seen:?}"))
    }

    #[test]
    fn the_placeholder_check_finds_what_it_must() {
        assert_eq!(placeholder_problem("SELECT a FROM t WHERE b = $1 AND c = $2"), None);
        assert_eq!(placeholder_problem("UPDATE t SET a = $1 WHERE b = $2 AND c = $1"), None);
        assert!(placeholder_problem("UPDATE t SET a = $2 WHERE b = $1").is_some());
        assert!(placeholder_problem("SELECT a FROM t WHERE b = ?1").is_some());
        assert!(placeholder_problem("SELECT a FROM t WHERE b = $1 LIMIT $3").is_some());
        assert_eq!(string_literals("let a = \"x $1\"; // \"$2\"\nlet b = '\"';"), ["x $1"]);
    }

    #[test]
    fn postgres_urls_are_told_from_file_paths() {
        use std::path::Path;
        assert!(super::is_postgres_url(Path::new("postgres://u@h/db")));
        assert!(super::is_postgres_url(Path::new("PostgreSQL://h/db")));
        assert!(!super::is_postgres_url(Path::new("data/sessiond.sqlite3")));
        assert!(!super::is_postgres_url(Path::new("postgres")));
    }
}

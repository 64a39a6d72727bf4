//! Opening the SQLite file and migrating its schema.
//!
//! Every connection is opened here with the same pragmas (WAL, a busy
//! timeout, foreign keys on), so that several threads and several processes
//! can share one file. The schema is an append-only list of migrations tracked
//! by `PRAGMA user_version`. This module knows the schema as a whole but runs
//! no queries on behalf of other modules: each table's SQL lives with the
//! module that owns it.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

/// How long a writer waits for another writer (thread or process) before
/// giving up with "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The page cache of each connection, in KiB. Every worker has its own
/// connection, and in WAL mode a connection drops its whole cache whenever
/// another one commits, so SQLite's default (2,000 KiB) mostly holds pages
/// that will be thrown away: in `cargo bench --bench http` it made the
/// server's peak RSS 37.7 MiB against 20.8 MiB with this value, at the same
/// throughput (about 15 MiB with the SQLite build options of
/// `.cargo/config.toml`). Pages not cached come from the OS's file cache.
pub const PAGE_CACHE_KIB: i64 = 512;

/// Runs `write` on `conn` without waiting for another writer: `Ok(None)`
/// when the database is locked at this moment, where a plain write would
/// wait up to [`BUSY_TIMEOUT`]. For writes that may be put off, such as a
/// sliding expiry still within its allowed lag.
pub fn unless_busy<T>(
    conn: &Connection,
    write: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    conn.busy_timeout(Duration::ZERO)?;
    // Put back even if `write` panics: a worker's connection outlives a
    // request whose handler panicked.
    let _restore = RestoreBusyTimeout(conn);
    let result = write(conn);
    match result {
        Ok(value) => Ok(Some(value)),
        Err(rusqlite::Error::SqliteFailure(error, _))
            if error.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Gives a connection its [`BUSY_TIMEOUT`] back when dropped.
struct RestoreBusyTimeout<'a>(&'a Connection);

impl Drop for RestoreBusyTimeout<'_> {
    fn drop(&mut self) {
        // Setting a busy timeout cannot fail on an open connection.
        let _ = self.0.busy_timeout(BUSY_TIMEOUT);
    }
}

/// Opens (creating when missing) the database file and brings its schema up
/// to date. The folder is created too. The file holds session hashes and may
/// hold the generated signing keys, so it is made readable by its owner only
/// (SQLite gives its `-wal` and `-shm` files the same mode).
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        create_private_folder(parent)
            .with_context(|| format!("failed to create folder `{}`", parent.display()))?;
    }
    make_private_file(path)
        .with_context(|| format!("failed to create database file `{}`", path.display()))?;
    let mut conn = open_connection(path)
        .with_context(|| format!("failed to open database at `{}`", path.display()))?;
    migrate(&mut conn)
        .with_context(|| format!("failed to migrate database at `{}`", path.display()))?;
    Ok(conn)
}

/// Whether the database answers a query, for `/healthz`.
pub fn ping(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("SELECT count(*) FROM meta", [], |row| row.get::<_, i64>(0)).map(|_| ())
}

/// Opens one more connection to a database that [`open`] has already
/// migrated; used by each worker thread.
pub fn connect(path: &Path) -> anyhow::Result<Connection> {
    open_connection(path)
        .with_context(|| format!("failed to open database at `{}`", path.display()))
}

#[cfg(unix)]
fn create_private_folder(folder: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(folder)
}

#[cfg(not(unix))]
fn create_private_folder(folder: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)
}

/// Creates the file with mode 0600 when missing; takes group and other
/// permissions away from an existing one.
#[cfg(unix)]
fn make_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
            }
            Ok(())
        }
        Err(error) => Err(error),
    }
}

#[cfg(not(unix))]
fn make_private_file(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets readers go on while one writer writes, across processes.
    // synchronous=NORMAL in WAL mode keeps every committed transaction across
    // a crash of the process; only a power loss can drop the last commits.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
    Ok(conn)
}

/// The schema, one step per entry; never edit a step that has shipped, only
/// append. Step N brings `user_version` from N to N+1.
const MIGRATIONS: &[&str] = &[
    // 1: users, the key-value table for generated secrets and the schedule,
    // web sessions and JWT sessions, and the record of cleanup runs.
    "
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        email         TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL,
        is_superuser  INTEGER NOT NULL DEFAULT 0,
        is_staff      INTEGER NOT NULL DEFAULT 0,
        is_active     INTEGER NOT NULL DEFAULT 1,
        date_joined   INTEGER NOT NULL
    );
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE web_sessions (
        id            INTEGER PRIMARY KEY,
        key_hash      BLOB NOT NULL UNIQUE,
        user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created       INTEGER NOT NULL,
        last_activity INTEGER NOT NULL,
        expire_date   INTEGER NOT NULL,
        client_addr   TEXT NOT NULL DEFAULT '',
        user_agent    TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX web_sessions_expire_date ON web_sessions(expire_date);
    CREATE INDEX web_sessions_user ON web_sessions(user_id, id);
    CREATE TABLE jwt_sessions (
        seq         INTEGER PRIMARY KEY,
        jti         TEXT NOT NULL UNIQUE,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created     INTEGER NOT NULL,
        last_activity INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        revoked_at  INTEGER,
        revoked_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
        client_addr TEXT NOT NULL DEFAULT '',
        user_agent  TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX jwt_sessions_expires_at ON jwt_sessions(expires_at);
    CREATE INDEX jwt_sessions_user ON jwt_sessions(user_id, seq);
    CREATE TABLE cleanup_runs (
        id          INTEGER PRIMARY KEY,
        trigger     TEXT NOT NULL,
        started     INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        web_deleted INTEGER NOT NULL,
        jwt_deleted INTEGER NOT NULL,
        outcome     TEXT NOT NULL
    );
    ",
    // 2: indexes for the admin lists and counts (keyset paging, never a
    // table scan): a user's web sessions by expiry, JWT sessions that were
    // revoked (newest first), and the expiries of unrevoked JWT sessions, so
    // that counting and listing each status reads only its own rows.
    "
    CREATE INDEX web_sessions_user_expiry ON web_sessions(user_id, expire_date);
    CREATE INDEX jwt_sessions_revoked ON jwt_sessions(seq) WHERE revoked_at IS NOT NULL;
    CREATE INDEX jwt_sessions_unrevoked_expiry ON jwt_sessions(expires_at)
        WHERE revoked_at IS NULL;
    ",
    // 3: forward-auth rules (SPEC 9), tried in `id` order; `path` NULL when
    // the rule has none. Values are validated by `access_rules` on the way in.
    "
    CREATE TABLE access_rules (
        id      INTEGER PRIMARY KEY,
        pattern TEXT NOT NULL,
        path    TEXT,
        policy  TEXT NOT NULL
    );
    ",
];

/// Applies the migrations that this file has not seen yet, all in one
/// transaction; running it twice is a no-op.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let version = usize::try_from(version).unwrap_or(0);
    for step in MIGRATIONS.iter().skip(version) {
        tx.execute_batch(step)?;
    }
    if version < MIGRATIONS.len() {
        tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/db.sqlite3");
        let mut conn = open(&path).unwrap();
        conn.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')", []).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let value: String = conn.query_row("SELECT value FROM meta", [], |r| r.get(0)).unwrap();
        assert_eq!(value, "v");
    }

    #[test]
    fn unless_busy_gives_up_at_once_and_puts_the_busy_timeout_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let holder = open(&path).unwrap();
        let conn = connect(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let insert =
            |conn: &Connection| conn.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')", []);

        assert_eq!(unless_busy(&conn, insert).unwrap(), None);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            unless_busy(&conn, |_| -> rusqlite::Result<()> { panic!("a bug in the write") })
        }));
        assert!(panicked.is_err());

        // The timeout is back: a plain write waits for the holder.
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            holder.execute_batch("COMMIT").unwrap();
        });
        assert_eq!(insert(&conn).unwrap(), 1);
        release.join().unwrap();
    }

    #[test]
    fn a_writer_waits_for_another_and_then_gets_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let mut holder = open(&path).unwrap();
        let waiter = connect(&path).unwrap();
        let (locked, is_locked) = std::sync::mpsc::channel();
        let release = std::thread::spawn(move || {
            let tx = holder.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
            tx.execute("INSERT INTO meta (key, value) VALUES ('first', '1')", []).unwrap();
            locked.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            tx.commit().unwrap();
        });
        is_locked.recv().unwrap();
        waiter.execute("INSERT INTO meta (key, value) VALUES ('second', '2')", []).unwrap();
        release.join().unwrap();
        let count: i64 = waiter.query_row("SELECT count(*) FROM meta", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 2);
    }
}

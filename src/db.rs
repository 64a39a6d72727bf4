//! Opening the SQLite file and migrating its schema, and the durable
//! transactions of the writes that end access.
//!
//! Every connection is opened here with the same pragmas (WAL, a busy
//! timeout, foreign keys on), so that several threads and several processes
//! can share one file. The schema is an append-only list of migrations tracked
//! by `PRAGMA user_version`. This module knows the schema as a whole but runs
//! no queries on behalf of other modules: each table's SQL lives with the
//! module that owns it.
//!
//! Connections commit with `synchronous=NORMAL`, which in WAL mode keeps every
//! commit across a crash of the process but may drop the last ones on a power
//! loss. A write that ends access (a logout, a revocation, a deletion, a new
//! password, a deactivation, "end all sessions") must not come back after a
//! power loss (SPEC 8), so it runs in a [`DurableTransaction`], which commits
//! with `synchronous=FULL` (the WAL is synced before the commit returns).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

/// How long a writer waits for another writer (thread or process) before
/// giving up with "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a writer that waits for the lock tries again. SQLite's own
/// busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then
/// 100 ms between tries, so a writer that has waited a while sleeps through
/// the few milliseconds between two batches of a cleanup and waits for the
/// next batch too: in `cargo bench --bench http` a request whose slide was
/// due waited up to 836 ms during the steady-state cleanup. Trying every
/// millisecond finds the lock free within a millisecond of its release; a
/// try is a lock attempt on the shared-memory file, with no I/O.
pub const BUSY_RETRY: Duration = Duration::from_millis(1);

/// The page cache of each connection, in KiB. Every worker has its own
/// connection, and in WAL mode a connection drops its whole cache whenever
/// another one commits, so SQLite's default (2,000 KiB) mostly holds pages
/// that will be thrown away: in `cargo bench --bench http` it made the
/// server's peak RSS 37.7 MiB against 20.8 MiB with this value, at the same
/// throughput (about 15 MiB with the SQLite build options of
/// `.cargo/config.toml`). Pages not cached come from the OS's file cache.
pub const PAGE_CACHE_KIB: i64 = 512;

/// How much of the database file each connection reads through a memory
/// map rather than `read()` into its page cache (SQLite's `mmap_size`).
/// With a million sessions most look-ups miss the small page cache, which
/// WAL mode empties whenever another connection commits; through the map
/// they are plain memory reads of the OS's file cache, shared by every
/// connection and process, and not the process's own (anonymous) memory.
/// Pages still in the WAL are read as before. Address space only: the file
/// is mapped up to its size, at most this.
pub const MMAP_BYTES: i64 = 1 << 30;

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

/// Makes `conn` wait for another writer's lock for up to [`BUSY_TIMEOUT`],
/// trying again every [`BUSY_RETRY`].
pub fn wait_when_busy(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(try_again_while_busy))
}

thread_local! {
    /// When the current wait for a lock began, on this thread.
    static BUSY_SINCE: std::cell::Cell<Option<std::time::Instant>> =
        const { std::cell::Cell::new(None) };
}

/// SQLite's busy handler: `tries` is how many times it was called before
/// for this lock (0 on the first); true asks SQLite to try again.
fn try_again_while_busy(tries: i32) -> bool {
    let now = std::time::Instant::now();
    let since = BUSY_SINCE.with(|since| {
        if tries == 0 || since.get().is_none() {
            since.set(Some(now));
        }
        since.get().unwrap_or(now)
    });
    if now.duration_since(since) >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(BUSY_RETRY);
    true
}

/// Gives a connection its busy handler back when dropped.
struct RestoreBusyTimeout<'a>(&'a Connection);

impl Drop for RestoreBusyTimeout<'_> {
    fn drop(&mut self) {
        // Setting a busy handler cannot fail on an open connection.
        let _ = wait_when_busy(self.0);
    }
}

/// An IMMEDIATE transaction that commits with `synchronous=FULL`: once
/// `commit` returns, the change survives a power loss. The connection's own
/// setting is put back when it is dropped, committed or not. SQLite does not
/// let the setting change inside a transaction, so the connection must not
/// be in one when this starts.
pub struct DurableTransaction<'conn> {
    tx: Option<Transaction<'conn>>,
    conn: &'conn Connection,
    previous: i64,
}

/// `PRAGMA synchronous=FULL`.
const SYNCHRONOUS_FULL: i64 = 2;

/// Starts a [`DurableTransaction`] on `conn`.
pub fn durable_transaction(conn: &Connection) -> rusqlite::Result<DurableTransaction<'_>> {
    let previous: i64 = conn.pragma_query_value(None, "synchronous", |row| row.get(0))?;
    conn.pragma_update(None, "synchronous", SYNCHRONOUS_FULL)?;
    match Transaction::new_unchecked(conn, TransactionBehavior::Immediate) {
        Ok(tx) => Ok(DurableTransaction { tx: Some(tx), conn, previous }),
        Err(error) => {
            let _ = conn.pragma_update(None, "synchronous", previous);
            Err(error)
        }
    }
}

impl DurableTransaction<'_> {
    /// Commits; the WAL is synced before this returns.
    pub fn commit(mut self) -> rusqlite::Result<()> {
        self.tx.take().expect("a transaction until it is committed").commit()
    }
}

impl std::ops::Deref for DurableTransaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.tx.as_ref().expect("a transaction until it is committed")
    }
}

impl Drop for DurableTransaction<'_> {
    fn drop(&mut self) {
        // Roll back first (when not committed): the setting cannot change
        // inside a transaction.
        drop(self.tx.take());
        let _ = self.conn.pragma_update(None, "synchronous", self.previous);
    }
}

/// Runs one write that ends access. On a connection outside a transaction it
/// gets a [`DurableTransaction`] of its own; inside one, the caller's
/// transaction must be durable (see [`DurableTransaction`]). `what` names the
/// write for [`durable_writes`].
pub fn ending_access<T>(
    conn: &Connection,
    what: &'static str,
    write: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
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
    /// The database file, as SQLite names it.
    pub db: PathBuf,
    /// The function that wrote, e.g. `web_sessions::delete`.
    pub what: &'static str,
    /// `PRAGMA synchronous` read inside the write's transaction, just before
    /// its commit: 2 is FULL.
    pub synchronous: i64,
}

static RECORDING: AtomicBool = AtomicBool::new(false);
static ENDING_WRITES: Mutex<Vec<EndingWrite>> = Mutex::new(Vec::new());

/// From now on, every write that ends access in this process is recorded
/// with the `synchronous` setting its transaction commits with, so that
/// tests can check it from the outside of each action. Off unless asked for:
/// recording costs one pragma read per such write.
pub fn record_ending_writes() {
    RECORDING.store(true, Ordering::SeqCst);
}

/// The writes that ended access on the database at `path`, in order, since
/// [`record_ending_writes`].
pub fn durable_writes(path: &Path) -> Vec<EndingWrite> {
    let wanted = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let writes = ENDING_WRITES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    writes.iter().filter(|write| write.db == wanted).cloned().collect()
}

fn note_ending_write(conn: &Connection, what: &'static str) -> rusqlite::Result<()> {
    if !RECORDING.load(Ordering::Relaxed) {
        return Ok(());
    }
    let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |row| row.get(0))?;
    let db = conn.path().map(PathBuf::from).unwrap_or_default();
    let db = std::fs::canonicalize(&db).unwrap_or(db);
    let mut writes = ENDING_WRITES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    writes.push(EndingWrite { db, what, synchronous });
    Ok(())
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
    let mut conn = open_waiting(path)
        .with_context(|| format!("failed to open database at `{}`", path.display()))?;
    migrate(&mut conn)
        .with_context(|| format!("failed to migrate database at `{}`", path.display()))?;
    Ok(conn)
}

/// Opens a database that must already exist, as [`open`] does. For the
/// commands that act on users and sessions: creating an empty database in
/// place of a missing one would let them report success (or "no such user")
/// against the wrong file while a server goes on using the real one.
pub fn open_existing(path: &Path) -> anyhow::Result<Connection> {
    match std::fs::metadata(path) {
        Ok(_) => open(path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no database at `{}` (a new one is made by `sessiond serve`, `sessiond createsuperuser` or `sessiond import`; name another with `--db`)",
            path.display()
        ),
        Err(error) => {
            Err(error).with_context(|| format!("failed to open database at `{}`", path.display()))
        }
    }
}

/// The database file a server opened, watched: [`FileWatch::check`] tells
/// whether the file at the path is still that file (same device and inode).
/// When it was deleted or replaced, SQLite goes on using the old file through
/// the descriptors it holds, unseen by every other process, so the server
/// must say so rather than serve from it.
#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    identity: Option<FileIdentity>,
    /// Whether the last check found the file gone or replaced, so that the
    /// log says it once per change rather than once per check.
    reported: AtomicBool,
}

/// What makes a file the same file: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
}

impl FileWatch {
    /// Watches the file at `path` as it is now; call it right after
    /// opening the database.
    pub fn new(path: &Path) -> FileWatch {
        FileWatch {
            path: path.to_path_buf(),
            identity: identity_of(path),
            reported: AtomicBool::new(false),
        }
    }

    /// `Err` with the reason when the file at the path is no longer the one
    /// opened; the first such check of a change logs it. One `stat`: cheaper
    /// than the query `/healthz` runs beside it.
    pub fn check(&self) -> Result<(), String> {
        let now = identity_of(&self.path);
        let problem = match (self.identity, now) {
            (Some(opened), Some(now)) if opened == now => None,
            (_, None) => Some(format!(
                "the database file `{}` was deleted while the server runs",
                self.path.display()
            )),
            (_, Some(_)) => Some(format!(
                "the database file `{}` was replaced by another file while the server runs",
                self.path.display()
            )),
        };
        match problem {
            None => {
                self.reported.store(false, Ordering::Relaxed);
                Ok(())
            }
            Some(problem) => {
                if !self.reported.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "error: {problem}; this server still uses the file it opened, which no other process sees: restart it"
                    );
                }
                Err(problem)
            }
        }
    }
}

#[cfg(unix)]
fn identity_of(path: &Path) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileIdentity { device: metadata.dev(), inode: metadata.ino() })
}

#[cfg(not(unix))]
fn identity_of(path: &Path) -> Option<FileIdentity> {
    std::fs::metadata(path).ok().map(|_| FileIdentity { device: 0, inode: 0 })
}

/// Whether the database answers a query, for `/healthz`.
pub fn ping(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("SELECT count(*) FROM meta", [], |row| row.get::<_, i64>(0)).map(|_| ())
}

/// Opens one more connection to a database that [`open`] has already
/// migrated; used by each worker thread.
///
/// These connections (a server's workers, its timer, its metrics) do not
/// checkpoint when they close. SQLite 3.51's unix VFS can deadlock two
/// connections to one file that close at the same moment, as a stopping
/// server's threads do: the one that checkpoints on close asks for an
/// exclusive lock holding the file's lock mutex and then wants the VFS's
/// global mutex (`unixIsSharingShmNode`), while the other holds the global
/// mutex in `unixClose` and wants the file's (seen as a test that hung at
/// stop). Without the checkpoint-on-close nothing takes that lock; the WAL
/// is still checkpointed as it grows, and [`checkpoint`] merges it when the
/// server has stopped, so that the file alone is whole again.
pub fn connect(path: &Path) -> anyhow::Result<Connection> {
    let conn = open_waiting(path)
        .with_context(|| format!("failed to open database at `{}`", path.display()))?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(conn)
}

/// Merges the WAL into the database file and empties it, on a connection of
/// its own; for a server whose threads have all stopped. Best effort: a
/// reader elsewhere may keep part of the WAL, which the next open reads.
pub fn checkpoint(path: &Path) {
    if let Ok(conn) = open_waiting(path) {
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}

/// [`open_connection`], tried again while the database is busy, for up to
/// [`BUSY_TIMEOUT`]. Setting up a connection can meet "database is locked"
/// without SQLite's busy handler being asked: `journal_mode=WAL` while
/// another process turns a new file into WAL or recovers its WAL. Three
/// `serve` processes started at once on a new file hit it about one time in
/// forty here (`db_file::three_servers_starting_at_once_on_a_new_file_agree`).
fn open_waiting(path: &Path) -> rusqlite::Result<Connection> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match open_connection(path) {
            Err(rusqlite::Error::SqliteFailure(error, _))
                if matches!(
                    error.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            result => return result,
        }
    }
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

/// The mode of every file sessiond writes that holds hashes or secrets (the
/// database, `.env`, backups, exports): readable by its owner only.
#[cfg(unix)]
pub fn private_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o600)
}

#[cfg(not(unix))]
pub fn private_permissions() -> std::fs::Permissions {
    std::fs::metadata(".").map(|m| m.permissions()).expect("the working directory exists")
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
    wait_when_busy(&conn)?;
    // WAL lets readers go on while one writer writes, across processes.
    // synchronous=NORMAL in WAL mode keeps every committed transaction across
    // a crash of the process; only a power loss can drop the last commits.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
    // This pragma answers with the size in force, a row `pragma_update`
    // would refuse.
    let _: i64 = conn.pragma_update_and_check(None, "mmap_size", MMAP_BYTES, |row| row.get(0))?;
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
    // 3: one row per scheduled cleanup time, written by the first server on
    // the file to claim it, in the same transaction as its run's record; the
    // other servers see it and skip that time.
    "
    CREATE TABLE cleanup_claims (
        scheduled_at INTEGER PRIMARY KEY,
        run_id       INTEGER NOT NULL,
        claimed_at   INTEGER NOT NULL
    );
    ",
    // 4: usernames unique regardless of case (sign-in and the throttle fold
    // case), through an index that the case-insensitive look-ups use. Before
    // it runs, `migrate_to` refuses a database whose users break it.
    USERNAMES_UNIQUE_REGARDLESS_OF_CASE,
    // 5: the login throttle's failures, in the database so that every server
    // and process on the file counts them together (SPEC 11): one row per
    // attempt and key (`kind` 0 = username, 1 = client address).
    "
    CREATE TABLE login_failures (
        id      INTEGER PRIMARY KEY,
        kind    INTEGER NOT NULL,
        key     TEXT NOT NULL,
        at      INTEGER NOT NULL,
        attempt TEXT NOT NULL
    );
    CREATE INDEX login_failures_key ON login_failures(kind, key, at);
    CREATE INDEX login_failures_at ON login_failures(at);
    CREATE INDEX login_failures_attempt ON login_failures(attempt);
    ",
    // 6: forward-auth rules (SPEC 9), tried in `id` order; `path` NULL when
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

/// Migration step 4 (see [`MIGRATIONS`]).
const USERNAMES_UNIQUE_REGARDLESS_OF_CASE: &str = "
    CREATE UNIQUE INDEX users_username_nocase ON users(username COLLATE NOCASE);
    ";

/// The `user_version` of a database this program has migrated.
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Applies the migrations that this file has not seen yet, all in one
/// transaction; running it twice is a no-op.
///
/// Several processes may start at once on one file: the IMMEDIATE
/// transaction waits (up to the busy timeout) for another one migrating, and
/// `user_version` is read inside it, so whoever comes second finds the work
/// done. A step that the data does not allow (usernames that differ only in
/// case) is refused with what to do, and nothing changes.
pub fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    migrate_to(conn, MIGRATIONS.len())
}

/// [`migrate`] up to schema version `target` only; tests use it to make a
/// database as an older sessiond left it.
pub fn migrate_to(conn: &mut Connection, target: usize) -> anyhow::Result<()> {
    let target = target.min(MIGRATIONS.len());
    let db = conn.path().unwrap_or("").to_owned();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let version = usize::try_from(version).unwrap_or(0);
    for step in MIGRATIONS.iter().take(target).skip(version) {
        if *step == USERNAMES_UNIQUE_REGARDLESS_OF_CASE {
            refuse_case_duplicates(&tx, &db)?;
        }
        tx.execute_batch(step)?;
    }
    if version < target {
        tx.pragma_update(None, "user_version", target as i64)?;
    }
    tx.commit()?;
    Ok(())
}

/// The schema version just before usernames became unique regardless of
/// case.
pub fn version_before_usernames_unique_regardless_of_case() -> usize {
    MIGRATIONS
        .iter()
        .position(|step| *step == USERNAMES_UNIQUE_REGARDLESS_OF_CASE)
        .expect("the step is in the list")
}

/// Fails, naming them, when some usernames differ only in case.
fn refuse_case_duplicates(conn: &Connection, db: &str) -> anyhow::Result<()> {
    let groups = crate::users::case_duplicates(conn)?;
    let Some(first) = groups.first() else {
        return Ok(());
    };
    let named: Vec<String> = groups
        .iter()
        .map(|group| group.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", "))
        .collect();
    anyhow::bail!(
        "usernames must be unique regardless of case, and these differ only in case: {}; rename all but one of each and start again, e.g. `sqlite3 '{db}' \"UPDATE users SET username = '{}-2' WHERE username = '{}'\"` (nothing was changed)",
        named.join("; "),
        first[1],
        first[1]
    )
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

    /// A writer that has waited a while still gets in within the short gap
    /// between two long holds of the lock (as between two batches of a
    /// cleanup). SQLite's own handler sleeps 100 ms between tries by then
    /// and would wait for the holder to finish all its holds.
    #[test]
    fn a_waiting_writer_gets_in_between_two_holds_of_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let holder = open(&path).unwrap();
        let waiter = connect(&path).unwrap();
        let hold = Duration::from_millis(200);
        let gap = Duration::from_millis(10);
        let holds = 5;
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let release = std::thread::spawn(move || {
            for number in 1..=holds {
                std::thread::sleep(hold);
                holder.execute_batch("COMMIT").unwrap();
                std::thread::sleep(gap);
                if number < holds {
                    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
                }
            }
        });
        let started = std::time::Instant::now();
        waiter.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')", []).unwrap();
        let waited = started.elapsed();
        release.join().unwrap();
        assert!(
            waited < 2 * hold,
            "the writer waited {waited:?}, past the first gap after {hold:?}"
        );
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

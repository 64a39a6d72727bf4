//! The SQLite side of the engine layer: opening a file with one set of
//! pragmas (WAL, a busy timeout, foreign keys on) so that several threads
//! and processes can share it, the file's watch for `/healthz`, and the
//! SQLite migrations, tracked by `PRAGMA user_version`. Only `db` uses it;
//! it runs no query on behalf of a table module.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};

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

/// Runs `write` without waiting for another writer: `Ok(None)` when the
/// database is locked at this moment (see [`super::unless_busy`]).
pub(super) fn unless_busy<T>(
    conn: &Connection,
    write: impl FnOnce() -> super::Result<T>,
) -> super::Result<Option<T>> {
    conn.busy_timeout(Duration::ZERO)?;
    // Put back even if `write` panics: a worker's connection outlives a
    // request whose handler panicked.
    let _restore = RestoreBusyTimeout(conn);
    match write() {
        Ok(value) => Ok(Some(value)),
        Err(super::Error::Sqlite(rusqlite::Error::SqliteFailure(error, _)))
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

/// `PRAGMA synchronous=FULL`.
const SYNCHRONOUS_FULL: i64 = 2;

/// Sets `synchronous=FULL` for the next commit; returns the setting to put
/// back after it.
pub(super) fn synchronous_full(conn: &Connection) -> rusqlite::Result<i64> {
    let previous: i64 = conn.pragma_query_value(None, "synchronous", |row| row.get(0))?;
    conn.pragma_update(None, "synchronous", SYNCHRONOUS_FULL)?;
    Ok(previous)
}

/// Opens (creating when missing) the database file and brings its schema up
/// to date. The folder is created too. The file holds session hashes and may
/// hold the generated signing keys, so it is made readable by its owner only
/// (SQLite gives its `-wal` and `-shm` files the same mode).
pub(super) fn open(path: &Path) -> anyhow::Result<Connection> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        create_private_folder(parent)
            .with_context(|| format!("failed to create folder `{}`", parent.display()))?;
    }
    make_private_file(path)
        .with_context(|| format!("failed to create database file `{}`", path.display()))?;
    let conn = open_waiting(path)
        .with_context(|| format!("failed to open database at `{}`", path.display()))?;
    let conn = super::Conn::sqlite(conn);
    migrate_to(&conn, MIGRATIONS.len())
        .with_context(|| format!("failed to migrate database at `{}`", path.display()))?;
    Ok(conn.into_sqlite())
}

/// Opens a database that must already exist, as [`open`] does. For the
/// commands that act on users and sessions: creating an empty database in
/// place of a missing one would let them report success (or "no such user")
/// against the wrong file while a server goes on using the real one.
pub(super) fn open_existing(path: &Path) -> anyhow::Result<Connection> {
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
    /// False for a PostgreSQL database: there is no file to watch, and
    /// `/healthz` asks the server itself.
    watched: bool,
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
            watched: !super::is_postgres_url(path),
            path: path.to_path_buf(),
            identity: identity_of(path),
            reported: AtomicBool::new(false),
        }
    }

    /// `Err` with the reason when the file at the path is no longer the one
    /// opened; the first such check of a change logs it. One `stat`: cheaper
    /// than the query `/healthz` runs beside it.
    pub fn check(&self) -> Result<(), String> {
        if !self.watched {
            return Ok(());
        }
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

/// Opens one more connection to a database that [`open`] has already
/// migrated; used by each HTTP worker.
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
pub(super) fn connect(path: &Path) -> anyhow::Result<Connection> {
    let conn = open_waiting(path)
        .with_context(|| format!("failed to open database at `{}`", path.display()))?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(conn)
}

/// Merges the WAL into the database file and empties it, on a connection of
/// its own; for a server whose threads have all stopped. Best effort: a
/// reader elsewhere may keep part of the WAL, which the next open reads.
pub fn checkpoint(path: &Path) {
    if super::is_postgres_url(path) {
        return;
    }
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

/// Never creates the file: [`open`] makes it first (mode 0600), and any
/// later connection (a worker's, the timer's, the stop's checkpoint) that
/// finds it gone must fail, not leave a new empty database at the path of
/// one deleted under the server (seen as `db_file`'s deleted-file test
/// reporting "replaced": the timer had made an empty file there).
fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
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
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 7: no index on the expiry alone. Every slide moved an entry of each
    // index holding `expire_date`; `web_sessions_user_expiry` serves what
    // this one did (the expired rows of all users are its ranges, one per
    // user: `web_sessions::count_expired_and_all`), and slides without it wrote
    // 2.1 times as fast alone and 1.15 times in groups of 16 (`cargo bench
    // --bench slide_cost`).
    "
    DROP INDEX web_sessions_expire_date;
    ",
    // 8: no index on the random key hashes. A cookie carries its row id
    // (`web_sessions`), which finds the row through the table itself; every
    // delete rewrote a page of the hash index at random, and the cleanup of
    // 100,000 rows beside a million took 3.8-4.0 s with it and 1.1 s without
    // (the table rebuilt either way, by hand). The rows already here have
    // cookies of their key alone: they are marked `found_by_hash`, and a
    // partial index holds their hashes only. SQLite drops a UNIQUE column
    // constraint only by building the table again.
    "
    CREATE TABLE web_sessions_8 (
        id            INTEGER PRIMARY KEY,
        key_hash      BLOB NOT NULL,
        user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created       INTEGER NOT NULL,
        last_activity INTEGER NOT NULL,
        expire_date   INTEGER NOT NULL,
        client_addr   TEXT NOT NULL DEFAULT '',
        user_agent    TEXT NOT NULL DEFAULT '',
        found_by_hash INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO web_sessions_8
        (id, key_hash, user_id, created, last_activity, expire_date, client_addr, user_agent, found_by_hash)
        SELECT id, key_hash, user_id, created, last_activity, expire_date, client_addr, user_agent, 1
        FROM web_sessions ORDER BY id;
    DROP TABLE web_sessions;
    ALTER TABLE web_sessions_8 RENAME TO web_sessions;
    CREATE INDEX web_sessions_user ON web_sessions(user_id, id);
    CREATE INDEX web_sessions_user_expiry ON web_sessions(user_id, expire_date);
    CREATE UNIQUE INDEX web_sessions_found_by_hash ON web_sessions(key_hash)
        WHERE found_by_hash = 1;
    ",
];

/// Migration step 4 (see [`MIGRATIONS`]).
const USERNAMES_UNIQUE_REGARDLESS_OF_CASE: &str = "
    CREATE UNIQUE INDEX users_username_nocase ON users(username COLLATE NOCASE);
    ";

/// Applies the migrations up to `target` that this file has not seen yet,
/// all in one transaction; running it twice is a no-op.
///
/// Several processes may start at once on one file: the IMMEDIATE
/// transaction waits (up to the busy timeout) for another one migrating, and
/// `user_version` is read inside it, so whoever comes second finds the work
/// done. A step that the data does not allow (usernames that differ only in
/// case) is refused with what to do, and nothing changes.
pub(super) fn migrate_to(conn: &super::Conn, target: usize) -> anyhow::Result<()> {
    let sqlite = conn.as_sqlite().expect("a SQLite connection");
    let target = target.min(MIGRATIONS.len());
    let db = sqlite.path().unwrap_or("").to_owned();
    let tx = conn.transaction(super::Behavior::Immediate)?;
    let version: i64 = sqlite.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let version = usize::try_from(version).unwrap_or(0);
    for step in MIGRATIONS.iter().take(target).skip(version) {
        if *step == USERNAMES_UNIQUE_REGARDLESS_OF_CASE {
            refuse_case_duplicates(&tx, &db)?;
        }
        tx.execute_batch(step)?;
    }
    if version < target {
        sqlite.pragma_update(None, "user_version", target as i64)?;
    }
    tx.commit()?;
    Ok(())
}

/// The schema version just before usernames became unique regardless of
/// case.
pub(super) fn version_before_usernames_unique_regardless_of_case() -> usize {
    MIGRATIONS
        .iter()
        .position(|step| *step == USERNAMES_UNIQUE_REGARDLESS_OF_CASE)
        .expect("the step is in the list")
}

/// Fails, naming them, when some usernames differ only in case.
fn refuse_case_duplicates(conn: &super::Conn, db: &str) -> anyhow::Result<()> {
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
    use crate::db::{Conn, params, unless_busy};

    #[test]
    fn migrating_twice_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/db.sqlite3");
        let mut conn = crate::db::open(&path).unwrap();
        conn.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')", []).unwrap();
        crate::db::migrate(&mut conn).unwrap();
        let version: i64 = conn
            .as_sqlite()
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let value: String = conn.query_row("SELECT value FROM meta", [], |r| r.get(0)).unwrap();
        assert_eq!(value, "v");
    }

    #[test]
    fn unless_busy_gives_up_at_once_and_puts_the_busy_timeout_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let holder = crate::db::open(&path).unwrap();
        let conn = crate::db::connect(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let insert = |conn: &Conn| {
            conn.execute("INSERT INTO meta (key, value) VALUES ($1, 'v')", params!["k"])
        };

        assert_eq!(unless_busy(&conn, insert).unwrap(), None);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            unless_busy(&conn, |_| -> crate::db::Result<()> { panic!("a bug in the write") })
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
        let holder = crate::db::open(&path).unwrap();
        let waiter = crate::db::connect(&path).unwrap();
        let (locked, is_locked) = std::sync::mpsc::channel();
        let release = std::thread::spawn(move || {
            let tx = holder.transaction(crate::db::Behavior::Immediate).unwrap();
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

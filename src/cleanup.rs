//! Removing expired sessions, and the record of every cleanup run.
//!
//! One function, [`clear_expired`], serves `sessiond clear_expired_sessions`,
//! `sessiond schedule run`, the timer and the admin button. It deletes web
//! sessions whose `expire_date` has passed and JWT rows whose `expires_at`
//! has passed (a revoked row stays until it expires), one table at a time,
//! in one of two ways:
//!
//! - When more rows have expired than are live, at most [`KEEP_LIVE_MAX`]
//!   are live and at most [`EMPTY_EXPIRED_MAX`] have expired (a backlog, or
//!   the first run in a long while): one transaction copies the live rows
//!   aside, empties the table and puts them back. SQLite frees an emptied table's pages without
//!   visiting its rows, so this costs about a third of a second for a
//!   million expired rows.
//! - Otherwise, in batches of [`BATCH_SIZE`] rows, each read outside any
//!   write transaction (web sessions in order of user, JWT rows in order of
//!   expiry) and then deleted in its own short IMMEDIATE transaction, with a
//!   pause after it (5 ms, and while other connections write, as long as
//!   the batch took): other writers, in this process or another, get in
//!   between two batches instead of waiting for the whole cleanup. A
//!   batch holds the write lock for tens of milliseconds, so that a request
//!   whose sliding expiry must be written waits at most about that long
//!   (`db::BUSY_RETRY` lets it in as soon as the lock is free). Deleting row
//!   by row costs far more per row (each batch rewrites pages of the
//!   table and its indexes, and of the JWT ids' index at random), which is
//!   why it is kept for when most rows stay.
//!
//! On PostgreSQL it always deletes page range after page range, each range
//! one `DELETE` that takes no lock but its rows' (see `clear_table`).
//!
//! Readers are never held up either way (WAL). The SQL lives in
//! `web_sessions` and `jwt_sessions`; this module chooses, and owns the
//! `cleanup_runs` table, where it records every run, a failed one too
//! (a row written as `running` when the run starts, completed when it ends),
//! and the `cleanup_claims` table: several servers on one file each run the
//! timer, and the first to claim a scheduled time (its row, written in the
//! same transaction as the start of its run) is the only one to run it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::db::{Behavior, Conn, Engine, params};

use crate::clock::UnixTime;

/// Rows deleted per transaction. Each batch holds the write lock while it
/// rewrites the pages its rows are on and checkpoints, and a
/// request whose sliding expiry is past its allowed lag waits for it: with
/// 10,000 rows a batch held it about 400 ms beside a million live sessions,
/// and in `cargo bench --bench http` the cookie p99 during the steady-state
/// cleanup was 28 times its value without. With 1,000 a batch took 35 ms
/// (the sqlite3 shell on the bench's database) and 48 ms (a bench run on a
/// loaded machine), with the key-hash index that migration 8 dropped: a
/// page of it rewritten for nearly every row.
pub const BATCH_SIZE: usize = 1_000;

/// The pages of a batch on PostgreSQL, where readers never wait for a
/// writer: about 11,000 of the bench's rows, deleted in about 15 ms when
/// all have expired.
pub const PG_BATCH_PAGES: i64 = 200;

/// The most live rows a table may hold for the cleanup to empty it and put
/// them back in one transaction, which holds the write lock while it copies
/// them twice. Above it, batches.
pub const KEEP_LIVE_MAX: usize = 50_000;

/// The most expired rows the cleanup frees in one transaction by emptying a
/// table. Freeing their pages holds the write lock for about 0.3 s per
/// million rows here, so this keeps it near 1.5 s, far below the busy
/// timeout that other writers wait; a larger backlog goes in batches.
pub const EMPTY_EXPIRED_MAX: usize = 5_000_000;

/// The shortest pause after each full batch, and the whole pause while no
/// other connection writes (see [`pause_after`]). SQLite's busy handler is
/// not a queue: a writer that waits retries now and then (every
/// `db::BUSY_RETRY`), and gets in only when its retry falls between two
/// batches. Without a gap a request could wait for the whole cleanup.
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// The page cache of the cleaning connection while it deletes in batches,
/// in KiB. The unique index on random JWT ids (`jti`) gets a delete on
/// nearly every page in each batch; with the default 2 MiB cache
/// each batch would read them all again. Emptying a table reads each page
/// once and gains nothing from it, so it keeps the default: in `serve` the
/// timer cleans on its own connection, inside the server's memory.
const CLEANUP_CACHE_KIB: i64 = 64 * 1024;

/// WAL pages after which a commit of the cleaning connection checkpoints,
/// while it cleans: SQLite's default, so that the cleanup checkpoints each
/// batch itself. With a larger value the WAL grew past 1,000 pages between
/// the cleanup's own checkpoints, and the next commit of a request (a
/// sliding expiry) ran the checkpoint of the cleanup's pages, with its two
/// syncs, before it could answer. The idle cleanup that empties a table
/// writes one transaction and gains nothing from a larger value either.
const CLEANUP_AUTOCHECKPOINT_PAGES: i64 = 1_000;

/// How many recorded runs are kept; older records are dropped when a new
/// run is recorded.
pub const RUNS_KEPT: i64 = 1_000;

/// What started a cleanup run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Timer,
    Command,
    Admin,
}

impl Trigger {
    /// The name stored in `cleanup_runs.trigger`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Timer => "timer",
            Trigger::Command => "command",
            Trigger::Admin => "admin",
        }
    }
}

/// One recorded cleanup run.
#[derive(Debug, Clone)]
pub struct CleanupRun {
    pub id: i64,
    pub trigger: String,
    pub started: UnixTime,
    pub duration_ms: i64,
    pub web_deleted: usize,
    pub jwt_deleted: usize,
    /// `ok`, or the error that stopped the run.
    pub outcome: String,
}

impl CleanupRun {
    pub fn is_ok(&self) -> bool {
        self.outcome == OUTCOME_OK
    }
}

/// The outcome of a run that finished.
pub const OUTCOME_OK: &str = "ok";

/// Deletes expired web and JWT sessions in bounded batches and records the
/// run. A failed run is recorded with what it deleted before the failure, and
/// then returned as the error.
pub fn clear_expired(
    conn: &mut Conn,
    now: UnixTime,
    trigger: Trigger,
) -> anyhow::Result<CleanupRun> {
    clear_expired_unless(conn, now, trigger, &AtomicBool::new(false))
}

/// [`clear_expired`] that stops between two batches once `stop` is set (the
/// server is shutting down); such a run is recorded as interrupted.
pub fn clear_expired_unless(
    conn: &mut Conn,
    now: UnixTime,
    trigger: Trigger,
    stop: &AtomicBool,
) -> anyhow::Result<CleanupRun> {
    let tx = conn.transaction(Behavior::Immediate)?;
    let run_id = start_run(&tx, trigger, now)?;
    tx.commit()?;
    run_started(conn, run_id, now, trigger, stop)
}

/// The run the schedule set for `scheduled_at`, made by whichever server
/// claims that time first: `Ok(None)` when another one (or this one) has
/// claimed it already. The claim and the start of the run's record are one
/// transaction, so a time is run and recorded once across every server on
/// the file.
pub fn clear_expired_scheduled(
    conn: &mut Conn,
    scheduled_at: UnixTime,
    now: UnixTime,
    stop: &AtomicBool,
) -> anyhow::Result<Option<CleanupRun>> {
    let tx = conn.transaction(Behavior::Immediate)?;
    let run_id = start_run(&tx, Trigger::Timer, now)?;
    let claimed = tx
        .prepare_cached(
            "INSERT INTO cleanup_claims (scheduled_at, run_id, claimed_at) VALUES ($1, $2, $3)
             ON CONFLICT (scheduled_at) DO NOTHING",
        )?
        .execute(params![scheduled_at, run_id, now])?;
    if claimed == 0 {
        // Rolled back: the run's record goes with it.
        return Ok(None);
    }
    tx.prepare_cached("DELETE FROM cleanup_claims WHERE scheduled_at < $1")?
        .execute(params![scheduled_at - CLAIMS_KEPT_SECONDS])?;
    tx.commit()?;
    run_started(conn, run_id, now, Trigger::Timer, stop).map(Some)
}

/// How long a claim is kept after its scheduled time: far longer than any
/// two servers' clocks may disagree, short enough that a schedule of every
/// minute keeps a few thousand rows.
const CLAIMS_KEPT_SECONDS: i64 = 3 * 24 * 3600;

/// The outcome stored while a run is under way (or when the process running
/// it was killed).
pub const OUTCOME_RUNNING: &str = "running";

/// Writes the record of a run that starts now; [`finish_run`] completes it.
fn start_run(conn: &Conn, trigger: Trigger, started: UnixTime) -> crate::db::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO cleanup_runs (trigger, started, duration_ms, web_deleted, jwt_deleted, outcome)
         VALUES ($1, $2, 0, 0, 0, $3) RETURNING id",
    )?
    .query_row(params![trigger.as_str(), started, OUTCOME_RUNNING], |row| row.get(0))
}

/// Deletes the expired rows for the run whose record `start_run` wrote, and
/// completes the record.
fn run_started(
    conn: &mut Conn,
    run_id: i64,
    now: UnixTime,
    trigger: Trigger,
    stop: &AtomicBool,
) -> anyhow::Result<CleanupRun> {
    let timer = Instant::now();
    let mut counts = DeletedRows::default();
    let result = widen_connection(conn).and_then(|previous| {
        let result = delete_expired(conn, now, stop, &mut counts);
        let restored = restore_connection(conn, previous);
        result.and(restored.map_err(anyhow::Error::from))
    });
    let duration_ms = i64::try_from(timer.elapsed().as_millis()).unwrap_or(i64::MAX);
    let outcome = match &result {
        Ok(()) => OUTCOME_OK.to_owned(),
        Err(error) => format!("failed: {error}"),
    };
    let recorded = finish_run(conn, run_id, trigger, now, duration_ms, counts, &outcome);
    match (result, recorded) {
        (Ok(()), Ok(run)) => Ok(run),
        (Ok(()), Err(error)) => Err(error.context("failed to record the cleanup run")),
        (Err(error), _) => Err(anyhow::anyhow!(
            "the cleanup stopped after deleting {} expired web session(s) and {} expired GraphQL login session(s): {error}",
            counts.web,
            counts.jwt
        )),
    }
}

/// The most recent runs, newest first.
pub fn recent_runs(conn: &Conn, limit: usize) -> crate::db::Result<Vec<CleanupRun>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, trigger, started, duration_ms, web_deleted, jwt_deleted, outcome
         FROM cleanup_runs ORDER BY id DESC LIMIT $1",
    )?;
    let rows = statement.query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
        Ok(CleanupRun {
            id: row.get(0)?,
            trigger: row.get(1)?,
            started: row.get(2)?,
            duration_ms: row.get(3)?,
            web_deleted: row.get::<_, i64>(4)?.try_into().unwrap_or(0),
            jwt_deleted: row.get::<_, i64>(5)?.try_into().unwrap_or(0),
            outcome: row.get(6)?,
        })
    })?;
    rows.collect()
}

/// When the most recent successful run, of any trigger and any process,
/// started; `None` when no successful run is recorded.
pub fn last_success_started(conn: &Conn) -> crate::db::Result<Option<UnixTime>> {
    conn.prepare_cached("SELECT max(started) FROM cleanup_runs WHERE outcome = $1")?
        .query_row(params![OUTCOME_OK], |row| row.get(0))
}

/// Rows a run has deleted so far, by table.
#[derive(Debug, Default, Clone, Copy)]
struct DeletedRows {
    web: usize,
    jwt: usize,
}

/// Why a run ended early without a database error.
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted by shutdown")
    }
}

impl std::error::Error for Interrupted {}

/// Clears web sessions, then JWT rows. `counts` holds what was committed,
/// even when an error stops it.
fn delete_expired(
    conn: &mut Conn,
    now: UnixTime,
    stop: &AtomicBool,
    counts: &mut DeletedRows,
) -> anyhow::Result<()> {
    clear_table(conn, now, stop, &WEB_SESSIONS, &mut counts.web)?;
    clear_table(conn, now, stop, &JWT_SESSIONS, &mut counts.jwt)
}

/// Reads a batch of expired rows: (now, from position, limit) to (row id,
/// position) pairs.
type ExpiredBatch = fn(&Conn, UnixTime, i64, usize) -> crate::db::Result<Vec<(i64, i64)>>;

/// How one table's expired rows are counted and deleted; the SQL lives in
/// the table's own module.
struct TableCleanup {
    count_expired_and_live: fn(&Conn, UnixTime) -> crate::db::Result<(usize, usize)>,
    delete_expired_keeping_live: fn(&Conn, UnixTime) -> crate::db::Result<usize>,
    /// SQLite: up to a limit of expired rows from a position on, in the
    /// table's order for the cleanup: (row id, position).
    expired_batch: ExpiredBatch,
    /// SQLite: deletes the rows of these ids that have still expired.
    delete_expired_rows: fn(&Conn, UnixTime, &[i64]) -> crate::db::Result<usize>,
    /// PostgreSQL: how many pages the table holds.
    pages: fn(&Conn) -> crate::db::Result<i64>,
    /// PostgreSQL: deletes the expired rows of a page range (from, to).
    delete_expired_in_pages: fn(&Conn, UnixTime, i64, i64) -> crate::db::Result<usize>,
}

const WEB_SESSIONS: TableCleanup = TableCleanup {
    count_expired_and_live: crate::web_sessions::count_expired_and_live,
    delete_expired_keeping_live: crate::web_sessions::delete_expired_keeping_live,
    expired_batch: crate::web_sessions::expired_batch,
    delete_expired_rows: crate::web_sessions::delete_expired_rows,
    pages: crate::web_sessions::pages,
    delete_expired_in_pages: crate::web_sessions::delete_expired_in_pages,
};

const JWT_SESSIONS: TableCleanup = TableCleanup {
    count_expired_and_live: crate::jwt_sessions::count_expired_and_live,
    delete_expired_keeping_live: crate::jwt_sessions::delete_expired_keeping_live,
    expired_batch: crate::jwt_sessions::expired_batch,
    delete_expired_rows: crate::jwt_sessions::delete_expired_rows,
    pages: crate::jwt_sessions::pages,
    delete_expired_in_pages: crate::jwt_sessions::delete_expired_in_pages,
};

/// Deletes one table's expired rows, adding each committed count to
/// `deleted`. On PostgreSQL, page range after page range. On SQLite, when
/// more rows have expired than live and the live ones are few, in one
/// transaction that copies the live rows aside, empties the table and puts
/// them back: its cost follows the live rows and the table's size, not the
/// expired rows times the indexes' pages. Otherwise batch after batch, each
/// read outside the write lock and deleted inside it, until a batch comes
/// back short.
fn clear_table(
    conn: &mut Conn,
    now: UnixTime,
    stop: &AtomicBool,
    table: &TableCleanup,
    deleted: &mut usize,
) -> anyhow::Result<()> {
    if conn.engine() == Engine::Postgres {
        // PostgreSQL has no safe way to empty a table that others read
        // (TRUNCATE locks them out, and a snapshot taken before it sees the
        // table empty): always batches there, page range after page range
        // up to the pages the table had at the start (rows stored later are
        // live). Each batch is one DELETE, its own transaction and one round
        // trip, without the advisory write lock and without a pause:
        // PostgreSQL locks the rows it deletes, and those have expired, so
        // no other writer needs them (a request that read its session just
        // before it expired and then writes its slide either finds the row
        // gone, as after a logout, or has moved its expiry, which the
        // delete checks again and then leaves it alone); readers never
        // wait. Under load a batch's four round trips (begin with the lock,
        // `SET LOCAL`, delete, commit) and the pause each waited for the
        // processes to be scheduled again: 1.1 M rows took 7.3 s under
        // load on a development cluster, 2.3 s idle (4.6 and 1.2 s now).
        // A batch lost to a power cut only brings back rows that have
        // expired (never served); the run's record, committed durably after
        // the last batch, makes every batch before it durable too.
        let pages = (table.pages)(conn)?;
        return crate::db::without_flush(conn, |conn| {
            let mut from = 0;
            while from < pages {
                if stop.load(Ordering::SeqCst) {
                    return Err(Interrupted.into());
                }
                let to = from.saturating_add(PG_BATCH_PAGES);
                *deleted += (table.delete_expired_in_pages)(conn, now, from, to)?;
                from = to;
            }
            Ok(())
        });
    }
    let (expired, live) = (table.count_expired_and_live)(conn, now)?;
    if empties_the_table(expired, live) {
        // SQLite empties a table without visiting its rows only when no
        // foreign key needs checking; the rows taken out and put back break
        // none.
        *deleted += with_pragma(conn, "foreign_keys", 0, |conn| {
            in_batch(conn, stop, |tx| (table.delete_expired_keeping_live)(tx, now))
        })?;
        return Ok(());
    }
    with_pragma(conn, "cache_size", -CLEANUP_CACHE_KIB, |conn| {
        let mut from = i64::MIN;
        let mut commits_seen = others_commits(conn)?;
        loop {
            let batch = (table.expired_batch)(conn, now, from, BATCH_SIZE)?;
            let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
            let started = Instant::now();
            if !ids.is_empty() {
                *deleted += in_batch(conn, stop, |tx| (table.delete_expired_rows)(tx, now, &ids))?;
            }
            let took = started.elapsed();
            if batch.len() < BATCH_SIZE {
                return Ok(());
            }
            // The rows just deleted are gone, so the next batch starts at
            // the last position, which may hold more expired rows.
            from = batch.iter().map(|(_, position)| *position).max().unwrap_or(from);
            let commits = others_commits(conn)?;
            std::thread::sleep(pause_after(took, commits != commits_seen));
            commits_seen = commits;
        }
    })
}

/// The longest pause after a batch, however long the batch took.
const LONGEST_BATCH_PAUSE: Duration = Duration::from_millis(50);

/// A count of other connections' commits (in any process): SQLite's
/// `data_version`, which moves when another connection has committed since
/// this one last read it, and never for this connection's own commits.
/// SQLite only, as the batches that read it (PostgreSQL's batches take no
/// lock that a writer waits for).
fn others_commits(conn: &Conn) -> crate::db::Result<i64> {
    conn.query_row("PRAGMA data_version", params![], |row| row.get(0))
}

/// The pause after a batch that took `took` (its deletes, its commit and
/// its checkpoint): [`BATCH_PAUSE`] while nobody else writes, and when
/// another connection committed since the batch before (`others_wrote`),
/// as long as the batch took, within [`LONGEST_BATCH_PAUSE`], so that
/// writers get at least half the time. A slide past its allowed lag must be
/// written before its answer and waits for the lock: with 5 ms gaps, cookie
/// whoami with most slides due had a p99 of 39-89 ms during the
/// steady-state cleanup (9.7 ms without); with these pauses 20-22 ms in 11
/// runs of 17, and 29-121 ms in the others (see the README's "The
/// steady-state cleanup yields to writers").
fn pause_after(took: Duration, others_wrote: bool) -> Duration {
    if others_wrote { took.clamp(BATCH_PAUSE, LONGEST_BATCH_PAUSE) } else { BATCH_PAUSE }
}

/// Whether a table with these counts is cleaned by emptying it and putting
/// the live rows back, rather than in batches.
fn empties_the_table(expired: usize, live: usize) -> bool {
    expired > live && live <= KEEP_LIVE_MAX && expired <= EMPTY_EXPIRED_MAX
}

/// Runs `work` with the connection's integer pragma `name` set to `value`,
/// and puts the previous value back after it, whatever it returns.
fn with_pragma<T>(
    conn: &mut Conn,
    name: &str,
    value: i64,
    work: impl FnOnce(&mut Conn) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let Some(sqlite) = conn.as_sqlite() else {
        // PostgreSQL: these are SQLite's pragmas.
        return work(conn);
    };
    let previous: i64 = sqlite.pragma_query_value(None, name, |row| row.get(0))?;
    sqlite.pragma_update(None, name, value)?;
    let result = work(conn);
    let sqlite = conn.as_sqlite().expect("still SQLite");
    let restored = sqlite.pragma_update(None, name, previous);
    let value = result?;
    restored?;
    Ok(value)
}

/// Runs one batch in its own IMMEDIATE transaction: it takes the write lock
/// at the start (waiting up to the busy timeout) instead of failing to
/// upgrade a read halfway.
fn in_batch(
    conn: &mut Conn,
    stop: &AtomicBool,
    delete: impl FnOnce(&Conn) -> crate::db::Result<usize>,
) -> anyhow::Result<usize> {
    if stop.load(Ordering::SeqCst) {
        return Err(Interrupted.into());
    }
    let tx = conn.transaction(Behavior::Immediate)?;
    let deleted = delete(&tx)?;
    tx.commit()?;
    Ok(deleted)
}

/// What [`widen_connection`] changed, to put back.
#[derive(Debug, Clone, Copy)]
struct ConnectionSettings {
    /// SQLite's; `None` on PostgreSQL, which has no such setting.
    wal_autocheckpoint: Option<i64>,
}

/// Gives the connection rarer checkpoints for the length of a cleanup; a
/// setting of this connection only.
fn widen_connection(conn: &Conn) -> anyhow::Result<ConnectionSettings> {
    let Some(sqlite) = conn.as_sqlite() else {
        return Ok(ConnectionSettings { wal_autocheckpoint: None });
    };
    let previous = ConnectionSettings {
        wal_autocheckpoint: Some(
            sqlite.pragma_query_value(None, "wal_autocheckpoint", |row| row.get(0))?,
        ),
    };
    sqlite.pragma_update(None, "wal_autocheckpoint", CLEANUP_AUTOCHECKPOINT_PAGES)?;
    Ok(previous)
}

/// Puts the connection's settings back and checkpoints the WAL, so that the
/// next request to write does not pay for the cleanup's checkpoint.
fn restore_connection(conn: &Conn, previous: ConnectionSettings) -> crate::db::Result<()> {
    let (Some(sqlite), Some(pages)) = (conn.as_sqlite(), previous.wal_autocheckpoint) else {
        return Ok(());
    };
    sqlite.pragma_update(None, "wal_autocheckpoint", pages)?;
    Ok(sqlite.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?)
}

/// Completes the record of a run and drops the records beyond the newest
/// [`RUNS_KEPT`].
fn finish_run(
    conn: &mut Conn,
    id: i64,
    trigger: Trigger,
    started: UnixTime,
    duration_ms: i64,
    counts: DeletedRows,
    outcome: &str,
) -> anyhow::Result<CleanupRun> {
    let tx = conn.transaction(Behavior::Immediate)?;
    tx.prepare_cached(
        "UPDATE cleanup_runs SET duration_ms = $1, web_deleted = $2, jwt_deleted = $3, outcome = $4
         WHERE id = $5",
    )?
    .execute(params![
        duration_ms,
        i64::try_from(counts.web).unwrap_or(i64::MAX),
        i64::try_from(counts.jwt).unwrap_or(i64::MAX),
        outcome,
        id
    ])?;
    tx.prepare_cached("DELETE FROM cleanup_runs WHERE id <= $1")?
        .execute(params![id.saturating_sub(RUNS_KEPT)])?;
    tx.commit()?;
    Ok(CleanupRun {
        id,
        trigger: trigger.as_str().to_owned(),
        started,
        duration_ms,
        web_deleted: counts.web,
        jwt_deleted: counts.jwt,
        outcome: outcome.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_emptied_only_when_most_rows_expired_and_both_counts_are_bounded() {
        assert!(empties_the_table(1_000_000, 10_000));
        assert!(empties_the_table(1, 0));
        assert!(!empties_the_table(0, 0), "nothing to delete");
        assert!(!empties_the_table(10, 10), "as many live as expired");
        assert!(!empties_the_table(10, 11));
        assert!(empties_the_table(KEEP_LIVE_MAX + 1, KEEP_LIVE_MAX));
        assert!(!empties_the_table(KEEP_LIVE_MAX * 10, KEEP_LIVE_MAX + 1));
        assert!(empties_the_table(EMPTY_EXPIRED_MAX, 10));
        assert!(!empties_the_table(EMPTY_EXPIRED_MAX + 1, 10));
    }

    #[test]
    fn a_batch_pauses_as_long_as_it_took_only_while_others_write() {
        let ms = Duration::from_millis;
        assert_eq!(pause_after(ms(20), false), BATCH_PAUSE);
        assert_eq!(pause_after(ms(20), true), ms(20));
        assert_eq!(pause_after(ms(1), true), BATCH_PAUSE);
        assert_eq!(pause_after(ms(400), true), LONGEST_BATCH_PAUSE);
    }

    #[test]
    fn the_count_of_others_commits_moves_for_another_connection_only() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("db.sqlite3");
        crate::db::open(&path).unwrap();
        let (mine, other) =
            (crate::db::connect(&path).unwrap(), crate::db::connect(&path).unwrap());
        let write = |conn: &Conn| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('k', 'v')
                 ON CONFLICT (key) DO UPDATE SET value = value || 'v'",
                params![],
            )
            .unwrap()
        };
        let before = others_commits(&mine).unwrap();
        write(&mine);
        assert_eq!(others_commits(&mine).unwrap(), before, "its own commit");
        write(&other);
        assert_ne!(others_commits(&mine).unwrap(), before, "another connection's commit");
    }
}

// ---------------------------------------------------------------------------
// Moving an installation (`sessiond export` / `sessiond import`). The run
// records move; the claims do not: they only keep servers on one database
// from running one scheduled time twice, and the servers on the new
// database claim its times afresh.

/// One `cleanup_runs` row as an export carries it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupRunRow {
    pub id: i64,
    pub trigger: String,
    pub started: i64,
    pub duration_ms: i64,
    pub web_deleted: i64,
    pub jwt_deleted: i64,
    pub outcome: String,
}

/// Every recorded run, by id.
pub fn export_rows(conn: &Conn) -> crate::db::Result<Vec<CleanupRunRow>> {
    let mut statement = conn.prepare(
        "SELECT id, trigger, started, duration_ms, web_deleted, jwt_deleted, outcome
         FROM cleanup_runs ORDER BY id",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(CleanupRunRow {
            id: row.get(0)?,
            trigger: row.get(1)?,
            started: row.get(2)?,
            duration_ms: row.get(3)?,
            web_deleted: row.get(4)?,
            jwt_deleted: row.get(5)?,
            outcome: row.get(6)?,
        })
    })?;
    rows.collect()
}

impl CleanupRunRow {
    /// What the program could not show: an unknown trigger.
    pub fn check(&self) -> Result<(), String> {
        if ["timer", "command", "admin"].contains(&self.trigger.as_str()) {
            Ok(())
        } else {
            Err(String::from("`trigger` is not one of `timer`, `command`, `admin`"))
        }
    }
}

/// Replaces the target's run records (and claims) with the exported runs.
/// The target is an empty database: what it recorded is the cleaning of
/// nothing. The caller's transaction makes a failure change nothing.
pub fn import_rows(conn: &Conn, rows: &[CleanupRunRow]) -> anyhow::Result<()> {
    conn.execute("DELETE FROM cleanup_claims", [])?;
    conn.execute("DELETE FROM cleanup_runs", [])?;
    let mut statement = conn.prepare(
        "INSERT INTO cleanup_runs (id, trigger, started, duration_ms, web_deleted, jwt_deleted, outcome)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )?;
    for (index, row) in rows.iter().enumerate() {
        let refuse =
            |what: String| anyhow::anyhow!("`cleanup_runs[{index}]` (id {}): {what}", row.id);
        row.check().map_err(refuse)?;
        statement
            .execute(params![
                row.id,
                row.trigger,
                row.started,
                row.duration_ms,
                row.web_deleted,
                row.jwt_deleted,
                row.outcome
            ])
            .map_err(|error| refuse(error.to_string()))?;
    }
    if conn.engine() == crate::db::Engine::Postgres {
        // The rows came with their ids: the identity must go on after them.
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('cleanup_runs', 'id'), max(id)) FROM cleanup_runs",
            [],
        )?;
    }
    Ok(())
}

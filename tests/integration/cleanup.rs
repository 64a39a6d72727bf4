//! The cleanup of expired sessions (SPEC 1 `clear_expired_sessions`, SPEC 7):
//! what it deletes and keeps, the record of each run, and the command, also
//! while a server uses the same file.

use std::path::Path;

use sessiond::cleanup::{self, BATCH_SIZE, Trigger};
use sessiond::db::Conn as Connection;
use sessiond::users::{self, Role, User};
use sessiond::web_sessions::{self, Lifetime};

use crate::support::{Cli, START, TestServer, count};

/// A web session saved at `saved` that expires `lifetime` seconds later.
#[track_caller]
fn web_session(conn: &Connection, user: &User, saved: i64, lifetime: i64) -> i64 {
    let lifetime = Lifetime { idle: lifetime, absolute: 0 };
    let (_key, session) =
        web_sessions::create(conn, user, lifetime, saved, "127.0.0.1", "test").expect("create");
    session.row_id
}

/// A JWT session created at `created`, expiring at `expires_at`, revoked at
/// `revoked_at` when given.
#[track_caller]
fn jwt_session(
    conn: &Connection,
    user: &User,
    jti: &str,
    created: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
) {
    sessiond::jwt_sessions::create(conn, jti, user.id, created, expires_at, "127.0.0.1", "test")
        .expect("create jwt");
    if let Some(revoked_at) = revoked_at {
        assert!(sessiond::jwt_sessions::revoke(conn, jti, revoked_at, None).expect("revoke"));
    }
}

fn open_temp() -> (tempfile::TempDir, Connection, User) {
    let dir = tempfile::tempdir().expect("temp dir");
    let conn = crate::support::open_db(&dir.path().join("db.sqlite3"));
    let user = users::create(&conn, "alice", "", "alice-password", Role::User, START).unwrap();
    (dir, conn, user)
}

fn web_ids(conn: &Connection) -> Vec<i64> {
    let mut statement = conn.prepare("SELECT id FROM web_sessions ORDER BY id").unwrap();
    statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
}

fn jtis(conn: &Connection) -> Vec<String> {
    let mut statement = conn.prepare("SELECT jti FROM jwt_sessions ORDER BY jti").unwrap();
    statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
}

/// Makes every delete from `web_sessions` fail, as a broken database would.
pub fn break_web_session_deletes(conn: &Connection) {
    let trigger = match conn.engine() {
        sessiond::db::Engine::Sqlite => {
            "CREATE TRIGGER break_cleanup BEFORE DELETE ON web_sessions
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        }
        sessiond::db::Engine::Postgres => {
            "CREATE FUNCTION break_cleanup() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
             CREATE TRIGGER break_cleanup BEFORE DELETE ON web_sessions
             FOR EACH ROW EXECUTE FUNCTION break_cleanup();"
        }
    };
    conn.execute_batch(trigger).expect("create trigger");
}

pub fn mend_web_session_deletes(conn: &Connection) {
    let drop = match conn.engine() {
        sessiond::db::Engine::Sqlite => "DROP TRIGGER break_cleanup",
        sessiond::db::Engine::Postgres => {
            "DROP TRIGGER break_cleanup ON web_sessions; DROP FUNCTION break_cleanup()"
        }
    };
    conn.execute_batch(drop).expect("drop trigger");
}

#[test]
fn cleanup_deletes_expired_rows_and_keeps_live_and_revoked_unexpired_ones() {
    let (_dir, mut conn, user) = open_temp();
    let now = START;
    let expired_long_ago = web_session(&conn, &user, now - 10_000, 100);
    let expiring_right_now = web_session(&conn, &user, now - 100, 100);
    let live = web_session(&conn, &user, now - 100, 101);
    jwt_session(&conn, &user, "expired", now - 2000, now - 1000, None);
    jwt_session(&conn, &user, "live", now - 10, now + 890, None);
    jwt_session(&conn, &user, "revoked-unexpired", now - 10, now + 890, Some(now - 5));
    jwt_session(&conn, &user, "revoked-expired", now - 2000, now - 1100, Some(now - 1500));
    jwt_session(&conn, &user, "expiring-right-now", now - 900, now, None);

    let run = cleanup::clear_expired(&mut conn, now, Trigger::Command).expect("cleanup");

    assert_eq!((run.web_deleted, run.jwt_deleted), (2, 3));
    assert_eq!(web_ids(&conn), vec![live]);
    assert!(!web_ids(&conn).contains(&expired_long_ago));
    assert!(!web_ids(&conn).contains(&expiring_right_now));
    assert_eq!(jtis(&conn), vec!["live".to_owned(), "revoked-unexpired".to_owned()]);
}

#[test]
fn cleanup_records_each_run_newest_first() {
    let (_dir, mut conn, user) = open_temp();
    web_session(&conn, &user, START - 10_000, 100);
    jwt_session(&conn, &user, "expired", START - 2000, START - 1000, None);
    cleanup::clear_expired(&mut conn, START, Trigger::Command).unwrap();
    cleanup::clear_expired(&mut conn, START + 60, Trigger::Admin).unwrap();

    let runs = cleanup::recent_runs(&conn, 10).unwrap();

    assert_eq!(runs.len(), 2);
    let (newest, oldest) = (&runs[0], &runs[1]);
    assert_eq!((newest.trigger.as_str(), newest.started), ("admin", START + 60));
    assert_eq!((newest.web_deleted, newest.jwt_deleted), (0, 0));
    assert_eq!((oldest.trigger.as_str(), oldest.started), ("command", START));
    assert_eq!((oldest.web_deleted, oldest.jwt_deleted), (1, 1));
    assert!(oldest.is_ok() && newest.is_ok());
    assert!(oldest.duration_ms >= 0);
    assert_eq!(cleanup::recent_runs(&conn, 1).unwrap().len(), 1);
}

#[test]
fn cleanup_keeps_only_the_newest_records() {
    let (_dir, mut conn, _user) = open_temp();
    let kept = usize::try_from(cleanup::RUNS_KEPT).unwrap();
    for minute in 0..=cleanup::RUNS_KEPT {
        cleanup::clear_expired(&mut conn, START + 60 * minute, Trigger::Timer).unwrap();
    }

    let runs = cleanup::recent_runs(&conn, kept + 10).unwrap();

    assert_eq!(runs.len(), kept);
    assert_eq!(runs[0].started, START + 60 * cleanup::RUNS_KEPT);
    assert_eq!(runs[kept - 1].started, START + 60);
}

#[test]
fn cleanup_deletes_more_rows_than_one_batch_holds() {
    let (_dir, mut conn, user) = open_temp();
    let total = 2 * BATCH_SIZE + 1;
    {
        let tx = conn.transaction(sessiond::db::Behavior::Immediate).unwrap();
        for _ in 0..total {
            web_session(&tx, &user, START - 10_000, 100);
        }
        for index in 0..total {
            jwt_session(&tx, &user, &format!("jti-{index}"), START - 2000, START - 1000, None);
        }
        tx.commit().unwrap();
    }
    let live = web_session(&conn, &user, START, 100);

    let run = cleanup::clear_expired(&mut conn, START, Trigger::Command).unwrap();

    assert_eq!((run.web_deleted, run.jwt_deleted), (total, total));
    assert_eq!(web_ids(&conn), vec![live]);
    assert_eq!(count(&conn, "jwt_sessions"), 0);
}

/// Every column of every web session, in id order.
type WebRow = (i64, Vec<u8>, i64, i64, i64, i64, String, String);

fn web_rows(conn: &Connection) -> Vec<WebRow> {
    let mut statement = conn.prepare("SELECT * FROM web_sessions ORDER BY id").unwrap();
    let rows = statement.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
    });
    rows.unwrap().map(Result::unwrap).collect()
}

/// Every column of every JWT row that identifies it or can change, in
/// `seq` order.
type JwtRow = (i64, String, i64, i64, i64, Option<i64>, Option<i64>);

fn jwt_rows(conn: &Connection) -> Vec<JwtRow> {
    let mut statement = conn
        .prepare(
            "SELECT seq, jti, user_id, last_activity, expires_at, revoked_at, revoked_by
             FROM jwt_sessions ORDER BY seq",
        )
        .unwrap();
    let rows = statement.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
    });
    rows.unwrap().map(Result::unwrap).collect()
}

/// When most rows have expired the cleanup empties each table and puts the
/// live rows back in one transaction; they must come back exactly as they
/// were, ids included, and the foreign keys must hold again afterwards.
#[test]
fn cleanup_of_mostly_expired_tables_puts_every_live_row_back_as_it_was() {
    crate::support::sqlite_only!("SQLite's emptying and refilling of a mostly expired table");
    let (_dir, mut conn, alice) = open_temp();
    let bob = users::create(&conn, "bob", "", "bob-password", Role::User, START).unwrap();
    let expired = 1000;
    {
        let tx = conn.transaction(sessiond::db::Behavior::Immediate).unwrap();
        for index in 0..expired {
            let user = if index % 2 == 0 { &alice } else { &bob };
            web_session(&tx, user, START - 10_000, 100);
            let revoked = (index % 3 == 0).then_some(START - 1500);
            let jti = format!("expired-{index}");
            jwt_session(&tx, user, &jti, START - 2000, START - 1000, revoked);
        }
        web_session(&tx, &alice, START - 50, 100);
        web_session(&tx, &bob, START, 100);
        jwt_session(&tx, &alice, "live-alice", START - 10, START + 900, None);
        jwt_session(&tx, &bob, "live-bob-revoked", START - 10, START + 900, Some(START - 5));
        tx.commit().unwrap();
    }
    let web_live: Vec<WebRow> = web_rows(&conn).into_iter().filter(|row| row.5 > START).collect();
    let jwt_live: Vec<JwtRow> = jwt_rows(&conn).into_iter().filter(|row| row.4 > START).collect();
    assert_eq!((web_live.len(), jwt_live.len()), (2, 2));

    let run = cleanup::clear_expired(&mut conn, START, Trigger::Command).unwrap();

    assert_eq!((run.web_deleted, run.jwt_deleted), (expired, expired));
    assert_eq!(web_rows(&conn), web_live);
    assert_eq!(jwt_rows(&conn), jwt_live);
    let foreign_keys: bool = conn
        .as_sqlite()
        .unwrap()
        .pragma_query_value(None, "foreign_keys", |row| row.get(0))
        .unwrap();
    assert!(foreign_keys, "the cleanup turned the connection's foreign keys back on");
    conn.execute("DELETE FROM users WHERE id = $1", [bob.id]).unwrap();
    assert_eq!(count(&conn, "web_sessions"), 1, "bob's session went with him");
    assert_eq!(jtis(&conn), vec![String::from("live-alice")]);
}

/// When most rows are live the cleanup deletes batch after batch instead;
/// it must find every expired row all the same.
#[test]
fn cleanup_of_mostly_live_tables_deletes_every_expired_row() {
    let (_dir, mut conn, user) = open_temp();
    let expired = 2 * BATCH_SIZE + 1;
    {
        let tx = conn.transaction(sessiond::db::Behavior::Immediate).unwrap();
        for index in 0..expired {
            web_session(&tx, &user, START - 10_000, 100);
            web_session(&tx, &user, START, 100);
            jwt_session(&tx, &user, &format!("expired-{index}"), START - 2000, START - 1, None);
            jwt_session(&tx, &user, &format!("live-{index}"), START - 2000, START + 1, None);
        }
        web_session(&tx, &user, START, 100);
        jwt_session(&tx, &user, "one-more-live", START - 2000, START + 1, None);
        tx.commit().unwrap();
    }

    let run = cleanup::clear_expired(&mut conn, START, Trigger::Command).unwrap();

    assert_eq!((run.web_deleted, run.jwt_deleted), (expired, expired));
    assert_eq!(count(&conn, "web_sessions"), expired as i64 + 1);
    assert_eq!(count(&conn, "jwt_sessions"), expired as i64 + 1);
    assert!(web_rows(&conn).iter().all(|row| row.5 > START));
    assert!(jwt_rows(&conn).iter().all(|row| row.4 > START));
}

#[test]
fn failed_cleanup_is_recorded_and_returned_as_an_error() {
    let (_dir, mut conn, user) = open_temp();
    web_session(&conn, &user, START - 10_000, 100);
    break_web_session_deletes(&conn);

    let error = cleanup::clear_expired(&mut conn, START, Trigger::Command).unwrap_err();

    assert!(format!("{error:#}").contains("injected failure"), "{error:#}");
    let runs = cleanup::recent_runs(&conn, 10).unwrap();
    assert_eq!(runs.len(), 1);
    assert!(!runs[0].is_ok());
    assert!(runs[0].outcome.contains("injected failure"), "{}", runs[0].outcome);
    assert_eq!(count(&conn, "web_sessions"), 1, "the failed batch was rolled back");
    if let Some(sqlite) = conn.as_sqlite() {
        let foreign_keys: bool =
            sqlite.pragma_query_value(None, "foreign_keys", |row| row.get(0)).unwrap();
        assert!(foreign_keys, "the failed run turned the connection's foreign keys back on");
    }
}

/// The same failure when most rows are live, so that the cleanup deletes in
/// batches.
#[test]
fn failed_batched_cleanup_is_recorded_and_keeps_every_row() {
    let (_dir, mut conn, user) = open_temp();
    web_session(&conn, &user, START - 10_000, 100);
    web_session(&conn, &user, START, 100);
    web_session(&conn, &user, START, 100);
    break_web_session_deletes(&conn);

    let error = cleanup::clear_expired(&mut conn, START, Trigger::Command).unwrap_err();

    assert!(format!("{error:#}").contains("injected failure"), "{error:#}");
    let runs = cleanup::recent_runs(&conn, 10).unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].outcome.contains("injected failure"), "{}", runs[0].outcome);
    assert_eq!(count(&conn, "web_sessions"), 3, "the failed batch was rolled back");
    mend_web_session_deletes(&conn);
    let run = cleanup::clear_expired(&mut conn, START, Trigger::Command).unwrap();
    assert_eq!(run.web_deleted, 1);
}

/// Seconds since the epoch by the real clock, which the CLI uses.
fn real_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn db_arg(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn clear_expired_sessions_prints_the_two_counts_and_exits_0() {
    let (dir, conn, user) = open_temp();
    let now = real_now();
    web_session(&conn, &user, now - 10_000, 100);
    web_session(&conn, &user, now - 10_000, 200);
    web_session(&conn, &user, now - 10_000, 100_000);
    jwt_session(&conn, &user, "expired", now - 2000, now - 1000, None);
    jwt_session(&conn, &user, "revoked-unexpired", now - 10, now + 3600, Some(now - 5));
    drop(conn);
    let db = db_arg(&dir.path().join("db.sqlite3"));

    let stdout = Cli::new(dir.path()).args(&["--db", &db, "clear_expired_sessions"]).run();

    assert_eq!(
        stdout,
        "Cleared 2 expired web session(s).\nCleared 1 expired GraphQL login session(s).\n"
    );
    let conn = crate::support::connect_db(&dir.path().join("db.sqlite3"));
    assert_eq!((count(&conn, "web_sessions"), count(&conn, "jwt_sessions")), (1, 1));
    let runs = cleanup::recent_runs(&conn, 1).unwrap();
    assert_eq!(runs[0].trigger, "command");
}

#[test]
fn clear_expired_sessions_on_an_empty_database_reports_zero() {
    let dir = tempfile::tempdir().unwrap();
    // A new database: the command refuses one that does not exist.
    drop(crate::support::open_db(&dir.path().join("new.sqlite3")));
    let db = db_arg(&dir.path().join("new.sqlite3"));

    let stdout = Cli::new(dir.path()).args(&["--db", &db, "clear_expired_sessions"]).run();

    assert_eq!(
        stdout,
        "Cleared 0 expired web session(s).\nCleared 0 expired GraphQL login session(s).\n"
    );
}

#[test]
fn clear_expired_sessions_runs_while_the_server_serves_the_same_file() {
    // The CLI reads the real clock: start the server's there too, so that the
    // session made now is live for both.
    let server = TestServer::start();
    // Each request below moves the clock a minute, so a slow machine could
    // carry it past the daily 05:00 run: the server's own timer must not
    // clear these rows before the command does.
    sessiond::schedule::store(&server.conn(), &sessiond::schedule::Schedule::Off).unwrap();
    server.clock.set(real_now());
    let cookie = server.login("root", "root-password");
    let expired = 2 * BATCH_SIZE + 1;
    {
        let conn = server.conn();
        let root = users::find_by_username(&conn, "root").unwrap().unwrap();
        let tx = conn.transaction(sessiond::db::Behavior::Immediate).unwrap();
        for _ in 0..expired {
            web_session(&tx, &root, real_now() - 100_000, 100);
        }
        jwt_session(&tx, &root, "expired", real_now() - 2000, real_now() - 1000, None);
        tx.commit().unwrap();
    }
    let db = db_arg(&server.db_path);
    let dir = server.dir.path().to_path_buf();

    let cli = std::thread::spawn(move || {
        Cli::new(&dir).args(&["--db", &db, "clear_expired_sessions"]).run()
    });
    let mut statuses = Vec::new();
    while !cli.is_finished() {
        // A minute later each request slides the session, so each one writes.
        server.advance(61);
        statuses.push(server.get_with_cookie("/api/whoami", &cookie).status);
    }
    let stdout = cli.join().unwrap();

    assert_eq!(
        stdout,
        format!(
            "Cleared {expired} expired web session(s).\nCleared 1 expired GraphQL login session(s).\n"
        )
    );
    assert!(!statuses.is_empty(), "no request was served while the command ran");
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    assert_eq!(server.get_with_cookie("/api/whoami", &cookie).status, 200);
    assert_eq!(count(&server.conn(), "web_sessions"), 1);
}

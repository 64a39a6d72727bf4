//! The database file itself: several servers starting at once on a new
//! file (SPEC 11), a running server noticing that its file was deleted or
//! replaced (SPEC 8's `/healthz`), and commands that refuse a database that
//! does not exist instead of creating an empty one.

use std::path::Path;

use sessiond::{cleanup, schedule};

use crate::support::{START, ServeProcess, TestServer, graphql_request, request};

/// Starts `count` `sessiond serve` processes on the same new file at the
/// same moment.
fn start_at_once(dir: &Path, count: usize) -> Vec<ServeProcess> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(count));
    let starts: Vec<_> = (0..count)
        .map(|_| {
            let dir = dir.to_path_buf();
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                ServeProcess::start(&dir, &[])
            })
        })
        .collect();
    starts.into_iter().map(|start| start.join().expect("every server starts")).collect()
}

/// The first-run admin password from a server's output, if it made one.
fn first_admin_password(output: &str) -> Option<String> {
    let line = output.lines().find(|line| line.contains("created the first superuser"))?;
    let rest = line.split(" with password ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_owned())
}

#[test]
fn three_servers_starting_at_once_on_a_new_file_agree() {
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let servers = start_at_once(dir.path(), 3);
        let outputs: Vec<String> = servers.iter().map(ServeProcess::output).collect();
        let passwords: Vec<String> =
            outputs.iter().filter_map(|output| first_admin_password(output)).collect();
        assert_eq!(passwords.len(), 1, "round {round}: one first-run admin: {outputs:#?}");
        let conn = crate::support::connect_db(&dir.path().join("sessiond.sqlite3"));
        assert_eq!(crate::support::count(&conn, "users"), 1, "round {round}");

        // They share the generated signing key: a token from one server is
        // honoured by the others.
        let login = graphql_request(
            servers[0].addr,
            "mutation ($p: String!) { login(username: \"admin\", password: $p) { token } }",
            serde_json::json!({ "p": passwords[0] }),
            None,
        );
        assert_eq!(login.status, 200, "{}", login.body);
        let token = login.json()["data"]["login"]["token"].as_str().unwrap().to_owned();
        for server in &servers[1..] {
            let bearer = format!("Bearer {token}");
            let whoami =
                request(server.addr, "GET", "/api/whoami", &[("Authorization", &bearer)], b"");
            assert_eq!(whoami.status, 200, "round {round}: {}", whoami.body);
        }
    }
}

/// Waits (a few seconds at most) until the server's timer has dealt with
/// the cleanup scheduled at `scheduled_at`: run it or found it claimed.
#[track_caller]
fn wait_for_timer(server: &TestServer, scheduled_at: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.app().timer_handled.load(std::sync::atomic::Ordering::SeqCst) < scheduled_at {
        assert!(std::time::Instant::now() < deadline, "the timer never handled {scheduled_at}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn two_servers_on_one_file_run_each_scheduled_cleanup_once() {
    let first = TestServer::start();
    let second = first.another_on_the_same_file();
    schedule::store(&first.conn(), &schedule::parse("* * * * *").unwrap()).unwrap();
    // Both timers re-read the schedule.
    for server in [&first, &second] {
        server.advance(schedule::RELOAD_EVERY + 10);
    }
    let minute = |n: i64| START + n * 60;
    for n in 1..=3 {
        for server in [&first, &second] {
            server.advance(60);
        }
        for server in [&first, &second] {
            wait_for_timer(server, minute(n));
        }
    }
    let conn = first.conn();
    let timer_runs: i64 = conn
        .query_row("SELECT count(*) FROM cleanup_runs WHERE trigger = 'timer'", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(timer_runs, 3, "one run per scheduled minute, not one per server");
    let claimed: Vec<i64> = conn
        .prepare("SELECT scheduled_at FROM cleanup_claims ORDER BY scheduled_at")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(claimed, vec![minute(1), minute(2), minute(3)]);
    let outcomes: Vec<String> =
        cleanup::recent_runs(&conn, 10).unwrap().into_iter().map(|run| run.outcome).collect();
    assert_eq!(outcomes, vec!["ok"; 3], "each recorded run completed");
}

#[test]
fn healthz_answers_503_once_the_database_file_is_deleted() {
    crate::support::sqlite_only!("the SQLite file deleted under the server");
    let server = TestServer::start();
    assert_eq!(server.get("/healthz", &[]).status, 200, "the control");
    std::fs::remove_file(&server.db_path).unwrap();
    let response = server.get("/healthz", &[]);
    assert_eq!(response.status, 503, "{}", response.body);
    assert_eq!(response.json()["status"], "unavailable");
    assert!(!response.body.contains("sessiond.sqlite3"), "no path in a public answer");
    // Other requests still answer from the file the server holds open, but
    // a monitor asking /healthz sees the problem.
    assert_eq!(server.get("/login", &[]).status, 200);
}

#[test]
fn a_server_whose_database_file_is_deleted_says_so() {
    crate::support::sqlite_only!("the SQLite file deleted under the server");
    let dir = tempfile::tempdir().unwrap();
    crate::support::prepare_database(dir.path());
    let mut server = ServeProcess::start(dir.path(), &[]);
    assert_eq!(server.get("/healthz", &[]).status, 200);
    std::fs::remove_file(dir.path().join("sessiond.sqlite3")).unwrap();
    assert_eq!(server.get("/healthz", &[]).status, 503);
    let output = server.output_once_it_shows("was deleted");
    assert_eq!(output.matches("still uses the file it opened").count(), 1, "{output}");
    assert!(output.contains("sessiond.sqlite3"), "{output}");
    // Said once, though asked again.
    assert_eq!(server.get("/healthz", &[]).status, 503);
    let output = server.signal_and_wait("TERM");
    assert_eq!(output.matches("still uses the file it opened").count(), 1, "{output}");
    // Neither a thread nor the stop made a new, empty database there.
    assert!(!dir.path().join("sessiond.sqlite3").exists(), "a new file at the deleted path");
}

#[test]
fn a_server_whose_database_file_is_replaced_says_so() {
    crate::support::sqlite_only!("the SQLite file replaced under the server");
    let dir = tempfile::tempdir().unwrap();
    let db = crate::support::prepare_database(dir.path());
    let server = ServeProcess::start(dir.path(), &[]);
    assert_eq!(server.get("/healthz", &[]).status, 200);
    // A restore done wrong: another file renamed over the one in use.
    let other = dir.path().join("other.sqlite3");
    crate::support::open_db(&other);
    std::fs::rename(&other, &db).unwrap();
    assert_eq!(server.get("/healthz", &[]).status, 503);
    server.output_once_it_shows("was replaced by another file");
}

#[test]
fn commands_refuse_a_database_that_does_not_exist() {
    crate::support::sqlite_only!("a SQLite file that does not exist");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.sqlite3");
    let db = missing.to_str().unwrap();
    let commands: &[&[&str]] = &[
        &["sessions", "list"],
        &["sessions", "end-user", "alice"],
        &["sessions", "revoke", "some-jti"],
        &["deactivateuser", "alice"],
        &["activateuser", "alice"],
        &["changepassword", "alice"],
        &["clear_expired_sessions"],
        &["schedule", "show"],
        &["schedule", "set", "0 4 * * *"],
        &["schedule", "run"],
        &["config", "get", "DJANGO_JWT_SECRET_KEY"],
        &["backup", "copy.sqlite3"],
    ];
    for command in commands {
        let mut args = vec!["--db", db];
        args.extend_from_slice(command);
        let output = crate::cli_refusals::run_cli(
            dir.path(),
            &args,
            &[("DJANGO_SUPERUSER_PASSWORD", "new-password")],
            None,
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(stderr.contains("no database at") && stderr.contains("gone.sqlite3"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{command:?}: {stderr}");
        assert!(!missing.exists(), "{command:?} created the database");
        assert!(!dir.path().join("copy.sqlite3").exists());
    }
    // The control: `createuser` may make a new database.
    let output = crate::cli_refusals::run_cli(
        dir.path(),
        &["--db", db, "createuser", "--username", "alice"],
        &[("DJANGO_SUPERUSER_PASSWORD", "alice-password")],
        None,
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(missing.exists());
}

//! Usernames are unique regardless of case: `ALICE` cannot be created next
//! to `alice`, signs in as `alice` by any case (form and GraphQL), and
//! shares `alice`'s throttle count; a database that already holds case
//! duplicates is refused by the migration, naming them, and works once one
//! is renamed.

use sessiond::users::{self, Role};

use crate::cli_refusals::run_cli;
use crate::support::{TestServer, post_graphql};

#[test]
fn a_case_variant_of_an_existing_username_is_refused() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let variant = users::create(&server.conn(), "ALICE", "", "other-password", Role::User, 0);
    let message = variant.unwrap_err().to_string();
    assert!(message.contains("`alice` already exists"), "{message}");

    let db = server.db_path.to_str().unwrap();
    for name in ["Alice", "ALICE"] {
        let output = run_cli(
            server.dir.path(),
            &["--db", db, "createuser", "--username", name],
            &[("DJANGO_SUPERUSER_PASSWORD", "other-password")],
            None,
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("`alice` already exists"), "{stderr}");
    }
    // The control: another name is fine.
    let output = run_cli(
        server.dir.path(),
        &["--db", db, "createuser", "--username", "alicia"],
        &[("DJANGO_SUPERUSER_PASSWORD", "alicia-password")],
        None,
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(crate::support::count(&server.conn(), "users"), 3, "root, alice, alicia");
}

#[test]
fn sign_in_works_with_any_case_of_the_username() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    for typed in ["alice", "ALICE", "aLiCe"] {
        let key = server.login(typed, "alice-password");
        let whoami = server.get_with_cookie("/api/whoami", &key);
        assert_eq!(whoami.json()["username"], "alice", "signed in as `{typed}`");
    }
    let response = post_graphql(
        &server,
        "mutation { login(username: \"Alice\", password: \"alice-password\") { token } }",
        serde_json::json!({}),
        None,
    );
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.json()["data"]["login"]["token"].is_string(), "{}", response.body);
    // The control: the password still matters.
    let wrong = server.post_form("/login", &[("username", "ALICE"), ("password", "wrong")], &[]);
    assert_eq!(wrong.status, 401);
}

#[test]
fn the_throttle_counts_every_case_of_a_username_as_one() {
    let server = TestServer::start();
    server.create_user("carol", "carol-password", Role::User);
    server.create_user("dave", "dave-password", Role::User);
    for typed in ["CAROL", "Carol", "cArol", "CAROl", "carol"] {
        let failed = server.post_form("/login", &[("username", typed), ("password", "guess")], &[]);
        assert_eq!(failed.status, 401);
    }
    let locked =
        server.post_form("/login", &[("username", "carol"), ("password", "carol-password")], &[]);
    assert_eq!(locked.status, 429, "five failures in any case lock `carol`");
    let locked =
        server.post_form("/login", &[("username", "CAROL"), ("password", "carol-password")], &[]);
    assert_eq!(locked.status, 429);
    // The control: another user is not locked.
    server.login("dave", "dave-password");
}

/// A database as an older sessiond left it: the schema before usernames
/// became unique regardless of case, with `alice` and `ALICE` (and `bob`).
fn database_with_case_duplicates(path: &std::path::Path) {
    // An empty file, which SQLite takes as a new database: `connect` never
    // creates one (only `open` does, and it migrates all the way).
    std::fs::write(path, b"").unwrap();
    let mut conn = sessiond::db::connect(path).unwrap();
    sessiond::db::migrate_to(
        &mut conn,
        sessiond::db::version_before_usernames_unique_regardless_of_case(),
    )
    .unwrap();
    for name in ["alice", "ALICE", "bob", "Carol", "carol", "CAROL"] {
        users::create(&conn, name, "", &format!("{name}-password"), Role::User, 0).unwrap();
    }
}

fn user_version(path: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap()
}

#[test]
fn the_migration_refuses_case_duplicates_naming_them_until_one_is_renamed() {
    crate::support::sqlite_only!("a SQLite file at an old `user_version`");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite3");
    database_with_case_duplicates(&path);
    let before = user_version(&path);
    let db = path.to_str().unwrap();

    // `serve`, in this process (started, it would not exit).
    let settings = crate::support::settings_for(&path, &[]);
    let refused = sessiond::startup::start(settings, Default::default()).err().unwrap();
    assert!(format!("{refused:#}").contains("`ALICE`, `alice`"), "{refused:#}");
    assert_eq!(user_version(&path), before, "nothing changed");

    for command in [&["sessions", "list"][..], &["schedule", "show"]] {
        let mut args = vec!["--db", db];
        args.extend_from_slice(command);
        let output = run_cli(dir.path(), &args, &[], None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command:?}: {stderr}");
        let error = stderr.lines().find(|line| line.starts_with("error:")).unwrap();
        assert!(error.contains("`ALICE`, `alice`"), "{error}");
        assert!(error.contains("`CAROL`, `Carol`, `carol`"), "{error}");
        assert!(!error.contains("`bob`"), "{error}");
        assert!(error.contains("rename"), "{error}");
        assert_eq!(user_version(&path), before, "nothing changed");
    }

    // Renamed as the message says: the migration runs.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE users SET username = 'alice-2' WHERE username = 'ALICE';
         UPDATE users SET username = 'carol-2' WHERE username = 'Carol';
         UPDATE users SET username = 'carol-3' WHERE username = 'CAROL';",
    )
    .unwrap();
    drop(conn);
    let output = run_cli(dir.path(), &["--db", db, "sessions", "list"], &[], None);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(user_version(&path), sessiond::db::schema_version());
}

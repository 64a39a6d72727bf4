//! `sessiond export FILE` and `sessiond import FILE` (SPEC 1 and 11): an
//! export taken while a server serves, imported into a new file, on which
//! a second server honours the cookie, the token, the passwords, the
//! schedule, the access rules, the run records and the generated secrets
//! from before; the
//! refusals (an existing FILE, a target with users, bad files, a failure
//! half-way) change nothing.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{Cli, TestServer, count, jwt_login};

/// The files in a folder, by name.
fn names_in(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

/// Exports the database at `db` to `file` through the binary.
#[track_caller]
fn export(db: &Path, file: &Path) -> String {
    Cli::new(file.parent().unwrap()).args(&["--db", text(db), "export", text(file)]).run()
}

/// A server with `alice` signed in by cookie and by token, a schedule set
/// and a cleanup run recorded; returns it with the cookie and the token.
fn busy_server() -> (TestServer, String, String) {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", sessiond::users::Role::User);
    let db = text(&server.db_path).to_owned();
    Cli::new(server.dir.path()).args(&["--db", &db, "schedule", "set", "15 3 * * *"]).run();
    Cli::new(server.dir.path())
        .args(&["--db", &db, "access", "add", "wiki.example.com", "manager", "--path", "/admin"])
        .run();
    Cli::new(server.dir.path())
        .args(&["--db", &db, "access", "add", "*.example.com", "user"])
        .run();
    // Before the sign-ins: the command reads the wall clock, by which the
    // sessions of the server's manual clock would have expired.
    Cli::new(server.dir.path()).args(&["--db", &db, "clear_expired_sessions"]).run();
    let cookie = server.login("alice", "alice-password");
    let token = jwt_login(&server, "alice", "alice-password");
    (server, cookie, token)
}

fn whoami(server: &TestServer, headers: &[(&str, &str)]) -> crate::support::Response {
    server.get("/api/whoami", headers)
}

#[test]
fn an_export_taken_while_serving_moves_cookies_tokens_passwords_schedule_runs_and_secrets() {
    let (server, cookie, token) = busy_server();
    let exports = tempfile::tempdir().unwrap();
    let file = exports.path().join("move.json");
    let stdout = export(&server.db_path, &file);
    assert!(stdout.contains("2 user(s), 1 web session(s), 1 GraphQL login session(s)"), "{stdout}");
    // The server went on serving meanwhile.
    let cookie_header = format!("sessionid={cookie}");
    assert_eq!(whoami(&server, &[("Cookie", &cookie_header)]).status, 200);

    assert_eq!(names_in(exports.path()), vec!["move.json"], "no temporary file left");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the export holds password hashes and secrets");
    }
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(exported["format"], "sessiond-export");
    assert_eq!(exported["version"], 1);
    let key_hash = exported["web_sessions"][0]["key_hash"].as_str().unwrap();
    assert!(key_hash.len() == 64 && key_hash.bytes().all(|b| b.is_ascii_hexdigit()), "{key_hash}");
    assert!(!std::fs::read_to_string(&file).unwrap().contains(&cookie), "never the key itself");

    let target = tempfile::tempdir().unwrap();
    let new_db = target.path().join("moved.sqlite3");
    let stdout =
        Cli::new(target.path()).args(&["--db", text(&new_db), "import", text(&file)]).run();
    assert!(stdout.contains("Imported 2 user(s)"), "{stdout}");

    let moved = TestServer::start_on_file(&new_db, &[]);
    let response = whoami(&moved, &[("Cookie", &cookie_header)]);
    assert_eq!(response.status, 200, "the cookie from before works: {}", response.body);
    assert_eq!(response.json()["username"], "alice");
    let bearer = format!("Bearer {token}");
    let response = whoami(&moved, &[("Authorization", &bearer)]);
    assert_eq!(response.status, 200, "the token from before works: {}", response.body);
    assert_eq!(response.json()["auth"], "jwt");
    moved.login("alice", "alice-password");
    moved.login("root", "root-password");

    let old_db = text(&server.db_path).to_owned();
    let schedule = Cli::new(target.path()).args(&["--db", text(&new_db), "schedule", "show"]).run();
    assert!(schedule.contains("15 3 * * *"), "{schedule}");
    let rules =
        |db: &str| Cli::new(target.path()).args(&["--db", db, "access", "list", "--json"]).run();
    let moved_rules: Value = serde_json::from_str(&rules(text(&new_db))).unwrap();
    assert_eq!(moved_rules.as_array().map(Vec::len), Some(2), "{moved_rules}");
    assert_eq!(rules(text(&new_db)), rules(&old_db), "the rules came along, in order");
    assert_eq!(count(&moved.conn(), "cleanup_runs"), count(&server.conn(), "cleanup_runs"));
    assert!(count(&moved.conn(), "cleanup_runs") >= 1);
    for key in ["DJANGO_SECRET_KEY", "DJANGO_JWT_SECRET_KEY"] {
        let before = Cli::new(target.path()).args(&["--db", &old_db, "config", "get", key]).run();
        let after =
            Cli::new(target.path()).args(&["--db", text(&new_db), "config", "get", key]).run();
        assert_eq!(before, after, "{key} came along");
    }
}

#[test]
fn export_refuses_an_existing_file_and_leaves_it_alone() {
    let (server, _, _) = busy_server();
    let exports = tempfile::tempdir().unwrap();
    let file = exports.path().join("taken.json");
    std::fs::write(&file, "keep me").unwrap();
    Cli::new(exports.path())
        .args(&["--db", text(&server.db_path), "export", text(&file)])
        .status(1)
        .stderr_contains("already exists")
        .run();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    assert_eq!(names_in(exports.path()), vec!["taken.json"]);
}

/// An export of a busy server, as JSON, and the folder it lives in.
fn exported() -> (tempfile::TempDir, Value) {
    let (server, _, _) = busy_server();
    let exports = tempfile::tempdir().unwrap();
    let file = exports.path().join("export.json");
    export(&server.db_path, &file);
    let value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    (exports, value)
}

fn write_json(folder: &Path, name: &str, value: &Value) -> PathBuf {
    let path = folder.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path
}

#[test]
fn import_refuses_a_database_that_has_users() {
    let (exports, value) = exported();
    let file = write_json(exports.path(), "good.json", &value);
    let target = tempfile::tempdir().unwrap();
    let db = target.path().join("used.sqlite3");
    let conn = crate::support::open_db(&db);
    sessiond::users::create(&conn, "carol", "", "carol-password", sessiond::users::Role::User, 0)
        .unwrap();
    Cli::new(target.path())
        .args(&["--db", text(&db), "import", text(&file)])
        .status(1)
        .stderr_contains("already has users or sessions")
        .run();
    assert_eq!(count(&conn, "users"), 1, "nothing was added");
    assert_eq!(count(&conn, "web_sessions"), 0);
}

#[test]
fn import_refuses_bad_files_with_one_line_naming_the_problem_and_creates_nothing() {
    let (exports, good) = exported();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut value = good.clone();
        change(&mut value);
        value.to_string()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", String::from("{\"format\": "), "is not JSON"),
        ("an array", String::from("[]"), "is not a JSON object"),
        ("no format", with(&|v| drop(v.as_object_mut().unwrap().remove("format"))), "no `format`"),
        ("other format", with(&|v| v["format"] = json!("other-tool")), "`format` is `other-tool`"),
        ("newer version", with(&|v| v["version"] = json!(2)), "`version` is 2"),
        ("version as text", with(&|v| v["version"] = json!("1")), "`version` is not a number"),
        ("unknown key", with(&|v| v["extra"] = json!([])), "unknown key `extra`"),
        (
            "missing table",
            with(&|v| drop(v.as_object_mut().unwrap().remove("users"))),
            "no `users`",
        ),
        (
            "table not an array",
            with(&|v| v["jwt_sessions"] = json!({})),
            "`jwt_sessions` is not an array",
        ),
        ("wrong field type", with(&|v| v["users"][1]["id"] = json!("two")), "`users[1]`"),
        ("unknown field", with(&|v| v["users"][0]["nickname"] = json!("x")), "`users[0]`"),
        ("bad key hash", with(&|v| v["web_sessions"][0]["key_hash"] = json!("abc")), "`key_hash`"),
        (
            "meta not text",
            with(&|v| v["meta"]["cleanup_schedule"] = json!(5)),
            "`meta.cleanup_schedule`",
        ),
        (
            "bad schedule",
            with(&|v| v["meta"]["cleanup_schedule"] = json!("every day")),
            "`meta.cleanup_schedule`",
        ),
    ];
    for (name, contents, needle) in cases {
        let file = exports.path().join("bad.json");
        std::fs::write(&file, &contents).unwrap();
        let target = tempfile::tempdir().unwrap();
        let db = target.path().join("new.sqlite3");
        let output = Cli::new(target.path())
            .args(&["--db", text(&db), "import", text(&file)])
            .status(1)
            .stderr_contains(needle)
            .output();
        assert!(output.stderr.contains("bad.json"), "{name}: names the file: {}", output.stderr);
        if crate::support::engine() == crate::support::Engine::Sqlite {
            assert!(!db.exists(), "{name}: a refused file creates no database");
        } else {
            assert_eq!(count(&crate::support::open_db(&db), "users"), 0, "{name}: nothing loaded");
        }
    }
    // The control: the unchanged export imports.
    let file = write_json(exports.path(), "good.json", &good);
    let target = tempfile::tempdir().unwrap();
    let db = target.path().join("new.sqlite3");
    Cli::new(target.path()).args(&["--db", text(&db), "import", text(&file)]).run();
    assert_eq!(count(&crate::support::open_db(&db), "users"), 2);
}

#[test]
fn a_failure_half_way_through_an_import_changes_nothing() {
    let (exports, good) = exported();
    // The users load, then a session of a user the file does not have fails.
    let mut bad = good.clone();
    let mut orphan = bad["web_sessions"][0].clone();
    orphan["id"] = json!(99);
    orphan["user_id"] = json!(4242);
    orphan["key_hash"] = json!("ab".repeat(32));
    bad["web_sessions"].as_array_mut().unwrap().push(orphan);
    let file = write_json(exports.path(), "orphan.json", &bad);
    let target = tempfile::tempdir().unwrap();
    let db = target.path().join("empty.sqlite3");
    let conn = crate::support::open_db(&db);
    Cli::new(target.path())
        .args(&["--db", text(&db), "import", text(&file)])
        .status(1)
        .stderr_contains("`web_sessions[1]` (id 99)")
        .stderr_contains("nothing was changed")
        .run();
    for table in ["users", "web_sessions", "jwt_sessions", "cleanup_runs"] {
        assert_eq!(count(&conn, table), 0, "{table} stays empty");
    }
    // The control: the same database takes the file without the orphan.
    let file = write_json(exports.path(), "good.json", &good);
    Cli::new(target.path()).args(&["--db", text(&db), "import", text(&file)]).run();
    assert_eq!(count(&conn, "users"), 2);
    assert_eq!(count(&conn, "web_sessions"), 1);
}

#[test]
fn import_refuses_a_database_with_access_rules_of_its_own() {
    let (exports, value) = exported();
    let file = write_json(exports.path(), "good.json", &value);
    let target = tempfile::tempdir().unwrap();
    let db = target.path().join("ruled.sqlite3");
    let conn = crate::support::open_db(&db);
    Cli::new(target.path())
        .args(&["--db", text(&db), "access", "add", "x.example.com", "deny"])
        .run();
    Cli::new(target.path())
        .args(&["--db", text(&db), "import", text(&file)])
        .status(1)
        .stderr_contains("already has access rules")
        .run();
    assert_eq!(count(&conn, "users"), 0, "nothing was added");
    let rules = Cli::new(target.path()).args(&["--db", text(&db), "access", "list"]).run();
    assert_eq!(rules.lines().count(), 1, "{rules}");
}

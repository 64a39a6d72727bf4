//! The binary as a user runs it: `serve` start-up and shutdown, settings
//! precedence and refusals, and the user commands.

use sessiond::users::{self, DecoyHash, Role};

use crate::support::{Cli, ServeProcess, TestServer};

fn authenticates(db: &std::path::Path, username: &str, password: &str) -> Option<users::User> {
    let conn = crate::support::connect_db(db);
    users::authenticate(&conn, &DecoyHash::new(), username, password).unwrap().map(|v| v.user)
}

#[test]
fn createsuperuser_takes_the_password_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    Cli::new(dir.path())
        .args(&["createsuperuser", "--username", "boss", "--email", "boss@example.com"])
        .env("DJANGO_SUPERUSER_PASSWORD", "boss-password")
        .run();
    let db = dir.path().join("data/sessiond.sqlite3");
    if crate::support::engine() == crate::support::Engine::Sqlite {
        assert!(db.exists(), "the default database is data/sessiond.sqlite3");
    }
    let user = authenticates(&db, "boss", "boss-password").expect("boss signs in");
    assert_eq!(user.role, Role::Admin);
    assert_eq!(user.email, "boss@example.com");
}

#[test]
fn createuser_reads_one_line_of_stdin_when_it_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.sqlite3");
    let db_arg = db.to_str().unwrap();
    Cli::new(dir.path())
        .args(&["--db", db_arg, "createuser", "--username", "mia", "--role", "manager"])
        .stdin("mia password\n")
        .run();
    assert_eq!(authenticates(&db, "mia", "mia password").unwrap().role, Role::Manager);
}

#[test]
fn a_duplicate_user_is_refused_with_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("DJANGO_SUPERUSER_PASSWORD", "pw-12345")];
    Cli::new(dir.path()).args(&["createuser", "--username", "sam"]).envs(&env).run();
    let stderr = Cli::new(dir.path())
        .args(&["createuser", "--username", "sam"])
        .envs(&env)
        .status(1)
        .output()
        .stderr;
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("`sam`"), "{stderr}");
}

#[test]
fn bad_username_and_empty_password_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    Cli::new(dir.path())
        .args(&["createuser", "--username", "bad name"])
        .env("DJANGO_SUPERUSER_PASSWORD", "x")
        .status(1)
        .stderr_contains("`bad name`")
        .run();
    Cli::new(dir.path())
        .args(&["createuser", "--username", "ok"])
        .stdin("\n")
        .status(1)
        .stderr_contains("no password")
        .run();
    let db = dir.path().join("data/sessiond.sqlite3");
    if db.exists() {
        let conn = crate::support::connect_db(&db);
        assert_eq!(crate::support::count(&conn, "users"), 0, "no user was created");
    }
}

#[test]
fn usage_errors_exit_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in
        [&["frobnicate"][..], &["serve", "--no-such-flag"], &["createuser"], &["changepassword"]]
    {
        Cli::new(dir.path()).args(args).status(2).run();
    }
}

#[test]
fn changepassword_of_an_unknown_user_fails_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    drop(crate::support::open_db(&dir.path().join("data/sessiond.sqlite3")));
    Cli::new(dir.path())
        .args(&["changepassword", "ghost"])
        .env("DJANGO_SUPERUSER_PASSWORD", "x")
        .status(1)
        .stderr_contains("`ghost`")
        .run();
}

#[test]
fn changepassword_from_another_process_ends_the_users_sessions() {
    let server = TestServer::start();
    server.create_user("erin", "erin-password", Role::User);
    let key = server.login("erin", "erin-password");
    let db = server.db_path.to_str().unwrap();
    Cli::new(server.dir.path())
        .args(&["--db", db, "changepassword", "erin"])
        .env("DJANGO_SUPERUSER_PASSWORD", "erin-new-password")
        .run();
    assert_eq!(server.get_with_cookie("/api/whoami", &key).status, 401);
    server.login("erin", "erin-new-password");
}

#[test]
fn deactivateuser_ends_sessions_and_activateuser_lets_them_back() {
    let server = TestServer::start();
    server.create_user("finn", "finn-password", Role::User);
    let key = server.login("finn", "finn-password");
    let db = server.db_path.to_str().unwrap();
    Cli::new(server.dir.path()).args(&["--db", db, "deactivateuser", "finn"]).run();
    assert_eq!(server.get_with_cookie("/api/whoami", &key).status, 401);
    let refused =
        server.post_form("/login", &[("username", "finn"), ("password", "finn-password")], &[]);
    assert_eq!(refused.status, 401);
    Cli::new(server.dir.path()).args(&["--db", db, "activateuser", "finn"]).run();
    server.login("finn", "finn-password");
}

#[test]
fn serve_refuses_a_bad_setting_naming_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "DJANGO_SESSION_COOKIE_AGE=soon\n").unwrap();
    let stderr =
        Cli::new(dir.path()).args(&["serve", "--bind", "127.0.0.1:0"]).status(1).output().stderr;
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DJANGO_SESSION_COOKIE_AGE") && stderr.contains("`soon`"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[test]
fn serve_refuses_a_short_jwt_secret_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = Cli::new(dir.path())
        .arg("serve")
        .env("DJANGO_JWT_SECRET_KEY", "short-secret-value")
        .status(1)
        .output()
        .stderr;
    assert!(stderr.contains("DJANGO_JWT_SECRET_KEY"), "{stderr}");
    assert!(!stderr.contains("short-secret-value"), "{stderr}");
}

/// The password of the first-run admin, from what `serve` printed.
fn first_admin_password(server: &ServeProcess) -> String {
    let output = server.output();
    let line = output.lines().find(|l| l.contains("superuser `admin`")).expect("first admin line");
    line.split("password ").nth(1).unwrap().split(' ').next().unwrap().to_owned()
}

/// Signs in as `admin` and returns the Set-Cookie header.
#[track_caller]
fn login_cookie_header(server: &ServeProcess, password: &str) -> String {
    let response =
        server.post_form("/login", &[("username", "admin"), ("password", password)], &[]);
    assert_eq!(response.status, 303, "{}", response.body);
    response.headers_named("set-cookie")[0].to_owned()
}

#[test]
fn first_serve_creates_admin_prints_real_port_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServeProcess::start_with_args(dir.path(), &[], &[]);
    assert_ne!(server.addr.port(), 0);
    let password = first_admin_password(&server);
    assert!(password.len() >= 16);
    login_cookie_header(&server, &password);
    let healthz = server.get("/healthz", &[]);
    assert_eq!(healthz.status, 200);
    let status = server.terminate();
    assert_eq!(status.code(), Some(0));

    // A second start finds the admin and prints no password.
    let mut again = ServeProcess::start_with_args(dir.path(), &[], &[]);
    assert!(!again.output().contains("superuser `admin`"));
    again.terminate();
}

#[test]
fn startup_log_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-very-long-jwt-secret-that-must-never-be-printed";
    let mut server =
        ServeProcess::start_with_args(dir.path(), &[], &[("DJANGO_JWT_SECRET_KEY", secret)]);
    let log = server.output();
    assert!(log.contains("DJANGO_JWT_SECRET_KEY"), "{log}");
    assert!(!log.contains(secret), "{log}");
    server.terminate();
}

#[test]
fn environment_wins_over_env_file_which_wins_over_fallback() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "# a Ghostwriter .env\nDJANGO_SESSION_COOKIE_NAME=from_file\nDJANGO_SESSION_COOKIE_SECURE=true\nDJANGO_ALLOWED_HOSTS=*\n",
    )
    .unwrap();
    let mut server = ServeProcess::start_with_args(
        dir.path(),
        &[],
        &[("DJANGO_SESSION_COOKIE_NAME", "from_env")],
    );
    let cookie = login_cookie_header(&server, &first_admin_password(&server));
    assert!(cookie.starts_with("from_env="), "{cookie}");
    assert!(cookie.contains("Secure"), "the file's value applies: {cookie}");
    server.terminate();

    let mut server = ServeProcess::start_with_args(dir.path(), &[], &[]);
    std::fs::remove_file(dir.path().join(".env")).unwrap();
    let conn = crate::support::connect_db(&dir.path().join("data/sessiond.sqlite3"));
    let admin = users::find_by_username(&conn, "admin").unwrap().unwrap();
    users::set_password(&conn, admin.id, "known-password").unwrap();
    let cookie = login_cookie_header(&server, "known-password");
    assert!(cookie.starts_with("from_file="), "{cookie}");
    server.terminate();
}

#[test]
fn a_malformed_env_line_is_named_by_its_key_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "s3cr3t-value-that-must-not-leak-0123456789";
    std::fs::write(dir.path().join(".env"), format!("DJANGO_JWT_SECRET_KEY=\"{secret}\n")).unwrap();
    let output = Cli::new(dir.path()).arg("config").status(1).output();
    let stderr = output.stderr;
    assert!(stderr.contains("DJANGO_JWT_SECRET_KEY"), "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[cfg(unix)]
#[test]
fn the_database_is_readable_by_its_owner_only() {
    crate::support::sqlite_only!("the SQLite file's mode");
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    Cli::new(dir.path())
        .args(&["createuser", "--username", "sam"])
        .env("DJANGO_SUPERUSER_PASSWORD", "pw-12345")
        .run();
    let db = dir.path().join("data/sessiond.sqlite3");
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let folder = std::fs::metadata(dir.path().join("data")).unwrap().permissions().mode() & 0o777;
    assert_eq!(folder, 0o700, "{folder:o}");
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = Cli::new(dir.path()).arg("config").stdout_closed().output().stderr;
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn serve_logs_the_next_cleanup_and_stops_cleanly_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServeProcess::start_with_args(dir.path(), &[], &[("TZ", "UTC")]);
    let startup = server.output_once_it_shows("next cleanup run at");
    assert!(startup.contains("T05:00:00Z), schedule `0 5 * * *`"), "{startup}");
    assert_eq!(server.get("/healthz", &[]).status, 200);
    let status = server.stop_with("INT");
    assert_eq!(status.code(), Some(0), "{}", server.output());
}

//! `SESSIOND_DB` / `--db` given a PostgreSQL URL (SPEC 11): the URL is
//! recognized, not taken for a file path; `config` and `config get` show it
//! with the password masked; every command and `serve` on a database that
//! cannot be reached fail with one line naming host, port and database but
//! never the password, and create nothing; `backup` points to `export`; a
//! URL that does not parse is one line without its password.

use crate::support::Cli;

const PASSWORD: &str = "s3cret-pw";
const URL: &str = "postgres://alice:s3cret-pw@db.example.com:5433/sessions";

/// The folder must be as the test left it: a URL taken for a path would
/// have made `postgres:/...` folders or files in it.
#[track_caller]
fn assert_nothing_created(dir: &std::path::Path) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.is_empty(), "created {names:?}");
}

#[test]
fn config_and_config_get_show_the_url_with_the_password_masked() {
    crate::support::sqlite_only!("shows `--db` as given, a path in its control");
    let dir = tempfile::tempdir().unwrap();
    let masked = "postgres://alice:********@db.example.com:5433/sessions";
    let shown = Cli::new(dir.path()).args(&["--db", URL, "config"]).run();
    let line = shown.lines().find(|line| line.starts_with("SESSIOND_DB")).unwrap();
    assert!(line.contains(masked) && line.contains("command line"), "{line}");
    assert!(!shown.contains(PASSWORD), "{shown}");

    let url_with_parameter =
        "postgresql://bob@db.example.com/sessions?sslmode=require&password=s3cret-pw";
    let got = Cli::new(dir.path())
        .args(&["config", "get", "SESSIOND_DB"])
        .env("SESSIOND_DB", url_with_parameter)
        .run();
    assert_eq!(
        got.trim(),
        "postgresql://bob@db.example.com/sessions?sslmode=require&password=********"
    );
    let got = Cli::new(dir.path()).args(&["--db", URL, "config", "get", "SESSIOND_DB"]).run();
    assert_eq!(got.trim(), masked);
    // The control: a file path is shown as it is.
    let got =
        Cli::new(dir.path()).args(&["--db", "x/db.sqlite3", "config", "get", "sessiond_db"]).run();
    assert_eq!(got.trim(), "x/db.sqlite3");
    assert_nothing_created(dir.path());
}

#[test]
fn every_command_and_serve_on_an_unreachable_database_fail_naming_host_port_and_database() {
    // Nothing listens on port 1 of the loopback: connecting is refused at once.
    let unreachable = "postgres://alice:s3cret-pw@127.0.0.1:1/sessions";
    let commands: &[&[&str]] = &[
        &["serve", "--bind", "127.0.0.1:0"],
        &[],
        &["createsuperuser", "--username", "root"],
        &["createuser", "--username", "carol"],
        &["changepassword", "alice"],
        &["deactivateuser", "alice"],
        &["activateuser", "alice"],
        &["clear_expired_sessions"],
        &["sessions", "list"],
        &["sessions", "end-user", "alice"],
        &["schedule", "show"],
        &["schedule", "run"],
        &["access", "list"],
        &["export", "out.json"],
        &["config", "get", "DJANGO_JWT_SECRET_KEY"],
    ];
    for args in commands {
        let dir = tempfile::tempdir().unwrap();
        let output = Cli::new(dir.path())
            .args(args)
            .env("SESSIOND_DB", unreachable)
            .env("DJANGO_SUPERUSER_PASSWORD", "a-password")
            .status(1)
            .stderr_contains("cannot reach the PostgreSQL database `sessions` on `127.0.0.1:1`")
            .output();
        assert_eq!(output.stderr.trim().lines().count(), 1, "{args:?}: {}", output.stderr);
        assert!(!output.stderr.contains(PASSWORD), "{args:?}: {}", output.stderr);
        assert_nothing_created(dir.path());
    }
    // The control: with a file path the same kind of command works.
    let dir = tempfile::tempdir().unwrap();
    Cli::new(dir.path())
        .args(&["--db", "db.sqlite3", "createuser", "--username", "carol"])
        .env("DJANGO_SUPERUSER_PASSWORD", "a-password")
        .run();
}

#[test]
fn a_socket_folder_given_in_either_form_is_named_decoded_in_the_error() {
    for url in [
        "postgres://alice:s3cret-pw@%2Fno%2Fsuch%2Ffolder:5433/sessions",
        "postgres:///sessions?host=/no/such/folder&port=5433&user=alice&password=s3cret-pw",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = Cli::new(dir.path())
            .args(&["sessions", "list"])
            .env("SESSIOND_DB", url)
            .status(1)
            .stderr_contains(
                "cannot reach the PostgreSQL database `sessions` on `/no/such/folder:5433`",
            )
            .output();
        assert!(!output.stderr.contains(PASSWORD), "{url}: {}", output.stderr);
        assert_nothing_created(dir.path());
    }
}

#[test]
fn backup_on_a_postgres_url_points_to_export() {
    let dir = tempfile::tempdir().unwrap();
    let output = Cli::new(dir.path())
        .args(&["--db", URL, "backup", "copy.sqlite3"])
        .status(1)
        .stderr_contains("sessiond export")
        .stderr_contains("`sessions` on `db.example.com:5433`")
        .output();
    assert!(!output.stderr.contains(PASSWORD), "{}", output.stderr);
    assert_nothing_created(dir.path());
}

#[test]
fn a_postgres_url_that_does_not_parse_is_one_line_without_its_password() {
    for url in [
        "postgres://alice:s3cret-pw@db.example.com:99999/sessions",
        "postgresql://alice:s3cret-pw@[::1/sessions",
        "postgres://alice:s3cret-pw@db.example.com/a/b",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = Cli::new(dir.path())
            .args(&["sessions", "list"])
            .env("SESSIOND_DB", url)
            .status(1)
            .stderr_contains("invalid PostgreSQL URL in `SESSIOND_DB`")
            .output();
        assert!(!output.stderr.contains(PASSWORD), "{url}: {}", output.stderr);
        assert_nothing_created(dir.path());
    }
}

//! `init`, `config`, `config get` and `config set` (SPEC 1 and 2), run as the
//! built binary: what they write, what they print, and every refusal.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::Cli;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A temp dir holding a `.env` with this text and this mode.
fn dir_with_env(text: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    (dir, path)
}

fn value_in(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(name, _)| name == key).map(|(_, value)| value.clone())
}

/// Runs a command that must fail with status 1 and one `error:` line.
#[track_caller]
fn refused(dir: &Path, args: &[&str]) -> String {
    let output = Cli::new(dir).args(args).status(1).output();
    let message = output.stderr;
    assert!(message.starts_with("error: "), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
    assert_eq!(output.stdout, "");
    message
}

#[test]
fn init_writes_a_private_env_with_fresh_secrets_and_the_provisioned_values() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = Cli::new(dir.path()).arg("init").run();
    let path = dir.path().join(".env");

    assert_eq!(mode(&path), 0o600);
    let pairs = sessiond::env_file::read(&path).unwrap();
    for (key, value) in [
        ("DJANGO_SESSION_COOKIE_AGE", "32400"),
        ("DJANGO_SESSION_SAVE_EVERY_REQUEST", "true"),
        ("DJANGO_SESSION_EXPIRE_AT_BROWSER_CLOSE", "true"),
        ("DJANGO_SESSION_COOKIE_SECURE", "false"),
        ("DJANGO_CSRF_TRUSTED_ORIGINS", ""),
        ("SESSIOND_SESSION_ABSOLUTE_AGE", "2592000"),
        ("SESSIOND_JWT_LIFETIME", "900"),
        ("SESSIOND_BIND", "127.0.0.1:8000"),
        ("SESSIOND_TRUST_PROXY_HEADERS", "false"),
    ] {
        assert_eq!(value_in(&pairs, key).as_deref(), Some(value), "{key}");
    }
    let secret = value_in(&pairs, "DJANGO_SECRET_KEY").unwrap();
    let jwt_secret = value_in(&pairs, "DJANGO_JWT_SECRET_KEY").unwrap();
    assert!(jwt_secret.len() >= 32 && secret.len() >= 32);
    assert_ne!(secret, jwt_secret);
    assert!(!stdout.contains(&secret) && !stdout.contains(&jwt_secret));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("# seconds a web session lives after its last save\n"), "{text}");
    // The written file is one the server accepts.
    Cli::new(dir.path()).arg("config").run();
}

#[test]
fn init_refuses_to_replace_an_existing_file_without_force() {
    let (dir, path) = dir_with_env("# mine\nDJANGO_SESSION_COOKIE_AGE=60\n", 0o600);

    let message = refused(dir.path(), &["init"]);

    assert!(message.contains("`.env` already exists") && message.contains("--force"), "{message}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\nDJANGO_SESSION_COOKIE_AGE=60\n");
}

#[test]
fn init_names_the_env_file_it_refuses() {
    let (dir, _path) = dir_with_env("A=1\n", 0o600);
    std::fs::write(dir.path().join("other.env"), "B=2\n").unwrap();

    let message = refused(dir.path(), &["--env-file", "other.env", "init"]);

    assert!(message.contains("`other.env`"), "{message}");
}

#[test]
fn init_with_force_replaces_the_file_with_new_secrets() {
    let dir = tempfile::tempdir().unwrap();
    Cli::new(dir.path()).arg("init").run();
    let path = dir.path().join(".env");
    let first = value_in(&sessiond::env_file::read(&path).unwrap(), "DJANGO_JWT_SECRET_KEY");

    Cli::new(dir.path()).args(&["init", "--force"]).run();

    let second = value_in(&sessiond::env_file::read(&path).unwrap(), "DJANGO_JWT_SECRET_KEY");
    assert_ne!(first, second);
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn config_set_keeps_comments_order_and_other_keys_and_leaves_mode_0600() {
    let text = "# my settings\nSESSIOND_JWT_LIFETIME=600\n\n# web\nDJANGO_SESSION_COOKIE_AGE=32400 # nine hours\nOTHER_APP_KEY=keep me\n";
    let (dir, path) = dir_with_env(text, 0o644);

    Cli::new(dir.path()).args(&["config", "set", "DJANGO_SESSION_COOKIE_AGE", "3600"]).run();

    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "# my settings\nSESSIOND_JWT_LIFETIME=600\n\n# web\nDJANGO_SESSION_COOKIE_AGE=3600\nOTHER_APP_KEY=keep me\n"
    );
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn config_set_takes_the_key_in_any_case_and_appends_a_new_key() {
    let (dir, path) = dir_with_env("# start\nSESSIOND_JWT_LIFETIME=600\n", 0o600);

    Cli::new(dir.path()).args(&["config", "set", "django_session_cookie_secure", "Yes"]).run();

    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "# start\nSESSIOND_JWT_LIFETIME=600\nDJANGO_SESSION_COOKIE_SECURE=Yes\n"
    );
}

#[test]
fn config_set_creates_a_missing_file_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    Cli::new(dir.path()).args(&["config", "set", "SESSIOND_JWT_LIFETIME", "300"]).run();
    let path = dir.path().join(".env");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "SESSIOND_JWT_LIFETIME=300\n");
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn config_set_notes_when_the_environment_overrides_the_stored_value() {
    let dir = tempfile::tempdir().unwrap();

    let stdout = Cli::new(dir.path())
        .args(&["config", "set", "SESSIOND_JWT_LIFETIME", "300"])
        .env("SESSIOND_JWT_LIFETIME", "120")
        .stderr_contains("note: `SESSIOND_JWT_LIFETIME` is also set in the environment")
        .run();

    assert_eq!(stdout, "Set `SESSIOND_JWT_LIFETIME` in `.env`.\n");
    let path = dir.path().join(".env");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "SESSIOND_JWT_LIFETIME=300\n");
}

#[test]
fn config_set_works_when_the_file_holds_a_bad_value() {
    let (dir, path) = dir_with_env("DJANGO_SESSION_COOKIE_AGE=soon\n", 0o600);
    refused(dir.path(), &["config"]);

    Cli::new(dir.path()).args(&["config", "set", "DJANGO_SESSION_COOKIE_AGE", "60"]).run();

    assert_eq!(std::fs::read_to_string(&path).unwrap(), "DJANGO_SESSION_COOKIE_AGE=60\n");
}

#[test]
fn config_set_refuses_bad_values_naming_key_and_value_and_leaves_the_file_alone() {
    let text = "# keep\nDJANGO_SESSION_COOKIE_AGE=32400\n";
    let (dir, path) = dir_with_env(text, 0o600);
    for (key, value) in [
        ("DJANGO_SESSION_COOKIE_AGE", "-5"),
        ("DJANGO_SESSION_COOKIE_AGE", "0"),
        ("DJANGO_SESSION_COOKIE_AGE", "1.5"),
        ("SESSIOND_JWT_LIFETIME", "15m"),
        ("SESSIOND_SESSION_ABSOLUTE_AGE", "never"),
        ("DJANGO_SESSION_SAVE_EVERY_REQUEST", "maybe"),
        ("SESSIOND_TRUST_PROXY_HEADERS", "2"),
        ("DJANGO_CSRF_TRUSTED_ORIGINS", "example.com"),
        ("DJANGO_CSRF_TRUSTED_ORIGINS", "https://ok.example ftp://bad.example"),
        ("SESSIOND_BIND", "localhost"),
    ] {
        let message = refused(dir.path(), &["config", "set", key, value]);
        assert!(message.contains(&format!("`{key}`")), "{message}");
        assert!(message.contains(&format!("`{value}`")), "{message}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "{key}={value}");
    }
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn config_set_refuses_a_short_jwt_secret_without_echoing_it() {
    let (dir, path) = dir_with_env("A=1\n", 0o600);

    let message =
        refused(dir.path(), &["config", "set", "DJANGO_JWT_SECRET_KEY", "short-secret-xyz"]);

    assert!(message.contains("`DJANGO_JWT_SECRET_KEY`") && message.contains("32"), "{message}");
    assert!(!message.contains("short-secret-xyz"), "{message}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=1\n");
}

#[test]
fn config_set_refuses_an_unknown_key() {
    let (dir, path) = dir_with_env("A=1\n", 0o600);

    let message = refused(dir.path(), &["config", "set", "DJANGO_DEBUG", "true"]);

    assert!(message.contains("unknown setting `DJANGO_DEBUG`"), "{message}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=1\n");
}

#[test]
fn config_set_without_a_value_is_a_usage_error() {
    let (dir, path) = dir_with_env("A=1\n", 0o600);
    Cli::new(dir.path()).args(&["config", "set", "SESSIOND_JWT_LIFETIME"]).status(2).run();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=1\n");
}

#[test]
fn config_lists_every_key_with_its_source_and_masks_secrets() {
    let secret = "file-secret-0123456789abcdef0123456789abcdef";
    let (dir, _path) = dir_with_env(
        &format!("DJANGO_SESSION_COOKIE_AGE=3600\nDJANGO_JWT_SECRET_KEY={secret}\n"),
        0o600,
    );

    let text = Cli::new(dir.path()).arg("config").env("SESSIOND_JWT_LIFETIME", "120").run();

    let line = |key: &str| -> Vec<String> {
        let line = text.lines().find(|line| line.starts_with(&format!("{key} "))).unwrap();
        line.split("  ").map(str::trim).filter(|part| !part.is_empty()).map(str::to_owned).collect()
    };
    for key in sessiond::settings::KEYS {
        assert!(text.contains(key.name), "{} missing from\n{text}", key.name);
    }
    assert_eq!(line("DJANGO_SESSION_COOKIE_AGE"), ["DJANGO_SESSION_COOKIE_AGE", "3600", ".env"]);
    assert_eq!(line("SESSIOND_JWT_LIFETIME"), ["SESSIOND_JWT_LIFETIME", "120", "environment"]);
    assert_eq!(
        line("DJANGO_SESSION_COOKIE_NAME"),
        ["DJANGO_SESSION_COOKIE_NAME", "sessionid", "default"]
    );
    assert_eq!(line("DJANGO_SECRET_KEY")[2], "database");
    assert_eq!(line("DJANGO_JWT_SECRET_KEY")[2], ".env");
    assert!(!text.contains(secret), "{text}");
}

#[test]
fn config_get_prints_the_named_values_secrets_in_clear() {
    let secret = "file-secret-0123456789abcdef0123456789abcdef";
    let (dir, _path) = dir_with_env(
        &format!("DJANGO_SESSION_COOKIE_AGE=3600\nDJANGO_JWT_SECRET_KEY={secret}\n"),
        0o600,
    );
    let db = dir.path().join("db.sqlite3").display().to_string();

    let stdout = Cli::new(dir.path())
        .args(&[
            "--db",
            &db,
            "config",
            "get",
            "django_jwt_secret_key",
            "DJANGO_SESSION_COOKIE_AGE",
            "SESSIOND_BIND",
        ])
        .run();

    assert_eq!(stdout, format!("{secret}\n3600\n127.0.0.1:8000\n"));
}

#[test]
fn config_get_of_an_unconfigured_secret_prints_the_one_kept_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db.sqlite3");
    let db = db_path.display().to_string();
    // `config get` refuses a database that does not exist (SPEC 1 and 14).
    drop(crate::support::open_db(&db_path));

    let get = || Cli::new(dir.path()).args(&["--db", &db, "config", "get", "DJANGO_SECRET_KEY"]);
    let first = get().run();
    let second = get().run();

    let value = first.trim_end().to_owned();
    assert_eq!(value.len(), 64);
    assert_eq!(second, first);
    let conn = crate::support::open_db(&db_path);
    assert_eq!(sessiond::meta::get(&conn, "generated_secret_key").unwrap(), Some(value));
}

#[test]
fn config_get_refuses_an_unknown_key_and_prints_nothing_else() {
    let dir = tempfile::tempdir().unwrap();

    let message = refused(dir.path(), &["config", "get", "SESSIOND_BIND", "NO_SUCH_KEY"]);

    assert!(message.contains("unknown setting `NO_SUCH_KEY`"), "{message}");
}

#[test]
fn config_refuses_a_bad_value_in_the_environment_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let message = Cli::new(dir.path())
        .arg("config")
        .env("DJANGO_SESSION_COOKIE_AGE", "-1")
        .status(1)
        .output()
        .stderr;
    assert!(
        message.contains("`DJANGO_SESSION_COOKIE_AGE`") && message.contains("`-1`"),
        "{message}"
    );
}

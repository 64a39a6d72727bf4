//! `sessiond backup FILE` (SPEC 1): a consistent copy taken while `serve`
//! runs under load, that a second server accepts the live sessions from;
//! mode 0600; an existing FILE refused and left alone; nothing left behind
//! but the backup.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cli_refusals::run_cli;
use crate::support::{ServeProcess, prepare_database};

/// The files in a folder, by name.
fn names_in(folder: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_backup_under_load_is_accepted_by_a_second_server() {
    crate::support::sqlite_only!("`sessiond backup` copies the SQLite file");
    let dir = tempfile::tempdir().unwrap();
    let db = prepare_database(dir.path());
    let server = ServeProcess::start(dir.path(), &[]);
    let mut live = Vec::new();
    for name in ["alice", "bob", "alice"] {
        let password = format!("{name}-password");
        let response =
            server.post_form("/login", &[("username", name), ("password", &password)], &[]);
        assert_eq!(response.status, 303, "{}", response.body);
        live.push(response.cookie_value("sessionid").unwrap());
    }
    let login = server.post_graphql(
        "mutation { login(username: \"bob\", password: \"bob-password\") { token } }",
        serde_json::json!({}),
        None,
    );
    let token = login.json()["data"]["login"]["token"].as_str().unwrap().to_owned();

    // Load: logins (writes) and signed-in requests (slides) until the backup
    // is done.
    let stop = Arc::new(AtomicBool::new(false));
    let (running, is_running) = std::sync::mpsc::channel();
    let load: Vec<_> = (0..2)
        .map(|n| {
            let stop = Arc::clone(&stop);
            let running = running.clone();
            let addr = server.addr;
            let cookie = format!("sessionid={}", live[n]);
            std::thread::spawn(move || {
                let mut requests = 0;
                while !stop.load(Ordering::SeqCst) {
                    let fields = [("username", "alice"), ("password", "alice-password")];
                    let response = crate::support::post_form(addr, "/login", &fields, &[]);
                    assert_eq!(response.status, 303);
                    let whoami =
                        crate::support::request(addr, "GET", "/", &[("Cookie", &cookie)], b"");
                    assert_eq!(whoami.status, 200);
                    requests += 2;
                    let _ = running.send(());
                }
                requests
            })
        })
        .collect();
    for _ in 0..2 {
        is_running.recv().unwrap();
    }
    let backups = tempfile::tempdir().unwrap();
    let target = backups.path().join("copy.sqlite3");
    let db_arg = db.to_str().unwrap();
    let output =
        run_cli(dir.path(), &["--db", db_arg, "backup", target.to_str().unwrap()], &[], None);
    stop.store(true, Ordering::SeqCst);
    let requests: usize = load.into_iter().map(|thread| thread.join().unwrap()).sum();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(requests > 0, "the backup ran under load");
    assert_eq!(names_in(backups.path()), vec!["copy.sqlite3"], "no temporary file left");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Restore: the copy in place of a database file, and a server on it.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&target, restored.path().join("sessiond.sqlite3")).unwrap();
    let second = ServeProcess::start(restored.path(), &[]);
    for key in &live {
        let cookie = format!("sessionid={key}");
        let whoami = second.get("/api/whoami", &[("Cookie", &cookie)]);
        assert_eq!(whoami.status, 200, "a session live before the backup: {}", whoami.body);
    }
    let bearer = format!("Bearer {token}");
    let whoami = second.get("/api/whoami", &[("Authorization", &bearer)]);
    assert_eq!(whoami.status, 200, "the API login, with the generated key: {}", whoami.body);
    // The control: a key the original never issued is refused there.
    let unknown = format!("sessionid={}", "ab".repeat(32));
    assert_eq!(second.get("/api/whoami", &[("Cookie", &unknown)]).status, 401);
}

#[test]
fn a_backup_refuses_an_existing_file_and_leaves_it_alone() {
    crate::support::sqlite_only!("`sessiond backup` copies the SQLite file");
    let dir = tempfile::tempdir().unwrap();
    let db = prepare_database(dir.path());
    let target = dir.path().join("taken.sqlite3");
    std::fs::write(&target, "precious").unwrap();
    let args = ["--db", db.to_str().unwrap(), "backup", target.to_str().unwrap()];
    let output = run_cli(dir.path(), &args, &[], None);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("taken.sqlite3") && stderr.contains("already exists"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");

    // The control: a new name works, and the copy holds the users.
    let fresh = dir.path().join("fresh.sqlite3");
    let args = ["--db", db.to_str().unwrap(), "backup", fresh.to_str().unwrap()];
    assert!(run_cli(dir.path(), &args, &[], None).status.success());
    let copy = sessiond::db::connect(&fresh).unwrap();
    assert_eq!(crate::support::count(&copy, "users"), 3);
}

#[test]
fn a_backup_of_a_broken_database_fails_and_writes_nothing() {
    crate::support::sqlite_only!("`sessiond backup` copies the SQLite file");
    let dir = tempfile::tempdir().unwrap();
    let db = prepare_database(dir.path());
    std::fs::write(&db, vec![0x55; 64 * 1024]).unwrap();
    let backups = tempfile::tempdir().unwrap();
    let target = backups.path().join("copy.sqlite3");
    let args = ["--db", db.to_str().unwrap(), "backup", target.to_str().unwrap()];
    let output = run_cli(dir.path(), &args, &[], None);
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(names_in(backups.path()), Vec::<String>::new());
}

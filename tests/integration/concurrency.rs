//! Several processes on one database file (SPEC 8): CLI commands that change
//! users run while a real `sessiond serve` is under load, and nobody sees
//! "database is locked"; what a command ends is refused by the server on the
//! very next request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sessiond::users::{self, Role};

use crate::support::{Cli, ServeProcess, prepare_database};

const LOGIN: &str =
    "mutation ($u: String!, $p: String!) { login(username: $u, password: $p) { token } }";

/// Signs `user` in both ways; returns the cookie header and the bearer
/// header.
#[track_caller]
fn sign_in(server: &ServeProcess, user: &str, password: &str) -> (String, String) {
    let login = server.post_form("/login", &[("username", user), ("password", password)], &[]);
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = format!("sessionid={}", login.cookie_value("sessionid").expect("a cookie"));
    let api = server.post_graphql(LOGIN, serde_json::json!({ "u": user, "p": password }), None);
    let token = api.json()["data"]["login"]["token"].as_str().expect("a token").to_owned();
    (cookie, format!("Bearer {token}"))
}

/// Logins and authenticated requests from several threads until `stop`;
/// every status seen goes into `statuses`.
fn start_load(
    server: &ServeProcess,
    stop: &Arc<AtomicBool>,
    statuses: &Arc<Mutex<Vec<u16>>>,
) -> Vec<std::thread::JoinHandle<()>> {
    let (cookie, bearer) = sign_in(server, "alice", "alice-password");
    let addr = server.addr;
    (0..3)
        .map(|number| {
            let (stop, statuses) = (Arc::clone(stop), Arc::clone(statuses));
            let (cookie, bearer) = (cookie.clone(), bearer.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let response = match number {
                        0 => crate::support::request(
                            addr,
                            "POST",
                            "/login",
                            &[("Content-Type", "application/x-www-form-urlencoded")],
                            b"username=bob&password=bob-password",
                        ),
                        1 => crate::support::request(addr, "GET", "/", &[("Cookie", &cookie)], b""),
                        _ => crate::support::request(
                            addr,
                            "GET",
                            "/api/whoami",
                            &[("Authorization", &bearer)],
                            b"",
                        ),
                    };
                    statuses.lock().unwrap().push(response.status);
                }
            })
        })
        .collect()
}

/// A `sessiond serve` on a fresh database with `users` added (password
/// `<name>-password`), under the load of [`start_load`].
struct UnderLoad {
    dir: tempfile::TempDir,
    db: String,
    server: ServeProcess,
    stop: Arc<AtomicBool>,
    statuses: Arc<Mutex<Vec<u16>>>,
    load: Vec<std::thread::JoinHandle<()>>,
}

impl UnderLoad {
    fn start(users: &[&str]) -> UnderLoad {
        let dir = tempfile::tempdir().unwrap();
        let db_path = prepare_database(dir.path());
        let conn = crate::support::open_db(&db_path);
        for name in users {
            users::create(&conn, name, "", &format!("{name}-password"), Role::User, 0).unwrap();
        }
        drop(conn);
        let server = ServeProcess::start(dir.path(), &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let load = start_load(&server, &stop, &statuses);
        let db = db_path.display().to_string();
        UnderLoad { dir, db, server, stop, statuses, load }
    }

    /// Stops the load and the server: enough requests went through, none
    /// got a 5xx, and the server never logged a locked database.
    fn finish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.load {
            thread.join().expect("load thread");
        }
        let statuses = self.statuses.lock().unwrap();
        assert!(statuses.len() >= 10, "too little load to mean anything: {}", statuses.len());
        assert!(statuses.iter().all(|status| *status < 500), "{statuses:?}");
        let output = self.server.signal_and_wait("TERM");
        assert!(!output.contains("locked"), "{output}");
    }
}

#[test]
fn user_commands_under_load_never_see_a_locked_database() {
    let under_load = UnderLoad::start(&["carol", "dave"]);
    let (dir, db, server) = (&under_load.dir, &under_load.db, &under_load.server);

    for round in 0..3 {
        let carol_password = format!("carol-password-{round}");
        let old_carol_password = if round == 0 {
            String::from("carol-password")
        } else {
            format!("carol-password-{}", round - 1)
        };
        let (carol_cookie, carol_bearer) = sign_in(server, "carol", &old_carol_password);
        let (dave_cookie, dave_bearer) = sign_in(server, "dave", "dave-password");

        type Command<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
        let commands: [Command<'_>; 5] = [
            (
                vec!["changepassword", "carol"],
                vec![("DJANGO_SUPERUSER_PASSWORD", carol_password.as_str())],
            ),
            (vec!["deactivateuser", "dave"], vec![]),
            (vec!["activateuser", "dave"], vec![]),
            (vec!["clear_expired_sessions"], vec![]),
            (vec!["config"], vec![]),
        ];
        for (number, (args, env)) in commands.iter().enumerate() {
            run_ok(dir.path(), db, args, env);
            if number == 1 {
                // Deactivated: dave's sessions are refused at once.
                assert_eq!(server.get("/api/whoami", &[("Cookie", &dave_cookie)]).status, 401);
                assert_eq!(
                    server.get("/api/whoami", &[("Authorization", &dave_bearer)]).status,
                    401
                );
            }
        }
        // The password change ended carol's sessions, in another process.
        assert_eq!(server.get("/api/whoami", &[("Cookie", &carol_cookie)]).status, 401);
        assert_eq!(server.get("/api/whoami", &[("Authorization", &carol_bearer)]).status, 401);
        // Reactivated dave signs in again; his old sessions stay ended.
        assert_eq!(server.get("/api/whoami", &[("Cookie", &dave_cookie)]).status, 401);
        sign_in(server, "dave", "dave-password");
    }

    under_load.finish();
}

/// Runs the binary on the database and returns its stdout; fails the test on
/// a non-zero exit, any stderr output, or any mention of a locked database.
#[track_caller]
fn run_ok(dir: &std::path::Path, db: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Cli::new(dir).args(&["--db", db]).args(args).envs(env).output();
    let printed = format!("{}{}", output.stdout, output.stderr);
    assert!(!printed.contains("locked"), "{printed}");
    output.stdout
}

#[test]
fn session_commands_under_load_never_see_a_locked_database() {
    let under_load = UnderLoad::start(&["erin", "frank"]);
    let (dir, db, server) = (&under_load.dir, &under_load.db, &under_load.server);

    for _ in 0..3 {
        let (erin_cookie, erin_bearer) = sign_in(server, "erin", "erin-password");
        let (frank_cookie, frank_bearer) = sign_in(server, "frank", "frank-password");
        // Revoke each of erin's live sessions by id, as an operator would.
        let listed = run_ok(dir.path(), db, &["sessions", "list", "--user", "erin", "--json"], &[]);
        let items: serde_json::Value = serde_json::from_str(&listed).expect("a JSON array");
        let live: Vec<&str> = items
            .as_array()
            .expect("an array")
            .iter()
            .filter(|item| item["status"] == "active")
            .filter_map(|item| item["id"].as_str())
            .collect();
        assert_eq!(live.len(), 2, "{listed}");
        for id in live {
            run_ok(dir.path(), db, &["sessions", "revoke", id], &[]);
        }
        assert_eq!(server.get("/api/whoami", &[("Cookie", &erin_cookie)]).status, 401);
        assert_eq!(server.get("/api/whoami", &[("Authorization", &erin_bearer)]).status, 401);
        // End all of frank's at once.
        run_ok(dir.path(), db, &["sessions", "end-user", "frank"], &[]);
        assert_eq!(server.get("/api/whoami", &[("Cookie", &frank_cookie)]).status, 401);
        assert_eq!(server.get("/api/whoami", &[("Authorization", &frank_bearer)]).status, 401);
        run_ok(dir.path(), db, &["sessions", "list", "--json"], &[]);
        run_ok(dir.path(), db, &["clear_expired_sessions"], &[]);
        run_ok(dir.path(), db, &["schedule", "show"], &[]);
    }

    under_load.finish();
}

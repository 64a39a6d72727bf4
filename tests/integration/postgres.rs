//! PostgreSQL itself (SPEC 11), in the PostgreSQL half of the suite only:
//! two real `sessiond serve` processes on one database, where what ends
//! access through one (a logout, a revocation) or through a command (a new
//! password, a deactivation) is refused by the other on its next request,
//! and the login throttle counts across both; the database stopped under a
//! running server (503 within seconds, `/healthz` 503, no crash) and
//! started again (the same server answers, old cookies still work); and an
//! installation moved from SQLite to PostgreSQL and back with `export` and
//! `import`, its cookie and token working after each move; TLS to a cluster
//! that refuses plain connections (the certificate and host name checked);
//! the cleanup leaving a row a slide moved while it waited; and the two
//! instances behind nginx with the README's `deploy/nginx-two-instances.conf`.
//!
//! Also run on PostgreSQL by the rest of the suite (support puts every test
//! database there): several servers starting at once on an empty database
//! (`db_file::three_servers_starting_at_once_on_a_new_file_agree`) and one
//! scheduled cleanup run across instances
//! (`db_file::two_servers_on_one_file_run_each_scheduled_cleanup_once`,
//! in-process servers, as `serve` takes no manual clock).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::pg_cluster::Cluster;
use crate::proxies::{NGINX, deploy_file, free_port, start_nginx_site};
use crate::support::{
    Cli, Response, ServeProcess, TestServer, installed, jwt_login, postgres_only, request_to_host,
};

const LOGIN: &str =
    "mutation ($u: String!, $p: String!) { login(username: $u, password: $p) { token } }";

/// Two `sessiond serve` processes on one new database with users `root`,
/// `alice` and `bob` (password `<name>-password`).
fn two_instances() -> (tempfile::TempDir, ServeProcess, ServeProcess) {
    let dir = tempfile::tempdir().unwrap();
    crate::support::prepare_database(dir.path());
    let first = ServeProcess::start(dir.path(), &[]);
    let second = ServeProcess::start(dir.path(), &[]);
    (dir, first, second)
}

/// Signs in through the form; returns the `Cookie` header.
#[track_caller]
fn cookie_from(server: &ServeProcess, user: &str) -> String {
    let password = format!("{user}-password");
    let login = server.post_form("/login", &[("username", user), ("password", &password)], &[]);
    assert_eq!(login.status, 303, "{}", login.body);
    format!("sessionid={}", login.cookie_value("sessionid").expect("a cookie"))
}

/// Signs in through GraphQL; returns the `Authorization` header.
#[track_caller]
fn bearer_from(server: &ServeProcess, user: &str) -> String {
    let password = format!("{user}-password");
    let login = server.post_graphql(LOGIN, serde_json::json!({ "u": user, "p": password }), None);
    let token = login.json()["data"]["login"]["token"].as_str().map(str::to_owned);
    format!("Bearer {}", token.unwrap_or_else(|| panic!("no token: {}", login.body)))
}

fn whoami(server: &ServeProcess, header: &str) -> Response {
    let name = if header.starts_with("Bearer ") { "Authorization" } else { "Cookie" };
    server.get("/api/whoami", &[(name, header)])
}

#[test]
fn a_logout_and_a_revocation_through_one_instance_are_refused_by_the_other() {
    postgres_only!();
    let (_dir, first, second) = two_instances();
    let cookie = cookie_from(&first, "alice");
    let bearer = bearer_from(&second, "alice");
    // The controls: each instance honours what the other started, and the
    // first now remembers the token as one that passed.
    assert_eq!(whoami(&second, &cookie).status, 200);
    assert_eq!(whoami(&first, &bearer).status, 200);
    assert_eq!(whoami(&first, &bearer).status, 200);

    let logout = first.post_form("/logout", &[], &[("Cookie", &cookie)]);
    assert_eq!(logout.status, 303, "{}", logout.body);
    assert_eq!(whoami(&second, &cookie).status, 401, "logged out through the first");

    let revoke =
        second.post_graphql("mutation { logout }", serde_json::json!({}), Some(&bearer[7..]));
    assert_eq!(revoke.status, 200, "{}", revoke.body);
    assert_eq!(revoke.json()["data"]["logout"], true, "{}", revoke.body);
    let refused = whoami(&first, &bearer);
    assert_eq!(refused.status, 401, "revoked through the second: {}", refused.body);
}

#[test]
fn a_password_change_and_a_deactivation_by_command_are_refused_by_both_instances() {
    postgres_only!();
    let (dir, first, second) = two_instances();
    let alice = [cookie_from(&first, "alice"), bearer_from(&second, "alice")];
    let bob = [cookie_from(&second, "bob"), bearer_from(&first, "bob")];
    for header in alice.iter().chain(&bob) {
        for server in [&first, &second] {
            assert_eq!(whoami(server, header).status, 200, "the control");
        }
    }
    let db = dir.path().join("sessiond.sqlite3");
    let db = db.to_str().unwrap();
    Cli::new(dir.path())
        .args(&["--db", db, "changepassword", "alice"])
        .env("DJANGO_SUPERUSER_PASSWORD", "a-new-password")
        .run();
    for header in &alice {
        for server in [&first, &second] {
            assert_eq!(whoami(server, header).status, 401, "the new password ended {header}");
        }
    }
    for header in &bob {
        assert_eq!(whoami(&first, header).status, 200, "bob is untouched");
    }
    Cli::new(dir.path()).args(&["--db", db, "deactivateuser", "bob"]).run();
    for header in &bob {
        for server in [&first, &second] {
            assert_eq!(whoami(server, header).status, 401, "deactivated: {header}");
        }
    }
    let refused =
        second.post_form("/login", &[("username", "bob"), ("password", "bob-password")], &[]);
    assert_ne!(refused.status, 303, "a deactivated user cannot sign in through either");
    let login =
        first.post_form("/login", &[("username", "alice"), ("password", "a-new-password")], &[]);
    assert_eq!(login.status, 303, "the new password works: {}", login.body);
}

#[test]
fn the_login_throttle_counts_failures_across_two_instances() {
    postgres_only!();
    let (_dir, first, second) = two_instances();
    let wrong = [("username", "alice"), ("password", "guess")];
    for server in [&first, &first, &first, &second, &second] {
        assert_eq!(server.post_form("/login", &wrong, &[]).status, 401);
    }
    let right = [("username", "alice"), ("password", "alice-password")];
    for server in [&first, &second] {
        let response = server.post_form("/login", &right, &[]);
        assert_eq!(response.status, 429, "five failures in all: {}", response.body);
    }
    // The control: bob was never throttled.
    cookie_from(&second, "bob");
}

/// Waits (by the real clock, `within` at most) until `answer` gives
/// `status`; returns how long it took.
#[track_caller]
fn until_status(within: Duration, status: u16, answer: impl Fn() -> Response) -> Duration {
    let started = Instant::now();
    loop {
        let response = answer();
        if response.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "no {status} within {within:?}; last answer {}: {}",
            response.status,
            response.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates `alice` (password `alice-password`) in the database at `url`.
fn create_alice(dir: &Path, url: &str) {
    Cli::new(dir)
        .db_as_given()
        .args(&["--db", url, "createuser", "--username", "alice"])
        .env("DJANGO_SUPERUSER_PASSWORD", "alice-password")
        .run();
}

/// A new database on `cluster` with `alice`: its URL, its name, and the
/// folder the command ran in.
fn database_with_alice(cluster: &Cluster) -> (String, String, tempfile::TempDir) {
    let url = cluster.new_database();
    let name = url.rsplit('/').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    create_alice(dir.path(), &url);
    (url, name, dir)
}

/// A cluster of the test's own (to stop or freeze), a database on it with
/// `alice`, and a `serve` process on that database.
fn alice_served_on_a_cluster_of_its_own() -> (Cluster, tempfile::TempDir, ServeProcess) {
    let cluster = Cluster::start();
    let url = cluster.new_database();
    let dir = tempfile::tempdir().unwrap();
    create_alice(dir.path(), &url);
    let server = ServeProcess::start_with_args(dir.path(), &["--db", &url], &[]);
    (cluster, dir, server)
}

#[test]
fn a_stopped_database_gets_503_quickly_and_the_server_recovers_when_it_is_back() {
    postgres_only!();
    let (cluster, _dir, mut server) = alice_served_on_a_cluster_of_its_own();
    let cookie = cookie_from(&server, "alice");
    let bearer = bearer_from(&server, "alice");
    assert_eq!(server.get("/healthz", &[]).status, 200, "the control");

    cluster.stop();
    for (what, header) in [("cookie", &cookie), ("token", &bearer)] {
        let started = Instant::now();
        let response = whoami(&server, header);
        let took = started.elapsed();
        assert_eq!(response.status, 503, "{what} with the database stopped: {}", response.body);
        assert!(took < Duration::from_secs(5), "{what}: 503 after {took:?}");
    }
    let started = Instant::now();
    let health = server.get("/healthz", &[]);
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let login =
        server.post_form("/login", &[("username", "alice"), ("password", "alice-password")], &[]);
    assert_eq!(login.status, 503, "a login needs the database too: {}", login.body);
    assert!(login.set_cookie("sessionid").is_none(), "no session handed out");

    cluster.start_again();
    until_status(Duration::from_secs(15), 200, || server.get("/healthz", &[]));
    assert_eq!(whoami(&server, &cookie).status, 200, "the old cookie still works");
    assert_eq!(whoami(&server, &bearer).status, 200, "the old token still works");
    cookie_from(&server, "alice");
    let output = server.signal_and_wait("TERM");
    assert!(!output.contains("panicked"), "{output}");
    assert!(!output.contains("alice-password"), "{output}");
}

#[test]
fn a_server_reaches_postgres_through_its_unix_socket() {
    postgres_only!();
    let cluster = crate::pg_cluster::shared();
    let (_, name, dir) = database_with_alice(cluster);
    let url = cluster.socket_url(&name);
    let server = TestServer::start_at(&url, &[]);
    let cookie = server.login("alice", "alice-password");
    let response = server.get_with_cookie("/api/whoami", &cookie);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["username"], "alice");
    // The control: the same users are in the database over TCP.
    let listed = Cli::new(dir.path())
        .db_as_given()
        .args(&["--db", &cluster.url(&name), "sessions", "list"])
        .run();
    assert!(listed.contains("alice"), "{listed}");
}

/// How many index scans each of `table`'s indexes has had, as the server's
/// statistics say.
fn index_scans(cluster: &Cluster, database: &str, table: &str) -> Vec<(String, u64)> {
    let sql = format!(
        "SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE relname = '{table}' ORDER BY 1"
    );
    let listed = cluster.psql(database, &sql);
    listed
        .lines()
        .map(|line| {
            let (name, scans) = line.split_once('|').expect("name|scans");
            (name.to_owned(), scans.trim().parse().expect("a count"))
        })
        .collect()
}

#[test]
fn the_session_look_ups_keep_to_the_key_when_most_stored_rows_have_expired() {
    postgres_only!();
    let cluster = crate::pg_cluster::shared();
    let (url, database, _dir) = database_with_alice(cluster);
    let server = TestServer::start_at(&url, &[]);
    let cookie = format!("sessionid={}", server.login("alice", "alice-password"));
    let bearer = format!("Bearer {}", jwt_login(&server, "alice", "alice-password"));
    // A day's backlog before the cleanup, and statistics that know it: to
    // the planner, "expiry after now" is then next to no row.
    cluster.psql(
        &database,
        "INSERT INTO web_sessions (key_hash, user_id, created, last_activity, expire_date)
           SELECT sha256(i::text::bytea), (SELECT id FROM users), 1, 1, 1 + i
           FROM generate_series(1, 20000) i;
         INSERT INTO jwt_sessions (jti, user_id, created, last_activity, expires_at)
           SELECT 'expired-' || i, (SELECT id FROM users), 1, 1, 1 + i
           FROM generate_series(1, 20000) i;
         ANALYZE web_sessions; ANALYZE jwt_sessions",
    );
    for (table, header, key_index) in [
        // A cookie names its row: the primary key is the look-up.
        ("web_sessions", ("Cookie", cookie.as_str()), "web_sessions_pkey"),
        ("jwt_sessions", ("Authorization", bearer.as_str()), "jwt_sessions_jti_key"),
    ] {
        let before = index_scans(cluster, &database, table);
        let scans_of = |scans: &[(String, u64)], index: &str| {
            scans.iter().find(|(name, _)| name == index).map(|(_, count)| *count).unwrap_or(0)
        };
        // Statistics reach the view when a backend flushes them (at most
        // once a second while busy): ask until 20 look-ups have shown up.
        let deadline = Instant::now() + Duration::from_secs(30);
        let after = loop {
            let response = server.get("/api/whoami", &[header]);
            assert_eq!(response.status, 200, "{table}: {}", response.body);
            let now = index_scans(cluster, &database, table);
            if scans_of(&now, key_index) >= scans_of(&before, key_index) + 20 {
                break now;
            }
            assert!(Instant::now() < deadline, "{table}: the key index shows no look-ups: {now:?}");
            std::thread::sleep(Duration::from_millis(100));
        };
        for ((index, was), (_, is)) in before.iter().zip(&after) {
            if index != key_index && !index.ends_with("_pkey") {
                assert_eq!(
                    was, is,
                    "{table}: look-ups searched `{index}`: {before:?} -> {after:?}"
                );
            }
        }
    }
}

#[test]
fn the_cleanup_goes_through_every_page_range_and_keeps_every_live_row() {
    postgres_only!();
    let cluster = crate::pg_cluster::shared();
    let (url, database, dir) = database_with_alice(cluster);
    // Expired and live rows side by side on every page, over more page
    // ranges than one batch takes.
    cluster.psql(
        &database,
        "INSERT INTO web_sessions (key_hash, user_id, created, last_activity, expire_date)
           SELECT sha256(i::text::bytea), (SELECT id FROM users), 1, 1,
                  CASE WHEN i % 2 = 0 THEN 2 ELSE 4000000000 END
           FROM generate_series(1, 40000) i;
         INSERT INTO jwt_sessions (jti, user_id, created, last_activity, expires_at)
           SELECT 'row-' || i, (SELECT id FROM users), 1, 1,
                  CASE WHEN i % 2 = 0 THEN 2 ELSE 4000000000 END
           FROM generate_series(1, 40000) i",
    );
    for table in ["web_sessions", "jwt_sessions"] {
        let pages = cluster.psql(
            &database,
            &format!("SELECT pg_relation_size('{table}') / current_setting('block_size')::bigint"),
        );
        let pages: i64 = pages.trim().parse().unwrap();
        assert!(pages > 2 * sessiond::cleanup::PG_BATCH_PAGES, "{table}: {pages} pages");
    }
    let printed = run_on(dir.path(), &url, &["clear_expired_sessions"]);
    assert!(printed.contains("Cleared 20000 expired web session(s)."), "{printed}");
    assert!(printed.contains("Cleared 20000 expired GraphQL login session(s)."), "{printed}");
    let left = cluster.psql(
        &database,
        "SELECT (SELECT count(*) FROM web_sessions WHERE expire_date = 4000000000),
                (SELECT count(*) FROM web_sessions),
                (SELECT count(*) FROM jwt_sessions WHERE expires_at = 4000000000),
                (SELECT count(*) FROM jwt_sessions)",
    );
    assert_eq!(left.trim(), "20000|20000|20000|20000");
}

#[test]
fn the_cleanup_leaves_a_session_whose_expiry_moved_while_it_waited_for_the_row() {
    postgres_only!();
    let cluster = crate::pg_cluster::shared();
    let (url, database, dir) = database_with_alice(cluster);
    cluster.psql(
        &database,
        "INSERT INTO web_sessions (key_hash, user_id, created, last_activity, expire_date)
           SELECT sha256(i::text::bytea), (SELECT id FROM users), 1, 1, 2
           FROM generate_series(1, 3) i",
    );
    // A request's slide of the middle row, not yet committed: the cleanup
    // (its batches take no lock but the rows') must wait for this row, then
    // see its new expiry and leave it.
    let sliding = sessiond::db::connect(Path::new(&url)).unwrap();
    let slide = sliding.transaction(sessiond::db::Behavior::Deferred).unwrap();
    let moved = slide
        .execute(
            "UPDATE web_sessions SET expire_date = 4000000000 WHERE key_hash = sha256('2'::bytea)",
            [],
        )
        .unwrap();
    assert_eq!(moved, 1);
    let printed = std::thread::scope(|scope| {
        let cleanup = scope.spawn(|| run_on(dir.path(), &url, &["clear_expired_sessions"]));
        let deadline = Instant::now() + Duration::from_secs(10);
        while cluster
            .psql(
                &database,
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .trim()
            != "1"
        {
            assert!(!cleanup.is_finished(), "the cleanup did not wait for the row being slid");
            assert!(Instant::now() < deadline, "the cleanup never waited for the row");
            std::thread::sleep(Duration::from_millis(20));
        }
        slide.commit().unwrap();
        cleanup.join().unwrap()
    });
    assert!(printed.contains("Cleared 2 expired web session(s)."), "{printed}");
    let left = cluster.psql(&database, "SELECT expire_date FROM web_sessions");
    assert_eq!(left.trim(), "4000000000");
}

#[test]
fn tls_to_the_database_is_used_and_checked_when_the_url_asks_for_it() {
    postgres_only!();
    if !installed("/usr/bin/openssl", "openssl", "the PostgreSQL TLS test") {
        return;
    }
    let cluster = Cluster::start();
    let ca = cluster.require_tls();
    let ca = ca.to_str().unwrap();
    let plain = cluster.new_database().replace("postgres@", "postgres:not-this-password@");
    let dir = tempfile::tempdir().unwrap();
    // Exit 1 with one line `error: ...` naming the problem, never the
    // password.
    let refused = |url: &str, needle: &str| {
        let output = Cli::new(dir.path())
            .db_as_given()
            .args(&["--db", url, "createuser", "--username", "alice"])
            .env("DJANGO_SUPERUSER_PASSWORD", "alice-password")
            .status(1)
            .stderr_contains(needle)
            .output();
        assert!(!output.stderr.contains("not-this-password"), "{}", output.stderr);
    };
    // The controls: this server refuses a connection without TLS, and a
    // certificate from a CA that is not trusted.
    refused(&plain, "cannot reach");
    refused(&format!("{plain}?sslmode=require"), "certificate");
    refused(&format!("{plain}?sslmode=require&sslrootcert=/nonexistent/ca.pem"), "sslrootcert");
    refused(&format!("{plain}?sslmode=verify-ca&sslrootcert={ca}"), "verify-full");
    // The right CA, but a certificate for 127.0.0.1 reached as `localhost`.
    let by_name = plain.replace("127.0.0.1", "localhost");
    refused(
        &format!("{by_name}?sslmode=require&sslrootcert={ca}"),
        "certificate not valid for name \"localhost\"",
    );

    let url = format!("{plain}?sslmode=verify-full&sslrootcert={ca}");
    create_alice(dir.path(), &url);
    let server = ServeProcess::start_with_args(dir.path(), &["--db", &url], &[]);
    let cookie = cookie_from(&server, "alice");
    assert_eq!(whoami(&server, &cookie).status, 200);
    let database = plain.rsplit('/').next().unwrap();
    let encrypted = cluster.psql(
        database,
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
         WHERE ssl AND application_name = 'sessiond' AND datname = current_database()",
    );
    assert_ne!(encrypted.trim(), "0", "no connection of the server uses TLS");
}

#[test]
fn a_hung_database_gets_503_within_15_seconds_and_the_server_recovers() {
    postgres_only!();
    let (cluster, _dir, mut server) = alice_served_on_a_cluster_of_its_own();
    let cookie = cookie_from(&server, "alice");
    let bearer = bearer_from(&server, "alice");
    assert_eq!(whoami(&server, &cookie).status, 200, "the control");
    assert_eq!(server.get("/healthz", &[]).status, 200, "the control");

    /// Thaws the cluster however the test ends.
    struct Thaw<'a>(&'a Cluster);
    impl Drop for Thaw<'_> {
        fn drop(&mut self) {
            self.0.thaw();
        }
    }
    cluster.freeze();
    let thaw = Thaw(&cluster);
    // At once, so that the waits overlap: each may take a worker's whole
    // deadline.
    let answers: Vec<(&str, u16, Duration)> = std::thread::scope(|scope| {
        let asking = [("cookie", cookie.as_str()), ("token", bearer.as_str()), ("healthz", "")]
            .map(|(what, header)| {
                let server = &server;
                scope.spawn(move || {
                    let started = Instant::now();
                    let response = match what {
                        "healthz" => server.get("/healthz", &[]),
                        _ => whoami(server, header),
                    };
                    (what, response.status, started.elapsed())
                })
            });
        asking.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    for (what, status, took) in answers {
        assert_eq!(status, 503, "{what} with the database hung");
        assert!(took < Duration::from_secs(15), "{what}: 503 after {took:?}");
    }

    drop(thaw);
    until_status(Duration::from_secs(15), 200, || server.get("/healthz", &[]));
    assert_eq!(whoami(&server, &cookie).status, 200, "the old cookie still works");
    assert_eq!(whoami(&server, &bearer).status, 200, "the old token still works");
    let output = server.signal_and_wait("TERM");
    assert!(!output.contains("panicked"), "{output}");
    assert!(!output.contains("alice-password"), "{output}");
}

/// Runs `sessiond --db DB ARGS` with the database taken as given.
#[track_caller]
fn run_on(dir: &Path, db: &str, args: &[&str]) -> String {
    Cli::new(dir).db_as_given().args(&["--db", db]).args(args).run()
}

#[test]
fn an_installation_moves_from_sqlite_to_postgres_and_back_with_its_cookie_and_token() {
    postgres_only!();
    let work = tempfile::tempdir().unwrap();
    let sqlite = work.path().join("before.sqlite3");
    let sqlite = sqlite.to_str().unwrap();
    Cli::new(work.path())
        .db_as_given()
        .args(&["--db", sqlite, "createuser", "--username", "alice"])
        .env("DJANGO_SUPERUSER_PASSWORD", "alice-password")
        .run();
    run_on(work.path(), sqlite, &["schedule", "set", "15 3 * * *"]);
    let (cookie, token) = {
        let server = TestServer::start_at(sqlite, &[]);
        (server.login("alice", "alice-password"), jwt_login(&server, "alice", "alice-password"))
    };
    let signed_in = |server: &TestServer| {
        let by_cookie = server.get_with_cookie("/api/whoami", &cookie);
        assert_eq!(by_cookie.status, 200, "the cookie works: {}", by_cookie.body);
        assert_eq!(by_cookie.json()["username"], "alice");
        let bearer = format!("Bearer {token}");
        let by_token = server.get("/api/whoami", &[("Authorization", &bearer)]);
        assert_eq!(by_token.status, 200, "the token works: {}", by_token.body);
        server.login("alice", "alice-password");
    };

    let to_postgres = work.path().join("to-postgres.json");
    run_on(work.path(), sqlite, &["export", to_postgres.to_str().unwrap()]);
    let postgres = crate::pg_cluster::shared().new_database();
    let imported = run_on(work.path(), &postgres, &["import", to_postgres.to_str().unwrap()]);
    assert!(imported.contains("Imported 1 user(s)"), "{imported}");
    let shown = run_on(work.path(), &postgres, &["schedule", "show"]);
    assert!(shown.contains("15 3 * * *"), "the schedule came along: {shown}");
    signed_in(&TestServer::start_at(&postgres, &[]));

    let back = work.path().join("back.json");
    run_on(work.path(), &postgres, &["export", back.to_str().unwrap()]);
    let again = work.path().join("after.sqlite3");
    let again = again.to_str().unwrap();
    run_on(work.path(), again, &["import", back.to_str().unwrap()]);
    assert!(Path::new(again).exists(), "back in a SQLite file");
    signed_in(&TestServer::start_at(again, &[]));
    for key in ["DJANGO_SECRET_KEY", "DJANGO_JWT_SECRET_KEY"] {
        let before = run_on(work.path(), sqlite, &["config", "get", key]);
        assert_eq!(run_on(work.path(), &postgres, &["config", "get", key]), before, "{key}");
        assert_eq!(run_on(work.path(), again, &["config", "get", key]), before, "{key}");
    }
}

#[test]
fn two_instances_behind_nginx_share_a_sign_in_survive_one_stopping_and_share_the_sign_out() {
    postgres_only!();
    if !installed(NGINX, "nginx", "two_instances_behind_nginx_share_a_sign_in...") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let file = std::fs::read_to_string(root.join("deploy/nginx-two-instances.conf")).unwrap();
    assert!(readme.contains(&format!("```nginx\n{file}```")), "the README shows the file as it is");
    let (_dir, first, mut second) = two_instances();
    let port = free_port();
    let site = deploy_file(
        "nginx-two-instances.conf",
        &[
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
            ("auth.example.com", String::from("auth.example.test")),
            ("127.0.0.1:8001", first.addr.to_string()),
            ("127.0.0.1:8002", second.addr.to_string()),
        ],
    );
    let proxy = start_nginx_site(&site, port);
    let proxy_addr: std::net::SocketAddr = ([127, 0, 0, 1], proxy.port).into();
    let through = |method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]| {
        request_to_host(proxy_addr, "auth.example.test", method, path, headers, body)
    };
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let login = through("POST", "/login", &form, b"username=alice&password=alice-password");
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = format!("sessionid={}", login.cookie_value("sessionid").expect("a cookie"));
    // Round robin: the cookie works on whichever instance answers.
    for _ in 0..4 {
        let response = through("GET", "/api/whoami", &[("Cookie", &cookie)], b"");
        assert_eq!(response.status, 200, "{}", response.body);
    }
    for server in [&first, &second] {
        assert_eq!(whoami(server, &cookie).status, 200, "each instance knows the cookie");
    }

    second.signal_and_wait("KILL");
    for _ in 0..4 {
        let response = through("GET", "/api/whoami", &[("Cookie", &cookie)], b"");
        assert_eq!(response.status, 200, "the other instance answers: {}", response.body);
    }
    let logout = through("POST", "/logout", &[("Cookie", &cookie), form[0]], b"");
    assert_eq!(logout.status, 303, "{}", logout.body);
    assert_eq!(through("GET", "/api/whoami", &[("Cookie", &cookie)], b"").status, 401);
    assert_eq!(whoami(&first, &cookie).status, 401, "signed out everywhere");
}

#[test]
fn a_database_missing_from_a_running_server_is_one_line_without_the_password() {
    postgres_only!();
    let port = crate::pg_cluster::shared().port;
    let url = format!("postgres://postgres:s3cret-pw@127.0.0.1:{port}/no_such_database");
    let commands: &[&[&str]] = &[
        &["serve", "--bind", "127.0.0.1:0"],
        &["sessions", "list"],
        &["createuser", "--username", "carol"],
    ];
    for args in commands {
        let dir = tempfile::tempdir().unwrap();
        let output = Cli::new(dir.path())
            .db_as_given()
            .args(args)
            .env("SESSIOND_DB", &url)
            .env("DJANGO_SUPERUSER_PASSWORD", "a-password")
            .status(1)
            .stderr_contains(&format!("`no_such_database` on `127.0.0.1:{port}`"))
            .output();
        assert!(!output.stderr.contains("s3cret-pw"), "{args:?}: {}", output.stderr);
    }
}

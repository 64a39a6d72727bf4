//! The metrics listener and its exposition (SPEC 10), from the outside: the
//! real binary's `metrics on` line, the 404s of both listeners, each counter
//! moving by exactly what a known sequence of requests should move it, no
//! request data in any label, and Prometheus' own `promtool check metrics`
//! on the real exposition.

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use sessiond::users::Role;

use crate::support::{
    Cli, START, ServeProcess, TestServer, installed, jwt_login, post_graphql, prepare_database,
    request,
};

const METRICS_ON: &[(&str, &str)] = &[("SESSIOND_METRICS_BIND", "127.0.0.1:0")];

/// A server with the metrics listener on an ephemeral port.
#[track_caller]
fn start() -> TestServer {
    TestServer::start_with(METRICS_ON)
}

/// `GET /metrics` on the metrics listener; asserts the 200 and the type.
#[track_caller]
fn scrape(server: &TestServer) -> Exposition {
    scrape_at(server.metrics_addr.expect("the metrics listener is on"))
}

#[track_caller]
fn scrape_at(addr: SocketAddr) -> Exposition {
    let response = request(addr, "GET", "/metrics", &[], b"");
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8"),
        "the Prometheus text format"
    );
    Exposition(response.body)
}

/// The text of one scrape.
struct Exposition(String);

impl Exposition {
    /// The value of the sample `series` (name and labels exactly as
    /// written, e.g. `sessiond_logins_total{kind="web",outcome="success"}`);
    /// a series not exposed counts as 0.
    fn value(&self, series: &str) -> f64 {
        let prefix = format!("{series} ");
        self.0
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .map(|value| value.parse().unwrap_or_else(|_| panic!("not a number: {value}")))
            .unwrap_or(0.0)
    }

    /// Whether the sample is exposed at all.
    fn has(&self, series: &str) -> bool {
        let prefix = format!("{series} ");
        self.0.lines().any(|line| line.starts_with(&prefix))
    }
}

/// How much each series moved between two scrapes.
#[track_caller]
fn assert_moved(before: &Exposition, after: &Exposition, expected: &[(&str, f64)]) {
    for (series, delta) in expected {
        let moved = after.value(series) - before.value(series);
        assert_eq!(moved, *delta, "{series} moved by {moved}, expected {delta}\n{}", after.0);
    }
}

fn requests(route: &str, method: &str, status: u16) -> String {
    format!(
        "sessiond_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
    )
}

fn login_series(kind: &str, outcome: &str) -> String {
    format!("sessiond_logins_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}")
}

#[track_caller]
fn post_with_cookie(server: &TestServer, path: &str, cookie: &str) -> crate::support::Response {
    let header = format!("sessionid={cookie}");
    server.post_form(path, &[], &[("Cookie", &header)])
}

#[test]
fn serve_prints_metrics_on_with_the_real_port_and_answers_only_get_metrics() {
    let dir = tempfile::tempdir().unwrap();
    prepare_database(dir.path());
    let server = ServeProcess::start(dir.path(), METRICS_ON);
    let output = server.output_once_it_shows("metrics on http://");
    let line = output.lines().find(|line| line.starts_with("metrics on http://")).unwrap();
    let addr: SocketAddr = line["metrics on http://".len()..].parse().expect("an address");
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0, "the real port, not the asked-for 0");
    assert_ne!(addr, server.addr, "a listener of its own");

    let exposition = scrape_at(addr);
    assert!(exposition.has("sessiond_build_info{version=\"0.1.0\"}"), "{}", exposition.0);
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/login"),
        ("GET", "/metrics/x"),
        ("POST", "/metrics"),
        ("HEAD", "/metrics"),
    ] {
        let response = request(addr, method, path, &[], b"");
        assert_eq!(response.status, 404, "{method} {path} on the metrics listener");
    }
    let main = server.get("/metrics", &[]);
    assert_eq!(main.status, 404, "the main listener never serves /metrics");
    assert!(!main.body.contains("sessiond_"), "{}", main.body);
}

#[test]
fn without_the_setting_there_is_no_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    prepare_database(dir.path());
    let mut server = ServeProcess::start(dir.path(), &[]);
    assert_eq!(server.get("/metrics", &[]).status, 404);
    let output = server.signal_and_wait("TERM");
    assert!(!output.contains("metrics on"), "{output}");
}

#[test]
fn a_bad_metrics_bind_or_access_log_value_stops_serve() {
    let dir = tempfile::tempdir().unwrap();
    prepare_database(dir.path());
    let db = dir.path().join("sessiond.sqlite3");
    let db = db.to_str().unwrap();
    for (key, value) in [
        ("SESSIOND_METRICS_BIND", "localhost:9100"),
        ("SESSIOND_METRICS_BIND", "9100"),
        ("SESSIOND_ACCESS_LOG", "loud"),
    ] {
        // One line naming the key and the value, before anything listens.
        Cli::new(dir.path())
            .args(&["--db", db, "serve", "--bind", "127.0.0.1:0"])
            .env(key, value)
            .status(1)
            .stderr_contains(key)
            .stderr_contains(&format!("`{value}`"))
            .run();
    }
}

#[test]
fn a_metrics_port_in_use_stops_serve() {
    let dir = tempfile::tempdir().unwrap();
    prepare_database(dir.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let db = dir.path().join("sessiond.sqlite3");
    let output = Cli::new(dir.path())
        .args(&["--db", db.to_str().unwrap(), "serve", "--bind", "127.0.0.1:0"])
        .env("SESSIOND_METRICS_BIND", &taken_addr)
        .status(1)
        .stderr_any()
        .stderr_contains(&format!("failed to listen on `{taken_addr}`"))
        .output();
    assert!(!output.stderr.contains("metrics on"), "{}", output.stderr);
}

#[test]
fn every_counter_moves_by_exactly_what_a_known_sequence_does() {
    let server = start();
    server.create_user("alice", "alice-password", Role::User);
    server.create_user("bob", "bob-password", Role::User);
    server.create_user("carol", "carol-password", Role::User);
    let before = scrape(&server);

    // Web logins: 2 successful, 5 failed for carol, then carol is throttled.
    let alice = server.login("alice", "alice-password");
    server.login("root", "root-password");
    for _ in 0..5 {
        let failed =
            server.post_form("/login", &[("username", "carol"), ("password", "wrong")], &[]);
        assert_eq!(failed.status, 401);
    }
    let throttled =
        server.post_form("/login", &[("username", "carol"), ("password", "carol-password")], &[]);
    assert_eq!(throttled.status, 429);
    // GraphQL: one login, one failure.
    let token = jwt_login(&server, "bob", "bob-password");
    let failed = post_graphql(
        &server,
        "mutation { login(username: \"bob\", password: \"wrong\") { token } }",
        serde_json::json!({}),
        None,
    );
    assert_eq!(failed.status, 200);
    assert!(failed.body.contains("InvalidCredentials"), "{}", failed.body);
    // whoami: 3 by cookie, 2 by token, 1 anonymous.
    for _ in 0..3 {
        assert_eq!(server.get_with_cookie("/api/whoami", &alice).status, 200);
    }
    let bearer = format!("Bearer {token}");
    for _ in 0..2 {
        assert_eq!(server.get("/api/whoami", &[("Authorization", &bearer)]).status, 200);
    }
    assert_eq!(server.get("/api/whoami", &[]).status, 401);
    // A cleanup from the admin page once alice's and root's sessions
    // (7200 s idle) and bob's token (900 s) have expired; root signs in
    // again for it (one more web login).
    server.advance(7201);
    let root = server.login("root", "root-password");
    let cleanup = post_with_cookie(&server, "/admin/cleanup", &root);
    assert_eq!(cleanup.status, 303, "{}", cleanup.body);
    // Two unknown paths.
    assert_eq!(server.get("/nowhere", &[]).status, 404);
    assert_eq!(server.get("/elsewhere", &[]).status, 404);

    let after = scrape(&server);
    assert_moved(
        &before,
        &after,
        &[
            (&requests("/login", "POST", 303), 3.0),
            (&requests("/login", "POST", 401), 5.0),
            (&requests("/login", "POST", 429), 1.0),
            (&requests("/graphql", "POST", 200), 2.0),
            (&requests("/api/whoami", "GET", 200), 5.0),
            (&requests("/api/whoami", "GET", 401), 1.0),
            (&requests("/admin/cleanup", "POST", 303), 1.0),
            (&requests("unmatched", "GET", 404), 2.0),
            (&login_series("web", "success"), 3.0),
            (&login_series("web", "failure"), 5.0),
            (&login_series("web", "throttled"), 1.0),
            (&login_series("jwt", "success"), 1.0),
            (&login_series("jwt", "failure"), 1.0),
            (&login_series("jwt", "throttled"), 0.0),
            ("sessiond_cleanup_runs_total{trigger=\"admin\",outcome=\"ok\"}", 1.0),
            ("sessiond_cleanup_runs_total{trigger=\"admin\",outcome=\"failed\"}", 0.0),
            ("sessiond_cleanup_runs_total{trigger=\"timer\",outcome=\"ok\"}", 0.0),
            ("sessiond_cleanup_deleted_rows_total{kind=\"web\"}", 2.0),
            ("sessiond_cleanup_deleted_rows_total{kind=\"jwt\"}", 1.0),
            ("sessiond_http_request_duration_seconds_count{route=\"/api/whoami\"}", 6.0),
            (
                "sessiond_http_request_duration_seconds_bucket{route=\"/api/whoami\",le=\"+Inf\"}",
                6.0,
            ),
        ],
    );
    assert_eq!(
        after.value("sessiond_cleanup_last_success_timestamp_seconds"),
        (START + 7201) as f64
    );
    // The admin action forgot the cached counts: the gauges show the state
    // after the cleanup, root's new session only.
    for (series, expected) in [
        ("sessiond_sessions{kind=\"web\",status=\"active\"}", 1.0),
        ("sessiond_sessions{kind=\"web\",status=\"expired\"}", 0.0),
        ("sessiond_sessions{kind=\"jwt\",status=\"active\"}", 0.0),
        ("sessiond_sessions{kind=\"jwt\",status=\"revoked\"}", 0.0),
        ("sessiond_sessions{kind=\"jwt\",status=\"expired\"}", 0.0),
    ] {
        assert!(after.has(series), "{series} is exposed");
        assert_eq!(after.value(series), expected, "{series}");
    }
}

/// The expired web sessions are counted user by user (there is no index
/// on the expiry alone): every user's expired rows count, and only those.
#[test]
fn expired_web_sessions_of_every_user_are_counted() {
    let server = start();
    server.create_user("alice", "alice-password", Role::User);
    server.create_user("bob", "bob-password", Role::User);
    let alice = server.login("alice", "alice-password");
    let bob = server.login("bob", "bob-password");
    server.advance(7201);
    let root = server.login("root", "root-password");
    server.advance(5);
    let exposition = scrape(&server);
    assert_eq!(exposition.value("sessiond_sessions{kind=\"web\",status=\"expired\"}"), 2.0);
    assert_eq!(exposition.value("sessiond_sessions{kind=\"web\",status=\"active\"}"), 1.0);
    drop((alice, bob, root));
}

#[test]
fn session_gauges_are_the_cached_admin_counts_at_most_5_s_old() {
    let server = start();
    server.create_user("alice", "alice-password", Role::User);
    let active = "sessiond_sessions{kind=\"web\",status=\"active\"}";
    let expired = "sessiond_sessions{kind=\"web\",status=\"expired\"}";
    assert_eq!(scrape(&server).value(active), 0.0);
    let cookie = server.login("alice", "alice-password");
    assert_eq!(scrape(&server).value(active), 0.0, "the cached count, taken less than 5 s ago");
    server.advance(5);
    assert_eq!(scrape(&server).value(active), 1.0, "counted again once 5 s old");
    let jwt = jwt_login(&server, "alice", "alice-password");
    server.advance(7200);
    let exposition = scrape(&server);
    assert_eq!((exposition.value(active), exposition.value(expired)), (0.0, 1.0));
    assert_eq!(exposition.value("sessiond_sessions{kind=\"jwt\",status=\"expired\"}"), 1.0);
    drop((cookie, jwt));
}

#[test]
fn the_exposition_holds_no_path_username_cookie_or_token() {
    let server = start();
    let username = "zebulon-unique-username";
    server.create_user(username, "zebulon-password", Role::User);
    let cookie = server.login(username, "zebulon-password");
    let token = jwt_login(&server, username, "zebulon-password");
    let secret_paths = [
        "/api/whoami/s3cr3t-path-part",
        "/admin/sessions/web/0123456789abcdef-secret",
        "/s3cr3t-token-in-the-path",
    ];
    for path in secret_paths {
        let header = format!("sessionid={cookie}");
        assert_eq!(server.get(path, &[("Cookie", &header)]).status, 404);
    }
    let bearer = format!("Bearer {token}");
    assert_eq!(server.get("/api/whoami?s3cr3t-query=1", &[("Authorization", &bearer)]).status, 200);

    let exposition = scrape(&server);
    let text = &exposition.0;
    let mut secrets = vec![username.to_owned(), cookie.clone(), token.clone(), "s3cr3t".into()];
    secrets.extend(token.split('.').map(str::to_owned));
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "`{secret}` is in the exposition:\n{text}");
    }
    // Every path above shares one route value.
    assert_eq!(exposition.value(&requests("unmatched", "GET", 404)), 3.0);
    assert_eq!(exposition.value(&requests("/api/whoami", "GET", 200)), 1.0);
    // Every route label is one of the fixed patterns.
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        if let Some(start) = line.find("route=\"") {
            let rest = &line[start + 7..];
            let route = &rest[..rest.find('"').unwrap()];
            assert!(sessiond::metrics::ROUTES.contains(&route), "unknown route label in {line}");
        }
    }
}

#[test]
fn the_duration_histogram_has_cumulative_buckets_a_sum_and_a_count() {
    let server = start();
    for _ in 0..4 {
        assert_eq!(server.get("/healthz", &[]).status, 200);
    }
    let exposition = scrape(&server);
    let route = "route=\"/healthz\"";
    let count =
        exposition.value(&format!("sessiond_http_request_duration_seconds_count{{{route}}}"));
    assert_eq!(count, 4.0);
    let sum = exposition.value(&format!("sessiond_http_request_duration_seconds_sum{{{route}}}"));
    assert!(sum > 0.0 && sum < 40.0, "{sum}");
    let mut previous = 0.0;
    for bound in
        sessiond::metrics::DURATION_BUCKETS.iter().map(f64::to_string).chain(["+Inf".into()])
    {
        let series =
            format!("sessiond_http_request_duration_seconds_bucket{{{route},le=\"{bound}\"}}");
        assert!(exposition.has(&series), "{series}\n{}", exposition.0);
        let value = exposition.value(&series);
        assert!(value >= previous, "buckets are cumulative: {series}");
        previous = value;
    }
    assert_eq!(previous, 4.0, "the +Inf bucket holds every request");
    assert!(exposition.0.contains("# TYPE sessiond_http_request_duration_seconds histogram"));
}

#[test]
fn fixed_series_build_info_and_process_metrics_are_exposed() {
    let server = start();
    let exposition = scrape(&server);
    let text = &exposition.0;
    for decision in ["allow", "deny", "unauthenticated", "bypass"] {
        let series = format!("sessiond_forward_auth_decisions_total{{decision=\"{decision}\"}}");
        assert!(exposition.has(&series), "{series}\n{text}");
    }
    for trigger in ["timer", "admin"] {
        for outcome in ["ok", "failed"] {
            let series = format!(
                "sessiond_cleanup_runs_total{{trigger=\"{trigger}\",outcome=\"{outcome}\"}}"
            );
            assert!(exposition.has(&series), "{series}");
        }
    }
    let version = format!("sessiond_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"));
    assert_eq!(exposition.value(&version), 1.0);
    assert!(!exposition.has("sessiond_cleanup_last_success_timestamp_seconds"), "no run yet");
    assert!(exposition.value("process_resident_memory_bytes") > 1_000_000.0);
    assert!(exposition.value("process_open_fds") >= 3.0);
    assert!(exposition.has("process_cpu_seconds_total"));
    let started = exposition.value("process_start_time_seconds");
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(started > now - 86_400.0 && started <= now + 1.0, "{started} vs {now}");
    for line in text.lines().filter(|line| line.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(name.starts_with("sessiond_") || name.starts_with("process_"), "{line}");
        if line.ends_with(" counter") {
            assert!(name.ends_with("_total"), "{line}");
        }
    }
}

#[test]
fn timer_runs_are_counted_and_the_last_success_comes_from_the_records() {
    let server = start();
    let conn = server.conn();
    let root = sessiond::users::find_by_username(&conn, "root").unwrap().unwrap();
    let short = sessiond::web_sessions::Lifetime { idle: 60, absolute: 0 };
    sessiond::web_sessions::create(&conn, &root, short, START - 1000, "", "").unwrap();
    let due = sessiond::schedule::next_run(
        &sessiond::schedule::parse(sessiond::schedule::DEFAULT_CRON).unwrap(),
        START,
    )
    .unwrap();
    server.advance(due - START);
    // The timer thread runs within its poll interval; wait (by the real
    // clock) until it has dealt with the run: recorded and counted it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.app().timer_handled.load(std::sync::atomic::Ordering::SeqCst) != due {
        assert!(std::time::Instant::now() < deadline, "the timer did not run");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let exposition = scrape(&server);
    assert_eq!(
        exposition.value("sessiond_cleanup_runs_total{trigger=\"timer\",outcome=\"ok\"}"),
        1.0
    );
    assert_eq!(exposition.value("sessiond_cleanup_deleted_rows_total{kind=\"web\"}"), 1.0);
    assert_eq!(exposition.value("sessiond_cleanup_last_success_timestamp_seconds"), due as f64);

    // A run by the command is another process's: not counted here, but the
    // last success is read from the records, whoever ran it.
    let db = server.db_path.to_str().unwrap().to_owned();
    Cli::new(server.dir.path()).args(&["--db", &db, "clear_expired_sessions"]).run();
    let command_started = sessiond::cleanup::recent_runs(&conn, 1).unwrap()[0].started;
    let exposition = scrape(&server);
    assert_eq!(
        exposition.value("sessiond_cleanup_last_success_timestamp_seconds"),
        command_started as f64
    );
    let runs: f64 = ["timer", "admin"]
        .iter()
        .flat_map(|trigger| ["ok", "failed"].map(move |outcome| (trigger, outcome)))
        .map(|(trigger, outcome)| {
            exposition.value(&format!(
                "sessiond_cleanup_runs_total{{trigger=\"{trigger}\",outcome=\"{outcome}\"}}"
            ))
        })
        .sum();
    assert_eq!(runs, 1.0, "the command's run is not this server's");
}

#[test]
fn two_servers_in_one_process_count_apart() {
    let one = start();
    let two = start();
    for _ in 0..3 {
        one.get("/healthz", &[]);
    }
    assert_eq!(scrape(&one).value(&requests("/healthz", "GET", 200)), 3.0);
    assert_eq!(scrape(&two).value(&requests("/healthz", "GET", 200)), 0.0);
}

/// `promtool check metrics` from Debian's `prometheus` package, which
/// `.ci/run` installs; with `CI=true` a missing promtool fails the test.
#[test]
fn promtool_accepts_the_real_exposition() {
    let promtool = "/usr/bin/promtool";
    if !installed(promtool, "prometheus", "promtool_accepts_the_real_exposition") {
        return;
    }
    let server = start();
    server.create_user("alice", "alice-password", Role::User);
    let cookie = server.login("alice", "alice-password");
    server.get_with_cookie("/api/whoami", &cookie);
    server.get("/nowhere", &[]);
    server.post_form("/login", &[("username", "alice"), ("password", "wrong")], &[]);
    jwt_login(&server, "alice", "alice-password");
    let exposition = scrape(&server);

    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(exposition.0.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let problems = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && problems.trim().is_empty(),
        "promtool: {problems}\n{}",
        exposition.0
    );
}

#[test]
fn a_failed_admin_cleanup_is_counted_as_failed_and_deletes_nothing_counted() {
    let server = start();
    let conn = server.conn();
    let root = sessiond::users::find_by_username(&conn, "root").unwrap().unwrap();
    let short = sessiond::web_sessions::Lifetime { idle: 60, absolute: 0 };
    sessiond::web_sessions::create(&conn, &root, short, START - 1000, "", "").unwrap();
    crate::cleanup::break_web_session_deletes(&conn);
    let cookie = server.login("root", "root-password");
    let response = post_with_cookie(&server, "/admin/cleanup", &cookie);
    assert_eq!(response.status, 500, "{}", response.body);

    let exposition = scrape(&server);
    assert_eq!(
        exposition.value("sessiond_cleanup_runs_total{trigger=\"admin\",outcome=\"failed\"}"),
        1.0
    );
    assert_eq!(
        exposition.value("sessiond_cleanup_runs_total{trigger=\"admin\",outcome=\"ok\"}"),
        0.0
    );
    assert_eq!(exposition.value("sessiond_cleanup_deleted_rows_total{kind=\"web\"}"), 0.0);
    assert!(!exposition.has("sessiond_cleanup_last_success_timestamp_seconds"));
    assert_eq!(exposition.value(&requests("/admin/cleanup", "POST", 500)), 1.0);
}

#[test]
fn the_listener_counts_sessions_again_between_scrapes() {
    let server = start();
    server.create_user("alice", "alice-password", Role::User);
    let active = "sessiond_sessions{kind=\"web\",status=\"active\"}";
    assert_eq!(scrape(&server).value(active), 0.0);
    server.login("alice", "alice-password");
    // 4 s on, the counts of the first scrape are still within the cache's
    // 5 s: only the listener's own recount (every 4 s while scraped) can
    // show the new session. Wait for its thread, by the real clock.
    server.advance(4);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let counts = server.app().session_counts.get(&server.conn(), server.clock_now()).unwrap();
        if counts.web.active == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the listener did not count again");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(scrape(&server).value(active), 1.0);
}

#[test]
fn forward_auth_decisions_are_counted() {
    let server = TestServer::start_with(&[
        ("SESSIOND_METRICS_BIND", "127.0.0.1:0"),
        ("SESSIOND_ACCESS_DEFAULT", "user"),
    ]);
    server.create_user("alice", "alice-password", Role::User);
    let cookie = format!("sessionid={}", server.login("alice", "alice-password"));
    let host = [("X-Forwarded-Host", "wiki.example.com")];
    assert_eq!(server.get("/auth/forward", &host).status, 401);
    let signed_in = [("X-Forwarded-Host", "wiki.example.com"), ("Cookie", cookie.as_str())];
    assert_eq!(server.get("/auth/forward", &signed_in).status, 200);
    assert_eq!(server.get("/auth/forward", &signed_in).status, 200);

    let exposition = scrape(&server);
    let decision = |name: &str| {
        exposition.value(&format!("sessiond_forward_auth_decisions_total{{decision=\"{name}\"}}"))
    };
    assert_eq!(
        (decision("allow"), decision("unauthenticated"), decision("deny"), decision("bypass")),
        (2.0, 1.0, 0.0, 0.0)
    );
    assert_eq!(exposition.value(&requests("/auth/forward", "GET", 200)), 2.0);
}

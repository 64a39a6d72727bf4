//! The access log (SPEC 10): one logfmt line per request with exactly the
//! fields `time method path status duration_ms client user`, the user only
//! from the request's own valid cookie or token, and nothing secret: a full
//! flow against the real binary leaves no password, cookie, token, `next`
//! or other query string in its stderr. `SESSIOND_ACCESS_LOG=false` writes
//! no line. The workers buffer their lines, yet a line reaches stderr while
//! the server runs (for `tail -f`), and none is lost at shutdown.

use sessiond::users::Role;

use crate::support::{ServeProcess, TestServer, jwt_login, prepare_database};

const LOGIN: &str =
    "mutation ($u: String!, $p: String!) { login(username: $u, password: $p) { token } }";

/// The fields of one line, in order, split on the spaces between fields
/// (the values here have none).
fn fields(line: &str) -> Vec<(String, String)> {
    line.split(' ')
        .map(|field| {
            let (key, value) =
                field.split_once('=').unwrap_or_else(|| panic!("not logfmt: {line}"));
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

fn field(line: &str, name: &str) -> String {
    fields(line).into_iter().find(|(key, _)| key == name).map(|(_, value)| value).unwrap()
}

#[test]
fn each_request_writes_one_line_with_the_fields_in_order() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let cookie = server.login("alice", "alice-password");
    assert_eq!(server.get_with_cookie("/api/whoami", &cookie).status, 200);
    assert_eq!(server.get("/nowhere?x=1", &[]).status, 404);

    let lines = server.access_log_lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for line in &lines {
        let names: Vec<String> = fields(line).into_iter().map(|(key, _)| key).collect();
        assert_eq!(names, ["time", "method", "path", "status", "duration_ms", "client", "user"]);
        assert_eq!(field(line, "time"), "2026-11-27T12:00:00Z", "the server's clock, RFC 3339");
        assert_eq!(field(line, "client"), "127.0.0.1");
        let duration: f64 = field(line, "duration_ms").parse().expect("milliseconds");
        assert!((0.0..60_000.0).contains(&duration), "{line}");
    }
    assert_eq!(
        (field(&lines[0], "method"), field(&lines[0], "path"), field(&lines[0], "status")),
        ("POST".into(), "/login".into(), "303".into())
    );
    assert_eq!(field(&lines[0], "user"), "", "the name typed into the form is not logged");
    assert_eq!(field(&lines[1], "path"), "/api/whoami");
    assert_eq!(field(&lines[1], "user"), "alice", "the cookie's user");
    assert_eq!(
        (field(&lines[2], "path"), field(&lines[2], "status")),
        ("/nowhere".into(), "404".into())
    );
    assert_eq!(field(&lines[2], "user"), "");
}

#[test]
fn the_user_is_the_tokens_and_never_a_refused_credentials() {
    let server = TestServer::start();
    server.create_user("bob", "bob-password", Role::User);
    let token = jwt_login(&server, "bob", "bob-password");
    let bearer = format!("Bearer {token}");
    assert_eq!(server.get("/api/whoami", &[("Authorization", &bearer)]).status, 200);
    let revoke = crate::support::post_graphql(
        &server,
        "mutation { logout }",
        serde_json::json!({}),
        Some(&token),
    );
    assert_eq!(revoke.status, 200);
    assert_eq!(server.get("/api/whoami", &[("Authorization", &bearer)]).status, 401);
    let stale = format!("sessionid={}", "f".repeat(64));
    assert_eq!(server.get("/api/whoami", &[("Cookie", &stale)]).status, 401);

    let lines = server.access_log_lines();
    let users: Vec<String> = lines.iter().map(|line| field(line, "user")).collect();
    // The GraphQL login (no token yet), whoami by token, logout by token,
    // the revoked token, the stale cookie.
    assert_eq!(users, ["", "bob", "bob", "", ""], "{lines:#?}");
}

#[test]
fn the_client_is_the_forwarded_address_only_behind_a_trusted_proxy() {
    for (trust, expected) in [("false", "127.0.0.1"), ("true", "203.0.113.7")] {
        let server = TestServer::start_with(&[("SESSIOND_TRUST_PROXY_HEADERS", trust)]);
        server.get("/healthz", &[("X-Forwarded-For", "198.51.100.1, 203.0.113.7")]);
        server.get("/healthz", &[("X-Forwarded-For", "not-an-address s3cr3t")]);
        let lines = server.access_log_lines();
        assert_eq!(field(&lines[0], "client"), expected, "trust {trust}");
        assert_eq!(field(&lines[1], "client"), "127.0.0.1", "a malformed header is ignored");
        assert!(!lines.concat().contains("s3cr3t"));
    }
}

#[test]
fn refusals_before_routing_are_logged_too() {
    let server = TestServer::start();
    let big = vec![b'a'; 2 * 1024 * 1024];
    let response = crate::support::request(server.addr, "POST", "/login", &[], &big);
    assert_eq!(response.status, 413);
    let lines = server.access_log_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(
        (field(&lines[0], "path"), field(&lines[0], "status")),
        ("/login".into(), "413".into())
    );
}

#[test]
fn access_log_false_writes_no_line() {
    let server = TestServer::start_with(&[("SESSIOND_ACCESS_LOG", "false")]);
    server.get("/healthz", &[]);
    server.post_form("/login", &[("username", "root"), ("password", "root-password")], &[]);
    assert_eq!(server.access_log_lines(), Vec::<String>::new());

    let dir = tempfile::tempdir().unwrap();
    prepare_database(dir.path());
    let mut process = ServeProcess::start(dir.path(), &[("SESSIOND_ACCESS_LOG", "off")]);
    assert_eq!(process.get("/healthz", &[]).status, 200);
    assert_eq!(process.get("/nowhere", &[]).status, 404);
    let output = process.signal_and_wait("TERM");
    assert!(!output.contains("method="), "{output}");
    assert!(!output.contains("/nowhere"), "{output}");
}

#[test]
fn a_line_reaches_stderr_promptly_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    prepare_database(dir.path());
    let mut process = ServeProcess::start(dir.path(), &[]);
    let healthz_lines =
        |output: &str| output.lines().filter(|line| line.contains(" path=/healthz ")).count();
    for round in 1..=3 {
        assert_eq!(process.get("/healthz", &[]).status, 200);
        let answered = std::time::Instant::now();
        // A worker writes its buffer within 100 ms of going idle; a loaded
        // machine is allowed far more, but not "only at shutdown".
        loop {
            let output = process.output();
            if healthz_lines(&output) == round {
                break;
            }
            assert!(
                answered.elapsed() < std::time::Duration::from_secs(2),
                "request {round}'s line is not on stderr 2 s after its answer:\n{output}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    assert_eq!(healthz_lines(&process.signal_and_wait("TERM")), 3);
}

#[test]
fn a_full_flow_logs_every_request_on_stderr_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    prepare_database(dir.path());
    let mut server = ServeProcess::start(dir.path(), &[]);
    let mut secrets: Vec<String> = Vec::new();
    let mut requests = 0;

    // The sign-in page with a `next` worth leaking, then the form with it.
    let next = "/account/sessions?next-secret=n3xt-s3cr3t";
    let query: String =
        form_urlencoded::Serializer::new(String::new()).append_pair("next", next).finish();
    assert_eq!(server.get(&format!("/login?{query}"), &[]).status, 200);
    let login = server.post_form(
        "/login",
        &[("username", "alice"), ("password", "alice-password"), ("next", next)],
        &[],
    );
    assert_eq!(login.status, 303);
    requests += 2;
    let cookie = login.cookie_value("sessionid").expect("a session cookie");
    let cookie_header = format!("sessionid={cookie}");
    assert_eq!(server.get("/?q=qu3ry-s3cr3t", &[("Cookie", &cookie_header)]).status, 200);
    assert_eq!(server.get("/account/sessions", &[("Cookie", &cookie_header)]).status, 200);
    requests += 2;
    // A failed login and an API login, a call and its logout.
    let wrong = "wr0ng-passw0rd-s3cr3t";
    let failed = server.post_form("/login", &[("username", "alice"), ("password", wrong)], &[]);
    assert_eq!(failed.status, 401);
    let api =
        server.post_graphql(LOGIN, serde_json::json!({ "u": "bob", "p": "bob-password" }), None);
    let token = api.json()["data"]["login"]["token"].as_str().expect("a token").to_owned();
    let bearer = format!("Bearer {token}");
    assert_eq!(
        server.get("/api/whoami?token=t0ken-s3cr3t", &[("Authorization", &bearer)]).status,
        200
    );
    assert_eq!(
        server.post_graphql("mutation { logout }", serde_json::json!({}), Some(&token)).status,
        200
    );
    assert_eq!(server.post_form("/logout", &[], &[("Cookie", &cookie_header)]).status, 303);
    requests += 5;

    let output = server.signal_and_wait("TERM");
    let lines: Vec<&str> = output.lines().filter(|line| line.starts_with("time=")).collect();
    assert_eq!(lines.len(), requests, "one line per request:\n{output}");
    assert!(
        lines.iter().any(|line| line.contains("path=/api/whoami ") && line.ends_with(" user=bob"))
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("path=/account/sessions ") && line.ends_with(" user=alice"))
    );
    secrets.extend([
        cookie,
        token.clone(),
        String::from("alice-password"),
        String::from("bob-password"),
        wrong.to_owned(),
        String::from("s3cr3t"),
        String::from("next-secret"),
    ]);
    secrets.extend(token.split('.').map(str::to_owned));
    for secret in &secrets {
        for line in &lines {
            assert!(!line.contains(secret.as_str()), "`{secret}` is in the access log: {line}");
        }
        assert!(!output.contains(secret.as_str()), "`{secret}` is in stderr:\n{output}");
    }
    for line in &lines {
        assert!(!line.contains('?'), "a query string in the access log: {line}");
    }
}

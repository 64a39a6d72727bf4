//! Limits on what a client can send and how slowly (SPEC 8): oversized
//! headers and bodies, idle and trickling clients, too many connections; the
//! browser protections on pages; a database that becomes read-only; and
//! logins that cost the same whether the user exists or not.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::{Response, TestServer, parse_response, send_raw};

/// Sends raw bytes and returns the parsed response, or `None` when the
/// server closed the connection without one.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Option<Response> {
    parse_response(&send_raw(addr, bytes))
}

/// A request head with `count` extra headers of `value_len` bytes each.
fn head_with_headers(count: usize, value_len: usize) -> Vec<u8> {
    let mut head = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for number in 0..count {
        head.push_str(&format!("X-Filler-{number}: {}\r\n", "a".repeat(value_len)));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

#[track_caller]
fn assert_refused_as(response: Option<Response>, status: u16) {
    if let Some(response) = response {
        assert_eq!(response.status, status, "{}", response.body);
    }
}

#[test]
fn headers_within_the_limits_are_served() {
    let server = TestServer::start();
    // 2 + 97 header lines, about 15 KiB in all.
    let response = exchange(server.addr, &head_with_headers(97, 140)).expect("a response");
    assert_eq!(response.status, 200, "{}", response.body);
}

#[test]
fn headers_over_16_kib_get_431_or_a_closed_connection() {
    let server = TestServer::start();
    let response = exchange(server.addr, &head_with_headers(20, 900));
    assert!(response.is_some(), "expected a 431 before the connection closed");
    assert_refused_as(response, 431);
    // One single header over the limit is refused as well.
    let response = exchange(server.addr, &head_with_headers(1, 17 * 1024));
    assert_refused_as(response, 431);
}

#[test]
fn more_than_100_header_lines_get_431() {
    let server = TestServer::start();
    let response = exchange(server.addr, &head_with_headers(100, 1));
    assert_refused_as(response, 431);
    assert!(response_status(server.addr, &head_with_headers(98, 1)) == Some(200));
}

fn response_status(addr: SocketAddr, bytes: &[u8]) -> Option<u16> {
    exchange(addr, bytes).map(|response| response.status)
}

#[test]
fn overlong_request_line_gets_414() {
    let server = TestServer::start();
    let path = format!("/login?next=/{}", "a".repeat(9000));
    let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_refused_as(exchange(server.addr, raw.as_bytes()), 414);
}

#[test]
fn body_over_1_mib_gets_413() {
    let server = TestServer::start();
    let body = vec![b'a'; 1024 * 1024 + 1];
    let mut raw = format!(
        "POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    assert_eq!(response_status(server.addr, &raw), Some(413));
}

#[test]
fn body_of_exactly_1_mib_is_read() {
    let server = TestServer::start();
    let mut body = b"username=nobody&password=x&pad=".to_vec();
    body.resize(1024 * 1024, b'a');
    let mut raw = format!(
        "POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    assert_eq!(response_status(server.addr, &raw), Some(401));
}

/// A chunked body of `total` bytes in chunks of 64 KiB.
fn chunked_post(path: &str, total: usize) -> Vec<u8> {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let mut left = total;
    while left > 0 {
        let size = left.min(64 * 1024);
        raw.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        raw.extend(std::iter::repeat_n(b' ', size));
        raw.extend_from_slice(b"\r\n");
        left -= size;
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    raw
}

#[test]
fn chunked_body_over_1_mib_gets_413() {
    let server = TestServer::start();
    assert_eq!(response_status(server.addr, &chunked_post("/graphql", 1024 * 1024 + 1)), Some(413));
    // The same body under the limit is read (and is not JSON).
    assert_eq!(response_status(server.addr, &chunked_post("/graphql", 1024)), Some(400));
}

#[test]
fn malformed_chunked_body_gets_400() {
    let server = TestServer::start();
    let raw = b"POST /graphql HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n";
    assert_refused_as(exchange(server.addr, raw), 400);
}

#[test]
fn huge_content_length_is_refused_and_the_server_lives_on() {
    let server = TestServer::start();
    // Upstream tiny_http allocated a buffer of the unread length when it
    // dropped such a request: a panic (or an abort) per request.
    for _ in 0..6 {
        let raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 99999999999999999\r\n\r\n";
        assert_eq!(response_status(server.addr, raw), Some(413));
    }
    assert_eq!(server.get("/healthz", &[]).status, 200);
}

#[test]
fn non_ascii_header_gets_400() {
    let server = TestServer::start();
    let raw = b"GET /api/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: sessionid=\xff\xfe\x80\r\n\r\n";
    assert_refused_as(exchange(server.addr, raw), 400);
    assert_eq!(server.get("/healthz", &[]).status, 200);
}

/// Opens a connection with a read timeout for the test's own safety.
fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

/// Reads until the server closes the connection; returns what came.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    bytes
}

#[test]
fn idle_connection_is_closed_after_the_request_timeout() {
    let server = TestServer::start_with(&[("SESSIOND_REQUEST_TIMEOUT", "1")]);
    let mut stream = connect(server.addr);
    let started = Instant::now();
    read_until_closed(&mut stream);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "idle connection kept for {waited:?}");
}

#[test]
fn trickled_headers_are_cut_off_at_the_deadline() {
    let server = TestServer::start_with(&[("SESSIOND_REQUEST_TIMEOUT", "1")]);
    let mut stream = connect(server.addr);
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    // One byte every 100 ms: never silent for a whole read timeout, so only
    // the deadline on the whole head can stop it.
    let mut cut_off = false;
    while started.elapsed() < Duration::from_secs(8) {
        if stream.write_all(b"X").is_err() {
            cut_off = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !cut_off {
        stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut byte = [0u8; 64];
        cut_off = stream.read(&mut byte).is_ok();
    }
    assert!(cut_off, "a client trickling its headers kept its connection for 8 s");
    assert!(started.elapsed() < Duration::from_secs(6), "cut off late: {:?}", started.elapsed());
}

#[test]
fn stalled_bodies_do_not_hold_the_workers() {
    let server = TestServer::start_with(&[("SESSIOND_REQUEST_TIMEOUT", "5")]);
    // More stalled uploads than the test server has workers (4).
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut stream = connect(server.addr);
        stream
            .write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\nusername=")
            .unwrap();
        stalled.push(stream);
    }
    let started = Instant::now();
    assert_eq!(server.get("/healthz", &[]).status, 200);
    assert!(started.elapsed() < Duration::from_secs(4), "waited {:?}", started.elapsed());
    // The stalled uploads end with 408 once their time is up.
    let answer = read_until_closed(&mut stalled[0]);
    let status = parse_response(&answer).map(|response| response.status);
    assert!(status.is_none() || status == Some(408), "{status:?}");
}

#[test]
fn a_client_over_its_connection_limit_gets_503_until_some_close() {
    // (The global cap and who gives way at it: `floods::*`.)
    let server = TestServer::start_with(&[
        ("SESSIOND_REQUEST_TIMEOUT", "20"),
        ("SESSIOND_MAX_CONNECTIONS_PER_CLIENT", "8"),
    ]);
    // Eight requests in progress (a head begun), which never give way.
    let open: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut stream = connect(server.addr);
            stream.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
            stream
        })
        .collect();
    let raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(response_status(server.addr, raw), Some(503));
    drop(open);
    let started = Instant::now();
    let mut status = None;
    while started.elapsed() < Duration::from_secs(10) && status != Some(200) {
        status = response_status(server.addr, raw);
    }
    assert_eq!(status, Some(200), "the server did not recover after the connections closed");
}

#[test]
fn pages_carry_the_browser_protections() {
    let server = TestServer::start();
    let cookie = server.login("root", "root-password");
    for response in [server.get("/login", &[]), server.get_with_cookie("/", &cookie)] {
        assert_eq!(response.status, 200);
        let csp = response.header("content-security-policy").expect("a CSP");
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        assert!(directives.contains(&"default-src 'self'"), "{csp}");
        assert!(directives.contains(&"frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains('*'), "{csp}");
        assert!(!csp.contains("http:") && !csp.contains("https:"), "{csp}");
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(response.header("referrer-policy"), Some("same-origin"));
    }
}

#[test]
fn api_and_error_responses_carry_nosniff_and_referrer_policy() {
    let server = TestServer::start();
    for response in [server.get("/api/whoami", &[]), server.get("/nowhere", &[])] {
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(response.header("referrer-policy"), Some("same-origin"));
    }
}

/// Files made immutable with `chattr +i` (tests run as root, for whom
/// `chmod` takes nothing away); made mutable again on drop.
struct Immutable(Vec<std::path::PathBuf>);

impl Immutable {
    #[track_caller]
    fn set(paths: &[std::path::PathBuf]) -> Immutable {
        let guard = Immutable(Vec::new());
        let mut guard = guard;
        for path in paths {
            let status = std::process::Command::new("chattr").arg("+i").arg(path).status();
            assert!(
                status.is_ok_and(|status| status.success()),
                "`chattr +i {}` failed: this test needs a file system with attributes",
                path.display()
            );
            guard.0.push(path.clone());
        }
        guard
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::process::Command::new("chattr").arg("-i").arg(path).status();
        }
    }
}

#[test]
fn read_only_database_refuses_writes_with_503_and_recovers() {
    crate::support::sqlite_only!("a read-only SQLite file");
    let server = TestServer::start();
    let cookie = server.login("root", "root-password");
    let before = crate::support::count(&server.conn(), "web_sessions");
    let wal = server.db_path.with_extension("sqlite3-wal");
    assert!(wal.exists(), "the database runs in WAL mode");
    let read_only = Immutable::set(&[server.db_path.clone(), wal]);

    let login =
        server.post_form("/login", &[("username", "root"), ("password", "root-password")], &[]);
    assert_eq!(login.status, 503, "{}", login.body);
    assert!(login.set_cookie("sessionid").is_none());
    let api_login = crate::support::post_graphql(
        &server,
        "mutation { login(username: \"root\", password: \"root-password\") { token } }",
        serde_json::json!({}),
        None,
    );
    assert_eq!(api_login.status, 503, "{}", api_login.body);
    // Reads go on.
    assert_eq!(server.get_with_cookie("/api/whoami", &cookie).status, 200);
    assert_eq!(server.get("/healthz", &[]).status, 200);

    drop(read_only);
    assert_eq!(crate::support::count(&server.conn(), "web_sessions"), before);
    // Writable again: no restart needed.
    server.login("root", "root-password");
    assert_eq!(crate::support::count(&server.conn(), "web_sessions"), before + 1);
}

/// Median wall time of a failed login through the form.
fn failed_login_time(server: &TestServer, username: &str) -> Duration {
    let started = Instant::now();
    let response =
        server.post_form("/login", &[("username", username), ("password", "wrong")], &[]);
    assert_eq!(response.status, 401, "{}", response.body);
    started.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[test]
fn failed_login_costs_the_same_whether_the_user_exists_or_not() {
    let server = TestServer::start();
    // One attempt per name keeps every attempt clear of the throttle.
    let names: Vec<String> = (0..7).map(|n| format!("user{n}")).collect();
    for name in &names {
        server.create_user(name, "right-password", sessiond::users::Role::User);
    }
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for (number, name) in names.iter().enumerate() {
        known.push(failed_login_time(&server, name));
        unknown.push(failed_login_time(&server, &format!("ghost{number}")));
    }
    let (known, unknown) = (median(known), median(unknown));
    // Both run one Argon2 verification (tens of milliseconds); without the
    // decoy an unknown name would answer in well under a millisecond. The
    // bounds are wide so that a busy machine cannot make this flaky.
    assert!(unknown * 4 > known && known * 4 > unknown, "known {known:?}, unknown {unknown:?}");
}

#[test]
fn a_refused_write_is_logged_with_its_reason() {
    crate::support::sqlite_only!("an immutable SQLite file (chattr +i)");
    let dir = tempfile::tempdir().unwrap();
    let db_path = crate::support::prepare_database(dir.path());
    let mut server = crate::support::ServeProcess::start(dir.path(), &[]);
    // A first login makes sure the WAL file exists.
    let fields = [("username", "alice"), ("password", "alice-password")];
    assert_eq!(server.post_form("/login", &fields, &[]).status, 303);
    let read_only = Immutable::set(&[db_path.clone(), db_path.with_extension("sqlite3-wal")]);
    assert_eq!(server.post_form("/login", &fields, &[]).status, 503);
    drop(read_only);
    let output = server.signal_and_wait("TERM");
    let logged: Vec<&str> =
        output.lines().filter(|line| line.contains("database unavailable for writes")).collect();
    assert_eq!(logged.len(), 1, "{output}");
    assert!(logged[0].contains("I/O error") || logged[0].contains("readonly"), "{output}");
}

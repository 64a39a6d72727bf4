//! Request framing over raw sockets (issue 11, RFC 9112 section 6): every
//! head whose end could be read two ways, every unsupported version, and
//! every answer given before a body was read gets exactly one answer and a
//! closed connection, and the request smuggled behind it never runs (no
//! session row, no cookie, no second status line). Controls show that
//! well-framed requests (keep-alive, pipelined, chunked, `100-continue`)
//! still work, and that the smuggled login runs when it is sent on its own.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::raw_http::{
    Exchange, exchange, login_request, read_one_response, read_until_closed, status_lines,
};
use crate::support::{TestServer, count};

/// Sends `head`, then a complete login for root (the smuggled request), and
/// checks: exactly one answer, with `status`, then the connection closed,
/// and the login never ran.
#[track_caller]
fn assert_refused_and_nothing_smuggled(head: &str, status: u16) -> Exchange {
    let server = TestServer::start();
    let mut bytes = head.as_bytes().to_vec();
    bytes.extend_from_slice(&login_request("root", "root-password"));
    let answer = exchange(server.addr, &bytes);
    assert_only_answer(&server, &answer, status);
    answer
}

/// Every header a refusal may carry, from sessiond's router or from
/// tiny_http's own refusals.
const REFUSAL_HEADERS: &[&str] = &[
    "server",
    "date",
    "content-type",
    "content-length",
    "connection",
    "vary",
    "cache-control",
    "x-content-type-options",
    "referrer-policy",
    "x-frame-options",
    "content-security-policy",
];

#[track_caller]
fn assert_only_answer(server: &TestServer, answer: &Exchange, status: u16) {
    assert_eq!(answer.statuses(), vec![status], "{}", answer.text());
    assert_eq!(status_lines(&answer.bytes), 1, "a second status line: {}", answer.text());
    assert!(answer.closed, "the connection was kept open after: {}", answer.text());
    let response = &answer.responses()[0];
    assert_eq!(response.header("connection"), Some("close"), "{}", answer.text());
    let said_close = response.headers.iter().filter(|(name, _)| name == "connection").count();
    assert_eq!(said_close, 1, "{}", answer.text());
    for (name, _) in &response.headers {
        assert!(
            REFUSAL_HEADERS.contains(&name.as_str()),
            "a stray `{name}` header: {}",
            answer.text()
        );
    }
    assert!(!answer.text().contains("sessionid="), "the smuggled login set a cookie");
    assert_eq!(count(&server.conn(), "web_sessions"), 0, "the smuggled login ran");
}

#[test]
fn the_smuggled_login_runs_when_sent_on_its_own() {
    // The control for every test below: the same bytes, framed honestly.
    let server = TestServer::start();
    let answer = exchange(server.addr, &login_request("root", "root-password"));
    assert_eq!(answer.statuses(), vec![303], "{}", answer.text());
    assert!(answer.text().contains("sessionid="));
    assert_eq!(count(&server.conn(), "web_sessions"), 1);
}

#[test]
fn content_length_with_transfer_encoding_gets_400_and_closes() {
    let answer = assert_refused_and_nothing_smuggled(
        "POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
    assert!(answer.text().contains("`Transfer-Encoding`"), "{}", answer.text());
}

#[test]
fn transfer_encoding_with_content_length_first_or_last_gets_400() {
    assert_refused_and_nothing_smuggled(
        "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
        400,
    );
}

#[test]
fn two_different_content_lengths_get_400_and_close() {
    let answer = assert_refused_and_nothing_smuggled(
        "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 132\r\n\r\n",
        400,
    );
    assert!(answer.text().contains("several different `Content-Length`"), "{}", answer.text());
}

#[test]
fn a_list_of_different_content_lengths_gets_400() {
    assert_refused_and_nothing_smuggled(
        "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 132\r\n\r\n",
        400,
    );
}

#[test]
fn content_length_abc_gets_400_and_closes() {
    let answer = assert_refused_and_nothing_smuggled(
        "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        400,
    );
    assert!(answer.text().contains("malformed `Content-Length`"), "{}", answer.text());
}

#[test]
fn content_length_minus_one_gets_400_and_closes() {
    assert_refused_and_nothing_smuggled(
        "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        400,
    );
}

#[test]
fn content_length_with_a_plus_sign_gets_400_and_closes() {
    assert_refused_and_nothing_smuggled(
        "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n",
        400,
    );
}

#[test]
fn content_length_too_large_for_a_number_gets_400() {
    assert_refused_and_nothing_smuggled(
        "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 184467440737095516160\r\n\r\n",
        400,
    );
}

#[test]
fn transfer_encoding_xchunked_gets_400_and_closes() {
    assert_refused_and_nothing_smuggled(
        "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn transfer_encoding_chunked_then_gzip_gets_400_and_closes() {
    assert_refused_and_nothing_smuggled(
        "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn transfer_encoding_on_two_lines_ending_in_gzip_gets_400() {
    assert_refused_and_nothing_smuggled(
        "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn transfer_encoding_gzip_then_chunked_gets_501_and_closes() {
    assert_refused_and_nothing_smuggled(
        "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    );
}

#[test]
fn transfer_encoding_in_http_1_0_gets_400() {
    assert_refused_and_nothing_smuggled(
        "POST /login HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn an_obs_folded_header_gets_400_and_closes() {
    let answer = assert_refused_and_nothing_smuggled(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n Content-Length: 132\r\n\r\n",
        400,
    );
    assert!(answer.text().contains("folded"), "{}", answer.text());
}

#[test]
fn a_first_header_line_starting_with_a_space_gets_400() {
    assert_refused_and_nothing_smuggled(
        "GET /healthz HTTP/1.1\r\n Content-Length: 132\r\nHost: x\r\n\r\n",
        400,
    );
}

#[test]
fn a_space_before_the_colon_gets_400() {
    assert_refused_and_nothing_smuggled(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length : 132\r\n\r\n",
        400,
    );
}

#[test]
fn a_bare_cr_in_the_head_gets_400_and_closes() {
    let answer = assert_refused_and_nothing_smuggled(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rContent-Length: 132\r\n\r\n",
        400,
    );
    assert!(answer.text().contains("bare CR"), "{}", answer.text());
}

#[test]
fn a_bare_lf_line_ending_gets_400_and_closes() {
    assert_refused_and_nothing_smuggled(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\nContent-Length: 132\r\n\r\n",
        400,
    );
}

#[test]
fn a_nul_in_a_header_value_gets_400_and_closes() {
    let answer = assert_refused_and_nothing_smuggled(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
        400,
    );
    assert!(answer.text().contains("control byte"), "{}", answer.text());
}

#[test]
fn other_control_bytes_in_the_head_get_400() {
    for control in ["\x01", "\x1b", "\x7f", "\x0b", "\x0c"] {
        assert_refused_and_nothing_smuggled(
            &format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a{control}b\r\n\r\n"),
            400,
        );
    }
}

#[test]
fn a_control_byte_in_the_request_line_gets_400() {
    assert_refused_and_nothing_smuggled("GET /health\0z HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

#[test]
fn http_1_1_without_host_gets_400_and_closes() {
    let answer = assert_refused_and_nothing_smuggled("GET /healthz HTTP/1.1\r\n\r\n", 400);
    assert!(answer.text().contains("`Host`"), "{}", answer.text());
}

#[test]
fn two_host_headers_get_400() {
    assert_refused_and_nothing_smuggled("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
}

#[test]
fn http_1_0_without_host_is_served() {
    let server = TestServer::start();
    let answer = exchange(server.addr, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(answer.statuses(), vec![200], "{}", answer.text());
    assert!(answer.closed);
}

#[test]
fn http_2_0_gets_505_and_closes() {
    let answer = assert_refused_and_nothing_smuggled("GET / HTTP/2.0\r\n\r\n", 505);
    assert!(answer.text().contains("HTTP/1.0 and HTTP/1.1"), "{}", answer.text());
}

#[test]
fn http_3_0_gets_505_and_closes() {
    assert_refused_and_nothing_smuggled("GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505);
}

#[test]
fn the_http_2_preface_gets_505_and_closes() {
    assert_refused_and_nothing_smuggled("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);
}

#[test]
fn a_request_line_alone_with_another_version_is_answered_at_once() {
    // No empty line after it: the answer must not wait for headers.
    let server = TestServer::start();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.write_all(b"GET / HTTP/2.0\r\n").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let answer = read_until_closed(&mut stream);
    assert_eq!(answer.statuses(), vec![505], "{}", answer.text());
    assert!(answer.closed);
}

#[test]
fn a_413_closes_and_its_body_never_runs_as_requests() {
    // The attack: the unread body of a refused upload hides a login.
    assert_refused_and_nothing_smuggled(
        "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 2000000\r\n\r\n",
        413,
    );
}

#[test]
fn a_get_with_an_unread_large_body_gets_413_and_closes() {
    // Whatever the method, a body left unread is never read as requests.
    assert_refused_and_nothing_smuggled(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
        413,
    );
}

#[test]
fn an_expect_100_continue_upload_over_the_limit_gets_413_and_closes() {
    assert_refused_and_nothing_smuggled(
        "POST /login HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n",
        413,
    );
}

#[test]
fn a_chunked_body_over_the_limit_gets_413_and_its_rest_never_runs() {
    let server = TestServer::start();
    let chunk = vec![b'a'; 1024 * 1024 + 16];
    let mut bytes = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
    bytes.extend_from_slice(&chunk);
    bytes.extend_from_slice(b"\r\n0\r\n\r\n");
    bytes.extend_from_slice(&login_request("root", "root-password"));
    let answer = exchange(server.addr, &bytes);
    assert_only_answer(&server, &answer, 413);
}

#[test]
fn a_malformed_chunk_size_gets_400_and_closes() {
    for size in ["+4", " 4", "0x4", "4\n", "g"] {
        let answer = assert_refused_and_nothing_smuggled(
            &format!(
                "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nabcd\r\n0\r\n\r\n"
            ),
            400,
        );
        assert!(answer.text().contains("chunked body"), "{size:?}: {}", answer.text());
    }
}

#[test]
fn an_unknown_expectation_gets_417_and_closes() {
    assert_refused_and_nothing_smuggled(
        "POST /login HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 0\r\n\r\n",
        417,
    );
}

#[test]
fn keep_alive_serves_requests_one_after_another() {
    let server = TestServer::start();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    for _ in 0..3 {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let response = read_one_response(&mut stream, Duration::from_secs(5)).expect("an answer");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("connection"), None, "keep-alive answers do not close");
    }
}

#[test]
fn pipelined_requests_of_every_framing_are_answered_in_order() {
    let server = TestServer::start();
    let login = login_request("root", "root-password");
    let body = "username=root&password=root-password";
    let mut bytes = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    bytes.extend_from_slice(
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    );
    bytes.extend_from_slice(&login);
    bytes.extend_from_slice(
        format!("POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\nX-Trailer: ignored\r\n\r\n", body.len())
            .as_bytes(),
    );
    bytes.extend_from_slice(b"\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let answer = exchange(server.addr, &bytes);
    let statuses = answer.statuses();
    assert_eq!(statuses.len(), 5, "{}", answer.text());
    assert_eq!(statuses[0], 200);
    assert_eq!(statuses[2], 303, "the framed login runs");
    assert_eq!(statuses[3], 303, "the chunked login runs");
    assert_eq!(statuses[4], 200);
    assert!(answer.closed, "`Connection: close` is honoured");
    assert_eq!(answer.responses()[4].header("connection"), Some("close"));
    assert_eq!(count(&server.conn(), "web_sessions"), 2);
}

#[test]
fn an_expect_100_continue_upload_gets_its_100_and_is_served() {
    let server = TestServer::start();
    let body = "username=root&password=root-password";
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(
            format!("POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                .as_bytes(),
        )
        .unwrap();
    let mut interim = [0u8; 25];
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Read::read_exact(&mut stream, &mut interim).expect("a 100 Continue");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(body.as_bytes()).unwrap();
    let answer = read_until_closed(&mut stream);
    assert_eq!(answer.statuses(), vec![303], "{}", answer.text());
    assert_eq!(count(&server.conn(), "web_sessions"), 1);
}

#[test]
fn a_refusal_after_pipelined_requests_comes_after_their_answers() {
    // The requests before the bad one are answered, then the refusal, then
    // the close: one answer per complete request, one refusal.
    let server = TestServer::start();
    let mut bytes = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2);
    bytes.extend_from_slice(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    );
    bytes.extend_from_slice(&login_request("root", "root-password"));
    let answer = exchange(server.addr, &bytes);
    assert_eq!(answer.statuses(), vec![200, 200, 400], "{}", answer.text());
    assert!(answer.closed);
    assert_eq!(count(&server.conn(), "web_sessions"), 0);
}

#[test]
fn connection_upgrade_does_not_turn_the_rest_of_the_stream_into_the_body() {
    // sessiond upgrades nothing: the body is still framed by its length, and
    // a handler never waits on the raw stream until the deadline.
    let server = TestServer::start();
    let body = "username=root&password=wrong";
    let mut bytes = format!(
        "POST /login HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&login_request("root", "root-password"));
    let started = std::time::Instant::now();
    let answer = exchange(server.addr, &bytes);
    assert!(started.elapsed() < Duration::from_secs(3), "answered after {:?}", started.elapsed());
    assert_eq!(answer.statuses().len(), 1, "{}", answer.text());
    assert_eq!(status_lines(&answer.bytes), 1, "{}", answer.text());
    assert!(answer.closed);
    assert_eq!(count(&server.conn(), "web_sessions"), 0, "the smuggled login ran");
}

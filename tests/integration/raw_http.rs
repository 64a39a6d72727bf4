//! Raw-socket helpers for the HTTP-layer tests (`http_framing`, `floods`,
//! `http_fuzz`): send exact bytes, read every answer off the wire until the
//! server closes, and split it into responses. They parse responses as
//! strictly as the tests need and no more; they must not hide a second
//! answer or an open connection from a test.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What came back on one connection.
#[derive(Debug)]
pub struct Exchange {
    pub bytes: Vec<u8>,
    /// The server closed the connection (EOF or reset) before the test's
    /// read timeout.
    pub closed: bool,
}

impl Exchange {
    /// Every final response (interim `100 Continue` left out), in order.
    pub fn responses(&self) -> Vec<RawResponse> {
        parse_responses(&self.bytes)
    }

    pub fn statuses(&self) -> Vec<u16> {
        self.responses().iter().map(|response| response.status).collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Writes `bytes` and reads until the server closes or `wait` passes
/// without a byte.
pub fn exchange_within(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Exchange {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).unwrap();
    // The server may close before taking everything (that is the point of
    // some tests); what it answered is still there to read.
    let _ = stream.write_all(bytes);
    read_until_closed(&mut stream)
}

/// [`exchange_within`] with 5 s of silence taken to mean "kept open".
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Exchange {
    exchange_within(addr, bytes, Duration::from_secs(5))
}

/// Reads until EOF, a reset, or the stream's read timeout.
pub fn read_until_closed(stream: &mut TcpStream) -> Exchange {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Exchange { bytes, closed: true },
            Ok(read) => bytes.extend_from_slice(&chunk[..read]),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Exchange { bytes, closed: false };
            }
            Err(_) => return Exchange { bytes, closed: true },
        }
    }
}

/// Reads exactly one final response from a kept-open connection.
pub fn read_one_response(stream: &mut TcpStream, within: Duration) -> Option<RawResponse> {
    let deadline = Instant::now() + within;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((response, _)) = parse_one(&bytes)
            && response.status >= 200
        {
            return Some(response);
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1)))).ok()?;
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(read) => bytes.extend_from_slice(&chunk[..read]),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// One response as read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(header, _)| header == name).map(|(_, value)| value.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Splits a byte stream into final responses; trailing bytes that are not a
/// whole response are left out (a test that cares compares counts).
pub fn parse_responses(mut bytes: &[u8]) -> Vec<RawResponse> {
    let mut responses = Vec::new();
    while let Some((response, used)) = parse_one(bytes) {
        bytes = &bytes[used..];
        if response.status >= 200 {
            responses.push(response);
        }
    }
    responses
}

/// The number of status lines anywhere in the bytes (at the start of a
/// line): a count that no framing mistake of the parser above can lower.
pub fn status_lines(bytes: &[u8]) -> usize {
    (0..bytes.len())
        .filter(|&at| at == 0 || bytes[at - 1] == b'\n')
        .filter(|&at| {
            let line = &bytes[at..];
            line.len() >= 9 && line.starts_with(b"HTTP/1.") && line[8] == b' '
        })
        .count()
}

fn parse_one(bytes: &[u8]) -> Option<(RawResponse, usize)> {
    let end = bytes.windows(4).position(|window| window == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&bytes[..end - 4]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    if !status_line.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let find = |name: &str| headers.iter().find(|(header, _)| header == name).map(|(_, v)| v);
    if status < 200 || status == 204 || status == 304 {
        return Some((RawResponse { status, headers, body: Vec::new() }, end));
    }
    if find("transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked")) {
        let mut at = end;
        let mut body = Vec::new();
        loop {
            let line_end = bytes[at..].windows(2).position(|window| window == b"\r\n")? + at;
            let size =
                usize::from_str_radix(std::str::from_utf8(&bytes[at..line_end]).ok()?, 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                if bytes.get(at..at + 2)? != b"\r\n" {
                    return None;
                }
                return Some((RawResponse { status, headers, body }, at + 2));
            }
            body.extend_from_slice(bytes.get(at..at + size)?);
            at += size + 2;
        }
    }
    let length: usize = find("content-length").and_then(|value| value.parse().ok()).unwrap_or(0);
    let body = bytes.get(end..end + length)?.to_vec();
    Some((RawResponse { status, headers, body }, end + length))
}

/// A form POST to `/login` for `username` and `password`, whole.
pub fn login_request(username: &str, password: &str) -> Vec<u8> {
    let body = format!("username={username}&password={password}");
    format!(
        "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Binds a client socket to `local` (an address of 127.0.0.0/8) and
/// connects it to `server`.
pub fn connect_from(local: std::net::Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((local, 0)).into())?;
    socket.connect_timeout(&server.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

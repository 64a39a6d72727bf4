use std::io::Result as IoResult;
use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Write};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::common::{HTTPVersion, StatusCode};
use crate::framing::{check_head_bytes, check_request_line, parse_head, Refusal};
use crate::slots::Slot;
use crate::util::{ReadDeadline, RefinedTcpStream};
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::{Limits, Request, Response};

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // limits on each request's head (a sessiond patch)
    limits: Limits,

    // the deadline of the head being read, checked by the socket (a
    // sessiond patch)
    read_deadline: Arc<ReadDeadline>,

    // the connection's accounting (a sessiond patch)
    slot: Option<Arc<Slot>>,
}

/// Why no request came (sessiond patch: every refusal is answered with its
/// status and reason, and then the connection is closed).
#[derive(Debug)]
enum ReadError {
    /// Answer this, then close.
    Refused(Refusal),
    /// The client went away, stayed silent between requests, or was
    /// evicted: close without an answer.
    Gone,
}

impl ReadError {
    fn timeout() -> ReadError {
        ReadError::Refused(Refusal { status: 408, reason: "request not received in time" })
    }
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub(crate) fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        limits: Limits,
        read_deadline: Arc<ReadDeadline>,
        slot: Option<Arc<Slot>>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            limits,
            read_deadline,
            slot,
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads one line, up to and including its LF, onto the end of `head`.
    ///
    /// sessiond patch: a line longer than `max_bytes` (CRLF included) is
    /// refused with `too_long`; `deadline` is set by the first byte of a
    /// request (from `Limits::head_timeout`) and handed to the socket, whose
    /// reads fail with `TimedOut` once it has passed.
    fn read_line_into(
        &mut self,
        head: &mut Vec<u8>,
        max_bytes: usize,
        too_long: Refusal,
        deadline: &mut Option<Instant>,
    ) -> Result<(), ReadError> {
        let start = head.len();
        loop {
            let available = match self.next_header_source.fill_buf() {
                Ok([]) => return Err(ReadError::Gone),
                Ok(available) => available,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // A stall in the middle of a request is a timeout (408); a
                // silent idle connection is just closed.
                Err(e)
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                        && deadline.is_some() =>
                {
                    return Err(ReadError::timeout())
                }
                Err(_) => return Err(ReadError::Gone),
            };

            // The first byte of a request (not every byte of it: without
            // a head timeout `deadline` stays `None`, and reading the clock
            // for each byte cost a bare server a quarter of its time).
            if deadline.is_none() && head.is_empty() {
                if let Some(slot) = &self.slot {
                    slot.reading();
                }
                if let Some(timeout) = self.limits.head_timeout {
                    *deadline = Some(Instant::now() + timeout);
                    self.read_deadline.set(*deadline);
                }
            }

            // Up to the end of the line, never past the limit: the bytes
            // after it stay in the buffer for the next line or the body.
            let room = max_bytes - (head.len() - start);
            let window = &available[..available.len().min(room)];
            let (taken, ended) = match window.iter().position(|&byte| byte == b'\n') {
                Some(at) => (at + 1, true),
                None => (window.len(), false),
            };
            head.extend_from_slice(&window[..taken]);
            self.next_header_source.consume(taken);
            if ended {
                return Ok(());
            }
            if head.len() - start >= max_bytes {
                return Err(ReadError::Refused(too_long));
            }
        }
    }

    /// Reads a request head, up to and including the empty line that ends
    /// it, within the limits (sessiond patch).
    fn read_head(&mut self, deadline: &mut Option<Instant>) -> Result<Vec<u8>, ReadError> {
        let line_too_long = Refusal { status: 414, reason: "request line too long" };
        let headers_too_large = Refusal { status: 431, reason: "request headers too large" };
        let mut head = Vec::with_capacity(256);
        // RFC 9112 2.2: a server should ignore at least one empty line
        // before the request line (some clients send one after a body).
        let mut empty_lines = 0;
        loop {
            self.read_line_into(&mut head, self.limits.max_request_line_bytes, line_too_long.clone(), deadline)?;
            if head != b"\r\n" {
                break;
            }
            empty_lines += 1;
            if empty_lines > 2 {
                return Err(ReadError::Refused(Refusal { status: 400, reason: "malformed request line" }));
            }
            head.clear();
        }
        check_head_bytes(&head).map_err(ReadError::Refused)?;
        check_request_line(&head[..head.len() - 2]).map_err(ReadError::Refused)?;

        let mut header_bytes_left = self.limits.max_header_bytes;
        let mut header_lines = 0usize;
        loop {
            let start = head.len();
            // The CRLF that ends the headers is not a header: room for it
            // is always left.
            self.read_line_into(&mut head, header_bytes_left.saturating_add(2), headers_too_large.clone(), deadline)?;
            let line = &head[start..];
            if line == b"\r\n" {
                return Ok(head);
            }
            if line.len() > header_bytes_left || header_lines >= self.limits.max_header_lines {
                return Err(ReadError::Refused(headers_too_large));
            }
            header_bytes_left -= line.len();
            header_lines += 1;
        }
    }

    /// Reads a request from the stream; blocks until its head (and a small
    /// body) has been read. Also says whether the client asked for the
    /// connection to close after it.
    fn read(&mut self) -> Result<(Request, bool), ReadError> {
        self.read_deadline.set(None);
        let mut deadline = None;
        let head = self.read_head(&mut deadline)?;
        let head = parse_head(&head).map_err(ReadError::Refused)?;

        // RFC 9112 9.3: HTTP/1.1 persists unless `close`; HTTP/1.0 only
        // with `keep-alive`.
        let options: Vec<String> = head
            .headers
            .iter()
            .filter(|h| h.field.equiv("Connection"))
            .flat_map(|h| h.value.as_str().split(','))
            .map(|option| option.trim().to_ascii_lowercase())
            .collect();
        let has = |name: &str| options.iter().any(|option| option == name);
        let close_after = has("close")
            || has("upgrade")
            || (head.version == HTTPVersion(1, 0) && !has("keep-alive"));

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        let request = crate::request::new_request(
            self.secure,
            head.method,
            head.path,
            head.version,
            head.headers,
            *self.remote_addr.as_ref().unwrap(),
            head.framing,
            data_source,
            writer,
            deadline,
            self.limits.max_buffered_body,
            self.slot.clone(),
            close_after,
        )
        .map_err(|e| {
            use crate::request;
            self.read_deadline.set(None);
            match e {
                request::RequestCreationError::CreationIoError(e)
                    if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::InvalidData) =>
                {
                    ReadError::Refused(Refusal { status: 400, reason: "malformed chunked body" })
                }
                request::RequestCreationError::CreationIoError(e)
                    if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) =>
                {
                    ReadError::timeout()
                }
                request::RequestCreationError::CreationIoError(_) => ReadError::Gone,
                request::RequestCreationError::ExpectationFailed => ReadError::Refused(Refusal {
                    status: 417,
                    reason: "only `Expect: 100-continue` is supported",
                }),
            }
        })?;
        // The head and any body read ahead are in: the worker that reads
        // the rest of a body sets its own deadline.
        self.read_deadline.set(None);

        Ok((request, close_after))
    }

    /// Answers a refused request (after the answers owed before it) and
    /// says that the connection closes.
    fn refuse(&mut self, refusal: &Refusal) {
        let writer = self.sink.next().unwrap();
        let mut response = Response::from_string(format!("{}\n", refusal.reason))
            .with_status_code(StatusCode(refusal.status));
        response.close_connection();
        let mut writer = writer;
        if response.raw_print(&mut writer, HTTPVersion(1, 1), &[], false, None).is_ok() {
            let _ = writer.flush();
        }
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        // sessiond patch: read on only once the request before is done with
        // the stream and answered (one request in flight per connection),
        // and only if its answer did not close the connection.
        self.next_header_source.wait_turn();
        if let Some(slot) = &self.slot {
            slot.wait_until_answered();
            if slot.must_close() {
                return None;
            }
            slot.waiting();
        }

        match self.read() {
            Ok((request, close_after)) => {
                self.no_more_requests = close_after;
                Some(request)
            }
            Err(ReadError::Refused(refusal)) => {
                self.refuse(&refusal);
                None
            }
            Err(ReadError::Gone) => None,
        }
    }
}


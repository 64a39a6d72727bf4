//! The access log (SPEC 10): one logfmt line per answered request, on
//! stderr, when `SESSIOND_ACCESS_LOG` is on.
//!
//! A line holds exactly these fields: `time` (RFC 3339, UTC), `method`,
//! `path` (never the query string), `status`, `duration_ms`, `client` (the
//! address sessiond uses for the request) and `user` (the username behind the
//! request's own valid cookie or token, empty when none). This module is
//! handed those values and nothing else, so it cannot log a cookie, a
//! token, a query string, a form field or another header; it must never be
//! given one.
//!
//! Each worker owns an [`AccessLog`] and builds each line whole in memory.
//! A worker of the main listener keeps its lines in a buffer of its own
//! (at most [`FLUSH_BYTES`], whole lines only) and writes the buffer with
//! one `write_all` while holding std's stderr lock, so a line is never cut
//! and never lands in the middle of another message (`eprintln!` writes its
//! text and its newline in separate calls, under that same lock). Without
//! the buffer every request cost a `write` system call; with it, one call
//! carries some thirty lines under load. The buffer is written as soon as a
//! line would overflow it, when its oldest line is [`FLUSH_AFTER`] old and
//! another line comes, when the worker has no request to answer (its
//! receive loop wakes every 100 ms), and when the worker stops (and on
//! drop): so `tail -f` shows a request within about 100 ms of its answer,
//! never a second later unless that worker is busy with one request that
//! long, and shutdown loses nothing. The login threads (few requests, each a
//! password hash) and the in-memory destination of the tests write each
//! line at once. A line is kept under 4 KiB (a long path is cut), and a
//! buffer written is at most 4 KiB, so the kernel writes it to a pipe in
//! one piece.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::UnixTime;

/// Where the workers' lines go: the process's stderr; an open file (the
/// bench, which keeps its own stderr for its report); or, for tests that
/// start servers in-process, where many servers share one stderr, memory
/// (behind one mutex: for tests only).
#[derive(Clone, Default)]
pub enum Destination {
    #[default]
    Stderr,
    File(Arc<File>),
    Memory(Arc<Mutex<Vec<u8>>>),
}

/// The longest path written; a longer one is cut and marked with `...`.
pub const MAX_PATH_CHARS: usize = 1024;

/// The most a worker's buffer holds before it is written: a pipe takes a
/// write of up to 4096 bytes (`PIPE_BUF`) in one piece.
pub const FLUSH_BYTES: usize = 4096;

/// How long the oldest buffered line may wait for the next one before the
/// buffer is written anyway.
pub const FLUSH_AFTER: Duration = Duration::from_millis(100);

/// Whether a worker keeps its lines in a buffer (see the module's text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffering {
    /// Whole lines kept, written within [`FLUSH_AFTER`] or when idle.
    Buffered,
    /// Each line written at once.
    LineByLine,
}

/// One worker's access log. Not `Sync`: one thread at a time uses it, the
/// one holding its worker.
pub struct AccessLog {
    sink: Option<Sink>,
    buffering: Buffering,
    /// Whole lines not yet written, and when the oldest was added.
    pending: RefCell<Pending>,
    /// The last time stamp formatted, reused within the same second, and
    /// the last client address formatted (a keep-alive connection sends
    /// many requests from one).
    last_time: RefCell<(UnixTime, String)>,
    last_client: RefCell<(Option<IpAddr>, String)>,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    since: Option<Instant>,
}

enum Sink {
    Stderr,
    /// The worker's own duplicate of the file's descriptor (nothing else
    /// writes the file, so no lock).
    Fd(File),
    Memory(Arc<Mutex<Vec<u8>>>),
}

/// What one line says about one request.
pub struct Entry<'a> {
    pub time: UnixTime,
    pub method: &'a str,
    /// The path without its query string.
    pub path: &'a str,
    pub status: u16,
    pub duration: Duration,
    /// The address sessiond uses for the request (see
    /// `Request::client_ip`); none is logged as empty.
    pub client: Option<IpAddr>,
    /// The username of the request's valid cookie or token, or "".
    pub user: &'a str,
}

impl AccessLog {
    /// A worker's log: off unless `enabled`.
    pub fn new(
        enabled: bool,
        destination: &Destination,
        buffering: Buffering,
    ) -> std::io::Result<AccessLog> {
        let (sink, buffering) = match (enabled, destination) {
            (false, _) => (None, Buffering::LineByLine),
            (true, Destination::Stderr) => (Some(Sink::Stderr), buffering),
            (true, Destination::File(file)) => (Some(Sink::Fd(file.try_clone()?)), buffering),
            // The tests read the lines right after each answer.
            (true, Destination::Memory(buffer)) => {
                (Some(Sink::Memory(Arc::clone(buffer))), Buffering::LineByLine)
            }
        };
        let capacity = if buffering == Buffering::Buffered { FLUSH_BYTES } else { 0 };
        Ok(AccessLog {
            sink,
            buffering,
            pending: RefCell::new(Pending { bytes: Vec::with_capacity(capacity), since: None }),
            last_time: RefCell::new((UnixTime::MIN, String::new())),
            last_client: RefCell::new((None, String::new())),
        })
    }

    /// Whether lines are written at all; when not, callers need not gather
    /// the fields.
    pub fn is_on(&self) -> bool {
        self.sink.is_some()
    }

    /// Logs one line; `at` is the moment the answer was ready (it decides
    /// whether the buffer is old enough to be written). A failed write
    /// (stderr closed) is dropped: the log must not cost the request its
    /// answer.
    pub fn write(&self, entry: &Entry<'_>, at: Instant) {
        let Some(sink) = &self.sink else {
            return;
        };
        let line = {
            let mut last_time = self.last_time.borrow_mut();
            if last_time.0 != entry.time {
                *last_time = (entry.time, crate::clock::rfc3339(entry.time));
            }
            let mut last_client = self.last_client.borrow_mut();
            if last_client.0 != entry.client {
                *last_client = (entry.client, client_text(entry.client));
            }
            format_line_at(entry, &last_time.1, &last_client.1)
        };
        if self.buffering == Buffering::LineByLine {
            sink.write(line.as_bytes());
            return;
        }
        let mut pending = self.pending.borrow_mut();
        if pending.bytes.len() + line.len() > FLUSH_BYTES {
            flush_pending(sink, &mut pending);
        }
        pending.bytes.extend_from_slice(line.as_bytes());
        let since = *pending.since.get_or_insert(at);
        if at.saturating_duration_since(since) >= FLUSH_AFTER {
            flush_pending(sink, &mut pending);
        }
    }

    /// Whether lines wait in the buffer.
    pub fn has_pending(&self) -> bool {
        !self.pending.borrow().bytes.is_empty()
    }

    /// Writes the buffered lines, if any: when the worker is idle, and when
    /// it stops.
    pub fn flush(&self) {
        if let Some(sink) = &self.sink {
            flush_pending(sink, &mut self.pending.borrow_mut());
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

fn flush_pending(sink: &Sink, pending: &mut Pending) {
    if !pending.bytes.is_empty() {
        sink.write(&pending.bytes);
        pending.bytes.clear();
    }
    pending.since = None;
}

impl Sink {
    /// Writes whole lines in one `write_all`.
    fn write(&self, bytes: &[u8]) {
        match self {
            Sink::Stderr => {
                let _ = std::io::stderr().lock().write_all(bytes);
            }
            Sink::Fd(file) => {
                let _ = (&*file).write_all(bytes);
            }
            Sink::Memory(buffer) => {
                buffer
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .extend_from_slice(bytes);
            }
        }
    }
}

/// The logfmt line of an entry, with its newline.
pub fn format_line(entry: &Entry<'_>) -> String {
    format_line_at(entry, &crate::clock::rfc3339(entry.time), &client_text(entry.client))
}

fn client_text(client: Option<IpAddr>) -> String {
    client.map(|addr| addr.to_string()).unwrap_or_default()
}

/// The line with `time` and `client` already formatted (a worker reuses
/// them while they stay the same).
fn format_line_at(entry: &Entry<'_>, time: &str, client: &str) -> String {
    let mut line = String::with_capacity(128 + entry.path.len().min(MAX_PATH_CHARS));
    line.push_str("time=");
    line.push_str(time);
    line.push_str(" method=");
    push_value(&mut line, entry.method);
    line.push_str(" path=");
    match entry.path.char_indices().nth(MAX_PATH_CHARS) {
        Some((cut, _)) => push_value(&mut line, &format!("{}...", &entry.path[..cut])),
        None => push_value(&mut line, entry.path),
    }
    // Milliseconds with three decimals, from whole microseconds rounded to
    // the nearest (integers: no float formatting on the request path).
    let micros = u64::try_from((entry.duration.as_nanos() + 500) / 1000).unwrap_or(u64::MAX);
    let _ =
        write!(line, " status={} duration_ms={}.{:03}", entry.status, micros / 1000, micros % 1000);
    line.push_str(" client=");
    push_value(&mut line, client);
    line.push_str(" user=");
    push_value(&mut line, entry.user);
    line.push('\n');
    line
}

/// Appends a logfmt value: bare when it is printable ASCII without a space,
/// `"`, `=` or `\`; else quoted, with `"` and `\` escaped and control
/// characters written as escapes, so a value can never end the line or
/// start another field.
fn push_value(line: &mut String, value: &str) {
    let bare = value.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'=' | b'\\'));
    if bare {
        line.push_str(value);
        return;
    }
    line.push('"');
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(line, "\\u{{{:x}}}", u32::from(c));
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(path: &'a str, user: &'a str) -> Entry<'a> {
        Entry {
            time: 1_795_780_800,
            method: "GET",
            path,
            status: 200,
            duration: Duration::from_micros(1234),
            client: Some(std::net::IpAddr::from([127, 0, 0, 1])),
            user,
        }
    }

    #[test]
    fn a_line_has_every_field_in_order() {
        assert_eq!(
            format_line(&entry("/api/whoami", "alice")),
            "time=2026-11-27T12:00:00Z method=GET path=/api/whoami status=200 duration_ms=1.234 client=127.0.0.1 user=alice\n"
        );
        assert!(format_line(&entry("/", "")).ends_with(" user=\n"));
    }

    #[test]
    fn odd_values_are_quoted_and_cannot_start_a_field_or_a_line() {
        let line = format_line(&entry("/a b\n=c\"\\", "bob"));
        assert!(line.contains(r#"path="/a b\n=c\"\\" "#), "{line}");
        assert_eq!(line.matches('\n').count(), 1);
    }

    #[test]
    fn a_long_path_is_cut() {
        let long = "/".repeat(5000);
        let line = format_line(&entry(&long, ""));
        assert!(line.len() < 4096 / 2, "{}", line.len());
        assert!(line.contains("/...") || line.contains("..."), "{line}");
    }
}

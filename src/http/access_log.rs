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
//! Each worker owns an [`AccessLog`] and builds each line whole in memory,
//! then writes it with one `write_all` while holding std's stderr lock: one
//! short lock per line, held for the one `write` call, never while the line
//! is built. Without that lock a line could land in the middle of another
//! message: `eprintln!` writes its text and its newline in separate calls,
//! under that same lock. A line is kept under 4 KiB (a long path is cut), so
//! the kernel writes it to a pipe in one piece.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// One worker's access log.
pub struct AccessLog {
    sink: Option<Sink>,
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
    pub client: &'a str,
    /// The username of the request's valid cookie or token, or "".
    pub user: &'a str,
}

impl AccessLog {
    /// A worker's log: off unless `enabled`.
    pub fn new(enabled: bool, destination: &Destination) -> std::io::Result<AccessLog> {
        let sink = match (enabled, destination) {
            (false, _) => None,
            (true, Destination::Stderr) => Some(Sink::Stderr),
            (true, Destination::File(file)) => Some(Sink::Fd(file.try_clone()?)),
            (true, Destination::Memory(buffer)) => Some(Sink::Memory(Arc::clone(buffer))),
        };
        Ok(AccessLog { sink })
    }

    /// Whether lines are written at all; when not, callers need not gather
    /// the fields.
    pub fn is_on(&self) -> bool {
        self.sink.is_some()
    }

    /// Writes one line. A failed write (stderr closed) is dropped: the log
    /// must not cost the request its answer.
    pub fn write(&self, entry: &Entry<'_>) {
        let Some(sink) = &self.sink else {
            return;
        };
        let line = format_line(entry);
        match sink {
            Sink::Stderr => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Sink::Fd(file) => {
                let _ = (&*file).write_all(line.as_bytes());
            }
            Sink::Memory(buffer) => {
                buffer
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .extend_from_slice(line.as_bytes());
            }
        }
    }
}

/// The logfmt line of an entry, with its newline.
pub fn format_line(entry: &Entry<'_>) -> String {
    let mut line = String::with_capacity(128 + entry.path.len().min(MAX_PATH_CHARS));
    // Writing to a String cannot fail.
    let _ = write!(line, "time={} method=", crate::clock::rfc3339(entry.time));
    push_value(&mut line, entry.method);
    line.push_str(" path=");
    match entry.path.char_indices().nth(MAX_PATH_CHARS) {
        Some((cut, _)) => push_value(&mut line, &format!("{}...", &entry.path[..cut])),
        None => push_value(&mut line, entry.path),
    }
    let milliseconds = entry.duration.as_secs_f64() * 1000.0;
    let _ = write!(line, " status={} duration_ms={milliseconds:.3} client=", entry.status);
    push_value(&mut line, entry.client);
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
            client: "127.0.0.1",
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

use crate::common::{HTTPVersion, Header, StatusCode};
use httpdate::HttpDate;
use std::cmp::Ordering;
use std::sync::mpsc::Receiver;

use std::io::Result as IoResult;
use std::io::{self, Cursor, Read, Write};

use std::fs::File;

use std::str::FromStr;
use std::time::SystemTime;

/// Object representing an HTTP response whose purpose is to be given to a `Request`.
///
/// Some headers cannot be changed. Trying to define the value
/// of one of these will have no effect:
///
///  - `Connection`
///  - `Trailer`
///  - `Transfer-Encoding`
///  - `Upgrade`
///
/// Some headers have special behaviors:
///
///  - `Content-Encoding`: If you define this header, the library
///     will assume that the data from the `Read` object has the specified encoding
///     and will just pass-through.
///
///  - `Content-Length`: The length of the data should be set manually
///     using the `Reponse` object's API. Attempting to set the value of this
///     header will be equivalent to modifying the size of the data but the header
///     itself may not be present in the final result.
///
///  - `Content-Type`: You may only set this header to one value at a time. If you
///     try to set it more than once, the existing value will be overwritten. This
///     behavior differs from the default for most headers, which is to allow them to
///     be set multiple times in the same response.
///
pub struct Response<R> {
    reader: R,
    status_code: StatusCode,
    headers: Vec<Header>,
    data_length: Option<usize>,
    chunked_threshold: Option<usize>,
    // sessiond patch: `Connection: close` was asked for, by the caller or
    // by the request it answers
    close: bool,
    // sessiond patch: header lines added with `add_header_text`, already
    // written out (`Name: value\r\n`), sent after `headers`
    lines: Vec<u8>,
}

/// A `Response` without a template parameter.
pub type ResponseBox = Response<Box<dyn Read + Send>>;

/// Transfer encoding to use when sending the message.
/// Note that only *supported* encoding are listed here.
#[derive(Copy, Clone)]
enum TransferEncoding {
    Identity,
    Chunked,
}

impl FromStr for TransferEncoding {
    type Err = ();

    fn from_str(input: &str) -> Result<TransferEncoding, ()> {
        if input.eq_ignore_ascii_case("identity") {
            Ok(TransferEncoding::Identity)
        } else if input.eq_ignore_ascii_case("chunked") {
            Ok(TransferEncoding::Chunked)
        } else {
            Err(())
        }
    }
}

/// sessiond patch: the `Date` line of this second, formatted once a second
/// per thread rather than once a response.
fn write_date_line(head: &mut Vec<u8>) {
    use std::cell::RefCell;
    use std::time::UNIX_EPOCH;
    thread_local! {
        static DATE_LINE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    DATE_LINE.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            *cached = (second, format!("Date: {}\r\n", HttpDate::from(now)));
        }
        head.extend_from_slice(cached.1.as_bytes());
    });
}

/// sessiond patch: the bytes of an RFC 9110 token.
const TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = matches!(byte as u8, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
            || matches!(byte as u8, b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+')
            || matches!(byte as u8, b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        byte += 1;
    }
    table
};

/// sessiond patch: whether `name` is a header name (an RFC 9110 token).
fn is_token(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&byte| TOKEN_BYTES[usize::from(byte)])
}

/// sessiond patch: whether `value` can be sent as a header value: visible
/// ASCII, spaces and tabs, never CR, LF or another control byte. (One OR
/// over every byte, without stopping early, which the compiler does many
/// bytes at a time.)
fn is_field_value(value: &[u8]) -> bool {
    let bad = value.iter().fold(0u8, |bad, &byte| {
        bad | (u8::from(byte < b' ') & u8::from(byte != b'\t')) | u8::from(byte > b'~')
    });
    bad == 0
}

/// sessiond patch: the headers `add_header` treats specially, which
/// `add_header_text` hands to it.
fn is_special_header(name: &str) -> bool {
    ["Connection", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Content-Type", "Date", "Server"]
        .iter()
        .any(|special| special.eq_ignore_ascii_case(name))
}

/// The status line (sessiond patch: the head is put together in memory by
/// `raw_print` and written at once; each write to the connection's writer
/// takes its lock).
fn write_status_line(head: &mut Vec<u8>, http_version: &HTTPVersion, status_code: &StatusCode) {
    // Writing to a Vec cannot fail.
    let _ = write!(
        head,
        "HTTP/{}.{} {} {}\r\n",
        http_version.0,
        http_version.1,
        status_code.0,
        status_code.default_reason_phrase()
    );
}

fn choose_transfer_encoding(
    status_code: StatusCode,
    request_headers: &[Header],
    http_version: &HTTPVersion,
    entity_length: &Option<usize>,
    has_additional_headers: bool,
    chunked_threshold: usize,
) -> TransferEncoding {
    use crate::util;

    // HTTP 1.0 doesn't support other encoding
    if *http_version <= (1, 0) {
        return TransferEncoding::Identity;
    }

    // Per section 3.3.1 of RFC7230:
    // A server MUST NOT send a Transfer-Encoding header field in any response with a status code
    // of 1xx (Informational) or 204 (No Content).
    if status_code.0 < 200 || status_code.0 == 204 {
        return TransferEncoding::Identity;
    }

    // parsing the request's TE header
    let user_request = request_headers
        .iter()
        // finding TE
        .find(|h| h.field.equiv("TE"))
        // getting its value
        .map(|h| h.value.clone())
        // getting the corresponding TransferEncoding
        .and_then(|value| {
            // getting list of requested elements
            let mut parse = util::parse_header_value(value.as_str()); // TODO: remove conversion

            // sorting elements by most priority
            parse.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal));

            // trying to parse each requested encoding
            for value in parse.iter() {
                // q=0 are ignored
                if value.1 <= 0.0 {
                    continue;
                }

                if let Ok(te) = TransferEncoding::from_str(value.0) {
                    return Some(te);
                }
            }

            // encoding not found
            None
        });

    if let Some(user_request) = user_request {
        return user_request;
    }

    // if we have additional headers, using chunked
    if has_additional_headers {
        return TransferEncoding::Chunked;
    }

    // if we don't have a Content-Length, or if the Content-Length is too big, using chunks writer
    if entity_length
        .as_ref()
        .map_or(true, |val| *val >= chunked_threshold)
    {
        return TransferEncoding::Chunked;
    }

    // Identity by default
    TransferEncoding::Identity
}

impl<R> Response<R>
where
    R: Read,
{
    /// Creates a new Response object.
    ///
    /// The `additional_headers` argument is a receiver that
    ///  may provide headers even after the response has been sent.
    ///
    /// All the other arguments are straight-forward.
    pub fn new(
        status_code: StatusCode,
        headers: Vec<Header>,
        data: R,
        data_length: Option<usize>,
        additional_headers: Option<Receiver<Header>>,
    ) -> Response<R> {
        let mut response = Response {
            reader: data,
            status_code,
            headers: Vec::with_capacity(16),
            data_length,
            chunked_threshold: None,
            close: false,
            lines: Vec::new(),
        };

        for h in headers {
            response.add_header(h)
        }

        // dummy implementation
        if let Some(additional_headers) = additional_headers {
            for h in additional_headers.iter() {
                response.add_header(h)
            }
        }

        response
    }

    /// Set a threshold for `Content-Length` where we chose chunked
    /// transfer. Notice that chunked transfer might happen regardless of
    /// this threshold, for instance when the request headers indicate
    /// it is wanted or when there is no `Content-Length`.
    pub fn with_chunked_threshold(mut self, length: usize) -> Response<R> {
        self.chunked_threshold = Some(length);
        self
    }

    /// Convert the response into the underlying `Read` type.
    ///
    /// This is mainly useful for testing as it must consume the `Response`.
    pub fn into_reader(self) -> R {
        self.reader
    }

    /// The current `Content-Length` threshold for switching over to
    /// chunked transfer. The default is 32768 bytes. Notice that
    /// chunked transfer is mutually exclusive with sending a
    /// `Content-Length` header as per the HTTP spec.
    pub fn chunked_threshold(&self) -> usize {
        self.chunked_threshold.unwrap_or(32768)
    }

    /// Adds a header to the list.
    /// Does all the checks.
    pub fn add_header<H>(&mut self, header: H)
    where
        H: Into<Header>,
    {
        let header = header.into();

        // sessiond patch: `Connection: close` is honoured (the connection
        // closes after this response, and the header is sent); any other
        // `Connection` value is still ignored.
        if header.field.equiv("Connection") {
            if header.value.as_str().split(',').any(|option| option.trim().eq_ignore_ascii_case("close")) {
                self.close = true;
            }
            return;
        }

        // ignoring forbidden headers
        if header.field.equiv("Trailer")
            || header.field.equiv("Transfer-Encoding")
            || header.field.equiv("Upgrade")
        {
            return;
        }

        // if the header is Content-Length, setting the data length
        if header.field.equiv("Content-Length") {
            if let Ok(val) = usize::from_str(header.value.as_str()) {
                self.data_length = Some(val)
            }

            return;
        // if the header is Content-Type and it's already set, overwrite it
        } else if header.field.equiv("Content-Type") {
            if let Some(content_type_header) = self
                .headers
                .iter_mut()
                .find(|h| h.field.equiv("Content-Type"))
            {
                content_type_header.value = header.value;
                return;
            }
        }

        self.headers.push(header);
    }

    /// Adds a header given as text (sessiond patch): written out at once,
    /// without the two allocations of a [`Header`]. The headers that
    /// [`Response::add_header`] treats specially go through it. Refuses
    /// (and adds nothing) a name that is not a token, or a value with a
    /// control byte (CR, LF, NUL...) or a byte above 0x7E, so a value can
    /// never start another header.
    #[allow(clippy::result_unit_err)]
    pub fn add_header_text(&mut self, name: &str, value: &str) -> Result<(), ()> {
        if !is_token(name.as_bytes()) || !is_field_value(value.as_bytes()) {
            return Err(());
        }
        if is_special_header(name) {
            self.add_header(Header::from_bytes(name, value)?);
            return Ok(());
        }
        if self.lines.capacity() == 0 {
            self.lines.reserve(512);
        }
        self.lines.extend_from_slice(name.as_bytes());
        self.lines.extend_from_slice(b": ");
        self.lines.extend_from_slice(value.as_bytes());
        self.lines.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// Whether this response closes its connection (sessiond patch).
    pub fn close_requested(&self) -> bool {
        self.close
    }

    /// Makes this response close its connection (sessiond patch).
    pub(crate) fn close_connection(&mut self) {
        self.close = true;
    }

    /// Returns the same request, but with an additional header.
    ///
    /// Some headers cannot be modified and some other have a
    ///  special behavior. See the documentation above.
    #[inline]
    pub fn with_header<H>(mut self, header: H) -> Response<R>
    where
        H: Into<Header>,
    {
        self.add_header(header.into());
        self
    }

    /// Returns the same request, but with a different status code.
    #[inline]
    pub fn with_status_code<S>(mut self, code: S) -> Response<R>
    where
        S: Into<StatusCode>,
    {
        self.status_code = code.into();
        self
    }

    /// Returns the same request, but with different data.
    pub fn with_data<S>(self, reader: S, data_length: Option<usize>) -> Response<S>
    where
        S: Read,
    {
        Response {
            reader,
            headers: self.headers,
            status_code: self.status_code,
            data_length,
            chunked_threshold: self.chunked_threshold,
            close: self.close,
            lines: self.lines,
        }
    }

    /// Prints the HTTP response to a writer.
    ///
    /// This function is the one used to send the response to the client's socket.
    /// Therefore you shouldn't expect anything pretty-printed or even readable.
    ///
    /// The HTTP version and headers passed as arguments are used to
    ///  decide which features (most notably, encoding) to use.
    ///
    /// Note: does not flush the writer.
    pub fn raw_print<W: Write>(
        mut self,
        mut writer: W,
        http_version: HTTPVersion,
        request_headers: &[Header],
        do_not_send_body: bool,
        upgrade: Option<&str>,
    ) -> IoResult<()> {
        let mut transfer_encoding = Some(choose_transfer_encoding(
            self.status_code,
            request_headers,
            &http_version,
            &self.data_length,
            false, /* TODO */
            self.chunked_threshold(),
        ));

        // sessiond patch: the head is put together here in one buffer,
        // without a `Header` for the lines tiny_http adds itself: the
        // upgrade, `Server` and `Date` (unless given), the headers, the
        // lines of `add_header_text`, `Connection: close` and the framing.
        let mut head = Vec::with_capacity(256 + self.lines.len());
        write_status_line(&mut head, &http_version, &self.status_code);

        // handling upgrade
        if let Some(upgrade) = upgrade {
            head.extend_from_slice(b"Connection: upgrade\r\nUpgrade: ");
            head.extend_from_slice(upgrade.as_bytes());
            head.extend_from_slice(b"\r\n");
            transfer_encoding = None;
        }

        // add `Server` if not in the headers
        if !self.headers.iter().any(|h| h.field.equiv("Server")) {
            head.extend_from_slice(b"Server: tiny-http (Rust)\r\n");
        }

        // add `Date` if not in the headers
        if !self.headers.iter().any(|h| h.field.equiv("Date")) {
            write_date_line(&mut head);
        }

        for header in self.headers.iter() {
            head.extend_from_slice(header.field.as_str().as_ref());
            head.extend_from_slice(b": ");
            head.extend_from_slice(header.value.as_str().as_ref());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(&self.lines);

        // sessiond patch: say that the connection closes after this
        if self.close && upgrade.is_none() {
            head.extend_from_slice(b"Connection: close\r\n");
        }

        // if the transfer encoding is identity, the content length must be known ; therefore if
        // we don't know it, we buffer the entire response first here
        // while this is an expensive operation, it is only ever needed for clients using HTTP 1.0
        let (mut reader, data_length): (Box<dyn Read>, _) =
            match (self.data_length, transfer_encoding) {
                (Some(l), _) => (Box::new(self.reader), Some(l)),
                (None, Some(TransferEncoding::Identity)) => {
                    let mut buf = Vec::new();
                    self.reader.read_to_end(&mut buf)?;
                    let l = buf.len();
                    (Box::new(Cursor::new(buf)), Some(l))
                }
                _ => (Box::new(self.reader), None),
            };

        // checking whether to ignore the body of the response
        let do_not_send_body = do_not_send_body
            || match self.status_code.0 {
                // status code 1xx, 204 and 304 MUST not include a body
                100..=199 | 204 | 304 => true,
                _ => false,
            };

        // preparing headers for transfer
        match transfer_encoding {
            Some(TransferEncoding::Chunked) => {
                head.extend_from_slice(b"Transfer-Encoding: chunked\r\n")
            }

            Some(TransferEncoding::Identity) => {
                assert!(data_length.is_some());
                let data_length = data_length.unwrap();
                let _ = write!(head, "Content-Length: {}\r\n", data_length);
            }

            _ => (),
        };

        // separator between header and data, then the head at once
        head.extend_from_slice(b"\r\n");
        writer.write_all(&head)?;

        // sending the body
        if !do_not_send_body {
            match transfer_encoding {
                Some(TransferEncoding::Chunked) => {
                    use chunked_transfer::Encoder;

                    let mut writer = Encoder::new(writer);
                    io::copy(&mut reader, &mut writer)?;
                }

                Some(TransferEncoding::Identity) => {
                    assert!(data_length.is_some());
                    let data_length = data_length.unwrap();

                    if data_length >= 1 {
                        io::copy(&mut reader, &mut writer)?;
                    }
                }

                _ => (),
            }
        }

        Ok(())
    }

    /// Retrieves the current value of the `Response` status code
    pub fn status_code(&self) -> StatusCode {
        self.status_code
    }

    /// Retrieves the current value of the `Response` data length
    pub fn data_length(&self) -> Option<usize> {
        self.data_length
    }

    /// Retrieves the current list of `Response` headers
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }
}

impl<R> Response<R>
where
    R: Read + Send + 'static,
{
    /// Turns this response into a `Response<Box<Read + Send>>`.
    pub fn boxed(self) -> ResponseBox {
        Response {
            reader: Box::new(self.reader) as Box<dyn Read + Send>,
            status_code: self.status_code,
            headers: self.headers,
            data_length: self.data_length,
            chunked_threshold: self.chunked_threshold,
            close: self.close,
            lines: self.lines,
        }
    }
}

impl Response<File> {
    /// Builds a new `Response` from a `File`.
    ///
    /// The `Content-Type` will **not** be automatically detected,
    ///  you must set it yourself.
    pub fn from_file(file: File) -> Response<File> {
        let file_size = file.metadata().ok().map(|v| v.len() as usize);

        Response::new(
            StatusCode(200),
            Vec::with_capacity(0),
            file,
            file_size,
            None,
        )
    }
}

impl Response<Cursor<Vec<u8>>> {
    pub fn from_data<D>(data: D) -> Response<Cursor<Vec<u8>>>
    where
        D: Into<Vec<u8>>,
    {
        let data = data.into();
        let data_len = data.len();

        Response::new(
            StatusCode(200),
            Vec::with_capacity(0),
            Cursor::new(data),
            Some(data_len),
            None,
        )
    }

    pub fn from_string<S>(data: S) -> Response<Cursor<Vec<u8>>>
    where
        S: Into<String>,
    {
        let data = data.into();
        let data_len = data.len();

        Response::new(
            StatusCode(200),
            vec![
                Header::from_bytes(&b"Content-Type"[..], &b"text/plain; charset=UTF-8"[..])
                    .unwrap(),
            ],
            Cursor::new(data.into_bytes()),
            Some(data_len),
            None,
        )
    }
}

impl Response<io::Empty> {
    /// Builds an empty `Response` with the given status code.
    pub fn empty<S>(status_code: S) -> Response<io::Empty>
    where
        S: Into<StatusCode>,
    {
        Response::new(
            status_code.into(),
            Vec::with_capacity(0),
            io::empty(),
            Some(0),
            None,
        )
    }

    /// DEPRECATED. Use `empty` instead.
    pub fn new_empty(status_code: StatusCode) -> Response<io::Empty> {
        Response::empty(status_code)
    }
}

impl Clone for Response<io::Empty> {
    fn clone(&self) -> Response<io::Empty> {
        Response {
            reader: io::empty(),
            status_code: self.status_code,
            headers: self.headers.clone(),
            data_length: self.data_length,
            chunked_threshold: self.chunked_threshold,
            close: self.close,
            lines: self.lines.clone(),
        }
    }
}

// sessiond patch: tests of the head that `raw_print` writes.
#[cfg(test)]
mod tests {
    use super::*;

    fn printed(response: Response<Cursor<Vec<u8>>>) -> String {
        let mut out = Vec::new();
        response.raw_print(&mut out, HTTPVersion(1, 1), &[], false, None).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_text_header_is_written_once_between_the_date_and_the_framing() {
        let mut response = Response::from_string("hello");
        response.add_header_text("X-Frame-Options", "DENY").unwrap();
        let text = printed(response);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "HTTP/1.1 200 OK");
        assert_eq!(lines[1], "Server: tiny-http (Rust)");
        assert!(lines[2].starts_with("Date: ") && lines[2].ends_with(" GMT"), "{text}");
        assert_eq!(lines[2].len(), "Date: Tue, 01 Dec 2026 17:40:43 GMT".len(), "{text}");
        assert!(lines.contains(&"X-Frame-Options: DENY"), "{text}");
        assert!(lines.contains(&"Content-Length: 5"), "{text}");
        assert!(text.ends_with("\r\n\r\nhello"), "{text}");
        assert_eq!(text.matches("X-Frame-Options").count(), 1, "{text}");
    }

    #[test]
    fn a_text_header_that_could_start_another_header_is_refused() {
        let mut response = Response::from_string("");
        for (name, value) in [
            ("X-Test", "a\r\nSet-Cookie: stolen=1"),
            ("X-Test", "a\nb"),
            ("X-Test", "nul\0"),
            ("X-Test", "caf\u{e9}"),
            ("X Test", "v"),
            ("X-Test:", "v"),
            ("", "v"),
        ] {
            assert_eq!(response.add_header_text(name, value), Err(()), "{name:?}: {value:?}");
        }
        let text = printed(response);
        assert!(!text.contains("X-Test") && !text.contains("stolen"), "{text}");
    }

    #[test]
    fn the_special_headers_keep_their_meaning_when_given_as_text() {
        let mut response = Response::from_string("hello");
        response.add_header_text("Content-Type", "text/plain").unwrap();
        response.add_header_text("Content-Type", "application/json").unwrap();
        response.add_header_text("Connection", "close").unwrap();
        response.add_header_text("Transfer-Encoding", "gzip").unwrap();
        assert!(response.close_requested());
        let text = printed(response);
        assert_eq!(text.matches("Content-Type: ").count(), 1, "{text}");
        assert!(text.contains("Content-Type: application/json\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(!text.contains("gzip"), "{text}");
    }
}

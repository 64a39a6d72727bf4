//! The request head and the framing of its body (a sessiond patch, see
//! SESSIOND.md): this module owns the decision of where a request ends, as
//! RFC 9112 sections 2 to 7 ask, and refuses every head whose end could be
//! read two ways. The head is parsed by `httparse` (hyper's parser); the
//! checks httparse leaves to its caller (line endings, control bytes, the
//! version, `Host`, `Content-Length` against `Transfer-Encoding`) are here,
//! and so is a strict decoder of chunked bodies. It must not read the socket
//! or write an answer: it says what is wrong, and `client.rs` answers.

use std::convert::TryFrom;
use std::io::{self, ErrorKind, Read};

use ascii::AsciiString;

use crate::common::{HTTPVersion, Header, HeaderField, Method};

/// The most header lines httparse is given room for; `Limits` caps them
/// lower before the head gets here.
const MAX_HEADERS: usize = 512;

/// Why a head is refused: the status to answer (always followed by closing
/// the connection) and a one-line reason for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) reason: &'static str,
}

impl Refusal {
    fn bad_request(reason: &'static str) -> Refusal {
        Refusal { status: 400, reason }
    }
}

/// Where the body of a request ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body: the next request starts right after the head.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked, ending with the last chunk and the trailer section.
    Chunked,
}

/// A head that parsed and whose framing is certain.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) version: HTTPVersion,
    pub(crate) headers: Vec<Header>,
    pub(crate) framing: BodyFraming,
}

/// Checks a request line on its own (without its CRLF), before the headers
/// are read: an HTTP version other than 1.0 or 1.1 is 505 at once (HTTP/2's
/// preface `PRI * HTTP/2.0` included), so a client speaking another protocol
/// is answered and closed instead of waiting for headers that never come.
pub(crate) fn check_request_line(line: &[u8]) -> Result<(), Refusal> {
    let mut parts = line.split(|&byte| byte == b' ');
    let (Some(_method), Some(_target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::bad_request("malformed request line"));
    };
    match version {
        b"HTTP/1.1" | b"HTTP/1.0" => Ok(()),
        other if looks_like_a_version(other) => {
            Err(Refusal { status: 505, reason: "only HTTP/1.0 and HTTP/1.1 are supported" })
        }
        _ => Err(Refusal::bad_request("malformed request line")),
    }
}

/// `HTTP/` followed by a digit, then anything: another version, not garbage.
fn looks_like_a_version(version: &[u8]) -> bool {
    version.len() > 5 && version.starts_with(b"HTTP/") && version[5].is_ascii_digit()
}

/// Checks the bytes of a whole head (request line, header lines, the empty
/// line, every line ending in CRLF): only visible ASCII, space and tab, with
/// CR only before LF. This refuses NUL and other control bytes, bare CR, bare
/// LF as a line ending and bytes above 0x7F, which httparse would partly
/// allow and tiny_http's ASCII headers could not hold.
///
/// sessiond patch: eight bytes at a time. A word of only visible ASCII and
/// spaces (0x20 to 0x7E), most of a head, needs no look at each byte; a word
/// with anything else (a line end, a tab, a refused byte) is checked byte by
/// byte, in order, so the first refused byte is the one named, as before.
/// Byte by byte all the way, this was about 12 instructions a byte
/// (callgrind): 2,700 of the 61,000 of an `/auth/forward` request.
pub(crate) fn check_head_bytes(head: &[u8]) -> Result<(), Refusal> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut at = 0;
    for word in head.chunks_exact(8) {
        let word_bits = u64::from_ne_bytes(<[u8; 8]>::try_from(word).expect("eight bytes"));
        // Exact for "is any byte below 0x20" and "is any byte 0x7F or
        // above" (a borrow or carry only ever starts at such a byte).
        let below_space = word_bits.wrapping_sub(ONES * 0x20) & !word_bits & HIGH;
        let delete_or_high = (word_bits.wrapping_add(ONES) | word_bits) & HIGH;
        if below_space | delete_or_high != 0 {
            for index in at..at + 8 {
                check_head_byte(head, index)?;
            }
        }
        at += 8;
    }
    for index in at..head.len() {
        check_head_byte(head, index)?;
    }
    Ok(())
}

/// The rule of [`check_head_bytes`] for the byte at `index`, which looks at
/// its neighbours for CR and LF.
fn check_head_byte(head: &[u8], index: usize) -> Result<(), Refusal> {
    match head[index] {
        b'\r' if head.get(index + 1) == Some(&b'\n') => Ok(()),
        b'\r' => Err(Refusal::bad_request("bare CR in the request head")),
        b'\n' if index > 0 && head[index - 1] == b'\r' => Ok(()),
        b'\n' => Err(Refusal::bad_request("bare LF in the request head")),
        b'\t' | 0x20..=0x7e => Ok(()),
        0x80..=0xff => Err(Refusal::bad_request("non-ASCII byte in the request head")),
        _ => Err(Refusal::bad_request("control byte in the request head")),
    }
}

/// Parses a complete head (as checked by [`check_head_bytes`]) and decides
/// the framing of its body.
pub(crate) fn parse_head(head: &[u8]) -> Result<Head, Refusal> {
    check_head_bytes(head)?;
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut storage);
    match request.parse(head) {
        Ok(httparse::Status::Complete(length)) if length == head.len() => {}
        Ok(_) => return Err(Refusal::bad_request("malformed request head")),
        Err(httparse::Error::Version) => {
            return Err(Refusal { status: 505, reason: "only HTTP/1.0 and HTTP/1.1 are supported" })
        }
        Err(httparse::Error::HeaderName) => {
            return Err(Refusal::bad_request(
                "malformed header name (a line folded onto the previous one is refused)",
            ))
        }
        Err(_) => return Err(Refusal::bad_request("malformed request head")),
    }
    let method = request.method.ok_or(Refusal::bad_request("malformed request line"))?;
    let method: Method = method.parse().map_err(|_| Refusal::bad_request("malformed method"))?;
    let path = request.path.ok_or(Refusal::bad_request("malformed request line"))?.to_owned();
    let version = match request.version {
        Some(0) => HTTPVersion(1, 0),
        Some(1) => HTTPVersion(1, 1),
        _ => return Err(Refusal { status: 505, reason: "only HTTP/1.0 and HTTP/1.1 are supported" }),
    };
    let mut headers = Vec::with_capacity(request.headers.len());
    for header in request.headers.iter() {
        // httparse took the name as a token, so it has no whitespace to
        // look for (`HeaderField`'s `FromStr` does that, char by char).
        let field = HeaderField::from_bytes(header.name)
            .map_err(|_| Refusal::bad_request("malformed header name"))?;
        let value = trim_whitespace(header.value);
        let value = AsciiString::from_ascii(value)
            .map_err(|_| Refusal::bad_request("non-ASCII byte in the request head"))?;
        headers.push(Header { field, value });
    }
    check_host(&version, &headers)?;
    let framing = body_framing(&version, &headers)?;
    Ok(Head { method, path, version, headers, framing })
}

fn trim_whitespace(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// RFC 9112 section 3.2: an HTTP/1.1 request has exactly one `Host`, and
/// no request has two.
fn check_host(version: &HTTPVersion, headers: &[Header]) -> Result<(), Refusal> {
    let mut hosts = headers.iter().filter(|header| header.field.equiv("Host"));
    match (hosts.next(), hosts.next()) {
        (None, _) if *version == HTTPVersion(1, 1) => {
            Err(Refusal::bad_request("an HTTP/1.1 request needs a `Host` header"))
        }
        (Some(_), Some(_)) => Err(Refusal::bad_request("more than one `Host` header")),
        (Some(host), None)
            if host.value.as_bytes().iter().any(|byte| b" \t/?#@\\".contains(byte)) =>
        {
            Err(Refusal::bad_request("malformed `Host` header"))
        }
        _ => Ok(()),
    }
}

/// RFC 9112 section 6.3: where the body ends, or a refusal when that could
/// be read two ways.
fn body_framing(version: &HTTPVersion, headers: &[Header]) -> Result<BodyFraming, Refusal> {
    let mut codings = Vec::new();
    let mut has_transfer_encoding = false;
    let mut length: Option<u64> = None;
    let mut has_content_length = false;
    for header in headers {
        if header.field.equiv("Transfer-Encoding") {
            has_transfer_encoding = true;
            codings.extend(
                header.value.as_str().split(',').map(str::trim).filter(|coding| !coding.is_empty()),
            );
        } else if header.field.equiv("Content-Length") {
            has_content_length = true;
            // `Content-Length: 5, 5` and two lines of `5` are one length;
            // anything else is ambiguous.
            for value in header.value.as_str().split(',').map(str::trim) {
                let parsed = parse_content_length(value)?;
                if length.is_some_and(|length| length != parsed) {
                    return Err(Refusal::bad_request("several different `Content-Length` values"));
                }
                length = Some(parsed);
            }
        }
    }
    if has_transfer_encoding {
        if has_content_length {
            return Err(Refusal::bad_request(
                "both `Content-Length` and `Transfer-Encoding` (refused, as RFC 9112 6.3 allows)",
            ));
        }
        if *version == HTTPVersion(1, 0) {
            return Err(Refusal::bad_request("`Transfer-Encoding` in an HTTP/1.0 request"));
        }
        let Some((last, before)) = codings.split_last() else {
            return Err(Refusal::bad_request("empty `Transfer-Encoding`"));
        };
        if !last.eq_ignore_ascii_case("chunked")
            || before.iter().any(|coding| coding.eq_ignore_ascii_case("chunked"))
        {
            return Err(Refusal::bad_request(
                "`Transfer-Encoding` must end with a single `chunked`",
            ));
        }
        if !before.is_empty() {
            return Err(Refusal {
                status: 501,
                reason: "no transfer coding but `chunked` is supported",
            });
        }
        return Ok(BodyFraming::Chunked);
    }
    match length {
        None => Ok(BodyFraming::Empty),
        Some(length) => Ok(BodyFraming::Length(length)),
    }
}

/// `1*DIGIT`, nothing else (no sign, no space inside, no hex), and small
/// enough for a `u64`.
fn parse_content_length(value: &str) -> Result<u64, Refusal> {
    if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(Refusal::bad_request("malformed `Content-Length`"));
    }
    value.parse().map_err(|_| Refusal::bad_request("`Content-Length` too large"))
}

/// The longest chunk-size line (size, extensions, CRLF) and trailer section
/// accepted; a chunked body is framing, not a place to store data.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILER_BYTES: usize = 8192;

/// A strict decoder of a chunked body (RFC 9112 section 7.1): chunk sizes of
/// hexadecimal digits only, every line ending in CRLF, extensions and
/// trailers bounded, read and discarded. It reads the source byte by byte
/// only for those lines (the source is buffered). Reads after the end
/// return 0 without touching the source; a malformed body is an
/// `InvalidData` error.
pub(crate) struct ChunkedDecoder<R> {
    source: R,
    state: ChunkState,
}

#[derive(Clone, Copy)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data with this many bytes left.
    Data(u64),
    /// Done: the last chunk and the trailers have been read.
    Done,
}

impl<R: Read> ChunkedDecoder<R> {
    pub(crate) fn new(source: R) -> ChunkedDecoder<R> {
        ChunkedDecoder { source, state: ChunkState::Size }
    }

    /// Whether the whole body, trailers included, has been read.
    pub(crate) fn finished(&self) -> bool {
        matches!(self.state, ChunkState::Done)
    }

    fn byte(&mut self) -> io::Result<u8> {
        let mut byte = [0u8; 1];
        match self.source.read(&mut byte)? {
            0 => Err(io::Error::new(ErrorKind::UnexpectedEof, "the chunked body ended early")),
            _ => Ok(byte[0]),
        }
    }

    /// Reads one line up to its CRLF (which is not returned).
    fn line(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        loop {
            match self.byte()? {
                b'\r' => {
                    return match self.byte()? {
                        b'\n' => Ok(line),
                        _ => Err(malformed("bare CR in a chunked body")),
                    }
                }
                b'\n' => return Err(malformed("bare LF in a chunked body")),
                byte => line.push(byte),
            }
            if line.len() > max {
                return Err(malformed("chunk line too long"));
            }
        }
    }

    fn read_size(&mut self) -> io::Result<u64> {
        let line = self.line(MAX_CHUNK_LINE)?;
        let (size, extensions) = match line.iter().position(|&byte| byte == b';') {
            Some(at) => line.split_at(at),
            None => (&line[..], &[][..]),
        };
        if extensions.iter().any(|&byte| byte != b'\t' && !(0x20..=0x7e).contains(&byte)) {
            return Err(malformed("control byte in a chunk extension"));
        }
        // BWS before an extension is allowed; nothing else around the size.
        let size = trim_whitespace_end(size);
        if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
            return Err(malformed("malformed chunk size"));
        }
        let size = std::str::from_utf8(size).map_err(|_| malformed("malformed chunk size"))?;
        u64::from_str_radix(size, 16).map_err(|_| malformed("malformed chunk size"))
    }

    fn read_trailers(&mut self) -> io::Result<()> {
        let mut total = 0;
        loop {
            let line = self.line(MAX_TRAILER_BYTES)?;
            if line.is_empty() {
                return Ok(());
            }
            total += line.len() + 2;
            let valid_field = line.iter().position(|&byte| byte == b':').is_some_and(|colon| {
                colon > 0
                    && line[..colon].iter().all(|&byte| is_token_byte(byte))
                    && line[colon..].iter().all(|&byte| byte == b'\t' || (0x20..=0x7e).contains(&byte))
            });
            if !valid_field {
                return Err(malformed("malformed trailer field"));
            }
            if total > MAX_TRAILER_BYTES {
                return Err(malformed("trailer section too large"));
            }
        }
    }
}

fn trim_whitespace_end(mut value: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn malformed(reason: &'static str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, reason)
}

impl<R: Read> Read for ChunkedDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(0),
                ChunkState::Size => {
                    let size = self.read_size()?;
                    if size == 0 {
                        self.read_trailers()?;
                        self.state = ChunkState::Done;
                        return Ok(0);
                    }
                    self.state = ChunkState::Data(size);
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(0);
                    }
                    let wanted = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let read = self.source.read(&mut buf[..wanted])?;
                    if read == 0 {
                        return Err(io::Error::new(
                            ErrorKind::UnexpectedEof,
                            "the chunked body ended early",
                        ));
                    }
                    let left = left - read as u64;
                    if left == 0 {
                        if self.byte()? != b'\r' || self.byte()? != b'\n' {
                            return Err(malformed("chunk data not followed by CRLF"));
                        }
                        self.state = ChunkState::Size;
                    } else {
                        self.state = ChunkState::Data(left);
                    }
                    return Ok(read);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check of every head byte one at a time, as it was before it
    /// went eight at a time: [`check_head_bytes`] must agree with it.
    fn check_head_bytes_one_at_a_time(head: &[u8]) -> Result<(), Refusal> {
        let mut bytes = head.iter().peekable();
        let mut previous = 0u8;
        while let Some(&byte) = bytes.next() {
            match byte {
                b'\r' if bytes.peek() == Some(&&b'\n') => {}
                b'\r' => return Err(Refusal::bad_request("bare CR in the request head")),
                b'\n' if previous == b'\r' => {}
                b'\n' => return Err(Refusal::bad_request("bare LF in the request head")),
                b'\t' | 0x20..=0x7e => {}
                0x80..=0xff => {
                    return Err(Refusal::bad_request("non-ASCII byte in the request head"))
                }
                _ => return Err(Refusal::bad_request("control byte in the request head")),
            }
            previous = byte;
        }
        Ok(())
    }

    #[test]
    fn the_head_check_eight_bytes_at_a_time_agrees_with_the_check_of_each_byte() {
        // Every byte value at every position of a clean 24-byte head, then
        // 200,000 heads drawn (xorshift, fixed seed) from the bytes at the
        // edges of each rule, up to 40 bytes long.
        let clean = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for index in 0..clean.len() {
            for byte in 0..=255u8 {
                let mut head = clean.clone();
                head[index] = byte;
                assert_eq!(
                    check_head_bytes(&head),
                    check_head_bytes_one_at_a_time(&head),
                    "{head:?}"
                );
            }
        }
        let edges = [b'\r', b'\n', b'\t', b' ', b'a', b'~', 0x00, 0x1f, 0x7f, 0x80, 0xff];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut refused = 0;
        for _ in 0..200_000 {
            let length = (next() % 41) as usize;
            let head: Vec<u8> = (0..length)
                .map(|_| {
                    let draw = next();
                    // Mostly plain bytes, as in a real head.
                    if draw % 4 == 0 { edges[(draw >> 8) as usize % edges.len()] } else { b'a' }
                })
                .collect();
            let expected = check_head_bytes_one_at_a_time(&head);
            refused += usize::from(expected.is_err());
            assert_eq!(check_head_bytes(&head), expected, "{head:?}");
        }
        assert!(refused > 1_000 && refused < 199_000, "both outcomes drawn: {refused} refused");
    }

    fn framing_of(head: &str) -> Result<BodyFraming, Refusal> {
        parse_head(head.as_bytes()).map(|head| head.framing)
    }

    #[test]
    fn framing_is_certain_or_refused() {
        let ok = |extra: &str| framing_of(&format!("POST / HTTP/1.1\r\nHost: x\r\n{extra}\r\n"));
        assert_eq!(ok(""), Ok(BodyFraming::Empty));
        assert_eq!(ok("Content-Length: 5\r\n"), Ok(BodyFraming::Length(5)));
        assert_eq!(ok("Content-Length: 5\r\nContent-Length: 5\r\n"), Ok(BodyFraming::Length(5)));
        assert_eq!(ok("Content-Length: 5, 5\r\n"), Ok(BodyFraming::Length(5)));
        assert_eq!(ok("Transfer-Encoding: chunked\r\n"), Ok(BodyFraming::Chunked));
        assert_eq!(ok("Transfer-Encoding: CHUNKED\r\n"), Ok(BodyFraming::Chunked));
        for refused in [
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: abc\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: 0x5\r\n",
            "Content-Length: 5 5\r\n",
            "Content-Length:\r\n",
            "Content-Length: 99999999999999999999999\r\n",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: xchunked\r\n",
            "Transfer-Encoding: chunked, gzip\r\n",
            "Transfer-Encoding: chunked, chunked\r\n",
            "Transfer-Encoding: identity\r\n",
            "Transfer-Encoding: \r\n",
            " Content-Length: 5\r\n",
            "Foo: bar\r\n folded\r\n",
            "Content-Length : 5\r\n",
        ] {
            assert_eq!(ok(refused).map_err(|refusal| refusal.status), Err(400), "{refused:?}");
        }
        assert_eq!(ok("Transfer-Encoding: gzip, chunked\r\n").map_err(|r| r.status), Err(501));
    }

    #[test]
    fn heads_with_bad_bytes_or_no_host_are_refused() {
        for refused in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\nX: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX: \x01\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x y\r\n\r\n",
            "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let status = parse_head(refused.as_bytes()).map(|_| ()).map_err(|r| r.status);
            assert_eq!(status, Err(400), "{refused:?}");
        }
        assert!(parse_head(b"GET / HTTP/1.0\r\n\r\n").is_ok());
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\nX: a\tb\r\n\r\n").is_ok());
    }

    #[test]
    fn other_versions_get_505() {
        for line in ["GET / HTTP/2.0", "GET / HTTP/3.0", "PRI * HTTP/2.0", "GET / HTTP/0.9", "GET / HTTP/1.2"] {
            assert_eq!(check_request_line(line.as_bytes()).map_err(|r| r.status), Err(505), "{line}");
        }
        assert_eq!(check_request_line(b"GET /").map_err(|r| r.status), Err(400));
        assert_eq!(check_request_line(b"GET / FOO/1.1").map_err(|r| r.status), Err(400));
        assert!(check_request_line(b"GET / HTTP/1.1").is_ok());
    }

    fn decode(body: &str) -> io::Result<(Vec<u8>, usize)> {
        let mut source = io::Cursor::new(body.as_bytes().to_vec());
        let mut decoder = ChunkedDecoder::new(&mut source);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out)?;
        assert!(decoder.finished());
        Ok((out, source.position() as usize))
    }

    #[test]
    fn chunked_bodies_are_decoded_strictly() {
        assert_eq!(decode("5\r\nhello\r\n0\r\n\r\nNEXT").unwrap(), (b"hello".to_vec(), 15));
        assert_eq!(decode("5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n").unwrap().0, b"hello");
        assert_eq!(decode("A \r\n0123456789\r\n0\r\n\r\n").unwrap().0, b"0123456789");
        for bad in [
            "+5\r\nhello\r\n0\r\n\r\n",
            " 5\r\nhello\r\n0\r\n\r\n",
            "0x5\r\nhello\r\n0\r\n\r\n",
            "5\nhello\r\n0\r\n\r\n",
            "5\r\nhelloX\r\n0\r\n\r\n",
            "5\r\nhello\r\n0\r\n",
            "5\r\nhello\r\n0\r\nbad trailer\r\n\r\n",
            "ffffffffffffffff\r\n",
            "\r\n",
        ] {
            assert!(decode(bad).is_err(), "{:?}", bad);
        }
    }
}

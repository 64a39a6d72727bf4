use std::convert::TryFrom;
use std::io::Error as IoError;
use std::io::{self, Cursor, ErrorKind, Read, Write};

use std::fmt;
use std::net::SocketAddr;

use std::sync::mpsc::Sender;
use std::time::Instant;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::framing::{BodyFraming, ChunkedDecoder};
use crate::slots::Slot;
use crate::util::{EqualReader, FusedReader};
use crate::{HTTPVersion, Header, Method, Response, StatusCode};

/// Represents an HTTP request made by a client.
///
/// A `Request` object is what is produced by the server, and is your what
/// your code must analyse and answer.
///
/// This object implements the `Send` trait, therefore you can dispatch your requests to
/// worker threads.
///
/// # Pipelining
///
/// If a client sends multiple requests in a row (without waiting for the response), then you will
/// get multiple `Request` objects simultaneously. This is called *requests pipelining*.
/// Tiny-http automatically reorders the responses so that you don't need to worry about the order
/// in which you call `respond` or `into_writer`.
///
/// This mechanic is disabled if:
///
///  - The body of a request is large enough (handling requires pipelining requires storing the
///    body of the request in a buffer ; if the body is too big, tiny-http will avoid doing that)
///  - A request sends a `Expect: 100-continue` header (which means that the client waits to
///    know whether its body will be processed before sending it)
///  - A request sends a `Connection: close` header or `Connection: upgrade` header (used for
///    websockets), which indicates that this is the last request that will be received on this
///    connection
///
/// # Automatic cleanup
///
/// If a `Request` object is destroyed without `into_writer` or `respond` being called,
/// an empty response with a 500 status code (internal server error) will automatically be
/// sent back to the client.
/// This means that if your code fails during the handling of a request, this "internal server
/// error" response will automatically be sent during the stack unwinding.
///
/// # Testing
///
/// If you want to build fake requests to test your server, use [`TestRequest`](crate::test::TestRequest).
pub struct Request {
    // where to read the body from
    data_reader: Option<Box<dyn Read + Send + 'static>>,

    // if this writer is empty, then the request has been answered
    response_writer: Option<Box<dyn Write + Send + 'static>>,

    remote_addr: Option<SocketAddr>,

    // true if HTTPS, false if HTTP
    secure: bool,

    method: Method,

    path: String,

    http_version: HTTPVersion,

    headers: Vec<Header>,

    body_length: Option<usize>,

    // true if a `100 Continue` response must be sent when `as_reader()` is called
    must_send_continue: bool,

    // If Some, a message must be sent after responding
    notify_when_responded: Option<Sender<()>>,

    // sessiond patch: the rest of a body too long to read, holding the
    // socket so that nothing more is read from it before the answer
    held_source: Option<Box<dyn Read + Send + 'static>>,

    // sessiond patch: whether the body has been read to its end
    body_finished: Arc<AtomicBool>,

    // sessiond patch: the client asked for the connection to close after
    // this request
    close_after: bool,

    // sessiond patch: the connection's slot, told when the answer is written
    in_flight: Option<InFlight>,
}

struct NotifyOnDrop<R> {
    sender: Sender<()>,
    inner: R,
}

impl<R: Read> Read for NotifyOnDrop<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}
impl<R: Write> Write for NotifyOnDrop<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
impl<R> Drop for NotifyOnDrop<R> {
    fn drop(&mut self) {
        self.sender.send(()).unwrap();
    }
}

/// Error that can happen when building a `Request` object.
#[derive(Debug)]
pub enum RequestCreationError {
    /// The client sent an `Expect` header that was not recognized by tiny-http.
    ExpectationFailed,

    /// Error while reading data from the socket during the creation of the `Request`.
    CreationIoError(IoError),
}

impl From<IoError> for RequestCreationError {
    fn from(err: IoError) -> RequestCreationError {
        RequestCreationError::CreationIoError(err)
    }
}

/// Builds a new request.
///
/// After the request line and headers have been read from the socket, a new `Request` object
/// is built.
///
/// You must pass a `Read` that will allow the `Request` object to read from the incoming data.
/// It is the responsibility of the `Request` to read only the data of the request and not further.
///
/// The `Write` object will be used by the `Request` to write the response.
///
/// sessiond patch: the framing of the body is decided by `framing.rs` and
/// passed in. A body up to `max_buffered_body` bytes is read here, within
/// `deadline` (after a `100 Continue` when the client waits for one), so a
/// handler never waits on the client; a larger one is left for the handler.
/// `slot` is the connection's accounting, told when the answer is written and
/// whether the connection must close after it; `close_after` is the client's
/// own wish (`Connection: close`, HTTP/1.0).
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_request<R, W>(
    secure: bool,
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    remote_addr: Option<SocketAddr>,
    framing: BodyFraming,
    source_data: R,
    mut writer: W,
    deadline: Option<Instant>,
    max_buffered_body: usize,
    slot: Option<Arc<Slot>>,
    close_after: bool,
) -> Result<Request, RequestCreationError>
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    // true if the client sent a `Expect: 100-continue` header (HTTP/1.0
    // clients cannot wait for a 100, RFC 9110 10.1.1)
    let expects_continue = {
        match headers
            .iter()
            .find(|h: &&Header| h.field.equiv("Expect"))
            .map(|h| h.value.as_str())
        {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("100-continue") => version >= HTTPVersion(1, 1),
            _ => return Err(RequestCreationError::ExpectationFailed),
        }
    };

    // true if the client sent a `Connection: upgrade` header
    let connection_upgrade = {
        match headers
            .iter()
            .find(|h: &&Header| h.field.equiv("Connection"))
            .map(|h| h.value.as_str())
        {
            Some(v) if v.to_ascii_lowercase().contains("upgrade") => true,
            _ => false,
        }
    };

    let body_finished = Arc::new(AtomicBool::new(false));
    let mut held_source: Option<Box<dyn Read + Send + 'static>> = None;
    let mut must_send_continue = false;
    let send_continue_now = |writer: &mut W| -> io::Result<()> {
        if expects_continue {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            writer.flush()?;
        }
        Ok(())
    };
    let body_length = match framing {
        BodyFraming::Length(length) => Some(usize::try_from(length).unwrap_or(usize::MAX)),
        _ => None,
    };

    // we wrap `source_data` around a reading whose nature depends on the transfer-encoding and
    // content-length headers
    // sessiond patch: upstream made the whole rest of the stream the body
    // of a `Connection: upgrade` request, so a handler reading it waited on
    // the client until the deadline and read the next requests as its body.
    // The body is framed like any other; the raw stream is kept for
    // `upgrade` (without a body only), and nothing more is read from the
    // connection (`close_after`).
    let reader = if connection_upgrade && framing == BodyFraming::Empty {
        body_finished.store(true, Ordering::Release);
        held_source = Some(Box::new(source_data));
        Box::new(io::empty()) as Box<dyn Read + Send + 'static>
    } else {
        match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => {
                body_finished.store(true, Ordering::Release);
                Box::new(io::empty()) as Box<dyn Read + Send + 'static>
            }
            BodyFraming::Length(length) if length <= max_buffered_body as u64 => {
                // the body is small enough: read it into a buffer now
                send_continue_now(&mut writer)?;
                let mut source_data = DeadlineReader { inner: source_data, deadline };
                let mut buffer = vec![0; length as usize];
                let mut offset = 0;
                while offset != buffer.len() {
                    let read = source_data.read(&mut buffer[offset..])?;
                    if read == 0 {
                        // the socket returned EOF, but we were before the expected content-length
                        // aborting
                        let info = "Connection has been closed before we received enough data";
                        let err = IoError::new(ErrorKind::ConnectionAborted, info);
                        return Err(RequestCreationError::CreationIoError(err));
                    }
                    offset += read;
                }
                body_finished.store(true, Ordering::Release);
                Box::new(Cursor::new(buffer)) as Box<dyn Read + Send + 'static>
            }
            BodyFraming::Length(length) => {
                must_send_continue = expects_continue;
                let length = usize::try_from(length).unwrap_or(usize::MAX);
                let (data_reader, _) = EqualReader::new(source_data, length);
                let tracked = Tracked { inner: data_reader, finished: Arc::clone(&body_finished) };
                Box::new(FusedReader::new(tracked)) as Box<dyn Read + Send + 'static>
            }
            BodyFraming::Chunked if max_buffered_body > 1024 => {
                // decode the chunked body here, within the deadline,
                // keeping at most one byte more than the limit
                send_continue_now(&mut writer)?;
                let mut decoder = ChunkedDecoder::new(DeadlineReader { inner: source_data, deadline });
                let mut buffer = Vec::new();
                (&mut decoder).take(max_buffered_body as u64 + 1).read_to_end(&mut buffer)?;
                if decoder.finished() {
                    body_finished.store(true, Ordering::Release);
                } else {
                    // Too long: the rest stays unread, so the connection
                    // must not read on; the request keeps the socket until
                    // it is answered, and the answer closes.
                    held_source = Some(Box::new(decoder));
                }
                Box::new(Cursor::new(buffer)) as Box<dyn Read + Send + 'static>
            }
            BodyFraming::Chunked => {
                must_send_continue = expects_continue;
                let decoder = ChunkedDecoder::new(source_data);
                let tracked = Tracked { inner: decoder, finished: Arc::clone(&body_finished) };
                Box::new(FusedReader::new(tracked)) as Box<dyn Read + Send + 'static>
            }
        }
    };

    if let Some(slot) = &slot {
        slot.request_handed_out();
    }
    Ok(Request {
        data_reader: Some(reader),
        response_writer: Some(Box::new(writer) as Box<dyn Write + Send + 'static>),
        remote_addr,
        secure,
        method,
        path,
        http_version: version,
        headers,
        body_length,
        must_send_continue,
        notify_when_responded: None,
        held_source,
        body_finished,
        close_after,
        in_flight: slot.map(InFlight),
    })
}

/// A reader that notes when its body has been read to the end (a sessiond
/// patch): an answer written before that closes the connection, since the
/// rest of the body would otherwise be read as the next request.
struct Tracked<R> {
    inner: R,
    finished: Arc<AtomicBool>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        if read == 0 && !buf.is_empty() {
            self.finished.store(true, Ordering::Release);
        }
        Ok(read)
    }
}

/// Tells the connection's slot, when the request goes, that its answer is
/// no longer owed (a sessiond patch).
struct InFlight(Arc<Slot>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.answered();
    }
}

/// A reader that fails with `TimedOut` once its deadline has passed (a
/// sessiond patch): with a socket read timeout, each read blocks at most that
/// long, so a client trickling its body is cut off soon after the deadline.
struct DeadlineReader<R> {
    inner: R,
    deadline: Option<Instant>,
}

impl<R: Read> Read for DeadlineReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.deadline.is_some_and(|deadline| Instant::now() > deadline) {
            return Err(IoError::new(ErrorKind::TimedOut, "request not received in time"));
        }
        self.inner.read(buf)
    }
}

impl Request {
    /// Returns true if the request was made through HTTPS.
    #[inline]
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Returns the method requested by the client (eg. `GET`, `POST`, etc.).
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Returns the resource requested by the client.
    #[inline]
    pub fn url(&self) -> &str {
        &self.path
    }

    /// Returns a list of all headers sent by the client.
    #[inline]
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Moves the headers out of the request (sessiond patch), for a caller
    /// that keeps them itself: nothing is copied. What tiny_http would
    /// still read from them, a `TE` asking for a transfer coding, is then
    /// gone, and responses are framed as for a request without one.
    pub fn take_headers(&mut self) -> Vec<Header> {
        std::mem::take(&mut self.headers)
    }

    /// Returns the HTTP version of the request.
    #[inline]
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// Returns the length of the body in bytes.
    ///
    /// Returns `None` if the length is unknown.
    #[inline]
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// Returns the address of the client that sent this request.
    ///
    /// The address is always `Some` for TCP listeners, but always `None` for UNIX listeners
    /// (as the remote address of a UNIX client is almost always unnamed).
    ///
    /// Note that this is gathered from the socket. If you receive the request from a proxy,
    /// this function will return the address of the proxy and not the address of the actual
    /// user.
    #[inline]
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        self.remote_addr.as_ref()
    }

    /// Sends a response with a `Connection: upgrade` header, then turns the `Request` into a `Stream`.
    ///
    /// The main purpose of this function is to support websockets.
    /// If you detect that the request wants to use some kind of protocol upgrade, you can
    ///  call this function to obtain full control of the socket stream.
    ///
    /// If you call this on a non-websocket request, tiny-http will wait until this `Stream` object
    ///  is destroyed before continuing to read or write on the socket. Therefore you should always
    ///  destroy it as soon as possible.
    pub fn upgrade<R: Read>(
        mut self,
        protocol: &str,
        response: Response<R>,
    ) -> Box<dyn ReadWrite + Send> {
        use crate::util::CustomStream;

        // sessiond patch: after the stream is handed over, nothing more is
        // read as HTTP from it.
        if let Some(InFlight(slot)) = &self.in_flight {
            slot.close_after_answer();
        }

        response
            .raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                &self.headers,
                false,
                Some(protocol),
            )
            .ok(); // TODO: unused result

        self.response_writer.as_mut().unwrap().flush().ok(); // TODO: unused result

        // sessiond patch: the raw stream, kept aside for this (see
        // `new_request`), else the body.
        let reader = match self.held_source.take() {
            Some(raw) => raw,
            None => self.extract_reader_impl(),
        };
        let stream = CustomStream::new(reader, self.extract_writer_impl());
        if let Some(sender) = self.notify_when_responded.take() {
            let stream = NotifyOnDrop {
                sender,
                inner: stream,
            };
            Box::new(stream) as Box<dyn ReadWrite + Send>
        } else {
            Box::new(stream) as Box<dyn ReadWrite + Send>
        }
    }

    /// Allows to read the body of the request.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # extern crate rustc_serialize;
    /// # extern crate tiny_http;
    /// # use rustc_serialize::json::Json;
    /// # use std::io::Read;
    /// # fn get_content_type(_: &tiny_http::Request) -> &'static str { "" }
    /// # fn main() {
    /// # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
    /// let mut request = server.recv().unwrap();
    ///
    /// if get_content_type(&request) == "application/json" {
    ///     let mut content = String::new();
    ///     request.as_reader().read_to_string(&mut content).unwrap();
    ///     let json: Json = content.parse().unwrap();
    /// }
    /// # }
    /// ```
    ///
    /// If the client sent a `Expect: 100-continue` header with the request, calling this
    ///  function will send back a `100 Continue` response.
    #[inline]
    pub fn as_reader(&mut self) -> &mut dyn Read {
        if self.must_send_continue {
            let msg = Response::new_empty(StatusCode(100));
            msg.raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                &self.headers,
                true,
                None,
            )
            .ok();
            self.response_writer.as_mut().unwrap().flush().ok();
            self.must_send_continue = false;
        }

        self.data_reader.as_mut().unwrap()
    }

    /// Turns the `Request` into a writer.
    ///
    /// The writer has a raw access to the stream to the user.
    /// This function is useful for things like CGI.
    ///
    /// Note that the destruction of the `Writer` object may trigger
    /// some events. For exemple if a client has sent multiple requests and the requests
    /// have been processed in parallel, the destruction of a writer will trigger
    /// the writing of the next response.
    /// Therefore you should always destroy the `Writer` as soon as possible.
    #[inline]
    pub fn into_writer(mut self) -> Box<dyn Write + Send + 'static> {
        // sessiond patch: whatever is written, its framing is not ours to
        // know, so nothing more is read from the connection.
        if let Some(InFlight(slot)) = &self.in_flight {
            slot.close_after_answer();
        }
        let writer = self.extract_writer_impl();
        if let Some(sender) = self.notify_when_responded.take() {
            let writer = NotifyOnDrop {
                sender,
                inner: writer,
            };
            Box::new(writer) as Box<dyn Write + Send + 'static>
        } else {
            writer
        }
    }

    /// Extract the response `Writer` object from the Request, dropping this `Writer` has the same side effects
    /// as the object returned by `into_writer` above.
    ///
    /// This may only be called once on a single request.
    fn extract_writer_impl(&mut self) -> Box<dyn Write + Send + 'static> {
        use std::mem;

        assert!(self.response_writer.is_some());

        let mut writer = None;
        mem::swap(&mut self.response_writer, &mut writer);
        writer.unwrap()
    }

    /// Extract the body `Reader` object from the Request.
    ///
    /// This may only be called once on a single request.
    fn extract_reader_impl(&mut self) -> Box<dyn Read + Send + 'static> {
        use std::mem;

        assert!(self.data_reader.is_some());

        let mut reader = None;
        mem::swap(&mut self.data_reader, &mut reader);
        reader.unwrap()
    }

    /// Sends a response to this request.
    #[inline]
    pub fn respond<R>(mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let res = self.respond_impl(response);
        if let Some(sender) = self.notify_when_responded.take() {
            sender.send(()).unwrap();
        }
        res
    }

    fn respond_impl<R>(&mut self, mut response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        // sessiond patch: keep the connection only when its next request
        // can start right after this one: the body read to its end, and
        // neither side asking to close. Otherwise the answer says so, and
        // the connection reads nothing more.
        if self.close_after
            || !self.body_finished.load(Ordering::Acquire)
            || response.close_requested()
        {
            if let Some(InFlight(slot)) = &self.in_flight {
                slot.close_after_answer();
            }
            response.close_connection();
        }
        let mut writer = self.extract_writer_impl();

        let do_not_send_body = self.method == Method::Head;

        let written = response
            .raw_print(
                writer.by_ref(),
                self.http_version.clone(),
                &self.headers,
                do_not_send_body,
                None,
            )
            .and_then(|()| writer.flush());
        // sessiond patch: an answer that could not be written (the client
        // stopped reading for a whole write timeout, or went away) ends the
        // connection at once, so the answers queued behind it fail at once
        // instead of each holding a worker for another write timeout.
        if written.is_err() {
            if let Some(InFlight(slot)) = &self.in_flight {
                slot.abort();
            }
        }
        Self::ignore_client_closing_errors(written)
    }

    fn ignore_client_closing_errors(result: io::Result<()>) -> io::Result<()> {
        result.or_else(|err| match err.kind() {
            ErrorKind::BrokenPipe => Ok(()),
            ErrorKind::ConnectionAborted => Ok(()),
            ErrorKind::ConnectionRefused => Ok(()),
            ErrorKind::ConnectionReset => Ok(()),
            _ => Err(err),
        })
    }

    pub(crate) fn with_notify_sender(mut self, sender: Sender<()>) -> Self {
        self.notify_when_responded = Some(sender);
        self
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method, self.path, self.remote_addr
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.response_writer.is_some() {
            let response = Response::empty(500);
            let _ = self.respond_impl(response); // ignoring any potential error
            if let Some(sender) = self.notify_when_responded.take() {
                sender.send(()).unwrap();
            }
        }
    }
}

/// Dummy trait that regroups the `Read` and `Write` traits.
///
/// Automatically implemented on all types that implement both `Read` and `Write`.
pub trait ReadWrite: Read + Write {}
impl<T> ReadWrite for T where T: Read + Write {}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn must_be_send() {
        #![allow(dead_code)]
        fn f<T: Send>(_: &T) {}
        fn bar(rq: &Request) {
            f(rq);
        }
    }
}

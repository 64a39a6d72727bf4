//! The HTTP server: tiny_http's listener shared by a pool of worker threads,
//! each with its own SQLite connection.
//!
//! Invariant: this is the only file that knows tiny_http. It turns a tiny_http
//! request into a bounded [`Request`] (1 MiB body, 16 KiB and 100 lines of
//! headers), hands it to the router, and writes the [`Reply`] back. Workers
//! poll a shared shutdown flag, so a stop finishes the requests in flight and
//! then returns.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use rusqlite::Connection;

use crate::app::App;
use crate::http::reply::{HttpError, Reply};
use crate::http::request::{Method, Request};
use crate::http::router;

pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
pub const MAX_HEADER_LINES: usize = 100;

/// What a worker thread owns: the shared app and its own connection.
pub struct Worker {
    pub app: Arc<App>,
    pub conn: Connection,
}

/// The listening server and its workers.
pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    workers: Vec<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `bind` and starts `worker_count` workers.
    pub fn start(
        app: Arc<App>,
        bind: SocketAddr,
        worker_count: usize,
    ) -> anyhow::Result<HttpServer> {
        let server = tiny_http::Server::http(bind)
            .map_err(|error| anyhow::anyhow!("failed to listen on `{bind}`: {error}"))?;
        let addr = match server.server_addr() {
            tiny_http::ListenAddr::IP(addr) => addr,
            other => anyhow::bail!("unexpected listen address `{other}`"),
        };
        let server = Arc::new(server);
        let mut workers = Vec::with_capacity(worker_count);
        for number in 0..worker_count {
            let conn = crate::db::connect(&app.settings.db)?;
            let worker = Worker { app: Arc::clone(&app), conn };
            let server = Arc::clone(&server);
            let handle = std::thread::Builder::new()
                .name(format!("http-worker-{number}"))
                .spawn(move || serve_requests(&server, &worker))
                .context("failed to start a worker thread")?;
            workers.push(handle);
        }
        Ok(HttpServer { server, addr, workers })
    }

    /// The address actually bound (with the real port for `:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the workers, which stop once the app's shutdown flag is set
    /// and their request in flight is answered; then stops listening.
    pub fn join(self) {
        for worker in self.workers {
            let _ = worker.join();
        }
        self.server.unblock();
    }
}

fn serve_requests(server: &tiny_http::Server, worker: &Worker) {
    while !worker.app.shutdown.load(Ordering::SeqCst) {
        match server.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(request)) => answer(worker, request),
            Ok(None) => {}
            Err(error) => {
                eprintln!("error: failed to receive a request: {error}");
                break;
            }
        }
    }
}

fn answer(worker: &Worker, mut raw: tiny_http::Request) {
    let (reply, close) = match read_request(&mut raw) {
        Ok(request) => (route_catching_panics(worker, &request), false),
        // The rest of an oversized request is not read: close the connection.
        Err(error) => (error.into_reply(false), true),
    };
    let mut response = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    for (name, value) in &reply.headers {
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    if close {
        response.add_header(
            tiny_http::Header::from_bytes(&b"Connection"[..], &b"close"[..]).expect("valid header"),
        );
    }
    // A client that went away is not an error of ours.
    let _ = raw.respond(response);
}

/// Routes a request; a panic in a handler is a bug, but it must cost one
/// logged 500, not the worker thread.
fn route_catching_panics(worker: &Worker, request: &Request) -> Reply {
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| router::route(worker, request)));
    outcome.unwrap_or_else(|_| {
        HttpError::Internal(anyhow::anyhow!("a handler panicked on `{}`", request.path))
            .into_reply(request.path.starts_with("/api/") || request.path == "/graphql")
    })
}

/// Copies what the handlers need out of tiny_http's request, enforcing the
/// size limits.
fn read_request(raw: &mut tiny_http::Request) -> Result<Request, HttpError> {
    let header_lines = raw.headers().len();
    let header_bytes: usize = raw
        .headers()
        .iter()
        .map(|header| header.field.as_str().as_str().len() + header.value.as_str().len() + 4)
        .sum();
    if header_lines > MAX_HEADER_LINES || header_bytes > MAX_HEADER_BYTES {
        return Err(HttpError::HeadersTooLarge);
    }
    if raw.body_length().is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(HttpError::PayloadTooLarge);
    }
    let method = match raw.method() {
        tiny_http::Method::Get => Method::Get,
        tiny_http::Method::Head => Method::Head,
        tiny_http::Method::Post => Method::Post,
        _ => Method::Other,
    };
    let mut request = Request::new(method, raw.url());
    request.headers = raw
        .headers()
        .iter()
        .map(|header| {
            (header.field.as_str().as_str().to_ascii_lowercase(), header.value.as_str().to_owned())
        })
        .collect();
    request.peer_addr = raw.remote_addr().map(|addr| addr.ip());
    if method == Method::Post {
        let mut body = Vec::new();
        raw.as_reader()
            .take(MAX_BODY_BYTES as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|error| HttpError::BadRequest(format!("failed to read the body: {error}")))?;
        if body.len() > MAX_BODY_BYTES {
            return Err(HttpError::PayloadTooLarge);
        }
        request.body = body;
    }
    Ok(request)
}

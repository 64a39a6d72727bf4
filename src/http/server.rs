//! The HTTP server: tiny_http's listener, whose connection threads answer
//! their own requests with a worker (its own database connection and
//! records) taken from a pool for the length of one request.
//!
//! Invariant: this is the only file that knows tiny_http. It turns a tiny_http
//! request into a bounded [`Request`] (1 MiB body, 16 KiB and 100 lines of
//! headers), hands it to the router, and writes the [`Reply`] back.
//!
//! A request is answered on the thread that read it (tiny_http's
//! `from_listener_with_handler`, a sessiond patch): handing each request to
//! a worker thread and its answer back cost two thread switches a request,
//! about a third of what a request cost in all (README, Performance). The
//! body is read before a worker is taken, so a slow upload holds a thread
//! but no database connection; the worker is given back before the answer
//! is written. A stop closes the pool once the requests in flight are
//! answered; a request read after that is answered 503 and its connection
//! closed.
//!
//! A second, optional listener ([`MetricsServer`], `SESSIOND_METRICS_BIND`)
//! answers only `GET /metrics` on one thread with its own connection; the
//! main listener never serves it. Each worker owns its records of the
//! requests it answers (`router::WorkerRecords`: counts, access log), which
//! the router writes once per request, refusals made before routing (413,
//! 431) too.
//!
//! The limits that must hold before a request exists (timeouts on every
//! socket, the header limits while the head is read, a cap on open
//! connections, bodies read within a deadline) are enforced by the patched
//! tiny_http in `vendor/tiny_http`, configured here through
//! `tiny_http::Limits`; SECURITY.md explains why.
//!
//! Requests that hash a password (`POST /login`, and `POST /graphql` whose
//! body may hold a `login` mutation) take no worker: their connection's
//! thread hands them to the login queue and waits for the answer, and one
//! login thread per hash slot (`password_hash::slots`) answers them in
//! order. A flood of logins therefore queues behind itself, never in front
//! of signed-in requests, and holds no more hash memory than the pool. The
//! queue holds at most [`LOGIN_QUEUE_CAPACITY`] logins; one more, or one
//! that waited [`LOGIN_QUEUE_WAIT`] without a thread taking it, gets 503
//! with `Retry-After` and is not attempted (nothing counted, nothing
//! stored).

use std::collections::VecDeque;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::db::Conn;
use anyhow::Context;

use crate::app::App;
use crate::http::access_log::{self, AccessLog, Buffering};
use crate::http::reply::{HttpError, Reply};
use crate::http::request::{Method, Request};
use crate::http::router;

pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
pub const MAX_HEADER_LINES: usize = 100;
/// The longest request line (method, URL, version); longer gets 414.
pub const MAX_REQUEST_LINE_BYTES: usize = 8 * 1024;
/// Connections open at once (each holds a thread while open); one more makes
/// room (see `EVICTION_GRACE`) or is answered 503 and closed, so that slow
/// clients cannot exhaust threads or file descriptors.
pub const MAX_CONNECTIONS: usize = 256;
/// At the cap, a connection idle this long (or reading one request head this
/// long) gives way to a newcomer; a client holding two connections more than
/// the newcomer's gives way at once. Short enough that a flood of idle or
/// trickling connections cannot keep anyone out, long enough that evicted
/// connections reopened in a loop cannot churn each other out faster than
/// a few hundred a second.
pub const EVICTION_GRACE: Duration = Duration::from_secs(1);

/// How long a login may wait in the login queue for a thread (and so for a
/// hash slot): a user behind a flood still gets an answer they can act on,
/// 503 with `Retry-After`, instead of a hung form.
pub const LOGIN_QUEUE_WAIT: Duration = Duration::from_secs(10);
/// The most logins waiting at once: one per open connection.
pub const LOGIN_QUEUE_CAPACITY: usize = MAX_CONNECTIONS;
/// `Retry-After` on a login refused because the queue was full or slow.
const LOGIN_RETRY_AFTER_SECONDS: u64 = 5;

/// A worker, used by one thread at a time (taken from the pool for one
/// request, or a login thread's own): the shared app, its own connection,
/// and its own records of the requests it answers (counts and access log).
pub struct Worker {
    pub app: Arc<App>,
    pub conn: Conn,
    pub records: router::WorkerRecords,
}

/// The listening server and its workers.
pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    workers: Arc<WorkerPool<Worker>>,
    log_flusher: Option<JoinHandle<()>>,
    logins: Arc<LoginQueue>,
    login_threads: Vec<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `bind` and makes `worker_count` workers, each writing its
    /// access log lines (when the setting is on) to `access_log`.
    pub fn start(
        app: Arc<App>,
        bind: SocketAddr,
        worker_count: usize,
        access_log: &access_log::Destination,
    ) -> anyhow::Result<HttpServer> {
        let per_client = app.settings.max_connections_per_client;
        let logins = Arc::new(LoginQueue::default());
        let mut login_threads = Vec::new();
        for number in 0..crate::password_hash::slots() {
            let worker = Worker::new(&app, access_log, Buffering::LineByLine)?;
            let logins = Arc::clone(&logins);
            let handle = std::thread::Builder::new()
                .name(format!("http-login-{number}"))
                .spawn(move || {
                    lower_login_thread_priority();
                    serve_logins(&logins, &worker)
                })
                .context("failed to start a login thread")?;
            login_threads.push(handle);
        }
        let mut idle = Vec::with_capacity(worker_count);
        for _ in 0..worker_count {
            idle.push(Worker::new(&app, access_log, Buffering::Buffered)?);
        }
        let workers = Arc::new(WorkerPool::new(idle));
        let handler: tiny_http::Handler = {
            let (app, workers, logins) =
                (Arc::clone(&app), Arc::clone(&workers), Arc::clone(&logins));
            Arc::new(move |raw| answer(&app, &workers, &logins, raw))
        };
        let (server, addr) = listen(&app, bind, MAX_CONNECTIONS, per_client, Some(handler))?;
        let log_flusher = if app.settings.access_log {
            let workers = Arc::clone(&workers);
            let handle = std::thread::Builder::new()
                .name(String::from("http-log-flush"))
                .spawn(move || flush_idle_logs(&workers))
                .context("failed to start the access log's flushing thread")?;
            Some(handle)
        } else {
            None
        };
        Ok(HttpServer { server, addr, workers, log_flusher, logins, login_threads })
    }

    /// The address actually bound (with the real port for `:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the requests in flight to be answered and closes the
    /// workers (a request read after this is answered 503 and its
    /// connection closed); the login threads then answer what is left in
    /// the login queue. Then stops listening.
    pub fn join(self) {
        // Dropped here: each flushes its access log and closes its
        // database connection.
        drop(self.workers.close_when_idle());
        if let Some(flusher) = self.log_flusher {
            let _ = flusher.join();
        }
        self.logins.close();
        for thread in self.login_threads {
            let _ = thread.join();
        }
        drop(self.server);
    }
}

impl Worker {
    fn new(
        app: &Arc<App>,
        access_log: &access_log::Destination,
        buffering: Buffering,
    ) -> anyhow::Result<Worker> {
        let conn = crate::db::connect(&app.settings.db)?;
        let access_log = AccessLog::new(app.settings.access_log, access_log, buffering)
            .context("failed to open the access log on stderr")?;
        let records = router::WorkerRecords { metrics: app.metrics.worker_recorder(), access_log };
        Ok(Worker { app: Arc::clone(app), conn, records })
    }
}

/// The workers not answering a request at this moment. A connection's
/// thread takes one for each request it has read and gives it back before
/// writing the answer: the request never changes threads, and the number of
/// workers still bounds the requests that use the database at once. When
/// all are out, takers wait in turn: a worker given back goes to the one
/// that has waited longest (with more connections than workers, a taker
/// that could be overtaken by newcomers waited hundreds of milliseconds).
/// Generic so that its tests need no app.
struct WorkerPool<T> {
    state: Mutex<PoolState<T>>,
    /// Signalled when a worker comes back to `idle`, for the stop.
    all_back: Condvar,
}

struct PoolState<T> {
    idle: Vec<T>,
    /// Takers waiting, oldest first: each with its ticket and a condvar of
    /// its own, so that a worker given back wakes only the one it is for.
    /// Never non-empty while `idle` is not.
    waiting: VecDeque<(u64, Arc<Condvar>)>,
    /// Workers handed to a waiting taker that has not woken yet, by ticket.
    handed: Vec<(u64, T)>,
    next_ticket: u64,
    /// How many workers the pool has; all are back when `idle` holds them.
    total: usize,
    /// Set by [`WorkerPool::close_when_idle`]: nothing is handed out again.
    closed: bool,
}

impl<T> WorkerPool<T> {
    fn new(idle: Vec<T>) -> WorkerPool<T> {
        let state = PoolState {
            total: idle.len(),
            idle,
            waiting: VecDeque::new(),
            handed: Vec::new(),
            next_ticket: 0,
            closed: false,
        };
        WorkerPool { state: Mutex::new(state), all_back: Condvar::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState<T>> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A worker, once one is free and every taker before has had one,
    /// given back when the [`Lent`] is dropped; `None` once the pool is
    /// closed.
    fn take(&self) -> Option<Lent<'_, T>> {
        let worker = self.take_worker()?;
        Some(Lent { pool: self, worker: Some(worker) })
    }

    fn take_worker(&self) -> Option<T> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        if let Some(worker) = state.idle.pop() {
            return Some(worker);
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        let turn = Arc::new(Condvar::new());
        state.waiting.push_back((ticket, Arc::clone(&turn)));
        loop {
            if let Some(at) = state.handed.iter().position(|(handed, _)| *handed == ticket) {
                return Some(state.handed.swap_remove(at).1);
            }
            if state.closed {
                state.waiting.retain(|(waiting, _)| *waiting != ticket);
                return None;
            }
            state = turn.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn give_back(&self, worker: T) {
        let mut state = self.lock();
        if let Some((ticket, turn)) = state.waiting.pop_front() {
            // It goes straight to the next request.
            state.handed.push((ticket, worker));
            turn.notify_one();
            return;
        }
        state.idle.push(worker);
        // Only a stop waits for `all_back`, and only once the pool is
        // closed; a wake-up nobody waits for is still a system call.
        let stopping = state.closed;
        drop(state);
        if stopping {
            self.all_back.notify_all();
        }
    }

    /// The idle workers for which `wanted` holds, taken (to be given back);
    /// none once the pool is closed.
    fn take_idle_where(&self, wanted: impl Fn(&T) -> bool) -> Vec<T> {
        let mut state = self.lock();
        if state.closed {
            return Vec::new();
        }
        let (taken, idle) = std::mem::take(&mut state.idle).into_iter().partition(|w| wanted(w));
        state.idle = idle;
        taken
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Closes the pool (the takers still waiting get `None`), waits until
    /// every worker is back and hands them all over.
    fn close_when_idle(&self) -> Vec<T> {
        let mut state = self.lock();
        state.closed = true;
        for (_, turn) in &state.waiting {
            turn.notify_one();
        }
        while state.idle.len() < state.total {
            state = self.all_back.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        std::mem::take(&mut state.idle)
    }
}

/// A worker taken from a [`WorkerPool`], given back when dropped, a panic
/// on the way included: the pool never loses one.
struct Lent<'p, T> {
    pool: &'p WorkerPool<T>,
    worker: Option<T>,
}

impl<T> std::ops::Deref for Lent<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.worker.as_ref().expect("lent until dropped")
    }
}

impl<T> Drop for Lent<'_, T> {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.pool.give_back(worker);
        }
    }
}

/// Every [`access_log::FLUSH_AFTER`], writes the lines that idle workers
/// keep (a busy worker writes its own as it logs), until the pool closes.
fn flush_idle_logs(workers: &WorkerPool<Worker>) {
    while !workers.is_closed() {
        std::thread::sleep(access_log::FLUSH_AFTER);
        // Taken out to be written, so that a slow log holds up no taker.
        for worker in workers.take_idle_where(|worker| worker.records.access_log.has_pending()) {
            worker.records.access_log.flush();
            workers.give_back(worker);
        }
    }
}

/// Binds `bind` as a tiny_http server with sessiond's request limits and at
/// most `max_connections` open (`per_client` from one address); returns it
/// with the address actually bound (the real port for `:0`).
fn listen(
    app: &App,
    bind: SocketAddr,
    max_connections: usize,
    per_client: usize,
    handler: Option<tiny_http::Handler>,
) -> anyhow::Result<(Arc<tiny_http::Server>, SocketAddr)> {
    let listener =
        TcpListener::bind(bind).with_context(|| format!("failed to listen on `{bind}`"))?;
    let timeout = request_timeout(app);
    let limits = tiny_http::Limits {
        read_timeout: Some(timeout),
        write_timeout: Some(timeout),
        head_timeout: Some(timeout),
        max_request_line_bytes: MAX_REQUEST_LINE_BYTES,
        max_header_bytes: MAX_HEADER_BYTES,
        max_header_lines: MAX_HEADER_LINES,
        max_connections,
        max_connections_per_client: per_client,
        eviction_grace: EVICTION_GRACE,
        max_buffered_body: MAX_BODY_BYTES,
    };
    let server = match handler {
        Some(handler) => tiny_http::Server::from_listener_with_handler(listener, limits, handler),
        None => tiny_http::Server::from_listener_with_limits(listener, None, limits),
    }
    .map_err(|error| anyhow::anyhow!("failed to listen on `{bind}`: {error}"))?;
    let addr = match server.server_addr() {
        tiny_http::ListenAddr::IP(addr) => addr,
        other => anyhow::bail!("unexpected listen address `{other}`"),
    };
    Ok((Arc::new(server), addr))
}

/// Connections the metrics listener keeps open at once.
const METRICS_MAX_CONNECTIONS: usize = 16;

/// The metrics listener: one thread answering `GET /metrics` with the
/// exposition, and 404 to anything else. Its requests are neither counted
/// nor logged: they are not sessiond's traffic.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `bind` and starts the thread, which stops with the app's
    /// shutdown flag.
    pub fn start(app: Arc<App>, bind: SocketAddr) -> anyhow::Result<MetricsServer> {
        // The main listener's limits, with fewer connections: one thread
        // answers them, and Prometheus needs one.
        let (server, addr) =
            listen(&app, bind, METRICS_MAX_CONNECTIONS, METRICS_MAX_CONNECTIONS, None)?;
        let conn = crate::db::connect(&app.settings.db)?;
        let thread = {
            let server = Arc::clone(&server);
            std::thread::Builder::new()
                .name(String::from("metrics"))
                .spawn(move || serve_metrics(&server, &app, &conn))
                .context("failed to start the metrics thread")?
        };
        Ok(MetricsServer { server, addr, thread })
    }

    /// The address actually bound (with the real port for `:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the thread, which stops once the shutdown flag is set.
    pub fn join(self) {
        let _ = self.thread.join();
        self.server.unblock();
    }
}

fn serve_metrics(server: &tiny_http::Server, app: &App, conn: &Conn) {
    let mut listener = router::MetricsListener::default();
    while !app.shutdown.load(Ordering::SeqCst) {
        listener.between_requests(app, conn);
        let raw = match server.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(raw)) => raw,
            Ok(None) => continue,
            Err(error) => {
                eprintln!("error: the metrics listener failed to receive a request: {error}");
                break;
            }
        };
        let request = Request::new(method_of(&raw), raw.url());
        let reply = listener.answer(app, conn, &request);
        respond(raw, reply, false);
    }
}

/// Answers one request on the thread of the connection that read it: its
/// body is read first, without a worker, so a client slow to send one holds
/// no database connection; a login goes to the login queue.
fn answer(
    app: &App,
    workers: &WorkerPool<Worker>,
    logins: &LoginQueue,
    mut raw: tiny_http::Request,
) {
    let received = Instant::now();
    let request = match read_request(app, &mut raw) {
        Ok(request) if hashes_a_password(&request) => {
            return queue_login(
                app,
                workers,
                logins,
                QueuedLogin { raw, request, since: received },
            );
        }
        read => read,
    };
    let Some(worker) = workers.take() else { return stopping(raw) };
    let (reply, close) = match request {
        Ok(request) => {
            (router::route(app, &worker.conn, &request, &worker.records, received), false)
        }
        // The rest of an oversized request is not read: close the connection.
        Err(error) => {
            // Only the request line and the peer are known to be sound.
            let mut request = Request::new(method_of(&raw), raw.url());
            request.peer_addr = raw.remote_addr().map(|addr| addr.ip());
            (router::refuse_unread(app, &request, error, &worker.records, received), true)
        }
    };
    // Given back before the answer is written: a client slow to read it
    // holds no worker.
    drop(worker);
    respond(raw, reply, close);
}

/// Hands a login to the login queue; one it cannot take (full, or closed
/// by a stop) is answered 503 here.
fn queue_login(app: &App, workers: &WorkerPool<Worker>, logins: &LoginQueue, login: QueuedLogin) {
    let Some(refused) = logins.push(login) else { return };
    let Some(worker) = workers.take() else { return stopping(refused.raw) };
    let busy = logins_busy(&refused.request);
    let reply =
        router::refuse_unrouted(app, &refused.request, busy, &worker.records, refused.since);
    drop(worker);
    respond(refused.raw, reply, false);
}

/// The answer to a request read while the server stops.
fn stopping(raw: tiny_http::Request) {
    let reply = Reply::new(503, "text/plain; charset=utf-8", "service unavailable: stopping");
    respond(raw, reply, true);
}

/// True for the requests that check a password: the sign-in form, and a
/// GraphQL body that may hold a `login` mutation. A field name has no
/// escapes in GraphQL, so a body that holds one has `login` in its JSON,
/// literally or with a `\u` escape in it; other GraphQL requests (whoami,
/// logout) stay on the workers.
fn hashes_a_password(request: &Request) -> bool {
    let contains = |needle: &[u8]| request.body.windows(needle.len()).any(|part| part == needle);
    request.method == Method::Post
        && (request.path == "/login"
            || (request.path == "/graphql" && (contains(b"login") || contains(b"\\u"))))
}

/// The answer to a login that the queue could not take or did not reach in
/// time.
fn logins_busy(request: &Request) -> Reply {
    let message = "service unavailable: too many sign-ins at once; try again in a few seconds";
    let reply = if request.is_api() {
        Reply::json(503, &serde_json::json!({ "message": message }))
    } else {
        Reply::new(503, "text/plain; charset=utf-8", message)
    };
    reply
        .with_header("Retry-After", LOGIN_RETRY_AFTER_SECONDS.to_string())
        .with_header("Cache-Control", "private, no-store")
}

/// How far the login threads' nice value sits above the rest of the
/// process (the connection threads that answer signed-in requests), so
/// that a hash (tens of milliseconds of CPU) gives the core up as soon as
/// one of them has a request to answer, and a flood of logins cannot hold
/// signed-in requests behind its hashes. Under Linux's scheduler a thread
/// ten nice levels down still gets about a tenth of a core that the others
/// keep busy, so logins slow down under load but never stop.
pub const LOGIN_THREAD_NICE_OFFSET: i32 = 10;

/// Raises this thread's nice value by [`LOGIN_THREAD_NICE_OFFSET`] (to at
/// most 19; Linux's nice is per thread, and raising one's own needs no
/// privilege). Where that fails anyway, logins keep the priority of the
/// rest of the process, which is how they ran before.
fn lower_login_thread_priority() {
    let thread = rustix::thread::gettid();
    let lowered = rustix::process::getpriority_process(Some(thread)).and_then(|nice| {
        rustix::process::setpriority_process(
            Some(thread),
            (nice + LOGIN_THREAD_NICE_OFFSET).min(19),
        )
    });
    if let Err(error) = lowered {
        eprintln!("warning: could not lower the login threads' priority: {error}");
    }
}

/// Login threads: answer queued logins in order until the queue is closed
/// and empty.
fn serve_logins(logins: &LoginQueue, worker: &Worker) {
    while let Some(queued) = logins.pop() {
        let reply = if queued.since.elapsed() > LOGIN_QUEUE_WAIT {
            let busy = logins_busy(&queued.request);
            router::refuse_unrouted(
                &worker.app,
                &queued.request,
                busy,
                &worker.records,
                queued.since,
            )
        } else {
            router::route(&worker.app, &worker.conn, &queued.request, &worker.records, queued.since)
        };
        respond(queued.raw, reply, false);
    }
}

/// Logins waiting for a login thread, oldest first.
#[derive(Default)]
struct LoginQueue {
    state: Mutex<LoginQueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct LoginQueueState {
    queued: VecDeque<QueuedLogin>,
    closed: bool,
}

struct QueuedLogin {
    raw: tiny_http::Request,
    request: Request,
    since: Instant,
}

impl LoginQueue {
    /// Queues a login; gives it back when the queue is full or closed.
    #[must_use]
    fn push(&self, login: QueuedLogin) -> Option<QueuedLogin> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.closed || state.queued.len() >= LOGIN_QUEUE_CAPACITY {
            return Some(login);
        }
        state.queued.push_back(login);
        drop(state);
        self.ready.notify_one();
        None
    }

    /// The oldest login, waiting for one; `None` once closed and empty.
    fn pop(&self) -> Option<QueuedLogin> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if let Some(queued) = state.queued.pop_front() {
                return Some(queued);
            }
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).closed = true;
        self.ready.notify_all();
    }
}

/// Writes a reply to its tiny_http request.
fn respond(raw: tiny_http::Request, reply: Reply, close: bool) {
    let mut response = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    for (name, value) in &reply.headers {
        // A value that could not be sent as it is (a control byte, a byte
        // above 0x7E) is left out rather than sent changed, and said: it is
        // a fault of ours. The value is not logged (it may be a cookie).
        if response.add_header_text(name, value).is_err() {
            eprintln!(
                "error: the `{name}` header was left out of an answer: its value cannot be sent"
            );
        }
    }
    if close {
        let _ = response.add_header_text("Connection", "close");
    }
    // A client that went away is not an error of ours.
    let _ = raw.respond(response);
}

/// Copies what the handlers need out of tiny_http's request, enforcing the
/// size limits.
fn read_request(app: &App, raw: &mut tiny_http::Request) -> Result<Request, HttpError> {
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
    let method = method_of(raw);
    let mut request = Request::new(method, raw.url());
    // Moved, not copied: tiny_http needs nothing more from them.
    request.headers = raw
        .take_headers()
        .into_iter()
        .map(|header| {
            let mut name = String::from(header.field.into_inner());
            name.make_ascii_lowercase();
            (name, String::from(header.value))
        })
        .collect();
    request.peer_addr = raw.remote_addr().map(|addr| addr.ip());
    if method == Method::Post {
        let mut body = Vec::new();
        // Most bodies were read by the connection's thread already; one sent
        // with `Expect: 100-continue` is read here, within its own deadline.
        let deadline = Instant::now() + request_timeout(app);
        let reader = DeadlineReader { inner: raw.as_reader(), deadline };
        reader.take(MAX_BODY_BYTES as u64 + 1).read_to_end(&mut body).map_err(
            |error| match error.kind() {
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    HttpError::RequestTimeout
                }
                _ => HttpError::BadRequest(String::from("failed to read the body")),
            },
        )?;
        if body.len() > MAX_BODY_BYTES {
            return Err(HttpError::PayloadTooLarge);
        }
        request.body = body;
    }
    Ok(request)
}

fn method_of(raw: &tiny_http::Request) -> Method {
    match raw.method() {
        tiny_http::Method::Get => Method::Get,
        tiny_http::Method::Head => Method::Head,
        tiny_http::Method::Post => Method::Post,
        _ => Method::Other,
    }
}

/// How long a client has for a request's head, and again for its body.
fn request_timeout(app: &App) -> Duration {
    Duration::from_secs(u64::try_from(app.settings.request_timeout).unwrap_or(10))
}

/// A reader that fails with `TimedOut` once its deadline has passed; each
/// read blocks at most the socket's read timeout, so a client trickling its
/// body cannot hold a worker much past the deadline.
struct DeadlineReader<R> {
    inner: R,
    deadline: Instant,
}

impl<R: Read> Read for DeadlineReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if Instant::now() > self.deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "body not received in time",
            ));
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerPool;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_taker_waits_for_a_worker_given_back_and_none_is_handed_out_after_the_stop() {
        let pool = Arc::new(WorkerPool::new(vec![1, 2]));
        let (one, two) = (pool.take().unwrap(), pool.take().unwrap());
        let waiting = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || pool.take().map(|lent| *lent))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiting.is_finished(), "a third taker got a worker while both were out");
        let first = *one;
        drop(one);
        assert_eq!(waiting.join().unwrap(), Some(first));
        let stopping = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || pool.close_when_idle())
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!stopping.is_finished(), "the stop went on with a worker still out");
        assert!(pool.take().is_none(), "a worker was handed out during the stop");
        drop(two);
        let mut all = stopping.join().unwrap();
        all.sort();
        assert_eq!(all, [1, 2]);
        assert!(pool.take().is_none());
        assert!(pool.take_idle_where(|_| true).is_empty());
    }

    #[test]
    fn a_worker_given_back_goes_to_the_taker_that_waited_longest() {
        let pool = Arc::new(WorkerPool::new(vec![7]));
        let held = pool.take().unwrap();
        let (order, answers) = std::sync::mpsc::channel();
        let takers: Vec<_> = (0..3)
            .map(|number| {
                let (mine, order) = (Arc::clone(&pool), order.clone());
                let taker = std::thread::spawn(move || {
                    let lent = mine.take().unwrap();
                    order.send(number).unwrap();
                    drop(lent);
                });
                // Each one waiting before the next comes.
                while pool.lock().waiting.len() < number + 1 {
                    std::thread::yield_now();
                }
                taker
            })
            .collect();
        drop(held);
        for taker in takers {
            taker.join().unwrap();
        }
        let served: Vec<usize> = answers.try_iter().collect();
        assert_eq!(served, [0, 1, 2]);
        assert_eq!(pool.close_when_idle(), [7]);
    }

    #[test]
    fn a_worker_comes_back_when_its_request_panics() {
        let pool = Arc::new(WorkerPool::new(vec![1]));
        let panicking = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                let _lent = pool.take().unwrap();
                panic!("a handler's bug");
            })
        };
        assert!(panicking.join().is_err());
        assert_eq!(pool.close_when_idle(), [1], "the stop would wait forever");
    }

    #[test]
    fn only_the_idle_workers_asked_for_are_taken_aside() {
        let pool = Arc::new(WorkerPool::new(vec![1, 2, 3, 4]));
        let out = pool.take().unwrap();
        let mut taken = pool.take_idle_where(|worker| worker % 2 == 0);
        taken.sort();
        assert_eq!(taken, if *out % 2 == 0 { vec![2] } else { vec![2, 4] });
        assert!(pool.take_idle_where(|worker| worker % 2 == 0).is_empty());
    }

    #[test]
    fn the_per_client_setting_is_bounded_by_the_cap() {
        let key = crate::settings::find_key("SESSIOND_MAX_CONNECTIONS_PER_CLIENT").expect("a key");
        assert!(matches!(
            key.kind,
            crate::settings::Kind::Count { max } if max == super::MAX_CONNECTIONS
        ));
    }
}

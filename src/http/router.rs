//! The one place that maps a request to its handler, and what every
//! response gets after its handler.
//!
//! `route` builds the request's [`Ctx`] (reading the clock once), refuses
//! cross-site POSTs (SPEC 4) before any handler runs, then a single
//! `match (method, path)` picks the handler. After the handler, and whatever
//! it returned, the same steps run once: an error becomes its response
//! (JSON for API requests, decided here and nowhere else), the session
//! cookie is written back, the request is counted (by its route pattern,
//! see `metrics::ROUTES`) and written to the access log, and the common
//! headers are added. A panic in a handler is a bug, but it costs one logged
//! 500, not the connection's thread or its worker.

use std::time::Instant;

use crate::db::Conn;

use crate::app::App;
use crate::clock::UnixTime;
use crate::http::access_log::{self, AccessLog};
use crate::http::context::Ctx;
use crate::http::pages;
use crate::http::reply::{HttpError, Reply, content_security_policy};
use crate::http::request::{Method, Request};
use crate::http::{account, admin, csrf, forward_auth, graphql};
use crate::metrics::{Route, WorkerRecorder};

/// What one worker keeps about the requests it answers: its counts and its
/// access log. Each worker owns its own, so counting a request takes no lock
/// that another worker takes (the log takes std's stderr lock for each
/// buffer of whole lines it writes: see `access_log`).
pub struct WorkerRecords {
    pub metrics: WorkerRecorder,
    pub access_log: AccessLog,
}

/// Answers one request on a worker's connection, and records it in the
/// worker's `records`; `started` is when the server began reading it.
pub fn route(
    app: &App,
    conn: &Conn,
    request: &Request,
    records: &WorkerRecords,
    started: Instant,
) -> Reply {
    let ctx = Ctx::new(app, conn, request, app.clock.now());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(&ctx)));
    let result = outcome.unwrap_or_else(|_| {
        Err(HttpError::Internal(anyhow::anyhow!("a handler panicked on `{}`", request.path)))
    });
    let mut reply = result.unwrap_or_else(|error| error.into_reply(request.is_api()));
    if let Some(cookie) = ctx.cookie_header() {
        reply.headers.push(("Set-Cookie", cookie.into()));
    }
    record(app, request, &reply, ctx.known_user(), records, started, ctx.now);
    with_common_headers(reply)
}

/// The answer to a request that could not be read (too large, too slow):
/// no handler runs and no session is looked at. `request` holds only its
/// method, path and peer; it is recorded like any other.
pub fn refuse_unread(
    app: &App,
    request: &Request,
    error: HttpError,
    records: &WorkerRecords,
    started: Instant,
) -> Reply {
    refuse_unrouted(app, request, error.into_reply(false), records, started)
}

/// Sends `reply` to a request that no handler will see (one that could not
/// be read, or a login the login queue could not take in time), recorded
/// like any other: every answered request is counted and logged once.
pub fn refuse_unrouted(
    app: &App,
    request: &Request,
    reply: Reply,
    records: &WorkerRecords,
    started: Instant,
) -> Reply {
    record(app, request, &reply, None, records, started, app.clock.now());
    with_common_headers(reply)
}

/// What the metrics listener remembers between requests, to keep the
/// session counts fresh while Prometheus scrapes.
#[derive(Debug, Default)]
pub struct MetricsListener {
    last_scrape: Option<UnixTime>,
    last_count: Option<UnixTime>,
}

/// How long after a scrape the counts are kept fresh, in seconds.
const KEEP_COUNTS_AFTER_SCRAPE: i64 = 120;

/// How often they are taken again meanwhile: under the cache's 5 s, so a
/// scrape finds them cached.
const RECOUNT_EVERY: i64 = 4;

impl MetricsListener {
    /// The listener's one answer: `GET /metrics` gets the exposition
    /// (SPEC 10), anything else 404. Its requests are not sessiond's
    /// traffic: neither counted nor logged.
    pub fn answer(&mut self, app: &App, conn: &Conn, request: &Request) -> Reply {
        if request.method != Method::Get || request.path != "/metrics" {
            return Reply::new(404, "text/plain; charset=utf-8", "not found\n");
        }
        let now = app.clock.now();
        self.last_scrape = Some(now);
        let body = crate::metrics::scrape(&app.metrics, &app.session_counts, conn, now);
        Reply::new(200, crate::metrics::CONTENT_TYPE, body)
    }

    /// Between requests: from the listener's start and while scrapes come
    /// (one in the last two minutes), the session counts are taken again
    /// every 4 s, off the scrape's path. Counting a million rows takes tens
    /// of milliseconds or more; Prometheus scrapes every 15 s or so, so
    /// without this every scrape would find the 5 s cache stale and count.
    pub fn between_requests(&mut self, app: &App, conn: &Conn) {
        let now = app.clock.now();
        let since_scrape = now - *self.last_scrape.get_or_insert(now);
        let due =
            self.last_count.is_none_or(|counted| !(0..RECOUNT_EVERY).contains(&(now - counted)));
        if since_scrape <= KEEP_COUNTS_AFTER_SCRAPE && due {
            app.session_counts.forget();
            if let Err(error) = app.session_counts.get(conn, now) {
                eprintln!("error: metrics: failed to count the sessions: {error}");
            }
            self.last_count = Some(now);
        }
    }
}

/// Counts an answered request by its route pattern (an unknown path shares
/// one value, never its own) and writes its access log line: the path
/// without its query string, and the user of the request's own valid cookie
/// or token, never a name typed into a form.
fn record(
    app: &App,
    request: &Request,
    reply: &Reply,
    user: Option<&str>,
    records: &WorkerRecords,
    started: Instant,
    now: UnixTime,
) {
    let answered = Instant::now();
    let duration = answered.saturating_duration_since(started);
    let method = match request.method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Other => "other",
    };
    records.metrics.record_request(Route::of_path(&request.path), method, reply.status, duration);
    if records.access_log.is_on() {
        let entry = access_log::Entry {
            time: now,
            method,
            path: &request.path,
            status: reply.status,
            duration,
            client: request.client_ip(app.settings.trust_proxy_headers),
            user: user.unwrap_or(""),
        };
        records.access_log.write(&entry, answered);
    }
}

fn dispatch(ctx: &Ctx) -> Result<Reply, HttpError> {
    let request = ctx.request;
    // Forward auth answers any method and changes nothing, so the CSRF rule
    // does not apply to it (SPEC 9).
    match request.path.as_str() {
        "/auth/forward" => return forward_auth::forward(ctx),
        "/auth/request" => return forward_auth::auth_request(ctx),
        _ => {}
    }
    if request.method == Method::Post
        && !csrf::is_allowed(request, &ctx.app.settings.csrf_trusted_origins)
    {
        return Err(HttpError::Forbidden("cross-origin request refused"));
    }
    use Method::{Get, Head, Post};
    match (request.method, request.path.as_str()) {
        (Get | Head, "/") => pages::home(ctx),
        (Get | Head, "/login") => pages::login_form(ctx),
        (Post, "/login") => pages::login_submit(ctx),
        (Get | Head, "/logout") => pages::logout_form(ctx),
        (Post, "/logout") => pages::logout(ctx),
        (Get | Head, "/api/whoami") => pages::whoami(ctx),
        (Get | Head, "/healthz") => pages::healthz(ctx),
        (Get | Head, "/static/style.css") => Ok(pages::stylesheet()),
        (Post, "/graphql") => graphql::handle(ctx),
        (_, path) if path.starts_with("/admin/") || path == "/admin" => admin::route(ctx),
        (_, path) if path.starts_with("/account/") => account::route(ctx),
        (_, "/" | "/api/whoami" | "/healthz" | "/static/style.css") => {
            Err(HttpError::MethodNotAllowed("GET, HEAD"))
        }
        (_, "/login" | "/logout") => Err(HttpError::MethodNotAllowed("GET, HEAD, POST")),
        (_, "/graphql") => Err(HttpError::MethodNotAllowed("POST")),
        _ => Err(HttpError::NotFound),
    }
}

/// Headers on every response: responses depend on the cookie and are
/// private; pages also get the browser protections.
fn with_common_headers(mut reply: Reply) -> Reply {
    reply.headers.push(("Vary", "Cookie".into()));
    if !reply.has_header("Cache-Control") {
        reply.headers.push(("Cache-Control", "private, no-store".into()));
    }
    let is_html = reply
        .headers
        .iter()
        .any(|(name, value)| *name == "Content-Type" && value.starts_with("text/html"));
    if is_html {
        // A page may widen `form-action` for itself (the sign-in and
        // sign-out pages, for an absolute `next`); the rest is the same.
        if !reply.has_header("Content-Security-Policy") {
            reply.headers.push(("Content-Security-Policy", content_security_policy(None).into()));
        }
        reply.headers.push(("X-Frame-Options", "DENY".into()));
    }
    reply.headers.push(("X-Content-Type-Options", "nosniff".into()));
    reply.headers.push(("Referrer-Policy", "same-origin".into()));
    reply
}

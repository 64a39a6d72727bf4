//! The one place that maps a request to its handler, and what every
//! response gets after its handler.
//!
//! `route` builds the request's [`Ctx`] (reading the clock once), refuses
//! cross-site POSTs (SPEC 4) before any handler runs, then a single
//! `match (method, path)` picks the handler. After the handler, and whatever
//! it returned, the same steps run once: an error becomes its response
//! (JSON for API requests, decided here and nowhere else), the session
//! cookie is written back, and the common headers are added. A panic in a
//! handler is a bug, but it costs one logged 500, not the worker thread.

use rusqlite::Connection;

use crate::app::App;
use crate::http::context::Ctx;
use crate::http::pages;
use crate::http::reply::{HttpError, Reply, content_security_policy};
use crate::http::request::{Method, Request};
use crate::http::{account, admin, csrf, forward_auth, graphql};

/// Answers one request on a worker's connection.
pub fn route(app: &App, conn: &Connection, request: &Request) -> Reply {
    let ctx = Ctx::new(app, conn, request, app.clock.now());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(&ctx)));
    let result = outcome.unwrap_or_else(|_| {
        Err(HttpError::Internal(anyhow::anyhow!("a handler panicked on `{}`", request.path)))
    });
    let mut reply = result.unwrap_or_else(|error| error.into_reply(request.is_api()));
    if let Some(cookie) = ctx.cookie_header() {
        reply.headers.push(("Set-Cookie", cookie));
    }
    with_common_headers(reply)
}

/// The answer to a request that could not be read (too large, too slow):
/// no handler runs and no session is looked at.
pub fn refuse_unread(error: HttpError) -> Reply {
    with_common_headers(error.into_reply(false))
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
    reply.headers.push(("Vary", String::from("Cookie")));
    if !reply.has_header("Cache-Control") {
        reply.headers.push(("Cache-Control", String::from("private, no-store")));
    }
    let is_html = reply
        .headers
        .iter()
        .any(|(name, value)| *name == "Content-Type" && value.starts_with("text/html"));
    if is_html {
        // A page may widen `form-action` for itself (the sign-in and
        // sign-out pages, for an absolute `next`); the rest is the same.
        if !reply.has_header("Content-Security-Policy") {
            reply.headers.push(("Content-Security-Policy", content_security_policy(None)));
        }
        reply.headers.push(("X-Frame-Options", String::from("DENY")));
    }
    reply.headers.push(("X-Content-Type-Options", String::from("nosniff")));
    reply.headers.push(("Referrer-Policy", String::from("same-origin")));
    reply
}

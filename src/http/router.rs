//! The one place that maps a request to its handler, and the headers every
//! response carries.
//!
//! `route` refuses cross-site POSTs (SPEC 4) before any handler runs, then a
//! single `match (method, path)` picks the handler. Errors become responses
//! here and nowhere else: JSON for API paths, plain text for pages.

use crate::http::pages;
use crate::http::reply::{HttpError, Reply};
use crate::http::request::{Method, Request};
use crate::http::server::Worker;
use crate::http::{account, admin, csrf, forward_auth, graphql};

/// Answers one request.
pub fn route(worker: &Worker, request: &Request) -> Reply {
    let api = request.path.starts_with("/api/") || request.path == "/graphql";
    let reply = match dispatch(worker, request) {
        Ok(reply) => reply,
        Err(error) => error.into_reply(api),
    };
    with_common_headers(reply)
}

fn dispatch(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    // Forward auth answers any method and changes nothing, so the CSRF rule
    // does not apply to it (SPEC 9).
    match request.path.as_str() {
        "/auth/forward" => return forward_auth::forward(worker, request),
        "/auth/request" => return forward_auth::auth_request(worker, request),
        _ => {}
    }
    if request.method == Method::Post
        && !csrf::is_allowed(request, &worker.app.settings.csrf_trusted_origins)
    {
        return Err(HttpError::Forbidden("cross-origin request refused"));
    }
    use Method::{Get, Head, Post};
    match (request.method, request.path.as_str()) {
        (Get | Head, "/") => pages::home(worker, request),
        (Get | Head, "/login") => pages::login_form(worker, request),
        (Post, "/login") => pages::login_submit(worker, request),
        (Get | Head, "/logout") => pages::logout_form(worker, request),
        (Post, "/logout") => pages::logout(worker, request),
        (Get | Head, "/api/whoami") => pages::whoami(worker, request),
        (Get | Head, "/healthz") => pages::healthz(worker),
        (Get | Head, "/static/style.css") => Ok(pages::stylesheet()),
        (Post, "/graphql") => graphql::handle(worker, request),
        (_, path) if path.starts_with("/admin/") || path == "/admin" => {
            admin::route(worker, request)
        }
        (_, path) if path.starts_with("/account/") => account::route(worker, request),
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
        // A page may widen `form-action` for itself (see `pages`); the rest
        // of the policy is the same everywhere.
        if !reply.has_header("Content-Security-Policy") {
            reply.headers.push(("Content-Security-Policy", content_security_policy(None)));
        }
        reply.headers.push(("X-Frame-Options", String::from("DENY")));
    }
    reply.headers.push(("X-Content-Type-Options", String::from("nosniff")));
    reply.headers.push(("Referrer-Policy", String::from("same-origin")));
    reply
}

/// The Content-Security-Policy of every page. `form_action` adds one origin
/// that the page's forms may end up at (a form posts to sessiond, which
/// redirects there; browsers check `form-action` on that redirect too).
pub fn content_security_policy(form_action: Option<&str>) -> String {
    let extra = form_action.map(|origin| format!(" {origin}")).unwrap_or_default();
    format!(
        "default-src 'self'; form-action 'self'{extra}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
}

//! The handlers of the browser pages and the small JSON endpoints: home,
//! sign in, sign out, `/api/whoami` and `/healthz`.
//!
//! Each handler asks its context for what it needs (the session, a form) and
//! returns a reply; the router has already refused cross-site POSTs, and
//! writes the session cookie back after the handler.

use crate::accounts::{self, Client, Credentials, Login};
use crate::clock::rfc3339;
use crate::http::context::Ctx;
use crate::http::next::{absolute_origin, safe_next};
use crate::http::reply::{HttpError, Reply, content_security_policy};
use crate::http::views;
use crate::metrics::{LoginKind, LoginOutcome};
use crate::web_sessions::{self, CookieKey};

/// The one message for every failed login, whatever was wrong.
pub const LOGIN_FAILED: &str = "Please enter a correct username and password.";

/// `GET /`: who is signed in, or a redirect to the sign-in page.
pub fn home(ctx: &Ctx) -> Result<Reply, HttpError> {
    let session = ctx.require_session()?;
    let page = views::home(&session.user, session, ctx.app.settings.expire_at_browser_close);
    Ok(Reply::html(200, page))
}

/// `GET /login`: the form. A stale cookie is deleted here too.
pub fn login_form(ctx: &Ctx) -> Result<Reply, HttpError> {
    ctx.web_session()?;
    let next = ctx.request.query_param("next").unwrap_or_default();
    let next = safe_next(&next, &ctx.app.settings);
    Ok(allow_form_redirect(Reply::html(200, views::login(next, "", None)), next))
}

/// `POST /login`: checks the credentials and starts a new session with a
/// new key, ending the one the browser had (no fixation).
pub fn login_submit(ctx: &Ctx) -> Result<Reply, HttpError> {
    let app = ctx.app;
    let form = ctx.request.form();
    let credentials =
        Credentials { username: form.get("username"), password: form.get("password") };
    let next = safe_next(form.get("next"), &app.settings);
    let client_addr = ctx.request.client_addr(app.settings.trust_proxy_headers);
    let client = Client { addr: &client_addr, user_agent: ctx.request.user_agent() };
    // The session the browser had, if any, ends with this login: a new login
    // always gets a new key. A failed attempt deletes a stale cookie too.
    let replacing = ctx.web_session()?.map(CookieKey::of);
    let login = accounts::login(
        ctx.conn,
        (&app.throttle, &app.decoy),
        credentials,
        &client,
        ctx.now,
        |verified| {
            accounts::start_web_session(
                ctx.conn,
                verified,
                replacing.as_ref(),
                app.lifetime,
                ctx.now,
                &client,
            )
        },
    )?;
    app.metrics.record_login(LoginKind::Web, LoginOutcome::of(&login));
    match login {
        Login::Started((key, session)) => {
            ctx.signed_in(key, &session);
            Ok(Reply::redirect(next))
        }
        Login::Refused => {
            let page = views::login(next, credentials.username, Some(LOGIN_FAILED));
            Ok(allow_form_redirect(Reply::html(401, page), next))
        }
        Login::Throttled { retry_after } => {
            let message = "Too many failed attempts. Please try again later.";
            let page = views::login(next, credentials.username, Some(message));
            let answer = allow_form_redirect(Reply::html(429, page), next);
            Err(HttpError::TooManyRequests { retry_after, answer })
        }
    }
}

/// `GET /logout`: the page with the `Sign out` button, so that other
/// applications can link to it (with `next`, followed after signing out).
pub fn logout_form(ctx: &Ctx) -> Result<Reply, HttpError> {
    let user = ctx.web_session()?.map(|session| session.user.clone());
    let next = ctx.request.query_param("next").unwrap_or_default();
    let next = safe_next(&next, &ctx.app.settings);
    Ok(allow_form_redirect(Reply::html(200, views::logout(user.as_ref(), next)), next))
}

/// `POST /logout`: deletes the session row and the cookie, then follows
/// `next` (SPEC 3 and 9), else goes to the sign-in page.
pub fn logout(ctx: &Ctx) -> Result<Reply, HttpError> {
    if let Some(cookie_key) = ctx
        .request
        .cookie(&ctx.app.settings.cookie_name)
        .and_then(|value| web_sessions::parse_cookie_value(&value))
    {
        web_sessions::delete(ctx.conn, &cookie_key)?;
    }
    ctx.signed_out();
    let form = ctx.request.form();
    let next = match form.get("next") {
        "" => "/login",
        next => safe_next(next, &ctx.app.settings),
    };
    Ok(Reply::redirect(next))
}

/// Lets a page's form end at `next` (already checked by `safe_next`).
fn allow_form_redirect(reply: Reply, next: &str) -> Reply {
    match absolute_origin(next) {
        Some(origin) => {
            reply.with_header("Content-Security-Policy", content_security_policy(Some(&origin)))
        }
        None => reply,
    }
}

/// `GET /api/whoami`: the caller, by bearer token or by session cookie.
pub fn whoami(ctx: &Ctx) -> Result<Reply, HttpError> {
    if ctx.request.header("authorization").is_some() {
        let caller = ctx.bearer()?;
        let body = Caller {
            username: &caller.user.username,
            role: caller.user.role.as_str(),
            auth: "jwt",
            expires: rfc3339(caller.expires_at),
        };
        return Ok(Reply::json_of(200, &body));
    }
    let session = ctx.require_session()?;
    let body = Caller {
        username: &session.user.username,
        role: session.user.role.as_str(),
        auth: "session",
        expires: rfc3339(session.expire_date),
    };
    Ok(Reply::json_of(200, &body))
}

/// The body of a `GET /api/whoami` that knows the caller, fields in SPEC
/// order.
#[derive(serde::Serialize)]
struct Caller<'a> {
    username: &'a str,
    role: &'static str,
    auth: &'static str,
    expires: String,
}

/// `GET /healthz`: 200 when the database answers, from the file at its
/// path; 503 when that file was deleted or replaced since the server opened
/// it (the server would go on answering from the old one).
pub fn healthz(ctx: &Ctx) -> Result<Reply, HttpError> {
    if ctx.app.db_file.check().is_err() {
        // The watch has logged the path and what happened; the answer names
        // neither (it is public), and is no "cannot take writes" either.
        let body = serde_json::json!({
            "status": "unavailable",
            "reason": "the database file this server opened was deleted or replaced; restart it",
        });
        return Err(HttpError::Refused(Reply::json(503, &body)));
    }
    crate::db::ping(ctx.conn)?;
    Ok(Reply::json(200, &serde_json::json!({ "status": "ok" })))
}

/// `GET /static/style.css`.
pub fn stylesheet() -> Reply {
    Reply::new(200, "text/css; charset=utf-8", include_str!("style.css"))
        .with_header("Cache-Control", "public, max-age=3600")
}

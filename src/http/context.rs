//! One request's context: the app, the worker's connection, the request and
//! the time it is answered at, built once at the top by the router.
//!
//! Handlers ask the context for what they need, and a requirement that fails
//! returns the refusal as an error that carries its answer:
//! `let staff = ctx.require_staff()?;`. The browser session is looked up
//! (and its expiry slid) at most once per request, on first use, and what
//! the reply must do with the cookie (send it again, send a new one, delete
//! it) is decided here and written back once, after the route, by the
//! router ([`Ctx::cookie_header`]); no handler writes a session cookie.
//!
//! `now` is read from the clock once, by the router, and passed down from
//! here: nothing below reads the clock.

use std::cell::{Cell, OnceCell};

use crate::db::Conn;

use crate::app::App;
use crate::clock::UnixTime;
use crate::http::bearer::{self, BearerCaller};
use crate::http::next;
use crate::http::reply::{HttpError, Reply};
use crate::http::request::{Method, Request};
use crate::http::views;
use crate::http::web_auth::{self, CookieAction, WebAuth};
use crate::web_sessions::WebSession;

/// What a handler gets.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub conn: &'a Conn,
    pub request: &'a Request,
    /// When this request is answered; the one clock read of the request.
    pub now: UnixTime,
    /// The cookie's session, looked up on first use.
    web: OnceCell<WebAuth>,
    /// Set when the handler signed the browser in or out.
    changed: Cell<Option<CookieAction>>,
    /// The username behind a bearer token that passed.
    bearer_user: OnceCell<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(app: &'a App, conn: &'a Conn, request: &'a Request, now: UnixTime) -> Ctx<'a> {
        Ctx {
            app,
            conn,
            request,
            now,
            web: OnceCell::new(),
            changed: Cell::new(None),
            bearer_user: OnceCell::new(),
        }
    }

    /// The live browser session of the request's cookie, if any. The first
    /// call looks it up and slides its expiry; later calls reuse that.
    pub fn web_session(&self) -> Result<Option<&WebSession>, HttpError> {
        if self.web.get().is_none() {
            let auth = web_auth::authenticate(self.app, self.conn, self.request, self.now)?;
            let _ = self.web.set(auth);
        }
        Ok(self.web.get().and_then(|auth| auth.session.as_ref()))
    }

    /// The browser session, or a redirect to sign in (401 on the API) that
    /// comes back to this page.
    pub fn require_session(&self) -> Result<&WebSession, HttpError> {
        self.web_session()?.ok_or_else(|| HttpError::SignInRequired { next: self.return_page() })
    }

    /// The browser session of a staff member or superuser; a signed-in
    /// `user` gets a 403 page.
    pub fn require_staff(&self) -> Result<&WebSession, HttpError> {
        let session = self.require_session()?;
        if !session.user.is_staff() {
            let page = views::message(
                "Forbidden",
                Some(&session.user),
                "Only staff and superusers may use the admin pages.",
            );
            return Err(HttpError::Refused(Reply::html(403, page)));
        }
        Ok(session)
    }

    /// The browser session of a superuser (role `admin`); staff get a 403
    /// page. For what governs everyone: the schedule, the access rules.
    pub fn require_superuser(&self) -> Result<&WebSession, HttpError> {
        let session = self.require_staff()?;
        if !session.user.is_superuser() {
            return Err(superusers_only(&session.user));
        }
        Ok(session)
    }

    /// The caller behind the request's bearer token (SPEC 5), or 401.
    pub fn bearer(&self) -> Result<BearerCaller, HttpError> {
        let caller = bearer::authenticate(self.app, self.conn, self.request, self.now)?;
        let _ = self.bearer_user.set(caller.user.username.clone());
        Ok(caller)
    }

    /// The reply signs the browser in with this new session.
    pub fn signed_in(&self, key: String, session: &WebSession) {
        self.changed.set(Some(CookieAction::Send { key, expire_date: session.expire_date }));
    }

    /// The reply signs the browser out: the cookie is deleted.
    pub fn signed_out(&self) {
        self.changed.set(Some(CookieAction::Delete));
    }

    /// The `Set-Cookie` the reply must carry, if any: what the handler
    /// decided, else what looking up the cookie called for (a slide sends
    /// it again; a cookie that names no live session is deleted).
    pub fn cookie_header(&self) -> Option<String> {
        let changed = self.changed.take();
        let action = match &changed {
            Some(action) => action,
            None => &self.web.get()?.cookie,
        };
        web_auth::set_cookie(&self.app.settings, action, self.now)
    }

    /// The username of the caller as far as this request looked: the
    /// cookie's session or the bearer token's user (never a name typed into
    /// a form).
    pub fn known_user(&self) -> Option<&str> {
        let from_cookie = self.web.get().and_then(|auth| auth.session.as_ref());
        match from_cookie {
            Some(session) => Some(session.user.username.as_str()),
            None => self.bearer_user.get().map(String::as_str),
        }
    }

    /// Where to come back to after signing in: this page for a GET, the
    /// page of its area for a form that was posted.
    fn return_page(&self) -> String {
        let request = self.request;
        if matches!(request.method, Method::Get | Method::Head) {
            let mut target = request.path.clone();
            if !request.query.is_empty() {
                target.push('?');
                target.push_str(&request.query);
            }
            return next::local_next(&target).to_owned();
        }
        let area = if request.path.starts_with("/admin/") {
            "/admin/"
        } else if request.path.starts_with("/account/") {
            "/account/sessions"
        } else {
            "/"
        };
        area.to_owned()
    }
}

/// The 403 page for staff asking for what only superusers may do.
pub fn superusers_only(user: &crate::users::User) -> HttpError {
    let page = views::message(
        "Forbidden",
        Some(user),
        "Only superusers may do this: change the schedule or the access rules, or end a superuser's sessions.",
    );
    HttpError::Refused(Reply::html(403, page))
}

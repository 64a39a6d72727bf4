//! Who a browser request belongs to: the session cookie, looked up, slid
//! forward and sent back.
//!
//! [`authenticate`] runs once per request that cares about the browser
//! session. It never creates a row: an unknown, expired, deleted or
//! malformed cookie means "not signed in" and gets the deletion cookie. With
//! SAVE_EVERY_REQUEST on, a live session's expiry slides and the cookie is
//! sent again. What to do with the cookie is a [`CookieAction`]; the router
//! turns it into the reply's one Set-Cookie after the route (see
//! `http::context`).
//!
//! The slide is written only once the stored expiry lags the exact one by
//! more than half of `Lifetime::allowed_lag`. It goes through
//! `App::slides`, which commits the slides of this process that fall due
//! together in one transaction (see `slides`). When another writer holds
//! SQLite's lock (a cleanup, a login, another process), a slide within the
//! allowed lag is put off to a later request and the cookie carries the
//! stored expiry; past the allowed lag it waits for the lock like any
//! write, with its group. So a request waits on someone else's write only
//! when its session had no write for half the allowed lag.

use crate::db::Conn;

use crate::app::App;
use crate::clock::UnixTime;
use crate::http::reply::HttpError;
use crate::http::request::Request;
use crate::settings::Settings;
use crate::slides::Slide;
use crate::web_sessions::{self, WebSession};

/// The result of looking at a request's session cookie.
#[derive(Debug)]
pub struct WebAuth {
    pub session: Option<WebSession>,
    /// What the reply must do with the cookie.
    pub cookie: CookieAction,
}

/// What a reply does with the session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieAction {
    Nothing,
    /// Send the cookie for this key again (a save happened).
    Send {
        key: String,
        expire_date: UnixTime,
    },
    /// The request carried a cookie that names no live session.
    Delete,
}

/// Looks up the request's session, sliding its expiry when the settings
/// say every request is a save.
pub fn authenticate(
    app: &App,
    conn: &Conn,
    request: &Request,
    now: UnixTime,
) -> Result<WebAuth, HttpError> {
    let settings = &app.settings;
    let Some(value) = request.cookie(&settings.cookie_name) else {
        return Ok(WebAuth::anonymous());
    };
    let Some(cookie_key) = web_sessions::parse_cookie_value(&value) else {
        return Ok(WebAuth::stale());
    };
    let Some(mut session) = web_sessions::find_live(conn, &cookie_key, now)? else {
        return Ok(WebAuth::stale());
    };
    let mut cookie = CookieAction::Nothing;
    if settings.save_every_request {
        let lifetime = app.lifetime;
        let exact = lifetime.expiry_after_save(session.created, now);
        let lag = (exact - session.expire_date).abs();
        let allowed = lifetime.allowed_lag();
        if lag > allowed / 2 {
            let slide = Slide {
                row_id: session.row_id,
                key_hash: session.key_hash,
                expire_date: exact,
                now,
                must_write: lag > allowed,
            };
            match app.slides.write(conn, slide)? {
                Some(true) => {
                    session.expire_date = exact;
                    session.last_activity = now;
                }
                // A logout deleted the row after we read it.
                Some(false) => return Ok(WebAuth::stale()),
                // Another writer holds the lock; the stored expiry still
                // lags no more than allowed, and a later request writes it.
                None => {}
            }
        }
        cookie = CookieAction::Send { key: value, expire_date: session.expire_date };
    }
    Ok(WebAuth { session: Some(session), cookie })
}

impl WebAuth {
    fn anonymous() -> WebAuth {
        WebAuth { session: None, cookie: CookieAction::Nothing }
    }

    /// A cookie that names no live session: it is deleted.
    fn stale() -> WebAuth {
        WebAuth { session: None, cookie: CookieAction::Delete }
    }
}

/// The Set-Cookie value a cookie action calls for, if any.
pub fn set_cookie(settings: &Settings, action: &CookieAction, now: UnixTime) -> Option<String> {
    match action {
        CookieAction::Nothing => None,
        CookieAction::Send { key, expire_date } => {
            Some(session_cookie(settings, key, *expire_date, now))
        }
        CookieAction::Delete => Some(removal_cookie(settings)),
    }
}

/// The Set-Cookie value for a session key, attributes in the order SPEC 3
/// writes them: `name=key; Path=/; HttpOnly; SameSite=Lax`, then `Secure`,
/// then `Max-Age` and `Expires` for a cookie that outlives the browser.
pub fn session_cookie(
    settings: &Settings,
    key: &str,
    expire_date: UnixTime,
    now: UnixTime,
) -> String {
    let mut cookie = String::with_capacity(160);
    cookie.push_str(&settings.cookie_name);
    cookie.push('=');
    cookie.push_str(key);
    cookie.push_str("; Path=/; HttpOnly; SameSite=Lax");
    if let Some(domain) = &settings.cookie_domain {
        cookie.push_str("; Domain=");
        cookie.push_str(domain);
    }
    if settings.cookie_secure {
        cookie.push_str("; Secure");
    }
    if !settings.expire_at_browser_close {
        let max_age = (expire_date - now).max(0);
        cookie.push_str(&format!("; Max-Age={max_age}; Expires={}", http_date(now + max_age)));
    }
    cookie
}

/// The Set-Cookie value that deletes the session cookie.
pub fn removal_cookie(settings: &Settings) -> String {
    let secure = if settings.cookie_secure { "; Secure" } else { "" };
    // A cookie set with a Domain is deleted only by one with the same Domain.
    let domain =
        settings.cookie_domain.as_ref().map(|d| format!("; Domain={d}")).unwrap_or_default();
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax{domain}{secure}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        settings.cookie_name
    )
}

/// A time as an HTTP date, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(time: UnixTime) -> String {
    chrono::DateTime::from_timestamp(time, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

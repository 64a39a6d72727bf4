//! The handlers of the browser pages and the small JSON endpoints: home,
//! sign in, sign out, `/api/whoami` and `/healthz`.
//!
//! Each handler asks for what it needs (the session, a form) and returns a
//! reply; the router has already refused cross-site POSTs.

use crate::accounts::{self, Client};
use crate::clock::rfc3339;
use crate::http::bearer;
use crate::http::reply::{HttpError, Reply};
use crate::http::request::Request;
use crate::http::router;
use crate::http::server::Worker;
use crate::http::views;
use crate::http::web_auth::{self, WebAuth};
use crate::settings::Settings;
use crate::users;
use crate::web_sessions;

/// The one message for every failed login, whatever was wrong.
pub const LOGIN_FAILED: &str = "Please enter a correct username and password.";

/// `GET /`: who is signed in, or a redirect to the sign-in page.
pub fn home(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let auth = web_auth::authenticate(worker, request)?;
    let reply = match &auth.session {
        Some(session) => Reply::html(
            200,
            views::home(&session.user, session, worker.app.settings.expire_at_browser_close),
        ),
        None => redirect_to_login(request),
    };
    Ok(finish(worker, auth, reply))
}

/// `GET /login`: the form.
pub fn login_form(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let auth = web_auth::authenticate(worker, request)?;
    let next = request.query_param("next").unwrap_or_default();
    let next = safe_next(&next, &worker.app.settings);
    let reply = allow_form_redirect(Reply::html(200, views::login(next, "", None)), next);
    Ok(finish(worker, auth, reply))
}

/// `POST /login`: checks the credentials and starts a new session with a
/// new key, ending the one the browser had (no fixation).
pub fn login_submit(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let app = &worker.app;
    let form = request.form();
    let username = form.get("username");
    let password = form.get("password");
    let next = safe_next(form.get("next"), &app.settings);
    let client_addr = request.client_addr(app.settings.trust_proxy_headers);
    let now = app.clock.now();

    // A failed attempt must not leave a stale cookie behind either.
    let current = web_auth::authenticate(worker, request)?;
    let attempt = match app.throttle.begin_attempt(username, &client_addr, now) {
        Ok(attempt) => attempt,
        Err(retry_after) => {
            let page = views::login(
                next,
                username,
                Some("Too many failed attempts. Please try again later."),
            );
            let reply = allow_form_redirect(Reply::html(429, page), next)
                .with_header("Retry-After", retry_after.0.to_string());
            return Ok(finish(worker, current, reply));
        }
    };
    let verified = users::authenticate(&worker.conn, &app.decoy, username, password)?;
    // The session the browser had, if any, ends here: a new login always
    // gets a new key.
    let replacing = current.session.as_ref().map(|session| session.key_hash);
    let client = Client { addr: &client_addr, user_agent: request.user_agent() };
    let started = match &verified {
        Some(verified) => accounts::start_web_session(
            &worker.conn,
            verified,
            replacing.as_ref(),
            app.lifetime,
            now,
            &client,
        )?,
        None => None,
    };
    let Some((key, session)) = started else {
        let reply = allow_form_redirect(
            Reply::html(401, views::login(next, username, Some(LOGIN_FAILED))),
            next,
        );
        return Ok(finish(worker, current, reply));
    };
    app.throttle.succeeded(attempt);
    let auth = WebAuth::logged_in(session, key);
    Ok(finish(worker, auth, Reply::redirect(next)))
}

/// `GET /logout`: the page with the `Sign out` button, so that other
/// applications can link to it (with `next`, followed after signing out).
pub fn logout_form(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let auth = web_auth::authenticate(worker, request)?;
    let next = request.query_param("next").unwrap_or_default();
    let next = safe_next(&next, &worker.app.settings);
    let user = auth.session.as_ref().map(|session| session.user.clone());
    let reply = allow_form_redirect(Reply::html(200, views::logout(user.as_ref(), next)), next);
    Ok(finish(worker, auth, reply))
}

/// `POST /logout`: deletes the session row and the cookie, then follows
/// `next` (SPEC 3 and 9), else goes to the sign-in page.
pub fn logout(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    if let Some(key_hash) = request
        .cookie(&worker.app.settings.cookie_name)
        .and_then(|value| web_sessions::hash_cookie_value(&value))
    {
        web_sessions::delete(&worker.conn, &key_hash)?;
    }
    let form = request.form();
    let next = match form.get("next") {
        "" => "/login",
        next => safe_next(next, &worker.app.settings),
    };
    Ok(finish(worker, WebAuth::signed_out(), Reply::redirect(next)))
}

/// `GET /api/whoami`: the caller, by bearer token or by session cookie.
pub fn whoami(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    if request.header("authorization").is_some() {
        let caller = bearer::authenticate(worker, request)?;
        let body = Caller {
            username: &caller.user.username,
            role: caller.user.role.as_str(),
            auth: "jwt",
            expires: rfc3339(caller.expires_at),
        };
        return Ok(Reply::json_of(200, &body));
    }
    let auth = web_auth::authenticate(worker, request)?;
    let reply = match &auth.session {
        Some(session) => Reply::json_of(
            200,
            &Caller {
                username: &session.user.username,
                role: session.user.role.as_str(),
                auth: "session",
                expires: rfc3339(session.expire_date),
            },
        ),
        None => HttpError::Unauthorized.into_reply(true),
    };
    Ok(finish(worker, auth, reply))
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

/// `GET /healthz`: 200 when the database answers.
pub fn healthz(worker: &Worker) -> Result<Reply, HttpError> {
    let one: i64 = worker.conn.query_row("SELECT 1", [], |row| row.get(0))?;
    if one != 1 {
        return Err(HttpError::Unavailable(String::from("the database gave a wrong answer")));
    }
    Ok(Reply::json(200, &serde_json::json!({ "status": "ok" })))
}

/// `GET /static/style.css`.
pub fn stylesheet() -> Reply {
    Reply::new(200, "text/css; charset=utf-8", include_str!("style.css"))
        .with_header("Cache-Control", "public, max-age=3600")
}

/// Adds the session cookie this request calls for.
pub fn finish(worker: &Worker, auth: WebAuth, reply: Reply) -> Reply {
    auth.finish(reply, &worker.app.settings, worker.app.clock.now())
}

/// The redirect for an anonymous visitor to a page that needs a session.
pub fn redirect_to_login(request: &Request) -> Reply {
    let mut target = request.path.clone();
    if !request.query.is_empty() {
        target.push('?');
        target.push_str(&request.query);
    }
    let next: String = form_urlencoded::byte_serialize(local_next(&target).as_bytes()).collect();
    Reply::redirect(&format!("/login?next={next}"))
}

/// Lets the page's form end at `next` (already checked by [`safe_next`]):
/// browsers apply `form-action` to the redirect after the post, so an
/// absolute `next` needs its origin in the page's policy.
fn allow_form_redirect(reply: Reply, next: &str) -> Reply {
    let Some((scheme, rest)) = next.split_once("://") else {
        return reply;
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let origin = format!("{}://{}", scheme.to_ascii_lowercase(), authority.to_ascii_lowercase());
    reply.with_header("Content-Security-Policy", router::content_security_policy(Some(&origin)))
}

/// `next` is followed only when it is a local path (see [`local_next`]) or
/// an absolute URL that SPEC 9 permits: scheme `https` (or `http` when
/// `SESSIOND_PUBLIC_URL` is itself `http`), no userinfo, no backslash, and a
/// host that is the public URL's, or the cookie domain, or ends with `.` and
/// the cookie domain. Anything else goes to `/`.
pub fn safe_next<'a>(next: &'a str, settings: &Settings) -> &'a str {
    if next.starts_with('/') {
        return local_next(next);
    }
    if permitted_absolute(next, settings) { next } else { "/" }
}

/// A local path: one `/` followed by neither `/` nor `\`, with no control
/// characters or spaces (browsers drop tabs and newlines, which would turn
/// `/\t/evil` into `//evil`) and only ASCII. Anything else is `/`.
fn local_next(next: &str) -> &str {
    let bytes = next.as_bytes();
    let local = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && bytes.iter().all(|b| b.is_ascii_graphic());
    if local { next } else { "/" }
}

fn permitted_absolute(next: &str, settings: &Settings) -> bool {
    // Visible ASCII only: browsers drop tabs and newlines and read `\` as
    // `/`, either of which could move the host.
    if !next.bytes().all(|b| b.is_ascii_graphic()) || next.contains('\\') {
        return false;
    }
    let Some((scheme, rest)) = next.split_once("://") else {
        return false;
    };
    let http_allowed = settings.public_url.as_ref().is_some_and(|public| !public.https);
    let scheme_ok = scheme.eq_ignore_ascii_case("https")
        || (http_allowed && scheme.eq_ignore_ascii_case("http"));
    if !scheme_ok {
        return false;
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return false;
    }
    let Some(host) = crate::access_rules::normalize_host(authority) else {
        return false;
    };
    // `normalize_host` drops a final `.`; a URL that had one is refused
    // rather than compared (`example.com.` is another name to a browser's
    // cookie jar).
    if authority.split(':').next().is_some_and(|name| name.ends_with('.')) {
        return false;
    }
    let public_host = settings.public_url.as_ref().is_some_and(|public| public.host == host);
    let in_cookie_domain = settings.cookie_domain.as_deref().is_some_and(|domain| {
        host == domain
            || host
                .strip_suffix(domain)
                .is_some_and(|start| start.len() > 1 && start.ends_with('.'))
    });
    public_host || in_cookie_domain
}

#[cfg(test)]
mod tests {
    use super::local_next as safe_next;

    #[test]
    fn next_must_be_a_local_path() {
        assert_eq!(safe_next("/account/sessions?x=1"), "/account/sessions?x=1");
        assert_eq!(safe_next("/"), "/");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "",
            "evil",
            "/\t/evil",
            "/ä",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn absolute_next_follows_spec_9() {
        let settings = |pairs: &[(&str, &str)]| {
            let file: Vec<(String, String)> =
                pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            crate::settings::Settings::resolve(
                std::path::Path::new(".env"),
                &file,
                |_| None,
                &Default::default(),
            )
            .unwrap()
        };
        let https = settings(&[
            ("SESSIOND_PUBLIC_URL", "https://auth.example.com"),
            ("DJANGO_SESSION_COOKIE_DOMAIN", "example.com"),
        ]);
        for good in [
            "https://auth.example.com/",
            "https://example.com/x?y=1",
            "https://wiki.example.com/page",
            "https://a.b.example.com:8443/",
            "HTTPS://WIKI.EXAMPLE.COM/",
        ] {
            assert_eq!(super::safe_next(good, &https), good, "{good}");
        }
        for bad in [
            "http://wiki.example.com/",
            "https://example.com.evil.test/",
            "https://evilexample.com/",
            "https://wiki.example.com@evil.test/",
            "https://evil.test\\@wiki.example.com/",
            "https://evil.test\\.example.com/",
            "https:\\\\wiki.example.com/",
            "//wiki.example.com/",
            "https://wiki.example.com./",
            "https:/wiki.example.com/",
            "https://wiki.example.com\t/",
            "javascript://wiki.example.com/%0aalert(1)",
            "ftp://wiki.example.com/",
        ] {
            assert_eq!(super::safe_next(bad, &https), "/", "{bad}");
        }
        let http = settings(&[("SESSIOND_PUBLIC_URL", "http://auth.test:8000")]);
        assert_eq!(super::safe_next("http://auth.test:9000/x", &http), "http://auth.test:9000/x");
        assert_eq!(super::safe_next("http://wiki.auth.test/", &http), "/");
        let none = settings(&[]);
        assert_eq!(super::safe_next("https://auth.example.com/", &none), "/");
        assert_eq!(super::safe_next("/local", &none), "/local");
    }
}

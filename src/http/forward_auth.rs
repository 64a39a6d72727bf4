//! Forward auth (SPEC 9): `/auth/forward` (Traefik `forwardAuth`, Caddy
//! `forward_auth`) and `/auth/request` (nginx `auth_request`) tell a reverse
//! proxy whether the request it is about to pass to an application may go.
//!
//! A decision reads the original request from the proxy's headers (never
//! this request's own path or query, which Caddy fills with the original
//! query), normalizes its host and path (`access_rules`), finds the policy
//! (first matching rule, else `SESSIOND_ACCESS_DEFAULT`) and checks the
//! credentials exactly as every other request does: a bearer JWT with
//! `ctx.bearer()`, else the session cookie with `ctx.web_session()` (which
//! slides it; the router writes the Set-Cookie back on the answer). It reads
//! no body, changes nothing but a cookie's sliding expiry, and is not under
//! the CSRF rule (the router sends any method here before that gate). What
//! was decided is one [`Decision`], handed to [`record`], the one place
//! where decisions are counted.

use std::borrow::Cow;

use crate::access_rules::{self, Policy};
use crate::http::context::Ctx;
use crate::http::reply::{HttpError, Reply, invalid_token_json};
use crate::http::request::{Method, Request};
use crate::users::User;

/// Which proxy contract a request came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/auth/forward`: `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri`.
    Forward,
    /// `/auth/request`: `X-Original-URL` and `X-Original-Method`.
    Request,
}

/// What forward auth decided, as SPEC 10 counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Signed in with the role the rule asks for: 200 with `Remote-*`.
    Allow,
    /// A `bypass` rule: 200, signed in or not.
    Bypass,
    /// Not signed in where the rule wants a role: 302 or 401.
    Unauthenticated,
    /// A `deny` rule, or signed in below the rule's role: 403.
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Bypass => "bypass",
            Decision::Unauthenticated => "unauthenticated",
            Decision::Deny => "deny",
        }
    }
}

/// `/auth/forward`, any method.
pub fn forward(ctx: &Ctx) -> Result<Reply, HttpError> {
    answer(ctx, Endpoint::Forward)
}

/// `/auth/request`, any method.
pub fn auth_request(ctx: &Ctx) -> Result<Reply, HttpError> {
    answer(ctx, Endpoint::Request)
}

fn answer(ctx: &Ctx, endpoint: Endpoint) -> Result<Reply, HttpError> {
    let original = match endpoint {
        Endpoint::Forward => Original::from_forwarded_headers(ctx.request),
        Endpoint::Request => Original::from_original_url(ctx.request),
    }
    .map_err(HttpError::BadRequest)?;
    let (decision, reply) = decide(ctx, endpoint, &original)?;
    record(ctx, decision);
    Ok(reply)
}

/// Where decisions are counted (`sessiond_forward_auth_decisions_total`);
/// the metrics of SPEC 10 hook in here.
pub fn record(ctx: &Ctx, decision: Decision) {
    use crate::metrics::ForwardAuthDecision as Counted;
    ctx.app.metrics.record_forward_auth(match decision {
        Decision::Allow => Counted::Allow,
        Decision::Bypass => Counted::Bypass,
        Decision::Unauthenticated => Counted::Unauthenticated,
        Decision::Deny => Counted::Deny,
    });
}

/// The original request as the proxy names it, borrowed from the request's
/// headers where it can be: a decision copies nothing it does not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original<'a> {
    /// `X-Forwarded-Method` / `X-Original-Method`, when sent.
    pub method: Option<&'a str>,
    /// The URL the visitor asked for (where to return after sign-in), put
    /// together only when a sign-in redirect needs it.
    url: OriginalUrl<'a>,
    /// Lowercase, without port or final dot.
    pub host: Cow<'a, str>,
    /// Normalized (SPEC 9), without query.
    pub path: Cow<'a, str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginalUrl<'a> {
    /// From `X-Forwarded-Proto`, `-Host` (as sent, trimmed) and `-Uri`.
    Forwarded { proto: &'static str, host: &'a str, uri: &'a str },
    /// `X-Original-URL` as sent, trimmed.
    Whole(&'a str),
}

impl<'a> Original<'a> {
    /// From `/auth/forward`'s headers: `X-Forwarded-Host` is required,
    /// `X-Forwarded-Proto` defaults to `http`, `X-Forwarded-Uri` to `/`.
    pub fn from_forwarded_headers(request: &'a Request) -> Result<Original<'a>, String> {
        let raw_host = single_header(request, "x-forwarded-host")?
            .ok_or_else(|| String::from("`X-Forwarded-Host` is missing"))?;
        let host = access_rules::normalize_host_borrowed(raw_host)
            .ok_or_else(|| String::from("`X-Forwarded-Host` is not a host name"))?;
        let proto = match single_header(request, "x-forwarded-proto")? {
            None => "http",
            Some(proto) if proto.eq_ignore_ascii_case("http") => "http",
            Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
            Some(_) => return Err(String::from("`X-Forwarded-Proto` is not `http` or `https`")),
        };
        let uri = single_header(request, "x-forwarded-uri")?.unwrap_or("/");
        let path = normalize(path_of(uri))?;
        Ok(Original {
            method: single_header(request, "x-forwarded-method")?,
            url: OriginalUrl::Forwarded { proto, host: raw_host.trim(), uri },
            host,
            path,
        })
    }

    /// From `/auth/request`'s `X-Original-URL`, which must be absolute
    /// (`http(s)://host[:port]/path?query`).
    pub fn from_original_url(request: &'a Request) -> Result<Original<'a>, String> {
        let not_absolute = || String::from("`X-Original-URL` is not an absolute http(s) URL");
        let url = single_header(request, "x-original-url")?
            .ok_or_else(|| String::from("`X-Original-URL` is missing"))?
            .trim();
        let (scheme, rest) = url.split_once("://").ok_or_else(not_absolute)?;
        if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
            return Err(not_absolute());
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, after) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(String::from("`X-Original-URL` has userinfo"));
        }
        let host = access_rules::normalize_host_borrowed(authority).ok_or_else(not_absolute)?;
        let path = path_of(after);
        let path = normalize(if path.is_empty() { "/" } else { path })?;
        Ok(Original {
            method: single_header(request, "x-original-method")?,
            url: OriginalUrl::Whole(url),
            host,
            path,
        })
    }

    /// The URL the visitor asked for, as sent: where to return after
    /// sign-in.
    pub fn url(&self) -> Cow<'a, str> {
        match self.url {
            OriginalUrl::Forwarded { proto, host, uri } => {
                Cow::Owned(format!("{proto}://{host}{uri}"))
            }
            OriginalUrl::Whole(url) => Cow::Borrowed(url),
        }
    }
}

/// A header that must not be sent twice; `Ok(None)` when absent.
fn single_header<'a>(request: &'a Request, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = request.headers.iter().filter(|(header, _)| header == name);
    let first = values.next().map(|(_, value)| value.as_str());
    if values.next().is_some() {
        return Err(format!("`{name}` is sent more than once"));
    }
    Ok(first)
}

/// The path part of a request target: up to `?` or `#`.
fn path_of(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or("")
}

fn normalize(path: &str) -> Result<Cow<'_, str>, String> {
    access_rules::normalize_path_borrowed(path).map_err(|error| error.to_string())
}

/// The decision and its answer.
fn decide(
    ctx: &Ctx,
    endpoint: Endpoint,
    original: &Original,
) -> Result<(Decision, Reply), HttpError> {
    let app = ctx.app;
    let policy = app.access_rules.policy(
        ctx.conn,
        ctx.now,
        app.settings.access_default,
        &original.host,
        &original.path,
    )?;
    let least = match policy {
        Policy::Deny => {
            return Ok((Decision::Deny, forbidden("this address is closed to everyone")));
        }
        Policy::Bypass => None,
        Policy::AtLeast(role) => Some(role),
    };
    let user = caller(ctx)?;
    Ok(match (least, user) {
        (None, None) => (Decision::Bypass, Reply::new(200, "text/plain; charset=utf-8", "")),
        (None, Some(user)) => (Decision::Bypass, allowed(&user)),
        (Some(_), None) => (Decision::Unauthenticated, unauthenticated(ctx, endpoint, original)),
        (Some(least), Some(user)) if access_rules::role_includes(user.role, least) => {
            (Decision::Allow, allowed(&user))
        }
        (Some(least), Some(_)) => (
            Decision::Deny,
            forbidden(match least {
                crate::users::Role::Admin => "only superusers may open this address",
                _ => "your role may not open this address",
            }),
        ),
    })
}

/// Who is asking: a bearer JWT when the request has `Authorization: Bearer`
/// (an invalid one is nobody, with no fall-back to the cookie), else the
/// session cookie, looked up and slid as on any page.
fn caller(ctx: &Ctx) -> Result<Option<User>, HttpError> {
    let bearer_sent = ctx.request.headers.iter().any(|(name, value)| {
        name == "authorization"
            && value
                .trim_start()
                .get(..7)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "))
    });
    if bearer_sent {
        return match ctx.bearer() {
            Ok(caller) => Ok(Some(caller.user)),
            Err(HttpError::Unauthorized) => Ok(None),
            Err(error) => Err(error),
        };
    }
    Ok(ctx.web_session()?.map(|session| session.user.clone()))
}

/// 200 with who the caller is. An e-mail address that cannot be a header
/// value as it is (non-ASCII) is left out rather than mangled.
fn allowed(user: &User) -> Reply {
    let mut reply = Reply::new(200, "text/plain; charset=utf-8", "")
        .with_header("Remote-User", user.username.clone())
        .with_header("Remote-Groups", access_rules::groups(user.role));
    if user.email.bytes().all(|b| b.is_ascii_graphic()) {
        reply = reply.with_header("Remote-Email", user.email.clone());
    }
    reply
}

fn forbidden(reason: &str) -> Reply {
    Reply::new(403, "text/plain; charset=utf-8", format!("forbidden: {reason}"))
}

/// Not signed in: on `/auth/forward` a browser navigation is sent to the
/// sign-in page (302), anything else gets 401; `/auth/request` always
/// answers 401, with the sign-in page in `Location` for nginx's
/// `error_page 401`. Without `SESSIOND_PUBLIC_URL` there is nowhere to send
/// anyone: 401 without `Location`.
fn unauthenticated(ctx: &Ctx, endpoint: Endpoint, original: &Original) -> Reply {
    let unauthorized = Reply::json(401, &invalid_token_json());
    let Some(public) = &ctx.app.settings.public_url else {
        return unauthorized;
    };
    let next: String = form_urlencoded::byte_serialize(original.url().as_bytes()).collect();
    let login = format!("{}/login?next={next}", public.base);
    match endpoint {
        Endpoint::Forward if is_browser_navigation(ctx.request, original) => {
            Reply::new(302, "text/plain; charset=utf-8", "").with_header("Location", login)
        }
        Endpoint::Forward => unauthorized,
        Endpoint::Request => unauthorized.with_header("Location", login),
    }
}

/// GET or HEAD (the original method when the proxy names it), `Accept`
/// including `text/html`, and no `X-Requested-With`.
fn is_browser_navigation(request: &Request, original: &Original) -> bool {
    let method_ok = match original.method {
        Some(method) => {
            method.trim().eq_ignore_ascii_case("GET") || method.trim().eq_ignore_ascii_case("HEAD")
        }
        None => matches!(request.method, Method::Get | Method::Head),
    };
    let accepts_html = request
        .headers
        .iter()
        .filter(|(name, _)| name == "accept")
        .any(|(_, value)| value.to_ascii_lowercase().contains("text/html"));
    method_ok && accepts_html && request.header("x-requested-with").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(headers: &[(&str, &str)]) -> Request {
        let mut request = Request::new(Method::Get, "/auth/forward?ignored=1");
        for (name, value) in headers {
            request.headers.push((name.to_string(), value.to_string()));
        }
        request
    }

    #[test]
    fn forwarded_headers_name_the_original_request() {
        let request = with(&[
            ("x-forwarded-host", "Wiki.Example.com:8443"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-uri", "/public/../admin?x=1"),
            ("x-forwarded-method", "POST"),
        ]);
        let original = Original::from_forwarded_headers(&request).unwrap();
        assert_eq!(original.host, "wiki.example.com");
        assert_eq!(original.path, "/admin");
        assert_eq!(original.url(), "https://Wiki.Example.com:8443/public/../admin?x=1");
        assert_eq!(original.method, Some("POST"));
        let request = with(&[("x-forwarded-host", "a.test")]);
        let defaults = Original::from_forwarded_headers(&request).unwrap();
        assert_eq!((&*defaults.url(), &*defaults.path), ("http://a.test/", "/"));
        for bad in [
            vec![],
            vec![("x-forwarded-host", "a b")],
            vec![("x-forwarded-host", "a.test"), ("x-forwarded-proto", "gopher")],
            vec![("x-forwarded-host", "a.test"), ("x-forwarded-uri", "admin")],
            vec![("x-forwarded-host", "a.test"), ("x-forwarded-host", "b.test")],
        ] {
            assert!(Original::from_forwarded_headers(&with(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn original_url_must_be_absolute() {
        let request = with(&[("x-original-url", "https://wiki.example.com/%61dmin?next=1")]);
        let original = Original::from_original_url(&request).unwrap();
        assert_eq!((&*original.host, &*original.path), ("wiki.example.com", "/admin"));
        let request = with(&[("x-original-url", "http://a.test")]);
        let bare = Original::from_original_url(&request).unwrap();
        assert_eq!(bare.path, "/");
        for bad in
            ["/admin", "wiki.example.com/admin", "ftp://a.test/", "http://u@a.test/", "http:///x"]
        {
            assert!(
                Original::from_original_url(&with(&[("x-original-url", bad)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn browser_navigation_is_judged_on_the_original_method() {
        let original = |method: Option<&'static str>| Original {
            method,
            url: OriginalUrl::Whole(""),
            host: Cow::Borrowed(""),
            path: Cow::Borrowed("/"),
        };
        let html = with(&[("accept", "text/html,application/xhtml+xml")]);
        assert!(is_browser_navigation(&html, &original(None)));
        assert!(is_browser_navigation(&html, &original(Some("HEAD"))));
        assert!(!is_browser_navigation(&html, &original(Some("POST"))));
        assert!(!is_browser_navigation(&with(&[("accept", "application/json")]), &original(None)));
        let xhr = with(&[("accept", "text/html"), ("x-requested-with", "XMLHttpRequest")]);
        assert!(!is_browser_navigation(&xhr, &original(None)));
        let mut post = with(&[("accept", "text/html")]);
        post.method = Method::Post;
        assert!(!is_browser_navigation(&post, &original(None)));
        assert!(is_browser_navigation(&post, &original(Some("GET"))));
    }
}

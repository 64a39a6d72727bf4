//! What a handler returns: a status, headers and a body, plus the one error
//! type of the request path and its mapping to statuses.
//!
//! An error becomes a response in exactly one place, [`HttpError::into_reply`].
//! A 500 is logged there with its cause; the client sees a short generic
//! message. Nothing here knows tiny_http.

use std::borrow::Cow;
use std::fmt;

/// A response under construction. Header values that are fixed text are
/// borrowed, not copied, for every response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", Cow::Borrowed(content_type))],
            body: body.into(),
        }
    }

    pub fn html(status: u16, markup: maud::Markup) -> Reply {
        Reply::new(status, "text/html; charset=utf-8", markup.into_string())
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::new(status, "application/json", value.to_string())
    }

    /// A JSON body written straight from a serializable value, without
    /// building a `serde_json::Value` first: for the hot paths.
    pub fn json_of(status: u16, value: &impl serde::Serialize) -> Reply {
        // Serializing plain fields to memory cannot fail.
        let body = serde_json::to_vec(value).unwrap_or_default();
        Reply::new(status, "application/json", body)
    }

    /// A `303 See Other` to a local path.
    pub fn redirect(location: &str) -> Reply {
        Reply::new(303, "text/plain; charset=utf-8", "")
            .with_header("Location", location.to_owned())
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(header, _)| header.eq_ignore_ascii_case(name))
    }
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

/// The body of every 401 from the API.
pub fn invalid_token_json() -> serde_json::Value {
    serde_json::json!({
        "message": "Received invalid authentication token",
        "extensions": { "code": "AuthenticationInvalid" }
    })
}

/// Everything that can go wrong while answering a request, and every
/// refusal: a requirement that fails (`ctx.require_staff()?`) returns one of
/// these, which carries its own answer out of the handler.
#[derive(Debug)]
pub enum HttpError {
    BadRequest(String),
    /// An API request without valid credentials.
    Unauthorized,
    /// A page that needs a session, visited without one: a redirect to the
    /// sign-in page that comes back to `next` (401 on the API).
    SignInRequired {
        next: String,
    },
    Forbidden(&'static str),
    /// Refused with a page the handler rendered (a 403 that says why).
    Refused(Reply),
    NotFound,
    MethodNotAllowed(&'static str),
    PayloadTooLarge,
    HeadersTooLarge,
    /// The client did not send its body in time.
    RequestTimeout,
    /// Throttled: the answer (the form again, GraphQL's errors) goes out
    /// with status 429 and `Retry-After`.
    TooManyRequests {
        retry_after: i64,
        answer: Reply,
    },
    /// The database cannot take writes right now (read-only file, disk full).
    Unavailable(String),
    Internal(anyhow::Error),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::Unauthorized => 401,
            HttpError::SignInRequired { .. } => 401,
            HttpError::Forbidden(_) => 403,
            HttpError::Refused(reply) => reply.status,
            HttpError::NotFound => 404,
            HttpError::MethodNotAllowed(_) => 405,
            HttpError::PayloadTooLarge => 413,
            HttpError::HeadersTooLarge => 431,
            HttpError::RequestTimeout => 408,
            HttpError::TooManyRequests { .. } => 429,
            HttpError::Unavailable(_) => 503,
            HttpError::Internal(_) => 500,
        }
    }

    /// The response for this error, as JSON for API requests and as plain
    /// text (or the handler's page) elsewhere. The router is the one caller
    /// that knows which a request is.
    pub fn into_reply(self, json: bool) -> Reply {
        let status = self.status();
        let message = match self {
            HttpError::Refused(reply) => return reply,
            HttpError::TooManyRequests { retry_after, mut answer } => {
                answer.status = 429;
                return answer.with_header("Retry-After", retry_after.to_string());
            }
            HttpError::SignInRequired { next } if !json => {
                let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
                return Reply::redirect(&format!("/login?next={next}"));
            }
            HttpError::Unauthorized | HttpError::SignInRequired { .. } => {
                return Reply::json(status, &invalid_token_json());
            }
            HttpError::Internal(error) => {
                eprintln!("error: internal error: {error:#}");
                String::from("internal server error")
            }
            HttpError::Unavailable(reason) => {
                eprintln!("error: database unavailable for writes: {reason}");
                String::from("service unavailable: the database cannot take writes right now")
            }
            HttpError::MethodNotAllowed(allow) => {
                let text = HttpError::MethodNotAllowed(allow).to_string();
                let reply = if json {
                    Reply::json(status, &serde_json::json!({ "message": text }))
                } else {
                    Reply::new(status, "text/plain; charset=utf-8", text)
                };
                return reply.with_header("Allow", allow);
            }
            other => other.to_string(),
        };
        if json {
            Reply::json(status, &serde_json::json!({ "message": message }))
        } else {
            Reply::new(status, "text/plain; charset=utf-8", message)
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadRequest(reason) => write!(f, "bad request: {reason}"),
            HttpError::Unauthorized | HttpError::SignInRequired { .. } => {
                f.write_str("Received invalid authentication token")
            }
            HttpError::Forbidden(reason) => write!(f, "forbidden: {reason}"),
            HttpError::Refused(reply) => write!(f, "refused with status {}", reply.status),
            HttpError::NotFound => f.write_str("not found"),
            HttpError::MethodNotAllowed(allow) => {
                write!(f, "method not allowed (allowed: {allow})")
            }
            HttpError::PayloadTooLarge => f.write_str("request body larger than 1 MiB"),
            HttpError::HeadersTooLarge => f.write_str("request headers too large"),
            HttpError::RequestTimeout => f.write_str("request body not received in time"),
            HttpError::TooManyRequests { retry_after, .. } => {
                write!(f, "too many failed logins; try again in {retry_after} s")
            }
            HttpError::Unavailable(_) => f.write_str("service unavailable"),
            HttpError::Internal(_) => f.write_str("internal server error"),
        }
    }
}

impl From<crate::db::Error> for HttpError {
    fn from(error: crate::db::Error) -> HttpError {
        // A lost or refused PostgreSQL connection, a busy database, a SQLite
        // file made read-only while open (its next write fails with
        // SQLITE_IOERR, a new connection with SQLITE_READONLY), a full disk:
        // each passes once the database is back.
        if error.is_unavailable() || error.is_busy() {
            HttpError::Unavailable(error.to_string())
        } else {
            HttpError::Internal(error.into())
        }
    }
}

impl From<anyhow::Error> for HttpError {
    fn from(error: anyhow::Error) -> HttpError {
        match error.downcast::<crate::db::Error>() {
            Ok(db) => HttpError::from(db),
            Err(other) => HttpError::Internal(other),
        }
    }
}

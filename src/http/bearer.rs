//! Bearer-token authentication for API requests (`Authorization: Bearer`).
//!
//! [`authenticate`] applies the rules of SPEC 5 in their order: the token
//! itself first (HS256 and its signature, `typ`, `aud`, `exp` without
//! leeway; see `jwt::verify` and `jwt::Verifier`, which remembers the tokens
//! that passed), and only then the database: the row named by
//! `jti` must exist, be neither revoked nor expired, belong to an active
//! user, and that user must be the token's `sub`. The row is read on every
//! request, so a revocation or deletion by any process counts on the very
//! next one. Every failure is the same `HttpError::Unauthorized`, and
//! nothing is written, whether the token passes or not.

use crate::db::Conn;

use crate::app::App;
use crate::clock::UnixTime;
use crate::http::reply::HttpError;
use crate::http::request::Request;
use crate::jwt_sessions;
use crate::users::User;

/// The caller behind a valid bearer token.
#[derive(Debug, Clone)]
pub struct BearerCaller {
    pub user: User,
    pub jti: String,
    pub expires_at: UnixTime,
}

/// Checks the request's bearer token.
pub fn authenticate(
    app: &App,
    conn: &Conn,
    request: &Request,
    now: UnixTime,
) -> Result<BearerCaller, HttpError> {
    let token = bearer_token(request).ok_or(HttpError::Unauthorized)?;
    let verified = app.jwt_verifier.verify(token, now).ok_or(HttpError::Unauthorized)?;
    let (session, user) =
        jwt_sessions::find_live(conn, &verified.jti, now)?.ok_or(HttpError::Unauthorized)?;
    if session.user_id.to_string() != verified.sub || user.id != session.user_id {
        return Err(HttpError::Unauthorized);
    }
    Ok(BearerCaller { user, jti: session.jti, expires_at: session.expires_at })
}

/// The token of the one `Authorization: Bearer <token>` header. Two
/// `Authorization` headers are ambiguous and count as none.
fn bearer_token(request: &Request) -> Option<&str> {
    let mut values =
        request.headers.iter().filter(|(name, _)| name == "authorization").map(|(_, v)| v);
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::Method;

    fn with_headers(values: &[&str]) -> Request {
        let mut request = Request::new(Method::Get, "/api/whoami");
        for value in values {
            request.headers.push((String::from("authorization"), (*value).to_owned()));
        }
        request
    }

    #[test]
    fn bearer_token_is_read_from_one_header() {
        assert_eq!(bearer_token(&with_headers(&["Bearer abc.def.ghi"])), Some("abc.def.ghi"));
        assert_eq!(bearer_token(&with_headers(&["bearer  abc"])), Some("abc"));
        assert_eq!(bearer_token(&with_headers(&[])), None);
        assert_eq!(bearer_token(&with_headers(&["Bearer "])), None);
        assert_eq!(bearer_token(&with_headers(&["Bearer"])), None);
        assert_eq!(bearer_token(&with_headers(&["Basic abc"])), None);
        assert_eq!(bearer_token(&with_headers(&["Bearer a", "Bearer b"])), None);
    }
}

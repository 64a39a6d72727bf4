//! Bearer-token authentication for API requests (`Authorization: Bearer`).

use crate::clock::UnixTime;
use crate::http::reply::HttpError;
use crate::http::request::Request;
use crate::http::server::Worker;
use crate::users::User;

/// The caller behind a valid bearer token.
#[derive(Debug, Clone)]
pub struct BearerCaller {
    pub user: User,
    pub jti: String,
    pub expires_at: UnixTime,
}

/// Checks the request's bearer token.
pub fn authenticate(_worker: &Worker, _request: &Request) -> Result<BearerCaller, HttpError> {
    Err(HttpError::Unauthorized)
}

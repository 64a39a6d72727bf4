//! `/account/sessions`: a user's own sessions, and ending them.

use crate::http::reply::{HttpError, Reply};
use crate::http::request::Request;
use crate::http::server::Worker;

/// Answers every request under `/account/`.
pub fn route(_worker: &Worker, _request: &Request) -> Result<Reply, HttpError> {
    Err(HttpError::NotFound)
}

//! The admin pages under `/admin/`, for staff and superusers.

use crate::http::reply::{HttpError, Reply};
use crate::http::request::Request;
use crate::http::server::Worker;

/// Answers every request under `/admin/`.
pub fn route(_worker: &Worker, _request: &Request) -> Result<Reply, HttpError> {
    Err(HttpError::NotFound)
}

//! `POST /graphql`: the GraphQL endpoint (login, logout, whoami).

use crate::http::reply::{HttpError, Reply};
use crate::http::request::Request;
use crate::http::server::Worker;

pub fn handle(_worker: &Worker, _request: &Request) -> Result<Reply, HttpError> {
    Err(HttpError::NotFound)
}

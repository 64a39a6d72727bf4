//! Everything about HTTP: the server and its workers, requests and replies,
//! the router, the handlers and the HTML views.
//!
//! Invariant: only `http::server` knows tiny_http; handlers see
//! `request::Request` and return `reply::Reply`.

pub mod access_log;
pub mod account;
pub mod admin;
pub mod admin_access;
pub mod admin_views;
pub mod bearer;
pub mod context;
pub mod csrf;
pub mod forward_auth;
pub mod graphql;
pub mod next;
pub mod pages;
pub mod reply;
pub mod request;
pub mod router;
pub mod server;
pub mod views;
pub mod web_auth;

//! sessiond: a self-hosted session server. It signs people in and keeps
//! their browser sessions (a cookie) and API sessions (a JWT) in one SQLite
//! file; administrators see and end any session; expired ones are cleaned up
//! by a command and by a timer.
//!
//! The binary (`main.rs`) only calls [`cli::run`]; everything lives here so
//! that tests can start the server in-process. See ARCHITECTURE.md for the
//! map of modules.

pub mod access_rules;
pub mod accounts;
pub mod app;
pub mod cleanup;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod db;
pub mod env_file;
pub mod http;
pub mod jwt;
pub mod jwt_sessions;
pub mod listing;
pub mod meta;
pub mod metrics;
pub mod password_hash;
pub mod random;
pub mod schedule;
pub mod secrets;
pub mod session_counts;
pub mod settings;
pub mod slides;
pub mod startup;
pub mod throttle;
pub mod users;
pub mod web_sessions;

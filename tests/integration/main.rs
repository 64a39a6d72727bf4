//! The one integration test binary: each module tests one area of sessiond
//! from the outside, over real HTTP against an in-process server on
//! `127.0.0.1:0` with a temporary database file, or by running the built
//! binary.

mod pg_cluster;
mod raw_http;
mod support;

mod access_cli;
mod access_log;
mod account;
mod admin;
mod admin_cleanup;
mod backup;
mod browser;
mod browser_proxy;
mod cleanup;
mod cli_config;
mod cli_refusals;
mod cli_sessions;
mod cli_users;
mod concurrency;
mod crash;
mod csrf;
mod db_file;
mod durability;
mod floods;
mod forward_auth;
mod graphql;
mod graphql_limits;
mod hardening;
mod http_framing;
mod http_fuzz;
mod jwt;
mod logs;
mod memory;
mod metrics;
mod postgres;
mod postgres_cluster;
mod postgres_url;
mod properties;
mod proxies;
mod roles;
mod schedule;
mod throttle;
mod tidy;
mod transfer;
mod usernames;
mod web_sessions;

//! The cleanup controls of `/admin/` (SPEC 6 and 7): the schedule form and
//! "Clear expired sessions now". Registered in `main.rs` once the cleanup
//! and the schedule are built (against their stubs these fail).

use sessiond::schedule::{self, Schedule};
use sessiond::users::Role;

use crate::admin::{add_jwt, post_as, signed_in};
use crate::support::{START, TestServer, count};

#[test]
fn the_schedule_form_sets_a_new_cron_expression() {
    let server = TestServer::start();
    let root = server.login("root", "root-password");
    let response =
        post_as(&server, &root, "/admin/schedule", &[("cron", "*/15 * * * *"), ("action", "set")]);
    assert_eq!(response.status, 303);
    assert_eq!(schedule::load(&server.conn()).unwrap(), Schedule::Cron("*/15 * * * *".into()));
    let page = server.get_with_cookie(response.header("location").unwrap(), &root);
    assert!(page.body.contains("Saved the cleanup schedule."), "{}", page.body);
    assert!(page.body.contains("<code>*/15 * * * *</code>"));
}

#[test]
fn the_schedule_form_turns_the_schedule_off() {
    let server = TestServer::start();
    let root = server.login("root", "root-password");
    let response = post_as(&server, &root, "/admin/schedule", &[("cron", ""), ("action", "off")]);
    assert_eq!(response.status, 303);
    assert_eq!(schedule::load(&server.conn()).unwrap(), Schedule::Off);
    let page = server.get_with_cookie(response.header("location").unwrap(), &root);
    assert!(page.body.contains("Turned the scheduled cleanup off."));
    assert!(page.body.contains("Next run: none"));
}

#[test]
fn an_invalid_cron_expression_is_refused_and_keeps_the_schedule() {
    let server = TestServer::start();
    let root = server.login("root", "root-password");
    let before = schedule::load(&server.conn()).unwrap();
    let response =
        post_as(&server, &root, "/admin/schedule", &[("cron", "every day"), ("action", "set")]);
    assert_eq!(response.status, 400);
    assert!(response.body.contains("The schedule was not changed"));
    assert_eq!(schedule::load(&server.conn()).unwrap(), before);
}

/// The `datetime` of the dashboard's "Next run" as `cookie` sees it.
#[track_caller]
fn next_run_shown(server: &TestServer, cookie: &str) -> String {
    let page = server.get_with_cookie("/admin/", cookie);
    let next = page.body.split("Next run: ").nth(1).expect("a next run line");
    let datetime = next.strip_prefix("<time datetime=\"").unwrap_or_else(|| panic!("{next}"));
    datetime.split('"').next().unwrap().to_owned()
}

#[test]
fn the_dashboard_shows_the_next_run() {
    // The server reads the schedule in the process's zone, which a test may
    // not set; every quarter hour falls on the same instants in every zone
    // whose offset is a whole number of quarter hours.
    let offset = schedule::local_time(START);
    assert!(
        ["00", "15", "30", "45"].contains(&&offset[offset.len() - 2..]),
        "this test needs a zone with a whole-quarter-hour offset, not {offset}"
    );
    let server = TestServer::start();
    server.advance(7 * 60);
    let root = server.login("root", "root-password");
    post_as(&server, &root, "/admin/schedule", &[("cron", "*/15 * * * *"), ("action", "set")]);

    assert_eq!(next_run_shown(&server, &root), "2026-11-27T12:15:00Z");
    // A run is strictly after now: at 12:15 the next one is 12:30.
    server.advance(8 * 60);
    assert_eq!(next_run_shown(&server, &root), "2026-11-27T12:30:00Z");
}

#[test]
fn clear_expired_now_deletes_expired_sessions_and_records_the_run() {
    let server = TestServer::start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    let old = server.login("alice", "alice-password");
    add_jwt(&server, "old-jwt", alice.id, 60, "curl/8");
    server.advance(7201);
    let root = server.login("root", "root-password");
    add_jwt(&server, "live-jwt", alice.id, 900, "curl/8");
    let response = post_as(&server, &root, "/admin/cleanup", &[]);
    assert_eq!(response.status, 303);
    let page = server.get_with_cookie(response.header("location").unwrap(), &root);
    assert!(
        page.body.contains("Cleared 1 expired web session and 1 expired JWT session."),
        "{}",
        page.body
    );
    assert_eq!(count(&server.conn(), "web_sessions"), 1);
    assert_eq!(count(&server.conn(), "jwt_sessions"), 1);
    assert_eq!(count(&server.conn(), "cleanup_runs"), 1);
    assert!(page.body.contains("<td>admin</td>"), "the run is listed with its trigger");
    assert!(!signed_in(&server, &old));
    assert!(signed_in(&server, &root));
}

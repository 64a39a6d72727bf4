//! Writes that end access commit with `synchronous=FULL` (SPEC 8): a
//! logout, a revocation, a deletion, a password change, a deactivation and
//! "end all sessions", from every place that makes them (the pages, GraphQL,
//! the admin, the account page, the commands).
//!
//! Each test turns on `db::record_ending_writes`, which reads `PRAGMA
//! synchronous` inside the very transaction of each such write, just before
//! it commits, and then checks the writes recorded for its own database
//! file. A write that skipped the durable path records either nothing or
//! NORMAL (1), and fails the test.

use sessiond::db::{self, EndingWrite};
use sessiond::users::Role;

use crate::admin::{add_jwt, post_as, session_id, signed_in};
use crate::support::{TestServer, jwt_login, post_graphql};

/// `PRAGMA synchronous` values.
const NORMAL: i64 = 1;
const FULL: i64 = 2;

fn recording_server() -> TestServer {
    db::record_ending_writes();
    TestServer::start()
}

/// Asserts that every write that ended access on this server's database was
/// FULL, and that the named ones happened.
#[track_caller]
fn assert_durable(server: &TestServer, expected: &[&str]) {
    let writes: Vec<EndingWrite> = db::durable_writes(std::path::Path::new(&server.db_location));
    for what in expected {
        assert!(
            writes.iter().any(|write| write.what == *what),
            "no `{what}` recorded; recorded: {writes:?}"
        );
    }
    for write in &writes {
        assert_eq!(write.synchronous, FULL, "not committed with synchronous=FULL: {write:?}");
    }
}

#[test]
fn connections_commit_with_normal_unless_they_end_access() {
    crate::support::sqlite_only!("SQLite's `PRAGMA synchronous` of a plain connection");
    // The control: without a durable transaction, a connection is NORMAL, so
    // the FULL seen by the other tests comes from the write path itself.
    let server = recording_server();
    let synchronous: i64 = server
        .conn()
        .as_sqlite()
        .unwrap()
        .pragma_query_value(None, "synchronous", |row| row.get(0))
        .unwrap();
    assert_eq!(synchronous, NORMAL);
    server.create_user("alice", "alice-password", Role::User);
    server.login("alice", "alice-password");
    assert_eq!(
        db::durable_writes(std::path::Path::new(&server.db_location)),
        Vec::new(),
        "a login ends nothing"
    );
}

#[test]
fn logout_is_durable() {
    let server = recording_server();
    server.create_user("alice", "alice-password", Role::User);
    let key = server.login("alice", "alice-password");
    post_as(&server, &key, "/logout", &[]);
    assert!(!signed_in(&server, &key));
    assert_durable(&server, &["web_sessions::delete"]);
}

#[test]
fn a_new_login_ending_the_old_session_is_durable() {
    let server = recording_server();
    server.create_user("alice", "alice-password", Role::User);
    let old = server.login("alice", "alice-password");
    let response =
        post_as(&server, &old, "/login", &[("username", "alice"), ("password", "alice-password")]);
    assert_eq!(response.status, 303);
    assert!(!signed_in(&server, &old));
    assert_durable(&server, &["web_sessions::delete"]);
}

#[test]
fn graphql_logout_is_durable() {
    let server = recording_server();
    server.create_user("alice", "alice-password", Role::User);
    let token = jwt_login(&server, "alice", "alice-password");
    let response =
        post_graphql(&server, "mutation { logout }", serde_json::json!({}), Some(&token));
    assert_eq!(response.status, 200, "{}", response.body);
    assert_durable(&server, &["jwt_sessions::revoke"]);
}

#[test]
fn admin_actions_are_durable() {
    let server = recording_server();
    let alice = server.create_user("alice", "alice-password", Role::User);
    let root = server.login("root", "root-password");
    let alice_key = server.login("alice", "alice-password");
    add_jwt(&server, "a-1", alice.id, 600, "agent");
    add_jwt(&server, "a-2", alice.id, 600, "agent");

    post_as(&server, &root, "/admin/sessions/web/delete", &[("one", &session_id(&alice_key))]);
    assert!(!signed_in(&server, &alice_key));
    assert_durable(&server, &["web_sessions::delete"]);

    post_as(&server, &root, "/admin/sessions/jwt/revoke", &[("id", "a-1")]);
    assert_durable(&server, &["jwt_sessions::revoke"]);

    post_as(&server, &root, "/admin/sessions/jwt/delete", &[("id", "a-2")]);
    assert_durable(&server, &["jwt_sessions::delete"]);

    let again = server.login("alice", "alice-password");
    post_as(&server, &root, "/admin/users/end-sessions", &[("username", "alice")]);
    assert!(!signed_in(&server, &again));
    assert_durable(&server, &["web_sessions::delete_for_user", "jwt_sessions::revoke_for_user"]);
}

#[test]
fn account_page_actions_are_durable() {
    let server = recording_server();
    let alice = server.create_user("alice", "alice-password", Role::User);
    let laptop = server.login("alice", "alice-password");
    let phone = server.login("alice", "alice-password");
    add_jwt(&server, "alice-api", alice.id, 600, "agent");

    post_as(&server, &laptop, "/account/sessions/end", &[("id", &session_id(&phone))]);
    assert!(!signed_in(&server, &phone));
    assert_durable(&server, &["web_sessions::delete_for_user_by_hash"]);

    post_as(&server, &laptop, "/account/sessions/revoke", &[("jti", "alice-api")]);
    assert_durable(&server, &["jwt_sessions::revoke_own"]);

    let tablet = server.login("alice", "alice-password");
    post_as(&server, &laptop, "/account/sessions/end-others", &[]);
    assert!(!signed_in(&server, &tablet));
    assert_durable(
        &server,
        &["web_sessions::delete_for_user_except", "jwt_sessions::revoke_for_user"],
    );
}

#[test]
fn command_actions_are_durable() {
    // The functions `sessions revoke`, `sessions end-user`, `changepassword`
    // and `deactivateuser` run, in this process so that the record is seen.
    use sessiond::commands::sessions::SessionsAction;
    let server = recording_server();
    let alice = server.create_user("alice", "alice-password", Role::User);
    let key = server.login("alice", "alice-password");
    add_jwt(&server, "cli-1", alice.id, 600, "agent");

    sessiond::commands::sessions::run(
        &server.settings,
        SessionsAction::Revoke { id: session_id(&key) },
    )
    .unwrap();
    assert!(!signed_in(&server, &key));
    assert_durable(&server, &["web_sessions::delete"]);

    sessiond::commands::sessions::run(
        &server.settings,
        SessionsAction::Revoke { id: "cli-1".into() },
    )
    .unwrap();
    assert_durable(&server, &["jwt_sessions::revoke"]);

    sessiond::commands::sessions::run(
        &server.settings,
        SessionsAction::EndUser { username: "alice".into() },
    )
    .unwrap();
    let count = |what: &str| {
        db::durable_writes(std::path::Path::new(&server.db_location))
            .iter()
            .filter(|write| write.what == what)
            .count()
    };
    assert_eq!(count("web_sessions::delete_for_user"), 1);

    let conn = server.conn();
    sessiond::accounts::change_password(&conn, &alice, "new-password", server.clock_now()).unwrap();
    assert_eq!(count("web_sessions::delete_for_user"), 2);
    sessiond::accounts::set_active(&conn, &alice, false, server.clock_now()).unwrap();
    assert_eq!(count("web_sessions::delete_for_user"), 3);
    assert_durable(&server, &["jwt_sessions::revoke_for_user"]);
}

//! Roles in the admin (issue 14): staff (managers) manage users' and
//! managers' sessions but not superusers', and cannot change the schedule;
//! superusers can do all of it. Each action is tried by a manager on a
//! superuser (403, nothing changed), with the controls: the same manager on
//! a user and on another manager, and a superuser on a superuser.

use sessiond::schedule;
use sessiond::users::Role;

use crate::admin::{add_jwt, jwt_revocation, post_as, session_id, signed_in};
use crate::support::{TestServer, count};

struct Cast {
    server: TestServer,
    /// Signed-in keys.
    manager: String,
    root: String,
    /// Another superuser, a second manager and a plain user, each signed in.
    boss: String,
    other_manager: String,
    user: String,
}

fn cast() -> Cast {
    let server = TestServer::start();
    server.create_user("mia", "mia-password", Role::Manager);
    server.create_user("max", "max-password", Role::Manager);
    server.create_user("boss", "boss-password", Role::Admin);
    server.create_user("ulla", "ulla-password", Role::User);
    Cast {
        manager: server.login("mia", "mia-password"),
        root: server.login("root", "root-password"),
        boss: server.login("boss", "boss-password"),
        other_manager: server.login("max", "max-password"),
        user: server.login("ulla", "ulla-password"),
        server,
    }
}

fn user_id(server: &TestServer, name: &str) -> i64 {
    sessiond::users::find_by_username(&server.conn(), name).unwrap().unwrap().id
}

#[test]
fn a_manager_cannot_delete_a_superusers_web_session() {
    let cast = cast();
    let server = &cast.server;
    let path = "/admin/sessions/web/delete";
    let refused = post_as(server, &cast.manager, path, &[("one", &session_id(&cast.boss))]);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(signed_in(server, &cast.boss));
    // Several selected rows with one superuser's among them: none goes.
    let fields = [("id", session_id(&cast.user)), ("id", session_id(&cast.boss))];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(post_as(server, &cast.manager, path, &fields).status, 403);
    assert!(signed_in(server, &cast.user) && signed_in(server, &cast.boss));

    // The controls.
    let ok = post_as(server, &cast.manager, path, &[("one", &session_id(&cast.user))]);
    assert_eq!(ok.status, 303);
    assert!(!signed_in(server, &cast.user));
    let ok = post_as(server, &cast.manager, path, &[("one", &session_id(&cast.other_manager))]);
    assert_eq!(ok.status, 303);
    assert!(!signed_in(server, &cast.other_manager));
    let ok = post_as(server, &cast.root, path, &[("one", &session_id(&cast.boss))]);
    assert_eq!(ok.status, 303);
    assert!(!signed_in(server, &cast.boss));
}

#[test]
fn a_manager_cannot_revoke_or_delete_a_superusers_api_login() {
    let cast = cast();
    let server = &cast.server;
    add_jwt(server, "boss-api", user_id(server, "boss"), 600, "agent");
    add_jwt(server, "ulla-api", user_id(server, "ulla"), 600, "agent");
    add_jwt(server, "max-api", user_id(server, "max"), 600, "agent");

    for path in ["/admin/sessions/jwt/revoke", "/admin/sessions/jwt/delete"] {
        let refused = post_as(server, &cast.manager, path, &[("id", "boss-api")]);
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        let mixed = post_as(server, &cast.manager, path, &[("id", "ulla-api"), ("id", "boss-api")]);
        assert_eq!(mixed.status, 403, "{path}");
        assert_eq!(jwt_revocation(server, "boss-api"), (None, None), "{path}");
        assert_eq!(jwt_revocation(server, "ulla-api"), (None, None), "{path}: nothing changed");
    }

    // The controls.
    let ok = post_as(server, &cast.manager, "/admin/sessions/jwt/revoke", &[("id", "ulla-api")]);
    assert_eq!(ok.status, 303);
    assert!(jwt_revocation(server, "ulla-api").0.is_some());
    let ok = post_as(server, &cast.manager, "/admin/sessions/jwt/delete", &[("id", "max-api")]);
    assert_eq!(ok.status, 303);
    let ok = post_as(server, &cast.root, "/admin/sessions/jwt/revoke", &[("id", "boss-api")]);
    assert_eq!(ok.status, 303);
    assert!(jwt_revocation(server, "boss-api").0.is_some());
    let ok = post_as(server, &cast.root, "/admin/sessions/jwt/delete", &[("id", "boss-api")]);
    assert_eq!(ok.status, 303);
    assert_eq!(count(&server.conn(), "jwt_sessions"), 1, "only ulla's revoked row is left");
}

#[test]
fn a_manager_cannot_end_all_sessions_of_a_superuser() {
    let cast = cast();
    let server = &cast.server;
    let path = "/admin/users/end-sessions";
    for name in ["boss", "BOSS", "root"] {
        let refused = post_as(server, &cast.manager, path, &[("username", name)]);
        assert_eq!(refused.status, 403, "{name}: {}", refused.body);
    }
    assert!(signed_in(server, &cast.boss) && signed_in(server, &cast.root));

    // The controls.
    assert_eq!(post_as(server, &cast.manager, path, &[("username", "ulla")]).status, 303);
    assert!(!signed_in(server, &cast.user));
    assert_eq!(post_as(server, &cast.manager, path, &[("username", "max")]).status, 303);
    assert!(!signed_in(server, &cast.other_manager));
    assert_eq!(post_as(server, &cast.root, path, &[("username", "boss")]).status, 303);
    assert!(!signed_in(server, &cast.boss));
}

#[test]
fn only_a_superuser_changes_the_schedule() {
    let cast = cast();
    let server = &cast.server;
    let before = schedule::load(&server.conn()).unwrap();
    for fields in [&[("cron", "*/5 * * * *"), ("action", "set")][..], &[("action", "off")]] {
        let refused = post_as(server, &cast.manager, "/admin/schedule", fields);
        assert_eq!(refused.status, 403, "{fields:?}: {}", refused.body);
        assert_eq!(schedule::load(&server.conn()).unwrap(), before);
    }
    // The managers still see the admin pages.
    assert_eq!(server.get_with_cookie("/admin/", &cast.manager).status, 200);

    // The control.
    let fields = [("cron", "*/5 * * * *"), ("action", "set")];
    assert_eq!(post_as(server, &cast.root, "/admin/schedule", &fields).status, 303);
    assert_eq!(schedule::load(&server.conn()).unwrap(), schedule::parse("*/5 * * * *").unwrap());
}

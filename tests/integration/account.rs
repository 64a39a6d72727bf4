//! A user's own sessions at `/account/sessions` (SPEC 6): what they see, and
//! that they can end their own sessions and never anyone else's.

use sessiond::users::Role;

use crate::admin::{add_jwt, jwt_revocation, login_with_agent, post_as, session_id, signed_in};
use crate::support::TestServer;

#[test]
fn anonymous_visitors_are_sent_to_login() {
    let server = TestServer::start();
    let response = server.get("/account/sessions", &[]);
    assert_eq!(response.status, 303);
    assert_eq!(response.header("location"), Some("/login?next=%2Faccount%2Fsessions"));
}

#[test]
fn the_page_lists_own_sessions_with_device_address_and_the_current_one_marked() {
    let server = TestServer::start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    server.create_user("bob", "bob-password", Role::User);
    login_with_agent(&server, "alice", "alice-password", "PhoneBrowser/2");
    let laptop = login_with_agent(&server, "alice", "alice-password", "LaptopBrowser/3");
    login_with_agent(&server, "bob", "bob-password", "BobBrowser/1");
    add_jwt(&server, "alice-api", alice.id, 900, "AliceScript/1");
    let page = server.get_with_cookie("/account/sessions", &laptop);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("PhoneBrowser/2") && page.body.contains("LaptopBrowser/3"));
    assert!(page.body.contains("AliceScript/1"), "API logins are listed too");
    assert!(!page.body.contains("BobBrowser/1"), "only the user's own sessions");
    assert!(page.body.contains("127.0.0.1"), "the client address is shown");
    assert_eq!(page.body.matches("(this session)").count(), 1);
    assert!(page.body.contains(r#"LaptopBrowser/3 <span class="current">(this session)</span>"#));
    assert!(page.body.contains(">Sign out</button>"));
    assert!(page.body.contains(">Sign out all other sessions</button>"));
}

#[test]
fn signing_out_another_session_ends_it_and_keeps_this_one() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let phone = server.login("alice", "alice-password");
    let laptop = server.login("alice", "alice-password");
    let response =
        post_as(&server, &laptop, "/account/sessions/end", &[("id", &session_id(&phone))]);
    assert_eq!(response.status, 303);
    let page = server.get_with_cookie(response.header("location").unwrap(), &laptop);
    assert!(page.body.contains("Signed out 1 session."), "{}", page.body);
    assert!(!signed_in(&server, &phone));
    assert!(signed_in(&server, &laptop));
}

#[test]
fn signing_out_the_current_session_signs_this_browser_out() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let laptop = server.login("alice", "alice-password");
    let response =
        post_as(&server, &laptop, "/account/sessions/end", &[("id", &session_id(&laptop))]);
    assert_eq!(response.status, 303);
    assert_eq!(response.header("location"), Some("/login"));
    assert!(response.set_cookie("sessionid").unwrap().contains("Max-Age=0"));
    assert!(!signed_in(&server, &laptop));
}

#[test]
fn signing_out_all_other_sessions_keeps_only_this_one() {
    let server = TestServer::start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    server.create_user("bob", "bob-password", Role::User);
    let others = [server.login("alice", "alice-password"), server.login("alice", "alice-password")];
    let current = server.login("alice", "alice-password");
    let bob = server.login("bob", "bob-password");
    add_jwt(&server, "alice-api", alice.id, 900, "curl/8");
    let response = post_as(&server, &current, "/account/sessions/end-others", &[]);
    let page = server.get_with_cookie(response.header("location").unwrap(), &current);
    assert!(page.body.contains("Signed out 3 other sessions."), "{}", page.body);
    for key in &others {
        assert!(!signed_in(&server, key));
    }
    assert!(signed_in(&server, &current));
    assert!(signed_in(&server, &bob), "another user's sessions stay");
    assert_eq!(jwt_revocation(&server, "alice-api"), (Some(server.clock_now()), Some(alice.id)));
}

#[test]
fn a_user_cannot_end_another_users_session() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let bob_user = server.create_user("bob", "bob-password", Role::User);
    let alice = server.login("alice", "alice-password");
    let bob = server.login("bob", "bob-password");
    add_jwt(&server, "bob-api", bob_user.id, 900, "curl/8");
    let response = post_as(&server, &alice, "/account/sessions/end", &[("id", &session_id(&bob))]);
    assert_eq!(response.status, 303);
    let response = post_as(&server, &alice, "/account/sessions/revoke", &[("jti", "bob-api")]);
    assert_eq!(response.status, 303);
    assert!(signed_in(&server, &bob));
    assert!(signed_in(&server, &alice));
    assert_eq!(jwt_revocation(&server, "bob-api"), (None, None));
}

#[test]
fn a_user_revokes_their_own_api_login() {
    let server = TestServer::start();
    let alice_user = server.create_user("alice", "alice-password", Role::User);
    let alice = server.login("alice", "alice-password");
    add_jwt(&server, "alice-api", alice_user.id, 900, "curl/8");
    let response = post_as(&server, &alice, "/account/sessions/revoke", &[("jti", "alice-api")]);
    let page = server.get_with_cookie(response.header("location").unwrap(), &alice);
    assert!(page.body.contains("Signed out 1 session."), "{}", page.body);
    assert_eq!(
        jwt_revocation(&server, "alice-api"),
        (Some(server.clock_now()), Some(alice_user.id))
    );
}

#[test]
fn a_malformed_session_id_is_refused() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let alice = server.login("alice", "alice-password");
    let response = post_as(&server, &alice, "/account/sessions/end", &[("id", "not-hex")]);
    assert_eq!(response.status, 400);
    assert!(signed_in(&server, &alice));
}

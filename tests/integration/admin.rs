//! The sessions admin (SPEC 6): who may see it, what the lists and the
//! counts show, and the actions that end sessions, each checked from the
//! outside over HTTP and against the rows it must change.

use sessiond::jwt_sessions;
use sessiond::users::Role;
use sessiond::web_sessions;

use crate::support::{Response, TestServer, count};

/// Signs in through the form with a given user agent; returns the key.
#[track_caller]
pub fn login_with_agent(
    server: &TestServer,
    username: &str,
    password: &str,
    agent: &str,
) -> String {
    let response = server.post_form(
        "/login",
        &[("username", username), ("password", password)],
        &[("User-Agent", agent)],
    );
    assert_eq!(response.status, 303, "login of {username} failed: {}", response.body);
    response.cookie_value("sessionid").expect("login sets the session cookie")
}

/// The public id of a web session (the hex hash of its key).
#[track_caller]
pub fn session_id(key: &str) -> String {
    web_sessions::hash_cookie_value(key).expect("a well-formed key").to_hex()
}

/// Posts a form as a signed-in browser.
pub fn post_as(server: &TestServer, key: &str, path: &str, fields: &[(&str, &str)]) -> Response {
    let cookie = format!("sessionid={key}");
    server.post_form(path, fields, &[("Cookie", &cookie)])
}

/// True when the key still names a live session (the home page answers).
#[track_caller]
pub fn signed_in(server: &TestServer, key: &str) -> bool {
    let home = server.get_with_cookie("/", key);
    match home.status {
        200 => true,
        303 => false,
        other => panic!("unexpected status {other} from /"),
    }
}

/// Stores a JWT session row directly (the GraphQL login is another area).
pub fn add_jwt(server: &TestServer, jti: &str, user_id: i64, expires_in: i64, agent: &str) {
    let now = server.clock_now();
    jwt_sessions::create(&server.conn(), jti, user_id, now, now + expires_in, "192.0.2.7", agent)
        .expect("insert jwt session");
}

/// `(revoked_at, revoked_by)` of a JWT row.
pub fn jwt_revocation(server: &TestServer, jti: &str) -> (Option<i64>, Option<i64>) {
    server
        .conn()
        .query_row("SELECT revoked_at, revoked_by FROM jwt_sessions WHERE jti = $1", [jti], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("jwt row exists")
}

/// Follows a 303 with the same cookie.
#[track_caller]
fn follow(server: &TestServer, response: &Response, key: &str) -> Response {
    assert_eq!(response.status, 303, "expected a redirect: {}", response.body);
    let location = response.header("location").expect("a Location header");
    server.get_with_cookie(location, key)
}

#[test]
fn anonymous_visitors_are_sent_to_login() {
    let server = TestServer::start();
    for (path, next) in [
        ("/admin/", "%2Fadmin%2F"),
        ("/admin/sessions/web", "%2Fadmin%2Fsessions%2Fweb"),
        ("/admin/sessions/jwt?status=revoked", "%2Fadmin%2Fsessions%2Fjwt%3Fstatus%3Drevoked"),
    ] {
        let response = server.get(path, &[]);
        assert_eq!(response.status, 303, "{path}");
        assert_eq!(response.header("location"), Some(format!("/login?next={next}").as_str()));
    }
}

#[test]
fn plain_user_gets_403_and_changes_nothing() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let root = server.login("root", "root-password");
    let alice = server.login("alice", "alice-password");
    for path in ["/admin/", "/admin/sessions/web", "/admin/sessions/jwt"] {
        assert_eq!(server.get_with_cookie(path, &alice).status, 403, "{path}");
    }
    let refused =
        post_as(&server, &alice, "/admin/sessions/web/delete", &[("one", &session_id(&root))]);
    assert_eq!(refused.status, 403);
    let refused = post_as(&server, &alice, "/admin/users/end-sessions", &[("username", "root")]);
    assert_eq!(refused.status, 403);
    assert!(signed_in(&server, &root));
}

#[test]
fn manager_may_use_the_admin_pages() {
    let server = TestServer::start();
    server.create_user("mia", "mia-password", Role::Manager);
    let mia = server.login("mia", "mia-password");
    for path in ["/admin/", "/admin/sessions/web", "/admin/sessions/jwt"] {
        let response = server.get_with_cookie(path, &mia);
        assert_eq!(response.status, 200, "{path}");
        assert!(response.header("content-type").unwrap().starts_with("text/html"));
    }
}

#[test]
fn dashboard_shows_the_counts_of_each_status() {
    let server = TestServer::start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    server.login("alice", "alice-password");
    server.advance(7201);
    // Now alice's session has expired; two live ones follow.
    server.login("alice", "alice-password");
    let root = server.login("root", "root-password");
    for n in 0..3 {
        add_jwt(&server, &format!("active-{n}"), alice.id, 900, "api");
    }
    for n in 0..4 {
        add_jwt(&server, &format!("revoked-{n}"), alice.id, 900, "api");
        jwt_sessions::revoke(&server.conn(), &format!("revoked-{n}"), server.clock_now(), None)
            .unwrap();
    }
    for n in 0..5 {
        add_jwt(&server, &format!("expired-{n}"), alice.id, -1, "api");
    }
    let page = server.get_with_cookie("/admin/", &root);
    assert_eq!(page.status, 200);
    let web = page.body.split("JWT sessions</h2>").next().unwrap();
    let jwt = page.body.split("JWT sessions</h2>").nth(1).unwrap();
    assert!(web.contains(r#"<span class="number">2</span> active"#), "{web}");
    assert!(web.contains(r#"<span class="number">1</span> expired"#), "{web}");
    assert!(jwt.contains(r#"<span class="number">3</span> active"#), "{jwt}");
    assert!(jwt.contains(r#"<span class="number">4</span> revoked"#), "{jwt}");
    assert!(jwt.contains(r#"<span class="number">5</span> expired"#), "{jwt}");
    assert!(page.body.contains("Clear expired sessions now"));
    assert!(page.body.contains(r#"<label for="cron">"#));
}

#[test]
fn web_list_shows_expired_rows_by_fingerprint_never_the_key() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let old = login_with_agent(&server, "alice", "alice-password", "OldBrowser/1.0");
    server.advance(7201);
    let root = server.login("root", "root-password");
    let page = server.get_with_cookie("/admin/sessions/web", &root);
    assert_eq!(page.status, 200);
    let hash = web_sessions::hash_cookie_value(&old).unwrap();
    assert!(page.body.contains(&hash.fingerprint()), "fingerprint shown");
    assert!(!page.body.contains(&old), "the key is never shown");
    assert!(!page.body.contains(&root), "the admin's own key is never shown");
    let row = page.body.split_once(&hash.fingerprint()).unwrap().1.split("</tr>").next().unwrap();
    assert!(row.contains("OldBrowser/1.0"));
    assert!(row.contains("status-expired"));
    for column in
        ["User", "Created", "Last activity", "Expires", "Status", "Client address", "User agent"]
    {
        assert!(page.body.contains(&format!(r#"<th scope="col">{column}</th>"#)), "{column}");
    }
}

#[test]
fn user_agents_and_usernames_are_html_escaped() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    login_with_agent(&server, "alice", "alice-password", "<script>alert(1)</script>");
    let root = server.login("root", "root-password");
    let page = server.get_with_cookie("/admin/sessions/web", &root);
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.body.contains("<script>alert(1)"));
}

#[test]
fn web_list_filters_by_status_and_user() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    server.create_user("bob", "bob-password", Role::User);
    login_with_agent(&server, "alice", "alice-password", "alice-expired");
    server.advance(7201);
    login_with_agent(&server, "alice", "alice-password", "alice-active");
    login_with_agent(&server, "bob", "bob-password", "bob-active");
    let root = login_with_agent(&server, "root", "root-password", "root-active");

    let expired = server.get_with_cookie("/admin/sessions/web?status=expired", &root);
    assert!(expired.body.contains("alice-expired"));
    assert!(!expired.body.contains("alice-active") && !expired.body.contains("bob-active"));

    let active = server.get_with_cookie("/admin/sessions/web?status=active", &root);
    assert!(active.body.contains("alice-active") && active.body.contains("bob-active"));
    assert!(!active.body.contains("alice-expired"));

    let alice = server.get_with_cookie("/admin/sessions/web?user=alice", &root);
    assert!(alice.body.contains("alice-active") && alice.body.contains("alice-expired"));
    assert!(!alice.body.contains("bob-active"));

    let both = server.get_with_cookie("/admin/sessions/web?user=alice&status=active", &root);
    assert!(both.body.contains("alice-active"));
    assert!(!both.body.contains("alice-expired") && !both.body.contains("bob-active"));

    let nobody = server.get_with_cookie("/admin/sessions/web?user=nobody", &root);
    assert_eq!(nobody.status, 200);
    assert!(nobody.body.contains("There is no user named"));
    assert!(!nobody.body.contains("alice-active"));
}

#[test]
fn bad_filters_get_400() {
    let server = TestServer::start();
    let root = server.login("root", "root-password");
    for path in [
        "/admin/sessions/web?status=bogus",
        "/admin/sessions/jwt?before=abc",
        "/admin/sessions/web?before=1e9",
    ] {
        assert_eq!(server.get_with_cookie(path, &root).status, 400, "{path}");
    }
}

#[test]
fn lists_page_fifty_newest_first_with_a_next_link() {
    let server = TestServer::start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    {
        let conn = server.conn();
        let lifetime = web_sessions::Lifetime { idle: 7200, absolute: 0 };
        for n in 0..119 {
            web_sessions::create(
                &conn,
                &alice,
                lifetime,
                server.clock_now(),
                "",
                &format!("agent-{n:03}"),
            )
            .unwrap();
        }
    }
    // The admin's own session is the 120th and newest row.
    let root = server.login("root", "root-password");
    let first = server.get_with_cookie("/admin/sessions/web", &root);
    assert_eq!(first.body.matches(r#"name="id""#).count(), 50);
    let newest = first.body.find("agent-118").expect("newest shown");
    assert!(newest < first.body.find("agent-117").unwrap(), "newest first");
    assert!(first.body.contains("agent-070"));
    assert!(!first.body.contains("agent-069"), "row 51 is on the next page");

    let next = next_link(&first.body).expect("a Next link");
    assert!(next.contains("before="));
    let second = server.get_with_cookie(&format!("/admin/sessions/web{next}"), &root);
    assert_eq!(second.body.matches(r#"name="id""#).count(), 50);
    assert!(second.body.contains("agent-069") && second.body.contains("agent-020"));
    assert!(!second.body.contains("agent-070") && !second.body.contains("agent-019"));

    let next = next_link(&second.body).expect("a Next link");
    let third = server.get_with_cookie(&format!("/admin/sessions/web{next}"), &root);
    assert_eq!(third.body.matches(r#"name="id""#).count(), 20);
    assert!(third.body.contains("agent-019") && third.body.contains("agent-000"));
    assert!(next_link(&third.body).is_none(), "the last page has no Next link");
}

/// The query part of the page's `Next` link (`?...`).
fn next_link(body: &str) -> Option<String> {
    let before_text = body.split(r#"">Next</a>"#).next().filter(|_| body.contains(">Next</a>"))?;
    let href = before_text.rsplit("href=\"").next()?;
    let query = href.split_once('?').map(|(_, query)| query)?;
    Some(format!("?{}", query.replace("&amp;", "&")))
}

#[test]
fn jwt_list_shows_jti_status_and_who_revoked() {
    let server = TestServer::start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    add_jwt(&server, "11111111-1111-4111-8111-111111111111", alice.id, 900, "curl/8");
    add_jwt(&server, "22222222-2222-4222-8222-222222222222", alice.id, 900, "curl/8");
    add_jwt(&server, "33333333-3333-4333-8333-333333333333", alice.id, -5, "curl/8");
    let root = server.login("root", "root-password");
    let revoked = post_as(
        &server,
        &root,
        "/admin/sessions/jwt/revoke",
        &[("one", "22222222-2222-4222-8222-222222222222")],
    );
    assert_eq!(revoked.status, 303);
    let page = server.get_with_cookie("/admin/sessions/jwt", &root);
    assert_eq!(page.status, 200);
    let row =
        |jti: &str| page.body.split_once(jti).unwrap().1.split("</tr>").next().unwrap().to_owned();
    assert!(row("11111111-1111-4111-8111-111111111111").contains("status-active"));
    let revoked_row = row("22222222-2222-4222-8222-222222222222");
    assert!(revoked_row.contains("status-revoked"));
    assert!(revoked_row.contains("<td>root</td>"), "revoked_by names the admin");
    assert!(row("33333333-3333-4333-8333-333333333333").contains("status-expired"));
    for column in ["Revoked at", "Revoked by"] {
        assert!(page.body.contains(&format!(r#"<th scope="col">{column}</th>"#)), "{column}");
    }
    let only_revoked = server.get_with_cookie("/admin/sessions/jwt?status=revoked", &root);
    assert!(only_revoked.body.contains("22222222-2222-4222-8222-222222222222"));
    assert!(!only_revoked.body.contains("11111111-1111-4111-8111-111111111111"));
    let only_expired = server.get_with_cookie("/admin/sessions/jwt?status=expired", &root);
    assert!(only_expired.body.contains("33333333-3333-4333-8333-333333333333"));
    assert!(!only_expired.body.contains("22222222-2222-4222-8222-222222222222"));
}

#[test]
fn deleting_a_web_session_signs_that_client_out_on_its_next_request() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let alice = server.login("alice", "alice-password");
    let root = server.login("root", "root-password");
    assert!(signed_in(&server, &alice));
    let response =
        post_as(&server, &root, "/admin/sessions/web/delete", &[("one", &session_id(&alice))]);
    let page = follow(&server, &response, &root);
    assert!(page.body.contains("Deleted 1 web session."), "{}", page.body);
    assert!(!signed_in(&server, &alice));
    assert!(signed_in(&server, &root));
}

#[test]
fn deleting_selected_web_sessions_says_how_many() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let keys: Vec<String> = (0..3).map(|_| server.login("alice", "alice-password")).collect();
    let kept = server.login("alice", "alice-password");
    let root = server.login("root", "root-password");
    let ids: Vec<String> = keys.iter().map(|key| session_id(key)).collect();
    let fields: Vec<(&str, &str)> = ids.iter().map(|id| ("id", id.as_str())).collect();
    let response = post_as(&server, &root, "/admin/sessions/web/delete", &fields);
    let page = follow(&server, &response, &root);
    assert!(page.body.contains("Deleted 3 web sessions."), "{}", page.body);
    for key in &keys {
        assert!(!signed_in(&server, key));
    }
    assert!(signed_in(&server, &kept));
}

#[test]
fn revoking_a_jwt_session_rejects_it_and_twice_keeps_the_first_time() {
    let server = TestServer::start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    let root_user = sessiond::users::find_by_username(&server.conn(), "root").unwrap().unwrap();
    let jti = "44444444-4444-4444-8444-444444444444";
    add_jwt(&server, jti, alice.id, 900, "curl/8");
    let root = server.login("root", "root-password");
    let first_time = server.clock_now();
    let response = post_as(&server, &root, "/admin/sessions/jwt/revoke", &[("id", jti)]);
    let page = follow(&server, &response, &root);
    assert!(page.body.contains("Revoked 1 session."), "{}", page.body);
    assert_eq!(jwt_revocation(&server, jti), (Some(first_time), Some(root_user.id)));
    // The bearer check reads exactly this: the token is refused from now on.
    assert!(jwt_sessions::find_live(&server.conn(), jti, server.clock_now()).unwrap().is_none());

    server.advance(60);
    post_as(&server, &root, "/admin/sessions/jwt/revoke", &[("id", jti)]);
    assert_eq!(jwt_revocation(&server, jti), (Some(first_time), Some(root_user.id)));
}

#[test]
fn deleting_jwt_sessions_removes_the_rows() {
    let server = TestServer::start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    for jti in ["a-1", "a-2", "a-3"] {
        add_jwt(&server, jti, alice.id, 900, "curl/8");
    }
    let root = server.login("root", "root-password");
    let response =
        post_as(&server, &root, "/admin/sessions/jwt/delete", &[("id", "a-1"), ("id", "a-2")]);
    let page = follow(&server, &response, &root);
    assert!(page.body.contains("Deleted 2 JWT sessions."), "{}", page.body);
    assert_eq!(count(&server.conn(), "jwt_sessions"), 1);
    assert!(jwt_sessions::find_live(&server.conn(), "a-3", server.clock_now()).unwrap().is_some());
}

#[test]
fn ending_all_sessions_of_a_user_ends_web_and_jwt_sessions() {
    let server = TestServer::start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    server.create_user("bob", "bob-password", Role::User);
    let alice_keys =
        [server.login("alice", "alice-password"), server.login("alice", "alice-password")];
    let bob = server.login("bob", "bob-password");
    add_jwt(&server, "alice-jwt", alice.id, 900, "curl/8");
    let root = server.login("root", "root-password");
    let response = post_as(&server, &root, "/admin/users/end-sessions", &[("username", "alice")]);
    let page = follow(&server, &response, &root);
    assert!(page.body.contains("Ended 3 sessions."), "{}", page.body);
    for key in &alice_keys {
        assert!(!signed_in(&server, key));
    }
    assert!(jwt_revocation(&server, "alice-jwt").0.is_some());
    assert!(signed_in(&server, &bob));
}

#[test]
fn ending_sessions_of_an_unknown_user_is_404() {
    let server = TestServer::start();
    let root = server.login("root", "root-password");
    let response = post_as(&server, &root, "/admin/users/end-sessions", &[("username", "nobody")]);
    assert_eq!(response.status, 404);
    assert!(response.body.contains("There is no user named"));
    assert!(signed_in(&server, &root));
}

#[test]
fn malformed_ids_are_refused_and_change_nothing() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let alice = server.login("alice", "alice-password");
    let root = server.login("root", "root-password");
    let good = session_id(&alice);
    let bad = post_as(&server, &root, "/admin/sessions/web/delete", &[("id", &good), ("id", "zz")]);
    assert_eq!(bad.status, 400);
    assert!(signed_in(&server, &alice), "nothing is deleted when one id is bad");
    let alice_id = sessiond::users::find_by_username(&server.conn(), "alice").unwrap().unwrap().id;
    add_jwt(&server, "alice-jwt", alice_id, 900, "curl/8");
    for action in ["revoke", "delete"] {
        let path = format!("/admin/sessions/jwt/{action}");
        let bad = post_as(&server, &root, &path, &[("id", "alice-jwt"), ("id", "<script>")]);
        assert_eq!(bad.status, 400, "{action}");
        assert_eq!(jwt_revocation(&server, "alice-jwt"), (None, None), "nothing is {action}d");
    }
}

#[test]
fn cross_site_admin_posts_are_refused() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let alice = server.login("alice", "alice-password");
    let root = server.login("root", "root-password");
    let cookie = format!("sessionid={root}");
    let response = server.post_form(
        "/admin/sessions/web/delete",
        &[("one", &session_id(&alice))],
        &[("Cookie", &cookie), ("Origin", "http://evil.example"), ("Sec-Fetch-Site", "cross-site")],
    );
    assert_eq!(response.status, 403);
    assert!(signed_in(&server, &alice));
}

#[test]
fn an_admin_deleting_their_own_session_is_signed_out() {
    let server = TestServer::start();
    let root = server.login("root", "root-password");
    let response =
        post_as(&server, &root, "/admin/sessions/web/delete", &[("one", &session_id(&root))]);
    assert_eq!(response.status, 303);
    let removal = response.set_cookie("sessionid").expect("the cookie is deleted");
    assert!(removal.contains("Max-Age=0"));
    assert!(!signed_in(&server, &root));
}

#[test]
fn button_words_and_labels_are_those_of_the_spec() {
    let server = TestServer::start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    server.login("alice", "alice-password");
    add_jwt(&server, "alice-jwt", alice.id, 900, "curl/8");
    let root = server.login("root", "root-password");
    let web = server.get_with_cookie("/admin/sessions/web", &root);
    assert!(web.body.contains(">Delete</button>"));
    assert!(web.body.contains(">End all sessions</button>"));
    let jwt = server.get_with_cookie("/admin/sessions/jwt", &root);
    assert!(jwt.body.contains(">Revoke</button>") && jwt.body.contains(">Delete</button>"));
    for page in [&web, &jwt] {
        // Every input but hidden ones has a label pointing at its id.
        for input in page.body.split("<input").skip(1) {
            let tag = input.split('>').next().unwrap();
            if tag.contains(r#"type="hidden""#) {
                continue;
            }
            let id =
                tag.split(r#"id=""#).nth(1).expect("input has an id").split('"').next().unwrap();
            assert!(page.body.contains(&format!(r#"for="{id}""#)), "no label for {id}");
        }
    }
}

#[test]
fn plain_user_cannot_clear_or_change_the_schedule() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let alice = server.login("alice", "alice-password");
    let before = sessiond::schedule::load(&server.conn()).unwrap();
    assert_eq!(post_as(&server, &alice, "/admin/cleanup", &[]).status, 403);
    let refused = post_as(&server, &alice, "/admin/schedule", &[("action", "off")]);
    assert_eq!(refused.status, 403);
    assert_eq!(count(&server.conn(), "cleanup_runs"), 0);
    assert_eq!(sessiond::schedule::load(&server.conn()).unwrap(), before);
}

#[test]
fn expired_list_pages_newest_first_even_when_expiry_order_differs() {
    let server = TestServer::start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    let bob = server.create_user("bob", "bob-password", Role::User);
    {
        let conn = server.conn();
        let lifetime = web_sessions::Lifetime { idle: 600, absolute: 0 };
        // Each newer row was saved earlier, so it expires earlier: expiry
        // order is the reverse of id order. The rows alternate between two
        // users, whose expired rows are read user by user and must come
        // out merged in id order.
        for n in 0..60 {
            let saved = server.clock_now() - n * 10;
            let user = if n % 2 == 0 { &alice } else { &bob };
            web_sessions::create(&conn, user, lifetime, saved, "", &format!("old-{n:03}")).unwrap();
        }
    }
    server.advance(601);
    let root = server.login("root", "root-password");
    let first = server.get_with_cookie("/admin/sessions/web?status=expired", &root);
    assert_eq!(first.body.matches(r#"name="id""#).count(), 50);
    assert!(first.body.find("old-059").unwrap() < first.body.find("old-058").unwrap());
    assert!(first.body.contains("old-010") && !first.body.contains("old-009"));
    let next = next_link(&first.body).expect("a Next link");
    assert!(next.contains("status=expired"));
    let second = server.get_with_cookie(&format!("/admin/sessions/web{next}"), &root);
    assert_eq!(second.body.matches(r#"name="id""#).count(), 10);
    assert!(second.body.contains("old-009") && second.body.contains("old-000"));
    assert!(!second.body.contains("old-010"));
}

#[test]
fn a_jwt_revoked_by_an_admin_is_refused_on_its_next_request() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let token = crate::support::jwt_login(&server, "alice", "alice-password");
    let bearer = format!("Bearer {token}");
    assert_eq!(server.get("/api/whoami", &[("Authorization", &bearer)]).status, 200);
    let jti: String =
        server.conn().query_row("SELECT jti FROM jwt_sessions", [], |row| row.get(0)).unwrap();
    let root = server.login("root", "root-password");
    post_as(&server, &root, "/admin/sessions/jwt/revoke", &[("id", &jti)]);
    assert_eq!(server.get("/api/whoami", &[("Authorization", &bearer)]).status, 401);
}

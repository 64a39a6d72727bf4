//! Forward auth against the real server (SPEC 9): `/auth/forward` and
//! `/auth/request`, their inputs and answers, the rules (order, host
//! patterns, whole-segment prefixes, policies, the default), path
//! normalization, credentials (cookie that slides, bearer JWT refused once
//! revoked), no state change and no CSRF rule; the settings that go with it
//! (cookie `Domain`, public URL, default policy); `next` after sign-in and
//! sign-out, and `GET /logout`. Each refusal has its control.

use sessiond::access_rules::{self, NewRule};
use sessiond::users::Role;

use crate::support::{
    Cli, Response, START, TestServer, assert_invalid_token, count, jwt_login, post_graphql, request,
};

const PUBLIC: &str = "https://auth.example.test";
const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn server() -> TestServer {
    let server = TestServer::start_with(&[
        ("SESSIOND_PUBLIC_URL", PUBLIC),
        ("DJANGO_SESSION_COOKIE_DOMAIN", "example.test"),
    ]);
    server.create_user("alice", "alice-password", Role::User);
    server.create_user("mona", "mona-password", Role::Manager);
    server
}

fn add_rule(server: &TestServer, pattern: &str, path: Option<&str>, policy: &str) {
    access_rules::add(&server.conn(), &NewRule::parse(pattern, path, policy).unwrap()).unwrap();
}

/// `/auth/forward` as Traefik or Caddy asks it: `GET` for `uri` on `host`.
fn forward(server: &TestServer, host: &str, uri: &str, extra: &[(&str, &str)]) -> Response {
    let mut headers = vec![
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", host),
        ("X-Forwarded-Uri", uri),
    ];
    headers.extend_from_slice(extra);
    request(server.addr, "GET", "/auth/forward", &headers, b"")
}

/// `/auth/request` as nginx asks it.
fn auth_request(server: &TestServer, url: &str, extra: &[(&str, &str)]) -> Response {
    let mut headers = vec![("X-Original-URL", url), ("X-Original-Method", "GET")];
    headers.extend_from_slice(extra);
    request(server.addr, "GET", "/auth/request", &headers, b"")
}

fn cookie(key: &str) -> String {
    format!("sessionid={key}")
}

fn login_url(original: &str) -> String {
    let next: String = form_urlencoded::byte_serialize(original.as_bytes()).collect();
    format!("{PUBLIC}/login?next={next}")
}

#[test]
fn a_signed_in_cookie_passes_with_the_remote_headers() {
    let server = server();
    let key = server.login("mona", "mona-password");
    let response = forward(&server, "wiki.example.test", "/page", &[("Cookie", &cookie(&key))]);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("remote-user"), Some("mona"));
    assert_eq!(response.header("remote-groups"), Some("manager,user"));
    assert_eq!(response.header("remote-email"), Some(""));
    assert_eq!(response.body, "");
    let root = server.login("root", "root-password");
    let response =
        auth_request(&server, "https://wiki.example.test/", &[("Cookie", &cookie(&root))]);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("remote-user"), Some("root"));
    assert_eq!(response.header("remote-email"), Some("root@example.com"));
    assert_eq!(response.header("remote-groups"), Some("admin,manager,user"));
}

#[test]
fn a_cookie_slides_and_the_200_carries_the_set_cookie() {
    let server = server();
    let key = server.login("alice", "alice-password");
    let stored = |server: &TestServer| -> i64 {
        server
            .conn()
            .query_row("SELECT expire_date FROM web_sessions", [], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(stored(&server), START + 7200);
    server.advance(600);
    let response = forward(&server, "wiki.example.test", "/", &[("Cookie", &cookie(&key))]);
    assert_eq!(response.status, 200);
    let set_cookie = response.set_cookie("sessionid").expect("the 200 re-sends the cookie");
    assert!(set_cookie.starts_with(&format!("sessionid={key};")), "{set_cookie}");
    assert!(set_cookie.contains("Domain=example.test"), "{set_cookie}");
    assert_eq!(stored(&server), START + 600 + 7200, "the expiry slid");
    // The control: past its expiry the same cookie is nobody, and is deleted.
    server.advance(7201);
    let response = forward(&server, "wiki.example.test", "/", &[("Cookie", &cookie(&key))]);
    assert_eq!(response.status, 401);
    assert!(response.set_cookie("sessionid").unwrap().contains("Max-Age=0"));
}

#[test]
fn a_bearer_jwt_passes_until_it_is_revoked() {
    let server = server();
    let token = jwt_login(&server, "alice", "alice-password");
    let bearer = format!("Bearer {token}");
    let response = forward(&server, "api.example.test", "/v1", &[("Authorization", &bearer)]);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("remote-user"), Some("alice"));
    assert!(response.set_cookie("sessionid").is_none());
    let logout = post_graphql(&server, "mutation { logout }", serde_json::json!({}), Some(&token));
    assert_eq!(logout.json()["data"]["logout"], true);
    let response = forward(&server, "api.example.test", "/v1", &[("Authorization", &bearer)]);
    assert_invalid_token(&response);
    let response =
        auth_request(&server, "https://api.example.test/v1", &[("Authorization", &bearer)]);
    assert_eq!(response.status, 401);
    // A bad bearer token does not fall back to a cookie sent with it.
    let key = server.login("alice", "alice-password");
    let both = [("Authorization", bearer.as_str()), ("Cookie", &cookie(&key))];
    assert_eq!(forward(&server, "api.example.test", "/v1", &both).status, 401);
    assert_eq!(forward(&server, "api.example.test", "/v1", &both[1..]).status, 200);
}

#[test]
fn a_browser_navigation_is_sent_to_sign_in_and_anything_else_gets_401() {
    let server = server();
    let original = "https://wiki.example.test/page?a=1&b=2";
    let response = forward(&server, "wiki.example.test", "/page?a=1&b=2", &[("Accept", HTML)]);
    assert_eq!(response.status, 302);
    assert_eq!(response.header("location"), Some(login_url(original).as_str()));
    // HEAD navigates too.
    let head = [("Accept", HTML), ("X-Forwarded-Method", "HEAD")];
    let response = request(
        server.addr,
        "GET",
        "/auth/forward",
        &[&[("X-Forwarded-Host", "wiki.example.test")][..], &head].concat(),
        b"",
    );
    assert_eq!(response.status, 302);
    // Not a navigation: JSON wanted, an XHR, or an original POST.
    for extra in [
        vec![("Accept", "application/json")],
        vec![],
        vec![("Accept", HTML), ("X-Requested-With", "XMLHttpRequest")],
    ] {
        let response = forward(&server, "wiki.example.test", "/page", &extra);
        assert_invalid_token(&response);
        assert_eq!(response.header("location"), None, "{extra:?}");
    }
    let post_original = request(
        server.addr,
        "GET",
        "/auth/forward",
        &[
            ("X-Forwarded-Host", "wiki.example.test"),
            ("X-Forwarded-Method", "POST"),
            ("Accept", HTML),
        ],
        b"",
    );
    assert_eq!(post_original.status, 401, "judged on the original method, not the request's");
    // The request's own method counts when no original method is named.
    let own_post = request(
        server.addr,
        "POST",
        "/auth/forward",
        &[("X-Forwarded-Host", "wiki.example.test"), ("Accept", HTML)],
        b"",
    );
    assert_eq!(own_post.status, 401);
    let own_get = request(
        server.addr,
        "GET",
        "/auth/forward",
        &[("X-Forwarded-Host", "wiki.example.test"), ("Accept", HTML)],
        b"",
    );
    assert_eq!(own_get.status, 302);
    // The original GET counts even when the proxy asks with POST.
    let asked_with_post = request(
        server.addr,
        "POST",
        "/auth/forward",
        &[
            ("X-Forwarded-Host", "wiki.example.test"),
            ("X-Forwarded-Method", "GET"),
            ("Accept", HTML),
        ],
        b"",
    );
    assert_eq!(asked_with_post.status, 302);
}

#[test]
fn auth_request_always_answers_401_with_the_sign_in_page() {
    let server = server();
    let url = "https://wiki.example.test/page?x=1";
    for extra in [vec![("Accept", HTML)], vec![("Accept", "application/json")]] {
        let response = auth_request(&server, url, &extra);
        assert_invalid_token(&response);
        assert_eq!(response.header("location"), Some(login_url(url).as_str()));
    }
}

#[test]
fn without_a_public_url_both_answer_401_without_location() {
    let server = TestServer::start();
    for response in [
        request(
            server.addr,
            "GET",
            "/auth/forward",
            &[("X-Forwarded-Host", "wiki.example.test"), ("Accept", HTML)],
            b"",
        ),
        auth_request(&server, "https://wiki.example.test/", &[("Accept", HTML)]),
    ] {
        assert_invalid_token(&response);
        assert_eq!(response.header("location"), None);
    }
}

#[test]
fn missing_proto_means_http_and_missing_uri_means_root() {
    let server = server();
    let response = request(
        server.addr,
        "GET",
        "/auth/forward",
        &[("X-Forwarded-Host", "wiki.example.test:8080"), ("Accept", HTML)],
        b"",
    );
    assert_eq!(response.status, 302);
    assert_eq!(
        response.header("location"),
        Some(login_url("http://wiki.example.test:8080/").as_str())
    );
}

#[test]
fn without_the_original_host_the_answer_is_400() {
    let server = server();
    let key = server.login("alice", "alice-password");
    let signed_in = cookie(&key);
    let forward_without_host = request(
        server.addr,
        "GET",
        "/auth/forward",
        &[("X-Forwarded-Uri", "/"), ("Cookie", &signed_in)],
        b"",
    );
    assert_eq!(forward_without_host.status, 400, "{}", forward_without_host.body);
    assert!(forward_without_host.body.contains("X-Forwarded-Host"));
    for url in [
        "/page",
        "wiki.example.test/page",
        "ftp://wiki.example.test/",
        "https://u@wiki.example.test/",
    ] {
        let response = auth_request(&server, url, &[("Cookie", &signed_in)]);
        assert_eq!(response.status, 400, "{url}: {}", response.body);
    }
    let without_url = request(server.addr, "GET", "/auth/request", &[("Cookie", &signed_in)], b"");
    assert_eq!(without_url.status, 400);
    // The controls.
    assert_eq!(forward(&server, "wiki.example.test", "/", &[("Cookie", &signed_in)]).status, 200);
    assert_eq!(
        auth_request(&server, "http://wiki.example.test", &[("Cookie", &signed_in)]).status,
        200
    );
}

#[test]
fn the_endpoints_ignore_their_own_query_string() {
    let server = server();
    add_rule(&server, "wiki.example.test", Some("/public"), "bypass");
    let headers = [("X-Forwarded-Host", "wiki.example.test"), ("X-Forwarded-Uri", "/private?x=1")];
    for path in ["/auth/forward?x=1", "/auth/forward?/public", "/auth/forward/?"] {
        let response = request(server.addr, "GET", path, &headers, b"");
        if path == "/auth/forward/?" {
            assert_eq!(response.status, 404, "only the exact path is the endpoint");
            continue;
        }
        assert_eq!(response.status, 401, "{path}: decided on X-Forwarded-Uri");
    }
    let public = [("X-Forwarded-Host", "wiki.example.test"), ("X-Forwarded-Uri", "/public/x")];
    let response = request(server.addr, "GET", "/auth/forward?private=1", &public, b"");
    assert_eq!(response.status, 200);
    // The sign-in URL is built from the original request, not this one.
    let navigation = [("Accept", HTML)];
    let response = forward(&server, "wiki.example.test", "/private?x=1", &navigation);
    assert_eq!(
        response.header("location"),
        Some(login_url("https://wiki.example.test/private?x=1").as_str())
    );
}

#[test]
fn deny_is_403_signed_in_or_not() {
    let server = server();
    add_rule(&server, "wiki.example.test", Some("/secret"), "deny");
    let root = server.login("root", "root-password");
    for extra in [vec![], vec![("Cookie", cookie(&root))]] {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(forward(&server, "wiki.example.test", "/secret/x", &extra).status, 403);
        assert_eq!(auth_request(&server, "https://wiki.example.test/secret", &extra).status, 403);
    }
    // The control: next to it, the default applies.
    assert_eq!(
        forward(&server, "wiki.example.test", "/secretary", &[("Cookie", &cookie(&root))]).status,
        200
    );
}

#[test]
fn below_the_rules_role_is_403() {
    let server = server();
    add_rule(&server, "admin.example.test", None, "admin");
    add_rule(&server, "*.example.test", None, "manager");
    let alice = cookie(&server.login("alice", "alice-password"));
    let mona = cookie(&server.login("mona", "mona-password"));
    let root = cookie(&server.login("root", "root-password"));
    let status = |host: &str, who: &str| forward(&server, host, "/", &[("Cookie", who)]).status;
    assert_eq!(status("wiki.example.test", &alice), 403);
    assert_eq!(status("wiki.example.test", &mona), 200);
    assert_eq!(status("wiki.example.test", &root), 200);
    assert_eq!(status("admin.example.test", &mona), 403);
    assert_eq!(status("admin.example.test", &root), 200);
    // The apex is not below `*.example.test`: the default `user` applies.
    assert_eq!(status("example.test", &alice), 200);
    let jwt = format!("Bearer {}", jwt_login(&server, "alice", "alice-password"));
    assert_eq!(forward(&server, "wiki.example.test", "/", &[("Authorization", &jwt)]).status, 403);
}

#[test]
fn bypass_passes_anyone_with_the_headers_only_when_signed_in() {
    let server = server();
    add_rule(&server, "wiki.example.test", Some("/public"), "bypass");
    let anonymous = forward(&server, "wiki.example.test", "/public/page", &[]);
    assert_eq!(anonymous.status, 200);
    assert_eq!(anonymous.header("remote-user"), None);
    assert_eq!(anonymous.header("remote-groups"), None);
    let key = server.login("alice", "alice-password");
    let signed_in = forward(&server, "wiki.example.test", "/public", &[("Cookie", &cookie(&key))]);
    assert_eq!(signed_in.status, 200);
    assert_eq!(signed_in.header("remote-user"), Some("alice"));
    // The control: outside the prefix a session is needed.
    assert_eq!(forward(&server, "wiki.example.test", "/publication", &[]).status, 401);
}

#[test]
fn rules_are_tried_in_order_and_the_first_match_wins() {
    let server = server();
    add_rule(&server, "wiki.example.test", Some("/admin"), "admin");
    add_rule(&server, "wiki.example.test", None, "bypass");
    add_rule(&server, "wiki.example.test", Some("/admin"), "bypass");
    let alice = cookie(&server.login("alice", "alice-password"));
    assert_eq!(
        forward(&server, "wiki.example.test", "/admin/x", &[("Cookie", &alice)]).status,
        403
    );
    assert_eq!(forward(&server, "wiki.example.test", "/other", &[]).status, 200);
}

#[test]
fn hosts_match_without_case_or_port_and_star_dot_at_any_depth() {
    let server = server();
    add_rule(&server, "*.apps.example.test", None, "deny");
    add_rule(&server, "Wiki.Example.test", None, "bypass");
    for host in ["WIKI.example.TEST", "wiki.example.test:8443", "wiki.example.test."] {
        assert_eq!(forward(&server, host, "/", &[]).status, 200, "{host}");
    }
    for host in ["a.apps.example.test", "x.y.apps.example.test:80"] {
        assert_eq!(forward(&server, host, "/", &[]).status, 403, "{host}");
    }
    // Neither the apex of `*.` nor a look-alike matches: default `user`.
    for host in ["apps.example.test", "badapps.example.test", "wiki.example.test.evil.test"] {
        assert_eq!(forward(&server, host, "/", &[]).status, 401, "{host}");
    }
    assert_eq!(
        auth_request(&server, "https://WIKI.EXAMPLE.TEST:444/x", &[]).status,
        200,
        "the same on /auth/request"
    );
}

#[test]
fn paths_are_normalized_before_matching() {
    let server = server();
    add_rule(&server, "wiki.example.test", Some("/admin"), "deny");
    let key = server.login("alice", "alice-password");
    let signed_in = [("Cookie", cookie(&key))];
    let signed_in: Vec<(&str, &str)> = signed_in.iter().map(|(n, v)| (*n, v.as_str())).collect();
    for path in [
        "/admin",
        "/admin/",
        "/public/../admin",
        "/%61dmin",
        "/%61%64%6D%69%6E/x",
        "//admin",
        "/./admin",
        "/x/%2e%2e/admin",
        "///admin//x?q=1",
    ] {
        assert_eq!(forward(&server, "wiki.example.test", path, &signed_in).status, 403, "{path}");
        let url = format!("https://wiki.example.test{path}");
        assert_eq!(auth_request(&server, &url, &signed_in).status, 403, "{url}");
    }
    for path in ["/admin%2fx", "/admin%2Fx", "/a%5cb", "/%zz", "/%4", "/a%00b", "/a\\b"] {
        for who in [&signed_in[..], &[]] {
            let response = forward(&server, "wiki.example.test", path, who);
            assert_eq!(response.status, 400, "{path}: {}", response.body);
        }
        let url = format!("https://wiki.example.test{path}");
        assert_eq!(auth_request(&server, &url, &[]).status, 400, "{url}");
    }
    // The controls: lookalikes of the prefix are not under it.
    for path in ["/administrator", "/x/admin", "/%2561dmin", "/public/admin"] {
        assert_eq!(forward(&server, "wiki.example.test", path, &signed_in).status, 200, "{path}");
    }
}

#[test]
fn the_default_policy_applies_when_no_rule_matches() {
    for (default, anonymous) in [("bypass", 200), ("deny", 403), ("user", 401), ("admin", 401)] {
        let server = TestServer::start_with(&[("SESSIOND_ACCESS_DEFAULT", default)]);
        server.create_user("mona", "mona-password", Role::Manager);
        assert_eq!(forward(&server, "any.test", "/", &[]).status, anonymous, "{default}");
        let mona = cookie(&server.login("mona", "mona-password"));
        let expected = match default {
            "admin" | "deny" => 403,
            _ => 200,
        };
        assert_eq!(forward(&server, "any.test", "/", &[("Cookie", &mona)]).status, expected);
    }
}

#[test]
fn a_running_server_follows_a_rule_change_within_seconds() {
    let server = server();
    let key = server.login("alice", "alice-password");
    let signed_in = [("Cookie", cookie(&key))];
    let signed_in: Vec<(&str, &str)> = signed_in.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(forward(&server, "wiki.example.test", "/", &signed_in).status, 200);
    // Another process adds a rule.
    let db = server.db_path.to_str().unwrap();
    Cli::new(server.dir.path())
        .args(&["--db", db, "access", "add", "wiki.example.test", "deny"])
        .run();
    // The rules are not read on every request: within the same second the
    // server still decides with its copy...
    assert_eq!(forward(&server, "wiki.example.test", "/", &signed_in).status, 200);
    // ...and a second later it has followed the change.
    server.advance(1);
    assert_eq!(forward(&server, "wiki.example.test", "/", &signed_in).status, 403);
    Cli::new(server.dir.path()).args(&["--db", db, "access", "remove", "1"]).run();
    server.advance(1);
    assert_eq!(forward(&server, "wiki.example.test", "/", &signed_in).status, 200);
}

#[test]
fn any_method_is_answered_outside_the_csrf_rule_and_changes_nothing() {
    let server = server();
    add_rule(&server, "wiki.example.test", Some("/secret"), "deny");
    let key = server.login("alice", "alice-password");
    let conn = server.conn();
    let rows =
        || (count(&conn, "web_sessions"), count(&conn, "jwt_sessions"), count(&conn, "users"));
    let before = rows();
    let foreign = [("Origin", "https://evil.test"), ("Sec-Fetch-Site", "cross-site")];
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "GET"] {
        for (uri, with_cookie, expected) in
            [("/page", true, 200), ("/page", false, 401), ("/secret", true, 403)]
        {
            let signed_in = cookie(&key);
            let mut headers =
                vec![("X-Forwarded-Host", "wiki.example.test"), ("X-Forwarded-Uri", uri)];
            headers.extend_from_slice(&foreign);
            if with_cookie {
                headers.push(("Cookie", &signed_in));
            }
            let body: &[u8] = if method == "HEAD" { b"" } else { b"username=x&password=y" };
            let response = request(server.addr, method, "/auth/forward", &headers, body);
            assert_eq!(response.status, expected, "{method} {uri}");
            let url = format!("https://wiki.example.test{uri}");
            let mut headers = vec![("X-Original-URL", url.as_str())];
            headers.extend_from_slice(&foreign);
            if with_cookie {
                headers.push(("Cookie", &signed_in));
            }
            let response = request(server.addr, method, "/auth/request", &headers, body);
            assert_eq!(response.status, expected, "{method} {url}");
        }
    }
    // An unknown cookie is nobody: deleted, no row made.
    let response = forward(
        &server,
        "wiki.example.test",
        "/",
        &[("Cookie", "sessionid=forged-key-0123456789abcdef")],
    );
    assert_eq!(response.status, 401);
    assert_eq!(rows(), before);
    // The control: the same foreign POST to a page is refused.
    let refused = request(server.addr, "POST", "/logout", &foreign, b"");
    assert_eq!(refused.status, 403);
}

#[test]
fn the_session_cookie_carries_the_configured_domain() {
    let server = server();
    let response =
        server.post_form("/login", &[("username", "alice"), ("password", "alice-password")], &[]);
    let set_cookie = response.set_cookie("sessionid").unwrap();
    assert!(set_cookie.contains("; Domain=example.test"), "{set_cookie}");
    let key = response.cookie_value("sessionid").unwrap();
    let logout = server.post_form("/logout", &[], &[("Cookie", &cookie(&key))]);
    let removal = logout.set_cookie("sessionid").unwrap();
    assert!(removal.contains("Domain=example.test") && removal.contains("Max-Age=0"), "{removal}");
    // The control: without the setting the cookie is host-only.
    let plain = TestServer::start();
    let response =
        plain.post_form("/login", &[("username", "root"), ("password", "root-password")], &[]);
    assert!(!response.set_cookie("sessionid").unwrap().contains("Domain"));
}

#[test]
fn sign_in_follows_an_absolute_next_only_within_the_domains() {
    let server = server();
    let login = |next: &str| {
        let response = server.post_form(
            "/login",
            &[("username", "alice"), ("password", "alice-password"), ("next", next)],
            &[],
        );
        assert_eq!(response.status, 303, "{next}");
        response.header("location").unwrap().to_owned()
    };
    for good in [
        "https://wiki.example.test/page?a=1",
        "https://example.test/",
        "https://auth.example.test/account/sessions",
        "https://a.b.example.test:8443/x",
    ] {
        assert_eq!(login(good), good);
    }
    for bad in [
        "http://wiki.example.test/",
        "https://example.test.evil.test/",
        "https://evilexample.test/",
        "https://wiki.example.test@evil.test/",
        "https://evil.test\\@wiki.example.test/",
        "https:\\\\wiki.example.test/",
        "//wiki.example.test/",
        "/\\wiki.example.test/",
        "https://evil.test/?https://wiki.example.test/",
    ] {
        assert_eq!(login(bad), "/", "{bad}");
    }
    // The form carries a permitted next through.
    let form = server.get("/login?next=https%3A%2F%2Fwiki.example.test%2Fx", &[]);
    assert!(form.body.contains(r#"value="https://wiki.example.test/x""#), "{}", form.body);
    let form = server.get("/login?next=https%3A%2F%2Fevil.test%2Fx", &[]);
    assert!(!form.body.contains("evil.test"));
}

#[test]
fn the_sign_in_page_lets_its_form_end_at_a_permitted_next() {
    // Browsers check `form-action` on the redirect after the post too.
    let server = server();
    let form = server.get("/login?next=https%3A%2F%2Fwiki.example.test%3A8443%2Fx", &[]);
    let policy = form.header("content-security-policy").unwrap();
    assert!(policy.contains("form-action 'self' https://wiki.example.test:8443;"), "{policy}");
    assert_eq!(form.headers_named("content-security-policy").len(), 1);
    let page = server.get("/logout?next=https%3A%2F%2Fwiki.example.test%2F", &[]);
    let policy = page.header("content-security-policy").unwrap();
    assert!(policy.contains("form-action 'self' https://wiki.example.test;"), "{policy}");
    // The controls: a local or refused next keeps the plain policy.
    for path in ["/login?next=%2Faccount%2Fsessions", "/login?next=https%3A%2F%2Fevil.test%2F"] {
        let policy = server.get(path, &[]).header("content-security-policy").unwrap().to_owned();
        assert!(policy.contains("form-action 'self';"), "{path}: {policy}");
    }
}

#[test]
fn http_next_is_allowed_only_when_the_public_url_is_http() {
    let server = TestServer::start_with(&[
        ("SESSIOND_PUBLIC_URL", "http://auth.example.test:8000"),
        ("DJANGO_SESSION_COOKIE_DOMAIN", "example.test"),
    ]);
    let response = server.post_form(
        "/login",
        &[
            ("username", "root"),
            ("password", "root-password"),
            ("next", "http://wiki.example.test/"),
        ],
        &[],
    );
    assert_eq!(response.header("location"), Some("http://wiki.example.test/"));
}

#[test]
fn get_logout_shows_sign_out_and_signing_out_follows_next() {
    let server = server();
    let key = server.login("alice", "alice-password");
    let page =
        server.get("/logout?next=https%3A%2F%2Fwiki.example.test%2F", &[("Cookie", &cookie(&key))]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains(">Sign out</button>"), "{}", page.body);
    assert_eq!(page.body.matches(">Sign out</button>").count(), 1);
    assert!(page.body.contains(r#"name="next" value="https://wiki.example.test/""#));
    assert!(page.body.contains("alice"));
    // GET changes nothing: still signed in.
    assert_eq!(
        forward(&server, "wiki.example.test", "/", &[("Cookie", &cookie(&key))]).status,
        200
    );
    let out = server.post_form(
        "/logout",
        &[("next", "https://wiki.example.test/")],
        &[("Cookie", &cookie(&key))],
    );
    assert_eq!(out.status, 303);
    assert_eq!(out.header("location"), Some("https://wiki.example.test/"));
    assert_eq!(count(&server.conn(), "web_sessions"), 0);
    assert_eq!(
        forward(&server, "wiki.example.test", "/", &[("Cookie", &cookie(&key))]).status,
        401
    );
    // A foreign next goes to `/`; none goes to the sign-in page.
    let other = server.login("alice", "alice-password");
    let out = server.post_form(
        "/logout",
        &[("next", "https://evil.test/")],
        &[("Cookie", &cookie(&other))],
    );
    assert_eq!(out.header("location"), Some("/"));
    let out = server.post_form("/logout", &[], &[]);
    assert_eq!(out.header("location"), Some("/login"));
    let escaped = server.get("/logout?next=%2F%22%3E%3Cscript%3E", &[]);
    assert!(!escaped.body.contains("<script>"));
}

#[test]
fn bad_forward_auth_settings_stop_serve_with_the_key_and_value_named() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("SESSIOND_PUBLIC_URL", "auth.example.test"),
        ("SESSIOND_PUBLIC_URL", "https://auth.example.test/?a=1"),
        ("DJANGO_SESSION_COOKIE_DOMAIN", "https://example.test"),
        ("DJANGO_SESSION_COOKIE_DOMAIN", "example.test:443"),
        ("DJANGO_SESSION_COOKIE_DOMAIN", "example.test/x"),
        ("SESSIOND_ACCESS_DEFAULT", "superhero"),
    ] {
        // Status 1 with one `error: ` line naming the key and the value.
        let output = Cli::new(dir.path())
            .args(&["--db", "db.sqlite3", "serve", "--bind", "127.0.0.1:0"])
            .env(key, value)
            .status(1)
            .stderr_contains(key)
            .stderr_contains(value)
            .output();
        assert!(!output.stderr.contains("listening on"));
        Cli::new(dir.path())
            .args(&["config", "set", key, value])
            .status(1)
            .stderr_contains(key)
            .run();
    }
    assert!(!dir.path().join(".env").exists(), "config set wrote nothing");
    // The control: good values are stored.
    for (key, value) in [
        ("SESSIOND_PUBLIC_URL", "https://auth.example.test"),
        ("DJANGO_SESSION_COOKIE_DOMAIN", "example.test"),
        ("SESSIOND_ACCESS_DEFAULT", "manager"),
    ] {
        Cli::new(dir.path()).args(&["config", "set", key, value]).run();
    }
}

// ---------------------------------------------------------------------------
// `/admin/access`.

fn rules_json(server: &TestServer) -> Vec<(String, Option<String>, String)> {
    access_rules::list(&server.conn())
        .unwrap()
        .into_iter()
        .map(|rule| {
            (
                rule.pattern.to_string(),
                rule.path.map(|path| path.as_str().to_owned()),
                rule.policy.as_str().to_owned(),
            )
        })
        .collect()
}

#[test]
fn staff_see_the_rules_and_only_superusers_change_them() {
    let server = server();
    add_rule(&server, "wiki.example.test", Some("/admin"), "admin");
    let anonymous = server.get("/admin/access", &[]);
    assert_eq!(anonymous.status, 303);
    assert!(anonymous.header("location").unwrap().starts_with("/login?next="));
    let alice = cookie(&server.login("alice", "alice-password"));
    assert_eq!(server.get("/admin/access", &[("Cookie", &alice)]).status, 403);

    let mona = cookie(&server.login("mona", "mona-password"));
    let page = server.get("/admin/access", &[("Cookie", &mona)]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("wiki.example.test") && page.body.contains("/admin"));
    assert!(page.body.contains("<strong>user</strong>"), "the default policy is shown");
    assert!(!page.body.contains("Add rule") && !page.body.contains(">Remove<"));
    let fields = [("pattern", "other.example.test"), ("path", ""), ("policy", "deny")];
    let refused = server.post_form("/admin/access/add", &fields, &[("Cookie", &mona)]);
    assert_eq!(refused.status, 403);
    let id = access_rules::list(&server.conn()).unwrap()[0].id.to_string();
    let refused = server.post_form("/admin/access/remove", &[("id", &id)], &[("Cookie", &mona)]);
    assert_eq!(refused.status, 403);
    assert_eq!(rules_json(&server).len(), 1, "a manager changed nothing");

    let root = cookie(&server.login("root", "root-password"));
    let page = server.get("/admin/access", &[("Cookie", &root)]);
    assert!(page.body.contains("Add rule") && page.body.contains(">Remove</button>"));
    assert!(
        page.body.contains(r#"<label for="pattern""#)
            && page.body.contains(r#"<label for="policy""#)
    );
    // Before the rule, the host is open to any signed-in user.
    assert_eq!(forward(&server, "other.example.test", "/", &[("Cookie", &alice)]).status, 200);
    let added = server.post_form("/admin/access/add", &fields, &[("Cookie", &root)]);
    assert_eq!(added.status, 303, "{}", added.body);
    assert_eq!(added.header("location"), Some("/admin/access?done=added"));
    assert_eq!(
        rules_json(&server),
        vec![
            ("wiki.example.test".into(), Some("/admin".into()), "admin".into()),
            ("other.example.test".into(), None, "deny".into()),
        ]
    );
    // This server follows its own change at once, without the clock moving.
    assert_eq!(forward(&server, "other.example.test", "/", &[("Cookie", &alice)]).status, 403);
    let page = server.get("/admin/access?done=added", &[("Cookie", &root)]);
    assert!(page.body.contains("Added the rule."));

    let removed = server.post_form("/admin/access/remove", &[("id", &id)], &[("Cookie", &root)]);
    assert_eq!(removed.status, 303);
    assert_eq!(rules_json(&server), vec![("other.example.test".into(), None, "deny".into())]);
    let again = server.post_form("/admin/access/remove", &[("id", &id)], &[("Cookie", &root)]);
    assert_eq!(again.status, 404);
}

#[test]
fn the_admin_form_refuses_bad_rules_escaped_and_cross_site_posts() {
    let server = server();
    let root = cookie(&server.login("root", "root-password"));
    for (pattern, path, policy) in [
        ("<script>alert(1)</script>", "", "user"),
        ("wiki.example.test:80", "", "user"),
        ("*", "", "user"),
        ("wiki.example.test", "admin", "user"),
        ("wiki.example.test", "/x", "<b>superhero</b>"),
    ] {
        let fields = [("pattern", pattern), ("path", path), ("policy", policy)];
        let response = server.post_form("/admin/access/add", &fields, &[("Cookie", &root)]);
        assert_eq!(response.status, 400, "{pattern} {path} {policy}");
        assert!(response.body.contains("The rule was not added"));
        assert!(!response.body.contains("<script>") && !response.body.contains("<b>superhero"));
    }
    let fields = [("pattern", "wiki.example.test"), ("path", "/x"), ("policy", "user")];
    let foreign = [("Cookie", root.as_str()), ("Origin", "https://evil.test")];
    assert_eq!(server.post_form("/admin/access/add", &fields, &foreign).status, 403);
    assert!(rules_json(&server).is_empty());
    let bad_id = server.post_form("/admin/access/remove", &[("id", "x")], &[("Cookie", &root)]);
    assert_eq!(bad_id.status, 400);
    // The control: the same rule from the same origin is added.
    assert_eq!(server.post_form("/admin/access/add", &fields, &[("Cookie", &root)]).status, 303);
    assert_eq!(rules_json(&server).len(), 1);
}

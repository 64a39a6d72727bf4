//! Cross-site requests (SPEC 4): every POST a browser sends from another
//! origin is refused with 403 and changes nothing.

use crate::support::{TestServer, count};

const ROOT: [(&str, &str); 2] = [("username", "root"), ("password", "root-password")];

#[test]
fn cross_site_login_is_refused_and_creates_nothing() {
    let server = TestServer::start();
    let response = server.post_form(
        "/login",
        &ROOT,
        &[("Sec-Fetch-Site", "cross-site"), ("Origin", "https://evil.example")],
    );
    assert_eq!(response.status, 403);
    assert_eq!(response.set_cookie("sessionid"), None);
    assert_eq!(count(&server.conn(), "web_sessions"), 0);
}

#[test]
fn same_site_but_not_same_origin_fetch_is_refused() {
    let server = TestServer::start();
    let response = server.post_form("/login", &ROOT, &[("Sec-Fetch-Site", "same-site")]);
    assert_eq!(response.status, 403);
}

#[test]
fn same_origin_and_user_initiated_fetches_are_allowed() {
    let server = TestServer::start();
    for site in ["same-origin", "none"] {
        let response = server.post_form("/login", &ROOT, &[("Sec-Fetch-Site", site)]);
        assert_eq!(response.status, 303, "{site}");
    }
}

#[test]
fn requests_without_origin_are_allowed() {
    let server = TestServer::start();
    assert_eq!(server.post_form("/login", &ROOT, &[]).status, 303);
}

#[test]
fn origin_host_must_match_host_when_fetch_metadata_is_missing() {
    let server = TestServer::start();
    let same = format!("http://{}", server.addr);
    assert_eq!(server.post_form("/login", &ROOT, &[("Origin", &same)]).status, 303);
    let other = server.post_form("/login", &ROOT, &[("Origin", "http://evil.example")]);
    assert_eq!(other.status, 403);
    let null = server.post_form("/login", &ROOT, &[("Origin", "null")]);
    assert_eq!(null.status, 403);
}

#[test]
fn trusted_origins_are_allowed_even_cross_site() {
    let server = TestServer::start_with(&[(
        "DJANGO_CSRF_TRUSTED_ORIGINS",
        "https://one.example https://app.example:8443",
    )]);
    let response = server.post_form(
        "/login",
        &ROOT,
        &[("Origin", "https://app.example:8443"), ("Sec-Fetch-Site", "cross-site")],
    );
    assert_eq!(response.status, 303);
    let untrusted = server.post_form(
        "/login",
        &ROOT,
        &[("Origin", "https://two.example"), ("Sec-Fetch-Site", "cross-site")],
    );
    assert_eq!(untrusted.status, 403);
}

#[test]
fn cross_site_logout_is_refused_and_the_session_survives() {
    let server = TestServer::start();
    let key = server.login("root", "root-password");
    let cookie = format!("sessionid={key}");
    let response =
        server.post_form("/logout", &[], &[("Cookie", &cookie), ("Sec-Fetch-Site", "cross-site")]);
    assert_eq!(response.status, 403);
    assert_eq!(count(&server.conn(), "web_sessions"), 1);
    assert_eq!(server.get_with_cookie("/", &key).status, 200);
}
